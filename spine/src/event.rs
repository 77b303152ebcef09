//! Call events: what the voice runtime appends to `call_events`.
//!
//! A row is `(call_id, seq, tenant, event_type, schema_version, occurred_at,
//! payload)`; the payload is the event's JSON object without its `type`,
//! which is the `event_type` column. Two families share the type space:
//! [`RuntimeEvent`]s written by the voice runtime (the call opened, an input
//! reached the engine, the agent spoke, cost accrued, …) and the engine's
//! own [`dialtone_engine::Event`]s, recorded under their own type names.
//!
//! Replay relies on the order: `callOpened`, the outputs of
//! `engine.start(startedAt)`, then for every `inputReceived` the outputs of
//! `engine.step` for it, and `callClosed` last.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dialtone_crds::objective::{Primitive, TransferMode};
use dialtone_engine::vocabulary::EVENT_TYPES;
use dialtone_engine::{Event, Input, Output};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Version of the payload layout written by this build, stored in
/// `call_events.schema_version`.
pub const SCHEMA_VERSION: i16 = 1;

/// One event of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallEvent {
    /// The call.
    pub call_id: Uuid,
    /// Position within the call, from 0 (`callOpened`) without gaps.
    pub seq: i32,
    /// The tenant the call belongs to.
    pub tenant: String,
    /// When it happened (PostgreSQL keeps microseconds).
    pub occurred_at: DateTime<Utc>,
    /// What happened.
    pub body: EventBody,
}

/// What happened: a runtime event or an engine event.
#[derive(Clone, Debug, PartialEq)]
pub enum EventBody {
    /// Written by the voice runtime.
    Runtime(RuntimeEvent),
    /// An [`Output::Event`] of the objective engine.
    Engine(Event),
}

/// Whether the call came in or was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// The caller dialled one of the agent's numbers.
    Inbound,
    /// The platform placed the call (campaigns).
    Outbound,
}

impl Direction {
    /// The name as stored (`calls.direction`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// The ingress the call arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Channel {
    /// Twilio Media Streams.
    Twilio,
    /// The text WebSocket (simulated callers, web widgets).
    Text,
}

/// What a cost was incurred for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CostComponent {
    /// Phone minutes.
    Telephony,
    /// Speech recognition.
    Stt,
    /// Speech synthesis.
    Tts,
    /// Intent classification.
    Llm,
}

impl CostComponent {
    /// The name as written in events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CostComponent::Telephony => "telephony",
            CostComponent::Stt => "stt",
            CostComponent::Tts => "tts",
            CostComponent::Llm => "llm",
        }
    }
}

/// The unit a cost's quantity is counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CostUnit {
    /// Telephony.
    Minutes,
    /// Speech recognition.
    Seconds,
    /// Speech synthesis.
    Characters,
    /// LLM prompt tokens.
    InputTokens,
    /// LLM completion tokens.
    OutputTokens,
}

/// Why a call's record was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloseReason {
    /// The engine ended the call.
    Ended,
    /// The engine transferred the call.
    Transferred,
    /// The caller hung up.
    Hangup,
    /// The voice pod shut down and the grace period ran out.
    Drained,
    /// The runtime failed.
    Error,
}

impl CloseReason {
    /// The name as written in events (and the outcome of a call the engine
    /// did not end).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Ended => "ended",
            CloseReason::Transferred => "transferred",
            CloseReason::Hangup => "hangup",
            CloseReason::Drained => "drained",
            CloseReason::Error => "error",
        }
    }
}

/// An event written by the voice runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RuntimeEvent {
    /// The call started; always seq 0.
    CallOpened {
        /// The Agent's namespace.
        namespace: String,
        /// The Agent.
        agent: String,
        /// The config version the call is pinned to (its hash).
        config_version: String,
        /// The Voice Core version running the call.
        core_version: String,
        /// Inbound or outbound.
        direction: Direction,
        /// The caller's number, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
        /// The called number, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callee: Option<String>,
        /// The ingress.
        channel: Channel,
        /// The telephony provider's id of the call (Twilio's CallSid).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
        /// The instant passed to `engine.start`.
        started_at: DateTime<Utc>,
    },
    /// An input was fed to `engine.step`, exactly as fed.
    InputReceived {
        /// The input.
        #[serde(with = "input_json")]
        input: Input,
        /// What the caller said when the input was mapped from it (for
        /// example by the LLM classifier).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        original: Option<String>,
        /// The caller's words exactly as received (`original`, else the
        /// input's text or keys), as a JSON string literal, when they held
        /// text PostgreSQL cannot store: `input` and `original` then carry
        /// U+FFFD in its place (see [`crate::storable`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        altered_from: Option<String>,
    },
    /// [`Output::Speak`].
    AgentSpoke {
        /// The phrasebook id.
        phrase_id: String,
        /// The parameters it was rendered with.
        params: BTreeMap<String, String>,
        /// The rendered text.
        text: String,
    },
    /// [`Output::StopSpeaking`].
    SpeechStopped,
    /// [`Output::Listen`].
    Listening {
        /// The primitive the answer is parsed with.
        expect: Primitive,
        /// The step waiting for it.
        step: String,
    },
    /// [`Output::Transfer`].
    Transferred {
        /// E.164 number.
        to: String,
        /// Warm or cold.
        mode: TransferMode,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// [`Output::End`].
    CallEnded {
        /// The outcome label.
        outcome: String,
    },
    /// A provider charged for part of the call.
    CostAccrued {
        /// What for.
        component: CostComponent,
        /// The Provider's name.
        provider: String,
        /// How much was used, in `unit`.
        quantity: f64,
        /// The unit of `quantity`.
        unit: CostUnit,
        /// The price in millionths of a US dollar.
        micro_usd: i64,
    },
    /// One turn's latency: the caller's end of turn to the agent's first
    /// audio or text.
    TurnMeasured {
        /// Microseconds.
        latency_micros: i64,
    },
    /// The call's record is complete; always the last event.
    CallClosed {
        /// Why.
        reason: CloseReason,
        /// When.
        ended_at: DateTime<Utc>,
        /// Since `startedAt`.
        duration_millis: i64,
    },
    /// A workflow job of the call was delivered. Written by the workers
    /// after `callClosed`; informational, it never changes the conversation.
    WorkflowSucceeded {
        /// The workflow's name.
        workflow: String,
        /// Its action, e.g. `calendarBook`.
        action: String,
        /// The vendor that received it.
        vendor: String,
        /// Which attempt succeeded, from 1.
        attempt: i32,
        /// The vendor's id of what was made (booking, message, contact).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// An attempt failed and the job will be retried.
    WorkflowFailed {
        /// The workflow's name.
        workflow: String,
        /// Its action.
        action: String,
        /// The vendor.
        vendor: String,
        /// The failed attempt, from 1.
        attempt: i32,
        /// Why, as the vendor or the transport said.
        error: String,
        /// When the next attempt is due.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_at: Option<DateTime<Utc>>,
    },
    /// The job will not be retried: it waits in the dead letters for
    /// `dialtone workflows retry` or `discard`.
    WorkflowDeadLettered {
        /// The workflow's name.
        workflow: String,
        /// Its action.
        action: String,
        /// The vendor.
        vendor: String,
        /// Attempts made.
        attempts: i32,
        /// The last error.
        error: String,
    },
}

/// Every runtime event type name.
pub const RUNTIME_EVENT_TYPES: &[&str] = &[
    "agentSpoke",
    "callClosed",
    "callEnded",
    "callOpened",
    "costAccrued",
    "inputReceived",
    "listening",
    "speechStopped",
    "transferred",
    "turnMeasured",
    "workflowDeadLettered",
    "workflowFailed",
    "workflowSucceeded",
];

impl RuntimeEvent {
    /// The type name, as in [`RUNTIME_EVENT_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            RuntimeEvent::CallOpened { .. } => "callOpened",
            RuntimeEvent::InputReceived { .. } => "inputReceived",
            RuntimeEvent::AgentSpoke { .. } => "agentSpoke",
            RuntimeEvent::SpeechStopped => "speechStopped",
            RuntimeEvent::Listening { .. } => "listening",
            RuntimeEvent::Transferred { .. } => "transferred",
            RuntimeEvent::CallEnded { .. } => "callEnded",
            RuntimeEvent::CostAccrued { .. } => "costAccrued",
            RuntimeEvent::TurnMeasured { .. } => "turnMeasured",
            RuntimeEvent::CallClosed { .. } => "callClosed",
            RuntimeEvent::WorkflowSucceeded { .. } => "workflowSucceeded",
            RuntimeEvent::WorkflowFailed { .. } => "workflowFailed",
            RuntimeEvent::WorkflowDeadLettered { .. } => "workflowDeadLettered",
        }
    }
}

/// Why a stored event cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Neither a runtime nor an engine event type.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The payload is not a JSON object.
    #[error("{event_type} payload is not a JSON object")]
    NotAnObject {
        /// The event type.
        event_type: String,
    },
    /// The payload does not match the type's fields.
    #[error("{event_type} payload does not parse: {source}")]
    Payload {
        /// The event type.
        event_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// Written by a build with another payload layout.
    #[error("schema version {0} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema(i16),
}

impl EventBody {
    /// The `event_type` column.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Runtime(e) => e.type_name(),
            EventBody::Engine(e) => e.type_name(),
        }
    }

    /// The `event_type` column and the payload (the event's JSON object
    /// without `type`).
    pub fn to_parts(&self) -> (&'static str, Value) {
        let value = match self {
            EventBody::Runtime(e) => serde_json::to_value(e),
            EventBody::Engine(e) => serde_json::to_value(e),
        };
        // Both enums are internally tagged with only struct and unit variants
        // whose fields are strings, numbers, string-keyed maps and inputs
        // (serialised by `input_json`), so they always serialise to an
        // object; the fallback exists only so this cannot panic.
        let mut payload = match value {
            Ok(Value::Object(map)) => map,
            other => {
                tracing::error!(event_type = self.type_name(), result = ?other, "event did not serialise to an object");
                Map::new()
            }
        };
        payload.remove("type");
        (self.type_name(), Value::Object(payload))
    }

    /// Reads an `event_type` column and payload back.
    pub fn from_parts(event_type: &str, payload: Value) -> Result<Self, EventError> {
        let Value::Object(mut map) = payload else {
            return Err(EventError::NotAnObject {
                event_type: event_type.to_owned(),
            });
        };
        map.insert("type".to_owned(), Value::String(event_type.to_owned()));
        let parse_error = |source| EventError::Payload {
            event_type: event_type.to_owned(),
            source,
        };
        if RUNTIME_EVENT_TYPES.contains(&event_type) {
            serde_json::from_value(Value::Object(map))
                .map(EventBody::Runtime)
                .map_err(parse_error)
        } else if EVENT_TYPES.contains(&event_type) {
            serde_json::from_value(Value::Object(map))
                .map(EventBody::Engine)
                .map_err(parse_error)
        } else {
            Err(EventError::UnknownType(event_type.to_owned()))
        }
    }

    /// The engine output this event records, if it records one (used by
    /// replay).
    pub fn as_output(&self) -> Option<Output> {
        match self {
            EventBody::Engine(e) => Some(Output::Event(e.clone())),
            EventBody::Runtime(r) => match r {
                RuntimeEvent::AgentSpoke {
                    phrase_id,
                    params,
                    text,
                } => Some(Output::Speak {
                    phrase_id: phrase_id.clone(),
                    params: params.clone(),
                    text: text.clone(),
                }),
                RuntimeEvent::SpeechStopped => Some(Output::StopSpeaking),
                RuntimeEvent::Listening { expect, step } => Some(Output::Listen {
                    expect: *expect,
                    step: step.clone(),
                }),
                RuntimeEvent::Transferred { to, mode, reason } => Some(Output::Transfer {
                    to: to.clone(),
                    mode: *mode,
                    reason: reason.clone(),
                }),
                RuntimeEvent::CallEnded { outcome } => Some(Output::End {
                    outcome: outcome.clone(),
                }),
                RuntimeEvent::CallOpened { .. }
                | RuntimeEvent::InputReceived { .. }
                | RuntimeEvent::CostAccrued { .. }
                | RuntimeEvent::TurnMeasured { .. }
                | RuntimeEvent::CallClosed { .. }
                | RuntimeEvent::WorkflowSucceeded { .. }
                | RuntimeEvent::WorkflowFailed { .. }
                | RuntimeEvent::WorkflowDeadLettered { .. } => None,
            },
        }
    }
}

/// The event that records an engine output.
pub fn output_event(output: &Output) -> EventBody {
    EventBody::Runtime(match output {
        Output::Event(e) => return EventBody::Engine(e.clone()),
        Output::Speak {
            phrase_id,
            params,
            text,
        } => RuntimeEvent::AgentSpoke {
            phrase_id: phrase_id.clone(),
            params: params.clone(),
            text: text.clone(),
        },
        Output::StopSpeaking => RuntimeEvent::SpeechStopped,
        Output::Listen { expect, step } => RuntimeEvent::Listening {
            expect: *expect,
            step: step.clone(),
        },
        Output::Transfer { to, mode, reason } => RuntimeEvent::Transferred {
            to: to.clone(),
            mode: *mode,
            reason: reason.clone(),
        },
        Output::End { outcome } => RuntimeEvent::CallEnded {
            outcome: outcome.clone(),
        },
    })
}

/// [`Input`] as JSON inside `inputReceived`.
///
/// `Input` is internally tagged, and serde cannot write an internally tagged
/// newtype variant holding a string (`Input::Now(instant)`), so `now` is
/// written as `{"type":"now","at":...}`; every other input keeps the
/// engine's own representation.
mod input_json {
    use chrono::{DateTime, Utc};
    use dialtone_engine::Input;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "type", rename = "now")]
    struct Now {
        at: DateTime<Utc>,
    }

    pub fn serialize<S: Serializer>(input: &Input, s: S) -> Result<S::Ok, S::Error> {
        match input {
            Input::Now(at) => Now { at: *at }.serialize(s),
            other => other.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Input, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let result = if value.get("type").and_then(|t| t.as_str()) == Some("now") {
            serde_json::from_value::<Now>(value).map(|n| Input::Now(n.at))
        } else {
            serde_json::from_value(value)
        };
        result.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 3, 10, 0, s)
            .single()
            .expect("valid time")
    }

    fn runtime_samples() -> Vec<RuntimeEvent> {
        let mut params = BTreeMap::new();
        params.insert("value".to_owned(), "0412 345 678".to_owned());
        vec![
            RuntimeEvent::CallOpened {
                namespace: "tenant-a".into(),
                agent: "reception".into(),
                config_version: "sha256:abc".into(),
                core_version: "0.1.0".into(),
                direction: Direction::Inbound,
                caller: Some("+61412345678".into()),
                callee: None,
                channel: Channel::Twilio,
                external_id: Some("CA123".into()),
                started_at: at(0),
            },
            RuntimeEvent::InputReceived {
                input: Input::Utterance {
                    text: "yes please".into(),
                    confidence: 0.87,
                    is_final: true,
                },
                original: Some("yeah go on".into()),
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::Utterance {
                    text: "Bo\u{FFFD}b".into(),
                    confidence: 1.0,
                    is_final: true,
                },
                original: None,
                altered_from: Some(r#""Bo\u0000b""#.into()),
            },
            RuntimeEvent::InputReceived {
                input: Input::Dtmf {
                    digits: "0412#".into(),
                },
                original: None,
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::SilenceTimeout,
                original: None,
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::BargeIn,
                original: None,
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::Hangup,
                original: None,
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::WorkflowResult {
                    workflow: "crm".into(),
                    ok: false,
                    detail: Some("timeout".into()),
                },
                original: None,
                altered_from: None,
            },
            RuntimeEvent::InputReceived {
                input: Input::Now(at(7)),
                original: None,
                altered_from: None,
            },
            RuntimeEvent::AgentSpoke {
                phrase_id: "confirm".into(),
                params,
                text: "Was that 0412 345 678?".into(),
            },
            RuntimeEvent::SpeechStopped,
            RuntimeEvent::Listening {
                expect: Primitive::Phone,
                step: "ask-phone".into(),
            },
            RuntimeEvent::Transferred {
                to: "+61290001111".into(),
                mode: TransferMode::Warm,
                reason: Some("emergency".into()),
            },
            RuntimeEvent::CallEnded {
                outcome: "booked".into(),
            },
            RuntimeEvent::CostAccrued {
                component: CostComponent::Tts,
                provider: "elevenlabs".into(),
                quantity: 42.0,
                unit: CostUnit::Characters,
                micro_usd: 2100,
            },
            RuntimeEvent::CostAccrued {
                component: CostComponent::Llm,
                provider: "openai".into(),
                quantity: 0.5,
                unit: CostUnit::InputTokens,
                micro_usd: 1,
            },
            RuntimeEvent::TurnMeasured {
                latency_micros: 1234,
            },
            RuntimeEvent::CallClosed {
                reason: CloseReason::Hangup,
                ended_at: at(59),
                duration_millis: 59_000,
            },
            RuntimeEvent::WorkflowSucceeded {
                workflow: "book".into(),
                action: "calendarBook".into(),
                vendor: "calcom".into(),
                attempt: 2,
                reference: Some("bk_123".into()),
            },
            RuntimeEvent::WorkflowFailed {
                workflow: "sms".into(),
                action: "smsSend".into(),
                vendor: "twilio".into(),
                attempt: 1,
                error: "503 Service Unavailable".into(),
                retry_at: Some(at(45)),
            },
            RuntimeEvent::WorkflowDeadLettered {
                workflow: "crm".into(),
                action: "crmUpsert".into(),
                vendor: "hubspot".into(),
                attempts: 1,
                error: "401 bad credentials".into(),
            },
        ]
    }

    fn engine_samples() -> Vec<Event> {
        let mut slots = BTreeMap::new();
        slots.insert("name".to_owned(), "Jane Citizen".to_owned());
        vec![
            Event::CallStarted {
                objective: "book".into(),
            },
            Event::SlotCaptured {
                slot: "phone".into(),
                value: "+61412345678".into(),
                confidence: 0.95,
            },
            Event::SlotConfirmed {
                slot: "phone".into(),
            },
            Event::SlotRejected {
                slot: "phone".into(),
                value: "+61412345679".into(),
            },
            Event::SlotSkipped {
                slot: "email".into(),
            },
            Event::CaptureFailed {
                slot: "email".into(),
            },
            Event::RepairAttempted {
                slot: "email".into(),
                attempt: 2,
                reason: "not understood".into(),
            },
            Event::SilenceReprompted { count: 1 },
            Event::BargeIn,
            Event::AppointmentRequested {
                step: "book".into(),
                service: Some("check-up".into()),
                slots,
                duration_minutes: Some(45),
            },
            Event::Escalation {
                to: "+61290001111".into(),
                reason: "emergency".into(),
                mode: TransferMode::Cold,
            },
            Event::WorkflowResult {
                workflow: "crm".into(),
                ok: true,
            },
            Event::ObjectiveCompleted {
                objective: "book".into(),
                outcome: "booked".into(),
            },
            Event::ObjectiveFailed {
                objective: "book".into(),
                outcome: "hangup".into(),
                reason: "the caller hung up".into(),
            },
        ]
    }

    fn all_samples() -> Vec<EventBody> {
        runtime_samples()
            .into_iter()
            .map(EventBody::Runtime)
            .chain(engine_samples().into_iter().map(EventBody::Engine))
            .collect()
    }

    #[test]
    fn every_variant_round_trips_through_parts_and_json_text() {
        let samples = all_samples();
        let mut types: Vec<&str> = samples.iter().map(EventBody::type_name).collect();
        types.sort_unstable();
        types.dedup();
        let mut expected: Vec<&str> = RUNTIME_EVENT_TYPES
            .iter()
            .chain(EVENT_TYPES.iter())
            .copied()
            .collect();
        expected.sort_unstable();
        assert_eq!(types, expected, "the samples cover every event type");

        for body in samples {
            let (event_type, payload) = body.to_parts();
            assert_eq!(event_type, body.type_name());
            assert!(payload.is_object(), "{event_type}: {payload}");
            assert!(payload.get("type").is_none(), "{event_type}: {payload}");
            // Through text, as PostgreSQL's JSONB hands it back.
            let text = payload.to_string();
            let reparsed: Value = serde_json::from_str(&text).expect("json text parses");
            let back = EventBody::from_parts(event_type, reparsed).expect("parses back");
            assert_eq!(back, body, "{event_type}: {text}");
        }
    }

    #[test]
    fn payloads_use_camel_case_names() {
        let (t, p) = EventBody::Runtime(runtime_samples().remove(0)).to_parts();
        assert_eq!(t, "callOpened");
        assert_eq!(p["configVersion"], "sha256:abc");
        assert_eq!(p["externalId"], "CA123");
        assert_eq!(p["direction"], "inbound");
        assert_eq!(p["channel"], "twilio");
        assert!(p.get("callee").is_none());
        let now = RuntimeEvent::InputReceived {
            input: Input::Now(at(7)),
            original: None,
            altered_from: None,
        };
        let (_, p) = EventBody::Runtime(now).to_parts();
        assert_eq!(
            p,
            json!({"input": {"type": "now", "at": "2025-03-03T10:00:07Z"}})
        );
        let cost = runtime_samples()
            .into_iter()
            .find(|e| e.type_name() == "costAccrued")
            .expect("a cost sample");
        let (_, p) = EventBody::Runtime(cost).to_parts();
        assert_eq!(p["microUsd"], 2100);
        assert_eq!(p["unit"], "characters");
    }

    #[test]
    fn an_unknown_type_is_a_typed_error() {
        let err = EventBody::from_parts("callTeleported", json!({})).expect_err("unknown");
        assert!(
            matches!(&err, EventError::UnknownType(t) if t == "callTeleported"),
            "{err}"
        );
        let err = EventBody::from_parts("callEnded", json!(["booked"])).expect_err("array");
        assert!(matches!(err, EventError::NotAnObject { .. }), "{err}");
        let err = EventBody::from_parts("callEnded", json!({"outcom": "x"})).expect_err("field");
        assert!(
            matches!(&err, EventError::Payload { event_type, .. } if event_type == "callEnded"),
            "{err}"
        );
    }

    #[test]
    fn outputs_and_their_events_correspond() {
        for body in all_samples() {
            if let Some(output) = body.as_output() {
                assert_eq!(output_event(&output), body);
            }
        }
        let recorded: Vec<&str> = all_samples()
            .iter()
            .filter(|b| b.as_output().is_some())
            .map(EventBody::type_name)
            .collect();
        for t in [
            "agentSpoke",
            "speechStopped",
            "listening",
            "transferred",
            "callEnded",
        ] {
            assert!(recorded.contains(&t), "{t} records an output");
        }
        for t in [
            "callOpened",
            "inputReceived",
            "costAccrued",
            "turnMeasured",
            "callClosed",
        ] {
            assert!(!recorded.contains(&t), "{t} records no output");
        }
    }
}
