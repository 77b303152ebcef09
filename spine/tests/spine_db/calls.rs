//! Synthetic calls: realistic event sequences without running an engine,
//! for the writer tests and the ingest benchmark.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use dialtone_crds::objective::{Primitive, TransferMode};
use dialtone_engine::{Event, Input};
use dialtone_spine::event::{
    CallEvent, Channel, CloseReason, CostComponent, CostUnit, Direction, EventBody, RuntimeEvent,
};
use uuid::Uuid;

/// How a synthetic call ends.
#[derive(Clone, Copy, Debug)]
pub enum Ending {
    /// Booked, with a slot rejected on the way.
    Booked,
    /// Transferred to a person.
    Transferred,
    /// The caller hangs up.
    Hangup,
    /// Still in flight: no `callClosed`.
    Open,
}

impl Ending {
    /// A mix of endings, chosen by `i`.
    pub fn nth(i: usize) -> Self {
        match i % 4 {
            0 => Ending::Booked,
            1 => Ending::Transferred,
            2 => Ending::Hangup,
            _ => Ending::Open,
        }
    }
}

/// A whole-second instant (PostgreSQL keeps microseconds; whole seconds
/// compare equal after a round trip).
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + Duration::seconds(seconds)
}

/// The events of one call with `turns` caller turns: 6 events per turn
/// plus 4 to 8 around them.
pub fn call(call_id: Uuid, tenant: &str, turns: usize, ending: Ending) -> Vec<CallEvent> {
    let mut bodies = vec![
        EventBody::Runtime(RuntimeEvent::CallOpened {
            namespace: format!("ns-{tenant}"),
            agent: "reception".into(),
            config_version: "sha256:synthetic".into(),
            core_version: "0.1.0".into(),
            direction: Direction::Inbound,
            caller: Some("+61412345678".into()),
            callee: Some("+61290001234".into()),
            channel: Channel::Text,
            external_id: None,
            started_at: at(0),
        }),
        EventBody::Engine(Event::CallStarted {
            objective: "book".into(),
        }),
        speak("greeting", "Hello, you've called the clinic."),
        listen("ask-name"),
    ];
    for t in 0..turns {
        let slot = format!("slot{}", t % 5);
        bodies.push(EventBody::Runtime(RuntimeEvent::InputReceived {
            input: Input::Utterance {
                text: format!("answer number {t}"),
                confidence: 0.9,
                is_final: true,
            },
            original: None,
            altered_from: None,
        }));
        if t == 1 {
            bodies.push(EventBody::Engine(Event::SlotRejected {
                slot: "slot0".into(),
                value: "answer number 0".into(),
            }));
        } else {
            bodies.push(EventBody::Engine(Event::SlotCaptured {
                slot,
                value: format!("answer number {t}"),
                confidence: 0.9,
            }));
        }
        bodies.push(speak("ask.next", "And what else?"));
        bodies.push(listen("ask-next"));
        bodies.push(EventBody::Runtime(RuntimeEvent::CostAccrued {
            component: CostComponent::Stt,
            provider: "deepgram".into(),
            quantity: 3.5,
            unit: CostUnit::Seconds,
            micro_usd: 263,
        }));
        bodies.push(EventBody::Runtime(RuntimeEvent::TurnMeasured {
            latency_micros: 1_500 + i64::try_from(t).unwrap_or(0),
        }));
    }
    let close = |reason| {
        EventBody::Runtime(RuntimeEvent::CallClosed {
            reason,
            ended_at: at(600),
            duration_millis: 600_000,
        })
    };
    match ending {
        Ending::Booked => bodies.extend([
            EventBody::Engine(Event::ObjectiveCompleted {
                objective: "book".into(),
                outcome: "booked".into(),
            }),
            speak("closing", "You're booked in."),
            EventBody::Runtime(RuntimeEvent::CallEnded {
                outcome: "booked".into(),
            }),
            telephony(),
            close(CloseReason::Ended),
        ]),
        Ending::Transferred => bodies.extend([
            EventBody::Engine(Event::ObjectiveCompleted {
                objective: "book".into(),
                outcome: "emergency-transferred".into(),
            }),
            EventBody::Runtime(RuntimeEvent::Transferred {
                to: "+61290001111".into(),
                mode: TransferMode::Warm,
                reason: Some("emergency".into()),
            }),
            telephony(),
            close(CloseReason::Transferred),
        ]),
        Ending::Hangup => bodies.extend([
            EventBody::Runtime(RuntimeEvent::InputReceived {
                input: Input::Hangup,
                original: None,
                altered_from: None,
            }),
            telephony(),
            close(CloseReason::Hangup),
        ]),
        Ending::Open => {}
    }
    bodies
        .into_iter()
        .enumerate()
        .map(|(seq, body)| CallEvent {
            call_id,
            seq: i32::try_from(seq).unwrap_or(i32::MAX),
            tenant: tenant.to_owned(),
            occurred_at: at(i64::try_from(seq).unwrap_or(0)),
            body,
        })
        .collect()
}

fn speak(phrase_id: &str, text: &str) -> EventBody {
    EventBody::Runtime(RuntimeEvent::AgentSpoke {
        phrase_id: phrase_id.into(),
        params: BTreeMap::new(),
        text: text.into(),
    })
}

fn listen(step: &str) -> EventBody {
    EventBody::Runtime(RuntimeEvent::Listening {
        expect: Primitive::Name,
        step: step.into(),
    })
}

fn telephony() -> EventBody {
    EventBody::Runtime(RuntimeEvent::CostAccrued {
        component: CostComponent::Telephony,
        provider: "twilio".into(),
        quantity: 10.0,
        unit: CostUnit::Minutes,
        micro_usd: 135_000,
    })
}
