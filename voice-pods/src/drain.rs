//! Call admission and graceful shutdown: a pod takes calls up to its own
//! capacity and each tenant's share of it, stops taking them on SIGTERM,
//! lets the ones in progress finish, then closes what is left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// The pod's call admission and drain state.
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    active: watch::Sender<usize>,
    force: watch::Sender<bool>,
    /// Calls this pod carries at most.
    max_calls: usize,
    /// Calls in progress by tenant (a tenant is absent at zero).
    tenants: Mutex<HashMap<String, usize>>,
}

/// Held by a call while it runs; dropping it frees its place and lets a
/// drain finish.
#[derive(Debug)]
pub struct CallGuard {
    drain: Arc<Drain>,
    tenant: String,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut tenants = self
            .drain
            .tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = tenants.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                tenants.remove(&self.tenant);
            }
        }
        drop(tenants);
        self.drain.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Why a call was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The pod is shutting down.
    #[error("draining")]
    Draining,
    /// The pod carries as many calls as it may.
    #[error("this pod is at capacity")]
    PodFull,
    /// The tenant has as many calls in progress as its limit allows.
    #[error("the tenant's concurrent call limit is reached")]
    TenantFull,
}

impl Refused {
    /// The `reason` label of the refusal metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draining => "draining",
            Self::PodFull => "pod-full",
            Self::TenantFull => "tenant-full",
        }
    }
}

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls still running when the grace period ran out (closed as
    /// `drained`).
    pub forced: usize,
}

impl Drain {
    /// A pod that carries at most `max_calls` calls.
    pub fn new(max_calls: usize) -> Self {
        Self {
            draining: AtomicBool::new(false),
            active: watch::Sender::new(0),
            force: watch::Sender::new(false),
            max_calls,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the pod has stopped taking calls.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Admits a call of `tenant`, which may have `tenant_cap` calls in
    /// progress on this pod, unless the pod is draining or full.
    pub fn admit(self: &Arc<Self>, tenant: &str, tenant_cap: usize) -> Result<CallGuard, Refused> {
        {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            let theirs = tenants.get(tenant).copied().unwrap_or(0);
            if theirs >= tenant_cap {
                return Err(Refused::TenantFull);
            }
            let mut full = false;
            // Count first, then check draining: a drain that starts in
            // between sees the call and waits for it.
            self.active.send_if_modified(|n| {
                full = *n >= self.max_calls;
                if !full {
                    *n += 1;
                }
                !full
            });
            if full {
                return Err(Refused::PodFull);
            }
            tenants.insert(tenant.to_owned(), theirs + 1);
        }
        let guard = CallGuard {
            drain: self.clone(),
            tenant: tenant.to_owned(),
        };
        if self.draining() {
            return Err(Refused::Draining);
        }
        Ok(guard)
    }

    /// Calls running now.
    pub fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Resolves when calls must close now (the grace period ran out).
    pub fn forced(&self) -> watch::Receiver<bool> {
        self.force.subscribe()
    }

    /// Resolves once calls must close now; pass the receiver of
    /// [`forced`](Self::forced).
    pub async fn until_forced(forced: &mut watch::Receiver<bool>) {
        // A dropped sender means the pod is gone: close as well.
        let _ = forced.wait_for(|f| *f).await.map(|_| ());
    }

    /// Stops taking calls, waits up to `grace` for calls to finish, then
    /// tells the rest to close and waits for them to have closed (their
    /// `callClosed` written).
    pub async fn drain(&self, grace: Duration) -> DrainReport {
        self.draining.store(true, Ordering::SeqCst);
        let mut active = self.active.subscribe();
        let finished = tokio::time::timeout(grace, active.wait_for(|n| *n == 0))
            .await
            .is_ok();
        let forced = if finished {
            0
        } else {
            let left = self.active();
            self.force.send_replace(true);
            let _ = active.wait_for(|n| *n == 0).await;
            left
        };
        DrainReport { forced }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_drain_waits_for_calls_then_forces_the_rest() {
        let drain = Arc::new(Drain::new(10));
        let quick = drain.admit("a", 10).unwrap();
        let slow_drain = drain.clone();
        let slow = tokio::spawn(async move {
            let _guard = slow_drain.admit("a", 10).unwrap();
            let mut forced = slow_drain.forced();
            let _ = forced.wait_for(|f| *f).await;
        });
        tokio::task::yield_now().await;
        assert_eq!(drain.active(), 2);
        let draining = {
            let drain = drain.clone();
            tokio::spawn(async move { drain.drain(Duration::from_millis(100)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(drain.draining());
        assert_eq!(
            drain.admit("a", 10).unwrap_err(),
            Refused::Draining,
            "no new calls while draining"
        );
        drop(quick);
        let report = draining.await.unwrap();
        assert_eq!(report, DrainReport { forced: 1 });
        slow.await.unwrap();
        assert_eq!(drain.active(), 0);
    }

    #[tokio::test]
    async fn an_idle_pod_drains_at_once() {
        let drain = Drain::new(10);
        let report = drain.drain(Duration::from_secs(30)).await;
        assert_eq!(report, DrainReport { forced: 0 });
        assert!(!*drain.forced().borrow());
    }

    #[test]
    fn a_tenant_cannot_take_more_than_its_cap_nor_the_pod_more_than_its_own() {
        let drain = Arc::new(Drain::new(3));
        let first = drain.admit("greedy", 2).unwrap();
        let _second = drain.admit("greedy", 2).unwrap();
        assert_eq!(drain.admit("greedy", 2).unwrap_err(), Refused::TenantFull);
        // Another tenant still gets in, up to what the pod carries.
        let _other = drain.admit("quiet", 2).unwrap();
        assert_eq!(drain.admit("quiet", 2).unwrap_err(), Refused::PodFull);
        assert_eq!(drain.active(), 3);
        // A call that ends frees its tenant's place and the pod's.
        drop(first);
        assert_eq!(drain.active(), 2);
        let _third = drain.admit("greedy", 2).unwrap();
        assert_eq!(drain.admit("greedy", 2).unwrap_err(), Refused::TenantFull);
    }
}
