//! Yes/no answers, with Australian idiom: "yeah nah" is no, "nah yeah" is
//! yes, "no worries" is yes. Hedges ("maybe", "I'm not sure") are unsure,
//! and so are answers that say both ("no, that's right", "yes, no, wait")
//! unless they are a pure run of yeah/nah words, where the last one wins.

use crate::text::{is_filler, tokenize};
use crate::{Parsed, Value};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Sig {
    Yes(f32),
    No(f32),
    Hedge,
}

/// Multi-word phrases, longest first where they overlap.
const PHRASES: &[(&[&str], Sig)] = &[
    (&["definitely", "not"], Sig::No(0.9)),
    (&["absolutely", "not"], Sig::No(0.9)),
    (&["certainly", "not"], Sig::No(0.9)),
    (&["of", "course", "not"], Sig::No(0.9)),
    (&["sure", "not"], Sig::Hedge),
    (&["i'm", "not", "sure"], Sig::Hedge),
    (&["i", "am", "not", "sure"], Sig::Hedge),
    (&["i", "don't", "think", "so"], Sig::No(0.75)),
    (&["don't", "think", "so"], Sig::No(0.75)),
    (&["i", "don't", "know"], Sig::Hedge),
    (&["don't", "know"], Sig::Hedge),
    (&["i", "dunno"], Sig::Hedge),
    (&["not", "sure"], Sig::Hedge),
    (&["not", "certain"], Sig::Hedge),
    (&["kind", "of"], Sig::Hedge),
    (&["sort", "of"], Sig::Hedge),
    (&["hang", "on"], Sig::Hedge),
    (&["come", "again"], Sig::Hedge),
    (&["say", "that", "again"], Sig::Hedge),
    (&["i", "guess", "so"], Sig::Yes(0.65)),
    (&["i", "think", "so"], Sig::Yes(0.7)),
    (&["i", "suppose", "so"], Sig::Yes(0.65)),
    (&["no", "worries"], Sig::Yes(0.9)),
    (&["no", "worry"], Sig::Yes(0.85)),
    (&["no", "problem"], Sig::Yes(0.9)),
    (&["no", "problems"], Sig::Yes(0.9)),
    (&["no", "probs"], Sig::Yes(0.9)),
    (&["not", "a", "problem"], Sig::Yes(0.9)),
    (&["no", "doubt"], Sig::Yes(0.85)),
    (&["not", "really"], Sig::No(0.85)),
    (&["not", "at", "all"], Sig::No(0.9)),
    (&["not", "quite"], Sig::No(0.8)),
    (&["not", "right"], Sig::No(0.9)),
    (&["not", "correct"], Sig::No(0.9)),
    (&["not", "now"], Sig::No(0.8)),
    (&["not", "today"], Sig::No(0.8)),
    (&["no", "thanks"], Sig::No(0.95)),
    (&["no", "thank", "you"], Sig::No(0.95)),
    (&["no", "way"], Sig::No(0.9)),
    (&["of", "course"], Sig::Yes(0.95)),
    (&["that's", "right"], Sig::Yes(0.95)),
    (&["that", "is", "right"], Sig::Yes(0.95)),
    (&["that's", "correct"], Sig::Yes(0.95)),
    (&["that", "is", "correct"], Sig::Yes(0.95)),
    (&["that's", "it"], Sig::Yes(0.85)),
    (&["that's", "wrong"], Sig::No(0.9)),
    (&["go", "ahead"], Sig::Yes(0.9)),
    (&["sounds", "good"], Sig::Yes(0.9)),
    (&["too", "right"], Sig::Yes(0.9)),
    (&["spot", "on"], Sig::Yes(0.9)),
    (&["bang", "on"], Sig::Yes(0.9)),
    (&["you", "bet"], Sig::Yes(0.9)),
    (&["you", "got", "it"], Sig::Yes(0.9)),
    (&["for", "sure"], Sig::Yes(0.9)),
    (&["uh", "huh"], Sig::Yes(0.8)),
    (&["mm", "hmm"], Sig::Yes(0.8)),
    (&["why", "not"], Sig::Yes(0.75)),
    (&["please", "do"], Sig::Yes(0.9)),
    (&["i", "do"], Sig::Yes(0.8)),
    (&["i", "don't"], Sig::No(0.8)),
    (&["i", "am"], Sig::Yes(0.8)),
    (&["i'm", "not"], Sig::No(0.8)),
    (&["it", "is"], Sig::Yes(0.8)),
    (&["it", "isn't"], Sig::No(0.8)),
    (&["it's", "not"], Sig::No(0.8)),
    (&["all", "good"], Sig::Yes(0.85)),
    (&["nuh", "uh"], Sig::No(0.8)),
    (&["not", "yet"], Sig::No(0.8)),
    (&["i'm", "good"], Sig::Hedge),
    (&["i'm", "fine"], Sig::Hedge),
    (&["i'm", "right"], Sig::Hedge),
];

fn word(w: &str) -> Option<Sig> {
    Some(match w {
        "yes" | "yeah" | "yep" | "yup" | "yea" | "ya" | "yah" | "aye" | "yess" | "yeh" => {
            Sig::Yes(0.95)
        }
        "correct" | "absolutely" | "definitely" | "certainly" | "affirmative" | "exactly"
        | "indeed" | "sure" | "totally" | "agreed" | "yessir" => Sig::Yes(0.9),
        "ok" | "okay" | "alright" | "right" | "perfect" | "great" => Sig::Yes(0.8),
        "fine" | "good" | "please" | "cool" | "sweet" => Sig::Yes(0.75),
        "no" | "nah" | "nope" | "negative" | "nay" | "nup" | "noo" => Sig::No(0.95),
        "incorrect" | "wrong" | "never" => Sig::No(0.9),
        "don't" | "cancel" => Sig::No(0.75),
        "maybe" | "perhaps" | "possibly" | "dunno" | "unsure" | "depends" | "what" | "pardon"
        | "huh" | "sorry" | "wait" | "actually" => Sig::Hedge,
        _ => return None,
    })
}

/// The short words of the "yeah nah" idiom.
fn is_yeah_nah(w: &str) -> bool {
    matches!(w, "yeah" | "yes" | "yep" | "yeh" | "nah" | "no" | "nope")
}

/// A yes or no.
pub(crate) fn parse(text: &str) -> Parsed {
    let tokens = tokenize(text, &['\'']);
    let mut sigs: Vec<Sig> = Vec::with_capacity(4);
    let mut content = 0;
    let mut but = false;
    let mut i = 0;
    'outer: while i < tokens.len() {
        for (words, sig) in PHRASES {
            if tokens.len() - i >= words.len()
                && tokens[i..i + words.len()]
                    .iter()
                    .zip(words.iter())
                    .all(|(a, b)| a == b)
            {
                sigs.push(*sig);
                i += words.len();
                continue 'outer;
            }
        }
        let t = tokens[i].as_str();
        if let Some(s) = word(t) {
            sigs.push(s);
        } else if t == "but" {
            but = true;
        } else if !is_filler(t) {
            content += 1;
        }
        i += 1;
    }
    if sigs.is_empty() {
        return Parsed::unsure(if content == 0 {
            "no answer heard"
        } else {
            "not a yes or no"
        });
    }
    if sigs.contains(&Sig::Hedge) {
        return Parsed::unsure("the caller was not sure");
    }
    let yes = sigs.iter().filter(|s| matches!(s, Sig::Yes(_))).count();
    let no = sigs.len() - yes;
    let best = |want_yes: bool| {
        sigs.iter()
            .filter_map(|s| match (s, want_yes) {
                (Sig::Yes(c), true) | (Sig::No(c), false) => Some(*c),
                _ => None,
            })
            .fold(0.0f32, f32::max)
    };
    let (answer, mut conf) = if no == 0 {
        (true, best(true))
    } else if yes == 0 {
        (false, best(false))
    } else if content == 0 && tokens.iter().all(|t| is_yeah_nah(t) || is_filler(t)) {
        // "yeah nah" (no), "nah yeah" (yes), "yeah nah yeah": the last wins.
        let last = tokens
            .iter()
            .rev()
            .find(|t| is_yeah_nah(t))
            .is_some_and(|t| matches!(t.as_str(), "yeah" | "yes" | "yep" | "yeh"));
        (last, 0.8)
    } else {
        return Parsed::unsure("heard both yes and no");
    };
    if but && content > 0 {
        // "yes, but can we make it 3?" is a condition, not a yes.
        return Parsed::unsure("a yes or no with a condition");
    }
    // A long answer with one yes/no word in it is less certain.
    if content > 4 {
        conf = conf.min(0.7);
    }
    Parsed::ok(Value::YesNo(answer), conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParseStatus;

    fn yn(t: &str) -> Option<bool> {
        let p = parse(t);
        match p.value {
            Some(Value::YesNo(b)) if p.status == ParseStatus::Ok => Some(b),
            _ => None,
        }
    }

    #[test]
    fn idioms() {
        assert_eq!(yn("yeah nah"), Some(false));
        assert_eq!(yn("nah yeah"), Some(true));
        assert_eq!(yn("no worries"), Some(true));
        assert_eq!(yn("not really"), Some(false));
        assert_eq!(yn("yep that's right"), Some(true));
        assert_eq!(yn("Negative."), Some(false));
        assert_eq!(yn("maybe"), None);
        assert_eq!(yn("I'm not sure"), None);
        assert_eq!(yn("no, that's right"), None);
        assert_eq!(yn("um"), None);
    }
}
