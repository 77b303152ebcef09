//! Numbers and money.
//!
//! Numbers: numerals ("25", "1,250", "1.5k") and number words ("two hundred
//! and fifty", "a hundred", "one point five", "a dozen"). Exactly one number
//! must be heard; "two or three", corrections and vague amounts ("a
//! couple") are unsure. "About twenty" is Ok at 0.65 (to be confirmed);
//! "maybe twenty" is unsure. Money said to a number slot ("seventy five
//! cents", "$20", "ten pounds") is unsure: the number depends on the unit.
//!
//! Money: "$12.50", "twelve dollars fifty", "fifty bucks", "50 cents",
//! "five grand", "1.5k". The currency defaults to the locale's (AUD/USD)
//! unless named. "Twelve fifty" without a unit is unsure ($12.50 or
//! $1,250?). More than two decimal places is invalid.

use crate::text::{NumberPhrase, is_correction, read_number, tokenize};
use crate::{Locale, ParseContext, Parsed, Value};

fn phrases(tokens: &[String]) -> Vec<NumberPhrase> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match read_number(tokens, i) {
            Some(p) => {
                i += p.len.max(1);
                out.push(p);
            }
            None => i += 1,
        }
    }
    out
}

enum Hedge {
    None,
    Approx,
    Unsure,
}

fn hedge(tokens: &[String]) -> Hedge {
    let mut h = Hedge::None;
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).map(String::as_str);
        match t.as_str() {
            "maybe" | "perhaps" | "probably" | "might" | "possibly" | "guess" => {
                return Hedge::Unsure;
            }
            "not" if next == Some("sure") => return Hedge::Unsure,
            "i" if matches!(next, Some("think" | "reckon")) => return Hedge::Unsure,
            "about" | "around" | "roughly" | "approximately" | "approx" | "ish" => {
                h = Hedge::Approx
            }
            "or" if next == Some("so") => h = Hedge::Approx,
            "give" if next == Some("or") => h = Hedge::Approx,
            _ => {}
        }
    }
    h
}

fn vague(tokens: &[String]) -> bool {
    tokens.iter().enumerate().any(|(i, t)| {
        matches!(
            t.as_str(),
            "few"
                | "several"
                | "couple"
                | "some"
                | "dozens"
                | "hundreds"
                | "lots"
                | "heaps"
                | "many"
        ) || (t == "a" && tokens.get(i + 1).is_some_and(|n| n == "bit"))
    })
}

/// A correction after the first number ("four, sorry, five").
fn corrected(tokens: &[String], first: usize) -> bool {
    (first..tokens.len()).any(|i| is_correction(tokens, i))
}

/// A plain number.
pub(crate) fn parse_number(text: &str) -> Parsed {
    let tokens = tokenize(text, &['.', ',', '\'']);
    let found = phrases(&tokens);
    if found.len() > 1 {
        return Parsed::unsure("heard more than one number");
    }
    let Some(p) = found.first() else {
        if vague(&tokens) {
            return Parsed::unsure("no exact number");
        }
        if tokens
            .iter()
            .any(|t| matches!(t.as_str(), "none" | "nothing" | "nobody" | "zilch"))
        {
            return Parsed::ok(Value::Number(0.0), 0.8);
        }
        return Parsed::unsure("no number heard");
    };
    let outside = |k: usize| k < p.start || k >= p.start + p.len;
    if tokens.iter().enumerate().any(|(k, t)| {
        outside(k)
            && matches!(
                t.as_str(),
                "half" | "halves" | "quarter" | "quarters" | "thirds" | "third" | "fifths"
            )
    }) {
        return Parsed::unsure("heard a fraction");
    }
    if vague(&tokens) && !tokens.iter().any(|t| t == "dozen") {
        return Parsed::unsure("no exact number");
    }
    if corrected(&tokens, p.start) {
        return Parsed::unsure("heard a correction");
    }
    if money_in_number_answer(text, &tokens, p) {
        return Parsed::unsure("heard an amount of money, not a plain number");
    }
    let negative = p.start > 0 && matches!(tokens[p.start - 1].as_str(), "minus" | "negative");
    let value = if negative { -p.value } else { p.value };
    if !value.is_finite() {
        return Parsed::invalid("number out of range");
    }
    let v = Value::Number(value);
    match hedge(&tokens) {
        Hedge::Unsure => Parsed::tentative(v, 0.45, "the caller was not sure"),
        Hedge::Approx => Parsed::ok(v, 0.65),
        Hedge::None => Parsed::ok(v, if p.spoken { 0.9 } else { 0.97 }),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Dollars,
    Cents,
    Grand,
    Thousand,
}

/// The unit word after an amount: "dollars", "cents", "grand", "k".
fn amount_unit(w: &str) -> Option<Unit> {
    Some(match w {
        "dollar" | "dollars" | "buck" | "bucks" | "aud" | "usd" | "eur" | "euro" | "euros"
        | "gbp" | "pound" | "pounds" | "quid" | "nzd" => Unit::Dollars,
        "cent" | "cents" | "c" | "p" | "pence" => Unit::Cents,
        "grand" => Unit::Grand,
        "k" | "thousand" => Unit::Thousand,
        _ => return None,
    })
}

/// Money heard where a plain number was asked for: a currency sign, or a
/// money unit ("cents", "bucks", "grand", "euros"). "Seventy five cents" is
/// not 75 (nor clearly 0.75), so a number slot must not take it at face
/// value. The single letters "c" and "p" count only right after the number,
/// where they are short for cents and pence; "thousand" and "k" are scales.
fn money_in_number_answer(text: &str, tokens: &[String], number: &NumberPhrase) -> bool {
    const CURRENCY_SIGNS: [char; 5] = ['$', '£', '€', '¥', '₹'];
    if text.contains(CURRENCY_SIGNS) {
        return true;
    }
    let unit_end = number.start + number.len;
    tokens.iter().enumerate().any(|(k, word)| {
        let money_unit = matches!(amount_unit(word), Some(u) if u != Unit::Thousand);
        money_unit && (word.len() > 1 || k == unit_end)
    })
}

fn currency_code(w: &str) -> Option<&'static str> {
    Some(match w {
        "aud" => "AUD",
        "usd" => "USD",
        "eur" | "euro" | "euros" => "EUR",
        "gbp" | "pound" | "pounds" | "quid" => "GBP",
        "nzd" => "NZD",
        _ => return None,
    })
}

/// Money amount.
pub(crate) fn parse_money(text: &str, ctx: &ParseContext) -> Parsed {
    let raw = tokenize(text, &['.', ',', '\'', '$']);
    // Split "$12.50" into "$", "12.50"; "a dollar" means one dollar.
    let mut tokens: Vec<String> = Vec::with_capacity(raw.len() + 2);
    for (i, t) in raw.iter().enumerate() {
        if let Some(rest) = t.strip_prefix('$') {
            tokens.push("$".to_string());
            if !rest.is_empty() {
                tokens.push(rest.to_string());
            }
        } else if t == "a"
            && raw.get(i + 1).is_some_and(|n| {
                matches!(
                    n.as_str(),
                    "dollar" | "buck" | "quid" | "pound" | "euro" | "grand"
                )
            })
        {
            tokens.push("one".to_string());
        } else {
            tokens.push(t.clone());
        }
    }

    let mut currency: Option<&'static str> = None;
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).map(String::as_str);
        let c = match t.as_str() {
            "us" | "american" | "u.s" if matches!(next, Some("dollars" | "dollar" | "bucks")) => {
                Some("USD")
            }
            "australian" | "aussie" if matches!(next, Some("dollars" | "dollar" | "bucks")) => {
                Some("AUD")
            }
            "nz" | "kiwi" | "zealand" if matches!(next, Some("dollars" | "dollar")) => Some("NZD"),
            other => currency_code(other),
        };
        if let Some(c) = c {
            if currency.is_some_and(|prev| prev != c) {
                return Parsed::unsure("heard two currencies");
            }
            currency = Some(c);
        }
    }
    let currency = currency.unwrap_or(match ctx.locale {
        Locale::EnAu => "AUD",
        Locale::EnUs => "USD",
    });

    let found = phrases(&tokens);
    if found.is_empty() {
        return Parsed::unsure("no amount heard");
    }
    if found.len() > 2 || corrected(&tokens, found[0].start) {
        return Parsed::unsure("heard more than one amount");
    }
    if vague(&tokens) {
        return Parsed::unsure("no exact amount");
    }
    if tokens
        .iter()
        .any(|t| matches!(t.as_str(), "minus" | "negative"))
    {
        return Parsed::invalid("a negative amount");
    }

    // The unit after a phrase, skipping currency adjectives.
    let unit_after = |p: &NumberPhrase| -> Option<(Unit, usize)> {
        let mut j = p.start + p.len;
        while tokens.get(j).is_some_and(|t| {
            matches!(
                t.as_str(),
                "us" | "american" | "australian" | "aussie" | "nz" | "kiwi" | "new" | "zealand"
            )
        }) {
            j += 1;
        }
        Some((amount_unit(tokens.get(j)?)?, j + 1))
    };
    let dollar_sign_before = |p: &NumberPhrase| {
        p.start > 0 && (tokens[p.start - 1] == "$" || currency_code(&tokens[p.start - 1]).is_some())
    };

    let p0 = &found[0];
    let u0 = unit_after(p0);
    let marked0 = dollar_sign_before(p0) || u0.is_some();
    let (cents, conf) = if found.len() == 2 {
        let p1 = &found[1];
        let u1 = unit_after(p1);
        let dollars_first = dollar_sign_before(p0) || matches!(u0, Some((Unit::Dollars, _)));
        let gap_ok = {
            let end0 = u0.map(|(_, e)| e).unwrap_or(p0.start + p0.len);
            tokens[end0..p1.start].iter().all(|t| t == "and")
        };
        let cents_part = p1.value.fract() == 0.0 && p1.value < 100.0 && !p1.has_decimal;
        if dollars_first
            && gap_ok
            && cents_part
            && p0.value.fract() == 0.0
            && matches!(u1, None | Some((Unit::Cents, _)))
        {
            (p0.value * 100.0 + p1.value, 0.9)
        } else if !marked0 && u1.is_none() {
            return Parsed::unsure("is that dollars and cents, or hundreds?");
        } else {
            return Parsed::unsure("heard more than one amount");
        }
    } else {
        let base = if p0.spoken { 0.9 } else { 0.95 };
        match u0 {
            Some((Unit::Cents, _)) => {
                if p0.value.fract() != 0.0 {
                    return Parsed::invalid("fractions of a cent");
                }
                (p0.value, base)
            }
            Some((Unit::Grand | Unit::Thousand, _)) => (p0.value * 100_000.0, 0.85),
            Some((Unit::Dollars, _)) => (p0.value * 100.0, base),
            None if dollar_sign_before(p0) => (p0.value * 100.0, base),
            // No unit: the question asked for money, so dollars.
            None => (p0.value * 100.0, 0.8),
        }
    };
    let rounded = cents.round();
    if (cents - rounded).abs() > 1e-6 {
        return Parsed::invalid("more than two decimal places");
    }
    if !(0.0..9.0e15).contains(&rounded) {
        return Parsed::invalid("amount out of range");
    }
    let v = Value::Money {
        cents: rounded as i64,
        currency: currency.to_string(),
    };
    match hedge(&tokens) {
        Hedge::Unsure => Parsed::tentative(v, 0.45, "the caller was not sure"),
        Hedge::Approx => Parsed::ok(v, 0.65),
        Hedge::None => Parsed::ok(v, conf),
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

    fn money(text: &str) -> String {
        let p = parse_money(text, &ctx(Locale::EnAu));
        assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
        p.value.unwrap().display()
    }

    #[test]
    fn numbers() {
        let n = |t: &str| parse_number(t).value.map(|v| v.display());
        assert_eq!(n("twenty five"), Some("25".into()));
        assert_eq!(n("there'll be 4 of us"), Some("4".into()));
        assert_eq!(n("minus three"), Some("-3".into()));
        assert_eq!(parse_number("two or three").status, ParseStatus::Unsure);
        assert_eq!(parse_number("a couple").status, ParseStatus::Unsure);
        assert_eq!(parse_number("about twenty").confidence, 0.65);
    }

    /// A number slot refuses money (unsure, no value); the money slot still
    /// reads the same words as an amount.
    #[test]
    fn money_is_not_a_plain_number() {
        let cases: &[(&str, &str)] = &[
            ("seventy five cents", "AUD 0.75"),
            ("one cent", "AUD 0.01"),
            ("5 cents", "AUD 0.05"),
            ("five dollars", "AUD 5.00"),
            ("a dollar fifty", "AUD 1.50"),
            ("$20", "AUD 20.00"),
            ("$ 20", "AUD 20.00"),
            ("it's $12.50", "AUD 12.50"),
            ("twenty bucks", "AUD 20.00"),
            ("ten pounds", "GBP 10.00"),
            ("fifty euros", "EUR 50.00"),
            ("twenty quid", "GBP 20.00"),
            ("30 US dollars", "USD 30.00"),
            ("100 AUD", "AUD 100.00"),
            ("five grand", "AUD 5000.00"),
            ("12 dollars and 50 cents", "AUD 12.50"),
            ("about twenty bucks", "AUD 20.00"),
            ("50 c", "AUD 0.50"),
        ];
        for &(text, amount) in cases {
            let p = parse_number(text);
            assert_eq!(p.status, ParseStatus::Unsure, "{text}: {p:?}");
            assert_eq!(p.value, None, "{text}: {p:?}");
            assert_eq!(money(text), amount, "{text}");
        }
        for text in ["£20", "€50", "¥1000", "40 pence", "three hundred NZD"] {
            assert_eq!(parse_number(text).status, ParseStatus::Unsure, "{text}");
        }
        // Scales ("k", "thousand") are not money.
        let n = |t: &str| parse_number(t).value.map(|v| v.display());
        for (text, expected) in [
            ("5k", "5000"),
            ("five thousand", "5000"),
            ("plan for 3 people", "3"),
            ("table for 4 please", "4"),
            ("a million", "1000000"),
            ("42", "42"),
        ] {
            assert_eq!(n(text).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(money("$12.50"), "AUD 12.50");
        assert_eq!(money("twelve dollars fifty"), "AUD 12.50");
        assert_eq!(money("twelve dollars and fifty cents"), "AUD 12.50");
        assert_eq!(money("fifty bucks"), "AUD 50.00");
        assert_eq!(money("fifty cents"), "AUD 0.50");
        assert_eq!(money("1.5k"), "AUD 1500.00");
        assert_eq!(money("five grand"), "AUD 5000.00");
        assert_eq!(money("a dollar fifty"), "AUD 1.50");
        assert_eq!(money("20 US dollars"), "USD 20.00");
        assert_eq!(
            parse_money("twelve fifty", &ctx(Locale::EnAu)).status,
            ParseStatus::Unsure
        );
        assert_eq!(
            parse_money("$12.505", &ctx(Locale::EnAu)).status,
            ParseStatus::Invalid
        );
    }
}
