//! What every controller shares: the client, metrics, leadership, shutdown,
//! per-object failure backoff, API-call timeouts and event publishing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::Metrics;
use crate::events::{Event, EventRecorder, EventType};

/// Every API call of a reconcile gets this long before it counts as failed.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether this replica currently leads. Cheap to clone and to query.
#[derive(Clone, Debug)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// Follows the leader-election loop's channel.
    pub fn new(rx: watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// Whether this replica leads right now. Reconcilers check it before any
    /// write; a replica that loses leadership exits.
    pub fn is_leader(&self) -> bool {
        *self.0.borrow()
    }

    /// Yields once every time leadership is gained (including at start, when
    /// already leading), so the controller can resync everything it cached
    /// while standing by.
    pub fn gained(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.0.clone();
        futures::stream::unfold((rx, false), |(mut rx, mut was)| async move {
            loop {
                let now = *rx.borrow_and_update();
                if now && !was {
                    return Some(((), (rx, true)));
                }
                was = now;
                rx = wait_change(rx).await?;
            }
        })
    }
}

async fn wait_change(mut rx: watch::Receiver<bool>) -> Option<watch::Receiver<bool>> {
    rx.changed().await.ok().map(|()| rx)
}

/// Resolves once `rx` reads `true` (or its sender is gone).
pub fn shutdown_future(
    rx: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx.clone();
    async move {
        loop {
            if *rx.borrow_and_update() {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// What every controller gets from the operator binary.
#[derive(Clone)]
pub struct Shared {
    /// The Kubernetes client.
    pub client: Client,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// Whether this replica leads.
    pub leadership: Leadership,
    /// Flips to `true` on SIGTERM/SIGINT: controllers drain and stop.
    pub shutdown: watch::Receiver<bool>,
    /// This replica's identity (pod name), reported on Events.
    pub instance: String,
    /// How many objects one controller reconciles at once.
    pub concurrency: u16,
    /// A label selector limiting which Tenants, Providers,
    /// ClusterProviders and Objectives this operator manages (`None`: all). Lets several
    /// operator installations (canaries, end-to-end tests) share a cluster.
    pub selector: Option<String>,
}

impl Shared {
    /// The watch configuration of the primary resources.
    pub fn watch_config(&self) -> watcher::Config {
        match self.selector.as_deref() {
            Some(sel) if !sel.is_empty() => watcher::Config::default().labels(sel),
            _ => watcher::Config::default(),
        }
    }

    /// An event recorder reporting as `controller`.
    pub fn recorder(&self, controller: &str) -> EventRecorder {
        EventRecorder::new(self.client.clone(), controller, &self.instance)
    }
}

/// Per-object consecutive failures, so `error_policy` backs off
/// exponentially (5 s, 10 s, 20 s … 5 min) and a success resets it. Keyed
/// `<controller>:<object key>`: [`failed`](Self::failed) and
/// [`succeeded`](Self::succeeded) build that key, so a reset cannot miss.
#[derive(Default)]
pub struct FailureBackoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl FailureBackoff {
    /// The delay before `controller` retries `obj` after one more failure.
    pub fn failed<K: Resource>(&self, controller: &str, obj: &K) -> Duration {
        self.next_delay(&backoff_key(controller, obj))
    }

    /// Forgets `obj`'s failures after `controller` reconciled it.
    pub fn succeeded<K: Resource>(&self, controller: &str, obj: &K) {
        self.reset(&backoff_key(controller, obj));
    }

    /// The delay before retrying `key` after one more failure.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(key);
    }
}

/// 5 s doubled per consecutive failure, at most 5 minutes.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs(5u64.saturating_mul(1u64 << exp)).min(Duration::from_secs(300))
}

fn backoff_key<K: Resource>(controller: &str, obj: &K) -> String {
    format!("{controller}:{}", object_key(obj))
}

/// A reconcile-level key for an object: `namespace/name` or `name`.
pub fn object_key<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", obj.meta().name.as_deref().unwrap_or_default()),
        None => obj.meta().name.clone().unwrap_or_default(),
    }
}

/// What every controller does when a reconcile fails: counts it by
/// category, backs off per object (5 s doubling to 5 min), logs it and leaves
/// a Warning Event on the object. Returns when to retry.
#[allow(clippy::too_many_arguments)]
pub fn report_failure<K>(
    shared: &Shared,
    recorder: &EventRecorder,
    backoff: &FailureBackoff,
    controller: &'static str,
    obj: Arc<K>,
    category: &'static str,
    error: &dyn std::error::Error,
    action: &'static str,
) -> Action
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    shared.metrics.failed(controller, category);
    let key = object_key(obj.as_ref());
    let delay = backoff.failed(controller, obj.as_ref());
    tracing::warn!(controller, object = %key, category, error = %error, retry_in = ?delay, "reconcile failed");
    let recorder = recorder.clone();
    let note = error.to_string();
    tokio::spawn(async move {
        publish(
            &recorder,
            obj.as_ref(),
            EventType::Warning,
            category,
            action,
            note,
        )
        .await;
    });
    Action::requeue(delay)
}

/// Drives a controller's result stream to its end. A failed reconcile is
/// reported by [`report_failure`] and an object gone from the cache is
/// routine, so those are debug; a failing watch (or scheduler) means the
/// controller sees no changes until it recovers, so that is a warning.
pub async fn drain<K, E1, E2>(
    controller: &'static str,
    stream: impl Stream<Item = Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E1, E2>>>,
) where
    K: Resource,
    E1: std::error::Error + 'static,
    E2: std::error::Error + 'static,
{
    use kube::runtime::controller::Error as ControllerError;
    stream
        .for_each(|res| {
            match res {
                Ok(_) => {}
                Err(
                    err @ (ControllerError::ReconcilerFailed(..)
                    | ControllerError::ObjectNotFound(_)),
                ) => tracing::debug!(controller, error = %err, "controller event"),
                Err(err) => tracing::warn!(controller, error = %err, "watch failed; retrying"),
            }
            futures::future::ready(())
        })
        .await;
    tracing::info!(controller, "stopped");
}

/// Runs one API call with [`API_TIMEOUT`]. A timeout becomes a
/// `kube::Error::Service` so callers keep a single error type.
pub async fn timed<T>(
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(result) => result,
        Err(elapsed) => Err(kube::Error::Service(Box::new(elapsed))),
    }
}

/// Publishes an event about `obj`; a failure to publish is logged, never
/// fatal. `note` must never contain a secret value.
pub async fn publish<K>(
    recorder: &EventRecorder,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note, 1000)),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(err) = recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %err, reason, "could not publish event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Sets `flag` once `store` has its first full list.
///
/// `Store::wait_until_ready` wakes only one waiter (the controller's own
/// runner also waits on it), so a second waiter re-polls every 500 ms.
pub fn mark_synced<K>(store: Store<K>, flag: std::sync::Arc<std::sync::atomic::AtomicBool>)
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    });
}

/// A cached, backoff-wrapped watch of `api` whose objects lose their
/// `managedFields` before they are stored (they are most of an object's
/// bytes and no reconciler reads them).
pub fn pruned_watch<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config.page_size(100))
        .default_backoff()
        .modify(|obj: &mut K| {
            obj.managed_fields_mut().clear();
        })
        .reflect(writer)
        .applied_objects()
        .boxed();
    (reader, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(50), Duration::from_secs(300));
        let b = FailureBackoff::default();
        assert_eq!(b.next_delay("a"), Duration::from_secs(5));
        assert_eq!(b.next_delay("a"), Duration::from_secs(10));
        b.reset("a");
        assert_eq!(b.next_delay("a"), Duration::from_secs(5));
    }

    /// Records the level of every event logged while it is the default.
    struct Levels(Arc<Mutex<Vec<tracing::Level>>>);

    impl tracing::Subscriber for Levels {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            self.0
                .lock()
                .expect("not poisoned")
                .push(*event.metadata().level());
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn a_failing_watch_is_a_warning_and_a_failed_reconcile_is_not_logged_twice() {
        use k8s_openapi::api::core::v1::ConfigMap;
        use kube::runtime::controller::Error as ControllerError;

        let levels = Arc::new(Mutex::new(Vec::new()));
        let _default = tracing::subscriber::set_default(Levels(Arc::clone(&levels)));
        let gone = || Box::new(ObjectRef::<ConfigMap>::new("gone").within("ns").erase());
        let results: Vec<Result<(ObjectRef<ConfigMap>, Action), _>> = vec![
            Err(ControllerError::<std::io::Error, _>::QueueError(
                watcher::Error::NoResourceVersion,
            )),
            Err(ControllerError::ReconcilerFailed(
                std::io::Error::other("already reported"),
                gone(),
            )),
            Err(ControllerError::ObjectNotFound(gone())),
        ];
        drain("test", futures::stream::iter(results)).await;
        let levels = levels.lock().expect("not poisoned").clone();
        use tracing::Level;
        // The watch error, the two routine ones, then "stopped".
        assert_eq!(
            levels,
            [Level::WARN, Level::DEBUG, Level::DEBUG, Level::INFO]
        );
    }

    #[tokio::test]
    async fn gained_fires_on_each_gain() {
        let (tx, rx) = watch::channel(false);
        let leadership = Leadership::new(rx);
        let mut gained = Box::pin(leadership.gained());
        assert!(!leadership.is_leader());
        tx.send(true).expect("send");
        tokio::time::timeout(Duration::from_secs(1), gained.next())
            .await
            .expect("first gain")
            .expect("item");
        assert!(leadership.is_leader());
    }
}
