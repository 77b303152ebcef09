//! The Provider and ClusterProvider controllers: resolve the credentials
//! Secret, validate vendor settings, write `Ready`.
//!
//! Secrets are watched metadata-only (no Secret value is ever cached in the
//! operator): one watch over every namespace feeds both controllers, and each
//! Secret event is mapped to the providers referencing it by scanning the
//! providers' reflector stores (`O(providers)` per Secret event). The
//! reconcile then reads the one Secret it needs.

pub mod evaluate;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::events::{EventRecorder, EventType};
use dialtone_crds::common::{READY, merge_conditions};
use dialtone_crds::{ClusterProvider, Provider, ProviderSpec, ProviderStatus};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::evaluate::{Evaluation, SecretLookup};
use crate::runtime::{
    FailureBackoff, Shared, drain, mark_synced, object_key, pruned_watch, publish, report_failure,
    shutdown_future, timed,
};

/// The field manager of status writes, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dialtone-provider-controller";
/// How often a provider is re-validated even without a change.
pub const RESYNC: Duration = Duration::from_secs(1800);

/// Provider and ClusterProvider, seen alike.
pub trait ProviderResource:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + Debug + Send + Sync + 'static
{
    /// The controller's name in metrics and logs.
    const CONTROLLER: &'static str;
    /// The provider spec.
    fn provider_spec(&self) -> &ProviderSpec;
    /// The current status.
    fn provider_status(&self) -> Option<&ProviderStatus>;
    /// The namespace of the credentials Secret.
    fn secret_namespace(&self) -> Option<String>;
    /// The API to write this object's status through.
    fn api_for(&self, client: Client) -> Api<Self>;

    /// Whether this provider reads Secret `namespace/name`.
    fn references(&self, namespace: &str, name: &str) -> bool {
        self.provider_spec()
            .credentials_secret_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
            && self.secret_namespace().as_deref() == Some(namespace)
    }
}

impl ProviderResource for Provider {
    const CONTROLLER: &'static str = "provider";
    fn provider_spec(&self) -> &ProviderSpec {
        &self.spec
    }
    fn provider_status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.namespace()
    }
    fn api_for(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl ProviderResource for ClusterProvider {
    const CONTROLLER: &'static str = "clusterprovider";
    fn provider_spec(&self) -> &ProviderSpec {
        &self.spec.provider
    }
    fn provider_status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.spec
            .provider
            .credentials_secret_ref
            .as_ref()
            .and_then(|r| r.namespace.clone())
    }
    fn api_for(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

/// Everything that can fail in a provider reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the credentials Secret failed (not: it is missing).
    #[error("reading Secret {secret}: {source}")]
    SecretRead {
        /// `namespace/name` of the Secret.
        secret: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// A CamelCase category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::SecretRead { .. } => "SecretReadFailed",
            Error::Status(_) => "StatusWriteFailed",
        }
    }
}

/// The controllers' context.
pub struct Context {
    shared: Shared,
    recorder: EventRecorder,
    backoff: FailureBackoff,
}

/// Runs the Provider and ClusterProvider controllers and their shared Secret
/// watch until shutdown.
pub async fn run(
    shared: Shared,
    providers_synced: Arc<AtomicBool>,
    cluster_synced: Arc<AtomicBool>,
) {
    let client = shared.client.clone();
    let (pstore, providers) =
        pruned_watch(Api::<Provider>::all(client.clone()), shared.watch_config());
    let (cstore, cluster) = pruned_watch(
        Api::<ClusterProvider>::all(client.clone()),
        shared.watch_config(),
    );
    // Our own status writes do not bump the generation.
    let providers = providers.predicate_filter(predicates::generation, PredicateConfig::default());
    let cluster = cluster.predicate_filter(predicates::generation, PredicateConfig::default());
    mark_synced(pstore.clone(), providers_synced);
    mark_synced(cstore.clone(), cluster_synced);

    let (ptx, prx) = mpsc::unbounded();
    let (ctx_tx, ctx_rx) = mpsc::unbounded();
    let secrets = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default().page_size(100),
    )
    .default_backoff()
    .touched_objects();
    let fan_out = fan_out_secrets(secrets, pstore.clone(), cstore.clone(), ptx, ctx_tx)
        .take_until(shutdown_future(&shared.shutdown))
        .for_each(|()| futures::future::ready(()));

    let ctx = Arc::new(Context {
        recorder: shared.recorder(FIELD_MANAGER),
        shared: shared.clone(),
        backoff: FailureBackoff::default(),
    });
    let provider_ctl = controller(providers, pstore, prx, &shared).run(
        reconcile::<Provider>,
        error_policy,
        ctx.clone(),
    );
    let cluster_ctl = controller(cluster, cstore, ctx_rx, &shared).run(
        reconcile::<ClusterProvider>,
        error_policy,
        ctx,
    );
    futures::join!(
        drain(Provider::CONTROLLER, provider_ctl),
        drain(ClusterProvider::CONTROLLER, cluster_ctl),
        fan_out
    );
    tracing::info!(controller = "provider", "stopped");
}

fn controller<K: ProviderResource>(
    stream: impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    store: Store<K>,
    secret_triggers: mpsc::UnboundedReceiver<ObjectRef<K>>,
    shared: &Shared,
) -> Controller<K> {
    Controller::for_stream(stream, store)
        .reconcile_on(secret_triggers)
        .reconcile_all_on(shared.leadership.gained())
        .graceful_shutdown_on(shutdown_future(&shared.shutdown))
        .with_config(Config::default().concurrency(shared.concurrency))
}

/// Maps every touched Secret to the providers that reference it.
fn fan_out_secrets(
    secrets: impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static,
    providers: Store<Provider>,
    cluster: Store<ClusterProvider>,
    ptx: mpsc::UnboundedSender<ObjectRef<Provider>>,
    ctx: mpsc::UnboundedSender<ObjectRef<ClusterProvider>>,
) -> impl Stream<Item = ()> + Send + 'static {
    secrets.map(move |event| match event {
        Ok(secret) => {
            let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            for p in providers
                .state()
                .iter()
                .filter(|p| p.references(&ns, &name))
            {
                let _ = ptx.unbounded_send(ObjectRef::from_obj(p.as_ref()));
            }
            for p in cluster.state().iter().filter(|p| p.references(&ns, &name)) {
                let _ = ctx.unbounded_send(ObjectRef::from_obj(p.as_ref()));
            }
        }
        Err(err) => tracing::warn!(error = %err, "Secret watch error; retrying with backoff"),
    })
}

async fn reconcile<K: ProviderResource>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.shared.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = reconcile_inner(obj.as_ref(), &ctx).await;
    ctx.shared
        .metrics
        .reconciled(K::CONTROLLER, result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.backoff.succeeded(K::CONTROLLER, obj.as_ref());
    }
    result
}

async fn reconcile_inner<K: ProviderResource>(obj: &K, ctx: &Context) -> Result<Action, Error> {
    let spec = obj.provider_spec();
    let secret = fetch_secret(obj, ctx).await?;
    let lookup = match (&secret, spec.vendor.required_secret_keys().is_empty()) {
        (_, true) => SecretLookup::NotRequired,
        (Fetched::Found(s), false) => SecretLookup::Found(s),
        (Fetched::NotFound { namespace, name }, false) => {
            SecretLookup::NotFound { namespace, name }
        }
        (Fetched::NoReference, false) => SecretLookup::NoReference,
        (Fetched::NoNamespace, false) => SecretLookup::NoNamespace,
    };
    let evaluation = evaluate::evaluate(spec, lookup);
    drop(secret);
    write_status(obj, &evaluation, ctx).await?;
    Ok(Action::requeue(RESYNC))
}

enum Fetched {
    NoReference,
    NoNamespace,
    NotFound { namespace: String, name: String },
    Found(Box<Secret>),
}

async fn fetch_secret<K: ProviderResource>(obj: &K, ctx: &Context) -> Result<Fetched, Error> {
    if obj.provider_spec().vendor.required_secret_keys().is_empty() {
        return Ok(Fetched::NoReference);
    }
    let Some(reference) = obj.provider_spec().credentials_secret_ref.as_ref() else {
        return Ok(Fetched::NoReference);
    };
    let Some(namespace) = obj.secret_namespace() else {
        return Ok(Fetched::NoNamespace);
    };
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), &namespace);
    match timed(api.get_opt(&reference.name)).await {
        Ok(Some(secret)) => Ok(Fetched::Found(Box::new(secret))),
        Ok(None) => Ok(Fetched::NotFound {
            namespace,
            name: reference.name.clone(),
        }),
        Err(source) => Err(Error::SecretRead {
            secret: format!("{namespace}/{}", reference.name),
            source,
        }),
    }
}

/// The status the controller owns, from an evaluation.
pub fn desired_status<K: ProviderResource>(
    obj: &K,
    evaluation: &Evaluation,
    now: Timestamp,
) -> ProviderStatus {
    let generation = obj.meta().generation;
    let current = obj
        .provider_status()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    ProviderStatus {
        observed_generation: generation,
        conditions: merge_conditions(current, &evaluation.updates, generation, now),
        secret_resource_version: evaluation.secret_resource_version.clone(),
    }
}

async fn write_status<K: ProviderResource>(
    obj: &K,
    evaluation: &Evaluation,
    ctx: &Context,
) -> Result<(), Error> {
    let desired = desired_status(obj, evaluation, Timestamp::now());
    if obj.provider_status() == Some(&desired) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    let api = obj.api_for(ctx.shared.client.clone());
    timed(api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await
    .map_err(Error::Status)?;
    announce_ready_change(obj, &desired, &ctx.recorder).await;
    Ok(())
}

async fn announce_ready_change<K: ProviderResource>(
    obj: &K,
    after: &ProviderStatus,
    rec: &EventRecorder,
) {
    let ready = |s: Option<&ProviderStatus>| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let Some(now) = after.conditions.iter().find(|c| c.type_ == READY) else {
        return;
    };
    if ready(obj.provider_status()) != Some((now.status.clone(), now.reason.clone())) {
        let type_ = if now.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        tracing::info!(
            controller = K::CONTROLLER,
            provider = %object_key(obj),
            ready = %now.status,
            reason = %now.reason,
            "provider readiness changed"
        );
        publish(
            rec,
            obj,
            type_,
            &now.reason,
            "Validate",
            now.message.clone(),
        )
        .await;
    }
}

fn error_policy<K: ProviderResource>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    report_failure(
        &ctx.shared,
        &ctx.recorder,
        &ctx.backoff,
        K::CONTROLLER,
        obj,
        err.category(),
        err,
        "Validate",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::ProviderSpec;

    fn provider(ns: &str, yaml: &str) -> Provider {
        let spec: ProviderSpec = serde_yaml::from_str(yaml).expect("spec");
        let mut p = Provider::new("voice", spec);
        p.metadata.namespace = Some(ns.to_owned());
        p.metadata.generation = Some(2);
        p
    }

    #[test]
    fn provider_references_secret_in_its_namespace() {
        let p = provider(
            "acme",
            "type: telephony\nvendor: twilio\ncredentialsSecretRef: { name: twilio }\n",
        );
        assert!(p.references("acme", "twilio"));
        assert!(!p.references("other", "twilio"));
        assert!(!p.references("acme", "other"));
    }

    #[test]
    fn cluster_provider_references_named_namespace() {
        let spec: ProviderSpec = serde_yaml::from_str(
            "type: telephony\nvendor: twilio\ncredentialsSecretRef: { name: twilio, namespace: platform }\n",
        )
        .expect("spec");
        let cp = ClusterProvider::new(
            "shared",
            dialtone_crds::provider::ClusterProviderSpec { provider: spec },
        );
        assert!(cp.references("platform", "twilio"));
        assert!(!cp.references("acme", "twilio"));
    }

    #[test]
    fn unchanged_evaluation_gives_identical_status() {
        let mut p = provider("acme", "type: stt\nvendor: builtin\n");
        let eval = evaluate::evaluate(&p.spec, SecretLookup::NotRequired);
        let t0 = Timestamp::from_second(100).expect("t");
        let first = desired_status(&p, &eval, t0);
        p.status = Some(first.clone());
        let second = desired_status(&p, &eval, Timestamp::from_second(900).expect("t"));
        assert_eq!(p.status.as_ref(), Some(&second));
        assert_eq!(first.observed_generation, Some(2));
    }

    #[test]
    fn error_categories() {
        let e = Error::Status(kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(e.category(), "StatusWriteFailed");
    }
}
