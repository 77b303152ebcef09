//! Voice pods at the edges: an Agent's own (dedicated) or its share of the
//! pool, the pool's credential copies, and deleting what is no longer
//! wanted.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dialtone_crds::Tenant;
use dialtone_crds::agent::Agent;
use dialtone_crds::common::ConditionUpdate;
use dialtone_crds::tenant::Isolation;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::names::{configmap_name, short_version, voice_name};
use super::resolve::{self, Resolved};
use super::status::{self, Report};
use super::{Context, Error, FIELD_MANAGER, build};
use crate::runtime::{object_key, timed};
use crate::tenant::build::VOICE_SA;

/// Applied children are applied again after this long even when unchanged,
/// so drift (a deleted Service, an edited PodDisruptionBudget) is repaired.
pub const REAPPLY: Duration = Duration::from_secs(600);

/// What was last applied for each Agent, so an unchanged Agent costs no
/// writes (reconciles triggered by its Deployment's status are frequent).
#[derive(Default)]
pub struct AppliedCache {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl AppliedCache {
    /// Whether `fingerprint` was applied for `key` less than [`REAPPLY`] ago.
    pub fn is_fresh(&self, key: &str, fingerprint: u64, now: Instant) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some_and(|(f, at)| *f == fingerprint && now.duration_since(*at) < REAPPLY)
    }

    /// Records that `fingerprint` was applied for `key` at `now`.
    pub fn record(&self, key: &str, fingerprint: u64, now: Instant) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_owned(), (fingerprint, now));
    }

    /// Forgets `key` (its children are gone or no longer ours to apply).
    pub fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// Runs the voice pods the Agent's isolation asks for and reports them.
pub(super) async fn provision(
    agent: &Agent,
    tenant: &Tenant,
    resolved: &[Resolved<'_>],
    ctx: &Context,
    report: &mut Report,
) -> Result<(), Error> {
    let ns = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let key = object_key(agent);
    let deployment_name = voice_name(&name);
    let update = match resolve::isolation(agent, tenant) {
        Isolation::Dedicated => {
            let mounts = match resolve::dedicated_mounts(&ns, resolved) {
                Ok(m) => m,
                Err(e) => {
                    report.updates.push(ConditionUpdate::falsy(
                        status::PROVISIONED,
                        "CredentialsNotMountable",
                        e.to_string(),
                    ));
                    return Ok(());
                }
            };
            let children = match build::dedicated(
                &deployment_name,
                &ns,
                &tenant.name_any(),
                &name,
                &agent.spec.runtime,
                &mounts,
                &ctx.settings.voice,
                VOICE_SA,
                build::owner_ref(agent),
            ) {
                Ok(c) => c,
                Err(e) => {
                    report.updates.push(ConditionUpdate::falsy(
                        status::PROVISIONED,
                        "InvalidRuntime",
                        e.to_string(),
                    ));
                    return Ok(());
                }
            };
            let existing = find_deployment(ctx, &ns, &deployment_name);
            let fingerprint = fingerprint(&children);
            let now = Instant::now();
            if existing.is_none() || !ctx.applied.is_fresh(&key, fingerprint, now) {
                apply_dedicated(&ns, children, ctx).await?;
                ctx.applied.record(&key, fingerprint, now);
            }
            // A move from the shared pool shrinks it.
            ctx.pool_signal.notify_one();
            let (ready, wanted) =
                replicas(existing.as_deref(), agent.spec.runtime.min_replicas.max(1));
            report.ready_replicas = Some(ready);
            status::provisioned(
                ready,
                wanted,
                &format!("Deployment {ns}/{deployment_name}"),
                missing_voice_secret(ctx, &ns),
            )
        }
        Isolation::Shared => {
            if find_deployment(ctx, &ns, &deployment_name).is_some_and(|d| owned_by(&d, agent)) {
                remove_dedicated(&ns, &deployment_name, ctx).await?;
            }
            ctx.applied.forget(&key);
            let pool = &ctx.settings.pool;
            for plan in resolve::pool_mirrors(&ns, resolved, &pool.name) {
                mirror(&plan, ctx).await?;
            }
            ctx.pool_signal.notify_one();
            let existing = find_deployment(ctx, &pool.namespace, &pool.name);
            let (ready, wanted) = replicas(existing.as_deref(), pool.min_replicas.max(1));
            report.ready_replicas = Some(ready);
            status::provisioned(
                ready,
                wanted,
                &format!("shared pool {}/{}", pool.namespace, pool.name),
                missing_voice_secret(ctx, &pool.namespace),
            )
        }
    };
    report.updates.push(update);
    Ok(())
}

fn find_deployment(ctx: &Context, ns: &str, name: &str) -> Option<Arc<Deployment>> {
    ctx.caches
        .deployments
        .state()
        .into_iter()
        .find(|d| d.namespace().as_deref() == Some(ns) && d.name_any() == name)
}

fn owned_by(d: &Deployment, agent: &Agent) -> bool {
    let uid = agent.uid();
    d.owner_references()
        .iter()
        .any(|o| Some(&o.uid) == uid.as_ref())
}

/// `(ready, wanted)` replicas of a Deployment.
fn replicas(d: Option<&Deployment>, default_wanted: i32) -> (i32, i32) {
    let status = d.and_then(|d| d.status.as_ref());
    let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let wanted = d
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(default_wanted);
    (ready, wanted)
}

/// `ns/name` of the voice Secret when it is missing from `ns`.
fn missing_voice_secret(ctx: &Context, ns: &str) -> Option<String> {
    let secret = &ctx.settings.voice.secret;
    let present = ctx
        .caches
        .secrets
        .state()
        .iter()
        .any(|s| s.namespace().as_deref() == Some(ns) && &s.name_any() == secret);
    (!present).then(|| format!("{ns}/{secret}"))
}

fn fingerprint<T: Serialize>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

pub(super) async fn ssa<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
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

async fn apply_dedicated(
    ns: &str,
    children: build::DedicatedChildren,
    ctx: &Context,
) -> Result<(), Error> {
    let build::DedicatedChildren {
        deployment,
        service,
        pdb,
        hpa,
    } = children;
    let client = ctx.shared.client.clone();
    ssa(&Api::<Service>::namespaced(client.clone(), ns), &service).await?;
    ssa(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        &pdb,
    )
    .await?;
    ssa(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        &deployment,
    )
    .await?;
    ssa(
        &Api::<HorizontalPodAutoscaler>::namespaced(client, ns),
        &hpa,
    )
    .await?;
    Ok(())
}

/// Removes a dedicated Agent's pods after it moved to the shared pool.
async fn remove_dedicated(ns: &str, name: &str, ctx: &Context) -> Result<(), Error> {
    let client = ctx.shared.client.clone();
    delete(
        &Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns),
        name,
    )
    .await?;
    delete(&Api::<Deployment>::namespaced(client.clone(), ns), name).await?;
    delete(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        name,
    )
    .await?;
    delete(&Api::<Service>::namespaced(client, ns), name).await?;
    Ok(())
}

pub(super) async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match timed(api.delete(name, &DeleteParams::background())).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            what: format!("{} {name}", K::kind(&Default::default())),
            source,
        }),
    }
}

/// Copies one provider's credentials into the pool's namespace, unless the
/// copy is already of the source's current version.
async fn mirror(plan: &resolve::MirrorPlan, ctx: &Context) -> Result<(), Error> {
    let pool = &ctx.settings.pool;
    let secrets = ctx.caches.secrets.state();
    let version_of = |ns: &str, name: &str| {
        secrets
            .iter()
            .find(|s| s.namespace().as_deref() == Some(ns) && s.name_any() == name)
            .map(|s| {
                (
                    s.resource_version().unwrap_or_default(),
                    s.annotations().clone(),
                )
            })
    };
    let Some((source_version, _)) = version_of(&plan.source_namespace, &plan.source) else {
        // No source yet: the Provider reports it; the Secret watch brings
        // the Agent back when it appears.
        return Ok(());
    };
    let current = version_of(&pool.namespace, &plan.mirror)
        .and_then(|(_, a)| a.get(build::MIRROR_VERSION_ANNOTATION).cloned());
    if current.as_deref() == Some(source_version.as_str()) {
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &plan.source_namespace);
    let what = format!("Secret {}/{}", plan.source_namespace, plan.source);
    let Some(source) = timed(api.get_opt(&plan.source))
        .await
        .map_err(|source| Error::Read {
            what: what.clone(),
            source,
        })?
    else {
        return Ok(());
    };
    let copy = build::mirror(
        pool,
        &plan.scope,
        &plan.provider,
        (
            &plan.source_namespace,
            &plan.source,
            &source.resource_version().unwrap_or_default(),
        ),
        &source.data.unwrap_or_default(),
        &plan.items,
    );
    ssa(
        &Api::<Secret>::namespaced(ctx.shared.client.clone(), &pool.namespace),
        &copy,
    )
    .await?;
    Ok(())
}

/// Deletes the ConfigMaps of pruned versions.
pub(super) async fn delete_config_maps(
    ns: &str,
    agent: &str,
    hashes: &[String],
    ctx: &Context,
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.shared.client.clone(), ns);
    for hash in hashes {
        delete(&api, &configmap_name(agent, short_version(hash))).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_children_are_skipped_until_they_change_or_age() {
        let cache = AppliedCache::default();
        let t0 = Instant::now();
        assert!(!cache.is_fresh("ns/a", 1, t0));
        cache.record("ns/a", 1, t0);
        assert!(cache.is_fresh("ns/a", 1, t0 + Duration::from_secs(1)));
        assert!(!cache.is_fresh("ns/a", 2, t0), "changed children");
        assert!(!cache.is_fresh("ns/a", 1, t0 + REAPPLY), "drift repair");
        assert!(!cache.is_fresh("ns/b", 1, t0));
        cache.forget("ns/a");
        assert!(!cache.is_fresh("ns/a", 1, t0));
    }

    #[test]
    fn replicas_come_from_the_deployment() {
        assert_eq!(replicas(None, 2), (0, 2));
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"readyReplicas": 2},
        }))
        .expect("deployment");
        assert_eq!(replicas(Some(&d), 1), (2, 3));
    }
}
