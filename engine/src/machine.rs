//! The call state machine: `(state, input) → (state, outputs)`.
//!
//! Pure and deterministic: time arrives as an input ([`Input::Now`] and the
//! start instant), nothing is random, and every map in an output is a
//! `BTreeMap`, so replaying a call's inputs at its config version gives the
//! same outputs byte for byte.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use dialtone_capture as capture;
use dialtone_capture::{ParseContext, ParseStatus, Value};
use dialtone_crds::agent::Persona;
use dialtone_crds::common::Locale;
use dialtone_crds::objective::{
    BranchCondition, BusinessHoursState, CaptureStep, ConfirmPolicy, OnFailure, Primitive,
    SilenceAction, Step, StepKind, TransferMode, TransferStep,
};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::config::{CompiledConfig, CompiledObjective};
use crate::hours::Hours;
use crate::phrasebook;
use crate::vocabulary::slot_refs;

/// Parsed values at or above this confidence are accepted without a
/// read-back (under `confirm: onLowConfidence`); the capture crate documents
/// 0.8 as the level at which its values can be trusted.
pub const CONFIRM_BELOW: f32 = 0.8;

/// Something that happened on the call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Input {
    /// The caller said something.
    Utterance {
        /// The transcript.
        text: String,
        /// Speech recognition confidence, 0 to 1.
        confidence: f32,
        /// Whether the transcript is final (partials are ignored).
        is_final: bool,
    },
    /// The caller pressed keys.
    Dtmf {
        /// The keys, e.g. `0412345678#`.
        digits: String,
    },
    /// The caller said nothing for the endpointing timeout.
    SilenceTimeout,
    /// The caller started speaking while the agent was speaking.
    BargeIn,
    /// The caller hung up.
    Hangup,
    /// A workflow triggered by the call finished.
    WorkflowResult {
        /// The workflow's name.
        workflow: String,
        /// Whether it succeeded.
        ok: bool,
        /// What it reported.
        detail: Option<String>,
    },
    /// The clock moved on.
    Now(DateTime<Utc>),
}

/// What the voice runtime must do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Output {
    /// Say a phrase.
    Speak {
        /// The phrasebook id.
        phrase_id: String,
        /// The parameters it was rendered with.
        params: BTreeMap<String, String>,
        /// The rendered text, for TTS.
        text: String,
    },
    /// Stop speaking now (barge-in).
    StopSpeaking,
    /// Listen for the caller; `expect` lets endpointing be tuned (digits
    /// take longer to say than yes or no).
    Listen {
        /// The primitive the answer is parsed with.
        expect: Primitive,
        /// The step waiting for it.
        step: String,
    },
    /// Transfer the call. Terminal.
    Transfer {
        /// E.164 number.
        to: String,
        /// Warm or cold.
        mode: TransferMode,
        /// Why.
        reason: Option<String>,
    },
    /// Hang up. Terminal.
    End {
        /// The outcome label.
        outcome: String,
    },
    /// Record an event.
    Event(Event),
}

/// A typed call event, appended to the event spine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// The call started in an objective.
    CallStarted {
        /// The objective.
        objective: String,
    },
    /// A slot was filled.
    SlotCaptured {
        /// The slot.
        slot: String,
        /// Its canonical value.
        value: String,
        /// Confidence of the value (1 when the caller confirmed it).
        confidence: f32,
    },
    /// The caller confirmed a read-back.
    SlotConfirmed {
        /// The slot.
        slot: String,
    },
    /// The caller rejected a read-back.
    SlotRejected {
        /// The slot.
        slot: String,
        /// The rejected value.
        value: String,
    },
    /// An optional slot was declined, or a capture gave up with `skip`.
    SlotSkipped {
        /// The slot.
        slot: String,
    },
    /// A capture ran out of attempts.
    CaptureFailed {
        /// The slot.
        slot: String,
    },
    /// The agent asked again after a misunderstanding.
    RepairAttempted {
        /// The slot.
        slot: String,
        /// Failed attempts so far.
        attempt: u32,
        /// Why the answer was not accepted.
        reason: String,
    },
    /// The agent asked again after silence.
    SilenceReprompted {
        /// Silences so far at this step.
        count: u32,
    },
    /// The caller interrupted the agent.
    BargeIn,
    /// A book step handed a request to the workflows.
    AppointmentRequested {
        /// The step.
        step: String,
        /// What is booked.
        service: Option<String>,
        /// The slots sent, canonical values.
        slots: BTreeMap<String, String>,
        /// Appointment length in minutes.
        duration_minutes: Option<i32>,
    },
    /// The call went to a person.
    Escalation {
        /// E.164 number.
        to: String,
        /// Why.
        reason: String,
        /// Warm or cold.
        mode: TransferMode,
    },
    /// A workflow reported back; informational, never changes the call.
    WorkflowResult {
        /// The workflow.
        workflow: String,
        /// Whether it succeeded.
        ok: bool,
    },
    /// The objective was achieved.
    ObjectiveCompleted {
        /// The objective.
        objective: String,
        /// The outcome label.
        outcome: String,
    },
    /// The objective was not achieved.
    ObjectiveFailed {
        /// The objective.
        objective: String,
        /// The outcome label.
        outcome: String,
        /// Why.
        reason: String,
    },
}

impl Event {
    /// The type name, as in [`EVENT_TYPES`](crate::vocabulary::EVENT_TYPES).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::CallStarted { .. } => "callStarted",
            Event::SlotCaptured { .. } => "slotCaptured",
            Event::SlotConfirmed { .. } => "slotConfirmed",
            Event::SlotRejected { .. } => "slotRejected",
            Event::SlotSkipped { .. } => "slotSkipped",
            Event::CaptureFailed { .. } => "captureFailed",
            Event::RepairAttempted { .. } => "repairAttempted",
            Event::SilenceReprompted { .. } => "silenceReprompted",
            Event::BargeIn => "bargeIn",
            Event::AppointmentRequested { .. } => "appointmentRequested",
            Event::Escalation { .. } => "escalation",
            Event::WorkflowResult { .. } => "workflowResult",
            Event::ObjectiveCompleted { .. } => "objectiveCompleted",
            Event::ObjectiveFailed { .. } => "objectiveFailed",
        }
    }
}

/// Where a call is within its current step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "phase",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Phase {
    /// Waiting for the answer to a capture's question.
    Asking,
    /// Waiting for yes or no to a read-back of `value`.
    Confirming {
        /// The value read back.
        value: Value,
        /// Its confidence before confirmation.
        confidence: f32,
    },
    /// The call is over (ended, transferred or hung up).
    Ended,
}

/// The state of one call. Small and serialisable, so a voice pod can
/// checkpoint it; it refers to steps by index into an immutable config
/// version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallState {
    /// Index of the current objective in the config.
    pub objective: usize,
    /// Index of the current step in the objective's (sorted) steps.
    pub step: usize,
    /// What the call waits for.
    pub phase: Phase,
    /// Captured slots.
    pub slots: BTreeMap<String, Value>,
    /// Failed attempts at the current capture.
    pub attempts: u32,
    /// Silences at the current capture.
    pub silences: u32,
    /// The call's notion of now.
    pub now: DateTime<Utc>,
    /// Whether the agent is speaking (so a barge-in has something to stop).
    pub speaking: bool,
    /// The caller's latest final utterance, for intent conditions.
    pub last_utterance: Option<String>,
    /// The number the call was transferred to.
    pub transferred_to: Option<String>,
    /// The outcome label once the call is over.
    pub outcome: Option<String>,
}

impl CallState {
    /// Whether the call is over.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }
}

/// Why a config cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The tenant's time zone is unknown.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// The tenant's hours do not parse.
    #[error("business hours: {0}")]
    Hours(String),
    /// A step names a step that does not exist.
    #[error("objective {objective}: step {step:?} goes to unknown step {target:?}")]
    UnknownStep {
        /// The objective.
        objective: String,
        /// The step.
        step: String,
        /// The missing target.
        target: String,
    },
    /// A capture pattern does not compile.
    #[error("objective {objective}: step {step:?}: invalid pattern: {message}")]
    Pattern {
        /// The objective.
        objective: String,
        /// The step.
        step: String,
        /// The regex error.
        message: String,
    },
    /// No objective has that name.
    #[error("no objective named {0:?}")]
    UnknownObjective(String),
    /// The config has no objectives.
    #[error("the config has no objectives")]
    NoObjectives,
}

/// A step with its targets resolved to indices.
#[derive(Debug)]
struct RtStep<'c> {
    step: &'c Step,
    next: Option<usize>,
    branches: Vec<usize>,
    default: usize,
    pattern: Option<Regex>,
    /// Prompt parameters computed once: `choices`, `keys`.
    params: BTreeMap<String, String>,
}

#[derive(Debug)]
struct RtObjective<'c> {
    def: &'c CompiledObjective,
    start: usize,
    steps: Vec<RtStep<'c>>,
}

/// A config version prepared for running calls: step references resolved,
/// patterns compiled. Build once per config version and share across calls.
#[derive(Debug)]
pub struct Engine<'c> {
    tz: Tz,
    locale: Locale,
    capture_locale: capture::Locale,
    persona: Persona,
    hours: Hours,
    base_params: BTreeMap<String, String>,
    objectives: Vec<RtObjective<'c>>,
}

fn capture_primitive(p: Primitive) -> capture::Primitive {
    match p {
        Primitive::Phone => capture::Primitive::Phone,
        Primitive::Email => capture::Primitive::Email,
        Primitive::Name => capture::Primitive::Name,
        Primitive::Address => capture::Primitive::Address,
        Primitive::Date => capture::Primitive::Date,
        Primitive::Time => capture::Primitive::Time,
        Primitive::DateTime => capture::Primitive::DateTime,
        Primitive::Number => capture::Primitive::Number,
        Primitive::Money => capture::Primitive::Money,
        Primitive::YesNo => capture::Primitive::YesNo,
        Primitive::Choice => capture::Primitive::Choice,
    }
}

/// A normalised utterance for whole-word matching: lower-case words
/// separated by single spaces, padded with a space on both ends.
fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for w in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
    {
        out.push_str(&w.to_lowercase());
        out.push(' ');
    }
    out
}

impl<'c> Engine<'c> {
    /// Prepares `config` for running calls in the tenant's time zone.
    pub fn new(config: &'c CompiledConfig) -> Result<Self, EngineError> {
        Self::with_timezone(config, None)
    }

    /// Like [`Engine::new`], with another time zone for the calls (test
    /// calls may set one).
    pub fn with_timezone(
        config: &'c CompiledConfig,
        timezone: Option<&str>,
    ) -> Result<Self, EngineError> {
        let zone = timezone.unwrap_or(&config.tenant.timezone);
        let tz: Tz = zone
            .parse()
            .map_err(|_| EngineError::TimeZone(zone.to_owned()))?;
        let hours = Hours::parse(&config.tenant.business_hours, &config.tenant.holidays)
            .map_err(|e| EngineError::Hours(e.to_string()))?;
        if config.objectives.is_empty() {
            return Err(EngineError::NoObjectives);
        }
        let locale = config.agent.locale;
        let capture_locale = match locale {
            Locale::EnAu => capture::Locale::EnAu,
            Locale::EnUs => capture::Locale::EnUs,
        };
        let mut base_params = BTreeMap::new();
        base_params.insert("business".to_owned(), config.tenant.display_name.clone());
        base_params.insert("agent".to_owned(), config.agent.display_name.clone());
        base_params.insert("hours".to_owned(), hours.spoken());
        let objectives = config
            .objectives
            .iter()
            .map(|o| prepare(o, locale))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tz,
            locale,
            capture_locale,
            persona: config.agent.persona,
            hours,
            base_params,
            objectives,
        })
    }

    /// Index of the objective named `name`.
    pub fn objective_index(&self, name: &str) -> Option<usize> {
        self.objectives.iter().position(|o| o.def.name == name)
    }

    /// The id of the step the call is in.
    pub fn step_id(&self, state: &CallState) -> &'c str {
        self.objectives
            .get(state.objective)
            .and_then(|o| o.steps.get(state.step))
            .map(|s| s.step.id.as_str())
            .unwrap_or("")
    }

    /// Starts a call in the first objective at `now`.
    pub fn start(&self, now: DateTime<Utc>) -> (CallState, Vec<Output>) {
        self.start_at(0, now)
    }

    /// Starts a call in the objective named `objective`.
    pub fn start_objective(
        &self,
        objective: &str,
        now: DateTime<Utc>,
    ) -> Result<(CallState, Vec<Output>), EngineError> {
        let index = self
            .objective_index(objective)
            .ok_or_else(|| EngineError::UnknownObjective(objective.to_owned()))?;
        Ok(self.start_at(index, now))
    }

    fn start_at(&self, objective: usize, now: DateTime<Utc>) -> (CallState, Vec<Output>) {
        let obj = &self.objectives[objective.min(self.objectives.len() - 1)];
        let mut state = CallState {
            objective,
            step: obj.start,
            phase: Phase::Asking,
            slots: BTreeMap::new(),
            attempts: 0,
            silences: 0,
            now,
            speaking: false,
            last_utterance: None,
            transferred_to: None,
            outcome: None,
        };
        let mut out = vec![Output::Event(Event::CallStarted {
            objective: obj.def.name.clone(),
        })];
        self.enter(&mut state, obj.start, &mut out);
        (state, out)
    }

    /// Applies one input. Inputs that do not apply in the current phase (a
    /// partial transcript, anything after the call ended) change nothing and
    /// produce no outputs.
    pub fn step(&self, mut state: CallState, input: &Input) -> (CallState, Vec<Output>) {
        let mut out = Vec::new();
        match input {
            Input::Now(t) => state.now = *t,
            Input::WorkflowResult { workflow, ok, .. } => {
                out.push(Output::Event(Event::WorkflowResult {
                    workflow: workflow.clone(),
                    ok: *ok,
                }));
            }
            _ if state.ended() => {}
            Input::Hangup => {
                let objective = self.objectives[state.objective].def.name.clone();
                out.push(Output::Event(Event::ObjectiveFailed {
                    objective,
                    outcome: "hangup".to_owned(),
                    reason: format!("the caller hung up at step {:?}", self.step_id(&state)),
                }));
                self.finish(&mut state, "hangup", &mut out);
            }
            Input::BargeIn => {
                if state.speaking {
                    state.speaking = false;
                    out.push(Output::StopSpeaking);
                    out.push(Output::Event(Event::BargeIn));
                    self.listen(&state, &mut out);
                }
            }
            Input::SilenceTimeout => self.on_silence(&mut state, &mut out),
            Input::Utterance {
                is_final: false, ..
            } => {}
            Input::Utterance {
                text, confidence, ..
            } => {
                state.speaking = false;
                state.last_utterance = Some(text.clone());
                self.on_answer(&mut state, Answer::Speech(text, *confidence), &mut out);
            }
            Input::Dtmf { digits } => {
                state.speaking = false;
                self.on_answer(&mut state, Answer::Keys(digits), &mut out);
            }
        }
        (state, out)
    }

    fn rt(&self, state: &CallState) -> &RtStep<'c> {
        &self.objectives[state.objective].steps[state.step]
    }

    fn ctx<'a>(&self, state: &CallState, choices: &'a [String]) -> ParseContext<'a> {
        ParseContext {
            locale: self.capture_locale,
            timezone: self.tz,
            now: state.now,
            choices,
        }
    }

    fn parse(
        &self,
        state: &CallState,
        primitive: Primitive,
        choices: &[String],
        answer: &Answer<'_>,
    ) -> capture::Parsed {
        let ctx = self.ctx(state, choices);
        match answer {
            Answer::Speech(text, stt) => {
                let mut parsed = capture::parse(capture_primitive(primitive), text, &ctx);
                // Speech recognition doubt caps the parse's confidence.
                parsed.confidence = parsed.confidence.min(*stt);
                parsed
            }
            Answer::Keys(digits) => capture::parse_dtmf(capture_primitive(primitive), digits, &ctx),
        }
    }

    fn say(
        &self,
        state: &mut CallState,
        id: &str,
        extra: &BTreeMap<String, String>,
        out: &mut Vec<Output>,
    ) {
        let mut params = self.base_params.clone();
        params.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let text = phrasebook::render(self.locale, self.persona, id, &params).unwrap_or_default();
        state.speaking = true;
        out.push(Output::Speak {
            phrase_id: id.to_owned(),
            params,
            text,
        });
    }

    fn listen(&self, state: &CallState, out: &mut Vec<Output>) {
        let rt = self.rt(state);
        let expect = match (&state.phase, &rt.step.capture) {
            (Phase::Confirming { .. }, _) => Primitive::YesNo,
            (_, Some(c)) => c.primitive,
            (_, None) => return,
        };
        out.push(Output::Listen {
            expect,
            step: rt.step.id.clone(),
        });
    }

    fn ask(&self, state: &mut CallState, out: &mut Vec<Output>) {
        let rt = self.rt(state);
        let Some(c) = &rt.step.capture else { return };
        let prompt = c
            .prompt
            .clone()
            .unwrap_or_else(|| phrasebook::ask_id(c.primitive));
        let params = rt.params.clone();
        self.say(state, &prompt, &params, out);
        self.listen(state, out);
    }

    /// Runs steps from `index` until the call waits for the caller or ends.
    fn enter(&self, state: &mut CallState, mut index: usize, out: &mut Vec<Output>) {
        let obj = &self.objectives[state.objective];
        // Validation guarantees an acyclic graph; the bound only protects a
        // voice pod from a config that bypassed it.
        for _ in 0..=obj.steps.len() {
            state.step = index;
            let rt = &obj.steps[index];
            let step = rt.step;
            let next = match step.kind {
                StepKind::Capture => {
                    state.phase = Phase::Asking;
                    state.attempts = 0;
                    state.silences = 0;
                    self.ask(state, out);
                    return;
                }
                StepKind::Say => {
                    if let Some(s) = &step.say {
                        let params: BTreeMap<String, String> = s
                            .params
                            .iter()
                            .map(|(k, v)| (k.clone(), self.fill_slots(state, v)))
                            .collect();
                        self.say(state, &s.phrase, &params, out);
                    }
                    rt.next
                }
                StepKind::Route => Some(self.route(state, rt)),
                StepKind::Book => {
                    if let Some(b) = &step.book {
                        let slots = b
                            .slots
                            .iter()
                            .filter_map(|s| state.slots.get(s).map(|v| (s.clone(), v.display())))
                            .collect();
                        out.push(Output::Event(Event::AppointmentRequested {
                            step: step.id.clone(),
                            service: b.service.clone(),
                            slots,
                            duration_minutes: b.duration_minutes,
                        }));
                    }
                    rt.next
                }
                StepKind::Transfer => {
                    if let Some(t) = &step.transfer {
                        self.transfer(state, t, true, "transfer step", out);
                    }
                    return;
                }
                StepKind::End => {
                    if let Some(e) = &step.end {
                        self.say(
                            state,
                            e.phrase.as_deref().unwrap_or("goodbye"),
                            &BTreeMap::new(),
                            out,
                        );
                        let objective = obj.def.name.clone();
                        out.push(Output::Event(if e.success {
                            Event::ObjectiveCompleted {
                                objective,
                                outcome: e.outcome.clone(),
                            }
                        } else {
                            Event::ObjectiveFailed {
                                objective,
                                outcome: e.outcome.clone(),
                                reason: format!("ended at step {:?}", step.id),
                            }
                        }));
                        self.finish(state, &e.outcome, out);
                    }
                    return;
                }
            };
            match next {
                Some(n) => index = n,
                None => break,
            }
        }
        self.fail(
            state,
            "engine-error",
            "the step graph did not reach a capture, transfer or end",
            out,
        );
    }

    fn fill_slots(&self, state: &CallState, value: &str) -> String {
        if !value.contains("{{") {
            return value.to_owned();
        }
        let mut text = value.to_owned();
        for slot in slot_refs(value) {
            let spoken = state
                .slots
                .get(slot)
                .map(|v| capture::speak(v, self.capture_locale))
                .unwrap_or_default();
            // Tolerate the spacing variants `{{slots.x}}` and `{{ slots.x }}`.
            text = text
                .replace(&format!("{{{{slots.{slot}}}}}"), &spoken)
                .replace(&format!("{{{{ slots.{slot} }}}}"), &spoken);
        }
        text
    }

    fn route(&self, state: &CallState, rt: &RtStep<'c>) -> usize {
        let Some(r) = &rt.step.route else {
            return rt.default;
        };
        for (branch, target) in r.branches.iter().zip(&rt.branches) {
            if self.holds(state, &branch.when) {
                return *target;
            }
        }
        rt.default
    }

    fn holds(&self, state: &CallState, w: &BranchCondition) -> bool {
        if let Some(intent) = &w.intent {
            let said = words(state.last_utterance.as_deref().unwrap_or_default());
            return intent.iter().any(|p| {
                let p = words(p);
                p.len() > 2 && said.contains(&p)
            });
        }
        if let Some(h) = w.business_hours {
            let open = self.hours.open_at(state.now, self.tz);
            return open == (h == BusinessHoursState::Open);
        }
        let Some(slot) = &w.slot else { return false };
        let value = state.slots.get(slot);
        let text = value.map(Value::display);
        let eq = |v: &String| text.as_ref().is_some_and(|t| t.eq_ignore_ascii_case(v));
        if let Some(v) = &w.equals {
            return eq(v);
        }
        if let Some(v) = &w.not_equals {
            return !eq(v);
        }
        if let Some(vs) = &w.one_of {
            return vs.iter().any(eq);
        }
        if let Some(p) = w.present {
            return value.is_some() == p;
        }
        let n = value.and_then(numeric);
        if let Some(limit) = w.less_than {
            return n.is_some_and(|n| n < limit);
        }
        if let Some(limit) = w.greater_than {
            return n.is_some_and(|n| n > limit);
        }
        false
    }

    fn on_answer(&self, state: &mut CallState, answer: Answer<'_>, out: &mut Vec<Output>) {
        let rt = self.rt(state);
        let Some(c) = &rt.step.capture else { return };
        match state.phase.clone() {
            Phase::Ended => {}
            Phase::Asking => {
                // An optional slot the caller declines is skipped.
                if !c.required
                    && c.primitive != Primitive::YesNo
                    && let Answer::Speech(..) = answer
                {
                    let yn = self.parse(state, Primitive::YesNo, &[], &answer);
                    let value = self.parse(state, c.primitive, &c.choices, &answer);
                    if yn.status == ParseStatus::Ok
                        && yn.value == Some(Value::YesNo(false))
                        && value.status != ParseStatus::Ok
                    {
                        out.push(Output::Event(Event::SlotSkipped {
                            slot: c.slot.clone(),
                        }));
                        return self.advance(state, out);
                    }
                }
                let parsed = self.parse(state, c.primitive, &c.choices, &answer);
                self.consider(state, c, parsed, out);
            }
            Phase::Confirming { value, confidence } => {
                let yn = self.parse(state, Primitive::YesNo, &[], &answer);
                match (yn.status, &yn.value) {
                    (ParseStatus::Ok, Some(Value::YesNo(true))) => {
                        out.push(Output::Event(Event::SlotConfirmed {
                            slot: c.slot.clone(),
                        }));
                        self.accept(state, c, value, confidence.max(yn.confidence), out);
                    }
                    (ParseStatus::Ok, Some(Value::YesNo(false))) => {
                        out.push(Output::Event(Event::SlotRejected {
                            slot: c.slot.clone(),
                            value: value.display(),
                        }));
                        // "No, it's 0413 …": the correction is in the same breath.
                        let corrected = self.parse(state, c.primitive, &c.choices, &answer);
                        state.phase = Phase::Asking;
                        if corrected.status == ParseStatus::Ok
                            && corrected.value.as_ref() != Some(&value)
                        {
                            if self.count_failure(
                                state,
                                c,
                                "the caller rejected the read-back",
                                out,
                            ) {
                                self.consider(state, c, corrected, out);
                            }
                        } else if self.count_failure(
                            state,
                            c,
                            "the caller rejected the read-back",
                            out,
                        ) {
                            self.say(state, "repair.rejected", &BTreeMap::new(), out);
                            self.ask(state, out);
                        }
                    }
                    _ => {
                        // Not a yes or no: maybe the caller repeated the value.
                        let again = self.parse(state, c.primitive, &c.choices, &answer);
                        if again.status == ParseStatus::Ok && again.value.as_ref() == Some(&value) {
                            out.push(Output::Event(Event::SlotConfirmed {
                                slot: c.slot.clone(),
                            }));
                            self.accept(state, c, value, confidence.max(again.confidence), out);
                        } else if self.count_failure(state, c, "no yes or no to the read-back", out)
                        {
                            if again.status == ParseStatus::Ok {
                                state.phase = Phase::Asking;
                                self.consider(state, c, again, out);
                            } else {
                                self.say(state, "confirm.retry", &BTreeMap::new(), out);
                                self.listen(state, out);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Accepts, confirms or repairs a parsed answer.
    fn consider(
        &self,
        state: &mut CallState,
        c: &CaptureStep,
        parsed: capture::Parsed,
        out: &mut Vec<Output>,
    ) {
        match (parsed.status, parsed.value) {
            (ParseStatus::Ok, Some(value)) => {
                if let Err(reason) = self.check_rules(state, c, &value) {
                    return self.repair(state, c, &reason, out);
                }
                let confirm = match c.confirm {
                    ConfirmPolicy::Always => true,
                    ConfirmPolicy::Never => false,
                    ConfirmPolicy::OnLowConfidence => parsed.confidence < CONFIRM_BELOW,
                };
                if confirm {
                    self.read_back(state, value, parsed.confidence, out);
                } else {
                    self.accept(state, c, value, parsed.confidence, out);
                }
            }
            // A tentative value is never accepted: it is read back, which is
            // asking again with the best guess.
            (ParseStatus::Unsure, Some(value))
                if c.confirm != ConfirmPolicy::Never
                    && self.check_rules(state, c, &value).is_ok() =>
            {
                self.read_back(state, value, parsed.confidence, out);
            }
            _ => {
                let reason = parsed.reason.unwrap_or_else(|| "not understood".to_owned());
                self.repair(state, c, &reason, out);
            }
        }
    }

    fn read_back(
        &self,
        state: &mut CallState,
        value: Value,
        confidence: f32,
        out: &mut Vec<Output>,
    ) {
        let mut params = BTreeMap::new();
        params.insert(
            "value".to_owned(),
            capture::speak(&value, self.capture_locale),
        );
        state.phase = Phase::Confirming { value, confidence };
        self.say(state, "confirm", &params, out);
        self.listen(state, out);
    }

    fn accept(
        &self,
        state: &mut CallState,
        c: &CaptureStep,
        value: Value,
        confidence: f32,
        out: &mut Vec<Output>,
    ) {
        out.push(Output::Event(Event::SlotCaptured {
            slot: c.slot.clone(),
            value: value.display(),
            confidence,
        }));
        state.slots.insert(c.slot.clone(), value);
        self.advance(state, out);
    }

    fn advance(&self, state: &mut CallState, out: &mut Vec<Output>) {
        state.phase = Phase::Asking;
        match self.rt(state).next {
            Some(n) => self.enter(state, n, out),
            None => self.fail(state, "engine-error", "capture step without next", out),
        }
    }

    /// Counts a failed attempt; gives up (and returns false) at the limit.
    fn count_failure(
        &self,
        state: &mut CallState,
        c: &CaptureStep,
        reason: &str,
        out: &mut Vec<Output>,
    ) -> bool {
        state.attempts += 1;
        out.push(Output::Event(Event::RepairAttempted {
            slot: c.slot.clone(),
            attempt: state.attempts,
            reason: reason.to_owned(),
        }));
        if state.attempts >= u32::try_from(c.max_attempts).unwrap_or(1) {
            self.give_up(state, c, out);
            return false;
        }
        true
    }

    fn repair(&self, state: &mut CallState, c: &CaptureStep, reason: &str, out: &mut Vec<Output>) {
        state.phase = Phase::Asking;
        if self.count_failure(state, c, reason, out) {
            let id = phrasebook::repair_id(c.primitive, state.attempts);
            let params = self.rt(state).params.clone();
            self.say(state, &id, &params, out);
            self.listen(state, out);
        }
    }

    fn give_up(&self, state: &mut CallState, c: &CaptureStep, out: &mut Vec<Output>) {
        out.push(Output::Event(Event::CaptureFailed {
            slot: c.slot.clone(),
        }));
        match c.on_failure {
            OnFailure::Skip => {
                out.push(Output::Event(Event::SlotSkipped {
                    slot: c.slot.clone(),
                }));
                self.advance(state, out);
            }
            OnFailure::Transfer => {
                self.escalate(state, &format!("could not capture {}", c.slot), out)
            }
            OnFailure::End => {
                self.say(state, "capture-failed", &BTreeMap::new(), out);
                self.fail(
                    state,
                    "capture-failed",
                    &format!("could not capture {}", c.slot),
                    out,
                );
            }
        }
    }

    fn on_silence(&self, state: &mut CallState, out: &mut Vec<Output>) {
        state.silences += 1;
        let policy = &self.objectives[state.objective].def.silence;
        if state.silences > u32::try_from(policy.reprompts).unwrap_or(0) {
            match policy.then {
                SilenceAction::End => {
                    self.say(state, "no-response", &BTreeMap::new(), out);
                    self.fail(state, "no-response", "the caller stayed silent", out);
                }
                SilenceAction::Transfer => self.escalate(state, "the caller stayed silent", out),
            }
            return;
        }
        out.push(Output::Event(Event::SilenceReprompted {
            count: state.silences,
        }));
        self.say(state, "reprompt", &BTreeMap::new(), out);
        match state.phase.clone() {
            Phase::Confirming { value, confidence } => {
                self.read_back(state, value, confidence, out)
            }
            _ => self.ask(state, out),
        }
    }

    fn escalate(&self, state: &mut CallState, reason: &str, out: &mut Vec<Output>) {
        match &self.objectives[state.objective].def.escalation {
            Some(t) => self.transfer(state, t, false, reason, out),
            None => {
                self.say(state, "capture-failed", &BTreeMap::new(), out);
                self.fail(state, "escalation-unavailable", reason, out);
            }
        }
    }

    /// Transfers; `planned` distinguishes a transfer step (the objective's
    /// own outcome) from an escalation after a failure.
    fn transfer(
        &self,
        state: &mut CallState,
        t: &TransferStep,
        planned: bool,
        why: &str,
        out: &mut Vec<Output>,
    ) {
        let to = t.to.clone().unwrap_or_default();
        let reason = t.reason.clone().unwrap_or_else(|| why.to_owned());
        let mut params = BTreeMap::new();
        let phrase = match t.mode {
            TransferMode::Warm => {
                params.insert(
                    "contact".to_owned(),
                    t.contact.clone().unwrap_or_else(|| "the team".to_owned()),
                );
                "transfer.warm"
            }
            TransferMode::Cold => "transfer.cold",
        };
        self.say(state, phrase, &params, out);
        out.push(Output::Event(Event::Escalation {
            to: to.clone(),
            reason: reason.clone(),
            mode: t.mode,
        }));
        let outcome = t
            .outcome
            .clone()
            .unwrap_or_else(|| "transferred".to_owned());
        let objective = self.objectives[state.objective].def.name.clone();
        out.push(Output::Event(if planned {
            Event::ObjectiveCompleted {
                objective,
                outcome: outcome.clone(),
            }
        } else {
            Event::ObjectiveFailed {
                objective,
                outcome: outcome.clone(),
                reason: reason.clone(),
            }
        }));
        out.push(Output::Transfer {
            to: to.clone(),
            mode: t.mode,
            reason: Some(reason),
        });
        state.transferred_to = Some(to);
        state.phase = Phase::Ended;
        state.outcome = Some(outcome);
        state.speaking = false;
    }

    fn fail(&self, state: &mut CallState, outcome: &str, reason: &str, out: &mut Vec<Output>) {
        let objective = self.objectives[state.objective].def.name.clone();
        out.push(Output::Event(Event::ObjectiveFailed {
            objective,
            outcome: outcome.to_owned(),
            reason: reason.to_owned(),
        }));
        self.finish(state, outcome, out);
    }

    fn finish(&self, state: &mut CallState, outcome: &str, out: &mut Vec<Output>) {
        out.push(Output::End {
            outcome: outcome.to_owned(),
        });
        state.phase = Phase::Ended;
        state.outcome = Some(outcome.to_owned());
        state.speaking = false;
    }

    fn check_rules(&self, state: &CallState, c: &CaptureStep, value: &Value) -> Result<(), String> {
        let Some(rules) = &c.validation else {
            return Ok(());
        };
        let text = value.display();
        if let Some(re) = &self.rt(state).pattern
            && !re.is_match(&text)
        {
            return Err(format!("{text} does not match the required pattern"));
        }
        if !rules.allowed_values.is_empty()
            && !rules
                .allowed_values
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&text))
        {
            return Err(format!("{text} is not an accepted value"));
        }
        if let Some(n) = numeric(value)
            && (rules.min.is_some_and(|m| n < m) || rules.max.is_some_and(|m| n > m))
        {
            return Err(format!("{text} is out of range"));
        }
        if rules.within_business_hours && !self.within_hours(state, value) {
            return Err(format!("{text} is outside business hours"));
        }
        Ok(())
    }

    fn within_hours(&self, state: &CallState, value: &Value) -> bool {
        match value {
            Value::Date(d) => self.hours.open_on(*d),
            Value::Time(t) => {
                let today = state.now.with_timezone(&self.tz).date_naive();
                self.hours.open_at_local(today, *t)
            }
            Value::DateTime(s) => DateTime::parse_from_rfc3339(s)
                .is_ok_and(|dt| self.hours.open_at(dt.with_timezone(&Utc), self.tz)),
            _ => true,
        }
    }
}

enum Answer<'a> {
    Speech(&'a str, f32),
    Keys(&'a str),
}

fn numeric(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => Some(*n),
        // Money compares in major units, as people write limits.
        #[allow(clippy::cast_precision_loss)]
        Value::Money { cents, .. } => Some(*cents as f64 / 100.0),
        _ => None,
    }
}

fn prepare(o: &CompiledObjective, locale: Locale) -> Result<RtObjective<'_>, EngineError> {
    let index: BTreeMap<&str, usize> = o
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let find = |from: &Step, target: &str| {
        index
            .get(target)
            .copied()
            .ok_or_else(|| EngineError::UnknownStep {
                objective: o.name.clone(),
                step: from.id.clone(),
                target: target.to_owned(),
            })
    };
    let start = index
        .get(o.start.as_str())
        .copied()
        .ok_or_else(|| EngineError::UnknownStep {
            objective: o.name.clone(),
            step: "start".to_owned(),
            target: o.start.clone(),
        })?;
    let mut steps = Vec::with_capacity(o.steps.len());
    for step in &o.steps {
        let next = step.next.as_deref().map(|n| find(step, n)).transpose()?;
        let (branches, default) = match &step.route {
            Some(r) => (
                r.branches
                    .iter()
                    .map(|b| find(step, &b.next))
                    .collect::<Result<Vec<_>, _>>()?,
                find(step, &r.default)?,
            ),
            None => (Vec::new(), 0),
        };
        let pattern = step
            .capture
            .as_ref()
            .and_then(|c| c.validation.as_ref())
            .and_then(|v| v.pattern.as_deref())
            .map(|p| {
                Regex::new(p).map_err(|e| EngineError::Pattern {
                    objective: o.name.clone(),
                    step: step.id.clone(),
                    message: e.to_string(),
                })
            })
            .transpose()?;
        let mut params = BTreeMap::new();
        if let Some(c) = step.capture.as_ref().filter(|c| !c.choices.is_empty()) {
            params.insert(
                "choices".to_owned(),
                phrasebook::spoken_list(&c.choices, locale),
            );
            let keys: Vec<String> = c
                .choices
                .iter()
                .enumerate()
                .map(|(i, ch)| format!("{} for {ch}", i + 1))
                .collect();
            params.insert("keys".to_owned(), phrasebook::spoken_list(&keys, locale));
        }
        steps.push(RtStep {
            step,
            next,
            branches,
            default,
            pattern,
            params,
        });
    }
    Ok(RtObjective {
        def: o,
        start,
        steps,
    })
}
