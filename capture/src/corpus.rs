//! The labelled corpus (`capture/corpus/*.tsv`) and its precision/recall
//! report, shared by the `corpus` test and the `corpus_report` example.
//!
//! Format: one case per line, tab-separated:
//! `locale  utterance  status  expected  [now]  [timezone]  [choices]`
//! * `status` is `ok`, `unsure` or `invalid`; `expected` is the value's
//!   [`Value::display`](crate::Value::display) form (required for `ok`).
//! * `now` (RFC 3339) and `timezone` (IANA) default to [`DEFAULT_NOW`] and
//!   [`DEFAULT_TIMEZONE`]; `choices` is `|`-separated.
//! * An utterance starting `dtmf:` is parsed with [`parse_dtmf`].
//! * `#` starts a comment; `#! choices: A|B|C` sets the default choices for
//!   the lines after it. A first line starting with `locale` is a header.
//!
//! Precision = correct Ok answers / all Ok answers (a wrong value with Ok
//! status, or Ok where unsure/invalid was expected, counts against it).
//! Recall = correct Ok answers / cases whose expected status is ok.

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::{
    CaptureError, Locale, ParseContext, ParseStatus, Parsed, Primitive, parse, parse_dtmf,
};

/// Default "now" of the corpus: Wednesday 18 November 2026, 10:00 in Sydney.
pub const DEFAULT_NOW: &str = "2026-11-18T10:00:00+11:00";
/// Default timezone of the corpus.
pub const DEFAULT_TIMEZONE: &str = "Australia/Sydney";

/// The corpus files compiled into the crate, one per primitive.
pub const BUILTIN: [(Primitive, &str); 11] = [
    (Primitive::Phone, include_str!("../corpus/phone.tsv")),
    (Primitive::Email, include_str!("../corpus/email.tsv")),
    (Primitive::Name, include_str!("../corpus/name.tsv")),
    (Primitive::Address, include_str!("../corpus/address.tsv")),
    (Primitive::Date, include_str!("../corpus/date.tsv")),
    (Primitive::Time, include_str!("../corpus/time.tsv")),
    (Primitive::DateTime, include_str!("../corpus/dateTime.tsv")),
    (Primitive::Number, include_str!("../corpus/number.tsv")),
    (Primitive::Money, include_str!("../corpus/money.tsv")),
    (Primitive::YesNo, include_str!("../corpus/yesNo.tsv")),
    (Primitive::Choice, include_str!("../corpus/choice.tsv")),
];

/// One labelled utterance.
#[derive(Debug, Clone)]
pub struct Case {
    /// The primitive under test.
    pub primitive: Primitive,
    /// 1-based line in its file.
    pub line: usize,
    /// Caller locale.
    pub locale: Locale,
    /// The transcript (without any `dtmf:` prefix).
    pub utterance: String,
    /// Parse with [`parse_dtmf`] instead of [`parse`].
    pub dtmf: bool,
    /// Expected status.
    pub status: ParseStatus,
    /// Expected canonical value (for ok cases).
    pub expected: Option<String>,
    /// Injected "now".
    pub now: DateTime<Utc>,
    /// Tenant timezone.
    pub timezone: chrono_tz::Tz,
    /// Allowed options (choice).
    pub choices: Vec<String>,
}

impl Case {
    /// Run the parser on this case.
    pub fn run(&self) -> Parsed {
        let ctx = ParseContext {
            locale: self.locale,
            timezone: self.timezone,
            now: self.now,
            choices: &self.choices,
        };
        if self.dtmf {
            parse_dtmf(self.primitive, &self.utterance, &ctx)
        } else {
            parse(self.primitive, &self.utterance, &ctx)
        }
    }
}

/// How one answer compares with its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ok with the expected value.
    Correct,
    /// Ok with a wrong value, or Ok where unsure/invalid was expected: the
    /// worst failure.
    WrongOk,
    /// Expected ok, answered unsure/invalid (costs recall only).
    Missed,
    /// Expected unsure/invalid and got exactly that.
    Agreed,
    /// Expected unsure, got invalid or the other way round.
    OtherStatus,
}

/// A case with its answer.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The labelled case.
    pub case: Case,
    /// What the parser said.
    pub got: Parsed,
    /// The comparison.
    pub verdict: Verdict,
}

/// Counts for one primitive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// The primitive.
    pub primitive: Primitive,
    /// Cases.
    pub lines: usize,
    /// Cases labelled ok.
    pub expected_ok: usize,
    /// Answers with Ok status.
    pub ok_answers: usize,
    /// Ok answers with the expected value.
    pub correct_ok: usize,
    /// Ok answers that are wrong.
    pub wrong_ok: usize,
    /// Unsure/invalid labels answered with the same status.
    pub agreed: usize,
}

impl Stats {
    /// Correct Ok answers over all Ok answers (1.0 when there are none).
    pub fn precision(&self) -> f64 {
        if self.ok_answers == 0 {
            1.0
        } else {
            self.correct_ok as f64 / self.ok_answers as f64
        }
    }

    /// Correct Ok answers over cases labelled ok (1.0 when there are none).
    pub fn recall(&self) -> f64 {
        if self.expected_ok == 0 {
            1.0
        } else {
            self.correct_ok as f64 / self.expected_ok as f64
        }
    }

    fn add(&mut self, other: &Stats) {
        self.lines += other.lines;
        self.expected_ok += other.expected_ok;
        self.ok_answers += other.ok_answers;
        self.correct_ok += other.correct_ok;
        self.wrong_ok += other.wrong_ok;
        self.agreed += other.agreed;
    }
}

fn err(primitive: Primitive, line: usize, message: impl Into<String>) -> CaptureError {
    CaptureError::Corpus {
        file: format!("{}.tsv", primitive.as_str()),
        line,
        message: message.into(),
    }
}

/// Read one corpus file.
pub fn read_cases(primitive: Primitive, text: &str) -> Result<Vec<Case>, CaptureError> {
    let default_now = DateTime::parse_from_rfc3339(DEFAULT_NOW)
        .map_err(|e| err(primitive, 0, e.to_string()))?
        .with_timezone(&Utc);
    let default_tz =
        chrono_tz::Tz::from_str(DEFAULT_TIMEZONE).map_err(|e| err(primitive, 0, e.to_string()))?;
    let mut choices: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        if let Some(directive) = raw.strip_prefix("#!") {
            if let Some(list) = directive.trim().strip_prefix("choices:") {
                choices = split_choices(list);
            }
            continue;
        }
        if raw.trim().is_empty() || raw.starts_with('#') || raw.starts_with("locale\t") {
            continue;
        }
        let cols: Vec<&str> = raw.split('\t').collect();
        if cols.len() < 3 {
            return Err(err(
                primitive,
                line,
                "expected at least 3 tab-separated columns",
            ));
        }
        let locale =
            Locale::from_str(cols[0].trim()).map_err(|e| err(primitive, line, e.to_string()))?;
        let status = match cols[2].trim() {
            "ok" => ParseStatus::Ok,
            "unsure" => ParseStatus::Unsure,
            "invalid" => ParseStatus::Invalid,
            other => return Err(err(primitive, line, format!("unknown status {other:?}"))),
        };
        let expected = cols
            .get(3)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if status == ParseStatus::Ok && expected.is_none() {
            return Err(err(primitive, line, "an ok case needs an expected value"));
        }
        let now = match cols.get(4).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map_err(|e| err(primitive, line, format!("bad now: {e}")))?
                .with_timezone(&Utc),
            None => default_now,
        };
        let timezone = match cols.get(5).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(s) => chrono_tz::Tz::from_str(s)
                .map_err(|e| err(primitive, line, format!("bad timezone: {e}")))?,
            None => default_tz,
        };
        let case_choices = match cols.get(6).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            Some(s) => split_choices(s),
            None => choices.clone(),
        };
        let (utterance, dtmf) = match cols[1].strip_prefix("dtmf:") {
            Some(keys) => (keys.to_string(), true),
            None => (cols[1].to_string(), false),
        };
        out.push(Case {
            primitive,
            line,
            locale,
            utterance,
            dtmf,
            status,
            expected,
            now,
            timezone,
            choices: case_choices,
        });
    }
    Ok(out)
}

fn split_choices(list: &str) -> Vec<String> {
    list.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Run every case of one file.
pub fn evaluate(primitive: Primitive, text: &str) -> Result<(Stats, Vec<Outcome>), CaptureError> {
    let cases = read_cases(primitive, text)?;
    let mut stats = Stats {
        primitive,
        lines: 0,
        expected_ok: 0,
        ok_answers: 0,
        correct_ok: 0,
        wrong_ok: 0,
        agreed: 0,
    };
    let mut outcomes = Vec::with_capacity(cases.len());
    for case in cases {
        let got = case.run();
        let value = got.value.as_ref().map(crate::Value::display);
        let verdict = match (case.status, got.status) {
            (ParseStatus::Ok, ParseStatus::Ok) if value == case.expected => Verdict::Correct,
            (_, ParseStatus::Ok) => Verdict::WrongOk,
            (ParseStatus::Ok, _) => Verdict::Missed,
            (a, b) if a == b => Verdict::Agreed,
            _ => Verdict::OtherStatus,
        };
        stats.lines += 1;
        stats.expected_ok += usize::from(case.status == ParseStatus::Ok);
        stats.ok_answers += usize::from(got.status == ParseStatus::Ok);
        stats.correct_ok += usize::from(verdict == Verdict::Correct);
        stats.wrong_ok += usize::from(verdict == Verdict::WrongOk);
        stats.agreed += usize::from(verdict == Verdict::Agreed);
        outcomes.push(Outcome { case, got, verdict });
    }
    Ok((stats, outcomes))
}

/// Run the whole built-in corpus.
pub fn evaluate_builtin() -> Result<Vec<(Stats, Vec<Outcome>)>, CaptureError> {
    BUILTIN.iter().map(|(p, text)| evaluate(*p, text)).collect()
}

/// A Markdown table of per-primitive precision and recall, with a total row.
pub fn report_table(stats: &[Stats]) -> String {
    let mut out = String::new();
    out.push_str("| primitive | lines | expected ok | ok answers | correct ok | wrong ok | precision | recall | unsure/invalid agreed |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut total = Stats {
        primitive: Primitive::Phone,
        lines: 0,
        expected_ok: 0,
        ok_answers: 0,
        correct_ok: 0,
        wrong_ok: 0,
        agreed: 0,
    };
    let mut row = |name: &str, s: &Stats| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {}/{} |",
            s.lines,
            s.expected_ok,
            s.ok_answers,
            s.correct_ok,
            s.wrong_ok,
            s.precision(),
            s.recall(),
            s.agreed,
            s.lines - s.expected_ok
        );
    };
    for s in stats {
        row(s.primitive.as_str(), s);
        total.add(s);
    }
    row("**total**", &total);
    out
}
