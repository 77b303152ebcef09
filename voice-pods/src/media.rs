//! The Twilio Media Streams protocol: the JSON messages on `/twilio/media`
//! and the 20 ms framing of outbound audio. Pure: no sockets here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Bytes of one 20 ms frame of 8 kHz µ-law audio.
pub const FRAME_BYTES: usize = 160;

/// µ-law silence, used to pad the last frame of a phrase.
pub const MULAW_SILENCE: u8 = 0xFF;

/// A message from Twilio.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    /// The WebSocket is up.
    Connected {
        /// `Call`.
        #[serde(default)]
        protocol: String,
    },
    /// The stream's metadata, once, before any media.
    Start {
        /// What the stream is.
        start: Start,
    },
    /// Caller audio.
    Media {
        /// The chunk.
        media: Media,
    },
    /// A key press.
    Dtmf {
        /// The key.
        dtmf: Dtmf,
    },
    /// Playback reached a mark we sent.
    Mark {
        /// Which one.
        mark: Mark,
    },
    /// The call or stream ended.
    Stop,
    /// Anything newer than this code; ignored.
    #[serde(other)]
    Other,
}

/// The `start` payload.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    /// The stream id every outbound message must carry.
    pub stream_sid: String,
    /// Twilio's CallSid.
    pub call_sid: String,
    /// The audio format.
    #[serde(default)]
    pub media_format: Option<MediaFormat>,
}

/// Audio format of the stream.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    /// `audio/x-mulaw`.
    pub encoding: String,
    /// 8000.
    pub sample_rate: u32,
    /// 1.
    #[serde(default = "one")]
    pub channels: u32,
}

fn one() -> u32 {
    1
}

impl MediaFormat {
    /// Whether this is the 8 kHz mono µ-law the Voice Core speaks.
    pub fn is_mulaw_8k(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("audio/x-mulaw")
            && self.sample_rate == 8000
            && self.channels == 1
    }
}

/// A `media` payload.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Media {
    /// Base64 µ-law.
    pub payload: String,
}

impl Media {
    /// The audio bytes, or `None` when the payload is not base64.
    pub fn audio(&self) -> Option<Vec<u8>> {
        STANDARD.decode(self.payload.as_bytes()).ok()
    }
}

/// A `dtmf` payload.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Dtmf {
    /// One key: `0`-`9`, `*` or `#`.
    pub digit: String,
}

/// A `mark` payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The name we gave it.
    pub name: String,
}

/// A message to Twilio.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Outbound<'a> {
    /// Audio to play.
    Media {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        /// The audio.
        media: OutMedia,
    },
    /// Tell us when playback gets here.
    Mark {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
        /// The mark.
        mark: Mark,
    },
    /// Drop buffered audio (barge-in).
    Clear {
        /// The stream.
        #[serde(rename = "streamSid")]
        stream_sid: &'a str,
    },
}

/// An outbound `media` payload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutMedia {
    /// Base64 µ-law.
    pub payload: String,
}

impl Outbound<'_> {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An outbound `media` message for one frame.
pub fn media_message(stream_sid: &str, frame: &[u8]) -> String {
    Outbound::Media {
        stream_sid,
        media: OutMedia {
            payload: STANDARD.encode(frame),
        },
    }
    .to_json()
}

/// Cuts a stream of audio chunks of any size into 20 ms frames, keeping the
/// remainder for the next chunk.
#[derive(Debug, Default)]
pub struct Framer {
    pending: Vec<u8>,
}

impl Framer {
    /// Adds `chunk` and returns the whole frames now available.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(chunk);
        let whole = self.pending.len() / FRAME_BYTES * FRAME_BYTES;
        let frames = self.pending[..whole]
            .chunks(FRAME_BYTES)
            .map(<[u8]>::to_vec)
            .collect();
        self.pending.drain(..whole);
        frames
    }

    /// The last partial frame padded with silence, if any audio is left.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            return None;
        }
        let mut frame = std::mem::take(&mut self.pending);
        frame.resize(FRAME_BYTES, MULAW_SILENCE);
        Some(frame)
    }

    /// Forgets buffered audio (barge-in).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_twilio_documented_messages() {
        let start: Inbound = serde_json::from_str(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"token":"t"}},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        let Inbound::Start { start } = start else {
            panic!("not a start: {start:?}")
        };
        assert_eq!(start.stream_sid, "MZ1");
        assert_eq!(start.call_sid, "CA1");
        assert!(start.media_format.unwrap().is_mulaw_8k());

        let media: Inbound = serde_json::from_str(
            r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"//8="},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        let Inbound::Media { media } = media else {
            panic!("not media")
        };
        assert_eq!(media.audio().unwrap(), vec![0xFF, 0xFF]);

        let dtmf: Inbound = serde_json::from_str(
            r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}"#,
        )
        .unwrap();
        assert_eq!(
            dtmf,
            Inbound::Dtmf {
                dtmf: Dtmf {
                    digit: "1".to_owned()
                }
            }
        );
        let stop: Inbound = serde_json::from_str(
            r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#,
        )
        .unwrap();
        assert_eq!(stop, Inbound::Stop);
        let future: Inbound = serde_json::from_str(r#"{"event":"somethingNew"}"#).unwrap();
        assert_eq!(future, Inbound::Other);
    }

    #[test]
    fn writes_twilio_documented_messages() {
        assert_eq!(
            media_message("MZ1", &[0xFF, 0xFF]),
            r#"{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}"#
        );
        assert_eq!(
            Outbound::Mark {
                stream_sid: "MZ1",
                mark: Mark {
                    name: "m1".to_owned()
                }
            }
            .to_json(),
            r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#
        );
        assert_eq!(
            Outbound::Clear { stream_sid: "MZ1" }.to_json(),
            r#"{"event":"clear","streamSid":"MZ1"}"#
        );
    }

    #[test]
    fn frames_are_twenty_milliseconds_across_chunks() {
        let mut framer = Framer::default();
        assert!(framer.push(&[1; 100]).is_empty());
        let frames = framer.push(&[2; 300]);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.len() == FRAME_BYTES));
        assert_eq!(&frames[0][..100], &[1; 100][..]);
        assert_eq!(frames[0][100], 2);
        let last = framer.finish().unwrap();
        assert_eq!(last.len(), FRAME_BYTES);
        assert_eq!(&last[..80], &[2; 80][..]);
        assert_eq!(last[80], MULAW_SILENCE);
        assert_eq!(framer.finish(), None);
    }
}
