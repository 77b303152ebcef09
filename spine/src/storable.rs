//! Text PostgreSQL can store.
//!
//! A UTF-8 database stores every Unicode scalar value but one: U+0000 (NUL)
//! fits neither a `text` column nor a JSONB string (`\u0000` is refused as
//! an "unsupported Unicode escape sequence"), and a refused row fails the
//! whole statement it is in. Such characters are replaced with U+FFFD.
//!
//! Replacing rather than escaping keeps stored text plain, so SQL readers,
//! workers and vendors see what the engine saw without decoding anything.
//! Where the text is the caller's own words, the voice pods keep the exact
//! text as an [`escaped`] JSON string literal next to it (`alteredFrom` of
//! `inputReceived`), so nothing the caller sent is lost.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// What unstorable characters become.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Whether PostgreSQL can store `c` in `text` and JSONB.
pub fn is_storable(c: char) -> bool {
    c != '\0'
}

/// `text` with every unstorable character replaced; borrowed when there is
/// none.
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_storable) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if is_storable(c) { c } else { REPLACEMENT })
                .collect(),
        )
    }
}

/// Replaces unstorable characters in `text`; returns whether there were any.
pub fn make_storable(text: &mut String) -> bool {
    match storable(text) {
        Cow::Borrowed(_) => false,
        Cow::Owned(replaced) => {
            *text = replaced;
            true
        }
    }
}

/// Replaces unstorable characters in every string and object key of
/// `value`; returns whether there were any.
pub fn make_value_storable(value: &mut Value) -> bool {
    match value {
        Value::String(s) => make_storable(s),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |replaced, v| make_value_storable(v) | replaced),
        Value::Object(map) => make_map_storable(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn make_map_storable(map: &mut Map<String, Value>) -> bool {
    let mut replaced = map
        .values_mut()
        .fold(false, |replaced, v| make_value_storable(v) | replaced);
    if !map.keys().all(|k| k.chars().all(is_storable)) {
        let entries = std::mem::take(map);
        for (key, value) in entries {
            map.insert(storable(&key).into_owned(), value);
        }
        replaced = true;
    }
    replaced
}

/// `text` exactly, as a JSON string literal (quotes included): storable
/// whatever it holds, and read back with any JSON parser.
pub fn escaped(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_is_replaced_and_everything_else_is_kept() {
        assert!(matches!(storable("plain words"), Cow::Borrowed(_)));
        let mixed = "a\0b \u{1F600} \u{FFFD} \u{7} é\0";
        assert_eq!(
            storable(mixed),
            "a\u{FFFD}b \u{1F600} \u{FFFD} \u{7} é\u{FFFD}"
        );
        let mut text = "\0".to_owned();
        assert!(make_storable(&mut text));
        assert_eq!(text, "\u{FFFD}");
        assert!(!make_storable(&mut text));
    }

    #[test]
    fn every_string_and_key_of_a_value_is_made_storable() {
        let mut value = json!({
            "text": "hi\0there",
            "params": {"na\0me": "Jo\0", "ok": "fine"},
            "list": [1, "x\0", null, true, {"deep": "\0"}],
            "n": 2.5,
        });
        assert!(make_value_storable(&mut value));
        assert_eq!(
            value,
            json!({
                "text": "hi\u{FFFD}there",
                "params": {"na\u{FFFD}me": "Jo\u{FFFD}", "ok": "fine"},
                "list": [1, "x\u{FFFD}", null, true, {"deep": "\u{FFFD}"}],
                "n": 2.5,
            })
        );
        assert!(!make_value_storable(&mut value));
        assert!(!value.to_string().contains("\\u0000"));
    }

    #[test]
    fn the_escaped_form_is_storable_and_reads_back_exactly() {
        let original = "my name is \0Bob\u{FFFD}\"";
        let literal = escaped(original);
        assert!(literal.chars().all(is_storable), "{literal}");
        assert_eq!(literal, r#""my name is \u0000Bob�\"""#);
        let back: String = serde_json::from_str(&literal).expect("a JSON string");
        assert_eq!(back, original);
    }
}
