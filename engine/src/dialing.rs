//! Dialing windows: when a campaign may call one recipient, in the
//! recipient's local time — the campaign's weekly windows and dates, cut to
//! the platform's legal hours for the campaign's purpose, minus the tenant's
//! holidays and the national public holidays.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use dialtone_crds::campaign::{CampaignPurpose, Schedule};
use dialtone_crds::common::{Locale, Weekday};
use serde::{Deserialize, Serialize};

use crate::hours::minutes;

/// Minutes since local midnight, half-open `[start, end)`.
pub type Span = (u32, u32);

/// Legal calling hours for one purpose, Monday first; `None` is a day
/// without calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegalHours {
    /// `[Monday, …, Sunday]`, each `"HH:MM-HH:MM"` or absent.
    pub days: [Option<String>; 7],
}

/// The platform-wide floor no campaign can override (chart value
/// `campaigns.legalFloor`). The default is Australia's: the
/// Telecommunications (Telemarketing and Research Calls) Industry Standard
/// 2017 — telemarketing weekdays 09:00–20:00 and Saturdays 09:00–17:00,
/// research weekdays 09:00–20:30 and weekends 09:00–17:00, never on a
/// national public holiday.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegalFloor {
    /// Hours for telemarketing and informational calls.
    pub telemarketing: LegalHours,
    /// Hours for research calls.
    pub research: LegalHours,
    /// National public holidays, `YYYY-MM-DD`: no calls at all.
    pub public_holidays: Vec<String>,
}

fn hours(days: [Option<&str>; 7]) -> LegalHours {
    LegalHours {
        days: days.map(|d| d.map(str::to_owned)),
    }
}

impl Default for LegalFloor {
    fn default() -> Self {
        let weekday = Some("09:00-20:00");
        let saturday = Some("09:00-17:00");
        let research_weekday = Some("09:00-20:30");
        LegalFloor {
            telemarketing: hours([weekday, weekday, weekday, weekday, weekday, saturday, None]),
            research: hours([
                research_weekday,
                research_weekday,
                research_weekday,
                research_weekday,
                research_weekday,
                saturday,
                saturday,
            ]),
            // Australia's national public holidays (the days every state
            // observes); extend through the chart for later years.
            public_holidays: [
                "2026-01-01",
                "2026-01-26",
                "2026-04-03",
                "2026-04-06",
                "2026-04-25",
                "2026-12-25",
                "2026-12-26",
                "2026-12-28",
                "2027-01-01",
                "2027-01-26",
                "2027-03-26",
                "2027-03-29",
                "2027-04-25",
                "2027-12-25",
                "2027-12-26",
                "2027-12-27",
                "2027-12-28",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// A malformed time or date in a schedule or the floor.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} is not {expected}")]
pub struct WindowError {
    /// Where.
    pub field: String,
    /// The value found.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

fn date(field: &str, s: &str) -> Result<NaiveDate, WindowError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| WindowError {
        field: field.to_owned(),
        value: s.to_owned(),
        expected: "a YYYY-MM-DD date",
    })
}

fn day_index(day: Weekday) -> usize {
    match day {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

fn intersect(a: Span, b: Span) -> Option<Span> {
    let (start, end) = (a.0.max(b.0), a.1.min(b.1));
    (start < end).then_some((start, end))
}

/// A campaign's windows, ready to ask about any instant and timezone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialWindows {
    /// Allowed spans per weekday (Monday first): the campaign's windows cut
    /// to the legal hours.
    week: [Vec<Span>; 7],
    first_day: Option<NaiveDate>,
    last_day: Option<NaiveDate>,
    closed: BTreeSet<NaiveDate>,
}

/// Whether a recipient may be called now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Inside a window that closes at `until`.
    Open {
        /// The window's end.
        until: DateTime<Utc>,
    },
    /// Outside every window; the next one opens at `next` (`None`: never
    /// again, the campaign's end date has passed).
    Closed {
        /// The next window's start.
        next: Option<DateTime<Utc>>,
    },
}

/// The longest a search for the next window looks ahead.
const HORIZON_DAYS: i64 = 400;

/// The instant of `minute` past midnight of `day` in `tz`. A local time
/// that does not exist (the hour skipped when clocks go forward) moves to
/// the first one that does; an ambiguous one takes the earlier instant.
fn instant(tz: Tz, day: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    let mut local = midnight + Duration::minutes(i64::from(minute));
    for _ in 0..=120 {
        if let Some(at) = tz.from_local_datetime(&local).earliest() {
            return Some(at.with_timezone(&Utc));
        }
        local += Duration::minutes(1);
    }
    None
}

impl DialWindows {
    /// The schedule of a campaign with `purpose`, within `floor`, closed on
    /// `holidays` (the tenant's, `YYYY-MM-DD`).
    pub fn new(
        schedule: &Schedule,
        purpose: CampaignPurpose,
        floor: &LegalFloor,
        holidays: &[String],
    ) -> Result<Self, WindowError> {
        let legal = match purpose {
            CampaignPurpose::Research => &floor.research,
            CampaignPurpose::Telemarketing | CampaignPurpose::Informational => &floor.telemarketing,
        };
        let mut legal_spans: [Option<Span>; 7] = [None; 7];
        for (i, day) in legal.days.iter().enumerate() {
            let Some(text) = day else { continue };
            let err = || WindowError {
                field: format!("legalFloor day {i}"),
                value: text.clone(),
                expected: "HH:MM-HH:MM",
            };
            let (start, end) = text.split_once('-').ok_or_else(err)?;
            let span = (
                minutes(start).ok_or_else(err)?,
                minutes(end).ok_or_else(err)?,
            );
            legal_spans[i] = Some(span);
        }
        let mut week: [Vec<Span>; 7] = Default::default();
        for (i, window) in schedule.windows.iter().enumerate() {
            let err = |field: &str, value: &str| WindowError {
                field: format!("spec.schedule.windows[{i}].{field}"),
                value: value.to_owned(),
                expected: "a 24-hour HH:MM time",
            };
            let start = minutes(&window.start).ok_or_else(|| err("start", &window.start))?;
            let end = minutes(&window.end).ok_or_else(|| err("end", &window.end))?;
            for day in &window.days {
                let index = day_index(*day);
                if let Some(span) =
                    legal_spans[index].and_then(|legal| intersect(legal, (start, end)))
                {
                    week[index].push(span);
                }
            }
        }
        for spans in &mut week {
            spans.sort_unstable();
        }
        let mut closed = BTreeSet::new();
        for (i, day) in floor.public_holidays.iter().enumerate() {
            closed.insert(date(&format!("legalFloor.publicHolidays[{i}]"), day)?);
        }
        for (i, day) in holidays.iter().enumerate() {
            closed.insert(date(&format!("spec.profile.holidays[{i}].date"), day)?);
        }
        let first_day = schedule
            .start_date
            .as_deref()
            .map(|d| date("spec.schedule.startDate", d))
            .transpose()?;
        let last_day = schedule
            .end_date
            .as_deref()
            .map(|d| date("spec.schedule.endDate", d))
            .transpose()?;
        Ok(DialWindows {
            week,
            first_day,
            last_day,
            closed,
        })
    }

    /// Whether no instant of any week is allowed (every window falls
    /// outside the legal hours).
    pub fn is_never_open(&self) -> bool {
        self.week.iter().all(Vec::is_empty)
    }

    /// Whether a recipient in `tz` may be called at `now`.
    pub fn verdict(&self, tz: Tz, now: DateTime<Utc>) -> Verdict {
        let today = now.with_timezone(&tz).date_naive();
        for offset in 0..HORIZON_DAYS {
            let Some(day) = today.checked_add_signed(Duration::days(offset)) else {
                break;
            };
            if self.last_day.is_some_and(|last| day > last) {
                return Verdict::Closed { next: None };
            }
            if self.first_day.is_some_and(|first| day < first) || self.closed.contains(&day) {
                continue;
            }
            let spans = &self.week[day.weekday().num_days_from_monday() as usize];
            for &(start, end) in spans {
                let (Some(opens), Some(closes)) = (instant(tz, day, start), instant(tz, day, end))
                else {
                    continue;
                };
                if now < opens {
                    return Verdict::Closed { next: Some(opens) };
                }
                if now < closes {
                    return Verdict::Open { until: closes };
                }
            }
        }
        Verdict::Closed { next: None }
    }
}

/// The recipient's timezone when the lead gives none: from the number where
/// its prefix pins one zone (Australian geographic area codes, single-zone
/// countries), else `None` and the tenant's timezone applies.
pub fn number_timezone(phone: &str) -> Option<Tz> {
    const PREFIXES: &[(&str, Tz)] = &[
        ("+612", Tz::Australia__Sydney),
        ("+613", Tz::Australia__Melbourne),
        ("+617", Tz::Australia__Brisbane),
        // 08 9xxx xxxx is Western Australia; the rest of 08 spans SA and
        // the NT, which differ, so it stays unknown.
        ("+6189", Tz::Australia__Perth),
        ("+64", Tz::Pacific__Auckland),
        ("+44", Tz::Europe__London),
        ("+353", Tz::Europe__Dublin),
        ("+65", Tz::Asia__Singapore),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| phone.starts_with(prefix))
        .map(|(_, tz)| *tz)
}

/// A lead's timezone: its own, else its number's, else the tenant's.
pub fn recipient_timezone(lead_timezone: Option<&str>, phone: &str, tenant: Tz) -> Tz {
    lead_timezone
        .and_then(|name| name.parse::<Tz>().ok())
        .or_else(|| number_timezone(phone))
        .unwrap_or(tenant)
}

/// `text` as E.164 for a caller in `locale`'s country: spaces, dots,
/// dashes and brackets dropped, `00` read as `+`, a national number with a
/// leading trunk `0` (AU) or ten digits (US) given the country code.
pub fn normalize_phone(text: &str, locale: Locale) -> Result<String, String> {
    let trimmed = text.trim();
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for (i, c) in trimmed.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(format!("{trimmed:?} is not a phone number")),
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else {
        match locale {
            Locale::EnAu => match digits.strip_prefix('0') {
                Some(national) if national.len() == 9 => format!("61{national}"),
                _ if digits.starts_with("61") && digits.len() == 11 => digits,
                _ => return Err(format!("{trimmed:?} is not an Australian number")),
            },
            Locale::EnUs => match digits.len() {
                10 => format!("1{digits}"),
                11 if digits.starts_with('1') => digits,
                _ => return Err(format!("{trimmed:?} is not a US number")),
            },
        }
    };
    let valid =
        international.len() >= 7 && international.len() <= 15 && !international.starts_with('0');
    if valid {
        Ok(format!("+{international}"))
    } else {
        Err(format!("{trimmed:?} is not a phone number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::campaign::ScheduleWindow;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_day(start: &str, end: &str) -> Schedule {
        Schedule {
            windows: vec![ScheduleWindow {
                days: Weekday::ALL.to_vec(),
                start: start.to_owned(),
                end: end.to_owned(),
            }],
            start_date: None,
            end_date: None,
        }
    }

    fn windows(schedule: &Schedule, purpose: CampaignPurpose) -> DialWindows {
        DialWindows::new(schedule, purpose, &LegalFloor::default(), &[]).unwrap()
    }

    #[test]
    fn the_legal_floor_cuts_a_wider_window() {
        let w = windows(&every_day("07:00", "23:00"), CampaignPurpose::Telemarketing);
        // Monday 2026-03-02 08:30 Sydney (AEDT, +11) is before 09:00.
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-03-01T21:30:00Z")),
            Verdict::Closed {
                next: Some(utc("2026-03-01T22:00:00Z"))
            }
        );
        // 19:59 is in, 20:00 is out, and the next window is Tuesday 09:00.
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-03-02T08:59:00Z")),
            Verdict::Open {
                until: utc("2026-03-02T09:00:00Z")
            }
        );
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-03-02T09:00:00Z")),
            Verdict::Closed {
                next: Some(utc("2026-03-02T22:00:00Z"))
            }
        );
    }

    #[test]
    fn sundays_are_closed_for_telemarketing_and_open_for_research() {
        // Sunday 2026-03-08 10:00 Sydney.
        let sunday = utc("2026-03-07T23:00:00Z");
        let schedule = every_day("09:00", "17:00");
        let telemarketing = windows(&schedule, CampaignPurpose::Telemarketing);
        assert_eq!(
            telemarketing.verdict(Tz::Australia__Sydney, sunday),
            Verdict::Closed {
                next: Some(utc("2026-03-08T22:00:00Z"))
            }
        );
        let research = windows(&schedule, CampaignPurpose::Research);
        assert!(matches!(
            research.verdict(Tz::Australia__Sydney, sunday),
            Verdict::Open { .. }
        ));
    }

    #[test]
    fn perth_and_sydney_leads_get_their_own_windows() {
        let w = windows(&every_day("09:00", "17:00"), CampaignPurpose::Telemarketing);
        // Wednesday 2026-03-04 09:30 in Sydney is 06:30 in Perth.
        let now = utc("2026-03-03T22:30:00Z");
        assert!(matches!(
            w.verdict(Tz::Australia__Sydney, now),
            Verdict::Open { .. }
        ));
        assert_eq!(
            w.verdict(Tz::Australia__Perth, now),
            Verdict::Closed {
                next: Some(utc("2026-03-04T01:00:00Z"))
            }
        );
    }

    #[test]
    fn windows_follow_sydney_across_both_dst_transitions() {
        let w = windows(&every_day("09:00", "17:00"), CampaignPurpose::Telemarketing);
        // DST ends Sunday 2026-04-05: Saturday opens 09:00 AEDT (22:00Z
        // Friday), Monday opens 09:00 AEST (23:00Z Sunday).
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-04-03T12:00:00Z")),
            Verdict::Closed {
                // Good Friday is a national holiday, so Saturday is next.
                next: Some(utc("2026-04-03T22:00:00Z"))
            }
        );
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-04-04T12:00:00Z")),
            Verdict::Closed {
                // Sunday closed, Easter Monday a national holiday: Tuesday
                // 09:00 AEST.
                next: Some(utc("2026-04-06T23:00:00Z"))
            }
        );
        // DST starts Sunday 2026-10-04: Monday opens at 22:00Z Sunday
        // (AEDT), the Friday before at 23:00Z Thursday (AEST).
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-10-03T12:00:00Z")),
            Verdict::Closed {
                next: Some(utc("2026-10-04T22:00:00Z"))
            }
        );
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-10-01T12:00:00Z")),
            Verdict::Closed {
                next: Some(utc("2026-10-01T23:00:00Z"))
            }
        );
    }

    #[test]
    fn a_us_zone_across_its_spring_gap_and_a_window_up_to_midnight() {
        let floor = LegalFloor {
            telemarketing: hours([Some("00:00-24:00"); 7]),
            research: hours([Some("00:00-24:00"); 7]),
            public_holidays: Vec::new(),
        };
        // 02:00–02:59 does not exist in New York on 2026-03-08.
        let w = DialWindows::new(
            &every_day("02:30", "24:00"),
            CampaignPurpose::Telemarketing,
            &floor,
            &[],
        )
        .unwrap();
        assert_eq!(
            w.verdict(Tz::America__New_York, utc("2026-03-08T05:00:00Z")),
            Verdict::Closed {
                // The skipped 02:30 becomes 03:00 EDT (07:00Z).
                next: Some(utc("2026-03-08T07:00:00Z"))
            }
        );
        assert_eq!(
            w.verdict(Tz::America__New_York, utc("2026-03-09T03:59:00Z")),
            Verdict::Open {
                until: utc("2026-03-09T04:00:00Z")
            }
        );
    }

    #[test]
    fn dates_and_tenant_holidays_bound_the_windows() {
        let mut schedule = every_day("09:00", "17:00");
        schedule.start_date = Some("2026-03-04".to_owned());
        schedule.end_date = Some("2026-03-05".to_owned());
        let w = DialWindows::new(
            &schedule,
            CampaignPurpose::Telemarketing,
            &LegalFloor::default(),
            &["2026-03-04".to_owned()],
        )
        .unwrap();
        // Monday: the start date is Wednesday, a holiday; Thursday is next.
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-03-01T23:00:00Z")),
            Verdict::Closed {
                next: Some(utc("2026-03-04T22:00:00Z"))
            }
        );
        // After Thursday's window nothing is left.
        assert_eq!(
            w.verdict(Tz::Australia__Sydney, utc("2026-03-05T07:00:00Z")),
            Verdict::Closed { next: None }
        );
    }

    #[test]
    fn a_window_outside_the_legal_hours_is_never_open() {
        let w = windows(&every_day("21:00", "23:00"), CampaignPurpose::Telemarketing);
        assert!(w.is_never_open());
    }

    #[test]
    fn the_recipient_timezone_prefers_the_lead_then_the_number() {
        let tenant = Tz::Australia__Sydney;
        assert_eq!(
            recipient_timezone(Some("Australia/Perth"), "+61290001234", tenant),
            Tz::Australia__Perth
        );
        assert_eq!(
            recipient_timezone(None, "+61892001234", tenant),
            Tz::Australia__Perth
        );
        assert_eq!(
            recipient_timezone(Some("Not/AZone"), "+61412345678", tenant),
            tenant
        );
    }

    #[test]
    fn numbers_normalise_with_the_tenant_region() {
        for (text, locale, e164) in [
            ("0412 345 678", Locale::EnAu, "+61412345678"),
            ("(02) 9000-1234", Locale::EnAu, "+61290001234"),
            ("+61 412 345 678", Locale::EnAu, "+61412345678"),
            ("0061412345678", Locale::EnAu, "+61412345678"),
            ("(415) 555-0100", Locale::EnUs, "+14155550100"),
        ] {
            assert_eq!(normalize_phone(text, locale).unwrap(), e164, "{text}");
        }
        assert!(normalize_phone("12345", Locale::EnAu).is_err());
        assert!(normalize_phone("call me", Locale::EnAu).is_err());
    }
}
