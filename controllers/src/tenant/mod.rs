//! The Tenant controller: a namespace with quota, limits, network policies,
//! a ServiceAccount and RBAC per Tenant, and the tenant's call token
//! ([`calls_token`]); status last.
//!
//! A cluster-scoped Tenant cannot own namespaced children by owner
//! reference, so every child carries the labels
//! `app.kubernetes.io/managed-by=dialtone` and `dialtone.io/tenant=<name>`,
//! and deletion runs under the finalizer [`FINALIZER`]: the controller deletes
//! the namespace (which removes everything in it), waits until it is gone,
//! and only then releases the Tenant. A namespace that exists without the
//! Tenant's label is never adopted nor deleted (`NamespaceConflict`).
//!
//! `spec.suspend` keeps `Ready=True` with reason `Suspended` and sets
//! `Suspended=True`: the tenant's guardrails are in place as asked, and GitOps
//! health checks should not report an intentional pause as degraded. The
//! namespace carries `dialtone.io/suspended=true` for the voice pods and
//! workers, which stop taking new calls.

pub mod build;
pub mod calls_token;
pub mod pull_secrets;
pub mod status;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::events::{EventRecorder, EventType};
use dialtone_crds::common::READY;
use dialtone_crds::{Tenant, TenantStatus};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::build::{NetworkSettings, TenantChildren};
use self::pull_secrets::PullSecrets;
use self::status::Observation;
use crate::runtime::{
    FailureBackoff, Shared, drain, mark_synced, pruned_watch, publish, report_failure,
    shutdown_future, timed,
};
use crate::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};
use dialtone_spine::call_tokens;

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "tenant";
/// The field manager of every write, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dialtone-tenant-controller";
/// The finalizer that holds a Tenant until its namespace is gone.
pub const FINALIZER: &str = "dialtone.io/tenant-cleanup";
/// How often a healthy Tenant is reconciled anyway, to repair drift of
/// children that are not watched.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How often teardown checks whether the namespace is gone (the namespace
/// watch usually triggers sooner).
pub const TEARDOWN_POLL: Duration = Duration::from_secs(2);

/// Everything that can fail in a Tenant reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Applying a child failed.
    #[error("applying {what}: {source}")]
    Apply {
        /// What was applied.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting the namespace failed.
    #[error("deleting namespace {namespace}: {source}")]
    Delete {
        /// The namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// The namespace came back during cleanup.
    #[error("namespace {0} still exists")]
    NamespaceStillPresent(String),
    /// Copying an image pull Secret failed.
    #[error(transparent)]
    PullSecret(#[from] pull_secrets::PullSecretError),
    /// Keeping the tenant's call token failed.
    #[error(transparent)]
    CallsToken(#[from] calls_token::CallsTokenError),
    /// Adding or removing the finalizer failed, or a stage under it.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A CamelCase category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Delete { .. } => "DeleteFailed",
            Error::Status(_) => "StatusWriteFailed",
            Error::NamespaceStillPresent(_) => "NamespaceStillPresent",
            Error::CallsToken(_) => "CallsTokenFailed",
            Error::PullSecret(_) => "PullSecretCopyFailed",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "FinalizerFailed",
            },
        }
    }
}

/// The controller's context.
pub struct Context {
    shared: Shared,
    net: NetworkSettings,
    recorder: EventRecorder,
    backoff: FailureBackoff,
    /// The event spine, for the tenant's dead-letter count (`None` without
    /// a database).
    db: Option<sqlx::PgPool>,
    /// The voice image's pull Secrets, copied into tenant namespaces.
    pull: PullSecrets,
}

/// Runs the Tenant controller until shutdown. `synced` turns true once the
/// Tenant cache has its first full list.
pub async fn run(
    shared: Shared,
    net: NetworkSettings,
    pull: PullSecrets,
    db: Option<sqlx::PgPool>,
    synced: Arc<AtomicBool>,
) {
    let client = shared.client.clone();
    let (store, tenants) = pruned_watch(Api::<Tenant>::all(client.clone()), shared.watch_config());
    let tenants = tenants.predicate_filter(tenant_changes, PredicateConfig::default());
    // Metadata only: an Api of PartialObjectMeta makes metadata-only requests.
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
    )
    .default_backoff()
    .touched_objects();
    // The call-token Secrets only: deleting one rotates the token at once.
    let token_secrets = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default()
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"))
            .fields(&format!("metadata.name={}", calls_token::SECRET)),
    )
    .default_backoff()
    .touched_objects();

    mark_synced(store.clone(), synced);

    let ctx = Arc::new(Context {
        recorder: shared.recorder(FIELD_MANAGER),
        shared: shared.clone(),
        net,
        backoff: FailureBackoff::default(),
        db,
        pull,
    });
    let controller = Controller::for_stream(tenants, store)
        .watches_stream(namespaces, tenant_of_namespace)
        .watches_stream(token_secrets, tenant_of_secret)
        .reconcile_all_on(shared.leadership.gained())
        .graceful_shutdown_on(shutdown_future(&shared.shutdown))
        .with_config(Config::default().concurrency(shared.concurrency))
        .run(reconcile, error_policy, ctx);
    drain(CONTROLLER, controller).await;
}

/// Reconcile on a new generation, finalizer changes and deletion — not on
/// our own status writes.
fn tenant_changes(t: &Tenant) -> Option<u64> {
    let mut h = DefaultHasher::new();
    t.metadata.generation.hash(&mut h);
    t.finalizers().hash(&mut h);
    t.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

fn tenant_of_namespace(ns: PartialObjectMeta<Namespace>) -> Option<ObjectRef<Tenant>> {
    ns.labels()
        .get(TENANT_LABEL)
        .map(|name| ObjectRef::new(name))
}

fn tenant_of_secret(secret: PartialObjectMeta<Secret>) -> Option<ObjectRef<Tenant>> {
    secret
        .labels()
        .get(TENANT_LABEL)
        .map(|name| ObjectRef::new(name))
}

async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.shared.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = reconcile_inner(Arc::clone(&tenant), &ctx).await;
    ctx.shared
        .metrics
        .reconciled(CONTROLLER, result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(CONTROLLER, tenant.as_ref());
    }
    result
}

async fn reconcile_inner(tenant: Arc<Tenant>, ctx: &Arc<Context>) -> Result<Action, Error> {
    // While the namespace is going, wait here: the finalizer helper removes
    // the finalizer as soon as Cleanup returns, so Cleanup only runs once
    // the namespace is gone.
    if tenant.metadata.deletion_timestamp.is_some()
        && tenant.finalizers().iter().any(|f| f == FINALIZER)
        && let Some(action) = teardown(&tenant, ctx).await?
    {
        return Ok(action);
    }
    let api: Api<Tenant> = Api::all(ctx.shared.client.clone());
    finalizer::finalizer(&api, FINALIZER, tenant, |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                FinalizerEvent::Apply(t) => apply(&t, &ctx).await,
                FinalizerEvent::Cleanup(t) => match teardown(&t, &ctx).await? {
                    None => {
                        if let Some(db) = &ctx.db {
                            call_tokens::revoke_tenant(db, &t.name_any())
                                .await
                                .map_err(calls_token::CallsTokenError::from)?;
                        }
                        Ok(Action::await_change())
                    }
                    Some(_) => Err(Error::NamespaceStillPresent(t.namespace_name())),
                },
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(tenant: Arc<Tenant>, err: &Error, ctx: Arc<Context>) -> Action {
    report_failure(
        &ctx.shared,
        &ctx.recorder,
        &ctx.backoff,
        CONTROLLER,
        tenant,
        err.category(),
        err,
        "Reconcile",
    )
}

/// Apply stage: validate, check the namespace is ours, apply every child,
/// write status.
async fn apply(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let children = match build::children(tenant, &ctx.net) {
        Ok(children) => children,
        Err(invalid) => {
            write_status(tenant, &Observation::Invalid(invalid.to_string()), ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let namespace = tenant.namespace_name();
    let ns_api: Api<Namespace> = Api::all(ctx.shared.client.clone());
    let existing = timed(ns_api.get_opt(&namespace))
        .await
        .map_err(|source| Error::Read {
            what: format!("namespace {namespace}"),
            source,
        })?;
    if let Some(ns) = &existing {
        if ns.labels().get(TENANT_LABEL) != Some(&name) {
            write_status(tenant, &Observation::NamespaceConflict { namespace }, ctx).await?;
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
        if ns.metadata.deletion_timestamp.is_some() {
            write_status(
                tenant,
                &Observation::NamespaceTerminating { namespace },
                ctx,
            )
            .await?;
            return Ok(Action::requeue(TEARDOWN_POLL));
        }
    }
    let applied = apply_children(children, ctx).await?;
    let namespace_active =
        applied.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active");
    if namespace_active {
        let missing = pull_secrets::sync(&ctx.shared.client, &ctx.pull, tenant, &namespace).await?;
        if !missing.is_empty() {
            publish(
                &ctx.recorder,
                tenant,
                EventType::Warning,
                "PullSecretMissing",
                "Apply",
                format!(
                    "image pull Secrets {} are not in namespace {}; dedicated voice pods cannot pull with them",
                    missing.join(", "),
                    ctx.pull.namespace
                ),
            )
            .await;
        }
    }
    if namespace_active
        && let Some(db) = &ctx.db
        && calls_token::ensure(&ctx.shared.client, db, tenant, &namespace).await?
    {
        publish(
            &ctx.recorder,
            tenant,
            EventType::Normal,
            "CallsTokenIssued",
            "Apply",
            format!(
                "issued the call token for /v1/calls in Secret {namespace}/{}",
                calls_token::SECRET
            ),
        )
        .await;
    }
    if existing.is_none() {
        publish(
            &ctx.recorder,
            tenant,
            EventType::Normal,
            "NamespaceCreated",
            "Apply",
            format!("created namespace {namespace}"),
        )
        .await;
    }
    write_status(
        tenant,
        &Observation::Applied {
            namespace,
            namespace_active,
        },
        ctx,
    )
    .await?;
    Ok(if namespace_active {
        Action::requeue(RESYNC)
    } else {
        Action::requeue(TEARDOWN_POLL)
    })
}

async fn ssa<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let what = format!("{} {name}", K::kind(&Default::default()));
    timed(api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    ))
    .await
    .map_err(|source| Error::Apply { what, source })
}

/// Applies every child, namespace first; returns the applied namespace.
async fn apply_children(children: TenantChildren, ctx: &Context) -> Result<Namespace, Error> {
    let TenantChildren {
        namespace,
        quota,
        limit_range,
        deny_all,
        allow_voice,
        service_account,
        role,
        role_binding,
    } = children;
    let client = ctx.shared.client.clone();
    let ns_name = namespace.metadata.name.clone().unwrap_or_default();
    let applied = ssa(&Api::<Namespace>::all(client.clone()), &namespace).await?;
    ssa(
        &Api::<ResourceQuota>::namespaced(client.clone(), &ns_name),
        &quota,
    )
    .await?;
    ssa(
        &Api::<LimitRange>::namespaced(client.clone(), &ns_name),
        &limit_range,
    )
    .await?;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns_name);
    ssa(&policies, &deny_all).await?;
    ssa(&policies, &allow_voice).await?;
    ssa(
        &Api::<ServiceAccount>::namespaced(client.clone(), &ns_name),
        &service_account,
    )
    .await?;
    ssa(&Api::<Role>::namespaced(client.clone(), &ns_name), &role).await?;
    ssa(
        &Api::<RoleBinding>::namespaced(client, &ns_name),
        &role_binding,
    )
    .await?;
    Ok(applied)
}

/// Deletes the tenant's namespace if it is ours. `None` once it is gone (or
/// was never ours); otherwise when to look again.
async fn teardown(tenant: &Tenant, ctx: &Context) -> Result<Option<Action>, Error> {
    let namespace = tenant.namespace_name();
    if !build::is_dns_label(&namespace) {
        return Ok(None);
    }
    let ns_api: Api<Namespace> = Api::all(ctx.shared.client.clone());
    let existing = timed(ns_api.get_opt(&namespace))
        .await
        .map_err(|source| Error::Read {
            what: format!("namespace {namespace}"),
            source,
        })?;
    let Some(ns) = existing else {
        return Ok(None);
    };
    if ns.labels().get(TENANT_LABEL) != Some(&tenant.name_any()) {
        tracing::info!(tenant = %tenant.name_any(), namespace, "namespace is not ours; leaving it");
        return Ok(None);
    }
    if ns.metadata.deletion_timestamp.is_none() {
        match timed(ns_api.delete(&namespace, &DeleteParams::background())).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
            Err(source) => return Err(Error::Delete { namespace, source }),
        }
        publish(
            &ctx.recorder,
            tenant,
            EventType::Normal,
            "DeletingNamespace",
            "Cleanup",
            format!("deleting namespace {namespace}"),
        )
        .await;
    }
    write_status(tenant, &Observation::Deleting { namespace }, ctx).await?;
    Ok(Some(Action::requeue(TEARDOWN_POLL)))
}

/// Writes the status the controller owns by server-side apply on the status
/// subresource, unless nothing would change; publishes an Event when
/// `Ready` changes.
async fn write_status(tenant: &Tenant, obs: &Observation, ctx: &Context) -> Result<(), Error> {
    let desired = status::desired(
        tenant,
        obs,
        Timestamp::now(),
        dead_letters(tenant, ctx).await,
    );
    if !status::needs_write(tenant.status.as_ref(), &desired) {
        return Ok(());
    }
    let api: Api<Tenant> = Api::all(ctx.shared.client.clone());
    let patch = serde_json::json!({
        "apiVersion": Tenant::api_version(&()),
        "kind": Tenant::kind(&()),
        "status": desired,
    });
    timed(api.patch_status(
        &tenant.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await
    .map_err(Error::Status)?;
    announce_ready_change(tenant, tenant.status.as_ref(), &desired, &ctx.recorder).await;
    Ok(())
}

/// The tenant's dead-lettered workflow jobs; `None` when there is no
/// database or it does not answer (the last count is kept).
async fn dead_letters(tenant: &Tenant, ctx: &Context) -> Option<i64> {
    let db = ctx.db.as_ref()?;
    let counted = sqlx::query_scalar(
        "SELECT count(*) FROM workflow_jobs WHERE tenant = $1 AND status = 'dead'",
    )
    .bind(tenant.name_any())
    .fetch_one(db);
    match tokio::time::timeout(Duration::from_secs(5), counted).await {
        Ok(Ok(n)) => Some(n),
        Ok(Err(e)) => {
            tracing::warn!(controller = CONTROLLER, tenant = %tenant.name_any(), error = %e, "cannot count dead-lettered workflow jobs");
            None
        }
        Err(_) => None,
    }
}

async fn announce_ready_change(
    tenant: &Tenant,
    before: Option<&TenantStatus>,
    after: &TenantStatus,
    rec: &EventRecorder,
) {
    let ready = |s: Option<&TenantStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let (was, now) = (ready(before), ready(Some(after)));
    if let Some((status, reason, message)) = now
        && was.as_ref().map(|(s, r, _)| (s, r)) != Some((&status, &reason))
    {
        let type_ = if status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        tracing::info!(tenant = %tenant.name_any(), ready = %status, reason, "tenant readiness changed");
        publish(rec, tenant, type_, &reason, "Reconcile", message).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Tenant with only the required fields, for the unit tests of the
    /// Tenant's children.
    pub(super) fn test_tenant(name: &str) -> Tenant {
        Tenant::new(
            name,
            serde_json::from_value(serde_json::json!({
                "displayName": "Acme",
                "profile": {"timezone": "Australia/Sydney"},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_reconciled_tenant_backs_off_from_the_start_again() {
        let spec: dialtone_crds::TenantSpec =
            serde_yaml::from_str("{displayName: Acme, profile: {timezone: UTC}}").expect("spec");
        let tenant = Tenant::new("acme", spec);
        let backoff = FailureBackoff::default();
        // What error_policy (report_failure) and reconcile do with it.
        assert_eq!(backoff.failed(CONTROLLER, &tenant), Duration::from_secs(5));
        assert_eq!(backoff.failed(CONTROLLER, &tenant), Duration::from_secs(10));
        backoff.succeeded(CONTROLLER, &tenant);
        assert_eq!(backoff.failed(CONTROLLER, &tenant), Duration::from_secs(5));
    }
}
