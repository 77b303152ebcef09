//! Choosing one of the configured options.
//!
//! In order: exact match; an option named inside the sentence (the longest
//! wins when one option contains another, "haircut" inside "haircut and
//! colour"); an ordinal ("the second one", "option 2", "the last one"); a
//! small typo by edit distance; a distinctive word of exactly one option.
//! Case and plurals are ignored. Two options heard, "both", "either" or a
//! negation ("not the first one") are unsure.

use crate::text::{edit_distance, is_filler, ordinal_word, small_number};
use crate::{Parsed, Value};

fn singular(w: &str) -> String {
    if w.len() > 4
        && let Some(stem) = w.strip_suffix("ies")
    {
        return format!("{stem}y");
    }
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

fn norm_tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '\u{2019}')
        .map(|t| t.replace(['\'', '\u{2019}'], "").to_lowercase())
        .filter(|t| !t.is_empty())
        .map(|t| singular(&t))
        .collect()
}

fn is_stopword(w: &str) -> bool {
    matches!(
        w,
        "the"
            | "a"
            | "an"
            | "and"
            | "of"
            | "with"
            | "for"
            | "to"
            | "in"
            | "on"
            | "or"
            | "one"
            | "please"
            | "i'd"
            | "id"
            | "like"
            | "want"
            | "i"
            | "it"
            | "that"
            | "thi"
    )
}

/// Tokens equal, or one typo apart when both are long enough to tell.
fn tok_eq(a: &str, b: &str) -> bool {
    a == b || (a.len().min(b.len()) >= 4 && edit_distance(a, b) <= 1)
}

/// Position of `needle` as a contiguous run in `hay`, and whether exact.
fn find_run(hay: &[String], needle: &[String]) -> Option<(usize, bool)> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    let mut fuzzy = None;
    for i in 0..=hay.len() - needle.len() {
        let win = &hay[i..i + needle.len()];
        if win == needle {
            return Some((i, true));
        }
        if fuzzy.is_none() && win.iter().zip(needle).all(|(a, b)| tok_eq(a, b)) {
            fuzzy = Some((i, false));
        }
    }
    fuzzy
}

fn ordinal_index(tokens: &[String], n: usize) -> Result<Option<usize>, String> {
    let mut found: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| tokens[p].as_str());
        let idx = if t == "last" {
            Some(n)
        } else if let Some(k) = ordinal_word(t) {
            Some(k as usize)
        } else if matches!(prev, Some("number" | "option" | "choice")) {
            small_number(t)
                .map(|k| k as usize)
                .or_else(|| t.parse::<usize>().ok())
        } else {
            None
        };
        if let Some(k) = idx {
            if found.is_some_and(|f| f != k) {
                return Err("heard two positions".to_string());
            }
            found = Some(k);
        }
    }
    match found {
        Some(k) if k == 0 || k > n => Err(format!("there are only {n} options")),
        other => Ok(other),
    }
}

/// Match `text` against the allowed `choices`.
pub(crate) fn parse(text: &str, choices: &[String]) -> Parsed {
    if choices.is_empty() {
        return Parsed::invalid("no options configured");
    }
    let utter: Vec<String> = norm_tokens(text)
        .into_iter()
        .filter(|t| !is_filler(t))
        .collect();
    if utter.is_empty() {
        return Parsed::unsure("no answer heard");
    }
    if utter.iter().any(|t| {
        matches!(
            t.as_str(),
            "not"
                | "dont"
                | "except"
                | "neither"
                | "none"
                | "nor"
                | "both"
                | "either"
                | "whichever"
                | "all"
                | "any"
                | "anything"
        )
    }) {
        return Parsed::unsure("not a single option");
    }
    let opts: Vec<Vec<String>> = choices.iter().map(|c| norm_tokens(c)).collect();
    let pick = |k: usize, conf: f32| Parsed::ok(Value::Choice(choices[k].clone()), conf);

    // 1. Exact.
    if let Some(k) = opts.iter().position(|o| *o == utter) {
        return pick(k, 0.98);
    }

    // 2. Named inside the sentence.
    let spans: Vec<(usize, usize, usize, bool)> = opts
        .iter()
        .enumerate()
        .filter_map(|(k, o)| find_run(&utter, o).map(|(s, exact)| (k, s, s + o.len(), exact)))
        .collect();
    let maximal: Vec<&(usize, usize, usize, bool)> = spans
        .iter()
        .filter(|(k, s, e, _)| {
            !spans
                .iter()
                .any(|(k2, s2, e2, _)| k2 != k && s2 <= s && e <= e2 && (e2 - s2) > (e - s))
        })
        .collect();
    match maximal.as_slice() {
        [(k, s, e, exact)] => {
            // "haircut, and a colour": another option's own word outside the
            // match means the caller may want more than one thing.
            let outside = utter
                .iter()
                .enumerate()
                .filter(|(i, _)| i < s || i >= e)
                .map(|(_, u)| u.as_str());
            for u in outside {
                let other = opts.iter().enumerate().any(|(k2, o)| {
                    k2 != *k
                        && o.iter().any(|w| tok_eq(w, u))
                        && !opts[*k].iter().any(|w| w.contains(u))
                        && !is_stopword(u)
                });
                if other {
                    return Parsed::unsure("heard words of another option too");
                }
            }
            return pick(*k, if *exact { 0.92 } else { 0.8 });
        }
        [] => {}
        _ => return Parsed::unsure("heard more than one option"),
    }

    // 3. Ordinal.
    match ordinal_index(&utter, choices.len()) {
        Ok(Some(k)) => return pick(k - 1, 0.9),
        Ok(None) => {}
        Err(e) => return Parsed::unsure(e),
    }

    // 4. Small typos: compare each option with windows of the same length.
    let mut best: Vec<(usize, usize)> = Vec::new(); // (option, distance)
    for (k, o) in opts.iter().enumerate() {
        let target: String = o.concat();
        let allowed = match target.chars().count() {
            0..=4 => 0,
            5..=8 => 1,
            _ => 2,
        };
        if allowed == 0 {
            continue;
        }
        let mut d_min = usize::MAX;
        for w in [o.len().saturating_sub(1), o.len(), o.len() + 1] {
            if w == 0 || w > utter.len() {
                continue;
            }
            for win in utter.windows(w) {
                d_min = d_min.min(edit_distance(&win.concat(), &target));
            }
        }
        if d_min <= allowed {
            best.push((k, d_min));
        }
    }
    if let Some(min) = best.iter().map(|(_, d)| *d).min() {
        let top: Vec<&(usize, usize)> = best.iter().filter(|(_, d)| *d == min).collect();
        if top.len() == 1 && best.len() == 1 {
            return pick(top[0].0, [0.9, 0.8, 0.7][min.min(2)]);
        }
        return Parsed::unsure("sounds like more than one option");
    }

    // 5. A distinctive word of one option ("the deluxe" for "Deluxe room").
    // A word counts only if it is a distinctive part of one option: not
    // also inside another option's words ("cut" is in "haircut").
    let distinctive = |k: usize, w: &str| {
        !opts
            .iter()
            .enumerate()
            .any(|(k2, o)| k2 != k && o.iter().any(|x| x.contains(w) || tok_eq(x, w)))
    };
    let hits: Vec<usize> = opts
        .iter()
        .enumerate()
        .filter(|(k, o)| {
            utter.iter().any(|u| {
                !is_stopword(u)
                    && u.len() > 2
                    && distinctive(*k, u)
                    && o.iter()
                        .any(|w| tok_eq(w, u) || (u.len() >= 4 && w.starts_with(u.as_str())))
            })
        })
        .map(|(k, _)| k)
        .collect();
    match hits.as_slice() {
        [k] => pick(*k, 0.7),
        [] => Parsed::unsure("did not match any option"),
        _ => Parsed::unsure("could be more than one option"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;

    fn opts() -> Vec<String> {
        ["Haircut", "Haircut and colour", "Beard trim", "Kids cut"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn choose(t: &str) -> Option<String> {
        let p = parse(t, &opts());
        (p.status == ParseStatus::Ok).then(|| p.value.unwrap().display())
    }

    #[test]
    fn matching() {
        assert_eq!(choose("haircut"), Some("Haircut".into()));
        assert_eq!(
            choose("I'd like a haircut and colour please"),
            Some("Haircut and colour".into())
        );
        assert_eq!(choose("the second one"), Some("Haircut and colour".into()));
        assert_eq!(choose("beard trims"), Some("Beard trim".into()));
        assert_eq!(choose("a bird trim"), Some("Beard trim".into()));
        assert_eq!(choose("the last one"), Some("Kids cut".into()));
        assert_eq!(choose("not the first one"), None);
        assert_eq!(choose("a beard trim and a kids cut"), None);
        assert_eq!(choose("the fifth one"), None);
    }
}
