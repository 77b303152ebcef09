//! People's names: "my name is Sarah O'Connor", "it's Raj", "S M I T H".
//!
//! The last word is the family name, earlier words the given name(s); name
//! particles ("van", "de", "o'") start the family name. "Smith, John" (one
//! word, comma, one word) is read family-first at confidence 0.7, so the
//! engine confirms it. A spelled run of single letters replaces the spoken
//! word it spells (same first letter), or stands alone; letters may be
//! spaced, hyphenated, dotted or comma-separated ("j, o, h, n"), and may
//! follow a cue ("John Smith, that's S M I T H"). Fillers only, sentences
//! ("I don't know") and everyday words that are not names ("Banana",
//! "Tuesday", "seven") are unsure, so the engine asks again; the same word
//! spelled out is kept at 0.7 for confirmation.

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

/// Everyday words that are not names: answers to a different question
/// ("yes", "tomorrow", "seven"), sentence words ("I don't know"), fillers,
/// and common nouns and verbs a confused caller or a mis-transcription gives
/// ("banana", "cancel"). Words that are also common given or family names
/// are deliberately left out (Rose, May, Will, Mark, Baker, Brown, Rice,
/// Bean, Moon, Son, He, Do, ...), so a real name is never refused; a rare
/// name that is listed can still be spelled. A few hundred short words: a
/// linear scan costs well under a microsecond.
#[rustfmt::skip]
const NOT_NAMES: &[&str] = &[
    // Answers to another question, sentence words and fillers.
    "i", "don't", "dont", "know", "what", "why", "who", "want", "need", "not", "no", "nah", "nope",
    "yes", "yeah", "yep", "yup", "okay", "ok", "sure", "right", "correct", "wrong", "true", "false",
    "fine", "cool", "nice", "maybe", "perhaps", "please", "thanks", "thank", "cheers", "hello",
    "goodbye", "bye", "huh", "eh", "sorry", "pardon", "whatever", "dunno", "mhm", "uhm", "shh",
    "tsk", "psst", "hmph", "ugh", "oops",
    // Function words and pronouns.
    "the", "a", "an", "to", "is", "it", "that", "this", "you", "my", "your", "and", "or", "can",
    "could", "would", "about", "for", "with", "just", "rather", "say", "on", "at", "from", "of",
    "me", "him", "them", "us", "we", "they", "she", "our", "their", "his", "mine", "yours",
    "myself", "here", "there", "where", "when", "how", "which", "if", "but", "because", "in", "out",
    "up", "down", "over", "under", "by", "into", "as", "then", "all", "any", "some", "every",
    "each", "much", "many", "very", "really", "too", "also", "only", "still", "already", "yet",
    "now", "was", "were", "be", "been", "are", "am", "does", "did", "have", "has", "had", "should",
    "shall", "must", "might",
    // Said instead of a name.
    "name", "calling", "ringing", "behalf", "company", "private", "anonymous", "someone",
    "somebody", "nobody", "everyone", "anyone", "none", "nothing", "something", "anything",
    "everything", "thing", "stuff", "appointment", "booking", "reservation",
    // Numbers, days, months (April, May, June, August are names) and times.
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred",
    "thousand", "million", "first", "second", "third", "monday", "tuesday", "wednesday", "thursday",
    "friday", "saturday", "sunday", "january", "february", "september", "october", "november",
    "december", "today", "tomorrow", "yesterday", "tonight", "night", "week", "weekend", "month",
    "year", "time", "hour", "minute",
    // Colours, animals, food and drink.
    "yellow", "purple", "orange", "dog", "mouse", "horse", "cow", "pig", "sheep", "goat", "duck",
    "chicken", "monkey", "elephant", "rabbit", "snake", "frog", "spider", "turtle", "donkey",
    "puppy", "kitten", "apple", "banana", "grape", "grapes", "mango", "pear", "pineapple",
    "strawberry", "blueberry", "raspberry", "watermelon", "melon", "lime", "coconut", "avocado",
    "tomato", "potato", "carrot", "onion", "garlic", "lettuce", "cabbage", "broccoli", "pumpkin",
    "cucumber", "bread", "butter", "cheese", "milk", "egg", "eggs", "pizza", "pasta", "sandwich",
    "beef", "pork", "steak", "sausage", "coffee", "water", "juice", "wine", "chocolate", "cake",
    "biscuit", "cookie", "soup", "salad", "noodles", "sushi", "toast", "cereal", "yoghurt",
    "yogurt", "food", "lunch", "dinner", "breakfast", "snack", "fruit",
    // Everyday things and people.
    "table", "chair", "door", "window", "car", "bus", "train", "phone", "mobile", "computer",
    "laptop", "television", "tv", "home", "room", "kitchen", "bed", "bathroom", "toilet", "bottle",
    "cup", "plate", "spoon", "fork", "knife", "clock", "lamp", "paper", "pencil", "box", "bag",
    "shoe", "shoes", "hat", "shirt", "tree", "flower", "grass", "fire", "ice", "money", "ticket",
    "email", "address", "number", "message", "office", "school", "hospital", "shop", "store",
    "work", "family", "friend", "husband", "wife", "daughter", "mum", "mom", "dad", "mother",
    "father", "baby", "kids", "boy", "girl", "woman", "person", "people", "dentist", "nurse",
    "customer", "account", "order", "delivery", "payment", "invoice", "refund", "help", "question",
    "problem", "information", "service", "support", "operator", "agent", "human", "robot",
    "machine",
    // Verbs.
    "go", "come", "get", "make", "take", "give", "see", "look", "eat", "drink", "sleep", "run",
    "walk", "talk", "speak", "call", "ring", "book", "cancel", "change", "check", "wait", "stop",
    "start", "tell", "ask", "mean", "hear", "listen", "understand", "remember", "forget", "pay",
    "buy", "sell", "send", "open", "leave", "stay", "play", "write", "sit", "stand", "move", "live",
    "bring", "try", "use", "find", "keep", "let", "put", "show", "hold", "hang", "repeat", "think",
];

/// A word that is not a name, going by [`NOT_NAMES`].
fn is_not_name(lower: &str) -> bool {
    NOT_NAMES.contains(&lower)
}

/// Shapes no name has: the same letter three times running ("ummm",
/// "nooo"), or four or more letters without a vowel ("hmmm", "psst").
/// Short vowel-less names exist ("Ng", "Sng"), so three letters pass.
fn has_non_name_shape(lower: &str) -> bool {
    let letters: Vec<char> = lower.chars().filter(|c| c.is_alphabetic()).collect();
    let tripled = letters.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]);
    let vowelless = letters.len() >= 4
        && letters.iter().all(char::is_ascii)
        && !letters
            .iter()
            .any(|c| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y'));
    tripled || vowelless
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

/// A single spoken letter ("j", "O").
fn is_letter(toks: &[Tok], k: usize) -> bool {
    toks.get(k)
        .is_some_and(|t| t.lower.chars().count() == 1 && t.lower != ",")
}

/// "double l" in a spelling.
fn is_double(toks: &[Tok], k: usize) -> bool {
    toks.get(k).is_some_and(|t| t.lower == "double") && is_letter(toks, k + 1)
}

fn continues_spelling(toks: &[Tok], k: usize) -> bool {
    is_letter(toks, k) || is_double(toks, k)
}

/// A spelled run starts at `i`: two or more letters ("J O", "j, o"), or
/// "double" plus a letter and more.
fn starts_spelling(toks: &[Tok], i: usize) -> bool {
    let pause = usize::from(toks.get(i + 1).is_some_and(|t| t.lower == ","));
    (is_letter(toks, i) && continues_spelling(toks, i + 1 + pause))
        || (is_double(toks, i) && i + 2 < toks.len())
}

/// Words that introduce a spelling mid-answer: "that's", "spelled", "it is".
fn is_spelling_cue(lower: &str) -> bool {
    matches!(
        lower,
        "that's"
            | "thats"
            | "that"
            | "it's"
            | "its"
            | "it"
            | "is"
            | "spelled"
            | "spelt"
            | "spelling"
    )
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
        // "John Smith, that's S M I T H": words introducing a spelling.
        if is_spelling_cue(&t.lower) {
            let mut k = i;
            while toks
                .get(k)
                .is_some_and(|t| is_spelling_cue(&t.lower) || t.lower == ",")
            {
                k += 1;
            }
            if starts_spelling(toks, k) {
                i = k;
                continue;
            }
        }
        if starts_spelling(toks, i) {
            let mut s = String::new();
            while i < toks.len() {
                if is_double(toks, i) {
                    s.push_str(&toks[i + 1].lower);
                    s.push_str(&toks[i + 1].lower);
                    i += 2;
                } else if is_letter(toks, i) {
                    s.push_str(&toks[i].lower);
                    i += 1;
                } else if toks[i].lower == "," && continues_spelling(toks, i + 1) {
                    // "j, o, h, n": a pause between letters.
                    i += 1;
                } else {
                    break;
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
    // Parallel to `names`: true once the caller spelled that name.
    let mut spelled: Vec<bool> = Vec::new();
    let mut used_spelling = false;
    let mut spelling_conflict = false;
    for w in &words {
        if !w.spelled {
            names.push(w.text.clone());
            spelled.push(false);
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
                spelled[k] = true;
            }
            None if names.is_empty() || w.text.len() > 1 => {
                names.push(w.text.clone());
                spelled.push(true);
            }
            None => spelling_conflict = true,
        }
    }
    if spelling_conflict {
        return Parsed::unsure("the spelling does not match the name");
    }
    // Plausibility: "Banana" from a confused caller must not be confirmed.
    // Unsure makes the engine ask again (or ask to spell). A spelled word is
    // deliberate, so a listed word spelled out ("B A N A N A") is kept, at a
    // confidence the engine confirms.
    let mut spelled_ordinary_word = false;
    for (name, was_spelled) in names.iter().zip(&spelled) {
        let lower = name.to_lowercase();
        if has_non_name_shape(&lower) {
            return Parsed::unsure("that does not sound like a name");
        }
        if is_not_name(&lower) {
            if !was_spelled {
                return Parsed::unsure("that does not sound like a name");
            }
            spelled_ordinary_word = true;
        }
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
    let (given, family, conf): (String, Option<String>, f32) = if reversed {
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
    let conf = if spelled_ordinary_word {
        conf.min(0.7)
    } else {
        conf
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
    fn not_names_list_is_lowercase_and_spares_real_names() {
        for (k, word) in NOT_NAMES.iter().enumerate() {
            assert!(!NOT_NAMES[..k].contains(word), "{word} is listed twice");
        }
        assert!(NOT_NAMES.iter().all(|w| *w == w.to_lowercase()));
        // Everyday words that are also common given or family names.
        for name in [
            "rose", "may", "june", "april", "august", "will", "mark", "bill", "frank", "grace",
            "hope", "joy", "faith", "pat", "sue", "rob", "drew", "grant", "chase", "hunter", "guy",
            "jack", "cat", "pen", "olive", "cherry", "honey", "pepper", "ginger", "ruby", "amber",
            "holly", "daisy", "violet", "hazel", "ivy", "sky", "river", "dawn", "eve", "summer",
            "baker", "brown", "green", "white", "black", "gray", "king", "bird", "fox", "wolf",
            "lamb", "rice", "bean", "bacon", "burger", "beer", "sugar", "stone", "hill", "wood",
            "banks", "house", "hall", "bell", "price", "love", "park", "ford", "page", "cole",
            "frost", "snow", "gold", "cook", "smith", "young", "long", "little", "good", "best",
            "child", "close", "read", "day", "more", "sun", "moon", "son", "he", "her", "do",
            "tea", "red", "blue", "pink", "star", "rock", "job", "man",
        ] {
            assert!(!is_not_name(name), "{name} is a real name");
            assert!(!has_non_name_shape(name), "{name}");
        }
        for w in [
            "van", "de", "la", "le", "bin", "al", "st", "mr", "dr", "ng", "sng",
        ] {
            assert!(!is_not_name(w), "{w}");
        }
    }

    /// Every listed word is refused, alone or after "my name is", but kept
    /// (to be confirmed) when the caller spells it.
    #[test]
    fn everyday_words_are_refused_unless_spelled() {
        for &word in NOT_NAMES {
            for text in [word.to_string(), format!("my name is {word}")] {
                let p = parse(&text);
                assert_eq!(p.status, ParseStatus::Unsure, "{text}: {p:?}");
                assert_eq!(p.value, None, "{text}");
            }
            // "John here", "John please" end with a courtesy, not a name.
            if !SUFFIXES.iter().any(|suffix| suffix == &[word]) {
                let p = parse(&format!("John {word}"));
                assert_ne!(p.status, ParseStatus::Ok, "John {word}: {p:?}");
            }
            let letters: Vec<String> = word.chars().map(String::from).collect();
            if letters.len() < 2 || !word.chars().all(|c| c.is_ascii_alphabetic()) {
                continue;
            }
            let p = parse(&letters.join(" "));
            if has_non_name_shape(word) {
                assert_eq!(p.status, ParseStatus::Unsure, "{word} spelled: {p:?}");
            } else {
                assert_eq!(p.status, ParseStatus::Ok, "{word} spelled: {p:?}");
                assert!(p.confidence < 0.8, "{word} spelled must be confirmed");
            }
        }
    }

    #[test]
    fn implausible_words() {
        for text in [
            "Banana",
            "banana",
            "it's banana",
            "um, banana",
            "Apple",
            "Tuesday",
            "tomorrow",
            "seven",
            "twenty one",
            "yes please",
            "nope",
            "okay",
            "cancel",
            "I want to cancel",
            "chicken",
            "John Banana",
            "Banana Smith",
            "ummm",
            "uhhh",
            "hmmm",
            "nooo",
            "psst",
            "the doctor",
            "nobody",
        ] {
            let p = parse(text);
            assert_eq!(p.status, ParseStatus::Unsure, "{text}: {p:?}");
            assert_eq!(p.value, None, "{text}");
        }
    }

    #[test]
    fn word_names_are_kept() {
        for (text, expected) in [
            ("Rose Baker", "Rose Baker"),
            ("Will Rice", "Will Rice"),
            ("it's Grace Stone", "Grace Stone"),
            ("Hope Green", "Hope Green"),
            ("June King", "June King"),
            ("Mark Brown", "Mark Brown"),
            ("Holly Frost", "Holly Frost"),
            ("Sky", "Sky"),
            ("Ng", "Ng"),
            ("Minh Son", "Minh Son"),
            ("Jae Moon", "Jae Moon"),
            ("Xiaoming He", "Xiaoming He"),
            ("Anh Do", "Anh Do"),
        ] {
            assert_eq!(ok(text), expected, "{text}");
        }
    }

    #[test]
    fn spelled_names() {
        for (text, expected) in [
            ("J O H N", "John"),
            ("j o h n", "John"),
            ("j-o-h-n", "John"),
            ("J-O-H-N", "John"),
            ("J. O. H. N.", "John"),
            ("j, o, h, n", "John"),
            ("j, o, h, n.", "John"),
            ("that's S M I T H", "Smith"),
            ("it's spelled S M I T H", "Smith"),
            ("it's spelt s, m, i, t, h", "Smith"),
            ("spelled B R O W N", "Brown"),
            ("John, J O H N", "John"),
            ("John Smith, that's S M I T H", "John Smith"),
            ("my name is John Smith, that's S M I T H", "John Smith"),
            ("John Smith, spelled S M Y T H", "John Smyth"),
            ("Jon, that is J O N", "Jon"),
            ("Anna, A double N A", "Anna"),
            ("Phillip, P H I double L I P", "Phillip"),
            ("Kate, K A T E, Lee, L E E", "Kate Lee"),
        ] {
            let p = parse(text);
            assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
            assert!(p.confidence >= 0.8, "{text}: {p:?}");
            assert_eq!(
                p.value.map(|v| v.display()).as_deref(),
                Some(expected),
                "{text}"
            );
        }
        // A spelled everyday word is deliberate: kept, but confirmed.
        for text in ["B A N A N A", "Banana, B A N A N A", "that's A P P L E"] {
            let p = parse(text);
            assert_eq!(p.status, ParseStatus::Ok, "{text}: {p:?}");
            assert!(p.confidence < 0.8, "{text}: {p:?}");
        }
    }

    #[test]
    fn capitalisation() {
        assert_eq!(capitalise("o'connor", false), "O'Connor");
        assert_eq!(capitalise("DeVito", false), "DeVito");
        assert_eq!(capitalise("SMITH", false), "Smith");
    }
}
