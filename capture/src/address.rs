//! Australian street addresses: "unit 3, 12 Smith St, Parramatta NSW 2150".
//!
//! Needs a street number, a street name ending in a street type, a suburb
//! and a postcode. The state may be spoken ("new south wales") or omitted
//! (then it is taken from the postcode at confidence 0.75). State and
//! postcode must agree by Australia Post's ranges, including the known
//! cross-border postcodes; otherwise the address is invalid. Only
//! Australian addresses are supported: en-US callers get unsure.

use crate::name::capitalise;
use crate::text::{digit_word, read_number, small_number, tens_word, tokenize};
use crate::{Locale, ParseContext, Parsed, Value};

const STATES: &[(&str, &[&[&str]])] = &[
    (
        "NSW",
        &[&["nsw"], &["new", "south", "wales"], &["n", "s", "w"]],
    ),
    ("VIC", &[&["vic"], &["victoria"]]),
    ("QLD", &[&["qld"], &["queensland"]]),
    ("SA", &[&["sa"], &["south", "australia"], &["s", "a"]]),
    ("WA", &[&["wa"], &["western", "australia"], &["w", "a"]]),
    ("TAS", &[&["tas"], &["tasmania"], &["tassie"]]),
    ("NT", &[&["nt"], &["northern", "territory"], &["n", "t"]]),
    (
        "ACT",
        &[
            &["act"],
            &["australian", "capital", "territory"],
            &["a", "c", "t"],
        ],
    ),
];

/// States whose official ranges contain `postcode` (Australia Post).
fn states_for(postcode: u32) -> Vec<&'static str> {
    // Cross-border postcodes shared by two or more states.
    let shared: &[(u32, &[&str])] = &[
        (872, &["NT", "SA", "WA"]),
        (2406, &["NSW", "QLD"]),
        (2540, &["NSW", "ACT"]),
        (2611, &["ACT", "NSW"]),
        (2620, &["NSW", "ACT"]),
        (3585, &["VIC", "NSW"]),
        (3586, &["VIC", "NSW"]),
        (3644, &["VIC", "NSW"]),
        (3691, &["VIC", "NSW"]),
        (3707, &["VIC", "NSW"]),
        (4380, &["QLD", "NSW"]),
        (4383, &["QLD", "NSW"]),
        (4385, &["QLD", "NSW"]),
        (4825, &["QLD", "NT"]),
    ];
    if let Some((_, s)) = shared.iter().find(|(p, _)| *p == postcode) {
        return s.to_vec();
    }
    let state = match postcode {
        1000..=2599 | 2619..=2899 | 2921..=2999 => "NSW",
        200..=299 | 2600..=2618 | 2900..=2920 => "ACT",
        3000..=3999 | 8000..=8999 => "VIC",
        4000..=4999 | 9000..=9999 => "QLD",
        5000..=5999 => "SA",
        6000..=6797 | 6800..=6999 => "WA",
        // Christmas Island and Cocos (Keeling) Islands use WA addressing.
        6798 | 6799 => "WA",
        7000..=7999 => "TAS",
        800..=999 => "NT",
        _ => return Vec::new(),
    };
    vec![state]
}

/// Street types and their full names.
fn street_type(w: &str) -> Option<&'static str> {
    Some(match w {
        "street" | "st" => "Street",
        "road" | "rd" => "Road",
        "avenue" | "ave" | "av" => "Avenue",
        "drive" | "dr" => "Drive",
        "court" | "ct" => "Court",
        "place" | "pl" => "Place",
        "lane" | "ln" => "Lane",
        "crescent" | "cres" | "cr" => "Crescent",
        "parade" | "pde" => "Parade",
        "boulevard" | "blvd" => "Boulevard",
        "highway" | "hwy" => "Highway",
        "terrace" | "tce" => "Terrace",
        "close" | "cl" => "Close",
        "way" => "Way",
        "circuit" | "cct" => "Circuit",
        "grove" | "gr" => "Grove",
        "square" | "sq" => "Square",
        "esplanade" | "esp" => "Esplanade",
        "parkway" | "pkwy" => "Parkway",
        "rise" => "Rise",
        "row" => "Row",
        "mews" => "Mews",
        "loop" => "Loop",
        "mall" => "Mall",
        "track" => "Track",
        "walk" => "Walk",
        "promenade" => "Promenade",
        "glen" => "Glen",
        "crest" => "Crest",
        "view" => "View",
        _ => return None,
    })
}

/// A house or unit number at `i`: numerals ("12", "12a", "3/12") or spoken
/// ("forty two", "one twenty three"). Returns text and tokens used.
fn house_number(tokens: &[String], i: usize) -> Option<(String, usize)> {
    let t = tokens.get(i)?;
    if t.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        let ok = t
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'/' || b == b'-' || b.is_ascii_lowercase());
        let letters = t.bytes().filter(u8::is_ascii_lowercase).count();
        if ok && letters <= 1 {
            return Some((t.to_uppercase(), 1));
        }
        return None;
    }
    // Spoken: a run of number groups, concatenated ("one twenty three").
    let mut s = String::new();
    let mut j = i;
    while j < tokens.len() && s.len() < 5 {
        if let Some(p) = read_number(tokens, j) {
            if p.value.fract() != 0.0 || p.value < 0.0 || p.value >= 10000.0 {
                return None;
            }
            s.push_str(&(p.value as u64).to_string());
            j += p.len;
        } else if let Some(d) = digit_word(&tokens[j]).filter(|_| !s.is_empty()) {
            s.push(char::from_digit(d, 10).unwrap_or('0'));
            j += 1;
        } else {
            break;
        }
    }
    if s.is_empty() || s == "0" {
        return None;
    }
    // A single-letter suffix: "twelve a".
    if let Some(t) = tokens.get(j)
        && t.len() == 1
        && t.as_bytes()[0].is_ascii_lowercase()
        && t != "a"
        && tokens.get(j + 1).is_some_and(|n| street_type(n).is_none())
    {
        s.push_str(&t.to_uppercase());
        j += 1;
    }
    Some((s, j - i))
}

/// Digits spoken in groups: "three oh six five", "twenty one fifty", "2150".
fn spoken_digits(tokens: &[String]) -> Option<String> {
    let mut s = String::new();
    let mut i = 0;
    while i < tokens.len() {
        let w = tokens[i].as_str();
        if w.bytes().all(|b| b.is_ascii_digit()) {
            s.push_str(w);
        } else if let Some(d) = digit_word(w) {
            s.push(char::from_digit(d, 10).unwrap_or('0'));
        } else if let Some(n) = small_number(w).filter(|n| *n >= 10) {
            s.push_str(&n.to_string());
        } else if let Some(n) = tens_word(w) {
            let unit = tokens
                .get(i + 1)
                .and_then(|u| small_number(u))
                .filter(|u| (1..10).contains(u));
            if let Some(u) = unit {
                i += 1;
                s.push_str(&(n + u).to_string());
            } else {
                s.push_str(&n.to_string());
            }
        } else {
            return None;
        }
        i += 1;
    }
    Some(s)
}

/// A postcode ending the utterance: "2150", "two one five oh", "two
/// thousand". Returns it and the index where it starts.
fn trailing_postcode(tokens: &[String]) -> Option<(String, usize)> {
    let n = tokens.len();
    for j in n.saturating_sub(6)..n {
        let tail = &tokens[j..];
        if let Some(s) = spoken_digits(tail)
            && s.len() == 4
        {
            return Some((s, j));
        }
        if let Some(p) = read_number(tokens, j)
            && p.len == tail.len()
            && p.spoken
            && p.value.fract() == 0.0
            && (200.0..=9999.0).contains(&p.value)
        {
            return Some((format!("{:04}", p.value as u32), j));
        }
    }
    None
}

/// A state name ending at `end` (exclusive): abbreviation and tokens used.
fn state_before(tokens: &[String], end: usize) -> Option<(&'static str, usize)> {
    let mut best: Option<(&'static str, usize)> = None;
    for (abbr, forms) in STATES {
        for f in *forms {
            if f.len() <= end
                && tokens[end - f.len()..end]
                    .iter()
                    .zip(f.iter())
                    .all(|(a, b)| a == b)
                && best.is_none_or(|(_, l)| f.len() > l)
            {
                best = Some((abbr, f.len()));
            }
        }
    }
    best
}

fn title_words(words: &[String]) -> String {
    words
        .iter()
        .enumerate()
        .map(|(k, w)| match w.as_str() {
            // "st kilda" → "St Kilda", "mt eliza" → "Mt Eliza"
            "st" => "St".to_string(),
            "mt" => "Mt".to_string(),
            _ => capitalise(w, k == 0),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Spoken or typed Australian address.
pub(crate) fn parse(text: &str, ctx: &ParseContext) -> Parsed {
    if ctx.locale == Locale::EnUs {
        return Parsed::unsure("only Australian addresses are supported");
    }
    let mut tokens = tokenize(text, &['/', '-', '\'']);
    // Drop a leading preamble ("it's", "my address is", "yeah").
    let pre = tokens
        .iter()
        .position(|t| {
            !matches!(
                t.as_str(),
                "my" | "address"
                    | "is"
                    | "it's"
                    | "its"
                    | "it"
                    | "yeah"
                    | "yes"
                    | "sure"
                    | "ok"
                    | "um"
                    | "uh"
                    | "so"
                    | "the"
                    | "i'm"
                    | "at"
                    | "we're"
                    | "live"
                    | "i"
                    | "we"
                    | "in"
                    | "on"
                    | "that's"
            )
        })
        .unwrap_or(tokens.len());
    tokens.drain(..pre);
    // Drop trailing "australia" — but not the state "south/western australia".
    if tokens.last().is_some_and(|t| t == "australia")
        && tokens.len() >= 2
        && !matches!(tokens[tokens.len() - 2].as_str(), "south" | "western")
    {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Parsed::unsure("no address heard");
    }

    // Postcode and state from the end.
    let Some((postcode, pc_start)) = trailing_postcode(&tokens) else {
        return Parsed::unsure("no postcode heard");
    };
    let pc: u32 = postcode.parse().unwrap_or(0);
    let allowed = states_for(pc);
    if allowed.is_empty() {
        return Parsed::invalid(format!("{postcode} is not an Australian postcode"));
    }
    let (state, state_start, inferred) = match state_before(&tokens, pc_start) {
        Some((s, len)) => (s, pc_start - len, false),
        None => {
            if allowed.len() != 1 {
                return Parsed::unsure(format!("which state is {postcode} in?"));
            }
            (allowed[0], pc_start, true)
        }
    };
    if !allowed.contains(&state) {
        return Parsed::invalid(format!("postcode {postcode} is not in {state}"));
    }

    // Unit and street number at the start.
    let body = &tokens[..state_start];
    let mut i = 0;
    let mut unit: Option<String> = None;
    if matches!(
        body.first().map(String::as_str),
        Some("unit" | "apartment" | "apt" | "flat" | "suite" | "u")
    ) {
        let Some((u, used)) = house_number(body, 1) else {
            return Parsed::unsure("heard a unit without a number");
        };
        unit = Some(u);
        i = 1 + used;
    }
    let Some((mut number, used)) = house_number(body, i) else {
        return Parsed::unsure("no street number heard");
    };
    i += used;
    if unit.is_none()
        && let Some((u, n)) = number.split_once('/')
    {
        if u.is_empty() || n.is_empty() {
            return Parsed::unsure("could not read the unit and street number");
        }
        unit = Some(u.to_string());
        number = n.to_string();
    }
    if number.contains('/') {
        return Parsed::unsure("could not read the street number");
    }

    // Street name up to the first street type; the rest is the suburb.
    let rest = &body[i..];
    let Some(type_at) = rest
        .iter()
        .enumerate()
        .position(|(k, w)| k > 0 && street_type(w).is_some())
    else {
        return Parsed::unsure("no street type (street, road, avenue…) heard");
    };
    let street_name = &rest[..type_at];
    let suburb = &rest[type_at + 1..];
    if suburb.is_empty() {
        return Parsed::unsure("no suburb heard");
    }
    if suburb.len() > 4 || street_name.len() > 4 {
        return Parsed::unsure("could not separate the street from the suburb");
    }
    if street_name
        .iter()
        .chain(suburb.iter())
        .any(|w| w.bytes().any(|b| b.is_ascii_digit()))
    {
        return Parsed::unsure("unexpected numbers in the street or suburb");
    }
    let stype = street_type(&rest[type_at]).unwrap_or("Street");
    let mut street = String::new();
    if let Some(u) = &unit {
        street.push_str(u);
        street.push('/');
    }
    street.push_str(&number);
    street.push(' ');
    street.push_str(&title_words(street_name));
    street.push(' ');
    street.push_str(stype);

    let value = Value::Address {
        street,
        suburb: title_words(suburb),
        state: state.to_string(),
        postcode,
    };
    Parsed::ok(value, if inferred { 0.75 } else { 0.85 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;
    use chrono::TimeZone;

    fn ctx() -> ParseContext<'static> {
        ParseContext {
            locale: Locale::EnAu,
            timezone: chrono_tz::Australia::Sydney,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 11, 17, 23, 0, 0)
                .unwrap(),
            choices: &[],
        }
    }

    fn ok(text: &str) -> String {
        let p = parse(text, &ctx());
        assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
        p.value.unwrap().display()
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ok("12 Smith St, Parramatta NSW 2150"),
            "12 Smith Street, Parramatta NSW 2150"
        );
        assert_eq!(
            ok("unit 3, 12 smith street parramatta new south wales 2150"),
            "3/12 Smith Street, Parramatta NSW 2150"
        );
        assert_eq!(
            ok("3/12 Fitzroy St St Kilda VIC 3182"),
            "3/12 Fitzroy Street, St Kilda VIC 3182"
        );
        assert_eq!(
            ok("forty two wallaby way sydney nsw two thousand"),
            "42 Wallaby Way, Sydney NSW 2000"
        );
        assert_eq!(
            ok("7 Oak Avenue Fitzroy victoria three oh six five"),
            "7 Oak Avenue, Fitzroy VIC 3065"
        );
    }

    #[test]
    fn state_postcode_agreement() {
        let p = parse("12 Smith St Parramatta VIC 2150", &ctx());
        assert_eq!(p.status, ParseStatus::Invalid);
        assert_eq!(states_for(2620), vec!["NSW", "ACT"]);
        assert_eq!(states_for(2600), vec!["ACT"]);
        assert_eq!(states_for(800), vec!["NT"]);
        assert!(states_for(100).is_empty());
    }
}
