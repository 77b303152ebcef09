//! When a failed job runs again, or whether it is dead: exponential backoff
//! from the workflow's `RetryPolicy` with jitter, a vendor's `Retry-After`
//! honoured, and failures that cannot succeed dead-lettered at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::adapter::DeliveryError;

/// The longest any backoff grows to.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// The longest `Retry-After` honoured; a vendor asking for more is capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What happens after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run again at this instant.
    Retry(DateTime<Utc>),
    /// Give up: the job is dead-lettered.
    Dead,
}

/// The delay before the attempt after `attempt` (counted from 1): `base ×
/// 2^(attempt−1)`, capped at [`MAX_BACKOFF`], with "equal jitter" — half
/// fixed, half spread by `seed` — so a burst of failures at one instant
/// does not come back at one instant.
pub fn backoff(base_seconds: i32, attempt: i32, seed: u64) -> Duration {
    let base = u64::try_from(base_seconds.max(1)).unwrap_or(1);
    let doublings = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(0);
    let full = base
        .saturating_mul(1u64 << doublings)
        .min(MAX_BACKOFF.as_secs())
        .saturating_mul(1000);
    let half = full / 2;
    let spread = if half == 0 { 0 } else { seed % (half + 1) };
    Duration::from_millis(half + spread)
}

/// A jitter seed that differs per job and attempt but is the same on every
/// replica (so a decision can be recomputed and tested).
pub fn seed(job_id: i64, attempt: i32) -> u64 {
    let digest = Sha256::new()
        .chain_update(job_id.to_be_bytes())
        .chain_update(attempt.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// The decision after attempt `attempt` of `max_attempts` failed with
/// `error` at `now`.
pub fn decide(
    error: &DeliveryError,
    attempt: i32,
    max_attempts: i32,
    base_seconds: i32,
    seed: u64,
    now: DateTime<Utc>,
) -> Next {
    let retry_after = match error {
        DeliveryError::Permanent { .. } => return Next::Dead,
        DeliveryError::Retryable { retry_after, .. } => *retry_after,
    };
    if attempt >= max_attempts {
        return Next::Dead;
    }
    let delay = backoff(base_seconds, attempt, seed)
        .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    Next::Retry(now.checked_add_signed(delay).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0)
            .single()
            .expect("a time")
    }

    fn transient(retry_after: Option<Duration>) -> DeliveryError {
        DeliveryError::Retryable {
            message: "HTTP 503".into(),
            status: Some(503),
            retry_after,
        }
    }

    #[test]
    fn backoff_doubles_within_its_jitter_band_and_is_capped() {
        for attempt in 1..=5 {
            let full = 10_000u64 << (attempt - 1);
            for s in [0, 1, 7, u64::MAX / 3, u64::MAX] {
                let d = backoff(10, attempt, s).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d} ms");
            }
        }
        assert!(backoff(3600, 40, 0) <= MAX_BACKOFF);
        assert!(backoff(3600, 40, u64::MAX) <= MAX_BACKOFF);
    }

    #[test]
    fn jitter_spreads_jobs_that_failed_together() {
        let delays: std::collections::BTreeSet<u128> = (0..50)
            .map(|job| backoff(10, 3, seed(job, 3)).as_millis())
            .collect();
        assert!(delays.len() > 40, "{} distinct delays", delays.len());
    }

    #[test]
    fn permanent_failures_and_the_last_attempt_dead_letter() {
        let permanent = DeliveryError::Permanent {
            message: "HTTP 400".into(),
            status: Some(400),
        };
        assert_eq!(decide(&permanent, 1, 5, 10, 0, now()), Next::Dead);
        assert_eq!(decide(&transient(None), 5, 5, 10, 0, now()), Next::Dead);
        assert!(matches!(
            decide(&transient(None), 4, 5, 10, 0, now()),
            Next::Retry(_)
        ));
    }

    #[test]
    fn retry_after_wins_when_longer_than_the_backoff() {
        let Next::Retry(at) = decide(
            &transient(Some(Duration::from_secs(120))),
            1,
            5,
            10,
            0,
            now(),
        ) else {
            panic!("retried")
        };
        assert_eq!(at - now(), chrono::Duration::seconds(120));
        let Next::Retry(at) = decide(&transient(Some(Duration::from_secs(1))), 1, 5, 10, 0, now())
        else {
            panic!("retried")
        };
        assert_eq!(at - now(), chrono::Duration::seconds(5));
        let Next::Retry(at) = decide(
            &transient(Some(Duration::from_secs(10 * 86_400))),
            1,
            5,
            10,
            0,
            now(),
        ) else {
            panic!("retried")
        };
        assert_eq!(at - now(), chrono::Duration::days(1));
    }
}
