//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! - Acquire when the Lease is free (no holder) or expired. Expiry is judged
//!   by *local* observation, as client-go does: a record (holder, renewTime)
//!   that has not changed for `leaseDurationSeconds` since this replica first
//!   saw it is expired, so clock skew between replicas does not matter.
//! - Every write is a `replace` carrying the resourceVersion read, so two
//!   candidates can never both win (the loser gets 409 Conflict).
//! - The leader renews every `renew` and gives up if it could not renew for
//!   `renew_deadline` (2/3 of the lease duration) — before any standby can
//!   consider the Lease expired. Losing leadership ends the process.
//! - On shutdown the leader releases the Lease (empty holder), so a standby
//!   that watches the Lease takes over at once instead of waiting for expiry.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use dialtone_controllers::Metrics;

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity.
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub duration: Duration,
    /// How often the leader renews (and a standby retries).
    pub renew: Duration,
}

impl LeaseConfig {
    /// How long the leader may fail to renew before it steps down.
    pub fn renew_deadline(&self) -> Duration {
        self.duration.mul_f64(2.0 / 3.0).max(self.renew)
    }
}

/// Why leader election ended other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another replica holds the Lease now, or it could not be renewed in time.
    #[error("lost leadership of Lease {0}")]
    Lost(String),
}

/// What a standby remembers of the Lease record it last saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    holder: Option<String>,
    renew_time: Option<String>,
    duration: Duration,
    since: Instant,
}

/// What to do with a Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Take it (free, expired, or already ours).
    Acquire,
    /// Someone else holds it; look again after this long at the latest.
    Wait(Duration),
}

fn record(spec: Option<&LeaseSpec>) -> (Option<String>, Option<String>, Option<i32>) {
    let holder = spec
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty());
    let renew = spec
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string());
    (holder, renew, spec.and_then(|s| s.lease_duration_seconds))
}

/// Updates what was observed of the Lease: the clock restarts whenever the
/// record changes.
pub fn observe(
    previous: Option<&Observed>,
    spec: Option<&LeaseSpec>,
    default: Duration,
    now: Instant,
) -> Observed {
    let (holder, renew_time, secs) = record(spec);
    let duration = secs
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default);
    match previous {
        Some(p) if p.holder == holder && p.renew_time == renew_time => Observed {
            duration,
            ..p.clone()
        },
        _ => Observed {
            holder,
            renew_time,
            duration,
            since: now,
        },
    }
}

/// Whether to acquire the Lease observed as `obs`.
pub fn decide(obs: &Observed, me: &str, now: Instant) -> Decision {
    match obs.holder.as_deref() {
        None => Decision::Acquire,
        Some(h) if h == me => Decision::Acquire,
        Some(_) => {
            let expires = obs.since + obs.duration;
            if now >= expires {
                Decision::Acquire
            } else {
                Decision::Wait(expires - now)
            }
        }
    }
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Runs leader election until `shutdown`. Sends `true` on `tx` while leading.
/// Returns `Ok` after a clean shutdown (the Lease released), `Err` when
/// leadership was lost.
pub async fn run(
    client: Client,
    cfg: LeaseConfig,
    tx: watch::Sender<bool>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
    controllers_stopped: impl std::future::Future<Output = ()>,
) -> Result<(), LeaderError> {
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let changed = std::sync::Arc::new(Notify::new());
    let watch_task = tokio::spawn(watch_lease(api.clone(), cfg.name.clone(), changed.clone()));
    let mut observed: Option<Observed> = None;

    // Standby.
    let mut held: Lease = loop {
        if *shutdown.borrow() {
            watch_task.abort();
            return Ok(());
        }
        let wait = match try_acquire(&api, &cfg, &mut observed).await {
            Ok(Ok(lease)) => break lease,
            Ok(Err(wait)) => wait,
            Err(err) => {
                tracing::warn!(error = %err, lease = %cfg.name, "could not read or write the Lease");
                cfg.renew
            }
        };
        let wait = wait.min(cfg.renew);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = changed.notified() => {}
            _ = shutdown.changed() => {}
        }
    };
    watch_task.abort();
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired leadership");
    metrics.set_leader(true);
    let _ = tx.send(true);

    // Leader.
    let mut last_renew = Instant::now();
    let mut ticker = tokio::time::interval(cfg.renew);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            // Stop writing first, let in-flight reconciles end, then hand over.
            let _ = tx.send(false);
            metrics.set_leader(false);
            controllers_stopped.await;
            release(&api, &cfg, held).await;
            return Ok(());
        }
        match renew(&api, &cfg, &held).await {
            Ok(Some(lease)) => {
                held = lease;
                last_renew = Instant::now();
            }
            Ok(None) => return lost(&tx, &metrics, &cfg, "another replica holds the Lease"),
            Err(err) => {
                tracing::warn!(error = %err, lease = %cfg.name, "could not renew the Lease");
                if last_renew.elapsed() >= cfg.renew_deadline() {
                    return lost(&tx, &metrics, &cfg, "renew deadline passed");
                }
                // Refresh what we hold so the next attempt has a current resourceVersion.
                if let Ok(Ok(Some(current))) =
                    tokio::time::timeout(cfg.renew, api.get_opt(&cfg.name)).await
                {
                    if holder_of(&current) == Some(cfg.identity.as_str()) {
                        held = current;
                    } else {
                        return lost(&tx, &metrics, &cfg, "another replica holds the Lease");
                    }
                }
            }
        }
    }
}

fn lost(
    tx: &watch::Sender<bool>,
    metrics: &Metrics,
    cfg: &LeaseConfig,
    why: &str,
) -> Result<(), LeaderError> {
    let _ = tx.send(false);
    metrics.set_leader(false);
    tracing::error!(lease = %cfg.name, why, "lost leadership");
    Err(LeaderError::Lost(cfg.name.clone()))
}

fn holder_of(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

async fn timed<T>(
    d: Duration,
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => r,
        Err(e) => Err(kube::Error::Service(Box::new(e))),
    }
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// One acquisition attempt: `Ok(Ok(lease))` when won, `Ok(Err(wait))` when
/// someone else holds it.
async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    observed: &mut Option<Observed>,
) -> Result<Result<Lease, Duration>, kube::Error> {
    let current = timed(cfg.renew, api.get_opt(&cfg.name)).await?;
    let now = Instant::now();
    let Some(current) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs(cfg.duration)),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match timed(cfg.renew, api.create(&PostParams::default(), &lease)).await {
            Ok(created) => Ok(Ok(created)),
            Err(e) if is_conflict(&e) => Ok(Err(Duration::ZERO)),
            Err(e) => Err(e),
        };
    };
    let obs = observe(observed.as_ref(), current.spec.as_ref(), cfg.duration, now);
    let decision = decide(&obs, &cfg.identity, now);
    *observed = Some(obs);
    if let Decision::Wait(wait) = decision {
        return Ok(Err(wait + Duration::from_millis(50)));
    }
    let previous = current.spec.clone().unwrap_or_default();
    let was_ours = holder_of(&current) == Some(cfg.identity.as_str());
    let mut lease = current;
    lease.metadata.managed_fields = None;
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(duration_secs(cfg.duration)),
        acquire_time: if was_ours {
            previous.acquire_time.clone()
        } else {
            Some(now_micro())
        },
        renew_time: Some(now_micro()),
        lease_transitions: Some(
            previous
                .lease_transitions
                .unwrap_or(0)
                .saturating_add(if was_ours { 0 } else { 1 }),
        ),
        ..previous
    });
    match timed(
        cfg.renew,
        api.replace(&cfg.name, &PostParams::default(), &lease),
    )
    .await
    {
        Ok(won) => Ok(Ok(won)),
        Err(e) if is_conflict(&e) => Ok(Err(Duration::ZERO)),
        Err(e) => Err(e),
    }
}

/// Renews the Lease held; `Ok(None)` when someone else took it.
async fn renew(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    held: &Lease,
) -> Result<Option<Lease>, kube::Error> {
    let mut lease = held.clone();
    if let Some(spec) = lease.spec.as_mut() {
        spec.renew_time = Some(now_micro());
    }
    match timed(
        cfg.renew,
        api.replace(&cfg.name, &PostParams::default(), &lease),
    )
    .await
    {
        Ok(renewed) => Ok(Some(renewed)),
        Err(e) if is_conflict(&e) => {
            let current = timed(cfg.renew, api.get_opt(&cfg.name)).await?;
            match current {
                Some(c) if holder_of(&c) == Some(cfg.identity.as_str()) => {
                    let mut retry = c;
                    if let Some(spec) = retry.spec.as_mut() {
                        spec.renew_time = Some(now_micro());
                    }
                    match timed(
                        cfg.renew,
                        api.replace(&cfg.name, &PostParams::default(), &retry),
                    )
                    .await
                    {
                        Ok(renewed) => Ok(Some(renewed)),
                        Err(e) if is_conflict(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
                _ => Ok(None),
            }
        }
        Err(e) => Err(e),
    }
}

/// Hands the Lease over: no holder, so a standby acquires it at once.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig, held: Lease) {
    let mut lease = held;
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
    }
    match timed(
        Duration::from_secs(3),
        api.replace(&cfg.name, &PostParams::default(), &lease),
    )
    .await
    {
        Ok(_) => tracing::info!(lease = %cfg.name, "released leadership"),
        Err(err) => {
            tracing::warn!(error = %err, lease = %cfg.name, "could not release the Lease; it expires on its own")
        }
    }
}

/// Wakes the standby whenever the Lease changes, so a released Lease is
/// taken over at once.
async fn watch_lease(api: Api<Lease>, name: String, changed: std::sync::Arc<Notify>) {
    let stream = watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .touched_objects();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(err) => tracing::warn!(error = %err, "Lease watch error; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, renew_secs: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renew_secs).expect("t"))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_lease_is_acquired() {
        let now = Instant::now();
        let obs = observe(None, Some(&spec(None, 1)), Duration::from_secs(15), now);
        assert_eq!(decide(&obs, "me", now), Decision::Acquire);
        let obs = observe(None, Some(&spec(Some(""), 1)), Duration::from_secs(15), now);
        assert_eq!(decide(&obs, "me", now), Decision::Acquire);
    }

    #[test]
    fn held_lease_expires_after_duration_of_local_observation() {
        let t0 = Instant::now();
        let obs = observe(
            None,
            Some(&spec(Some("other"), 1)),
            Duration::from_secs(15),
            t0,
        );
        assert_eq!(
            decide(&obs, "me", t0 + Duration::from_secs(5)),
            Decision::Wait(Duration::from_secs(10))
        );
        // unchanged record: the clock keeps running
        let obs = observe(
            Some(&obs),
            Some(&spec(Some("other"), 1)),
            Duration::from_secs(15),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(
            decide(&obs, "me", t0 + Duration::from_secs(15)),
            Decision::Acquire
        );
    }

    #[test]
    fn renewal_restarts_the_clock() {
        let t0 = Instant::now();
        let obs = observe(
            None,
            Some(&spec(Some("other"), 1)),
            Duration::from_secs(15),
            t0,
        );
        let later = t0 + Duration::from_secs(14);
        let obs = observe(
            Some(&obs),
            Some(&spec(Some("other"), 2)),
            Duration::from_secs(15),
            later,
        );
        assert_eq!(
            decide(&obs, "me", t0 + Duration::from_secs(16)),
            Decision::Wait(Duration::from_secs(13))
        );
    }

    #[test]
    fn own_lease_is_taken_back() {
        let now = Instant::now();
        let obs = observe(
            None,
            Some(&spec(Some("me"), 1)),
            Duration::from_secs(15),
            now,
        );
        assert_eq!(decide(&obs, "me", now), Decision::Acquire);
    }

    #[test]
    fn renew_deadline_is_before_expiry() {
        let cfg = LeaseConfig {
            namespace: "ns".into(),
            name: "l".into(),
            identity: "me".into(),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        };
        assert_eq!(cfg.renew_deadline(), Duration::from_secs(10));
        assert!(cfg.renew_deadline() < cfg.duration);
    }
}
