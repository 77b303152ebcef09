//! The optional language model. It only classifies: given what the caller
//! said and the options the objective engine offers, it names one option or
//! none. It never decides what the engine does, so whatever it answers is
//! mapped onto the options and anything else counts as no match.

use async_trait::async_trait;

use crate::error::ProviderError;

mod openai;

pub use openai::OpenAiCompatible;

/// The result of a classification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    /// One of the options, spelled as given; `None` when nothing matched.
    pub choice: Option<String>,
    /// Prompt tokens billed.
    pub input_tokens: u32,
    /// Completion tokens billed.
    pub output_tokens: u32,
}

/// A classifier of utterances.
#[async_trait]
pub trait Classifier: Send + Sync {
    /// Which of `options` the caller's `utterance` means, if any.
    async fn classify(
        &self,
        utterance: &str,
        options: &[String],
    ) -> Result<Classification, ProviderError>;
}

/// The offline classifier: an option matches when its words appear, in
/// order and as whole words, in the utterance (ignoring case and
/// punctuation). Costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtin;

#[async_trait]
impl Classifier for Builtin {
    async fn classify(
        &self,
        utterance: &str,
        options: &[String],
    ) -> Result<Classification, ProviderError> {
        Ok(Classification {
            choice: keyword_match(utterance, options),
            input_tokens: 0,
            output_tokens: 0,
        })
    }
}

/// Lower-case alphanumeric words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The option whose words appear in `text` as a run of whole words. When
/// several do, the one with the most words wins ("new booking" over
/// "booking"); a tie between different options is no match.
pub fn keyword_match(text: &str, options: &[String]) -> Option<String> {
    let said = words(text);
    let mut best: Option<(usize, &String)> = None;
    let mut tied = false;
    for option in options {
        let wanted = words(option);
        if wanted.is_empty() || !said.windows(wanted.len()).any(|w| w == wanted.as_slice()) {
            continue;
        }
        match best {
            Some((len, chosen)) if len == wanted.len() => {
                tied |= words(chosen) != wanted;
            }
            Some((len, _)) if len > wanted.len() => {}
            _ => {
                best = Some((wanted.len(), option));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, option)| option.clone())
}

/// Maps a model's reply to an option: the reply is the option (ignoring
/// case, quotes and punctuation), or `none`, or failing both the one option
/// it mentions as [`keyword_match`] finds it.
pub fn match_reply(reply: &str, options: &[String]) -> Option<String> {
    let said = words(reply);
    if let Some(exact) = options
        .iter()
        .find(|o| words(o) == said && !said.is_empty())
    {
        return Some(exact.clone());
    }
    if said == ["none"] {
        return None;
    }
    keyword_match(reply, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn whole_words_in_any_case_match() {
        let opts = options(&["Sales", "Support", "new booking", "booking"]);
        assert_eq!(
            keyword_match("I'd like to talk to SALES please.", &opts).as_deref(),
            Some("Sales")
        );
        // Part of a word is not the word.
        assert_eq!(keyword_match("it's unsupported", &opts), None);
        assert_eq!(
            keyword_match("I want a new booking", &opts).as_deref(),
            Some("new booking")
        );
        assert_eq!(
            keyword_match("change my booking", &opts).as_deref(),
            Some("booking")
        );
        // Words out of order are not the option.
        assert_eq!(
            keyword_match("booking new", &opts).as_deref(),
            Some("booking")
        );
        assert_eq!(keyword_match("sales or support?", &opts), None);
        assert_eq!(keyword_match("nothing relevant", &opts), None);
        assert_eq!(keyword_match("sales", &[]), None);
    }

    #[test]
    fn replies_map_onto_options() {
        let opts = options(&["Sales", "Support"]);
        assert_eq!(match_reply("support", &opts).as_deref(), Some("Support"));
        assert_eq!(match_reply("\"Sales.\"", &opts).as_deref(), Some("Sales"));
        assert_eq!(
            match_reply(" `SUPPORT`\n", &opts).as_deref(),
            Some("Support")
        );
        assert_eq!(match_reply("none", &opts), None);
        assert_eq!(match_reply("None.", &opts), None);
        assert_eq!(
            match_reply("The caller wants support.", &opts).as_deref(),
            Some("Support")
        );
        assert_eq!(match_reply("billing", &opts), None);
        assert_eq!(match_reply("", &opts), None);
    }

    #[tokio::test]
    async fn builtin_classifies_offline_for_free() {
        let got = Builtin
            .classify("yes that's right", &options(&["yes", "no"]))
            .await
            .unwrap();
        assert_eq!(
            got,
            Classification {
                choice: Some("yes".into()),
                input_tokens: 0,
                output_tokens: 0
            }
        );
    }
}
