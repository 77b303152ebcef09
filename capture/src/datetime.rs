//! Dates, times and date-times, relative to the tenant's "now" and timezone.
//!
//! How ambiguous cases resolve (recorded in the README):
//! * No am/pm: 7–11 → am, 12 → noon, 1–6 → pm (business hours), confidence
//!   0.7 so the engine confirms. A period word ("in the afternoon", "this
//!   arvo", "tonight") or 24-hour form settles it at 0.9+.
//! * "N to/past H": am/pm and periods belong to the named hour, and "to"
//!   counts back from it across noon and midnight ("five to one am" is
//!   00:55, "five to one pm" 12:55, "ten to midnight" 23:50). "Ten to
//!   twelve am/pm" is unsure: before midnight or before noon?
//! * A date without a year rolls forward to its next occurrence; "the
//!   third" is this month if not yet past, else next month. An explicit
//!   past date ("yesterday", "3/1/2020") is invalid.
//! * "Tuesday" is the coming Tuesday; said on a Tuesday it is unsure
//!   (tentatively next week's). "Next Tuesday" is unambiguous when the
//!   coming Tuesday is already in next calendar week (Mon–Sun); otherwise
//!   unsure, tentatively the week after. "Tuesday week" is a week after the
//!   coming Tuesday; "Tuesday next week" is the Tuesday of next week.
//! * Numeric dates follow the locale: 24/11 (en-AU), 11/24 (en-US); a form
//!   valid only the other way round is invalid.
//! * A date-time with a time but no date is today if still ahead, else
//!   tomorrow (confidence 0.7). A period without a time ("Monday morning")
//!   is unsure with a tentative 09:00/14:00/18:00/19:00 value.
//! * Ranges ("after 3", "between 2 and 4"), "asap", negations and two
//!   different dates or times are unsure.

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Weekday,
};

use crate::text::{
    digit_word, is_correction, is_filler, read_number, read_ordinal, small_number, tens_word,
    tokenize,
};
use crate::{Locale, ParseContext, Parsed, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Period {
    Morning,
    Afternoon,
    Evening,
    Night,
}

impl Period {
    fn default_time(self) -> NaiveTime {
        let h = match self {
            Period::Morning => 9,
            Period::Afternoon => 14,
            Period::Evening => 18,
            Period::Night => 19,
        };
        NaiveTime::from_hms_opt(h, 0, 0).unwrap_or(NaiveTime::MIN)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WdMod {
    Plain,
    This,
    Next,
    WeekAfter,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WeekHint {
    This,
    Next,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct HeardTime {
    hour: u32,
    minute: u32,
    /// Some(true) = pm, Some(false) = am.
    pm: Option<bool>,
    /// 24-hour form ("14:00", "09:30", "fourteen hundred").
    h24: bool,
    /// noon or midnight: already exact.
    exact: bool,
}

#[derive(Default)]
struct Scan {
    dates: Vec<(NaiveDate, f32)>,
    weekdays: Vec<(Weekday, WdMod)>,
    week_hint: Option<WeekHint>,
    times: Vec<HeardTime>,
    period: Option<Period>,
    vague_date: Option<&'static str>,
    vague_time: Option<&'static str>,
    invalid: Option<String>,
    unsure: Option<String>,
    approx: bool,
    hedged: bool,
    midnight: bool,
    time_invalid: Option<String>,
}

struct Env {
    today: NaiveDate,
    now_local: NaiveDateTime,
    locale: Locale,
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tues" | "tue" => Weekday::Tue,
        "wednesday" | "wed" | "weds" => Weekday::Wed,
        "thursday" | "thurs" | "thur" | "thu" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn month(w: &str) -> Option<u32> {
    Some(match w {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    })
}

fn period(w: &str) -> Option<Period> {
    Some(match w {
        "morning" | "mornin" => Period::Morning,
        "afternoon" | "arvo" => Period::Afternoon,
        "evening" => Period::Evening,
        "night" | "tonight" => Period::Night,
        _ => return None,
    })
}

/// Normalise tokens: "p.m"/"pm" forms, "2pm" → "2","pm", "4.30" → "4:30".
fn prepare(text: &str) -> Vec<String> {
    let raw = tokenize(text, &[':', '/', '-', '.', '\'']);
    let mut out: Vec<String> = Vec::with_capacity(raw.len() + 2);
    for t in raw {
        let t = match t.as_str() {
            "a.m" | "a.m." => "am".to_string(),
            "p.m" | "p.m." => "pm".to_string(),
            "tmrw" | "tomoz" | "tomorow" | "tommorow" | "tommorrow" => "tomorrow".to_string(),
            "o'clock" | "oclock" | "o'clok" => "oclock".to_string(),
            _ => t,
        };
        let (body, suffix) = if let Some(b) = t.strip_suffix("am").filter(|b| starts_digit(b)) {
            (b.to_string(), Some("am"))
        } else if let Some(b) = t.strip_suffix("pm").filter(|b| starts_digit(b)) {
            (b.to_string(), Some("pm"))
        } else {
            (t, None)
        };
        // "4.30" is how Australians write times.
        let body = match body.split_once('.') {
            Some((h, m))
                if (1..=2).contains(&h.len())
                    && m.len() == 2
                    && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) =>
            {
                format!("{h}:{m}")
            }
            _ => body,
        };
        if body.contains('-') && !starts_digit(&body) {
            // "twenty-sixth", "day-after-tomorrow"
            out.extend(
                body.split('-')
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
            );
        } else if !body.is_empty() {
            out.push(body);
        }
        if let Some(s) = suffix {
            out.push(s.to_string());
        }
    }
    // "p m" / "a m" spoken letter by letter.
    let mut merged: Vec<String> = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        let next = out.get(i + 1).map(String::as_str);
        if matches!(out[i].as_str(), "p" | "a") && next == Some("m") && i > 0 {
            merged.push(if out[i] == "p" { "pm" } else { "am" }.to_string());
            i += 2;
            continue;
        }
        merged.push(std::mem::take(&mut out[i]));
        i += 1;
    }
    merged
}

fn starts_digit(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
}

/// An hour 0..=23 at `i`: (hour, tokens used, 24-hour form).
fn hour_at(tokens: &[String], i: usize) -> Option<(u32, usize, bool)> {
    let t = tokens.get(i)?;
    if let Some(n) = small_number(t) {
        return (1..=19).contains(&n).then_some((n, 1, n > 12));
    }
    if t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = t.parse().ok()?;
        return (n <= 23).then_some((n, 1, n > 12 || n == 0 || t.starts_with('0')));
    }
    None
}

/// The hour before `hour` for "N to <hour>". On a 12-hour clock face the
/// hour before one is twelve, with the same am/pm: "five to one am" is
/// 12:55 am (00:55), "five to one pm" is 12:55 pm. In 24-hour form it wraps
/// at midnight: "ten to midnight" is 23:50.
fn hour_before(hour: u32, h24: bool) -> u32 {
    match (h24, hour) {
        (true, _) => (hour + 23) % 24,
        (false, 1) => 12,
        (false, h) => h - 1,
    }
}

/// Minutes after an hour: "oh five", "fifteen", "forty five", "30".
fn minute_at(tokens: &[String], i: usize) -> Option<(u32, usize)> {
    let t = tokens.get(i)?.as_str();
    if t == "oh" || t == "o" {
        let d = tokens
            .get(i + 1)
            .and_then(|w| digit_word(w))
            .filter(|d| *d > 0)?;
        return Some((d, 2));
    }
    if t == "hundred" {
        return Some((0, 1));
    }
    if let Some(n) = small_number(t).filter(|n| *n >= 10) {
        return Some((n, 1));
    }
    if let Some(n) = tens_word(t).filter(|n| *n <= 50) {
        let unit = tokens
            .get(i + 1)
            .and_then(|w| small_number(w))
            .filter(|u| (1..10).contains(u));
        return Some(match unit {
            Some(u) => (n + u, 2),
            None => (n, 1),
        });
    }
    if t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = t.parse().ok()?;
        return (n <= 59).then_some((n, 1));
    }
    None
}

/// am/pm or a period phrase after a time: returns (pm, period, used).
fn meridiem_at(tokens: &[String], i: usize) -> (Option<bool>, Option<Period>, usize) {
    let t = tokens.get(i).map(String::as_str);
    let n1 = tokens.get(i + 1).map(String::as_str);
    let n2 = tokens.get(i + 2).map(String::as_str);
    match (t, n1, n2) {
        (Some("am"), _, _) => (Some(false), None, 1),
        (Some("pm"), _, _) => (Some(true), None, 1),
        (Some("in"), Some("the"), Some(p)) if period(p).is_some() => (None, period(p), 3),
        (Some("at"), Some("night"), _) => (None, Some(Period::Night), 2),
        (Some("this"), Some(p), _) if period(p).is_some() => (None, period(p), 2),
        (Some(p), _, _) if period(p).is_some() => (None, period(p), 1),
        _ => (None, None, 0),
    }
}

fn colon_time(t: &str) -> Option<(u32, u32, bool)> {
    let (h, m) = t.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let hour: u32 = h.parse().ok()?;
    let minute: u32 = m.parse().ok()?;
    (hour <= 23 && minute <= 59).then_some((
        hour,
        minute,
        hour > 12 || hour == 0 || h.starts_with('0'),
    ))
}

impl Env {
    fn plus_days(&self, n: u64) -> NaiveDate {
        self.today
            .checked_add_days(Days::new(n))
            .unwrap_or(self.today)
    }

    /// The next occurrence of day/month on or after today.
    fn roll_forward(&self, day: u32, month: u32) -> Result<(NaiveDate, bool), String> {
        let y = self.today.year();
        // Just passed (within 30 days): more likely a slip than next year.
        if let Some(d) = NaiveDate::from_ymd_opt(y, month, day)
            && d < self.today
            && (self.today - d).num_days() <= 30
        {
            return Err("that date has just passed".to_string());
        }
        for year in [y, y + 1, y + 2, y + 3, y + 4] {
            if let Some(d) = NaiveDate::from_ymd_opt(year, month, day) {
                if d >= self.today {
                    return Ok((d, year != y));
                }
            } else if year == y && !(month == 2 && day == 29) {
                return Err(format!("{} has no day {day}", month_name(month)));
            }
        }
        Err("not a valid date".to_string())
    }

    fn explicit(&self, year: i32, month: u32, day: u32) -> Result<NaiveDate, String> {
        let d = NaiveDate::from_ymd_opt(year, month, day).ok_or("not a valid date")?;
        if d < self.today {
            return Err("that date has passed".to_string());
        }
        Ok(d)
    }

    /// "the third": this month if not past, else next month.
    fn day_of_month(&self, day: u32) -> Result<NaiveDate, String> {
        if !(1..=31).contains(&day) {
            return Err(format!("there is no day {day}"));
        }
        let first = self.today.with_day(1).unwrap_or(self.today);
        let target = if day >= self.today.day() {
            first
        } else {
            first.checked_add_months(Months::new(1)).unwrap_or(first)
        };
        NaiveDate::from_ymd_opt(target.year(), target.month(), day)
            .ok_or_else(|| format!("{} has no day {day}", month_name(target.month())))
    }
}

pub(crate) fn month_name(m: u32) -> &'static str {
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    .get((m as usize).wrapping_sub(1))
    .copied()
    .unwrap_or("that month")
}

fn year_at(tokens: &[String], i: usize) -> Option<i32> {
    let t = tokens.get(i)?;
    if t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()) {
        let y: i32 = t.parse().ok()?;
        return (1900..=2200).contains(&y).then_some(y);
    }
    None
}

/// A day number 1..=31 at `i`: ordinal or cardinal.
fn day_at(tokens: &[String], i: usize) -> Option<(u32, usize)> {
    if let Some((d, used)) = read_ordinal(tokens, i) {
        return (1..=31).contains(&d).then_some((d, used));
    }
    let p = read_number(tokens, i)?;
    (p.value.fract() == 0.0 && (1.0..=31.0).contains(&p.value) && !p.has_decimal)
        .then_some((p.value as u32, p.len))
}

fn scan(tokens: &[String], env: &Env) -> Scan {
    let mut s = Scan::default();
    let n = tokens.len();
    let content = tokens.iter().filter(|t| !is_filler(t)).count();
    let mut i = 0;
    while i < n {
        let t = tokens[i].as_str();
        let at = |k: usize| tokens.get(i + k).map(String::as_str);
        let prev = i.checked_sub(1).map(|p| tokens[p].as_str());

        // Relative days.
        match t {
            "today" => {
                s.dates.push((env.today, 0.95));
                i += 1;
                continue;
            }
            "tonight" => {
                s.dates.push((env.today, 0.95));
                s.period = Some(Period::Night);
                i += 1;
                continue;
            }
            "tomorrow" => {
                s.dates.push((env.plus_days(1), 0.95));
                i += 1;
                continue;
            }
            "christmas" | "xmas" => {
                let (d, m, used) = match at(1) {
                    Some("eve") => (24, 12, 2),
                    Some("day") => (25, 12, 2),
                    _ => (25, 12, 1),
                };
                push_day_month(&mut s, env, d, m, None, 0.9);
                i += used;
                continue;
            }
            "boxing" if at(1) == Some("day") => {
                push_day_month(&mut s, env, 26, 12, None, 0.9);
                i += 2;
                continue;
            }
            "new"
                if matches!(at(1), Some("year's" | "years" | "year"))
                    && matches!(at(2), Some("eve" | "day")) =>
            {
                let (d, m) = if at(2) == Some("eve") {
                    (31, 12)
                } else {
                    (1, 1)
                };
                push_day_month(&mut s, env, d, m, None, 0.9);
                i += 3;
                continue;
            }
            "no" if !s.times.is_empty() || !s.dates.is_empty() || !s.weekdays.is_empty() => {
                s.unsure = Some("the caller corrected themselves".to_string());
                i += 1;
                continue;
            }
            "yesterday" => {
                s.invalid = Some("that date has passed".to_string());
                i += 1;
                continue;
            }
            "day" if at(1) == Some("after") && at(2) == Some("tomorrow") => {
                s.dates.push((env.plus_days(2), 0.9));
                i += 3;
                continue;
            }
            "this" if at(1).and_then(period).is_some() => {
                s.dates.push((env.today, 0.95));
                s.period = at(1).and_then(period);
                i += 2;
                continue;
            }
            "in" | "within" => {
                // "in a fortnight", "in two weeks", "in 3 days"
                let (count, used) = if at(1) == Some("a") {
                    (Some(1u64), 1)
                } else {
                    match read_number(tokens, i + 1) {
                        Some(p) if p.value.fract() == 0.0 && p.value >= 1.0 && p.value <= 60.0 => {
                            (Some(p.value as u64), p.len)
                        }
                        _ => (None, 0),
                    }
                };
                if let Some(c) = count {
                    let unit = at(1 + used);
                    let days = match unit {
                        Some("day" | "days") => Some(c),
                        Some("week" | "weeks" | "week's") => Some(c * 7),
                        Some("fortnight" | "fortnights" | "fortnight's") => Some(c * 14),
                        _ => None,
                    };
                    if let Some(d) = days {
                        if t == "within" {
                            s.vague_date = Some("within a range of days");
                        } else {
                            s.dates.push((env.plus_days(d), 0.9));
                        }
                        i += 2 + used;
                        continue;
                    }
                    if matches!(unit, Some("hour" | "hours" | "minute" | "minutes")) {
                        s.unsure = Some("a time from now; give a clock time".to_string());
                        i += 2 + used;
                        continue;
                    }
                }
            }
            "a" if matches!(at(1), Some("week" | "fortnight"))
                && at(2) == Some("from")
                && matches!(at(3), Some("today" | "now")) =>
            {
                let d = if at(1) == Some("week") { 7 } else { 14 };
                s.dates.push((env.plus_days(d), 0.9));
                i += 4;
                continue;
            }
            "a" if at(1) == Some("week") => {
                // "a week Tuesday", "a week on Tuesday" (Australian): the
                // Tuesday after the coming one.
                let k = if at(2) == Some("on") { 3 } else { 2 };
                if let Some(wd) = at(k).and_then(weekday) {
                    s.weekdays.push((wd, WdMod::WeekAfter));
                    i += k + 1;
                    continue;
                }
            }
            "next" | "this" | "coming" if at(1) == Some("week") => {
                s.week_hint = Some(if t == "next" {
                    WeekHint::Next
                } else {
                    WeekHint::This
                });
                i += 2;
                continue;
            }
            _ => {}
        }

        // Weekdays with modifiers.
        let (wd_mod, wd_at) = match (t, at(1)) {
            ("next", Some(w)) if weekday(w).is_some() => (WdMod::Next, 1),
            ("this" | "coming", Some(w)) if weekday(w).is_some() => (WdMod::This, 1),
            ("this", Some("coming")) if at(2).and_then(weekday).is_some() => (WdMod::This, 2),
            _ => (WdMod::Plain, 0),
        };
        if let Some(wd) = at(wd_at).and_then(weekday) {
            let mut used = wd_at + 1;
            let mut m = wd_mod;
            if at(used) == Some("week") {
                m = WdMod::WeekAfter;
                used += 1;
            } else if at(used) == Some("fortnight") {
                s.vague_date = Some("that is a fortnight from which day?");
            }
            s.weekdays.push((wd, m));
            i += used;
            continue;
        }
        if let Some(w) = t.strip_suffix('s').and_then(weekday) {
            let _ = w;
            s.vague_date = Some("which week?");
            i += 1;
            continue;
        }

        // Month then day: "November 24th", "Nov the 24th, 2026".
        if let Some(m) = month(t) {
            let mut j = i + 1;
            if at(1) == Some("the") {
                j += 1;
            }
            if let Some((d, used)) = day_at(tokens, j) {
                j += used;
                let year = year_at(tokens, j);
                if year.is_some() {
                    j += 1;
                }
                push_day_month(&mut s, env, d, m, year, 0.9);
                i = j;
                continue;
            }
            if t != "may" && t != "mar" && t != "sat" && t != "sun" {
                s.vague_date = Some("which day of the month?");
            }
            i += 1;
            continue;
        }

        // Day then month: "24th of November", "the 3rd of Jan", "24 November".
        if let Some((d, used)) = day_at(tokens, i) {
            let mut j = i + used;
            if tokens.get(j).map(String::as_str) == Some("of") {
                j += 1;
            }
            if let Some(m) = tokens.get(j).and_then(|w| month(w)) {
                j += 1;
                let year = year_at(tokens, j);
                if year.is_some() {
                    j += 1;
                }
                push_day_month(&mut s, env, d, m, year, 0.9);
                i = j;
                continue;
            }
        }

        // Day of month alone: "the third", "on the 24th".
        if let Some((d, used)) = read_ordinal(tokens, i) {
            let numeric = t.bytes().next().is_some_and(|b| b.is_ascii_digit());
            let after = tokens.get(i + used).map(String::as_str);
            let is_date = (numeric || matches!(prev, Some("the" | "on")))
                && !matches!(
                    after,
                    Some("thing" | "available" | "week" | "one" | "time" | "slot" | "appointment")
                );
            if is_date {
                match env.day_of_month(d) {
                    Ok(date) => s.dates.push((date, 0.85)),
                    Err(e) => s.invalid = Some(e),
                }
                i += used;
                continue;
            }
        }

        // Numeric dates: 24/11, 11/24, 24/11/2026, 2026-11-24.
        if t.contains('/') || (t.contains('-') && starts_digit(t)) {
            let sep = if t.contains('/') { '/' } else { '-' };
            let parts: Vec<&str> = t.split(sep).collect();
            if parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                numeric_date(&mut s, env, &parts, sep);
                i += 1;
                continue;
            }
        }

        // Times.
        if let Some(used) = time_at(tokens, i, &mut s, content) {
            i += used;
            continue;
        }

        // Periods, vague and range words, hedges.
        if let Some(p) = period(t) {
            s.period = Some(p);
        } else {
            match t {
                "lunchtime" | "lunch" => s.vague_time = Some("what time at lunch?"),
                "weekend" => s.vague_date = Some("Saturday or Sunday?"),
                "month" | "sometime" | "soon" | "whenever" | "asap" | "anytime" => {
                    s.vague_date = Some("which day?");
                }
                "now" => s.unsure = Some("right now is not a booking time".to_string()),
                "after" | "before" | "between" | "until" | "till" | "from" => {
                    s.vague_time = Some("that is a range, not a time");
                }
                "or" => s.unsure = Some("heard alternatives".to_string()),
                "not" | "don't" | "can't" | "except" => {
                    s.unsure = Some("heard a negation".to_string());
                }
                "maybe" | "perhaps" | "probably" | "possibly" => s.hedged = true,
                "around" | "about" | "roughly" | "ish" | "approximately" => s.approx = true,
                "last" if at(1).and_then(weekday).is_some() || at(1) == Some("week") => {
                    s.invalid = Some("that date has passed".to_string());
                }
                _ => {
                    if is_correction(tokens, i) {
                        s.unsure = Some("the caller corrected themselves".to_string());
                    }
                }
            }
        }
        i += 1;
    }
    s
}

fn push_day_month(s: &mut Scan, env: &Env, d: u32, m: u32, year: Option<i32>, conf: f32) {
    let r = match year {
        Some(y) => env.explicit(y, m, d).map(|x| (x, conf + 0.05)),
        None => env
            .roll_forward(d, m)
            .map(|(x, rolled)| (x, if rolled { conf - 0.05 } else { conf })),
    };
    match r {
        Ok(x) => s.dates.push(x),
        Err(e) => s.invalid = Some(e),
    }
}

fn numeric_date(s: &mut Scan, env: &Env, parts: &[&str], sep: char) {
    let num = |p: &str| p.parse::<u32>().unwrap_or(0);
    match parts {
        [y, m, d] if y.len() == 4 => match y.parse::<i32>() {
            Ok(year) => match env.explicit(year, num(m), num(d)) {
                Ok(x) => s.dates.push((x, 0.95)),
                Err(e) => s.invalid = Some(e),
            },
            Err(_) => s.invalid = Some("not a valid date".to_string()),
        },
        [a, b] | [a, b, _] if sep == '/' => {
            let (day, mon) = match env.locale {
                Locale::EnAu => (num(a), num(b)),
                Locale::EnUs => (num(b), num(a)),
            };
            let order = match env.locale {
                Locale::EnAu => "day/month",
                Locale::EnUs => "month/day",
            };
            if !(1..=12).contains(&mon) || !(1..=31).contains(&day) {
                s.invalid = Some(format!("{} is not a valid {order} date", parts.join("/")));
                return;
            }
            // Both readings valid and different: the locale order is an assumption.
            let conf = if num(a) <= 12 && num(b) <= 12 && a != b {
                0.8
            } else {
                0.9
            };
            if let [_, _, y] = parts {
                let year = match y.len() {
                    2 => 2000 + num(y) as i32,
                    4 => num(y) as i32,
                    _ => {
                        s.invalid = Some("not a valid year".to_string());
                        return;
                    }
                };
                match env.explicit(year, mon, day) {
                    Ok(x) => s.dates.push((x, conf)),
                    Err(e) => s.invalid = Some(e),
                }
            } else {
                push_day_month(s, env, day, mon, None, conf);
            }
        }
        _ => {}
    }
}

/// Time expressions at `i`; returns tokens used.
fn time_at(tokens: &[String], i: usize, s: &mut Scan, content: usize) -> Option<usize> {
    let t = tokens[i].as_str();
    let at = |k: usize| tokens.get(i + k).map(String::as_str);
    let prev = i.checked_sub(1).map(|p| tokens[p].as_str());
    let exact = |h: u32| HeardTime {
        hour: h,
        minute: 0,
        pm: None,
        h24: true,
        exact: true,
    };
    match t {
        "noon" | "midday" => {
            s.times.push(exact(12));
            return Some(1);
        }
        "midnight" => {
            s.times.push(exact(0));
            s.midnight = true;
            return Some(1);
        }
        _ => {}
    }
    // "12 noon"
    if matches!(t, "12" | "twelve") && matches!(at(1), Some("noon" | "midday")) {
        s.times.push(exact(12));
        return Some(2);
    }

    // "half past four", "quarter to five", "ten past three", "twenty to six",
    // "a quarter to one", "one min to one am", "45 minutes past 2".
    let article = usize::from(t == "a");
    let minutes = match (article, at(article)) {
        (_, Some("quarter")) => Some((15, 1)),
        (1, Some("minute")) => Some((1, 1)),
        (0, Some("half")) => Some((30, 1)),
        (0, _) => read_number(tokens, i)
            .filter(|p| p.value.fract() == 0.0 && (1.0..=59.0).contains(&p.value))
            .map(|p| (p.value as u32, p.len)),
        _ => None,
    };
    if let Some((m, used)) = minutes {
        let mut j = i + article + used;
        if matches!(
            tokens.get(j).map(String::as_str),
            Some("minutes" | "minute" | "mins" | "min")
        ) {
            j += 1;
        }
        let rel = tokens.get(j).map(String::as_str);
        let is_past = matches!(rel, Some("past" | "after"));
        let is_to = matches!(rel, Some("to" | "til" | "till" | "before"));
        if is_past || is_to {
            // Noon and midnight are exact, so they count as 24-hour hours.
            let (hour, hused, h24) = match tokens.get(j + 1).map(String::as_str) {
                Some("noon" | "midday") => (12, 1, true),
                Some("midnight") => (0, 1, true),
                _ => hour_at(tokens, j + 1)?,
            };
            if hour > 12 && !h24 {
                return None;
            }
            let (pm, per, mused) = meridiem_at(tokens, j + 1 + hused);
            let used = j + 1 + hused + mused - i;
            // "ten to twelve am": am/pm belongs to the named hour (12 am is
            // midnight, so 23:50), but callers as often mean the time itself
            // (11:50 am). Both readings are plausible: ask.
            if is_to && !h24 && hour == 12 && pm.is_some() {
                s.vague_time = Some("just before midnight or just before noon?");
                return Some(used);
            }
            if per.is_some() {
                s.period = per;
            }
            // "quarter to one in the morning" is 00:45, though "twelve in
            // the morning" alone is unclear: the named hour settles it.
            let pm = if is_to && !h24 && hour == 1 && per == Some(Period::Morning) {
                Some(false)
            } else {
                pm
            };
            let (hour, minute) = if is_past {
                (hour, m)
            } else {
                (hour_before(hour, h24), 60 - m)
            };
            s.times.push(HeardTime {
                hour,
                minute,
                pm,
                h24,
                exact: false,
            });
            return Some(used);
        }
        // "half four" (Australian for 4:30).
        if t == "half"
            && let Some((hour, hused, false)) = hour_at(tokens, i + 1)
        {
            let (pm, per, mused) = meridiem_at(tokens, i + 1 + hused);
            if per.is_some() {
                s.period = per;
            }
            s.times.push(HeardTime {
                hour,
                minute: 30,
                pm,
                h24: false,
                exact: false,
            });
            return Some(1 + hused + mused);
        }
    }

    // "2:30", "14:00".
    if t.contains(':') && colon_time(t).is_none() {
        s.time_invalid = Some(format!("{t} is not a time"));
        return Some(1);
    }
    if let Some((hour, minute, h24)) = colon_time(t) {
        let (pm, per, mused) = meridiem_at(tokens, i + 1);
        if per.is_some() {
            s.period = per;
        }
        s.times.push(HeardTime {
            hour,
            minute,
            pm,
            h24: h24 && pm.is_none(),
            exact: false,
        });
        return Some(1 + mused);
    }

    // "1400 hours"
    if t.len() == 4
        && t.bytes().all(|b| b.is_ascii_digit())
        && matches!(at(1), Some("hours" | "hrs"))
    {
        let v: u32 = t.parse().ok()?;
        let (hour, minute) = (v / 100, v % 100);
        if hour <= 23 && minute <= 59 {
            s.times.push(HeardTime {
                hour,
                minute,
                pm: None,
                h24: true,
                exact: false,
            });
            return Some(2);
        }
    }

    let (hour, hused, h24) = hour_at(tokens, i)?;
    // "three o'clock"
    if at(hused) == Some("oclock") {
        let (pm, per, mused) = meridiem_at(tokens, i + hused + 1);
        if per.is_some() {
            s.period = per;
        }
        s.times.push(HeardTime {
            hour,
            minute: 0,
            pm,
            h24,
            exact: false,
        });
        return Some(hused + 1 + mused);
    }
    // "two thirty", "ten oh five", "fourteen hundred", "2 45 pm"
    if let Some((minute, mu)) = minute_at(tokens, i + hused) {
        // Not "two weeks", "3 days": those were read as relative dates.
        let (pm, per, mused) = meridiem_at(tokens, i + hused + mu);
        if per.is_some() {
            s.period = per;
        }
        let hundred = tokens.get(i + hused).is_some_and(|w| w == "hundred");
        s.times.push(HeardTime {
            hour,
            minute,
            pm,
            h24: h24 || hundred,
            exact: false,
        });
        return Some(hused + mu + mused);
    }
    // "2 pm", "two in the afternoon", "at 2", or a lone "two".
    let (pm, per, mused) = meridiem_at(tokens, i + hused);
    let cue = matches!(prev, Some("at" | "around" | "about" | "say" | "@"));
    if pm.is_some() || per.is_some() || cue || content == 1 {
        if per.is_some() {
            s.period = per;
        }
        s.times.push(HeardTime {
            hour,
            minute: 0,
            pm,
            h24,
            exact: false,
        });
        return Some(hused + mused);
    }
    None
}

enum DateOutcome {
    Ok(NaiveDate, f32),
    Tentative(NaiveDate, String),
    Unsure(String),
    Invalid(String),
    Missing,
}

fn resolve_weekday(wd: Weekday, m: WdMod, hint: Option<WeekHint>, env: &Env) -> DateOutcome {
    let today_wd = env.today.weekday().num_days_from_monday();
    let target = wd.num_days_from_monday();
    let ahead = u64::from((target + 7 - today_wd) % 7);
    let monday = env.today - Days::new(u64::from(today_wd));
    match (m, hint) {
        (_, Some(WeekHint::Next)) => {
            DateOutcome::Ok(monday + Days::new(7 + u64::from(target)), 0.9)
        }
        (_, Some(WeekHint::This)) => {
            let d = monday + Days::new(u64::from(target));
            if d < env.today {
                DateOutcome::Invalid(format!("{wd} this week has passed"))
            } else {
                DateOutcome::Ok(d, 0.9)
            }
        }
        (WdMod::WeekAfter, None) => {
            let a = if ahead == 0 { 7 } else { ahead };
            DateOutcome::Ok(env.plus_days(a + 7), 0.8)
        }
        (WdMod::This, None) => DateOutcome::Ok(env.plus_days(ahead), 0.9),
        (WdMod::Plain, None) => {
            if ahead == 0 {
                DateOutcome::Tentative(env.plus_days(7), "today or next week?".to_string())
            } else {
                DateOutcome::Ok(env.plus_days(ahead), 0.9)
            }
        }
        (WdMod::Next, None) => {
            let a = if ahead == 0 { 7 } else { ahead };
            let d = env.plus_days(a);
            if d < monday + Days::new(7) {
                DateOutcome::Tentative(
                    d + Days::new(7),
                    format!("next {wd}: this week's or the week after?"),
                )
            } else {
                DateOutcome::Ok(d, 0.85)
            }
        }
    }
}

fn resolve_date(s: &Scan, env: &Env) -> DateOutcome {
    if let Some(e) = &s.invalid {
        return DateOutcome::Invalid(e.clone());
    }
    if let Some(e) = &s.unsure {
        return DateOutcome::Unsure(e.clone());
    }
    if let Some((first, _)) = s.dates.first()
        && s.dates.iter().any(|(d, _)| d != first)
    {
        return DateOutcome::Unsure("heard two different dates".to_string());
    }
    if s.weekdays.len() > 1 && s.weekdays.iter().any(|w| w.0 != s.weekdays[0].0) {
        return DateOutcome::Unsure("heard two different days".to_string());
    }
    if let Some((d, conf)) = s
        .dates
        .iter()
        .copied()
        .fold(None, |acc: Option<(NaiveDate, f32)>, x| {
            Some(acc.map_or(x, |a| (a.0, a.1.max(x.1))))
        })
    {
        if let Some((wd, _)) = s.weekdays.first() {
            if d.weekday() != *wd {
                return DateOutcome::Unsure(format!("{wd} does not match {}", d.format("%-d %B")));
            }
            return DateOutcome::Ok(d, conf.max(0.95));
        }
        return DateOutcome::Ok(d, conf);
    }
    if let Some((wd, m)) = s.weekdays.first() {
        return resolve_weekday(*wd, *m, s.week_hint, env);
    }
    if let Some(v) = s.vague_date {
        return DateOutcome::Unsure(v.to_string());
    }
    if s.week_hint.is_some() {
        return DateOutcome::Unsure("which day that week?".to_string());
    }
    DateOutcome::Missing
}

enum TimeOutcome {
    Ok(NaiveTime, f32),
    Tentative(NaiveTime, String),
    Unsure(String),
    Invalid(String),
    Missing,
}

fn resolve_time(s: &Scan) -> TimeOutcome {
    if let Some(e) = &s.unsure {
        return TimeOutcome::Unsure(e.clone());
    }
    if let Some(e) = &s.time_invalid {
        return TimeOutcome::Invalid(e.clone());
    }
    if let Some(first) = s.times.first()
        && s.times.iter().any(|t| t != first)
    {
        return TimeOutcome::Unsure("heard two different times".to_string());
    }
    if let Some(v) = s.vague_time {
        return TimeOutcome::Unsure(v.to_string());
    }
    let Some(t) = s.times.first().copied() else {
        return match s.period {
            Some(p) => TimeOutcome::Tentative(p.default_time(), "what time exactly?".to_string()),
            None => TimeOutcome::Missing,
        };
    };
    if t.minute > 59 {
        return TimeOutcome::Invalid("minutes must be under 60".to_string());
    }
    let (hour, conf): (u32, f32) = if t.exact {
        (t.hour, 0.95)
    } else if let Some(pm) = t.pm {
        if !(1..=12).contains(&t.hour) {
            if t.hour == 0 && !pm {
                (0, 0.9)
            } else {
                return TimeOutcome::Invalid(format!(
                    "{} {} is not a time",
                    t.hour,
                    if pm { "pm" } else { "am" }
                ));
            }
        } else {
            match (pm, t.hour) {
                (true, 12) => (12, 0.95),
                (true, h) => (h + 12, 0.95),
                (false, 12) => (0, 0.95),
                (false, h) => (h, 0.95),
            }
        }
    } else if t.h24 {
        (t.hour, 0.95)
    } else if let Some(p) = s.period {
        let h = t.hour;
        let resolved = match p {
            Period::Morning => (1..=11).contains(&h).then_some(h),
            Period::Afternoon => match h {
                12 => Some(12),
                1..=6 => Some(h + 12),
                _ => None,
            },
            Period::Evening => (4..=11).contains(&h).then_some(h + 12),
            Period::Night => (6..=11).contains(&h).then_some(h + 12),
        };
        match resolved {
            Some(h) => (h, 0.9),
            None => {
                return TimeOutcome::Unsure(format!("{h} in the {p:?} is unclear").to_lowercase());
            }
        }
    } else {
        match t.hour {
            12 => (12, 0.8),
            7..=11 => (t.hour, 0.7),
            1..=6 => (t.hour + 12, 0.7),
            _ => return TimeOutcome::Unsure("am or pm?".to_string()),
        }
    };
    match NaiveTime::from_hms_opt(hour, t.minute, 0) {
        Some(time) => TimeOutcome::Ok(time, if s.approx { conf.min(0.65) } else { conf }),
        None => TimeOutcome::Invalid("not a valid time".to_string()),
    }
}

fn env_for(ctx: &ParseContext) -> Env {
    let local = ctx.now.with_timezone(&ctx.timezone);
    Env {
        today: local.date_naive(),
        now_local: local.naive_local(),
        locale: ctx.locale,
    }
}

fn date_value(d: NaiveDate) -> Value {
    Value::Date(d)
}

/// A calendar date.
pub(crate) fn parse_date(text: &str, ctx: &ParseContext) -> Parsed {
    let env = env_for(ctx);
    let tokens = prepare(text);
    let s = scan(&tokens, &env);
    let hedged = s.hedged;
    match resolve_date(&s, &env) {
        DateOutcome::Ok(d, _) if hedged => {
            Parsed::tentative(date_value(d), 0.45, "the caller was not sure")
        }
        DateOutcome::Ok(d, c) => Parsed::ok(date_value(d), c),
        DateOutcome::Tentative(d, r) => Parsed::tentative(date_value(d), 0.45, r),
        DateOutcome::Unsure(r) => Parsed::unsure(r),
        DateOutcome::Invalid(r) => Parsed::invalid(r),
        DateOutcome::Missing => Parsed::unsure("no date heard"),
    }
}

/// A time of day.
pub(crate) fn parse_time(text: &str, ctx: &ParseContext) -> Parsed {
    let env = env_for(ctx);
    let tokens = prepare(text);
    let s = scan(&tokens, &env);
    match resolve_time(&s) {
        TimeOutcome::Ok(t, _) if s.hedged => {
            Parsed::tentative(Value::Time(t), 0.45, "the caller was not sure")
        }
        TimeOutcome::Ok(t, c) => Parsed::ok(Value::Time(t), c),
        TimeOutcome::Tentative(t, r) => Parsed::tentative(Value::Time(t), 0.4, r),
        TimeOutcome::Unsure(r) => Parsed::unsure(r),
        TimeOutcome::Invalid(r) => Parsed::invalid(r),
        TimeOutcome::Missing => Parsed::unsure("no time heard"),
    }
}

fn rfc3339(ndt: NaiveDateTime, tz: chrono_tz::Tz) -> Result<(String, bool), String> {
    let fmt = |d: DateTime<chrono_tz::Tz>| d.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
    match tz.from_local_datetime(&ndt) {
        LocalResult::Single(d) => Ok((fmt(d), false)),
        LocalResult::Ambiguous(a, _) => Ok((fmt(a), true)),
        LocalResult::None => Err("that time does not exist (daylight saving change)".to_string()),
    }
}

/// A date and time.
pub(crate) fn parse_datetime(text: &str, ctx: &ParseContext) -> Parsed {
    let env = env_for(ctx);
    let tokens = prepare(text);
    let s = scan(&tokens, &env);
    if s.midnight {
        return Parsed::unsure("midnight: the start or the end of that day?");
    }
    let date = resolve_date(&s, &env);
    let time = resolve_time(&s);
    let (time, tconf, t_tentative) = match time {
        TimeOutcome::Ok(t, c) => (t, c, None),
        TimeOutcome::Tentative(t, r) => (t, 0.4, Some(r)),
        TimeOutcome::Unsure(r) => return Parsed::unsure(r),
        TimeOutcome::Invalid(r) => return Parsed::invalid(r),
        TimeOutcome::Missing => {
            return match date {
                DateOutcome::Invalid(r) => Parsed::invalid(r),
                DateOutcome::Unsure(r) => Parsed::unsure(r),
                _ => Parsed::unsure("no time given"),
            };
        }
    };
    let (day, dconf, d_tentative, date_given) = match date {
        DateOutcome::Ok(d, c) => (d, c, None, true),
        DateOutcome::Tentative(d, r) => (d, 0.45, Some(r), true),
        DateOutcome::Unsure(r) => return Parsed::unsure(r),
        DateOutcome::Invalid(r) => return Parsed::invalid(r),
        DateOutcome::Missing => {
            // A bare time: today if still ahead, else tomorrow.
            if time > env.now_local.time() {
                (env.today, 0.8, None, false)
            } else {
                (env.plus_days(1), 0.7, None, false)
            }
        }
    };
    let ndt = day.and_time(time);
    if date_given && ndt <= env.now_local {
        return Parsed::invalid("that time has already passed");
    }
    let (text, ambiguous) = match rfc3339(ndt, ctx.timezone) {
        Ok(x) => x,
        Err(e) => return Parsed::invalid(e),
    };
    let mut conf = dconf.min(tconf);
    if ambiguous {
        conf = conf.min(0.7);
    }
    let v = Value::DateTime(text);
    if let Some(r) = d_tentative.or(t_tentative) {
        return Parsed::tentative(v, conf.min(0.45), r);
    }
    if s.hedged {
        return Parsed::tentative(v, 0.45, "the caller was not sure");
    }
    Parsed::ok(v, conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;

    fn ctx(locale: Locale) -> ParseContext<'static> {
        ParseContext {
            locale,
            timezone: chrono_tz::Australia::Sydney,
            // Wednesday 2026-11-18 10:00 in Sydney.
            now: chrono::Utc
                .with_ymd_and_hms(2026, 11, 17, 23, 0, 0)
                .unwrap(),
            choices: &[],
        }
    }

    fn d(text: &str) -> (ParseStatus, Option<String>) {
        let p = parse_date(text, &ctx(Locale::EnAu));
        (p.status, p.value.map(|v| v.display()))
    }

    fn t(text: &str) -> (ParseStatus, Option<String>, f32) {
        let p = parse_time(text, &ctx(Locale::EnAu));
        (p.status, p.value.map(|v| v.display()), p.confidence)
    }

    fn dt(text: &str) -> (ParseStatus, Option<String>) {
        let p = parse_datetime(text, &ctx(Locale::EnAu));
        (p.status, p.value.map(|v| v.display()))
    }

    #[test]
    fn dates() {
        use ParseStatus::*;
        assert_eq!(d("next Tuesday afternoon"), (Ok, Some("2026-11-24".into())));
        assert_eq!(d("the third"), (Ok, Some("2026-12-03".into())));
        assert_eq!(d("in a fortnight"), (Ok, Some("2026-12-02".into())));
        assert_eq!(d("24th of November"), (Ok, Some("2026-11-24".into())));
        assert_eq!(d("24/11"), (Ok, Some("2026-11-24".into())));
        assert_eq!(d("11/24").0, Invalid);
        assert_eq!(d("yesterday").0, Invalid);
        assert_eq!(d("next Thursday").0, Unsure);
        assert_eq!(d("Wednesday").0, Unsure);
        assert_eq!(d("tuesday week"), (Ok, Some("2026-12-01".into())));
        assert_eq!(d("the 5th of January"), (Ok, Some("2027-01-05".into())));
        assert_eq!(d("Tuesday the 24th"), (Ok, Some("2026-11-24".into())));
        assert_eq!(d("Tuesday the 25th").0, Unsure);
        let us = parse_date("11/24", &ctx(Locale::EnUs));
        assert_eq!(us.value.unwrap().display(), "2026-11-24");
    }

    #[test]
    fn times() {
        use ParseStatus::*;
        assert_eq!(t("half past four").1.as_deref(), Some("16:30"));
        assert_eq!(
            t("quarter to five in the morning").1.as_deref(),
            Some("04:45")
        );
        assert_eq!(t("noon"), (Ok, Some("12:00".into()), 0.95));
        assert_eq!(t("2pm"), (Ok, Some("14:00".into()), 0.95));
        assert_eq!(t("at 2"), (Ok, Some("14:00".into()), 0.7));
        assert_eq!(t("ten thirty"), (Ok, Some("10:30".into()), 0.7));
        assert_eq!(t("14:00").1.as_deref(), Some("14:00"));
        assert_eq!(t("this arvo").0, Unsure);
        assert_eq!(t("after 3").0, Unsure);
    }

    /// "N to/past H" across the midnight and noon boundaries: am/pm and
    /// periods belong to the named hour; "to" subtracts from it.
    #[test]
    fn minutes_to_and_past_an_hour() {
        use ParseStatus::*;
        let cases: &[(&str, ParseStatus, Option<&str>)] = &[
            // The held-out case and its abbreviations.
            ("one min to one am", Ok, Some("00:59")),
            ("one minute to one am", Ok, Some("00:59")),
            ("a minute to one am", Ok, Some("00:59")),
            ("1 min to 1am", Ok, Some("00:59")),
            ("two mins to one am", Ok, Some("00:58")),
            ("5 minutes to 1 a.m.", Ok, Some("00:55")),
            ("1 min past 2pm", Ok, Some("14:01")),
            ("ten mins past three pm", Ok, Some("15:10")),
            // Across midnight.
            ("five to one am", Ok, Some("00:55")),
            ("quarter to one am", Ok, Some("00:45")),
            ("a quarter to one in the morning", Ok, Some("00:45")),
            ("twenty to one am", Ok, Some("00:40")),
            ("ten to midnight", Ok, Some("23:50")),
            ("one minute to midnight", Ok, Some("23:59")),
            ("ten past midnight", Ok, Some("00:10")),
            ("ten past twelve am", Ok, Some("00:10")),
            ("half past twelve am", Ok, Some("00:30")),
            ("ten to twelve at night", Ok, Some("23:50")),
            // Across noon.
            ("five to one pm", Ok, Some("12:55")),
            ("quarter to one pm", Ok, Some("12:45")),
            ("ten to one in the afternoon", Ok, Some("12:50")),
            ("ten to noon", Ok, Some("11:50")),
            ("quarter past noon", Ok, Some("12:15")),
            ("ten past twelve pm", Ok, Some("12:10")),
            ("ten to twelve in the morning", Ok, Some("11:50")),
            ("ten to one", Ok, Some("12:50")),
            // "to twelve am/pm": midnight-ish or noon-ish? Ask.
            ("ten to twelve am", Unsure, None),
            ("ten to twelve pm", Unsure, None),
            ("five to 12 a.m.", Unsure, None),
            // Ordinary hours, with and without am/pm.
            ("quarter to five", Ok, Some("16:45")),
            ("quarter to five am", Ok, Some("04:45")),
            ("a quarter past ten", Ok, Some("10:15")),
            ("twenty five to three pm", Ok, Some("14:35")),
            ("forty five past two pm", Ok, Some("14:45")),
            ("fifty nine minutes past eleven pm", Ok, Some("23:59")),
            ("twenty to seven in the evening", Ok, Some("18:40")),
            ("half past six in the morning", Ok, Some("06:30")),
            ("quarter after three pm", Ok, Some("15:15")),
            ("ten till nine am", Ok, Some("08:50")),
            // Not times.
            ("at quarter past", Unsure, None),
            ("ten minutes to go", Unsure, None),
        ];
        for &(text, status, expected) in cases {
            let (got_status, got, _) = t(text);
            assert_eq!((got_status, got.as_deref()), (status, expected), "{text}");
        }
    }

    #[test]
    fn datetimes() {
        use ParseStatus::*;
        assert_eq!(
            dt("tomorrow at 2"),
            (Ok, Some("2026-11-19T14:00:00+11:00".into()))
        );
        assert_eq!(
            dt("this arvo at 3"),
            (Ok, Some("2026-11-18T15:00:00+11:00".into()))
        );
        assert_eq!(dt("today at 9am").0, Invalid);
        assert_eq!(dt("Monday morning").0, Unsure);
        assert_eq!(
            dt("next Tuesday at 2pm"),
            (Ok, Some("2026-11-24T14:00:00+11:00".into()))
        );
    }
}
