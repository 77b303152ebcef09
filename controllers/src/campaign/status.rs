//! A Campaign's status from what the reconcile found (pure): conditions per
//! stage (`AgentResolved`, `AudienceLoaded`, `Dialing`) with a `Ready`
//! summary, the phase, lead counts, answer rate and spend.

use dialtone_crds::campaign::{Campaign, CampaignPhase, CampaignStatus, LeadCounts};
use dialtone_crds::common::{ConditionUpdate, READY, merge_conditions};
use dialtone_spine::campaigns::Progress;
use jiff::Timestamp;

use super::audience::{BadRow, describe_bad_rows};

/// Condition: the Agent exists, is Ready, and places calls from the caller ids.
pub const AGENT_RESOLVED: &str = "AgentResolved";
/// Condition: the audience was read into leads.
pub const AUDIENCE_LOADED: &str = "AudienceLoaded";
/// Condition: the dialer is placing calls (False says why not).
pub const DIALING: &str = "Dialing";

/// A spec or cluster problem, as a condition reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// What loading the audience did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudienceReport {
    /// Good leads in the audience.
    pub leads: usize,
    /// Skipped rows.
    pub bad: Vec<BadRow>,
    /// Whether the leads were inline (rows are indexes, not lines).
    pub inline: bool,
}

/// What the reconcile found.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The Agent stage.
    pub agent: Result<(), Problem>,
    /// The audience stage (not run when the Agent stage failed).
    pub audience: Option<Result<AudienceReport, Problem>>,
    /// The campaign's rows, once stored.
    pub progress: Option<Progress>,
    /// `spec.suspend`, or the Tenant is suspended.
    pub suspended: bool,
    /// The start date is still ahead.
    pub before_start: bool,
}

/// The phase, and the `Dialing` condition's reason and message.
pub fn phase(o: &Observed) -> (CampaignPhase, bool, &'static str, String) {
    let loaded = matches!(o.audience, Some(Ok(_)));
    if let Err(p) = &o.agent {
        return (CampaignPhase::Pending, false, p.reason, p.message.clone());
    }
    if let Some(Err(p)) = &o.audience {
        return (CampaignPhase::Pending, false, p.reason, p.message.clone());
    }
    let Some(progress) = o.progress.as_ref().filter(|_| loaded) else {
        return (
            CampaignPhase::Pending,
            false,
            "Loading",
            "the audience is being loaded".to_owned(),
        );
    };
    let error = progress.last_error.clone().unwrap_or_default();
    if progress.total > 0 && progress.pending == 0 && progress.dialing == 0 {
        return (
            CampaignPhase::Completed,
            false,
            "Completed",
            format!("every one of the {} leads is finished", progress.total),
        );
    }
    if progress.total == 0 {
        return (
            CampaignPhase::Completed,
            false,
            "NoLeads",
            "the audience has no leads".to_owned(),
        );
    }
    if o.suspended {
        return (
            CampaignPhase::Paused,
            false,
            "Suspended",
            "suspended: no new calls; calls in progress finish".to_owned(),
        );
    }
    match progress.stopped.as_deref() {
        Some("BudgetExhausted") => {
            return (
                CampaignPhase::BudgetExhausted,
                false,
                "BudgetExhausted",
                error,
            );
        }
        Some("FailureBreaker") => return (CampaignPhase::Paused, false, "FailureBreaker", error),
        Some(_) => return (CampaignPhase::Paused, false, "Stopped", error),
        None => {}
    }
    if o.before_start {
        return (
            CampaignPhase::Scheduled,
            false,
            "BeforeStartDate",
            "the schedule's start date is ahead".to_owned(),
        );
    }
    match progress.waiting.as_deref() {
        Some("OutsideWindow") => (
            CampaignPhase::OutsideWindow,
            false,
            "OutsideWindow",
            "no pending lead is inside its calling window now".to_owned(),
        ),
        Some("TenantDailyBudget") => (
            CampaignPhase::BudgetExhausted,
            false,
            "TenantDailyBudget",
            error,
        ),
        Some("RegisterStale") => (CampaignPhase::Paused, false, "RegisterStale", error),
        Some("CallerIdsCapped") => (CampaignPhase::Paused, false, "CallerIdsCapped", error),
        Some("NoCallerId") => (CampaignPhase::Paused, false, "NoCallerId", error),
        Some(_) => (CampaignPhase::Paused, false, "InvalidSchedule", error),
        None => (
            CampaignPhase::Dialing,
            true,
            "Dialing",
            format!(
                "{} in flight, {} pending",
                progress.dialing, progress.pending
            ),
        ),
    }
}

/// The status the controller owns.
pub fn desired(campaign: &Campaign, o: &Observed, now: Timestamp) -> CampaignStatus {
    let current = campaign.status.as_ref();
    let generation = campaign.metadata.generation;
    let agent = match &o.agent {
        Ok(()) => ConditionUpdate::truthy(
            AGENT_RESOLVED,
            "Resolved",
            "the Agent is Ready and places calls from the caller ids",
        ),
        Err(p) => ConditionUpdate::falsy(AGENT_RESOLVED, p.reason, p.message.clone()),
    };
    let audience = match &o.audience {
        None => ConditionUpdate::falsy(
            AUDIENCE_LOADED,
            "AgentNotResolved",
            "loaded once the Agent resolves",
        ),
        Some(Err(p)) => ConditionUpdate::falsy(AUDIENCE_LOADED, p.reason, p.message.clone()),
        Some(Ok(report)) if report.bad.is_empty() => {
            ConditionUpdate::truthy(AUDIENCE_LOADED, "Loaded", format!("{} leads", report.leads))
        }
        Some(Ok(report)) => ConditionUpdate::truthy(
            AUDIENCE_LOADED,
            "LoadedWithSkippedRows",
            format!(
                "{} leads; {} rows skipped: {}",
                report.leads,
                report.bad.len(),
                describe_bad_rows(&report.bad, report.inline)
            ),
        ),
    };
    let (phase, dialing, reason, message) = phase(o);
    let ready_ok = o.agent.is_ok() && matches!(o.audience, Some(Ok(_)));
    let ready = if ready_ok {
        ConditionUpdate::truthy(READY, reason, message.clone())
    } else {
        ConditionUpdate::falsy(READY, reason, message.clone())
    };
    let dialing = if dialing {
        ConditionUpdate::truthy(DIALING, reason, message)
    } else {
        ConditionUpdate::falsy(DIALING, reason, message)
    };
    let p = o.progress.as_ref();
    CampaignStatus {
        observed_generation: generation,
        conditions: merge_conditions(
            current.map(|s| s.conditions.as_slice()).unwrap_or_default(),
            &[agent, audience, dialing, ready],
            generation,
            now,
        ),
        phase: Some(phase),
        leads: p.map(|p| LeadCounts {
            total: p.total,
            pending: p.pending,
            dialing: p.dialing,
            completed: p.completed,
            failed: p.failed,
            suppressed: p.suppressed,
            voicemail: p.voicemail,
        }),
        spend_usd: p.map(|p| (p.spend_usd * 1e4).round() / 1e4),
        answer_rate: p
            .filter(|p| p.finished_attempts > 0)
            .map(|p| ((p.answered as f64 / p.finished_attempts as f64) * 1e3).round() / 1e3),
        next_window_start: p
            .filter(|_| phase == CampaignPhase::OutsideWindow)
            .and_then(|p| p.next_dial_at)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        last_error: p.and_then(|p| p.last_error.clone()),
    }
}

/// Whether writing `desired` would change anything.
pub fn needs_write(current: Option<&CampaignStatus>, desired: &CampaignStatus) -> bool {
    current != Some(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::campaign::CampaignSpec;
    use dialtone_crds::common::is_true;

    fn campaign() -> Campaign {
        let spec: CampaignSpec = serde_yaml::from_str(
            "agent: reminders\naudience: {leads: [{phone: '+61412345678'}]}\nschedule: {windows: [{days: [Monday], start: '09:00', end: '17:00'}]}\n",
        )
        .unwrap();
        let mut c = Campaign::new("recall", spec);
        c.metadata.generation = Some(3);
        c
    }

    fn loaded() -> Observed {
        Observed {
            agent: Ok(()),
            audience: Some(Ok(AudienceReport {
                leads: 5,
                bad: vec![BadRow {
                    line: 4,
                    reason: "\"x\" is not a phone number".to_owned(),
                }],
                inline: false,
            })),
            progress: Some(Progress {
                total: 5,
                pending: 3,
                dialing: 1,
                completed: 1,
                ..Progress::default()
            }),
            suspended: false,
            before_start: false,
        }
    }

    #[test]
    fn a_loaded_campaign_dials_and_names_its_skipped_rows() {
        let s = desired(&campaign(), &loaded(), Timestamp::from_second(1).unwrap());
        assert_eq!(s.phase, Some(CampaignPhase::Dialing));
        assert!(is_true(&s.conditions, DIALING));
        assert!(is_true(&s.conditions, READY));
        let audience = s
            .conditions
            .iter()
            .find(|c| c.type_ == AUDIENCE_LOADED)
            .unwrap();
        assert_eq!(audience.reason, "LoadedWithSkippedRows");
        assert!(
            audience.message.contains("line 4: \"x\" is not"),
            "{}",
            audience.message
        );
        assert_eq!(s.leads.unwrap().pending, 3);
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn phases_follow_suspend_stops_waits_and_completion() {
        let mut o = loaded();
        o.suspended = true;
        assert_eq!(phase(&o).0, CampaignPhase::Paused);
        o.suspended = false;
        if let Some(p) = o.progress.as_mut() {
            p.stopped = Some("BudgetExhausted".to_owned());
        }
        assert_eq!(phase(&o).0, CampaignPhase::BudgetExhausted);
        if let Some(p) = o.progress.as_mut() {
            p.stopped = None;
            p.waiting = Some("OutsideWindow".to_owned());
        }
        assert_eq!(phase(&o).0, CampaignPhase::OutsideWindow);
        if let Some(p) = o.progress.as_mut() {
            p.pending = 0;
            p.dialing = 0;
        }
        assert_eq!(phase(&o).0, CampaignPhase::Completed);
        o.agent = Err(Problem {
            reason: "AgentNotReady",
            message: "agent reminders is not Ready".to_owned(),
        });
        let (phase, dialing, reason, _) = phase(&o);
        assert_eq!(
            (phase, dialing, reason),
            (CampaignPhase::Pending, false, "AgentNotReady")
        );
    }

    #[test]
    fn an_unchanged_status_is_not_written() {
        let mut c = campaign();
        let s = desired(&c, &loaded(), Timestamp::from_second(1).unwrap());
        c.status = Some(s);
        let again = desired(&c, &loaded(), Timestamp::from_second(99).unwrap());
        assert!(!needs_write(c.status.as_ref(), &again));
    }
}
