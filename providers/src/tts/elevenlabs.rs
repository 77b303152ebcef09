//! ElevenLabs streaming text to speech:
//! `POST /v1/text-to-speech/{voice_id}/stream?output_format=ulaw_8000` with
//! the `xi-api-key` header and a JSON body `{text, model_id}`; the answer is
//! the audio, streamed as it is synthesised.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use reqwest::header::HeaderValue;
use serde::Serialize;
use tokio::sync::mpsc;

use super::TextToSpeech;
use crate::error::ProviderError;
use crate::http;

const VENDOR: &str = "elevenlabs";

/// Chunks buffered between the HTTP stream and the call.
const CHANNEL_CAPACITY: usize = 32;

/// ElevenLabs streaming speech synthesis.
#[derive(Clone)]
pub struct ElevenLabs {
    base_url: String,
    api_key: String,
    voice_id: String,
    model_id: String,
    language_code: Option<String>,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct Request<'a> {
    text: &'a str,
    model_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    language_code: Option<&'a str>,
}

impl ElevenLabs {
    /// ElevenLabs' public API.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.elevenlabs.io";
    /// The low-latency model used when the provider names none.
    pub const DEFAULT_MODEL: &'static str = "eleven_flash_v2_5";

    /// An adapter speaking with `voice_id` through the public API.
    pub fn new(
        api_key: impl Into<String>,
        voice_id: impl Into<String>,
    ) -> Result<Self, ProviderError> {
        Ok(ElevenLabs {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            voice_id: voice_id.into(),
            model_id: Self::DEFAULT_MODEL.to_owned(),
            language_code: None,
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            client: http::client(VENDOR)?,
        })
    }

    /// Another API root.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Another model.
    pub fn with_model(mut self, model_id: impl Into<String>) -> Self {
        self.model_id = model_id.into();
        self
    }

    /// Enforces a language; ElevenLabs takes ISO 639-1, so `en-AU` is sent
    /// as `en`.
    pub fn with_language(mut self, language: &str) -> Self {
        self.language_code = language
            .split(['-', '_'])
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_ascii_lowercase);
        self
    }

    /// How long until the answer starts, and how long the stream may stall.
    pub fn with_timeouts(mut self, first_byte: Duration, idle: Duration) -> Self {
        self.first_byte_timeout = first_byte;
        self.idle_timeout = idle;
        self
    }
}

#[async_trait]
impl TextToSpeech for ElevenLabs {
    async fn synthesize(
        &self,
        text: &str,
    ) -> Result<mpsc::Receiver<Result<Bytes, ProviderError>>, ProviderError> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        if text.trim().is_empty() {
            // ElevenLabs refuses empty text; there is nothing to say.
            return Ok(rx);
        }
        let mut url = http::endpoint(
            VENDOR,
            &self.base_url,
            &["v1", "text-to-speech", &self.voice_id, "stream"],
        )?;
        url.query_pairs_mut()
            .append_pair("output_format", "ulaw_8000");
        let mut key = HeaderValue::from_str(&self.api_key).map_err(|_| ProviderError::Config {
            vendor: VENDOR,
            message: "the API key contains characters not allowed in a header".to_owned(),
        })?;
        key.set_sensitive(true);
        let request = self
            .client
            .post(url)
            .header("xi-api-key", key)
            .json(&Request {
                text,
                model_id: &self.model_id,
                language_code: self.language_code.as_deref(),
            });
        let secrets = [self.api_key.as_str()];
        let response = http::within(
            VENDOR,
            "waiting for audio",
            self.first_byte_timeout,
            http::send(VENDOR, request, &secrets),
        )
        .await?;

        let idle = self.idle_timeout;
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            loop {
                let item = match tokio::time::timeout(idle, body.next()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(chunk))) if chunk.is_empty() => continue,
                    Ok(Some(Ok(chunk))) => Ok(chunk),
                    Ok(Some(Err(e))) => Err(http::transport(VENDOR, &e)),
                    Err(_) => Err(ProviderError::Timeout {
                        vendor: VENDOR,
                        during: "streaming audio",
                        after: idle,
                    }),
                };
                let failed = item.is_err();
                // A closed receiver means the call stopped listening
                // (barge-in): dropping the body cancels the request.
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(rx)
    }
}
