//! Property tests: generate a value, render it the way a caller (or the
//! transcriber) might say it, parse it back and expect the same value.

// Helpers outside #[test] fns unwrap generated data; a panic is a test failure.
#![allow(clippy::unwrap_used)]

use chrono::{Datelike, Days, NaiveDate, TimeZone, Utc};
use dialtone_capture::{Locale, ParseContext, ParseStatus, Primitive, Value, parse, speak};
use proptest::prelude::*;

fn ctx(locale: Locale) -> ParseContext<'static> {
    ParseContext {
        locale,
        timezone: chrono_tz::Australia::Sydney,
        // Wednesday 2026-11-18 10:00 in Sydney.
        now: Utc.with_ymd_and_hms(2026, 11, 17, 23, 0, 0).unwrap(),
        choices: &[],
    }
}

const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

fn digit_word(d: char, oh: bool) -> &'static str {
    if d == '0' && oh {
        "oh"
    } else {
        DIGITS[d.to_digit(10).unwrap() as usize]
    }
}

fn groups(s: &str, sizes: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    for &n in sizes {
        out.push(s[i..i + n].to_string());
        i += n;
    }
    out
}

/// Spoken digits with runs said as "double"/"triple".
fn with_doubles(group: &str, oh: bool) -> String {
    let chars: Vec<char> = group.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == chars[i] {
            run += 1;
        }
        let w = digit_word(chars[i], oh);
        let mut left = run;
        while left > 0 {
            match left {
                1 => {
                    words.push(w.to_string());
                    left -= 1;
                }
                3 => {
                    words.push(format!("triple {w}"));
                    left -= 3;
                }
                _ => {
                    words.push(format!("double {w}"));
                    left -= 2;
                }
            }
        }
        i += run;
    }
    words.join(" ")
}

fn render_phone(national: &str, sizes: &[usize], style: u8, oh: bool, locale: Locale) -> String {
    let gs = groups(national, sizes);
    match style {
        0 => gs.join(" "),
        1 => gs
            .iter()
            .map(|g| {
                g.chars()
                    .map(|c| digit_word(c, oh))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(", "),
        2 => gs
            .iter()
            .map(|g| with_doubles(g, oh))
            .collect::<Vec<_>>()
            .join(", "),
        3 => {
            // First group as digits, the rest as words.
            let mut parts = vec![gs[0].clone()];
            parts.extend(gs[1..].iter().map(|g| {
                g.chars()
                    .map(|c| digit_word(c, oh))
                    .collect::<Vec<_>>()
                    .join(" ")
            }));
            parts.join(" ")
        }
        _ => {
            let e164 = match locale {
                Locale::EnAu => format!("+61{}", &national[1..]),
                Locale::EnUs => format!("+1{national}"),
            };
            speak(&Value::Phone(e164), locale)
        }
    }
}

proptest! {
    #[test]
    fn phone_au_round_trip(
        kind in 0u8..5,
        rest in proptest::collection::vec(0u8..10, 8),
        style in 0u8..5,
        oh in any::<bool>(),
        plus in any::<bool>(),
    ) {
        let prefix = ["04", "02", "03", "07", "08"][kind as usize];
        let subscriber: String = rest.iter().map(|d| char::from(b'0' + d)).collect();
        let national = format!("{prefix}{subscriber}");
        let expected = format!("+61{}", &national[1..]);
        let sizes: &[usize] = if kind == 0 { &[4, 3, 3] } else { &[2, 4, 4] };
        let mut text = render_phone(&national, sizes, style, oh, Locale::EnAu);
        if plus && style != 4 {
            // "plus six one four one two …": drop the trunk zero.
            let spoken = render_phone(&national, sizes, 1, oh, Locale::EnAu);
            let without_zero = spoken.split_once(' ').map(|x| x.1).unwrap_or("").to_string();
            text = format!("plus six one {without_zero}");
        }
        let p = parse(Primitive::Phone, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(p.value, Some(Value::Phone(expected)), "{}", text);
        prop_assert!(p.confidence >= 0.8);
    }

    #[test]
    fn phone_us_round_trip(
        area in 200u32..1000,
        exchange in 200u32..1000,
        line in 0u32..10000,
        style in 0u8..5,
        one in any::<bool>(),
    ) {
        prop_assume!(area % 100 != 11 && exchange % 100 != 11);
        let national = format!("{area}{exchange}{line:04}");
        let mut text = render_phone(&national, &[3, 3, 4], style, false, Locale::EnUs);
        if one && style != 4 {
            text = format!("1 {text}");
        }
        let p = parse(Primitive::Phone, &text, &ctx(Locale::EnUs));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(p.value, Some(Value::Phone(format!("+1{national}"))), "{}", text);
    }
}

const WORDS: [&str; 24] = [
    "john", "smith", "sarah", "lee", "raj", "patel", "emma", "nguyen", "kate", "brown", "mike",
    "jones", "anna", "chen", "liam", "walker", "olivia", "tran", "noah", "wilson", "mia", "taylor",
    "jack", "martin",
];
const DOMAINS: [(&str, &str); 8] = [
    ("gmail.com", "g mail dot com"),
    ("hotmail.com", "hot mail dot com"),
    ("outlook.com", "outlook dot com"),
    ("outlook.com.au", "outlook dot com dot au"),
    ("bigpond.com", "big pond dot com"),
    ("bigpond.net.au", "bigpond dot net dot au"),
    ("icloud.com", "i cloud dot com"),
    ("yahoo.com.au", "yahoo dot com dot au"),
];

fn spell(word: &str) -> String {
    word.chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

proptest! {
    #[test]
    fn email_round_trip(
        w1 in 0usize..WORDS.len(),
        w2 in proptest::option::of(0usize..WORDS.len()),
        sep in 0usize..3,
        digits in proptest::option::of(0u32..1000),
        domain in 0usize..DOMAINS.len(),
        style in 0u8..3,
    ) {
        let (sep_char, sep_word) = [(".", "dot"), ("_", "underscore"), ("-", "dash")][sep];
        let first = WORDS[w1];
        let num = digits.map(|d| d.to_string()).unwrap_or_default();
        let (dom, dom_spoken) = DOMAINS[domain];
        let local = match w2 {
            Some(k) => format!("{first}{sep_char}{}{num}", WORDS[k]),
            None => format!("{first}{num}"),
        };
        let expected = format!("{local}@{dom}");
        let num_words = num
            .chars()
            .map(|c| DIGITS[c.to_digit(10).unwrap() as usize])
            .collect::<Vec<_>>()
            .join(" ");
        let say = |w: &str| if style == 2 { spell(w) } else { w.to_string() };
        let text = match style {
            0 => format!("it's {expected}"),
            _ => {
                let mut parts = vec![say(first)];
                if let Some(k) = w2 {
                    parts.push(sep_word.to_string());
                    parts.push(say(WORDS[k]));
                }
                if !num_words.is_empty() {
                    parts.push(num_words);
                }
                parts.push("at".to_string());
                parts.push(dom_spoken.to_string());
                parts.join(" ")
            }
        };
        let p = parse(Primitive::Email, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(p.value, Some(Value::Email(expected)), "{}", text);
    }
}

fn ordinal_words(n: u32) -> String {
    const FIRST: [&str; 20] = [
        "",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
    ];
    match n {
        1..=19 => FIRST[n as usize].to_string(),
        20 => "twentieth".into(),
        30 => "thirtieth".into(),
        21..=29 => format!("twenty {}", FIRST[(n - 20) as usize]),
        _ => format!("thirty {}", FIRST[(n - 30) as usize]),
    }
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

const MONTHS: [&str; 12] = [
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
];

proptest! {
    #[test]
    fn date_round_trip(offset in 0u64..330, style in 0u8..9, us in any::<bool>()) {
        let today = NaiveDate::from_ymd_opt(2026, 11, 18).unwrap();
        let date = today.checked_add_days(Days::new(offset)).unwrap();
        let (d, m, y) = (date.day(), date.month(), date.year());
        let month = MONTHS[(m - 1) as usize];
        let locale = if us { Locale::EnUs } else { Locale::EnAu };
        let text = match style {
            0 => format!("the {d}{} of {month}", ordinal_suffix(d)),
            1 => format!("{month} {d}{}", ordinal_suffix(d)),
            2 => match locale {
                Locale::EnAu => format!("{d}/{m}"),
                Locale::EnUs => format!("{m}/{d}"),
            },
            3 => match locale {
                Locale::EnAu => format!("{d:02}/{m:02}/{y}"),
                Locale::EnUs => format!("{m:02}/{d:02}/{y}"),
            },
            4 => format!("the {} of {month}", ordinal_words(d)),
            5 => date.format("%Y-%m-%d").to_string(),
            6 => format!("{} the {d}{} of {month}", date.format("%A"), ordinal_suffix(d)),
            7 => speak(&Value::Date(date), locale),
            _ => match offset {
                0 => "today".to_string(),
                1 => "tomorrow".to_string(),
                n => format!("in {n} days"),
            },
        };
        let text = if style == 8 && offset > 60 { format!("{d} {month} {y}") } else { text };
        let p = parse(Primitive::Date, &text, &ctx(locale));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(p.value, Some(Value::Date(date)), "{}", text);
    }
}

fn words_below_thousand(n: u64, and: bool) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut parts = Vec::new();
    let (h, rest) = (n / 100, n % 100);
    if h > 0 {
        parts.push(format!("{} hundred", ONES[h as usize]));
    }
    if rest > 0 {
        if h > 0 && and {
            parts.push("and".to_string());
        }
        if rest < 20 {
            parts.push(ONES[rest as usize].to_string());
        } else if rest % 10 == 0 {
            parts.push(TENS[(rest / 10) as usize].to_string());
        } else {
            parts.push(format!(
                "{} {}",
                TENS[(rest / 10) as usize],
                ONES[(rest % 10) as usize]
            ));
        }
    }
    parts.join(" ")
}

fn number_words(n: u64, and: bool) -> String {
    if n == 0 {
        return "zero".to_string();
    }
    let (th, rest) = (n / 1000, n % 1000);
    let mut parts = Vec::new();
    if th > 0 {
        parts.push(format!("{} thousand", words_below_thousand(th, and)));
    }
    if rest > 0 {
        if th > 0 && rest < 100 && and {
            parts.push("and".to_string());
        }
        parts.push(words_below_thousand(rest, and));
    }
    parts.join(" ")
}

fn with_commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

proptest! {
    #[test]
    fn number_round_trip(n in 0u64..1_000_000, style in 0u8..4, and in any::<bool>()) {
        let text = match style {
            0 => n.to_string(),
            1 => with_commas(n),
            2 => number_words(n, and),
            _ => format!("there'll be {} of us", number_words(n, and)),
        };
        let p = parse(Primitive::Number, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(p.value, Some(Value::Number(n as f64)), "{}", text);
    }

    #[test]
    fn decimal_round_trip(whole in 0u64..1000, frac in 1u32..100) {
        let frac_digits = format!("{frac:02}").trim_end_matches('0').to_string();
        let expected: f64 = format!("{whole}.{frac_digits}").parse().unwrap();
        let spoken_frac = frac_digits
            .chars()
            .map(|c| DIGITS[c.to_digit(10).unwrap() as usize])
            .collect::<Vec<_>>()
            .join(" ");
        for text in [
            format!("{whole}.{frac_digits}"),
            format!("{} point {spoken_frac}", number_words(whole, true)),
        ] {
            let p = parse(Primitive::Number, &text, &ctx(Locale::EnAu));
            prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
            match p.value {
                Some(Value::Number(v)) => prop_assert!((v - expected).abs() < 1e-9, "{} → {}", text, v),
                other => prop_assert!(false, "{} → {:?}", text, other),
            }
        }
    }
}

/// The named hour of "N to/past H" as a caller says it: a word or numeral on
/// the 12-hour clock, "noon"/"midnight", or an hour with am/pm.
fn say_named_hour(hour24: u32, style: u8) -> (String, bool) {
    let h12 = match hour24 % 12 {
        0 => 12,
        h => h,
    };
    let am = hour24 < 12;
    let word = words_below_thousand(u64::from(h12), false);
    let meridiem = if am { "am" } else { "pm" };
    match style {
        0 if h12 == 12 => ((if am { "midnight" } else { "noon" }).to_string(), false),
        0 | 1 => (format!("{word} {meridiem}"), true),
        2 => (format!("{h12}{meridiem}"), true),
        _ => (format!("{word} {}", if am { "a.m." } else { "p.m." }), true),
    }
}

fn say_minutes(minutes: u32, past: bool, style: u8) -> String {
    match (minutes, style) {
        (15, 0) => "quarter".to_string(),
        (15, 1) => "a quarter".to_string(),
        (30, 0 | 1) if past => "half".to_string(),
        (_, 2) => format!("{minutes} min{}", if minutes == 1 { "" } else { "s" }),
        (1, 3) => "one minute".to_string(),
        (_, 3) => format!(
            "{} minutes",
            words_below_thousand(u64::from(minutes), false)
        ),
        _ => words_below_thousand(u64::from(minutes), false),
    }
}

proptest! {
    /// Every minute of the day said as "N past H" or "N to H" with am/pm
    /// (or noon/midnight) reads back exactly. "N to twelve am/pm" is the one
    /// ambiguous form (before midnight or before noon?) and must be unsure.
    #[test]
    fn minutes_to_and_past_round_trip(
        hour in 0u32..24,
        minute in 1u32..60,
        to in any::<bool>(),
        hour_style in 0u8..4,
        minute_style in 0u8..5,
    ) {
        let expected = chrono::NaiveTime::from_hms_opt(hour, minute, 0).unwrap();
        let named_hour = if to { (hour + 1) % 24 } else { hour };
        let (named, with_meridiem) = say_named_hour(named_hour, hour_style);
        let text = if to {
            format!("{} to {named}", say_minutes(60 - minute, false, minute_style))
        } else {
            format!("{} past {named}", say_minutes(minute, true, minute_style))
        };
        let p = parse(Primitive::Time, &text, &ctx(Locale::EnAu));
        let ambiguous = to && with_meridiem && named_hour % 12 == 0;
        if ambiguous {
            prop_assert_eq!(p.status, ParseStatus::Unsure, "{}", text);
            prop_assert_eq!(p.value, None, "{}", text);
        } else {
            prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
            prop_assert_eq!(&p.value, &Some(Value::Time(expected)), "{}", text);
            prop_assert!(p.confidence >= 0.8, "{}: {:?}", text, p);
        }
    }
}

proptest! {
    /// Money said to a number slot is refused (unsure, no value), while the
    /// money slot reads the same words.
    #[test]
    fn number_slot_refuses_money(n in 1u64..1000, unit in 0usize..9, spoken in any::<bool>()) {
        let amount = if spoken { number_words(n, true) } else { n.to_string() };
        let (text, cents, currency) = match unit {
            0 => (format!("{amount} cents"), n, "AUD"),
            1 => (format!("{amount} dollars"), n * 100, "AUD"),
            2 => (format!("{amount} bucks"), n * 100, "AUD"),
            3 => (format!("${n}"), n * 100, "AUD"),
            4 => (format!("{amount} pounds"), n * 100, "GBP"),
            5 => (format!("{amount} euros"), n * 100, "EUR"),
            6 => (format!("{amount} quid"), n * 100, "GBP"),
            7 => (format!("{amount} US dollars"), n * 100, "USD"),
            _ => (format!("{amount} grand"), n * 100_000, "AUD"),
        };
        let p = parse(Primitive::Number, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Unsure, "{}", text);
        prop_assert_eq!(p.value, None, "{}", text);
        let m = parse(Primitive::Money, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(m.status, ParseStatus::Ok, "{}", text);
        prop_assert_eq!(
            m.value,
            Some(Value::Money { cents: cents as i64, currency: currency.to_string() }),
            "{}", text
        );
    }
}

const GIVEN_NAMES: [&str; 12] = [
    "john", "sarah", "raj", "emma", "kate", "mike", "anna", "liam", "olivia", "noah", "mia", "jack",
];
const FAMILY_NAMES: [&str; 12] = [
    "smith", "lee", "patel", "nguyen", "brown", "jones", "chen", "walker", "tran", "wilson",
    "taylor", "martin",
];

fn title_case(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A name spelled letter by letter, the ways transcribers write it.
fn spell_as(word: &str, style: u8) -> String {
    let letters: Vec<String> = word.chars().map(String::from).collect();
    match style {
        0 => letters.join(" "),
        1 => letters.join(" ").to_uppercase(),
        2 => letters.join("-"),
        3 => letters.join(", "),
        _ => letters
            .iter()
            .map(|l| format!("{}.", l.to_uppercase()))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

proptest! {
    /// Spelled names, alone, after a cue ("that's", "spelled"), or after the
    /// spoken name, read back as the name.
    #[test]
    fn spelled_name_round_trip(
        given in 0usize..GIVEN_NAMES.len(),
        family in proptest::option::of(0usize..FAMILY_NAMES.len()),
        style in 0u8..5,
        framing in 0u8..4,
    ) {
        let given = GIVEN_NAMES[given];
        let family = family.map(|f| FAMILY_NAMES[f]);
        let expected = match family {
            Some(f) => format!("{} {}", title_case(given), title_case(f)),
            None => title_case(given),
        };
        let text = match (framing, family) {
            (0, None) => spell_as(given, style),
            (1, None) => format!("that's {}", spell_as(given, style)),
            (2, None) => format!("it's spelled {}", spell_as(given, style)),
            (_, None) => format!("{given}, {}", spell_as(given, style)),
            (0 | 1, Some(f)) => format!("{given} {f}, that's {}", spell_as(f, style)),
            (2, Some(f)) => format!("my name is {given} {f}, spelled {}", spell_as(f, style)),
            (_, Some(f)) => format!("{given} {f}, {}", spell_as(f, style)),
        };
        let p = parse(Primitive::Name, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Ok, "{}", text);
        prop_assert!(p.confidence >= 0.8, "{}", text);
        prop_assert_eq!(p.value.map(|v| v.display()), Some(expected), "{}", text);
    }

    /// An everyday word in the name slot is refused, however it is framed.
    #[test]
    fn everyday_word_is_not_a_name(
        word in prop::sample::select(vec![
            "banana", "apple", "orange", "pizza", "coffee", "chair", "phone", "tuesday",
            "tomorrow", "seven", "twenty", "nope", "cancel", "dog", "nothing",
            "someone", "goodbye", "ummm", "hmmm",
        ]),
        framing in 0u8..5,
        capitalised in any::<bool>(),
    ) {
        let word = if capitalised { title_case(word) } else { word.to_string() };
        let text = match framing {
            0 => word,
            1 => format!("my name is {word}"),
            2 => format!("um, it's {word}"),
            3 => format!("John {word}"),
            _ => format!("{word} Smith"),
        };
        let p = parse(Primitive::Name, &text, &ctx(Locale::EnAu));
        prop_assert_eq!(p.status, ParseStatus::Unsure, "{}", text);
        prop_assert_eq!(p.value, None, "{}", text);
    }
}
