//! Shared text helpers: tokenising speech-to-text output and reading number
//! words. Kept allocation-light: one `Vec<String>` per parse.

/// Lowercase tokens of alphanumerics plus the characters in `keep`.
/// Curly apostrophes become `'`; `keep` characters at the edges of a token
/// are trimmed (sentence punctuation), except a leading `+`, `$`.
pub(crate) fn tokenize(text: &str, keep: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if cur.is_empty() {
            return;
        }
        let t = cur
            .trim_start_matches(|c: char| !c.is_alphanumeric() && !matches!(c, '+' | '$' | '@'))
            .trim_end_matches(|c: char| !c.is_alphanumeric());
        if !t.is_empty() {
            out.push(t.to_string());
        }
        cur.clear();
    };
    for ch in text.chars() {
        let c = match ch {
            '\u{2019}' | '\u{2018}' | '`' => '\'',
            _ => ch,
        };
        if c.is_alphanumeric() || keep.contains(&c) {
            cur.extend(c.to_lowercase());
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// zero..nineteen as words.
pub(crate) fn small_number(w: &str) -> Option<u32> {
    Some(match w {
        "zero" | "nought" | "nil" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

/// twenty..ninety as words.
pub(crate) fn tens_word(w: &str) -> Option<u32> {
    Some(match w {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// A single digit word (including "oh" for zero) or a one-digit numeral.
pub(crate) fn digit_word(w: &str) -> Option<u32> {
    match w {
        "oh" | "o" => Some(0),
        _ => match small_number(w) {
            Some(n) if n < 10 => Some(n),
            _ => {
                let b = w.as_bytes();
                if b.len() == 1 && b[0].is_ascii_digit() {
                    Some(u32::from(b[0] - b'0'))
                } else {
                    None
                }
            }
        },
    }
}

/// Ordinal words and numerals: "first", "third", "24th", "twentieth".
/// Compound ordinals ("twenty fourth") are read by [`read_ordinal`].
pub(crate) fn ordinal_word(w: &str) -> Option<u32> {
    let n = match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => {
            let digits = w
                .strip_suffix("st")
                .or_else(|| w.strip_suffix("nd"))
                .or_else(|| w.strip_suffix("rd"))
                .or_else(|| w.strip_suffix("th"))?;
            if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            return digits.parse().ok();
        }
    };
    Some(n)
}

/// An ordinal at `tokens[i]`, possibly compound ("twenty fourth"): value
/// and number of tokens used.
pub(crate) fn read_ordinal(tokens: &[String], i: usize) -> Option<(u32, usize)> {
    let t = tokens.get(i)?;
    if let Some(n) = ordinal_word(t) {
        return Some((n, 1));
    }
    let tens = tens_word(t)?;
    let unit = ordinal_word(tokens.get(i + 1)?)?;
    (1..10).contains(&unit).then_some((tens + unit, 2))
}

/// A numeral token: "25", "1,250", "12.50", "1.5k", "2m".
pub(crate) fn numeral(w: &str) -> Option<f64> {
    let (body, mult) = if let Some(b) = w.strip_suffix('k') {
        (b, 1_000.0)
    } else if let Some(b) = w.strip_suffix('m') {
        (b, 1_000_000.0)
    } else {
        (w, 1.0)
    };
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
    {
        return None;
    }
    // Thousands separators only in groups of three, so "1,5" is not 15.
    let int_part = body.split('.').next().unwrap_or(body);
    if int_part.contains(',') {
        let mut groups = int_part.split(',');
        let first = groups.next().unwrap_or("");
        if first.is_empty() || first.len() > 3 || groups.any(|g| g.len() != 3) {
            return None;
        }
    }
    if body.matches('.').count() > 1 || body.ends_with('.') {
        return None;
    }
    let cleaned: String = body.chars().filter(|&c| c != ',').collect();
    cleaned.parse::<f64>().ok().map(|v| v * mult)
}

/// A number phrase read from tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumberPhrase {
    /// The value.
    pub value: f64,
    /// First token index.
    pub start: usize,
    /// Tokens used.
    pub len: usize,
    /// True when any number word (not just numerals) was used.
    pub spoken: bool,
    /// True when the phrase ended with a decimal fraction ("point five").
    pub has_decimal: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    None,
    Unit,
    Teen,
    Tens,
    Hundred,
    Scale,
    Numeral,
}

fn scale_word(w: &str) -> Option<f64> {
    match w {
        "thousand" => Some(1e3),
        "million" => Some(1e6),
        "billion" => Some(1e9),
        _ => None,
    }
}

/// Read a cardinal number starting at `start`: "twenty five", "two hundred
/// and fifty", "a hundred", "one point five", "1.5k", "three thousand",
/// "one and a half", "a dozen". Digit sequences ("one two") stop after the
/// first digit so callers can see there were two numbers.
pub(crate) fn read_number(tokens: &[String], start: usize) -> Option<NumberPhrase> {
    let mut i = start;
    let mut total = 0.0f64;
    let mut current = 0.0f64;
    let mut last = Last::None;
    let mut spoken = false;
    let mut has_decimal = false;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let next = tokens.get(i + 1).map(String::as_str);
        if t == "a" && last == Last::None {
            // "a hundred", "a thousand", "a dozen"
            match next {
                Some("hundred" | "thousand" | "million" | "dozen") => {
                    current = 1.0;
                    last = Last::Unit;
                    spoken = true;
                    i += 1;
                    continue;
                }
                _ => break,
            }
        }
        if let Some(v) = numeral(t) {
            if last != Last::None && last != Last::Scale && last != Last::Hundred {
                break;
            }
            if last == Last::Hundred && v >= 100.0 {
                break;
            }
            current += v;
            last = Last::Numeral;
            i += 1;
            continue;
        }
        if let Some(n) = small_number(t) {
            let n = f64::from(n);
            match last {
                Last::None | Last::Scale | Last::Hundred => current += n,
                Last::Tens if n < 10.0 && n > 0.0 => current += n,
                _ => break,
            }
            last = if n < 10.0 { Last::Unit } else { Last::Teen };
            spoken = true;
            i += 1;
            continue;
        }
        if let Some(n) = tens_word(t) {
            match last {
                Last::None | Last::Scale | Last::Hundred => current += f64::from(n),
                _ => break,
            }
            last = Last::Tens;
            spoken = true;
            i += 1;
            continue;
        }
        if matches!(t, "hundred" | "thousand") && last == Last::None {
            // "hundred" alone, as in "about hundred bucks".
            current = if t == "hundred" { 100.0 } else { 1000.0 };
            last = if t == "hundred" {
                Last::Hundred
            } else {
                Last::Scale
            };
            if t == "thousand" {
                total = current;
                current = 0.0;
            }
            spoken = true;
            i += 1;
            continue;
        }
        if t == "hundred" && matches!(last, Last::Unit | Last::Teen | Last::Tens | Last::Numeral) {
            // "twelve hundred" is 1200; "two thousand one hundred" keeps total.
            current = if current == 0.0 {
                100.0
            } else {
                current * 100.0
            };
            last = Last::Hundred;
            spoken = true;
            i += 1;
            continue;
        }
        if let Some(s) = scale_word(t)
            && last != Last::None
            && last != Last::Scale
        {
            total += current * s;
            current = 0.0;
            last = Last::Scale;
            spoken = true;
            i += 1;
            continue;
        }
        if t == "dozen" && matches!(last, Last::Unit | Last::Numeral) {
            current *= 12.0;
            last = Last::Teen;
            spoken = true;
            i += 1;
            continue;
        }
        if t == "and" && matches!(last, Last::Hundred | Last::Scale) {
            // "two hundred and fifty": only if a number follows.
            if next.is_some_and(|n| {
                small_number(n).is_some() || tens_word(n).is_some() || numeral(n).is_some()
            }) {
                i += 1;
                continue;
            }
            break;
        }
        if t == "and"
            && last != Last::None
            && next == Some("a")
            && tokens.get(i + 2).map(String::as_str) == Some("half")
        {
            current += 0.5;
            has_decimal = true;
            spoken = true;
            i += 3;
            break;
        }
        if t == "point" && last != Last::None {
            // Decimal digits are spoken one by one: "one point two five".
            let mut frac = String::new();
            let mut j = i + 1;
            while let Some(d) = tokens.get(j).and_then(|w| digit_word(w)) {
                frac.push(char::from_digit(d, 10).unwrap_or('0'));
                j += 1;
            }
            if frac.is_empty() {
                break;
            }
            let f: f64 = format!("0.{frac}").parse().unwrap_or(0.0);
            current += f;
            has_decimal = true;
            spoken = true;
            i = j;
            // "one point five million"
            if let Some(s) = tokens.get(i).and_then(|w| scale_word(w)) {
                total += current * s;
                current = 0.0;
                i += 1;
            }
            break;
        }
        break;
    }
    if last == Last::None {
        return None;
    }
    Some(NumberPhrase {
        value: total + current,
        start,
        len: i - start,
        spoken,
        has_decimal,
    })
}

/// Levenshtein distance on chars (short strings only).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j + 1] + 1).min(cur[j] + 1).min(prev[j] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Words that carry no content in an answer.
pub(crate) fn is_filler(w: &str) -> bool {
    matches!(
        w,
        "um" | "umm"
            | "uh"
            | "uhh"
            | "er"
            | "erm"
            | "ah"
            | "hmm"
            | "hm"
            | "mm"
            | "like"
            | "so"
            | "well"
            | "oh"
    )
}

/// Phrases that mean the caller is correcting themselves mid-answer.
pub(crate) fn is_correction(tokens: &[String], i: usize) -> bool {
    let t = tokens[i].as_str();
    let next = tokens.get(i + 1).map(String::as_str);
    matches!(t, "sorry" | "actually" | "scratch")
        || (t == "no" && next == Some("wait"))
        || (t == "wait")
        || (t == "i" && next == Some("mean"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<f64> {
        let t = tokenize(s, &['.', ',', '\'']);
        read_number(&t, 0)
            .filter(|p| p.len == t.len())
            .map(|p| p.value)
    }

    #[test]
    fn cardinals() {
        assert_eq!(num("twenty five"), Some(25.0));
        assert_eq!(num("two hundred and fifty"), Some(250.0));
        assert_eq!(num("a hundred"), Some(100.0));
        assert_eq!(num("one point five"), Some(1.5));
        assert_eq!(num("1.5k"), Some(1500.0));
        assert_eq!(num("three thousand four hundred and two"), Some(3402.0));
        assert_eq!(num("twelve hundred"), Some(1200.0));
        assert_eq!(num("1,250"), Some(1250.0));
        assert_eq!(num("one and a half"), Some(1.5));
        assert_eq!(num("a dozen"), Some(12.0));
        assert_eq!(num("one point five million"), Some(1.5e6));
        assert_eq!(num("2 million"), Some(2e6));
        assert_eq!(num("one two"), None);
        assert_eq!(num("1,25"), None);
    }

    #[test]
    fn ordinals() {
        let t = tokenize("the twenty fourth of", &[]);
        assert_eq!(read_ordinal(&t, 1), Some((24, 2)));
        assert_eq!(ordinal_word("3rd"), Some(3));
        assert_eq!(ordinal_word("rd"), None);
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("colour", "color"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn tokenizer_trims_edges() {
        assert_eq!(
            tokenize("Hi, it's Raj.", &['\'', '.']),
            vec!["hi", "it's", "raj"]
        );
        assert_eq!(tokenize("+61 4", &['+']), vec!["+61", "4"]);
    }
}
