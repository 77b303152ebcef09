//! The `/v1/calls` text protocol for simulated callers and web widgets: one
//! JSON object per WebSocket text frame, tagged by `type`.

use serde::{Deserialize, Serialize};

/// What the caller side sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// The caller said (or typed) something; always a final transcript.
    Utterance {
        /// The words.
        text: String,
        /// Recognition confidence, 0 to 1; typed text is certain.
        #[serde(default = "certain")]
        confidence: f32,
    },
    /// Keys pressed, e.g. `0412345678#`.
    Dtmf {
        /// The keys.
        digits: String,
    },
    /// The caller stayed silent for the endpointing timeout. The text
    /// channel has no audio to time, so the client reports it.
    Silence,
    /// The caller interrupted the agent's speech. A widget that plays the
    /// agent's `say` aloud sends this when the user starts talking over it;
    /// the text channel cannot know when local playback ends.
    BargeIn,
    /// The caller hung up (closing the socket means the same).
    Hangup,
}

fn certain() -> f32 {
    1.0
}

/// What the agent side sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// The call is set up; first message of every call.
    Started {
        /// The call's id in the event spine.
        call_id: String,
    },
    /// The agent says something.
    Say {
        /// What to show or speak.
        text: String,
        /// The phrasebook id.
        phrase_id: String,
    },
    /// The agent waits for an answer.
    Listen {
        /// The capture primitive the answer is parsed with.
        expect: String,
        /// The step waiting for it.
        step: String,
        /// The allowed answers, for `choice`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        options: Option<Vec<String>>,
    },
    /// Stop speaking (a barge-in was accepted).
    Stop,
    /// The call is handed to a person.
    Transfer {
        /// E.164 number.
        to: String,
    },
    /// The call is over; last message before the server closes the socket.
    Ended {
        /// The outcome label (or the reason the call closed).
        outcome: String,
        /// Whether the objective was achieved; absent when the call closed
        /// before the engine decided (drained, error).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        completed: Option<bool>,
    },
    /// A message could not be understood; the call goes on.
    Error {
        /// What was wrong.
        message: String,
    },
}

impl ServerMessage {
    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Plain structs of strings always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"utterance","text":"yes","confidence":0.9}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Utterance {
                text: "yes".to_owned(),
                confidence: 0.9
            }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"type":"utterance","text":"no"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Utterance {
                text: "no".to_owned(),
                confidence: 1.0
            }
        );
        for (json, want) in [
            (r#"{"type":"silence"}"#, ClientMessage::Silence),
            (r#"{"type":"hangup"}"#, ClientMessage::Hangup),
            (r#"{"type":"bargeIn"}"#, ClientMessage::BargeIn),
            (
                r#"{"type":"dtmf","digits":"12#"}"#,
                ClientMessage::Dtmf {
                    digits: "12#".to_owned(),
                },
            ),
        ] {
            assert_eq!(serde_json::from_str::<ClientMessage>(json).unwrap(), want);
        }
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        assert_eq!(
            ServerMessage::Started {
                call_id: "c".to_owned(),
            }
            .to_json(),
            r#"{"type":"started","callId":"c"}"#
        );
        assert_eq!(
            ServerMessage::Say {
                text: "Hi".to_owned(),
                phrase_id: "greeting".to_owned()
            }
            .to_json(),
            r#"{"type":"say","text":"Hi","phraseId":"greeting"}"#
        );
        assert_eq!(
            ServerMessage::Listen {
                expect: "yesNo".to_owned(),
                step: "s".to_owned(),
                options: None
            }
            .to_json(),
            r#"{"type":"listen","expect":"yesNo","step":"s"}"#
        );
        assert_eq!(
            ServerMessage::Listen {
                expect: "choice".to_owned(),
                step: "s".to_owned(),
                options: Some(vec!["a".to_owned()])
            }
            .to_json(),
            r#"{"type":"listen","expect":"choice","step":"s","options":["a"]}"#
        );
        assert_eq!(ServerMessage::Stop.to_json(), r#"{"type":"stop"}"#);
        assert_eq!(
            ServerMessage::Ended {
                outcome: "booked".to_owned(),
                completed: Some(true)
            }
            .to_json(),
            r#"{"type":"ended","outcome":"booked","completed":true}"#
        );
    }
}
