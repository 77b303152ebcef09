//! Campaign fixtures shared by the dialer's tests and its benchmark
//! (`examples/dialer_bench.rs` includes this file): a legal floor open
//! around the clock, a plan that dials every day from 08:00 to 20:00, and
//! the zone where it is a given hour now.

use chrono::{Timelike, Utc};
use dialtone_crds::campaign::{
    CampaignPurpose, CampaignRetries, Pacing, Schedule, ScheduleWindow, VoicemailPolicy,
};
use dialtone_crds::common::Weekday;
use dialtone_engine::dialing::{LegalFloor, LegalHours};
use dialtone_spine::campaigns::DialPlan;

/// A floor that allows calls at any hour, so the tests' clock does not
/// matter.
pub fn always_open() -> LegalFloor {
    let all = LegalHours {
        days: std::array::from_fn(|_| Some("00:00-24:00".to_owned())),
    };
    LegalFloor {
        telemarketing: all.clone(),
        research: all,
        public_holidays: Vec::new(),
    }
}

/// An informational plan calling from `caller_ids` every day 08:00–20:00,
/// paced by `pacing`, each lead tried up to `max_attempts` times.
pub fn daily_plan(caller_ids: &[String], pacing: Pacing, max_attempts: i32) -> DialPlan {
    DialPlan {
        schedule: Schedule {
            windows: vec![ScheduleWindow {
                days: Weekday::ALL.to_vec(),
                start: "08:00".to_owned(),
                end: "20:00".to_owned(),
            }],
            start_date: None,
            end_date: None,
        },
        purpose: CampaignPurpose::Informational,
        tenant_timezone: "UTC".to_owned(),
        holidays: Vec::new(),
        caller_ids: caller_ids.to_vec(),
        pacing,
        retries: CampaignRetries {
            max_attempts,
            backoff_minutes: 60,
        },
        respect_do_not_call: true,
        suppress: Vec::new(),
        budget_usd: None,
        tenant_daily_budget_usd: None,
        voicemail: VoicemailPolicy::default(),
    }
}

/// The `Etc/GMT…` zone where it is `hour` o'clock now.
pub fn zone_at(hour: i64) -> String {
    let utc = i64::from(Utc::now().hour());
    match (hour - utc + 35).rem_euclid(24) - 11 {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}
