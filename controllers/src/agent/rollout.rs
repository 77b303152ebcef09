//! Pure rollout decisions: the smoke test of a new version, which version
//! serves (newest passing, or the pinned one), and which versions are kept.

use dialtone_crds::agent::VersionRecord;
use dialtone_crds::objective::TestCall;
use dialtone_engine::{CompiledConfig, run_test_call};

use super::names::{configmap_name, short_version};

/// `VersionRecord::smoke_test` of a version whose test calls all passed.
pub const PASSED: &str = "Passed";
/// The longest smoke-test failure kept in history.
const MAX_FAILURE: usize = 600;

/// The result of a smoke test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmokeResult {
    /// Test calls run (up to and including a failure).
    pub ran: usize,
    /// `<objective>: test "<name>" turn <n>: <why>` of the first failure.
    pub failure: Option<String>,
}

impl SmokeResult {
    /// What history records: `Passed` or `Failed: …`.
    pub fn record(&self) -> String {
        match &self.failure {
            None => PASSED.to_owned(),
            Some(f) => format!("Failed: {f}"),
        }
    }
}

/// Whether a recorded smoke test passed.
pub fn passed(record: &VersionRecord) -> bool {
    record.smoke_test.as_deref() == Some(PASSED)
}

/// Runs every scripted test call of every objective (`(name, tests)`, in
/// the Agent's order) against `config`, stopping at the first failure.
pub fn smoke_test(config: &CompiledConfig, objectives: &[(&str, &[TestCall])]) -> SmokeResult {
    let mut ran = 0;
    for (objective, tests) in objectives {
        for test in *tests {
            ran += 1;
            let outcome = run_test_call(config, objective, test);
            if !outcome.passed {
                let why = outcome
                    .message
                    .unwrap_or_else(|| format!("test {:?} failed", test.name));
                return SmokeResult {
                    ran,
                    failure: Some(truncate(format!("objective {objective}: {why}"))),
                };
            }
        }
    }
    SmokeResult { ran, failure: None }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_FAILURE {
        let mut cut = MAX_FAILURE - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Why `spec.rollout.pinnedVersion` cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// No version in history matches.
    #[error("pinned version {0:?} is not in status.history; pin a hash listed there")]
    NotFound(String),
    /// Several versions match a prefix.
    #[error(
        "pinned version {0:?} matches several versions in status.history; give more of the hash"
    )]
    Ambiguous(String),
    /// The version failed its smoke test.
    #[error("pinned version {0} failed its smoke test and is not served")]
    FailedSmokeTest(String),
}

impl PinError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PinError::NotFound(_) => "PinnedVersionNotFound",
            PinError::Ambiguous(_) => "PinnedVersionAmbiguous",
            PinError::FailedSmokeTest(_) => "PinnedVersionFailedSmokeTest",
        }
    }
}

/// The history entry `pin` names: the full hash, a `sha256:` prefix of at
/// least 8 hex digits, the ConfigMap name `<agent>-<short>`, or a hex prefix
/// of at least 8 digits.
pub fn resolve_pin<'a>(
    pin: &str,
    agent: &str,
    history: &'a [VersionRecord],
) -> Result<&'a VersionRecord, PinError> {
    let hex_prefix = |p: &str| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_hexdigit());
    let matches: Vec<&VersionRecord> = history
        .iter()
        .filter(|r| {
            let short = short_version(&r.hash);
            let hex = r.hash.strip_prefix("sha256:").unwrap_or(&r.hash);
            r.hash == pin
                || pin
                    .strip_prefix("sha256:")
                    .is_some_and(|p| hex_prefix(p) && hex.starts_with(p))
                || configmap_name(agent, short) == pin
                || (hex_prefix(pin) && hex.starts_with(pin))
        })
        .collect();
    match matches.as_slice() {
        [] => Err(PinError::NotFound(pin.to_owned())),
        [one] if passed(one) => Ok(one),
        [one] => Err(PinError::FailedSmokeTest(one.hash.clone())),
        _ => Err(PinError::Ambiguous(pin.to_owned())),
    }
}

/// Which version serves new calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The version to route to; `None` while no version has passed.
    pub target: Option<String>,
    /// Why the pin could not be honoured (the current version keeps
    /// serving).
    pub pin_error: Option<PinError>,
}

/// The pinned version when set (and servable), else the newest version
/// when it passed its smoke test, else the one serving now.
pub fn choose(
    pinned: Option<&str>,
    agent: &str,
    newest: Option<&VersionRecord>,
    active: Option<&str>,
    history: &[VersionRecord],
) -> Choice {
    let keep = || active.map(str::to_owned);
    if let Some(pin) = pinned {
        return match resolve_pin(pin, agent, history) {
            Ok(r) => Choice {
                target: Some(r.hash.clone()),
                pin_error: None,
            },
            Err(e) => Choice {
                target: keep(),
                pin_error: Some(e),
            },
        };
    }
    let target = match newest {
        Some(n) if passed(n) => Some(n.hash.clone()),
        _ => keep(),
    };
    Choice {
        target,
        pin_error: None,
    }
}

/// Orders history newest first (ties by hash, so the order is stable).
pub fn sort_history(history: &mut [VersionRecord]) {
    history.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.hash.cmp(&b.hash)));
}

/// Keeps the `limit` newest versions plus every `protect`ed one (the
/// active and the pinned version are never dropped). Returns the kept
/// records, newest first, and the hashes dropped.
pub fn trim(
    mut history: Vec<VersionRecord>,
    limit: usize,
    protect: &[&str],
) -> (Vec<VersionRecord>, Vec<String>) {
    sort_history(&mut history);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (i, r) in history.into_iter().enumerate() {
        if i < limit || protect.contains(&r.hash.as_str()) {
            kept.push(r);
        } else {
            dropped.push(r.hash);
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash_hex: &str, created: &str, smoke: &str) -> VersionRecord {
        VersionRecord {
            hash: format!("sha256:{hash_hex}"),
            created: created.into(),
            activated: None,
            smoke_test: Some(smoke.into()),
        }
    }

    fn history() -> Vec<VersionRecord> {
        vec![
            record(
                &format!("aaaa1111{}", "0".repeat(56)),
                "2026-01-03T00:00:00Z",
                PASSED,
            ),
            record(
                &format!("aaaa2222{}", "0".repeat(56)),
                "2026-01-02T00:00:00Z",
                "Failed: x",
            ),
            record(
                &format!("bbbb3333{}", "0".repeat(56)),
                "2026-01-01T00:00:00Z",
                PASSED,
            ),
        ]
    }

    #[test]
    fn pins_resolve_by_hash_prefix_or_configmap_name() {
        let h = history();
        let full = h[2].hash.clone();
        assert_eq!(resolve_pin(&full, "front", &h).map(|r| &r.hash), Ok(&full));
        assert_eq!(
            resolve_pin("sha256:bbbb3333", "front", &h).map(|r| &r.hash),
            Ok(&full)
        );
        assert_eq!(
            resolve_pin("bbbb3333", "front", &h).map(|r| &r.hash),
            Ok(&full)
        );
        let cm = configmap_name("front", short_version(&full));
        assert_eq!(resolve_pin(&cm, "front", &h).map(|r| &r.hash), Ok(&full));
        assert_eq!(
            resolve_pin("sha256:aaaa", "front", &h),
            Err(PinError::NotFound("sha256:aaaa".into())),
            "prefixes need 8 hex digits"
        );
        assert!(matches!(
            resolve_pin("sha256:cccc3333", "front", &h),
            Err(PinError::NotFound(_))
        ));
        assert!(matches!(
            resolve_pin("sha256:aaaa2222", "front", &h),
            Err(PinError::FailedSmokeTest(_))
        ));
        let mut twins = h.clone();
        twins.push(record(
            &format!("bbbb3333{}", "1".repeat(56)),
            "2026-01-04T00:00:00Z",
            PASSED,
        ));
        assert!(matches!(
            resolve_pin("bbbb3333", "front", &twins),
            Err(PinError::Ambiguous(_))
        ));
    }

    #[test]
    fn newest_serves_only_after_passing_and_a_pin_wins_at_once() {
        let h = history();
        let active = h[2].hash.as_str();
        let c = choose(None, "front", Some(&h[0]), Some(active), &h);
        assert_eq!(c.target.as_deref(), Some(h[0].hash.as_str()));
        let c = choose(None, "front", Some(&h[1]), Some(active), &h);
        assert_eq!(
            c.target.as_deref(),
            Some(active),
            "a failed version is not activated"
        );
        let c = choose(None, "front", Some(&h[1]), None, &h);
        assert_eq!(c.target, None);
        let c = choose(
            Some("bbbb3333"),
            "front",
            Some(&h[0]),
            Some(h[0].hash.as_str()),
            &h,
        );
        assert_eq!(c.target.as_deref(), Some(h[2].hash.as_str()), "rollback");
        let c = choose(
            Some("sha256:dddd4444"),
            "front",
            Some(&h[0]),
            Some(active),
            &h,
        );
        assert_eq!(
            c.target.as_deref(),
            Some(active),
            "unknown pin: the active keeps serving"
        );
        assert_eq!(
            c.pin_error.as_ref().map(PinError::reason),
            Some("PinnedVersionNotFound")
        );
    }

    #[test]
    fn trim_keeps_the_newest_and_the_protected() {
        let h = history();
        let oldest = h[2].hash.clone();
        let (kept, dropped) = trim(h.clone(), 1, &[]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].hash, h[0].hash);
        assert_eq!(dropped, [h[1].hash.clone(), oldest.clone()]);
        let (kept, dropped) = trim(h.clone(), 1, &[oldest.as_str()]);
        assert_eq!(
            kept.iter().map(|r| r.hash.as_str()).collect::<Vec<_>>(),
            [h[0].hash.as_str(), oldest.as_str()]
        );
        assert_eq!(dropped, [h[1].hash.clone()]);
        let (kept, dropped) = trim(h, 5, &[]);
        assert_eq!(kept.len(), 3);
        assert!(dropped.is_empty());
    }

    #[test]
    fn failures_are_recorded_with_their_test_and_turn() {
        let r = SmokeResult {
            ran: 2,
            failure: Some("objective booking: test \"x\" turn 3: expected".into()),
        };
        assert_eq!(
            r.record(),
            "Failed: objective booking: test \"x\" turn 3: expected"
        );
        assert_eq!(
            SmokeResult {
                ran: 4,
                failure: None
            }
            .record(),
            PASSED
        );
        let long = truncate("é".repeat(1000));
        assert!(long.len() <= MAX_FAILURE);
    }
}
