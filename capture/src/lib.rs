//! Voice Core capture primitives.
//!
//! Each primitive turns a caller's transcript (speech-to-text output or DTMF
//! keypresses) into a normalised, validated [`Value`] with a confidence, or
//! says it is unsure. Everything here is pure and deterministic: "now", the
//! tenant's timezone and locale come in through [`ParseContext`], so the same
//! input always gives the same answer and calls can be replayed.
//!
//! Precision over recall: when a primitive is not sure it answers
//! [`ParseStatus::Unsure`] (no value, or a tentative value with confidence
//! below 0.6) rather than a wrong value. An [`ParseStatus::Ok`] answer with
//! confidence >= 0.8 can be trusted; the engine confirms lower ones.
//!
//! Decisions worth knowing (see `capture/README.md` for the full list):
//! * Australian 13/1300/1800 numbers are accepted and normalised to E.164
//!   (`+611300…`, `+6113…`); 8-digit landlines without an area code are
//!   unsure, with a tentative area code from the tenant's timezone.
//! * A time without am/pm resolves to business hours (7–11 → am, 12 → noon,
//!   1–6 → pm) at confidence 0.7, so the engine confirms it.
//! * Dates without a year roll forward to their next occurrence; an explicit
//!   past date is invalid.

mod address;
pub mod corpus;
mod datetime;
mod email;
mod name;
mod number;
mod phone;
mod speak;
mod text;
mod yesno;

mod choice;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kinds of value the Voice Core can capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum Primitive {
    /// A phone number, normalised to E.164.
    Phone,
    /// An email address.
    Email,
    /// A person's name (given and optional family name).
    Name,
    /// An Australian street address.
    Address,
    /// A calendar date in the tenant's timezone.
    Date,
    /// A time of day.
    Time,
    /// A date and time, as RFC 3339 with the tenant's offset.
    DateTime,
    /// A plain number.
    Number,
    /// An amount of money.
    Money,
    /// A yes or no answer.
    YesNo,
    /// One of a list of allowed options ([`ParseContext::choices`]).
    Choice,
}

impl Primitive {
    /// Every primitive, in declaration order.
    pub const ALL: [Primitive; 11] = [
        Primitive::Phone,
        Primitive::Email,
        Primitive::Name,
        Primitive::Address,
        Primitive::Date,
        Primitive::Time,
        Primitive::DateTime,
        Primitive::Number,
        Primitive::Money,
        Primitive::YesNo,
        Primitive::Choice,
    ];

    /// The primitive's name as used in configuration (camelCase).
    pub fn as_str(&self) -> &'static str {
        match self {
            Primitive::Phone => "phone",
            Primitive::Email => "email",
            Primitive::Name => "name",
            Primitive::Address => "address",
            Primitive::Date => "date",
            Primitive::Time => "time",
            Primitive::DateTime => "dateTime",
            Primitive::Number => "number",
            Primitive::Money => "money",
            Primitive::YesNo => "yesNo",
            Primitive::Choice => "choice",
        }
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Primitive {
    type Err = CaptureError;

    /// Accepts the camelCase names and the kebab forms `date-time`, `yes-no`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = match s {
            "date-time" => Primitive::DateTime,
            "yes-no" => Primitive::YesNo,
            _ => Primitive::ALL
                .into_iter()
                .find(|p| p.as_str() == s)
                .ok_or_else(|| CaptureError::UnknownPrimitive(s.to_string()))?,
        };
        Ok(p)
    }
}

/// The caller-facing locale: decides phone rules, date order and phrasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Locale {
    /// Australian English (the default).
    #[default]
    #[serde(rename = "en-AU")]
    EnAu,
    /// American English.
    #[serde(rename = "en-US")]
    EnUs,
}

impl Locale {
    /// The BCP 47 tag, e.g. `en-AU`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Locale::EnAu => "en-AU",
            Locale::EnUs => "en-US",
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = CaptureError;

    /// Accepts `en-AU`/`en-US`, case-insensitive, with `-` or `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "en-au" => Ok(Locale::EnAu),
            "en-us" => Ok(Locale::EnUs),
            _ => Err(CaptureError::UnknownLocale(s.to_string())),
        }
    }
}

/// Errors of this crate's fallible helpers (parsing never errors: it answers
/// [`ParseStatus::Invalid`] instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A primitive name that is not one of [`Primitive::ALL`].
    #[error("unknown capture primitive {0:?}")]
    UnknownPrimitive(String),
    /// A locale tag other than en-AU or en-US.
    #[error("unknown locale {0:?}")]
    UnknownLocale(String),
    /// A malformed line in a labelled corpus.
    #[error("corpus {file} line {line}: {message}")]
    Corpus {
        /// The corpus file (or primitive) name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Everything a parse depends on besides the text: no wall clock inside.
#[derive(Debug, Clone)]
pub struct ParseContext<'a> {
    /// The caller-facing locale.
    pub locale: Locale,
    /// The tenant's timezone; relative dates and times resolve in it.
    pub timezone: chrono_tz::Tz,
    /// The current instant (injected so parses are replayable).
    pub now: chrono::DateTime<chrono::Utc>,
    /// Allowed options for [`Primitive::Choice`], as configured.
    pub choices: &'a [String],
}

/// The outcome class of a parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ParseStatus {
    /// A value was understood; trust it when confidence >= 0.8.
    Ok,
    /// Not sure: ask again or confirm a tentative value.
    Unsure,
    /// Understood, but not a valid value (wrong digit count, past date…).
    Invalid,
}

/// The result of parsing one utterance for one primitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parsed {
    /// Ok, unsure or invalid.
    pub status: ParseStatus,
    /// The value (for unsure, an optional tentative value).
    pub value: Option<Value>,
    /// Confidence in `value`, 0..=1. Unsure answers stay below 0.6.
    pub confidence: f32,
    /// Why unsure/invalid: short, for logs and repair phrasing.
    pub reason: Option<String>,
}

impl Parsed {
    /// A confident (or to-be-confirmed, below 0.8) value.
    pub fn ok(value: Value, confidence: f32) -> Self {
        Parsed {
            status: ParseStatus::Ok,
            value: Some(value),
            confidence: confidence.clamp(0.0, 1.0),
            reason: None,
        }
    }

    /// Unsure without a value.
    pub fn unsure(reason: impl Into<String>) -> Self {
        Parsed {
            status: ParseStatus::Unsure,
            value: None,
            confidence: 0.0,
            reason: Some(reason.into()),
        }
    }

    /// Unsure with a tentative value; confidence is capped below 0.6.
    pub fn tentative(value: Value, confidence: f32, reason: impl Into<String>) -> Self {
        Parsed {
            status: ParseStatus::Unsure,
            value: Some(value),
            confidence: confidence.clamp(0.0, 0.55),
            reason: Some(reason.into()),
        }
    }

    /// Heard and understood, but not acceptable.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Parsed {
            status: ParseStatus::Invalid,
            value: None,
            confidence: 0.0,
            reason: Some(reason.into()),
        }
    }

    /// True when the status is Ok.
    pub fn is_ok(&self) -> bool {
        self.status == ParseStatus::Ok
    }
}

/// A captured value in canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "camelCase")]
pub enum Value {
    /// E.164, e.g. `+61412345678`.
    Phone(String),
    /// Lowercase address, e.g. `john.smith@gmail.com`.
    Email(String),
    /// A person's name.
    Name {
        /// Given name(s).
        given: String,
        /// Family name, when heard.
        family: Option<String>,
    },
    /// An Australian street address.
    Address {
        /// e.g. `3/12 Smith Street`.
        street: String,
        /// e.g. `Parramatta`.
        suburb: String,
        /// Abbreviation, e.g. `NSW`.
        state: String,
        /// Four digits.
        postcode: String,
    },
    /// A calendar date.
    Date(chrono::NaiveDate),
    /// A time of day.
    Time(chrono::NaiveTime),
    /// RFC 3339 with the tenant's offset, e.g. `2026-11-24T14:00:00+11:00`.
    DateTime(String),
    /// A number.
    Number(f64),
    /// Money in minor units (cents) and an ISO 4217 currency code.
    Money {
        /// Amount in cents.
        cents: i64,
        /// e.g. `AUD`.
        currency: String,
    },
    /// Yes (true) or no (false).
    YesNo(bool),
    /// The allowed option exactly as configured.
    Choice(String),
}

impl Value {
    /// Canonical text form used in read-backs and slot maps, e.g.
    /// `+61412345678`, `2026-11-24`, `14:00`, `AUD 12.50`, `yes`.
    pub fn display(&self) -> String {
        match self {
            Value::Phone(s) | Value::Email(s) | Value::DateTime(s) | Value::Choice(s) => s.clone(),
            Value::Name { given, family } => match family {
                Some(f) => format!("{given} {f}"),
                None => given.clone(),
            },
            Value::Address {
                street,
                suburb,
                state,
                postcode,
            } => format!("{street}, {suburb} {state} {postcode}"),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Time(t) => t.format("%H:%M").to_string(),
            Value::Number(n) => format_number(*n),
            Value::Money { cents, currency } => {
                let sign = if *cents < 0 { "-" } else { "" };
                let abs = cents.unsigned_abs();
                format!("{currency} {sign}{}.{:02}", abs / 100, abs % 100)
            }
            Value::YesNo(b) => if *b { "yes" } else { "no" }.to_string(),
        }
    }

    /// The primitive this value belongs to.
    pub fn primitive(&self) -> Primitive {
        match self {
            Value::Phone(_) => Primitive::Phone,
            Value::Email(_) => Primitive::Email,
            Value::Name { .. } => Primitive::Name,
            Value::Address { .. } => Primitive::Address,
            Value::Date(_) => Primitive::Date,
            Value::Time(_) => Primitive::Time,
            Value::DateTime(_) => Primitive::DateTime,
            Value::Number(_) => Primitive::Number,
            Value::Money { .. } => Primitive::Money,
            Value::YesNo(_) => Primitive::YesNo,
            Value::Choice(_) => Primitive::Choice,
        }
    }
}

/// Integers print without a fractional part; others use the shortest form
/// that round-trips.
pub(crate) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Parse a transcript for one primitive.
pub fn parse(primitive: Primitive, text: &str, ctx: &ParseContext) -> Parsed {
    if text.trim().is_empty() {
        return Parsed::unsure("nothing heard");
    }
    match primitive {
        Primitive::Phone => phone::parse(text, ctx),
        Primitive::Email => email::parse(text),
        Primitive::Name => name::parse(text),
        Primitive::Address => address::parse(text, ctx),
        Primitive::Date => datetime::parse_date(text, ctx),
        Primitive::Time => datetime::parse_time(text, ctx),
        Primitive::DateTime => datetime::parse_datetime(text, ctx),
        Primitive::Number => number::parse_number(text),
        Primitive::Money => number::parse_money(text, ctx),
        Primitive::YesNo => yesno::parse(text),
        Primitive::Choice => choice::parse(text, ctx.choices),
    }
}

/// Parse DTMF keypresses. Supported: phone (digits; a trailing `#` ends
/// entry), number (`*` is the decimal point), yesNo (1 = yes, 2 = no) and
/// choice (1-based index into [`ParseContext::choices`]).
pub fn parse_dtmf(primitive: Primitive, digits: &str, ctx: &ParseContext) -> Parsed {
    let keys: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
    let keys = keys.strip_suffix('#').unwrap_or(&keys);
    if keys.is_empty() {
        return Parsed::unsure("no keys pressed");
    }
    if !keys
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Parsed::invalid("not DTMF keys");
    }
    match primitive {
        Primitive::Phone => {
            if !keys.chars().all(|c| c.is_ascii_digit()) {
                return Parsed::invalid("only digits are valid in a phone number");
            }
            phone::from_digits(keys, false, ctx, 0.99)
        }
        Primitive::Number => {
            if keys.contains('#') || keys.matches('*').count() > 1 {
                return Parsed::invalid("use * once for a decimal point");
            }
            let s = keys.replace('*', ".");
            match s.parse::<f64>() {
                Ok(n) if n.is_finite() => Parsed::ok(Value::Number(n), 0.99),
                _ => Parsed::invalid("not a number"),
            }
        }
        Primitive::YesNo => match keys {
            "1" => Parsed::ok(Value::YesNo(true), 0.99),
            "2" => Parsed::ok(Value::YesNo(false), 0.99),
            _ => Parsed::invalid("press 1 for yes or 2 for no"),
        },
        Primitive::Choice => match keys.parse::<usize>() {
            Ok(i) if i >= 1 && i <= ctx.choices.len() => {
                Parsed::ok(Value::Choice(ctx.choices[i - 1].clone()), 0.99)
            }
            _ => Parsed::invalid(format!("choose a key from 1 to {}", ctx.choices.len())),
        },
        other => Parsed::invalid(format!("DTMF is not supported for {other}")),
    }
}

/// How the agent reads a value back, in the caller's locale.
pub fn speak(value: &Value, locale: Locale) -> String {
    speak::speak(value, locale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_names_round_trip() {
        for p in Primitive::ALL {
            assert_eq!(p.as_str().parse::<Primitive>(), Ok(p));
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!("date-time".parse(), Ok(Primitive::DateTime));
        assert_eq!("yes-no".parse(), Ok(Primitive::YesNo));
        assert!("phones".parse::<Primitive>().is_err());
    }

    #[test]
    fn locale_parses_and_serialises() {
        assert_eq!("en-AU".parse(), Ok(Locale::EnAu));
        assert_eq!("en_us".parse(), Ok(Locale::EnUs));
        assert!("fr-FR".parse::<Locale>().is_err());
        assert_eq!(serde_json::to_string(&Locale::EnAu).unwrap(), "\"en-AU\"");
    }

    #[test]
    fn value_serde_shape() {
        let v = Value::Money {
            cents: 1250,
            currency: "AUD".into(),
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"{"type":"money","value":{"cents":1250,"currency":"AUD"}}"#
        );
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        let d = Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"type":"date","value":"2026-11-24"}"#
        );
        assert_eq!(
            serde_json::to_string(&Value::YesNo(true)).unwrap(),
            r#"{"type":"yesNo","value":true}"#
        );
    }

    #[test]
    fn display_forms() {
        assert_eq!(Value::Number(25.0).display(), "25");
        assert_eq!(Value::Number(1.5).display(), "1.5");
        assert_eq!(
            Value::Money {
                cents: 5,
                currency: "USD".into()
            }
            .display(),
            "USD 0.05"
        );
        assert_eq!(
            Value::Time(chrono::NaiveTime::from_hms_opt(14, 0, 0).unwrap()).display(),
            "14:00"
        );
    }
}
