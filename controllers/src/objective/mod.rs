//! The Objective controller: validate each Objective against the Tenant
//! owning its namespace, write `Validated`, `Ready` and the summary.
//!
//! Tenants are watched (all of them, whatever `--selector` says: an
//! Objective's tenant decides its validation even when another installation
//! manages that Tenant) into a store used to find the Tenant owning an
//! Objective's namespace; a Tenant's spec change re-validates every
//! Objective in its namespace (business hours and escalation contacts
//! matter). An invalid Objective keeps its last good `summary`: the last
//! good version keeps serving.

pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::events::{EventRecorder, EventType};
use dialtone_crds::Tenant;
use dialtone_crds::objective::{Objective, ObjectiveStatus};
use dialtone_crds::tenant::TenantSpec;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Resource, ResourceExt};

use crate::runtime::{
    FailureBackoff, Shared, drain, mark_synced, object_key, pruned_watch, publish, report_failure,
    shutdown_future, timed,
};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "objective";
/// The field manager of status writes, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dialtone-objective-controller";
/// How often an Objective is re-validated even without a change.
pub const RESYNC: Duration = Duration::from_secs(1800);
/// How long to wait for the Tenant cache before validating.
const TENANTS_NOT_SYNCED: Duration = Duration::from_millis(500);

/// Everything that can fail in an Objective reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// A CamelCase category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Status(_) => "StatusWriteFailed",
        }
    }
}

/// The controller's context.
pub struct Context {
    shared: Shared,
    recorder: EventRecorder,
    backoff: FailureBackoff,
    tenants: Store<Tenant>,
    tenants_synced: Arc<AtomicBool>,
}

/// Runs the Objective controller until shutdown. `synced` turns true once
/// the Objective cache has its first full list.
pub async fn run(shared: Shared, synced: Arc<AtomicBool>) {
    let client = shared.client.clone();
    let (store, objectives) =
        pruned_watch(Api::<Objective>::all(client.clone()), shared.watch_config());
    // Our own status writes do not bump the generation.
    let objectives =
        objectives.predicate_filter(predicates::generation, PredicateConfig::default());
    let (tenant_store, tenants) = pruned_watch(
        Api::<Tenant>::all(client.clone()),
        watcher::Config::default(),
    );
    let tenants = tenants.predicate_filter(predicates::generation, PredicateConfig::default());
    let tenants_synced = Arc::new(AtomicBool::new(false));
    mark_synced(store.clone(), synced);
    mark_synced(tenant_store.clone(), tenants_synced.clone());

    let ctx = Arc::new(Context {
        recorder: shared.recorder(FIELD_MANAGER),
        shared: shared.clone(),
        backoff: FailureBackoff::default(),
        tenants: tenant_store,
        tenants_synced,
    });
    let objective_store = store.clone();
    let controller = Controller::for_stream(objectives, store)
        .watches_stream(tenants, move |tenant: Tenant| {
            objectives_in(&objective_store, &tenant.namespace_name())
        })
        .reconcile_all_on(shared.leadership.gained())
        .graceful_shutdown_on(shutdown_future(&shared.shutdown))
        .with_config(Config::default().concurrency(shared.concurrency))
        .run(reconcile, error_policy, ctx);
    drain(CONTROLLER, controller).await;
}

/// The Objectives cached in `namespace`.
fn objectives_in(store: &Store<Objective>, namespace: &str) -> Vec<ObjectRef<Objective>> {
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The spec of the Tenant whose namespace is `namespace`, if any.
fn tenant_of(tenants: &Store<Tenant>, namespace: &str) -> Option<TenantSpec> {
    tenants
        .state()
        .iter()
        .find(|t| t.owns_namespace(namespace))
        .map(|t| t.spec.clone())
}

async fn reconcile(objective: Arc<Objective>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.shared.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    // Validating without the Tenant it belongs to would flap Validated.
    if !ctx.tenants_synced.load(Ordering::SeqCst) {
        return Ok(Action::requeue(TENANTS_NOT_SYNCED));
    }
    let started = Instant::now();
    let result = reconcile_inner(&objective, &ctx).await;
    ctx.shared
        .metrics
        .reconciled(CONTROLLER, result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(CONTROLLER, objective.as_ref());
    }
    result
}

async fn reconcile_inner(objective: &Objective, ctx: &Context) -> Result<Action, Error> {
    let namespace = objective.namespace().unwrap_or_default();
    let tenant = tenant_of(&ctx.tenants, &namespace);
    let outcome = status::validate(objective, tenant.as_ref());
    write_status(objective, &outcome, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

/// Writes the status by server-side apply on the status subresource, unless
/// nothing would change; publishes an Event when `Validated` changes.
async fn write_status(
    objective: &Objective,
    outcome: &status::Outcome,
    ctx: &Context,
) -> Result<(), Error> {
    let desired = status::desired(objective, outcome, Timestamp::now());
    if !status::needs_write(objective.status.as_ref(), &desired) {
        return Ok(());
    }
    let api: Api<Objective> = Api::namespaced(
        ctx.shared.client.clone(),
        &objective.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": Objective::api_version(&()),
        "kind": Objective::kind(&()),
        "status": desired,
    });
    timed(api.patch_status(
        &objective.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await
    .map_err(Error::Status)?;
    announce_validated_change(
        objective,
        objective.status.as_ref(),
        &desired,
        &ctx.recorder,
    )
    .await;
    Ok(())
}

async fn announce_validated_change(
    objective: &Objective,
    before: Option<&ObjectiveStatus>,
    after: &ObjectiveStatus,
    rec: &EventRecorder,
) {
    let Some(now) = status::validated_change(before, after) else {
        return;
    };
    let type_ = if now.status == "True" {
        EventType::Normal
    } else {
        EventType::Warning
    };
    tracing::info!(
        objective = %object_key(objective),
        validated = %now.status,
        reason = %now.reason,
        "objective validation changed"
    );
    publish(
        rec,
        objective,
        type_,
        &now.reason,
        "Validate",
        now.message.clone(),
    )
    .await;
}

fn error_policy(objective: Arc<Objective>, err: &Error, ctx: Arc<Context>) -> Action {
    report_failure(
        &ctx.shared,
        &ctx.recorder,
        &ctx.backoff,
        CONTROLLER,
        objective,
        err.category(),
        err,
        "Validate",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_categories() {
        let e = Error::Status(kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(e.category(), "StatusWriteFailed");
    }

    #[test]
    fn a_reconciled_objective_backs_off_from_the_start_again() {
        let spec: dialtone_crds::objective::ObjectiveSpec =
            serde_yaml::from_str("{template: lead-capture}").expect("spec");
        let mut objective = Objective::new("lead", spec);
        objective.metadata.namespace = Some("tenant-acme".into());
        let backoff = FailureBackoff::default();
        // What error_policy (report_failure) and reconcile do with it.
        assert_eq!(
            backoff.failed(CONTROLLER, &objective),
            Duration::from_secs(5)
        );
        assert_eq!(
            backoff.failed(CONTROLLER, &objective),
            Duration::from_secs(10)
        );
        backoff.succeeded(CONTROLLER, &objective);
        assert_eq!(
            backoff.failed(CONTROLLER, &objective),
            Duration::from_secs(5)
        );
    }
}
