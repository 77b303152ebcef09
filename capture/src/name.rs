//! People's names: "my name is Sarah O'Connor", "it's Raj", "S M I T H".
//!
//! The last word is the family name, earlier words the given name(s); name
//! particles ("van", "de", "o'") start the family name. "Smith, John" (one
//! word, comma, one word) is read family-first at confidence 0.7, so the
//! engine confirms it. A spelled run of single letters replaces the spoken
//! word it spells (same first letter), or stands alone. Fillers only, or
//! ordinary words that are not names ("I don't know"), are unsure.

use crate::text::{edit_distance, is_filler};
use crate::{Parsed, Value};

/// A token with its original spelling and lowercase form.
struct Tok {
    orig: String,
    lower: String,
}

fn tokens(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let push = |cur: &mut String, out: &mut Vec<Tok>| {
        let t = cur.trim_matches(|c: char| c == '\'' || c == '-' || c == '.');
        // "J-O" is spelling, not a hyphenated name.
        if t.len() >= 3 && t.split('-').all(|p| p.chars().count() == 1) {
            for p in t.split('-') {
                out.push(Tok {
                    orig: p.to_string(),
                    lower: p.to_lowercase(),
                });
            }
            cur.clear();
            return;
        }
        if !t.is_empty() {
            out.push(Tok {
                orig: t.to_string(),
                lower: t.to_lowercase(),
            });
        }
        cur.clear();
    };
    for ch in text.chars() {
        let c = if matches!(ch, '\u{2019}' | '\u{2018}' | '`') {
            '\''
        } else {
            ch
        };
        if c.is_alphanumeric() || c == '\'' || c == '-' {
            cur.push(c);
        } else {
            push(&mut cur, &mut out);
            if c == ',' {
                out.push(Tok {
                    orig: ",".into(),
                    lower: ",".into(),
                });
            }
        }
    }
    push(&mut cur, &mut out);
    out
}

const PREAMBLES: &[&[&str]] = &[
    &["my", "name", "is"],
    &["my", "name's"],
    &["the", "name", "is"],
    &["the", "name's"],
    &["name's"],
    &["name", "is"],
    &["it", "is"],
    &["it's"],
    &["its"],
    &["this", "is"],
    &["i", "am"],
    &["i'm"],
    &["im"],
    &["you", "can", "call", "me"],
    &["call", "me"],
    &["yeah"],
    &["yes"],
    &["yep"],
    &["sure"],
    &["ok"],
    &["okay"],
    &["hi"],
    &["hello"],
    &["hey"],
    &["g'day"],
    &["gday"],
    &["hiya"],
    &["good", "morning"],
    &["good", "afternoon"],
    &["morning"],
    &["afternoon"],
    &["that's"],
    &["spelled"],
    &["spelt"],
    &["first", "name"],
    &["last", "name"],
    &[","],
];

const SUFFIXES: &[&[&str]] = &[
    &["here"],
    &["speaking"],
    &["thanks"],
    &["thank", "you"],
    &["please"],
    &[","],
];

/// Words that show the caller did not give a name.
fn is_not_name(w: &str) -> bool {
    matches!(
        w,
        "i" | "don't"
            | "dont"
            | "know"
            | "what"
            | "why"
            | "who"
            | "want"
            | "need"
            | "book"
            | "appointment"
            | "not"
            | "no"
            | "nah"
            | "the"
            | "a"
            | "an"
            | "to"
            | "is"
            | "you"
            | "my"
            | "your"
            | "and"
            | "or"
            | "sorry"
            | "pardon"
            | "can"
            | "could"
            | "would"
            | "calling"
            | "about"
            | "for"
            | "with"
            | "it"
            | "that"
            | "this"
            | "just"
            | "name"
            | "rather"
            | "say"
            | "private"
            | "anonymous"
            | "hang"
            | "on"
            | "wait"
            | "repeat"
            | "from"
            | "at"
            | "ringing"
            | "behalf"
            | "of"
            | "company"
    )
}

fn is_title(w: &str) -> bool {
    matches!(
        w,
        "mr" | "mrs" | "ms" | "miss" | "dr" | "doctor" | "prof" | "professor" | "mister"
    )
}

fn is_particle(w: &str) -> bool {
    matches!(
        w,
        "van"
            | "von"
            | "de"
            | "der"
            | "den"
            | "da"
            | "di"
            | "del"
            | "della"
            | "la"
            | "le"
            | "du"
            | "bin"
            | "binti"
            | "al"
            | "st"
    )
}

fn strip_prefixes<'a>(mut toks: &'a [Tok], pats: &[&[&str]]) -> &'a [Tok] {
    loop {
        let before = toks.len();
        if let Some(first) = toks.first()
            && is_filler(&first.lower)
        {
            toks = &toks[1..];
            continue;
        }
        for p in pats {
            if toks.len() >= p.len() && toks.iter().zip(p.iter()).all(|(t, w)| t.lower == *w) {
                toks = &toks[p.len()..];
                break;
            }
        }
        if toks.len() == before {
            return toks;
        }
    }
}

fn strip_suffixes<'a>(mut toks: &'a [Tok], pats: &[&[&str]]) -> &'a [Tok] {
    loop {
        let before = toks.len();
        for p in pats {
            if toks.len() >= p.len()
                && toks[toks.len() - p.len()..]
                    .iter()
                    .zip(p.iter())
                    .all(|(t, w)| t.lower == *w)
            {
                toks = &toks[..toks.len() - p.len()];
                break;
            }
        }
        if toks.len() == before {
            return toks;
        }
    }
}

/// Proper capitalisation: keep mixed case from the transcript ("McDonald"),
/// otherwise title-case each part split by `'` and `-`, with "Mc" prefixes.
pub(crate) fn capitalise(word: &str, first_word: bool) -> String {
    let has_upper = word.chars().any(char::is_uppercase);
    let has_lower = word.chars().any(char::is_lowercase);
    if has_upper && has_lower {
        return word.to_string();
    }
    let lower = word.to_lowercase();
    if !first_word && is_particle(&lower) {
        return lower;
    }
    let mut out = String::with_capacity(word.len());
    let mut start_of_part = true;
    let mut part_len = 0;
    let mut part_prefix = String::new();
    for c in lower.chars() {
        if c == '\'' || c == '-' {
            out.push(c);
            start_of_part = true;
            part_len = 0;
            part_prefix.clear();
            continue;
        }
        // "mcdonald" → "McDonald": capital after a leading "mc".
        let after_mc = part_len == 2 && part_prefix == "mc";
        if start_of_part || after_mc {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        if part_len < 2 {
            part_prefix.push(c);
        }
        part_len += 1;
        start_of_part = false;
    }
    out
}

/// Spoken or spelled name.
pub(crate) fn parse(text: &str) -> Parsed {
    let all = tokens(text);
    let toks = strip_prefixes(&all, PREAMBLES);
    let toks = strip_suffixes(toks, SUFFIXES);
    if toks.iter().all(|t| is_filler(&t.lower) || t.lower == ",") {
        return Parsed::unsure("no name heard");
    }
    if toks
        .iter()
        .any(|t| t.lower.chars().any(|c| c.is_ascii_digit()))
    {
        return Parsed::unsure("heard digits, not a name");
    }

    // Group into words: spelled runs of single letters become one word.
    struct Word {
        text: String,
        spelled: bool,
        comma_before: bool,
    }
    let mut words: Vec<Word> = Vec::new();
    let mut comma = false;
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        if t.lower == "," {
            comma = true;
            i += 1;
            continue;
        }
        if is_filler(&t.lower) {
            i += 1;
            continue;
        }
        let is_letter = |k: usize| {
            toks.get(k)
                .is_some_and(|t| t.lower.chars().count() == 1 && t.lower != ",")
        };
        let is_double =
            |k: usize| toks.get(k).is_some_and(|t| t.lower == "double") && is_letter(k + 1);
        if (is_letter(i) && (is_letter(i + 1) || is_double(i + 1)))
            || (is_double(i) && i + 2 < toks.len())
        {
            let mut s = String::new();
            while i < toks.len() && (is_letter(i) || is_double(i)) {
                if is_double(i) {
                    s.push_str(&toks[i + 1].lower);
                    s.push_str(&toks[i + 1].lower);
                    i += 2;
                } else {
                    s.push_str(&toks[i].lower);
                    i += 1;
                }
            }
            words.push(Word {
                text: s,
                spelled: true,
                comma_before: comma,
            });
        } else {
            words.push(Word {
                text: t.orig.clone(),
                spelled: false,
                comma_before: comma,
            });
            i += 1;
        }
        comma = false;
    }

    // "Sarah. Sarah Connor": a repeated first word is a restart.
    if words.len() >= 3
        && !words[0].spelled
        && !words[1].spelled
        && words[0].text.eq_ignore_ascii_case(&words[1].text)
    {
        words.remove(0);
        words[0].comma_before = false;
    }
    let spoken: Vec<&Word> = words.iter().filter(|w| !w.spelled).collect();
    if spoken.iter().any(|w| is_not_name(&w.text.to_lowercase())) {
        return Parsed::unsure("that does not sound like a name");
    }
    if words.is_empty() {
        return Parsed::unsure("no name heard");
    }

    // "Bond, James Bond": a repeated word, or commas between three or more
    // spoken words, leave the order unclear.
    let mut seen: Vec<String> = Vec::new();
    for w in &spoken {
        let l = w.text.to_lowercase();
        if seen.contains(&l) {
            return Parsed::unsure("heard the same name twice");
        }
        seen.push(l);
    }
    if spoken.len() > 2 && spoken.iter().skip(1).any(|w| w.comma_before) {
        let spoken_after_spoken = words
            .windows(2)
            .any(|p| !p[0].spelled && !p[1].spelled && p[1].comma_before);
        if spoken_after_spoken {
            return Parsed::unsure("unclear which is the family name");
        }
    }

    // Apply spellings to the spoken words they spell.
    let mut names: Vec<String> = Vec::new();
    let mut used_spelling = false;
    let mut spelling_conflict = false;
    for w in &words {
        if !w.spelled {
            names.push(w.text.clone());
            continue;
        }
        used_spelling = true;
        let first = w.text.chars().next();
        let target = names
            .iter()
            .rposition(|n| n.to_lowercase().chars().next() == first);
        match target {
            Some(k) => {
                let heard = names[k].to_lowercase();
                if heard != w.text && edit_distance(&heard, &w.text) > 3 {
                    spelling_conflict = true;
                }
                names[k] = w.text.clone();
            }
            None if names.is_empty() || w.text.len() > 1 => names.push(w.text.clone()),
            None => spelling_conflict = true,
        }
    }
    if spelling_conflict {
        return Parsed::unsure("the spelling does not match the name");
    }

    // Titles: "Mr Smith" gives no given name.
    let titled = names.first().is_some_and(|n| is_title(&n.to_lowercase()));
    if titled {
        names.remove(0);
        if names.len() < 2 {
            return Parsed::unsure("heard a title and family name only");
        }
    }
    if names.len() > 4 {
        return Parsed::unsure("too many words for a name");
    }

    let reversed = words.len() == 2
        && !words[0].spelled
        && !words[1].spelled
        && words[1].comma_before
        && !titled;
    let caps: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(k, n)| capitalise(n, k == 0))
        .collect();
    let (given, family, conf) = if reversed {
        (caps[1].clone(), Some(caps[0].clone()), 0.7)
    } else if caps.len() == 1 {
        (
            caps[0].clone(),
            None,
            if used_spelling { 0.9 } else { 0.85 },
        )
    } else {
        let lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        // The family name starts at the first particle after the given name.
        let split = (1..caps.len())
            .find(|&k| is_particle(&lower[k]) || lower[k] == "o'")
            .unwrap_or(caps.len() - 1);
        let given = caps[..split].join(" ");
        let family = caps[split..].join(" ");
        let conf = match (caps.len(), used_spelling) {
            (_, true) => 0.9,
            (2, false) => 0.85,
            _ => 0.8,
        };
        (given, Some(family), conf)
    };
    Parsed::ok(Value::Name { given, family }, conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;

    fn ok(text: &str) -> String {
        let p = parse(text);
        assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
        p.value.unwrap().display()
    }

    #[test]
    fn names() {
        assert_eq!(ok("my name is Sarah O'Connor"), "Sarah O'Connor");
        assert_eq!(ok("it's raj"), "Raj");
        assert_eq!(ok("Smith, John"), "John Smith");
        assert_eq!(ok("S M I T H"), "Smith");
        assert_eq!(ok("john smyth, s m y t h"), "John Smyth");
        assert_eq!(ok("mary anne mcdonald"), "Mary Anne McDonald");
        assert_eq!(ok("Ludwig van Beethoven"), "Ludwig van Beethoven");
        assert_eq!(ok("anna smith-jones here"), "Anna Smith-Jones");
        assert_eq!(ok("Dr Priya Natarajan"), "Priya Natarajan");
    }

    #[test]
    fn not_names() {
        for t in ["um", "yeah", "uh, yeah", "I don't know", "Mr Smith", "what"] {
            assert_eq!(parse(t).status, ParseStatus::Unsure, "{t}");
        }
    }

    #[test]
    fn capitalisation() {
        assert_eq!(capitalise("o'connor", false), "O'Connor");
        assert_eq!(capitalise("DeVito", false), "DeVito");
        assert_eq!(capitalise("SMITH", false), "Smith");
    }
}
