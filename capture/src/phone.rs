//! Phone numbers: spoken or typed digits to E.164.
//!
//! Australian rules (en-AU): mobiles `04` + 8 digits; geographic landlines
//! `02`/`03`/`07`/`08` + 8 digits; `1300`/`1800` + 6 digits and `13` + 4
//! digits are accepted and written as `+611300…`/`+6113…` (they cannot be
//! dialled from overseas, but E.164 is what routing and CRMs store). Eight
//! digits without an area code are unsure, with a tentative area code from
//! the tenant's timezone. US rules (en-US): NANP `NXX NXX XXXX`, optional
//! leading 1. A `+` or "plus" number with another country code is accepted
//! when it has 8–15 digits, at confidence 0.8.

use crate::text::{digit_word, is_correction, small_number, tens_word, tokenize};
use crate::{Locale, ParseContext, Parsed, Value};

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    /// Digits to append.
    Digits,
    /// A word that sounds like a digit ("for", "to") — a digit only between
    /// other digits.
    Homophone(u32),
    /// Anything else.
    Other,
}

fn homophone(w: &str) -> Option<u32> {
    match w {
        "for" | "fore" => Some(4),
        "to" | "too" => Some(2),
        "won" => Some(1),
        "ate" => Some(8),
        _ => None,
    }
}

/// Spoken or typed phone number.
pub(crate) fn parse(text: &str, ctx: &ParseContext) -> Parsed {
    let tokens = tokenize(text, &['+', '\'']);
    let kinds: Vec<Tok> = tokens
        .iter()
        .map(|t| {
            let t = t.trim_start_matches('+');
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())
                || digit_word(t).is_some()
                || small_number(t).is_some()
                || tens_word(t).is_some()
                || matches!(t, "double" | "triple" | "hundred" | "thousand")
            {
                Tok::Digits
            } else if let Some(d) = homophone(t) {
                Tok::Homophone(d)
            } else {
                Tok::Other
            }
        })
        .collect();

    let mut digits = String::with_capacity(16);
    let mut plus = false;
    let mut spoken = false;
    let mut loose = false; // tens words, hundreds or homophones were used
    let mut i = 0;
    while i < tokens.len() {
        let raw = tokens[i].as_str();
        let t = if let Some(rest) = raw.strip_prefix('+') {
            if digits.is_empty() {
                plus = true;
            }
            rest
        } else {
            raw
        };
        if t == "plus" && digits.is_empty() {
            plus = true;
            i += 1;
            continue;
        }
        if !digits.is_empty() && is_correction(&tokens, i) {
            return Parsed::unsure("the caller corrected themselves");
        }
        match kinds[i] {
            Tok::Other => {
                i += 1;
                continue;
            }
            Tok::Homophone(d) => {
                let prev_digit = i > 0 && kinds[i - 1] == Tok::Digits;
                let next_digit = kinds.get(i + 1) == Some(&Tok::Digits);
                if prev_digit && next_digit {
                    digits.push(char::from_digit(d, 10).unwrap_or('0'));
                    loose = true;
                }
                i += 1;
                continue;
            }
            Tok::Digits => {}
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            digits.push_str(t);
            i += 1;
            continue;
        }
        spoken = true;
        match t {
            "double" | "triple" => {
                let times = if t == "double" { 2 } else { 3 };
                let Some(d) = tokens.get(i + 1).and_then(|n| digit_word(n)) else {
                    return Parsed::unsure(format!("heard \"{t}\" without a digit after it"));
                };
                for _ in 0..times {
                    digits.push(char::from_digit(d, 10).unwrap_or('0'));
                }
                i += 2;
            }
            "hundred" => {
                // "thirteen hundred", "one eight hundred"
                if digits.is_empty() {
                    return Parsed::unsure("heard \"hundred\" without a number before it");
                }
                digits.push_str("00");
                loose = true;
                i += 1;
            }
            "thousand" => {
                if digits.is_empty() {
                    return Parsed::unsure("heard \"thousand\" without a number before it");
                }
                digits.push_str("000");
                loose = true;
                i += 1;
            }
            _ => {
                if let Some(d) = digit_word(t) {
                    digits.push(char::from_digit(d, 10).unwrap_or('0'));
                    i += 1;
                } else if let Some(n) = small_number(t) {
                    // teens: "fourteen" → 14
                    digits.push_str(&n.to_string());
                    loose = true;
                    i += 1;
                } else if let Some(n) = tens_word(t) {
                    // "forty two" → 42, "forty" alone → 40
                    let unit = tokens
                        .get(i + 1)
                        .and_then(|w| small_number(w))
                        .filter(|u| (1..10).contains(u));
                    match unit {
                        Some(u) => {
                            digits.push_str(&(n + u).to_string());
                            i += 2;
                        }
                        None => {
                            digits.push_str(&n.to_string());
                            i += 1;
                        }
                    }
                    loose = true;
                } else {
                    i += 1;
                }
            }
        }
    }
    if digits.is_empty() {
        return Parsed::unsure("no digits heard");
    }
    let dialled = digits
        .strip_prefix("0011")
        .or_else(|| digits.strip_prefix("011"))
        .unwrap_or(&digits);
    if dialled.len() > 15 {
        // Longer than any E.164 number: most likely two numbers.
        return Parsed::unsure("sounds like more than one number");
    }
    let base = match (spoken, loose) {
        (false, _) => 0.98,
        (true, false) => 0.95,
        (true, true) => 0.85,
    };
    from_digits(&digits, plus, ctx, base)
}

/// Normalise a digit string for the context's locale.
pub(crate) fn from_digits(digits: &str, plus: bool, ctx: &ParseContext, base: f32) -> Parsed {
    let result = if plus {
        international(digits)
    } else {
        match ctx.locale {
            Locale::EnAu => australian(digits, ctx),
            Locale::EnUs => american(digits),
        }
    };
    match result {
        Norm::Ok(e164, conf) => Parsed::ok(Value::Phone(e164), base.min(conf)),
        Norm::Tentative(e164, reason) => Parsed::tentative(Value::Phone(e164), 0.45, reason),
        Norm::Unsure(reason) => Parsed::unsure(reason),
        Norm::Invalid(reason) => Parsed::invalid(reason),
    }
}

enum Norm {
    Ok(String, f32),
    Tentative(String, String),
    Unsure(String),
    Invalid(String),
}

fn international(digits: &str) -> Norm {
    if let Some(rest) = digits.strip_prefix("61") {
        // Callers often keep the trunk 0: "+61 0412…".
        let national = rest.strip_prefix('0').unwrap_or(rest);
        return au_national(national, digits.len());
    }
    if let Some(rest) = digits.strip_prefix('1') {
        return nanp(rest);
    }
    if (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
        Norm::Ok(format!("+{digits}"), 0.8)
    } else {
        Norm::Invalid(format!(
            "an international number has 8 to 15 digits, heard {}",
            digits.len()
        ))
    }
}

/// The 9 digits after +61.
fn au_national(national: &str, heard: usize) -> Norm {
    let first = national.as_bytes().first().copied().unwrap_or(b'0');
    let ok_len = match first {
        b'4' | b'2' | b'3' | b'7' | b'8' => national.len() == 9,
        b'1' => {
            (national.starts_with("13") && national.len() == 6)
                || ((national.starts_with("1300") || national.starts_with("1800"))
                    && national.len() == 10)
        }
        _ => {
            return Norm::Invalid("not a valid Australian number after +61".to_string());
        }
    };
    if ok_len {
        Norm::Ok(format!("+61{national}"), 0.95)
    } else {
        Norm::Invalid(format!(
            "an Australian number has 9 digits after +61, heard {heard} digits in all"
        ))
    }
}

fn australian(digits: &str, ctx: &ParseContext) -> Norm {
    if let Some(rest) = digits.strip_prefix("0011") {
        // Australian international access code.
        return international(rest);
    }
    if digits.starts_with("000") {
        return Norm::Invalid("that is the emergency number".to_string());
    }
    let n = digits.len();
    if n == 11
        && digits.starts_with("61")
        && matches!(digits.as_bytes()[2], b'2'..=b'4' | b'7' | b'8')
    {
        // "six one four one two…": country code without the plus.
        return au_national(&digits[2..], n);
    }
    if let Some(rest) = digits.strip_prefix('0') {
        let kind = match rest.as_bytes().first() {
            Some(b'4') => "mobile",
            Some(b'2' | b'3' | b'7' | b'8') => "landline",
            Some(b'5') => return Norm::Invalid("05 numbers are not in use".to_string()),
            _ => return Norm::Invalid("not a valid Australian area code".to_string()),
        };
        if n == 10 {
            return Norm::Ok(format!("+61{rest}"), 0.98);
        }
        return Norm::Invalid(format!(
            "an Australian {kind} number has 10 digits, heard {n}"
        ));
    }
    if digits.starts_with("1300") || digits.starts_with("1800") {
        if n == 10 {
            return Norm::Ok(format!("+61{digits}"), 0.9);
        }
        return Norm::Invalid(format!(
            "a {} number has 10 digits, heard {n}",
            &digits[..4]
        ));
    }
    if digits.starts_with("13") && n == 6 {
        return Norm::Ok(format!("+61{digits}"), 0.85);
    }
    if n == 9 && digits.starts_with('4') {
        // A mobile with the leading 0 dropped.
        return Norm::Tentative(
            format!("+61{digits}"),
            "a mobile starts with oh four; was the oh dropped?".to_string(),
        );
    }
    if n == 8 && matches!(digits.as_bytes()[0], b'2'..=b'9') {
        return match area_code(ctx.timezone) {
            Some(area) => Norm::Tentative(
                format!("+61{area}{digits}"),
                "no area code; assumed the local one".to_string(),
            ),
            None => Norm::Unsure("no area code".to_string()),
        };
    }
    if n == 10 && nanp_ok(digits) {
        return Norm::Invalid("not an Australian number; say the country code".to_string());
    }
    Norm::Invalid(format!(
        "an Australian number has 10 digits starting with 0, heard {n} digits"
    ))
}

/// The area code a local 8-digit landline most likely has.
fn area_code(tz: chrono_tz::Tz) -> Option<char> {
    // Compare names: chrono-tz may map link zones onto the same value.
    Some(match tz.name() {
        "Australia/Sydney"
        | "Australia/Canberra"
        | "Australia/ACT"
        | "Australia/NSW"
        | "Australia/Broken_Hill" => '2',
        "Australia/Melbourne"
        | "Australia/Hobart"
        | "Australia/Victoria"
        | "Australia/Tasmania" => '3',
        "Australia/Brisbane" | "Australia/Lindeman" | "Australia/Queensland" => '7',
        "Australia/Adelaide" | "Australia/Perth" | "Australia/Darwin" | "Australia/South"
        | "Australia/West" | "Australia/North" => '8',
        _ => return None,
    })
}

fn nanp_ok(ten: &str) -> bool {
    let b = ten.as_bytes();
    b.len() == 10
        && matches!(b[0], b'2'..=b'9')
        && !(b[1] == b'1' && b[2] == b'1')
        && matches!(b[3], b'2'..=b'9')
        && !(b[4] == b'1' && b[5] == b'1')
}

fn nanp(ten: &str) -> Norm {
    if ten.len() != 10 {
        return Norm::Invalid(format!(
            "a US number has 10 digits after the 1, heard {}",
            ten.len()
        ));
    }
    if nanp_ok(ten) {
        Norm::Ok(format!("+1{ten}"), 0.97)
    } else {
        Norm::Invalid("not a valid US area code or exchange".to_string())
    }
}

fn american(digits: &str) -> Norm {
    if let Some(rest) = digits.strip_prefix("011") {
        return international(rest);
    }
    match digits.len() {
        10 => nanp(digits),
        11 if digits.starts_with('1') => nanp(&digits[1..]),
        7 => Norm::Unsure("no area code".to_string()),
        n => Norm::Invalid(format!("a US number has 10 digits, heard {n}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;
    use chrono::TimeZone;

    fn ctx(locale: Locale) -> ParseContext<'static> {
        ParseContext {
            locale,
            timezone: chrono_tz::Australia::Sydney,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 11, 17, 23, 0, 0)
                .unwrap(),
            choices: &[],
        }
    }

    fn ok(text: &str, locale: Locale) -> String {
        let p = parse(text, &ctx(locale));
        assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
        p.value.unwrap().display()
    }

    #[test]
    fn spoken_forms() {
        let au = Locale::EnAu;
        assert_eq!(
            ok("oh four one two, three four five, six seven eight", au),
            "+61412345678"
        );
        assert_eq!(
            ok("zero four double one, triple two, three four five", au),
            "+61411222345"
        );
        assert_eq!(ok("0412 345 678", au), "+61412345678");
        assert_eq!(
            ok(
                "plus six one four one two three four five six seven eight",
                au
            ),
            "+61412345678"
        );
        assert_eq!(
            ok("six one four one two three four five six seven eight", au),
            "+61412345678"
        );
        assert_eq!(
            ok("thirteen hundred one two three four five six", au),
            "+611300123456"
        );
        assert_eq!(
            ok("oh four for one two three four five six seven", au),
            "+61441234567"
        );
        assert_eq!(ok("(212) 555-0123", Locale::EnUs), "+12125550123");
    }

    #[test]
    fn wrong_counts_and_corrections() {
        let c = ctx(Locale::EnAu);
        let p = parse("0412 345 67", &c);
        assert_eq!(p.status, ParseStatus::Invalid);
        assert!(p.reason.unwrap().contains("10 digits"));
        assert_eq!(
            parse("oh four one two sorry oh four one three", &c).status,
            ParseStatus::Unsure
        );
        let local = parse("9876 5432", &c);
        assert_eq!(local.status, ParseStatus::Unsure);
        assert_eq!(local.value, Some(Value::Phone("+61298765432".into())));
        assert!(local.confidence < 0.6);
    }
}
