//! Any OpenAI-compatible chat completions API (`POST /v1/chat/completions`
//! with `Authorization: Bearer`), used as a classifier at temperature 0.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::{Classification, Classifier, match_reply};
use crate::error::ProviderError;
use crate::http;

const VENDOR: &str = "openai";

/// A chat completions classifier.
#[derive(Clone)]
pub struct OpenAiCompatible {
    base_url: String,
    api_key: String,
    model: String,
    timeout: Duration,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

/// The instructions: one option verbatim or `none`. The utterance goes in a
/// message of its own, so what a caller says is data, not instructions;
/// and whatever comes back is mapped onto the options anyway.
fn system_prompt(options: &[String]) -> String {
    let mut prompt = String::from(
        "You classify what a caller said on a phone call. Reply with exactly one \
         of the options below, copied verbatim, or with none if no option clearly \
         applies. Reply with the option alone: no other words, no punctuation.\n\
         Options:\n",
    );
    for option in options {
        prompt.push_str("- ");
        prompt.push_str(option);
        prompt.push('\n');
    }
    prompt.push_str("- none\n");
    prompt
}

impl OpenAiCompatible {
    /// OpenAI's public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com";

    /// A classifier using `model` at OpenAI's public API.
    pub fn new(
        api_key: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, ProviderError> {
        Ok(OpenAiCompatible {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            model: model.into(),
            timeout: Duration::from_secs(5),
            client: http::client(VENDOR)?,
        })
    }

    /// Another API root (`{base}/v1/chat/completions` is called).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// How long a classification may take; a caller is waiting.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Classifier for OpenAiCompatible {
    async fn classify(
        &self,
        utterance: &str,
        options: &[String],
    ) -> Result<Classification, ProviderError> {
        if options.is_empty() || utterance.trim().is_empty() {
            return Ok(Classification::default());
        }
        let url = http::endpoint(VENDOR, &self.base_url, &["v1", "chat", "completions"])?;
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": system_prompt(options)},
                {"role": "user", "content": utterance},
            ],
        });
        let request = self.client.post(url).bearer_auth(&self.api_key).json(&body);
        let secrets = [self.api_key.as_str()];
        let completion: Completion = http::within(VENDOR, "classifying", self.timeout, async {
            http::json(VENDOR, http::send(VENDOR, request, &secrets).await?).await
        })
        .await?;
        let reply = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| ProviderError::Protocol {
                vendor: VENDOR,
                message: "the completion has no choices".to_owned(),
            })?
            .message
            .content
            .unwrap_or_default();
        let usage = completion.usage.unwrap_or(Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        Ok(Classification {
            choice: match_reply(&reply, options),
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_lists_every_option_and_none() {
        let prompt = system_prompt(&["Sales".into(), "Support".into()]);
        assert!(
            prompt.ends_with("Options:\n- Sales\n- Support\n- none\n"),
            "{prompt}"
        );
        assert!(prompt.contains("exactly one"), "{prompt}");
    }
}
