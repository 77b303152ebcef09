//! Email addresses: "john dot smith at gmail dot com" to `john.smith@gmail.com`.
//!
//! Spelled letters ("j o h n") join up; "underscore", "dash"/"hyphen",
//! "at sign", "dot"/"period" become symbols; common mishearings of the big
//! providers are repaired ("g mail", "gee mail", "hot mail", "big pond").
//! A bare provider ("at gmail") gets its usual domain. Two spoken words in
//! the local part with nothing between them ("john smith at …") are unsure:
//! the caller may have meant a dot.

use crate::text::{is_filler, read_number, tokenize};
use crate::{Parsed, Value};

/// Letter names used when spelling, accepted only next to other letters.
fn letter_name(w: &str) -> Option<char> {
    Some(match w {
        "ay" => 'a',
        "bee" | "be" => 'b',
        "cee" | "see" | "sea" => 'c',
        "dee" => 'd',
        "ee" => 'e',
        "ef" | "eff" => 'f',
        "gee" => 'g',
        "aitch" | "haitch" => 'h',
        "eye" => 'i',
        "jay" => 'j',
        "kay" => 'k',
        "el" | "ell" => 'l',
        "em" => 'm',
        "en" => 'n',
        "pee" => 'p',
        "cue" | "queue" => 'q',
        "ar" | "are" => 'r',
        "ess" => 's',
        "tee" | "tea" => 't',
        "you" => 'u',
        "vee" => 'v',
        "ex" => 'x',
        "why" => 'y',
        "zed" | "zee" => 'z',
        _ => return None,
    })
}

fn single_letter(w: &str) -> Option<char> {
    let mut it = w.chars();
    let c = it.next()?;
    (it.next().is_none() && c.is_ascii_alphanumeric()).then_some(c)
}

fn digit_name(w: &str) -> Option<char> {
    Some(match w {
        "zero" => '0',
        "one" => '1',
        "two" => '2',
        "three" => '3',
        "four" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

fn is_preamble(w: &str) -> bool {
    is_filler(w)
        || matches!(
            w,
            "my" | "email"
                | "e-mail"
                | "address"
                | "is"
                | "it's"
                | "its"
                | "it"
                | "yeah"
                | "yes"
                | "sure"
                | "ok"
                | "okay"
                | "that's"
                | "thats"
                | "the"
                | "you"
                | "can"
                | "use"
                | "reach"
                | "me"
                | "on"
                | "try"
        )
}

/// Repair a heard domain; returns the domain and whether a provider default
/// (or a repair) was applied.
fn fix_domain(domain: &str) -> (String, bool) {
    let (first, rest) = match domain.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (domain, None),
    };
    let fixed_first = match first {
        "geemail" | "gmale" | "geemale" | "jeemail" | "gmial" | "gmaill" | "g-mail" | "jmail"
        | "gmal" | "gemail" => "gmail",
        "hotmale" | "hotmial" | "hot-mail" => "hotmail",
        "bigpon" | "bigpont" | "big-pond" => "bigpond",
        "out-look" | "outlock" => "outlook",
        "eyecloud" | "i-cloud" => "icloud",
        "yahu" => "yahoo",
        other => other,
    };
    let repaired = fixed_first != first;
    let rest = rest.map(|r| match r {
        "calm" | "come" | "comb" | "con" | "co" => "com".to_string(),
        "calm.au" | "come.au" | "comb.au" => "com.au".to_string(),
        other => other.to_string(),
    });
    match rest {
        Some(r) => (format!("{fixed_first}.{r}"), repaired),
        None => {
            let default = match fixed_first {
                "gmail" => "gmail.com",
                "googlemail" => "googlemail.com",
                "hotmail" => "hotmail.com",
                "outlook" => "outlook.com",
                "bigpond" => "bigpond.com",
                "icloud" => "icloud.com",
                "optusnet" => "optusnet.com.au",
                "iinet" => "iinet.net.au",
                "protonmail" => "protonmail.com",
                other => return (other.to_string(), repaired),
            };
            (default.to_string(), true)
        }
    }
}

fn is_hyphen_spelled(t: &str) -> bool {
    t.len() >= 3
        && t.split('-')
            .all(|p| p.len() == 1 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Endings callers commonly have; anything else is confirmed first, since
/// it is more likely a transcription slip ("gmail dot com john").
fn common_tld(domain: &str) -> bool {
    let tld = domain.rsplit('.').next().unwrap_or("");
    matches!(
        tld,
        "com"
            | "net"
            | "org"
            | "edu"
            | "gov"
            | "au"
            | "nz"
            | "uk"
            | "io"
            | "co"
            | "me"
            | "us"
            | "ca"
            | "info"
            | "biz"
            | "app"
            | "dev"
            | "ai"
            | "tv"
            | "asn"
            | "id"
            | "store"
            | "online"
            | "xyz"
            | "tech"
            | "email"
            | "ie"
            | "in"
            | "sg"
            | "de"
            | "fr"
    )
}

fn is_known_domain(d: &str) -> bool {
    matches!(
        d,
        "gmail.com"
            | "googlemail.com"
            | "hotmail.com"
            | "hotmail.com.au"
            | "outlook.com"
            | "outlook.com.au"
            | "live.com"
            | "live.com.au"
            | "yahoo.com"
            | "yahoo.com.au"
            | "icloud.com"
            | "me.com"
            | "bigpond.com"
            | "bigpond.net.au"
            | "optusnet.com.au"
            | "iinet.net.au"
            | "tpg.com.au"
            | "protonmail.com"
            | "proton.me"
            | "aol.com"
            | "msn.com"
    )
}

/// Syntax check of a lowercase address.
pub(crate) fn valid_syntax(addr: &str) -> Result<(), &'static str> {
    let (local, domain) = addr.split_once('@').ok_or("no @ in the address")?;
    if local.is_empty() || local.len() > 64 {
        return Err("the part before the @ is empty or too long");
    }
    if domain.contains('@') {
        return Err("more than one @");
    }
    let local_ok = local
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
    if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before the @ has invalid characters");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err("the domain needs a dot, like gmail.com");
    }
    for l in &labels {
        if l.is_empty()
            || l.len() > 63
            || l.starts_with('-')
            || l.ends_with('-')
            || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("the domain is not valid");
        }
    }
    let tld = labels.last().copied().unwrap_or("");
    if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("the domain ending is not valid");
    }
    Ok(())
}

/// Spoken or typed email address.
pub(crate) fn parse(text: &str) -> Parsed {
    let tokens = tokenize(text, &['@', '.', '_', '-', '+', '\'']);
    // Typed by the STT engine already: trust its form.
    if let Some(t) = tokens
        .iter()
        .find(|t| t.contains('@') && !t.starts_with('@') && !t.ends_with('@'))
    {
        let addr = t.trim_end_matches('.').to_string();
        let (local, domain) = addr.split_once('@').unwrap_or((&addr, ""));
        let (domain, repaired) = fix_domain(domain);
        let addr = format!("{local}@{domain}");
        return match valid_syntax(&addr) {
            Ok(()) => Parsed::ok(Value::Email(addr), if repaired { 0.85 } else { 0.97 }),
            Err(e) => Parsed::invalid(e),
        };
    }

    let start = tokens
        .iter()
        .position(|t| !is_preamble(t))
        .unwrap_or(tokens.len());
    let mut end = tokens.len();
    while end > start
        && matches!(
            tokens[end - 1].as_str(),
            "thanks" | "thank" | "you" | "please" | "cheers" | "mate" | "ta"
        )
    {
        end -= 1;
    }
    let tokens = &tokens[start..end];
    if tokens.is_empty() {
        return Parsed::unsure("no email address heard");
    }
    let is_letterish = |i: usize| -> bool {
        tokens
            .get(i)
            .is_some_and(|t| single_letter(t).is_some() || letter_name(t).is_some())
    };

    let mut out = String::with_capacity(32);
    // Whether the previous piece in the local part was a multi-letter word,
    // to spot "john smith" (missing separator).
    let mut prev_word = false;
    let mut joined_words = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let next = tokens.get(i + 1).map(String::as_str);
        let in_local = !out.contains('@');
        let mut piece_is_word = false;
        match t {
            "at" | "@" => {
                out.push('@');
                if matches!(next, Some("sign" | "symbol")) {
                    i += 1;
                }
            }
            "dot" | "period" | "point" | "." => out.push('.'),
            "full" if next == Some("stop") => {
                out.push('.');
                i += 1;
            }
            "underscore" => out.push('_'),
            "under" if next == Some("score") => {
                out.push('_');
                i += 1;
            }
            "dash" | "hyphen" | "minus" => out.push('-'),
            "plus" => out.push('+'),
            "capital" | "uppercase" | "lowercase" | "small" | "letter" => {}
            "double" | "triple" => {
                let times = if t == "double" { 2 } else { 3 };
                let Some(n) = next else {
                    return Parsed::unsure("heard \"double\" without a letter after it");
                };
                let c = if t == "double" && matches!(n, "u" | "you") {
                    // "double u" is how people say w.
                    out.push('w');
                    i += 2;
                    prev_word = false;
                    continue;
                } else if let Some(c) = single_letter(n)
                    .or_else(|| letter_name(n))
                    .or_else(|| digit_name(n))
                {
                    c
                } else {
                    return Parsed::unsure("heard \"double\" without a letter after it");
                };
                for _ in 0..times {
                    out.push(c);
                }
                i += 1;
            }
            _ => {
                if let Some(c) = single_letter(t) {
                    out.push(c);
                } else if let Some(p) = read_number(tokens, i)
                    .filter(|p| p.spoken && p.value.fract() == 0.0 && (0.0..1e9).contains(&p.value))
                {
                    // "eighty five" → 85, "two thousand" → 2000, "one" → 1.
                    out.push_str(&(p.value as u64).to_string());
                    i += p.len;
                    prev_word = false;
                    continue;
                } else if let Some(c) =
                    letter_name(t).filter(|_| is_letterish(i + 1) || (i > 0 && is_letterish(i - 1)))
                {
                    out.push(c);
                } else if is_hyphen_spelled(t) {
                    // "j-o-h-n": letters spelled out by the transcriber.
                    out.extend(t.chars().filter(|c| *c != '-'));
                } else if t.contains('.') || t.contains('_') || t.contains('-') || t.contains('@') {
                    // partly typed, e.g. "john.smith" or "gmail.com"
                    out.push_str(t);
                } else if t.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    out.push_str(t);
                    piece_is_word = t.len() >= 2 && t.bytes().any(|b| b.is_ascii_alphabetic());
                } else {
                    return Parsed::unsure(format!("could not spell \"{t}\""));
                }
            }
        }
        let ats = out.matches('@').count();
        if in_local && ats == 0 {
            if piece_is_word && prev_word {
                joined_words = true;
            }
            prev_word = piece_is_word;
        }
        i += 1;
    }
    let ats = out.matches('@').count();
    if ats == 0 {
        return Parsed::unsure("no \"at\" heard");
    }
    if ats > 1 {
        return Parsed::unsure("heard \"at\" more than once");
    }
    let (local, domain) = out.split_once('@').unwrap_or((&out, ""));
    if domain.is_empty() {
        return Parsed::unsure("no domain after the at");
    }
    let (domain, defaulted) = fix_domain(domain);
    if domain == "yahoo" {
        return Parsed::unsure("yahoo.com or yahoo.com.au?");
    }
    let addr = format!("{local}@{domain}");
    if let Err(e) = valid_syntax(&addr) {
        return Parsed::invalid(e);
    }
    if domain.starts_with("gmail.") && domain != "gmail.com" {
        return Parsed::tentative(Value::Email(addr), 0.5, "gmail addresses end in gmail.com");
    }
    if !common_tld(&domain) {
        return Parsed::tentative(Value::Email(addr), 0.5, "unusual domain ending");
    }
    if joined_words {
        return Parsed::tentative(
            Value::Email(addr),
            0.5,
            "two words before the at with no dot or underscore between them",
        );
    }
    let conf = if is_known_domain(&domain) {
        if defaulted { 0.85 } else { 0.9 }
    } else {
        0.75
    };
    Parsed::ok(Value::Email(addr), conf)
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
    fn spoken_emails() {
        assert_eq!(
            ok("john dot smith at gmail dot com"),
            "john.smith@gmail.com"
        );
        assert_eq!(ok("j o h n at g mail dot com"), "john@gmail.com");
        assert_eq!(
            ok("sarah underscore lee at hot mail dot com"),
            "sarah_lee@hotmail.com"
        );
        assert_eq!(
            ok("my email is raj dash patel at big pond"),
            "raj-patel@bigpond.com"
        );
        assert_eq!(ok("it's mike at gee mail dot com"), "mike@gmail.com");
        assert_eq!(
            ok("Sure, it's john.smith@gmail.com."),
            "john.smith@gmail.com"
        );
        assert_eq!(
            ok("info at smith plumbing dot com dot au"),
            "info@smithplumbing.com.au"
        );
        assert_eq!(
            ok("double u a t s o n at outlook dot com"),
            "watson@outlook.com"
        );
    }

    #[test]
    fn unsure_emails() {
        let p = parse("john smith at gmail dot com");
        assert_eq!(p.status, ParseStatus::Unsure);
        assert!(p.confidence < 0.6);
        assert_eq!(parse("john at yahoo").status, ParseStatus::Unsure);
        assert_eq!(parse("um it's john").status, ParseStatus::Unsure);
        assert_eq!(
            parse("john at at gmail dot com").status,
            ParseStatus::Unsure
        );
        assert_eq!(parse("john at gmail dot c").status, ParseStatus::Invalid);
    }
}
