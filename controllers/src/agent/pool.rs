//! The platform's shared voice pool: one Deployment in the operator's
//! namespace serving every Agent with `isolation: shared`, sized from their
//! summed demand, mounting copies of their credentials.
//!
//! Agent reconciles only signal that the pool may need resizing; one task
//! computes the pool from the caches at most every [`DEBOUNCE`] and applies
//! it when it changed, so a thousand shared Agents appearing at once cost a
//! handful of writes rather than a thousand.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use dialtone_crds::tenant::Isolation;
use dialtone_crds::{Agent, ClusterProvider, Provider, Tenant};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::build::{self, CredentialMount, PoolSettings, SharedDemand};
use super::names::{POOL_LABEL, label_value};
use super::resolve::{self, TenantsByNamespace, pool_mirrors, pool_mount};
use super::{Context, FIELD_MANAGER};
use crate::runtime::{shutdown_future, timed};

/// How long the sizer waits for more signals before computing the pool.
pub const DEBOUNCE: Duration = Duration::from_millis(250);
/// How long it waits before retrying a failed apply.
const RETRY: Duration = Duration::from_secs(5);
/// The controller name of the sizer in metrics and logs.
pub const CONTROLLER: &str = "voicepool";

/// Whether `agent` runs in the shared pool (and is not being deleted).
pub fn is_shared(agent: &Agent, tenants: &TenantsByNamespace) -> bool {
    shared_tenant(agent, tenants).is_some()
}

/// The Tenant of `agent` when the Agent runs in the shared pool.
fn shared_tenant<'t>(agent: &Agent, tenants: &'t TenantsByNamespace) -> Option<&'t Arc<Tenant>> {
    if agent.metadata.deletion_timestamp.is_some() {
        return None;
    }
    tenants
        .get(agent.metadata.namespace.as_deref().unwrap_or_default())
        .filter(|t| resolve::isolation(agent, t) == Isolation::Shared)
}

/// What the pool should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// Pool replicas.
    pub replicas: i32,
    /// Credential copies mounted by the pool pods.
    pub mounts: Vec<CredentialMount>,
    /// Names of the credential copies that must exist.
    pub mirrors: BTreeSet<String>,
    /// Shared Agents counted.
    pub agents: usize,
}

/// The pool for every shared Agent in the caches. Suspended Agents and
/// Tenants add no demand but keep their credentials mounted, so resuming
/// does not restart the pool.
pub fn plan(
    agents: &[Arc<Agent>],
    tenants: &[Arc<Tenant>],
    providers: &[Arc<Provider>],
    cluster: &[Arc<ClusterProvider>],
    pool: &PoolSettings,
) -> PoolPlan {
    let mut demands = Vec::new();
    let mut caps = BTreeMap::new();
    let mut mounts = BTreeSet::new();
    let mut mirrors = BTreeSet::new();
    let mut count = 0;
    let tenants = TenantsByNamespace::new(tenants);
    for agent in agents.iter() {
        let Some(tenant) = shared_tenant(agent, &tenants) else {
            continue;
        };
        let namespace = agent.namespace().unwrap_or_default();
        count += 1;
        let resolved: Vec<_> = resolve::role_refs(agent)
            .into_iter()
            .filter_map(|r| resolve::find(r, &namespace, providers, cluster))
            .collect();
        for m in pool_mirrors(&namespace, &resolved, &pool.name) {
            mounts.insert(pool_mount(&m));
            mirrors.insert(m.mirror);
        }
        if agent.spec.suspend || tenant.spec.suspend {
            continue;
        }
        let tenant_name = tenant.name_any();
        caps.insert(tenant_name.clone(), tenant.spec.limits.max_concurrent_calls);
        demands.push(SharedDemand {
            tenant: tenant_name,
            min_replicas: agent.spec.runtime.min_replicas,
            calls_per_pod: agent.spec.runtime.calls_per_pod,
        });
    }
    PoolPlan {
        replicas: build::pool_replicas(&demands, &caps, pool),
        mounts: mounts.into_iter().collect(),
        mirrors,
        agents: count,
    }
}

/// Runs the sizer until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let mut last: Option<u64> = None;
    let shutdown = shutdown_future(&ctx.shared.shutdown);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = ctx.pool_signal.notified() => {}
            () = &mut shutdown => break,
        }
        tokio::time::sleep(DEBOUNCE).await;
        if !ctx.shared.leadership.is_leader() {
            // Apply afresh after gaining leadership: another replica may
            // have written meanwhile.
            last = None;
            continue;
        }
        if let Err(err) = size_once(&ctx, &mut last).await {
            ctx.shared.metrics.failed(CONTROLLER, "ApplyFailed");
            tracing::warn!(controller = CONTROLLER, error = %err, retry_in = ?RETRY, "sizing the shared voice pool failed");
            let ctx = ctx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RETRY).await;
                ctx.pool_signal.notify_one();
            });
        }
    }
    tracing::info!(controller = CONTROLLER, "stopped");
}

/// Why the pool could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool's settings are invalid.
    #[error(transparent)]
    Invalid(#[from] build::InvalidRuntime),
    /// An API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was written.
        what: String,
        /// The API error.
        source: kube::Error,
    },
}

async fn size_once(ctx: &Context, last: &mut Option<u64>) -> Result<(), PoolError> {
    let started = std::time::Instant::now();
    let settings = &ctx.settings.pool;
    let plan = plan(
        &ctx.caches.agents.state(),
        &ctx.caches.tenants.state(),
        &ctx.caches.providers.state(),
        &ctx.caches.cluster.state(),
        settings,
    );
    let children = build::pool(settings, &ctx.settings.voice, plan.replicas, &plan.mounts)?;
    let fingerprint = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&children)
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    };
    let exists = ctx.caches.deployments.state().iter().any(|d| {
        d.namespace().as_deref() == Some(settings.namespace.as_str())
            && d.name_any() == settings.name
    });
    // No shared Agent has ever needed the pool: do not create it.
    let wanted = exists || plan.agents > 0;
    if wanted && (*last != Some(fingerprint) || !exists) {
        let client = ctx.shared.client.clone();
        let ns = settings.namespace.as_str();
        let build::PoolChildren {
            service_account,
            service,
            pdb,
            deployment,
        } = children;
        apply(
            &Api::<ServiceAccount>::namespaced(client.clone(), ns),
            &service_account,
        )
        .await?;
        apply(&Api::<Service>::namespaced(client.clone(), ns), &service).await?;
        apply(
            &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
            &pdb,
        )
        .await?;
        apply(&Api::<Deployment>::namespaced(client, ns), &deployment).await?;
        *last = Some(fingerprint);
        tracing::info!(
            controller = CONTROLLER,
            pool = %settings.name,
            replicas = plan.replicas,
            agents = plan.agents,
            credentials = plan.mounts.len(),
            "shared voice pool applied"
        );
    }
    remove_stale_mirrors(ctx, &plan.mirrors).await?;
    ctx.shared
        .metrics
        .reconciled(CONTROLLER, true, started.elapsed());
    Ok(())
}

async fn apply<K>(api: &Api<K>, obj: &K) -> Result<(), PoolError>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = obj.name_any();
    timed(api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    ))
    .await
    .map(drop)
    .map_err(|source| PoolError::Api {
        what: format!("applying {} {name}", K::kind(&())),
        source,
    })
}

/// Deletes the pool's credential copies no shared Agent uses any more.
async fn remove_stale_mirrors(ctx: &Context, wanted: &BTreeSet<String>) -> Result<(), PoolError> {
    let settings = &ctx.settings.pool;
    let pool_label = label_value(&settings.name);
    let stale: Vec<String> = ctx
        .caches
        .secrets
        .state()
        .iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(settings.namespace.as_str())
                && s.labels().get(POOL_LABEL) == Some(&pool_label)
                && !wanted.contains(&s.name_any())
        })
        .map(|s| s.name_any())
        .collect();
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &settings.namespace);
    for name in stale {
        match timed(api.delete(&name, &DeleteParams::default())).await {
            Ok(_) => {
                tracing::info!(controller = CONTROLLER, secret = %name, "removed an unused credential copy")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(PoolError::Api {
                    what: format!("deleting Secret {name}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::TenantSpec;
    use dialtone_crds::agent::AgentSpec;

    fn tenant(name: &str, isolation: &str, max_calls: i32) -> Arc<Tenant> {
        let spec: TenantSpec = serde_yaml::from_str(&format!(
            "displayName: {name}\nprofile: {{timezone: UTC}}\nisolation: {isolation}\nlimits: {{maxConcurrentCalls: {max_calls}}}\n"
        ))
        .expect("tenant");
        Arc::new(Tenant::new(name, spec))
    }

    fn agent(ns: &str, name: &str, yaml: &str) -> Arc<Agent> {
        let spec: AgentSpec = serde_yaml::from_str(yaml).expect("agent");
        let mut a = Agent::new(name, spec);
        a.metadata.namespace = Some(ns.to_owned());
        Arc::new(a)
    }

    fn settings() -> PoolSettings {
        PoolSettings {
            namespace: "dialtone-system".into(),
            name: "dialtone-voice-pool".into(),
            min_replicas: 2,
            max_replicas: 50,
            calls_per_pod: 50,
            cpu: "500m".into(),
            memory: "512Mi".into(),
        }
    }

    #[test]
    fn only_shared_agents_count_and_tenants_cap_their_demand() {
        let tenants = vec![
            tenant("a", "shared", 1000),
            tenant("b", "shared", 30),
            tenant("c", "dedicated", 1000),
        ];
        let provider: Arc<Provider> = {
            let spec = serde_yaml::from_str(
                "type: telephony\nvendor: twilio\ncredentialsSecretRef: {name: twilio-creds}\n",
            )
            .expect("provider");
            let mut p = Provider::new("twilio", spec);
            p.metadata.namespace = Some("tenant-a".into());
            Arc::new(p)
        };
        let agents = vec![
            // 4 × 25 = 100 calls
            agent(
                "tenant-a",
                "one",
                "objectives: [{name: x}]\nruntime: {minReplicas: 4, callsPerPod: 25}\nproviders: {telephony: {name: twilio}}\n",
            ),
            // 3 × 20 = 60 calls
            agent(
                "tenant-a",
                "two",
                "objectives: [{name: x}]\nruntime: {minReplicas: 3}\n",
            ),
            // 10 × 20 = 200, capped at 30
            agent(
                "tenant-b",
                "three",
                "objectives: [{name: x}]\nruntime: {minReplicas: 10, maxReplicas: 10}\n",
            ),
            // dedicated by its tenant
            agent(
                "tenant-c",
                "four",
                "objectives: [{name: x}]\nruntime: {minReplicas: 50, maxReplicas: 50}\n",
            ),
            // dedicated by override
            agent(
                "tenant-a",
                "five",
                "objectives: [{name: x}]\nruntime: {minReplicas: 50, maxReplicas: 50, isolation: dedicated}\n",
            ),
            // suspended: no demand
            agent(
                "tenant-a",
                "six",
                "objectives: [{name: x}]\nsuspend: true\nruntime: {minReplicas: 50, maxReplicas: 50}\n",
            ),
            // no tenant owns its namespace
            agent("elsewhere", "seven", "objectives: [{name: x}]\n"),
        ];
        let p = plan(&agents, &tenants, &[provider], &[], &settings());
        // 100 + 60 + 30 = 190 calls / 50 per pod = 4 pods.
        assert_eq!(p.replicas, 4);
        assert_eq!(p.agents, 4);
        assert_eq!(p.mounts.len(), 1);
        assert_eq!(p.mounts[0].scope, "tenant-a");
        assert_eq!(p.mirrors.len(), 1);
        assert!(p.mirrors.contains(&p.mounts[0].secret));
    }

    #[test]
    fn replicas_stay_within_the_pool_bounds() {
        let s = settings();
        let d = |tenant: &str, min: i32| SharedDemand {
            tenant: tenant.into(),
            min_replicas: min,
            calls_per_pod: 20,
        };
        assert_eq!(build::pool_replicas(&[], &BTreeMap::new(), &s), 2);
        assert_eq!(build::pool_replicas(&[d("a", 1)], &BTreeMap::new(), &s), 2);
        // 10 × 20 = 200 calls: 4 pods
        assert_eq!(build::pool_replicas(&[d("a", 10)], &BTreeMap::new(), &s), 4);
        // 201 calls: 5 pods (rounded up)
        let mut odd = vec![d("a", 10)];
        odd.push(SharedDemand {
            tenant: "b".into(),
            min_replicas: 1,
            calls_per_pod: 1,
        });
        assert_eq!(build::pool_replicas(&odd, &BTreeMap::new(), &s), 5);
        let huge: Vec<_> = (0..100).map(|i| d(&format!("t{i}"), 100)).collect();
        assert_eq!(build::pool_replicas(&huge, &BTreeMap::new(), &s), 50);
        let caps = BTreeMap::from([("a".to_owned(), 0)]);
        assert_eq!(build::pool_replicas(&[d("a", 10)], &caps, &s), 2);
    }
}
