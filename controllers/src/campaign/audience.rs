//! A Campaign's audience as leads: inline leads or a CSV (RFC 4180: a header
//! row naming `phone` and optionally `name`, `timezone` and further fields;
//! quoted fields may hold commas, quotes as `""` and line breaks), numbers
//! normalised to E.164 with the tenant's region. A bad row is reported by
//! its line number and skipped; it never fails the rest.

use std::collections::BTreeSet;

use chrono_tz::Tz;
use dialtone_crds::campaign::Lead;
use dialtone_crds::common::Locale;
use dialtone_engine::dialing::normalize_phone;
use dialtone_spine::campaigns::LeadRow;

/// The most leads one Campaign may hold (the hosted peers stop at 10,000).
pub const MAX_LEADS: usize = 200_000;
/// The largest CSV read, in bytes (a Secret or ConfigMap holds at most 1 MiB
/// anyway).
pub const MAX_CSV_BYTES: usize = 1 << 20;
/// How many bad rows a condition lists by line (the rest are counted).
pub const LISTED_BAD_ROWS: usize = 5;

/// A row that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The line it starts on, from 1 (the header is line 1); for inline
    /// leads, the index in `spec.audience.leads`.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The leads of an audience, and what was skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Good leads, one per number (a repeated number keeps its first row).
    pub leads: Vec<LeadRow>,
    /// Skipped rows.
    pub bad: Vec<BadRow>,
}

/// Why a whole CSV cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// Nothing in it.
    #[error("the CSV is empty")]
    Empty,
    /// No `phone` column.
    #[error("the CSV header has no `phone` column (found: {0})")]
    NoPhoneColumn(String),
    /// Too large.
    #[error("the CSV is {0} bytes; at most {MAX_CSV_BYTES} are read")]
    TooLarge(usize),
    /// A quoted field never closes.
    #[error("line {0}: a quoted field is never closed")]
    Unterminated(usize),
}

fn check_timezone(tz: Option<&str>) -> Result<Option<String>, String> {
    match tz.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(name) => name
            .parse::<Tz>()
            .map(|_| Some(name.to_owned()))
            .map_err(|_| format!("timezone {name:?} is not an IANA timezone")),
    }
}

/// Splits CSV text into records, each with the line it starts on.
fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut record: Vec<String> = Vec::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                out.push((record_line, std::mem::take(&mut record)));
                line += 1;
                record_line = line;
            }
            c => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError::Unterminated(record_line));
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        out.push((record_line, record));
    }
    // Blank lines are not rows.
    out.retain(|(_, r)| !(r.len() == 1 && r[0].trim().is_empty()));
    Ok(out)
}

struct Dedup {
    seen: BTreeSet<String>,
    loaded: Loaded,
}

impl Dedup {
    fn push(&mut self, line: usize, row: Result<LeadRow, String>) {
        match row {
            Ok(lead) if self.loaded.leads.len() >= MAX_LEADS => self.loaded.bad.push(BadRow {
                line,
                reason: format!("{}: more than {MAX_LEADS} leads", lead.phone),
            }),
            Ok(lead) if !self.seen.insert(lead.phone.clone()) => self.loaded.bad.push(BadRow {
                line,
                reason: format!("{} is listed twice; the first row is kept", lead.phone),
            }),
            Ok(lead) => self.loaded.leads.push(lead),
            Err(reason) => self.loaded.bad.push(BadRow { line, reason }),
        }
    }
}

/// The leads of a CSV.
pub fn from_csv(text: &str, locale: Locale) -> Result<Loaded, CsvError> {
    if text.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge(text.len()));
    }
    let mut rows = records(text.trim_start_matches('\u{feff}'))?.into_iter();
    let (_, header) = rows.next().ok_or(CsvError::Empty)?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_lowercase()).collect();
    let column = |name: &str| header.iter().position(|h| h == name);
    let phone_at = column("phone").ok_or_else(|| CsvError::NoPhoneColumn(header.join(", ")))?;
    let (name_at, tz_at) = (column("name"), column("timezone"));
    let mut dedup = Dedup {
        seen: BTreeSet::new(),
        loaded: Loaded::default(),
    };
    for (line, record) in rows {
        if record.len() != header.len() {
            dedup.push(
                line,
                Err(format!(
                    "{} fields where the header has {}",
                    record.len(),
                    header.len()
                )),
            );
            continue;
        }
        let cell = |i: Option<usize>| {
            i.and_then(|i| record.get(i))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let row = normalize_phone(&record[phone_at], locale).and_then(|phone| {
            let timezone = check_timezone(cell(tz_at))?;
            let fields = header
                .iter()
                .zip(&record)
                .enumerate()
                .filter(|(i, (_, v))| {
                    *i != phone_at
                        && Some(*i) != name_at
                        && Some(*i) != tz_at
                        && !v.trim().is_empty()
                })
                .map(|(_, (k, v))| (k.clone(), serde_json::Value::String(v.trim().to_owned())))
                .collect();
            Ok(LeadRow {
                phone,
                name: cell(name_at).map(str::to_owned),
                timezone,
                fields,
            })
        });
        dedup.push(line, row);
    }
    Ok(dedup.loaded)
}

/// The leads listed in the spec.
pub fn from_inline(leads: &[Lead], locale: Locale) -> Loaded {
    let mut dedup = Dedup {
        seen: BTreeSet::new(),
        loaded: Loaded::default(),
    };
    for (i, lead) in leads.iter().enumerate() {
        let row = normalize_phone(&lead.phone, locale).and_then(|phone| {
            Ok(LeadRow {
                phone,
                name: lead.name.clone(),
                timezone: check_timezone(lead.timezone.as_deref())?,
                fields: lead
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            })
        });
        dedup.push(i, row);
    }
    dedup.loaded
}

/// The bad rows as a condition message: the first few by line, then a count.
pub fn describe_bad_rows(bad: &[BadRow], inline: bool) -> String {
    let place = if inline {
        "spec.audience.leads["
    } else {
        "line "
    };
    let close = if inline { "]" } else { "" };
    let mut parts: Vec<String> = bad
        .iter()
        .take(LISTED_BAD_ROWS)
        .map(|b| format!("{place}{}{close}: {}", b.line, b.reason))
        .collect();
    if bad.len() > LISTED_BAD_ROWS {
        parts.push(format!("and {} more", bad.len() - LISTED_BAD_ROWS));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_reported_by_line_and_the_rest_load() {
        let csv = "phone,name,timezone,service\n\
                   0412 345 678,Jane Citizen,Australia/Sydney,check-up\n\
                   not a number,Bob,,filling\n\
                   \n\
                   \"0413 000 111\",\"Smith, John\",Australia/Perth,\"clean, \"\"deep\"\"\"\n\
                   0414000222,Amy,Mars/Olympus,\n\
                   0412345678,Jane again,,\n\
                   0415000333,Too,many,fields,here\n";
        let loaded = from_csv(csv, Locale::EnAu).unwrap();
        let phones: Vec<&str> = loaded.leads.iter().map(|l| l.phone.as_str()).collect();
        assert_eq!(phones, ["+61412345678", "+61413000111"]);
        assert_eq!(loaded.leads[1].name.as_deref(), Some("Smith, John"));
        assert_eq!(loaded.leads[1].timezone.as_deref(), Some("Australia/Perth"));
        assert_eq!(
            loaded.leads[1].fields.get("service"),
            Some(&serde_json::json!("clean, \"deep\""))
        );
        let lines: Vec<usize> = loaded.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 6, 7, 8]);
        let message = describe_bad_rows(&loaded.bad, false);
        assert!(
            message.starts_with("line 3: \"not a number\" is not"),
            "{message}"
        );
        assert!(
            message.contains("line 6: timezone \"Mars/Olympus\""),
            "{message}"
        );
        assert!(
            message.contains("line 7: +61412345678 is listed twice"),
            "{message}"
        );
    }

    #[test]
    fn a_quoted_line_break_keeps_later_line_numbers_right() {
        let csv = "phone,notes\r\n0412345678,\"two\r\nlines\"\r\nbad,x\r\n";
        let loaded = from_csv(csv, Locale::EnAu).unwrap();
        assert_eq!(loaded.leads.len(), 1);
        assert_eq!(loaded.bad[0].line, 4);
    }

    #[test]
    fn a_csv_without_a_phone_column_or_with_an_open_quote_is_refused() {
        assert_eq!(
            from_csv("name,number\nJane,0412345678\n", Locale::EnAu),
            Err(CsvError::NoPhoneColumn("name, number".to_owned()))
        );
        assert_eq!(
            from_csv("phone\n\"0412345678\n", Locale::EnAu),
            Err(CsvError::Unterminated(2))
        );
        assert_eq!(from_csv("", Locale::EnAu), Err(CsvError::Empty));
    }
}
