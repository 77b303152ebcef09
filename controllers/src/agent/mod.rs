//! The Agent controller: the compile pipeline of `DESIGN.md`.
//!
//! 1. **Resolve** the Agent's Tenant, Objectives, Providers and
//!    ClusterProviders from the caches.
//! 2. **Validate and compile** with `dialtone_engine::compile` into a
//!    config version named by its hash; store it in `config_versions` and as
//!    an immutable ConfigMap `<agent>-<short hash>` owned by the Agent.
//! 3. **Smoke test** the new version with every referenced Objective's
//!    scripted test calls; a failure blocks activation.
//! 4. **Activate**: `phone_routes` moves the Agent's numbers to the version
//!    in one transaction (`spec.rollout.pinnedVersion` wins at once); numbers
//!    another Agent holds are reported, never taken. Twilio numbers get their
//!    voice webhook pointed at the platform.
//! 5. **Provision** voice pods: dedicated (Deployment, Service,
//!    PodDisruptionBudget, HorizontalPodAutoscaler in the tenant namespace)
//!    or the shared pool (see [`pool`]).
//! 6. Keep `revisionHistoryLimit` versions; write status last, with an
//!    Event per stage change.
//!
//! A failure at any stage leaves the last good version serving. Objectives,
//! Providers, ClusterProviders, Secrets (metadata only) and Tenants are
//! watched and mapped to exactly the Agents that use them. Deleting an
//! Agent removes its routes under the finalizer [`FINALIZER`]; its children
//! go by owner reference.

pub mod build;
pub mod names;
mod pipeline;
pub mod pool;
mod provision;
pub mod resolve;
pub mod rollout;
pub mod status;
pub mod telephony;
pub mod watch;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dialtone_crds::agent::Agent;
use dialtone_crds::{ClusterProvider, Objective, Provider, Tenant};
use dialtone_spine::routes::{self, RouteError};
use dialtone_spine::versions::{self, VersionError};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use sqlx::PgPool;
use tokio::sync::Notify;

use self::build::{PoolSettings, VoiceSettings};
use self::names::{NAME_LABEL, VOICE_APP};
use self::resolve::TenantsByNamespace;
use self::status::Report;
use crate::events::{Event, EventRecorder, EventType};
use crate::runtime::{
    FailureBackoff, Shared, drain, mark_synced, object_key, pruned_watch, report_failure,
    shutdown_future, timed,
};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "agent";
/// The field manager of every write, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dialtone-agent-controller";
/// The finalizer that removes an Agent's phone routes before it goes.
pub const FINALIZER: &str = "dialtone.io/agent-cleanup";
/// How often an Agent is reconciled without a change.
pub const RESYNC: Duration = Duration::from_secs(1800);
/// How soon a conflicting number or a failed binding is tried again.
pub const RETRY_ROUTING: Duration = Duration::from_secs(60);
/// How long to wait for the caches before compiling.
const NOT_SYNCED: Duration = Duration::from_millis(500);

/// How the controller builds voice pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Voice pods of every Agent.
    pub voice: VoiceSettings,
    /// The shared pool.
    pub pool: PoolSettings,
}

/// Everything that can fail in an Agent reconcile. A failure is retried
/// with backoff; the last good version keeps serving meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Storing, loading or pruning config versions failed.
    #[error(transparent)]
    Versions(#[from] VersionError),
    /// Reading or changing phone routes failed.
    #[error(transparent)]
    Routes(#[from] RouteError),
    /// Reading an object failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Applying an object failed.
    #[error("applying {what}: {source}")]
    Apply {
        /// What was applied.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting an object failed.
    #[error("deleting {what}: {source}")]
    Delete {
        /// What was deleted.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the finalizer failed, or a stage under it.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A CamelCase category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Versions(_) | Error::Routes(_) => "DatabaseFailed",
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Delete { .. } => "DeleteFailed",
            Error::Status(_) => "StatusWriteFailed",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "FinalizerFailed",
            },
        }
    }
}

/// The caches the controller reads.
#[derive(Clone)]
pub struct Caches {
    /// Agents this operator manages.
    pub agents: Store<Agent>,
    /// Every Objective.
    pub objectives: Store<Objective>,
    /// Every Provider.
    pub providers: Store<Provider>,
    /// Every ClusterProvider.
    pub cluster: Store<ClusterProvider>,
    /// Every Tenant.
    pub tenants: Store<Tenant>,
    /// Metadata of every Secret (no values).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Voice Deployments (dedicated and the pool).
    pub deployments: Store<Deployment>,
}

/// The controller's context.
pub struct Context {
    shared: Shared,
    recorder: EventRecorder,
    backoff: FailureBackoff,
    db: PgPool,
    settings: Settings,
    caches: Caches,
    dependencies_synced: Vec<Arc<AtomicBool>>,
    /// The dedicated children last applied per Agent.
    applied: provision::AppliedCache,
    /// Wakes the shared pool's sizer.
    pool_signal: Notify,
}

/// Runs the Agent controller and the shared pool's sizer until shutdown.
/// `synced` turns true once the Agent cache has its first full list.
pub async fn run(shared: Shared, settings: Settings, db: PgPool, synced: Arc<AtomicBool>) {
    let client = shared.client.clone();
    let (agent_store, agents) =
        pruned_watch(Api::<Agent>::all(client.clone()), shared.watch_config());
    let agents = agents.predicate_filter(agent_changes, PredicateConfig::default());
    let all = watcher::Config::default;
    let (objectives, objective_events) = watch::dependency_watch(
        Api::<Objective>::all(client.clone()),
        all(),
        watch::generation,
        watch::strip_managed,
    );
    let (providers, provider_events) = watch::dependency_watch(
        Api::<Provider>::all(client.clone()),
        all(),
        watch::generation,
        watch::strip_managed,
    );
    let (cluster, cluster_events) = watch::dependency_watch(
        Api::<ClusterProvider>::all(client.clone()),
        all(),
        watch::generation,
        watch::strip_managed,
    );
    let (tenants, tenant_events) = watch::dependency_watch(
        Api::<Tenant>::all(client.clone()),
        all(),
        watch::generation,
        watch::strip_managed,
    );
    // Metadata only: no Secret value is ever cached.
    let (secrets, secret_events) = watch::dependency_watch(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        all(),
        watch::resource_version,
        watch::strip_secret,
    );
    let (deployments, deployment_events) = watch::dependency_watch(
        Api::<Deployment>::all(client.clone()),
        all().labels(&format!("{NAME_LABEL}={VOICE_APP}")),
        deployment_key,
        watch::strip_managed,
    );
    mark_synced(agent_store.clone(), synced);
    let mut dependencies_synced = Vec::new();
    let mut track = |flag: Arc<AtomicBool>| {
        dependencies_synced.push(flag.clone());
        flag
    };
    mark_synced(objectives.clone(), track(Arc::default()));
    mark_synced(providers.clone(), track(Arc::default()));
    mark_synced(cluster.clone(), track(Arc::default()));
    mark_synced(tenants.clone(), track(Arc::default()));
    mark_synced(secrets.clone(), track(Arc::default()));
    mark_synced(deployments.clone(), track(Arc::default()));

    let caches = Caches {
        agents: agent_store.clone(),
        objectives,
        providers,
        cluster,
        tenants,
        secrets,
        deployments,
    };
    let ctx = Arc::new(Context {
        recorder: shared.recorder(FIELD_MANAGER),
        shared: shared.clone(),
        backoff: FailureBackoff::default(),
        db,
        settings: settings.clone(),
        caches: caches.clone(),
        dependencies_synced,
        applied: provision::AppliedCache::default(),
        pool_signal: Notify::new(),
    });

    let (c1, c2, c3, c4, c5, c6) = (
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches.clone(),
        caches,
    );
    let (s5, s6) = (settings.clone(), settings);
    let controller = Controller::for_stream(agents, agent_store)
        .watches_stream(objective_events, move |o: Objective| {
            let ns = o.namespace().unwrap_or_default();
            agents_where(&c1.agents, |a| {
                resolve::uses_objective(a, &ns, &o.name_any())
            })
        })
        .watches_stream(provider_events, move |p: Provider| {
            let ns = p.namespace().unwrap_or_default();
            agents_where(&c2.agents, |a| {
                resolve::uses_provider(a, &ns, &p.name_any())
            })
        })
        .watches_stream(cluster_events, move |p: ClusterProvider| {
            agents_where(&c3.agents, |a| {
                resolve::uses_cluster_provider(a, &p.name_any())
            })
        })
        .watches_stream(tenant_events, move |t: Tenant| {
            let ns = t.namespace_name();
            agents_where(&c4.agents, |a| {
                a.metadata.namespace.as_deref() == Some(ns.as_str())
            })
        })
        .watches_stream(secret_events, move |s: PartialObjectMeta<Secret>| {
            secret_dependents(&s, &c5, &s6)
        })
        .watches_stream(deployment_events, move |d: Deployment| {
            deployment_dependents(&d, &c6, &s5)
        })
        .reconcile_all_on(shared.leadership.gained())
        .graceful_shutdown_on(shutdown_future(&shared.shutdown))
        .with_config(Config::default().concurrency(shared.concurrency))
        .run(reconcile, error_policy, ctx.clone());
    futures::join!(drain(CONTROLLER, controller), pool::run(ctx));
}

/// Reconcile on a new generation, finalizer changes and deletion — not on
/// our own status writes.
fn agent_changes(a: &Agent) -> Option<u64> {
    let mut h = DefaultHasher::new();
    a.metadata.generation.hash(&mut h);
    a.finalizers().hash(&mut h);
    a.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// What of a voice Deployment matters to its Agents.
fn deployment_key(d: &Deployment) -> u64 {
    let mut h = DefaultHasher::new();
    d.metadata.generation.hash(&mut h);
    if let Some(s) = &d.status {
        (s.observed_generation, s.replicas, s.ready_replicas).hash(&mut h);
    }
    h.finish()
}

fn agents_where(store: &Store<Agent>, f: impl Fn(&Agent) -> bool) -> Vec<ObjectRef<Agent>> {
    store
        .state()
        .iter()
        .filter(|a| f(a))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// The Agents a Secret matters to: those whose providers read it, and —
/// for the voice Secret — those whose pods read it.
fn secret_dependents(
    s: &PartialObjectMeta<Secret>,
    caches: &Caches,
    settings: &Settings,
) -> Vec<ObjectRef<Agent>> {
    let (ns, name) = (s.namespace().unwrap_or_default(), s.name_any());
    if name == settings.voice.secret {
        if ns == settings.pool.namespace {
            let tenants = TenantsByNamespace::new(&caches.tenants.state());
            return agents_where(&caches.agents, |a| pool::is_shared(a, &tenants));
        }
        return agents_where(&caches.agents, |a| {
            a.metadata.namespace.as_deref() == Some(ns.as_str())
        });
    }
    let providers: Vec<String> = caches
        .providers
        .state()
        .iter()
        .filter(|p| resolve::reads_secret(&p.spec, p.namespace().as_deref(), &ns, &name))
        .map(|p| p.name_any())
        .collect();
    let cluster: Vec<String> = caches
        .cluster
        .state()
        .iter()
        .filter(|p| resolve::reads_secret(&p.spec.provider, None, &ns, &name))
        .map(|p| p.name_any())
        .collect();
    if providers.is_empty() && cluster.is_empty() {
        return Vec::new();
    }
    agents_where(&caches.agents, |a| {
        providers.iter().any(|p| resolve::uses_provider(a, &ns, p))
            || cluster.iter().any(|p| resolve::uses_cluster_provider(a, p))
    })
}

/// The Agent owning a dedicated Deployment; for the pool, the shared Agents
/// whose status does not show its ready replicas yet.
fn deployment_dependents(
    d: &Deployment,
    caches: &Caches,
    settings: &Settings,
) -> Vec<ObjectRef<Agent>> {
    let ns = d.namespace().unwrap_or_default();
    if let Some(owner) = d
        .owner_references()
        .iter()
        .find(|o| o.kind == Agent::kind(&()) && o.api_version == Agent::api_version(&()))
    {
        return vec![ObjectRef::new(&owner.name).within(&ns)];
    }
    if ns == settings.pool.namespace && d.name_any() == settings.pool.name {
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let tenants = TenantsByNamespace::new(&caches.tenants.state());
        return agents_where(&caches.agents, |a| {
            pool::is_shared(a, &tenants)
                && a.status.as_ref().and_then(|s| s.ready_replicas) != Some(ready)
        });
    }
    Vec::new()
}

async fn reconcile(agent: Arc<Agent>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.shared.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    // Compiling against half-filled caches would report objects missing.
    if !ctx
        .dependencies_synced
        .iter()
        .all(|f| f.load(Ordering::SeqCst))
    {
        return Ok(Action::requeue(NOT_SYNCED));
    }
    let started = Instant::now();
    let ns = agent.namespace().unwrap_or_default();
    let api: Api<Agent> = Api::namespaced(ctx.shared.client.clone(), &ns);
    let result = finalizer::finalizer(&api, FINALIZER, Arc::clone(&agent), |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                FinalizerEvent::Apply(a) => pipeline::apply(&a, &ctx).await,
                FinalizerEvent::Cleanup(a) => cleanup(&a, &ctx).await,
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.shared
        .metrics
        .reconciled(CONTROLLER, result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(CONTROLLER, agent.as_ref());
    }
    result
}

fn error_policy(agent: Arc<Agent>, err: &Error, ctx: Arc<Context>) -> Action {
    report_failure(
        &ctx.shared,
        &ctx.recorder,
        &ctx.backoff,
        CONTROLLER,
        agent,
        err.category(),
        err,
        "Reconcile",
    )
}

/// Cleanup stage: the routes go (new calls to the numbers are no longer
/// answered by this Agent), calls in flight keep their version; children
/// go with the Agent by owner reference.
async fn cleanup(agent: &Agent, ctx: &Context) -> Result<Action, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let removed = routes::remove_agent(&ctx.db, &ns, &name).await?;
    let pruned = versions::prune(&ctx.db, &ns, &name, &[]).await?;
    ctx.applied.forget(&object_key(agent));
    ctx.pool_signal.notify_one();
    tracing::info!(agent = %object_key(agent), routes = removed, versions = pruned.len(), "agent removed");
    announce(
        ctx,
        agent,
        vec![status::Announcement {
            warning: false,
            reason: "RoutesRemoved".to_owned(),
            action: "Cleanup",
            note: format!(
                "removed {removed} phone routes and {} config versions",
                pruned.len()
            ),
        }],
    );
    Ok(Action::await_change())
}

/// Writes the status by server-side apply on the status subresource,
/// unless nothing would change, and announces each stage change.
pub(super) async fn write_status(
    agent: &Agent,
    report: &Report,
    ctx: &Context,
) -> Result<(), Error> {
    let desired = status::desired(agent, report, Timestamp::now());
    if !status::needs_write(agent.status.as_ref(), &desired) {
        return Ok(());
    }
    let api: Api<Agent> = Api::namespaced(
        ctx.shared.client.clone(),
        &agent.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": Agent::api_version(&()),
        "kind": Agent::kind(&()),
        "status": desired,
    });
    timed(api.patch_status(
        &agent.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await
    .map_err(Error::Status)?;
    announce(
        ctx,
        agent,
        status::announcements(agent.status.as_ref(), &desired),
    );
    Ok(())
}

/// Publishes Events in the background: they must not slow the pipeline.
pub(super) fn announce(ctx: &Context, agent: &Agent, announcements: Vec<status::Announcement>) {
    if announcements.is_empty() {
        return;
    }
    for a in &announcements {
        tracing::info!(agent = %object_key(agent), reason = %a.reason, action = a.action, warning = a.warning, "{}", a.note);
    }
    let recorder = ctx.recorder.clone();
    let reference = agent.object_ref(&());
    tokio::spawn(async move {
        for a in announcements {
            let event = Event {
                type_: if a.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: a.reason,
                note: Some(status::truncate(a.note)),
                action: a.action.to_owned(),
                secondary: None,
            };
            if let Err(err) = recorder.publish(&event, &reference).await {
                tracing::warn!(error = %err, "could not publish event");
            }
        }
    });
}

pub use pipeline::test_calls;

#[cfg(test)]
mod tests;
