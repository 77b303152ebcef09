//! One call, whatever its ingress: the engine state at the pinned config
//! version, every input and output recorded as events in replay order, cost,
//! turn latency and the close.
//!
//! Both ingresses (Twilio Media Streams and the `/v1/calls` text socket)
//! drive a [`CallSession`]; what differs between them is only how caller
//! input arrives and how agent output leaves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dialtone_capture::{ParseContext, ParseStatus};
use dialtone_crds::common::Locale;
use dialtone_crds::objective::Primitive;
use dialtone_engine::{CallState, CompiledConfig, Engine, Event, Input, Output};
use dialtone_spine::event::{
    CallEvent, Channel, CloseReason, CostComponent, CostUnit, Direction, EventBody, RuntimeEvent,
    output_event,
};
use uuid::Uuid;

use dialtone_spine::storable;
use dialtone_spine::writer::{EventSink, SendError};

use crate::metrics::{CostLabels, Metrics};

/// How long the engine's clock may lag the wall clock before a call feeds
/// it an [`Input::Now`] tick (recorded like any input, so replay sees the
/// same clock). A minute keeps relative dates and opening hours right
/// without doubling every call's events.
pub const CLOCK_TICK: Duration = Duration::from_secs(60);

/// Who and what a call is, before it starts.
#[derive(Clone, Debug)]
pub struct CallMeta {
    /// The call's id in the event spine.
    pub call_id: Uuid,
    /// The ingress.
    pub channel: Channel,
    /// Who placed the call: the caller (inbound) or a campaign (outbound).
    pub direction: Direction,
    /// The caller's number, when known.
    pub caller: Option<String>,
    /// The called number.
    pub callee: Option<String>,
    /// Twilio's CallSid.
    pub external_id: Option<String>,
}

/// A config version pinned for a call: its hash and the parsed document.
#[derive(Clone, Debug)]
pub struct Pinned {
    /// `sha256:…`.
    pub hash: String,
    /// The document.
    pub config: Arc<CompiledConfig>,
}

/// What the engine waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listening {
    /// The primitive.
    pub expect: Primitive,
    /// The step.
    pub step: String,
    /// The allowed answers, for `choice` and `yesNo`.
    pub options: Vec<String>,
}

/// The pod-wide things a call reports to.
#[derive(Clone)]
pub struct CallContext {
    /// The event writer.
    pub events: EventSink,
    /// The metrics.
    pub metrics: Metrics,
}

/// One call in progress.
pub struct CallSession<'c> {
    engine: &'c Engine<'c>,
    config: &'c CompiledConfig,
    ctx: CallContext,
    call_id: Uuid,
    tenant: String,
    seq: i32,
    state: CallState,
    started_at: DateTime<Utc>,
    started: Instant,
    clock_set: Instant,
    listening: Option<Listening>,
    turn_started: Option<Instant>,
    cost_labels: CostLabels,
    completed: Option<bool>,
    /// Events recorded and not yet handed to the writer (see
    /// [`CallSession::flush`]).
    pending: Vec<CallEvent>,
}

impl<'c> CallSession<'c> {
    /// Opens a call: records `callOpened` and the outputs of
    /// `engine.start`, which it returns for the ingress to deliver.
    pub async fn open(
        engine: &'c Engine<'c>,
        pinned: &'c Pinned,
        mut meta: CallMeta,
        ctx: CallContext,
    ) -> (Self, Vec<Output>) {
        make_meta_storable(&mut meta);
        let config: &CompiledConfig = &pinned.config;
        let started_at = Utc::now();
        let started = Instant::now();
        let (state, outputs) = engine.start(started_at);
        let cost_labels = CostLabels {
            tenant: config.tenant.name.clone(),
            agent: config.agent.name.clone(),
            objective: config
                .objectives
                .first()
                .map(|o| o.name.clone())
                .unwrap_or_default(),
            core_version: config.core_version.clone(),
        };
        ctx.metrics.call_started(&config.tenant.name);
        let mut session = Self {
            engine,
            config,
            ctx,
            call_id: meta.call_id,
            tenant: config.tenant.name.clone(),
            seq: 0,
            state,
            started_at,
            started,
            clock_set: started,
            listening: None,
            turn_started: None,
            cost_labels,
            completed: None,
            pending: Vec::with_capacity(16),
        };
        session.record(RuntimeEvent::CallOpened {
            namespace: config.agent.namespace.clone(),
            agent: config.agent.name.clone(),
            config_version: pinned.hash.clone(),
            core_version: config.core_version.clone(),
            direction: meta.direction,
            caller: meta.caller,
            callee: meta.callee,
            channel: meta.channel,
            external_id: meta.external_id,
            started_at,
        });
        session.outputs(&outputs);
        session.flush().await;
        (session, outputs)
    }

    /// The call's id.
    pub fn call_id(&self) -> Uuid {
        self.call_id
    }

    /// The pod's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// The pinned config.
    pub fn config(&self) -> &'c CompiledConfig {
        self.config
    }

    /// Whether the engine has ended or transferred the call.
    pub fn ended(&self) -> bool {
        self.state.ended()
    }

    /// The engine's outcome label, once the call is over.
    pub fn outcome(&self) -> Option<&str> {
        self.state.outcome.as_deref()
    }

    /// Whether the call's objective was achieved (`None` while undecided).
    pub fn objective_completed(&self) -> Option<bool> {
        self.completed
    }

    /// Whether the engine considers the agent to be speaking.
    pub fn speaking(&self) -> bool {
        self.state.speaking
    }

    /// What the engine waits for, if anything.
    pub fn listening(&self) -> Option<&Listening> {
        self.listening.as_ref()
    }

    fn record(&mut self, event: RuntimeEvent) {
        self.append(EventBody::Runtime(event));
    }

    /// Numbers and queues an event. Events are handed to the writer by
    /// [`flush`](Self::flush), after the caller has been answered, so the
    /// writer's back-pressure never sits between a caller's turn and the
    /// agent's reply; the order (and so replay) is unaffected.
    fn append(&mut self, body: EventBody) {
        let event = CallEvent {
            call_id: self.call_id,
            seq: self.seq,
            tenant: self.tenant.clone(),
            occurred_at: Utc::now(),
            body,
        };
        self.seq += 1;
        self.pending.push(event);
    }

    /// Hands the queued events to the writer, in order, waiting while its
    /// buffer is full.
    pub async fn flush(&mut self) {
        for event in self.pending.drain(..) {
            let refused = match self.ctx.events.try_send(event) {
                Ok(()) => None,
                Err(SendError::Full(event)) => self.ctx.events.send(*event).await.err(),
                Err(err) => Some(err),
            };
            if let Some(err) = refused {
                // Only a stopped writer refuses events, and it stops last,
                // at shutdown, after every call has closed.
                tracing::error!(call_id = %self.call_id, error = %err, "call event lost");
            }
        }
    }

    /// Records outputs as events and updates what the call waits for.
    fn outputs(&mut self, outputs: &[Output]) {
        for output in outputs {
            match output {
                Output::Listen { expect, step } => {
                    self.listening = Some(Listening {
                        expect: *expect,
                        step: step.clone(),
                        options: self.options(*expect, step),
                    });
                }
                Output::Transfer { .. } | Output::End { .. } => self.listening = None,
                Output::Event(Event::ObjectiveCompleted { objective, .. }) => {
                    self.completed = Some(true);
                    self.ctx.metrics.objective(&self.tenant, objective, true);
                }
                Output::Event(Event::ObjectiveFailed { objective, .. }) => {
                    self.completed = Some(false);
                    self.ctx.metrics.objective(&self.tenant, objective, false);
                }
                _ => {}
            }
            self.append(output_event(output));
        }
    }

    fn options(&self, expect: Primitive, step: &str) -> Vec<String> {
        match expect {
            Primitive::YesNo => vec!["yes".to_owned(), "no".to_owned()],
            Primitive::Choice => self
                .config
                .objectives
                .get(self.state.objective)
                .and_then(|o| o.steps.iter().find(|s| s.id == step))
                .and_then(|s| s.capture.as_ref())
                .map(|c| c.choices.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Feeds one input (with the caller's words when the input was mapped
    /// from them), recording both, and returns the engine's outputs.
    pub fn input(&mut self, input: Input, original: Option<String>) -> Vec<Output> {
        if self.clock_set.elapsed() >= CLOCK_TICK && !matches!(input, Input::Now(_)) {
            self.clock_set = Instant::now();
            let tick = Input::Now(Utc::now());
            self.feed(tick, None);
        }
        if matches!(
            input,
            Input::Utterance { is_final: true, .. } | Input::Dtmf { .. }
        ) {
            self.listening = None;
        }
        self.feed(input, original)
    }

    fn feed(&mut self, input: Input, original: Option<String>) -> Vec<Output> {
        let (input, original, altered_from) = storable_input(input, original);
        if altered_from.is_some() {
            tracing::warn!(call_id = %self.call_id, "caller text with characters PostgreSQL cannot store; U+FFFD fed in their place");
        }
        let (state, outputs) = self.engine.step(self.state.clone(), &input);
        self.state = state;
        self.record(RuntimeEvent::InputReceived {
            input,
            original,
            altered_from,
        });
        self.outputs(&outputs);
        if !outputs.iter().any(|o| matches!(o, Output::Speak { .. })) {
            // Nothing will be said in reply, so there is no turn to time.
            self.turn_started = None;
        }
        outputs
    }

    /// The caller finished a turn (a final transcript or keys): the turn
    /// latency clock starts.
    pub fn turn_ended(&mut self, at: Instant) {
        self.turn_started = Some(at);
    }

    /// The first agent text or audio of the reply has gone out: records the
    /// turn's latency, once per turn.
    pub fn replied(&mut self) {
        if let Some(start) = self.turn_started.take() {
            let latency = start.elapsed();
            self.ctx.metrics.turn(&self.tenant, latency.as_secs_f64());
            self.record(RuntimeEvent::TurnMeasured {
                latency_micros: i64::try_from(latency.as_micros()).unwrap_or(i64::MAX),
            });
        }
    }

    /// The options to map `text` to with the LLM classifier: only when the
    /// engine listens for `choice` or `yesNo` and the deterministic parser
    /// cannot read the words.
    pub fn needs_classifier(&self, text: &str) -> Option<&[String]> {
        let listening = self.listening.as_ref()?;
        if !matches!(listening.expect, Primitive::Choice | Primitive::YesNo)
            || listening.options.is_empty()
        {
            return None;
        }
        let timezone: chrono_tz::Tz = self.config.tenant.timezone.parse().ok()?;
        let ctx = ParseContext {
            locale: match self.config.agent.locale {
                Locale::EnAu => dialtone_capture::Locale::EnAu,
                Locale::EnUs => dialtone_capture::Locale::EnUs,
            },
            timezone,
            now: self.state.now,
            choices: &listening.options,
        };
        let primitive = match listening.expect {
            Primitive::YesNo => dialtone_capture::Primitive::YesNo,
            _ => dialtone_capture::Primitive::Choice,
        };
        let parsed = dialtone_capture::parse(primitive, text, &ctx);
        (parsed.status != ParseStatus::Ok).then_some(listening.options.as_slice())
    }

    /// Records a cost and adds it to the cost metric.
    pub fn accrue(
        &mut self,
        component: CostComponent,
        provider: &str,
        quantity: f64,
        unit: CostUnit,
        micro_usd: i64,
    ) {
        if quantity <= 0.0 && micro_usd == 0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)] // micro-USD of one call fit an f64 exactly
        self.ctx
            .metrics
            .cost(&self.cost_labels, micro_usd as f64 / 1_000_000.0);
        self.record(RuntimeEvent::CostAccrued {
            component,
            provider: provider.to_owned(),
            quantity,
            unit,
            micro_usd,
        });
    }

    /// How long the call has lasted.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Closes the call's record with `callClosed`; nothing is recorded for
    /// the call afterwards.
    pub async fn close(mut self, reason: CloseReason) {
        let duration = self.started.elapsed();
        let ended_at = self.started_at
            + chrono::Duration::from_std(duration).unwrap_or_else(|_| chrono::Duration::zero());
        self.record(RuntimeEvent::CallClosed {
            reason,
            ended_at,
            duration_millis: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        });
        self.flush().await;
        self.ctx
            .metrics
            .call_closed(&self.tenant, reason.as_str(), duration.as_secs_f64());
    }

    /// Why the call closes when the engine ended it: transferred or ended.
    pub fn engine_close_reason(&self) -> CloseReason {
        if self.state.transferred_to.is_some() {
            CloseReason::Transferred
        } else {
            CloseReason::Ended
        }
    }

    /// Slots captured so far, canonical values (for logs and tests).
    pub fn slots(&self) -> BTreeMap<String, String> {
        self.state
            .slots
            .iter()
            .map(|(k, v)| (k.clone(), v.display()))
            .collect()
    }
}

/// Replaces text PostgreSQL cannot store in the numbers and the CallSid.
/// They come from Twilio or, on the text socket, from the caller; a NUL in
/// a number means nothing, so it is only replaced (and logged).
fn make_meta_storable(meta: &mut CallMeta) {
    let fields = [
        ("caller", &mut meta.caller),
        ("callee", &mut meta.callee),
        ("externalId", &mut meta.external_id),
    ];
    for (name, value) in fields {
        if value.as_mut().is_some_and(storable::make_storable) {
            tracing::warn!(call_id = %meta.call_id, field = name, "call identifier with characters PostgreSQL cannot store; replaced with U+FFFD");
        }
    }
}

/// Caller text made storable before the engine sees it, so the engine,
/// the stored events and replay all see the same text (replacing it later,
/// in the spine, would record inputs the engine never saw). Returns the
/// input, `original`, and the caller's exact words as an escaped literal
/// when they had to be changed (`alteredFrom` of `inputReceived`).
fn storable_input(
    mut input: Input,
    mut original: Option<String>,
) -> (Input, Option<String>, Option<String>) {
    let words = match (&original, &input) {
        (Some(words), _) => Some(words),
        (None, Input::Utterance { text, .. }) => Some(text),
        (None, Input::Dtmf { digits }) => Some(digits),
        (None, _) => None,
    };
    let altered_from = words
        .filter(|w| !w.chars().all(storable::is_storable))
        .map(|w| storable::escaped(w));
    if let Some(words) = original.as_mut() {
        storable::make_storable(words);
    }
    match &mut input {
        Input::Utterance { text, .. } => {
            storable::make_storable(text);
        }
        Input::Dtmf { digits } => {
            storable::make_storable(digits);
        }
        Input::WorkflowResult {
            workflow, detail, ..
        } => {
            storable::make_storable(workflow);
            if let Some(detail) = detail {
                storable::make_storable(detail);
            }
        }
        Input::SilenceTimeout | Input::BargeIn | Input::Hangup | Input::Now(_) => {}
    }
    (input, original, altered_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_text_is_made_storable_and_its_exact_words_kept() {
        let typed = Input::Utterance {
            text: "Bo\0b".to_owned(),
            confidence: 1.0,
            is_final: true,
        };
        let (input, original, altered_from) = storable_input(typed, None);
        assert_eq!(
            input,
            Input::Utterance {
                text: "Bo\u{FFFD}b".to_owned(),
                confidence: 1.0,
                is_final: true,
            }
        );
        assert_eq!(original, None);
        let exact: String =
            serde_json::from_str(altered_from.as_deref().expect("altered")).expect("a literal");
        assert_eq!(exact, "Bo\0b");

        // Classified: the caller's words are `original`.
        let mapped = Input::Utterance {
            text: "filling".to_owned(),
            confidence: 0.9,
            is_final: true,
        };
        let (input, original, altered_from) =
            storable_input(mapped.clone(), Some("a fill\0ing".to_owned()));
        assert_eq!(input, mapped);
        assert_eq!(original.as_deref(), Some("a fill\u{FFFD}ing"));
        assert_eq!(altered_from.as_deref(), Some(r#""a fill\u0000ing""#));

        let keys = Input::Dtmf {
            digits: "12#".to_owned(),
        };
        assert_eq!(storable_input(keys.clone(), None), (keys, None, None));
    }
}
