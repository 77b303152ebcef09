//! Business hours: whether the business is open at an instant, and how the
//! hours are said aloud.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use dialtone_crds::common::Weekday;
use dialtone_crds::tenant::BusinessHours;

/// Parsed opening hours, minutes since midnight, half-open `[open, close)`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Hours {
    /// (days, open minute, close minute).
    intervals: Vec<(Vec<Weekday>, u32, u32)>,
    holidays: BTreeSet<NaiveDate>,
}

/// A malformed `HH:MM` or date in the tenant's profile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} is not {expected}")]
pub struct HoursError {
    /// Where in the tenant profile.
    pub field: String,
    /// The value found.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

/// Minutes since midnight of a 24-hour `HH:MM` (`24:00` allowed).
pub(crate) fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some(h * 60 + m)
}

fn weekday(d: chrono::Weekday) -> Weekday {
    match d {
        chrono::Weekday::Mon => Weekday::Monday,
        chrono::Weekday::Tue => Weekday::Tuesday,
        chrono::Weekday::Wed => Weekday::Wednesday,
        chrono::Weekday::Thu => Weekday::Thursday,
        chrono::Weekday::Fri => Weekday::Friday,
        chrono::Weekday::Sat => Weekday::Saturday,
        chrono::Weekday::Sun => Weekday::Sunday,
    }
}

impl Hours {
    /// Parses the tenant's business hours and holidays (`YYYY-MM-DD`).
    pub fn parse(hours: &[BusinessHours], holidays: &[String]) -> Result<Self, HoursError> {
        let mut intervals = Vec::with_capacity(hours.len());
        for (i, h) in hours.iter().enumerate() {
            let err = |field: &str, value: &str| HoursError {
                field: format!("spec.profile.businessHours[{i}].{field}"),
                value: value.to_owned(),
                expected: "a 24-hour HH:MM time",
            };
            let open = minutes(&h.open).ok_or_else(|| err("open", &h.open))?;
            let close = minutes(&h.close).ok_or_else(|| err("close", &h.close))?;
            intervals.push((h.days.clone(), open, close));
        }
        let holidays = holidays
            .iter()
            .enumerate()
            .map(|(i, d)| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| HoursError {
                    field: format!("spec.profile.holidays[{i}].date"),
                    value: d.clone(),
                    expected: "a YYYY-MM-DD date",
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            intervals,
            holidays,
        })
    }

    /// Whether any hours are configured.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Whether the business is open on `date` at all.
    pub fn open_on(&self, date: NaiveDate) -> bool {
        !self.holidays.contains(&date)
            && self
                .intervals
                .iter()
                .any(|(days, _, _)| days.contains(&weekday(date.weekday())))
    }

    /// Whether `time` falls within the hours of `date`.
    pub fn open_at_local(&self, date: NaiveDate, time: NaiveTime) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        let minute = time.hour() * 60 + time.minute();
        let day = weekday(date.weekday());
        self.intervals
            .iter()
            .any(|(days, open, close)| days.contains(&day) && (*open..*close).contains(&minute))
    }

    /// Whether the business is open at `instant`, in time zone `tz`.
    pub fn open_at(&self, instant: DateTime<Utc>, tz: Tz) -> bool {
        let local = instant.with_timezone(&tz);
        self.open_at_local(local.date_naive(), local.time())
    }

    /// The hours as said aloud, e.g. `Monday to Friday, 8am to 5:30pm`.
    pub fn spoken(&self) -> String {
        if self.intervals.is_empty() {
            return "by appointment".to_owned();
        }
        self.intervals
            .iter()
            .map(|(days, open, close)| {
                format!(
                    "{}, {} to {}",
                    spoken_days(days),
                    clock(*open),
                    clock(*close)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

fn spoken_days(days: &[Weekday]) -> String {
    let mut idx: Vec<usize> = days
        .iter()
        .filter_map(|d| Weekday::ALL.iter().position(|w| w == d))
        .collect();
    idx.sort_unstable();
    idx.dedup();
    let consecutive = idx.windows(2).all(|w| w[1] == w[0] + 1);
    match idx.as_slice() {
        [] => String::new(),
        [one] => day_name(Weekday::ALL[*one]).to_owned(),
        [first, .., last] if consecutive && idx.len() > 2 => {
            format!(
                "{} to {}",
                day_name(Weekday::ALL[*first]),
                day_name(Weekday::ALL[*last])
            )
        }
        _ => {
            let names: Vec<String> = idx
                .iter()
                .map(|i| day_name(Weekday::ALL[*i]).to_owned())
                .collect();
            crate::phrasebook::spoken_list(&names, dialtone_crds::common::Locale::EnAu)
        }
    }
}

fn clock(minute: u32) -> String {
    let (h, m) = (minute / 60, minute % 60);
    if h == 24 || (h == 0 && m == 0) {
        return "midnight".to_owned();
    }
    if h == 12 && m == 0 {
        return "midday".to_owned();
    }
    let suffix = if h < 12 { "am" } else { "pm" };
    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
    if m == 0 {
        format!("{h12}{suffix}")
    } else {
        format!("{h12}:{m:02}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn weekdays() -> Hours {
        let hours = vec![BusinessHours {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            open: "08:00".into(),
            close: "17:30".into(),
        }];
        Hours::parse(&hours, &["2025-04-25".to_owned()]).expect("valid hours")
    }

    #[test]
    fn open_and_closed_in_the_tenant_zone() {
        let h = weekdays();
        let tz: Tz = "Australia/Sydney".parse().expect("tz");
        // Monday 2025-03-03 10:00 in Sydney (UTC+11) is 23:00 UTC on Sunday.
        assert!(
            h.open_at(
                Utc.with_ymd_and_hms(2025, 3, 2, 23, 0, 0)
                    .single()
                    .expect("t"),
                tz
            )
        );
        // 17:30 is closing time: closed.
        assert!(
            !h.open_at(
                Utc.with_ymd_and_hms(2025, 3, 3, 6, 30, 0)
                    .single()
                    .expect("t"),
                tz
            )
        );
        // Anzac Day (a Friday) is a holiday.
        assert!(!h.open_on(NaiveDate::from_ymd_opt(2025, 4, 25).expect("d")));
        assert!(
            !h.open_on(NaiveDate::from_ymd_opt(2025, 3, 8).expect("d")),
            "Saturday"
        );
    }

    #[test]
    fn hours_are_spoken_naturally() {
        assert_eq!(weekdays().spoken(), "Monday to Friday, 8am to 5:30pm");
    }

    #[test]
    fn malformed_times_are_reported_with_their_field() {
        let bad = vec![BusinessHours {
            days: vec![Weekday::Monday],
            open: "8am".into(),
            close: "17:00".into(),
        }];
        let err = Hours::parse(&bad, &[]).expect_err("invalid");
        assert_eq!(err.field, "spec.profile.businessHours[0].open");
    }
}
