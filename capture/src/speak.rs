//! Read-backs: how the agent says a value to the caller.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike};

use crate::datetime::month_name;
use crate::{Locale, Value, format_number};

fn digit(d: char, locale: Locale) -> &'static str {
    match d {
        // Australians say "oh" in phone numbers; Americans more often "zero".
        '0' => match locale {
            Locale::EnAu => "oh",
            Locale::EnUs => "zero",
        },
        '1' => "one",
        '2' => "two",
        '3' => "three",
        '4' => "four",
        '5' => "five",
        '6' => "six",
        '7' => "seven",
        '8' => "eight",
        '9' => "nine",
        _ => "",
    }
}

fn digits_grouped(digits: &str, groups: &[usize], locale: Locale) -> String {
    let chars: Vec<char> = digits.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    for &g in groups {
        if i >= chars.len() {
            break;
        }
        let end = (i + g).min(chars.len());
        let words: Vec<&str> = chars[i..end].iter().map(|c| digit(*c, locale)).collect();
        out.push(words.join(" "));
        i = end;
    }
    if i < chars.len() {
        let words: Vec<&str> = chars[i..].iter().map(|c| digit(*c, locale)).collect();
        out.push(words.join(" "));
    }
    out.join(", ")
}

fn speak_phone(e164: &str, locale: Locale) -> String {
    let digits = e164.trim_start_matches('+');
    match (locale, digits) {
        (Locale::EnAu, d) if d.starts_with("61") => {
            let nat = &d[2..];
            if nat.starts_with("13") || nat.starts_with("18") {
                // 1300 123 456 / 13 12 34
                let groups: &[usize] = if nat.len() == 6 {
                    &[2, 2, 2]
                } else {
                    &[4, 3, 3]
                };
                digits_grouped(nat, groups, locale)
            } else if nat.starts_with('4') {
                digits_grouped(&format!("0{nat}"), &[4, 3, 3], locale)
            } else {
                digits_grouped(&format!("0{nat}"), &[2, 4, 4], locale)
            }
        }
        (Locale::EnUs, d) if d.starts_with('1') && d.len() == 11 => {
            digits_grouped(&d[1..], &[3, 3, 4], locale)
        }
        (_, d) => format!("plus {}", digits_grouped(d, &[2, 3, 3, 3, 3], locale)),
    }
}

fn pronounceable(word: &str) -> bool {
    word.len() >= 3
        && word.bytes().all(|b| b.is_ascii_alphabetic())
        && word.bytes().any(|b| b"aeiouy".contains(&b))
}

fn speak_email(addr: &str, locale: Locale) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        if pronounceable(word) {
            out.push(word.clone());
        } else {
            // Spell out initials and digit runs so they are not mumbled.
            let spelled: Vec<String> = word
                .chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        digit(c, locale).to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            out.push(spelled.join(" "));
        }
        word.clear();
    };
    for c in addr.chars() {
        let sym = match c {
            '.' => Some("dot"),
            '@' => Some("at"),
            '_' => Some("underscore"),
            '-' => Some("dash"),
            '+' => Some("plus"),
            _ => None,
        };
        match sym {
            Some(s) => {
                flush(&mut word, &mut out);
                out.push(s.to_string());
            }
            None => {
                // "smith99" reads as "smith nine nine".
                if word
                    .chars()
                    .last()
                    .is_some_and(|l| l.is_ascii_digit() != c.is_ascii_digit())
                {
                    flush(&mut word, &mut out);
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut out);
    out.join(" ")
}

fn ordinal_suffix(n: u32) -> &'static str {
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

fn speak_date(d: NaiveDate, locale: Locale) -> String {
    let wd = d.format("%A");
    let day = d.day();
    let m = month_name(d.month());
    match locale {
        Locale::EnAu => format!("{wd} the {day}{} of {m}", ordinal_suffix(day)),
        Locale::EnUs => format!("{wd}, {m} {day}{}", ordinal_suffix(day)),
    }
}

fn speak_time(t: NaiveTime, locale: Locale) -> String {
    let (h, m) = (t.hour(), t.minute());
    if m == 0 && h == 12 {
        return match locale {
            Locale::EnAu => "midday".to_string(),
            Locale::EnUs => "noon".to_string(),
        };
    }
    if m == 0 && h == 0 {
        return "midnight".to_string();
    }
    let (h12, pm) = match h {
        0 => (12, false),
        1..=11 => (h, false),
        12 => (12, true),
        _ => (h - 12, true),
    };
    let suffix = match (locale, pm) {
        (Locale::EnAu, false) => "am",
        (Locale::EnAu, true) => "pm",
        (Locale::EnUs, false) => "AM",
        (Locale::EnUs, true) => "PM",
    };
    if m == 0 {
        format!("{h12} {suffix}")
    } else {
        format!("{h12}:{m:02} {suffix}")
    }
}

fn currency_words(code: &str, locale: Locale) -> (&'static str, &'static str) {
    match (code, locale) {
        ("AUD", Locale::EnAu) | ("USD", Locale::EnUs) => ("dollars", "cents"),
        ("AUD", Locale::EnUs) => ("Australian dollars", "cents"),
        ("USD", Locale::EnAu) => ("US dollars", "cents"),
        ("NZD", _) => ("New Zealand dollars", "cents"),
        ("EUR", _) => ("euros", "cents"),
        ("GBP", _) => ("pounds", "pence"),
        _ => ("", ""),
    }
}

fn speak_money(cents: i64, currency: &str, locale: Locale) -> String {
    let (major, minor) = currency_words(currency, locale);
    let whole = cents.unsigned_abs() / 100;
    let part = cents.unsigned_abs() % 100;
    let sign = if cents < 0 { "minus " } else { "" };
    if major.is_empty() {
        return format!("{sign}{whole}.{part:02} {currency}");
    }
    let major = if whole == 1 {
        major.trim_end_matches('s')
    } else {
        major
    };
    let minor = if part == 1 {
        minor.trim_end_matches('s')
    } else {
        minor
    };
    match (whole, part) {
        (0, p) => format!("{sign}{p} {minor}"),
        (w, 0) => format!("{sign}{w} {major}"),
        (w, p) => format!("{sign}{w} {major} and {p} {minor}"),
    }
}

fn state_name(abbr: &str) -> &str {
    match abbr {
        "NSW" => "New South Wales",
        "VIC" => "Victoria",
        "QLD" => "Queensland",
        "SA" => "South Australia",
        "WA" => "Western Australia",
        "TAS" => "Tasmania",
        "NT" => "Northern Territory",
        "ACT" => "A C T",
        other => other,
    }
}

pub(crate) fn speak(value: &Value, locale: Locale) -> String {
    match value {
        Value::Phone(p) => speak_phone(p, locale),
        Value::Email(e) => speak_email(e, locale),
        Value::Name { .. } | Value::Choice(_) => value.display(),
        Value::Address {
            street,
            suburb,
            state,
            postcode,
        } => {
            let street = match street.split_once('/') {
                Some((unit, rest)) => format!("unit {unit}, {rest}"),
                None => street.clone(),
            };
            let pc: Vec<&str> = postcode.chars().map(|c| digit(c, locale)).collect();
            format!(
                "{street}, {suburb}, {}, {}",
                state_name(state),
                pc.join(" ")
            )
        }
        Value::Date(d) => speak_date(*d, locale),
        Value::Time(t) => speak_time(*t, locale),
        Value::DateTime(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(dt) => format!(
                "{} at {}",
                speak_date(dt.date_naive(), locale),
                speak_time(dt.time(), locale)
            ),
            Err(_) => s.clone(),
        },
        Value::Number(n) => format_number(*n),
        Value::Money { cents, currency } => speak_money(*cents, currency, locale),
        Value::YesNo(b) => if *b { "yes" } else { "no" }.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_backs() {
        let au = Locale::EnAu;
        assert_eq!(
            speak(&Value::Phone("+61412345678".into()), au),
            "oh four one two, three four five, six seven eight"
        );
        assert_eq!(
            speak(&Value::Phone("+61298765432".into()), au),
            "oh two, nine eight seven six, five four three two"
        );
        assert_eq!(
            speak(&Value::Phone("+12125550123".into()), Locale::EnUs),
            "two one two, five five five, zero one two three"
        );
        let dt = Value::DateTime("2026-11-24T14:00:00+11:00".into());
        assert_eq!(speak(&dt, au), "Tuesday the 24th of November at 2 pm");
        assert_eq!(speak(&dt, Locale::EnUs), "Tuesday, November 24th at 2 PM");
        assert_eq!(
            speak(&Value::Email("j.smith99@gmail.com".into()), au),
            "j dot smith nine nine at gmail dot com"
        );
        assert_eq!(
            speak(
                &Value::Money {
                    cents: 1250,
                    currency: "AUD".into()
                },
                au
            ),
            "12 dollars and 50 cents"
        );
        assert_eq!(
            speak(&Value::Time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()), au),
            "midday"
        );
    }
}
