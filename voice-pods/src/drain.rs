//! Graceful shutdown: stop taking calls, let the ones in progress finish,
//! then close what is left.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// The pod's call admission and drain state.
#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    active: watch::Sender<usize>,
    force: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            active: watch::Sender::new(0),
            force: watch::Sender::new(false),
        }
    }
}

/// Held by a call while it runs; dropping it lets a drain finish.
#[derive(Debug)]
pub struct CallGuard(Arc<Drain>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n = n.saturating_sub(1));
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
    /// Whether the pod has stopped taking calls.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Admits a call, unless the pod is draining.
    pub fn admit(self: &Arc<Self>) -> Option<CallGuard> {
        // Count first, then check: a drain that starts in between sees the
        // call and waits for it.
        self.active.send_modify(|n| *n += 1);
        let guard = CallGuard(self.clone());
        if self.draining() {
            return None;
        }
        Some(guard)
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
        let drain = Arc::new(Drain::default());
        let quick = drain.admit().unwrap();
        let slow_drain = drain.clone();
        let slow = tokio::spawn(async move {
            let _guard = slow_drain.admit().unwrap();
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
        assert!(drain.admit().is_none(), "no new calls while draining");
        drop(quick);
        let report = draining.await.unwrap();
        assert_eq!(report, DrainReport { forced: 1 });
        slow.await.unwrap();
        assert_eq!(drain.active(), 0);
    }

    #[tokio::test]
    async fn an_idle_pod_drains_at_once() {
        let drain = Drain::default();
        let report = drain.drain(Duration::from_secs(30)).await;
        assert_eq!(report, DrainReport { forced: 0 });
        assert!(!*drain.forced().borrow());
    }
}
