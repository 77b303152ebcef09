//! `dialtone replay CALL_ID`: re-runs a recorded call's inputs through the
//! engine at the call's config version and compares every output with the
//! recorded one.
//!
//! The recording is the call's `call_events` in seq order: `callOpened`,
//! the outputs of `engine.start(startedAt)`, then for each `inputReceived`
//! the outputs of `engine.step` for it (cost and latency events between
//! them are not outputs), and `callClosed`. The engine is deterministic, so
//! any difference is a bug in the engine or the runtime, or a tampered
//! record. `--export-test` turns the call into an Objective test case.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_crds::objective::{
    CallExpectation, Step, TestCall, TestTurn, TransferStep, TurnExpectation,
};
use dialtone_engine::testcall::DEFAULT_CONFIDENCE;
use dialtone_engine::{CompiledConfig, Engine, EngineError, Event, Input, Output};
use dialtone_spine::db::{ReadError, load_events};
use dialtone_spine::event::{CallEvent, CloseReason, EventBody, RuntimeEvent};
use dialtone_spine::versions::{self, VersionError};
use sqlx::PgPool;
use uuid::Uuid;

/// Why a call cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No events for the call.
    #[error("no events recorded for call {0}")]
    NotFound(Uuid),
    /// The record does not start with `callOpened`.
    #[error("call {0}: the first event is not callOpened at seq 0")]
    NotOpened(Uuid),
    /// The call's config version is not in `config_versions`.
    #[error("config version {0} is not stored")]
    NoConfig(String),
    /// The config version cannot be loaded or verified.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The events cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The database is unreachable.
    #[error("connecting to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The config version cannot run.
    #[error("config version {hash}: {source}")]
    Engine {
        /// The version.
        hash: String,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// The test case cannot be written.
    #[error("{what}: {message}")]
    Export {
        /// What was being done.
        what: String,
        /// Why it failed.
        message: String,
    },
}

/// How a recorded call began.
#[derive(Clone, Debug, PartialEq)]
pub struct Opening {
    /// The call.
    pub call_id: Uuid,
    /// Its tenant.
    pub tenant: String,
    /// The Agent's namespace.
    pub namespace: String,
    /// The Agent.
    pub agent: String,
    /// The pinned config version.
    pub config_version: String,
    /// The instant the engine started at.
    pub started_at: DateTime<Utc>,
}

/// One turn: the agent's opening (no input) or one caller input, with what
/// was recorded and what the engine does now.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// The input fed to the engine; `None` for the opening.
    pub input: Option<Input>,
    /// What the caller said when the input was mapped from it.
    pub original: Option<String>,
    /// The outputs the call recorded.
    pub recorded: Vec<Output>,
    /// The outputs of the engine now.
    pub replayed: Vec<Output>,
}

/// A difference between the record and the replay.
#[derive(Clone, Debug, PartialEq)]
pub enum Difference {
    /// An output differs, or exists on one side only.
    Output {
        /// The turn (0 is the opening).
        turn: usize,
        /// The output's position within the turn.
        position: usize,
        /// What was recorded there.
        recorded: Option<Output>,
        /// What the engine gives there now.
        replayed: Option<Output>,
    },
    /// Events are missing from the record.
    Gap {
        /// The seq that should have come next.
        expected: i32,
        /// The seq found instead.
        found: i32,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Output {
                turn,
                position,
                recorded,
                replayed,
            } => {
                let side = |o: &Option<Output>| o.as_ref().map_or("nothing".to_owned(), describe);
                write!(
                    f,
                    "turn {turn}, output {}: recorded {}; replayed {}",
                    position + 1,
                    side(recorded),
                    side(replayed)
                )
            }
            Difference::Gap { expected, found } => {
                write!(f, "events {expected} to {} are missing", found - 1)
            }
        }
    }
}

/// A recorded call next to its replay.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// How it began.
    pub opening: Opening,
    /// Every turn.
    pub turns: Vec<Turn>,
    /// How the record closed, if it did.
    pub closed: Option<(CloseReason, DateTime<Utc>)>,
    /// Holes in the seq numbers.
    pub gaps: Vec<(i32, i32)>,
}

/// The opening of a recorded call.
fn opening(events: &[CallEvent]) -> Result<Opening, ReplayError> {
    let first = events.first().ok_or(ReplayError::NotFound(Uuid::nil()))?;
    match &first.body {
        EventBody::Runtime(RuntimeEvent::CallOpened {
            namespace,
            agent,
            config_version,
            started_at,
            ..
        }) if first.seq == 0 => Ok(Opening {
            call_id: first.call_id,
            tenant: first.tenant.clone(),
            namespace: namespace.clone(),
            agent: agent.clone(),
            config_version: config_version.clone(),
            started_at: *started_at,
        }),
        _ => Err(ReplayError::NotOpened(first.call_id)),
    }
}

/// Replays a call's events (in seq order) against its config.
pub fn replay(config: &CompiledConfig, events: &[CallEvent]) -> Result<Replay, ReplayError> {
    let opening = opening(events)?;
    let mut turns = vec![Turn {
        input: None,
        original: None,
        recorded: Vec::new(),
        replayed: Vec::new(),
    }];
    let mut closed = None;
    let mut gaps = Vec::new();
    let mut expected = 1;
    for e in events.iter().skip(1) {
        if e.seq != expected {
            gaps.push((expected, e.seq));
        }
        expected = e.seq + 1;
        match &e.body {
            EventBody::Runtime(RuntimeEvent::InputReceived {
                input, original, ..
            }) => {
                turns.push(Turn {
                    input: Some(input.clone()),
                    original: original.clone(),
                    recorded: Vec::new(),
                    replayed: Vec::new(),
                });
            }
            EventBody::Runtime(RuntimeEvent::CallClosed {
                reason, ended_at, ..
            }) => closed = Some((*reason, *ended_at)),
            body => {
                if let (Some(output), Some(turn)) = (body.as_output(), turns.last_mut()) {
                    turn.recorded.push(output);
                }
            }
        }
    }

    let engine = Engine::new(config).map_err(|source| ReplayError::Engine {
        hash: opening.config_version.clone(),
        source,
    })?;
    let (mut state, outputs) = engine.start(opening.started_at);
    for turn in &mut turns {
        match &turn.input {
            None => turn.replayed.clone_from(&outputs),
            Some(input) => {
                let (next, out) = engine.step(state, input);
                state = next;
                turn.replayed = out;
            }
        }
    }
    Ok(Replay {
        opening,
        turns,
        closed,
        gaps,
    })
}

impl Replay {
    /// Every difference, in call order.
    pub fn differences(&self) -> Vec<Difference> {
        let mut out: Vec<Difference> = self
            .gaps
            .iter()
            .map(|&(expected, found)| Difference::Gap { expected, found })
            .collect();
        for (turn, t) in self.turns.iter().enumerate() {
            for position in 0..t.recorded.len().max(t.replayed.len()) {
                let (recorded, replayed) = (t.recorded.get(position), t.replayed.get(position));
                if recorded != replayed {
                    out.push(Difference::Output {
                        turn,
                        position,
                        recorded: recorded.cloned(),
                        replayed: replayed.cloned(),
                    });
                }
            }
        }
        out
    }

    /// The conversation as recorded, then the differences.
    pub fn render(&self) -> String {
        let o = &self.opening;
        let mut s = format!(
            "call {} · tenant {} · agent {}/{} · config {}\nstarted {}\n",
            o.call_id,
            o.tenant,
            o.namespace,
            o.agent,
            o.config_version,
            o.started_at.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        for (n, turn) in self.turns.iter().enumerate() {
            if let Some(input) = &turn.input {
                let heard = turn
                    .original
                    .as_ref()
                    .map(|o| format!(" (heard {o:?})"))
                    .unwrap_or_default();
                let _ = writeln!(s, "[{n}] caller: {}{heard}", caller_line(input));
            }
            for output in &turn.recorded {
                match output {
                    Output::Speak { text, .. } => {
                        let _ = writeln!(s, "    agent: {text}");
                    }
                    Output::Transfer { to, mode, .. } => {
                        let _ = writeln!(s, "    → transfer ({mode:?}) to {to}");
                    }
                    Output::End { outcome } => {
                        let _ = writeln!(s, "    → end: {outcome}");
                    }
                    Output::Listen { .. } | Output::StopSpeaking | Output::Event(_) => {}
                }
            }
        }
        match &self.closed {
            Some((reason, at)) => {
                let _ = writeln!(
                    s,
                    "closed: {} at {}",
                    reason.as_str(),
                    at.to_rfc3339_opts(SecondsFormat::Millis, true)
                );
            }
            None => s.push_str("closed: not yet (the record has no callClosed)\n"),
        }
        let differences = self.differences();
        let outputs: usize = self.turns.iter().map(|t| t.recorded.len()).sum();
        if differences.is_empty() {
            let _ = writeln!(
                s,
                "replay: identical ({} turns, {outputs} outputs)",
                self.turns.len()
            );
        } else {
            let _ = writeln!(s, "replay: {} difference(s)", differences.len());
            for d in &differences {
                let _ = writeln!(s, "  {d}");
            }
        }
        s
    }
}

fn caller_line(input: &Input) -> String {
    match input {
        Input::Utterance {
            text,
            confidence,
            is_final,
        } => {
            let mut line = format!("says {text:?}");
            if (*confidence - DEFAULT_CONFIDENCE).abs() > f32::EPSILON {
                let _ = write!(line, " (confidence {confidence})");
            }
            if !is_final {
                line.push_str(" (partial)");
            }
            line
        }
        Input::Dtmf { digits } => format!("presses {digits}"),
        Input::SilenceTimeout => "(silence)".to_owned(),
        Input::BargeIn => "(interrupts)".to_owned(),
        Input::Hangup => "hangs up".to_owned(),
        Input::WorkflowResult { workflow, ok, .. } => {
            format!(
                "(workflow {workflow} {})",
                if *ok { "succeeded" } else { "failed" }
            )
        }
        Input::Now(at) => format!(
            "(clock: {})",
            at.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    }
}

fn describe(output: &Output) -> String {
    match output {
        Output::Speak {
            phrase_id, text, ..
        } => format!("agentSpoke {text:?} ({phrase_id})"),
        Output::StopSpeaking => "speechStopped".to_owned(),
        Output::Listen { expect, step } => {
            format!("listening for {} at {step}", expect.as_str())
        }
        Output::Transfer { to, mode, .. } => format!("transferred ({mode:?}) to {to}"),
        Output::End { outcome } => format!("callEnded {outcome}"),
        Output::Event(e) => serde_json::to_string(e).unwrap_or_else(|_| e.type_name().to_owned()),
    }
}

/// A call's events and its verified config version.
pub async fn load(
    pool: &PgPool,
    call_id: Uuid,
) -> Result<(Vec<CallEvent>, CompiledConfig), ReplayError> {
    let events = load_events(pool, call_id).await?;
    if events.is_empty() {
        return Err(ReplayError::NotFound(call_id));
    }
    let hash = opening(&events)?.config_version;
    let config = versions::load(pool, &hash)
        .await?
        .ok_or(ReplayError::NoConfig(hash))?;
    Ok((events, config))
}

/// A test case written from a recorded call.
#[derive(Clone, Debug, PartialEq)]
pub struct Export {
    /// Tenant, Agent and Objective manifests, the test in the first
    /// objective: what `dialtone test FILE` runs.
    pub yaml: String,
    /// The test call alone, to paste into the Objective's `spec.tests`.
    pub test: TestCall,
    /// Inputs a test case cannot express, skipped.
    pub skipped: Vec<String>,
}

/// The recorded call as an Objective test case: the caller's turns, the
/// phrases the agent said in reply to each, and the outcome, slots and
/// transfer as recorded. The config's Tenant, Agent and Objectives are
/// written out as manifests so that the file runs on its own.
pub fn export_test(replay: &Replay, config: &CompiledConfig) -> Result<Export, ReplayError> {
    let o = &replay.opening;
    let mut turns = Vec::new();
    let mut skipped = Vec::new();
    let mut slots = BTreeMap::new();
    let mut outcome = None;
    let mut transferred_to = None;
    for (n, t) in replay.turns.iter().enumerate() {
        for output in &t.recorded {
            match output {
                Output::Event(Event::SlotCaptured { slot, value, .. }) => {
                    slots.insert(slot.clone(), value.clone());
                }
                Output::Event(
                    Event::ObjectiveCompleted { outcome: label, .. }
                    | Event::ObjectiveFailed { outcome: label, .. },
                )
                | Output::End { outcome: label } => outcome = Some(label.clone()),
                Output::Transfer { to, .. } => transferred_to = Some(to.clone()),
                _ => {}
            }
        }
        let Some(input) = &t.input else { continue };
        let mut turn = TestTurn::default();
        match input {
            Input::Utterance {
                text,
                confidence,
                is_final: true,
            } => {
                turn.say = Some(text.clone());
                if (*confidence - DEFAULT_CONFIDENCE).abs() > f32::EPSILON {
                    // Through the shortest decimal, so 0.62f32 is written
                    // as 0.62 and read back as the same f32.
                    turn.confidence = confidence.to_string().parse().ok();
                }
            }
            Input::Dtmf { digits } => turn.dtmf = Some(digits.clone()),
            Input::SilenceTimeout => turn.silence = Some(true),
            Input::Hangup => turn.hangup = Some(true),
            other => {
                skipped.push(format!(
                    "turn {n}: {} (a test turn cannot express it)",
                    caller_line(other)
                ));
                continue;
            }
        }
        let says: Vec<String> = t
            .recorded
            .iter()
            .filter_map(|out| match out {
                Output::Speak { phrase_id, .. } => Some(phrase_id.clone()),
                _ => None,
            })
            .collect();
        if !says.is_empty() {
            turn.expect = Some(TurnExpectation {
                says,
                ..TurnExpectation::default()
            });
        }
        turns.push(turn);
    }
    let test = TestCall {
        name: format!("replay of call {}", o.call_id),
        now: Some(o.started_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        timezone: None,
        turns,
        expect: CallExpectation {
            outcome,
            slots,
            transferred_to,
            events: Vec::new(),
        },
    };
    let yaml = manifests(config, &o.namespace, &test, &o.config_version, o.call_id)?;
    Ok(Export {
        yaml,
        test,
        skipped,
    })
}

/// Tenant, Agent and Objectives that compile to the behaviour of `config`
/// (providers, numbers and workflows do not change what the engine says).
fn manifests(
    config: &CompiledConfig,
    namespace: &str,
    test: &TestCall,
    hash: &str,
    call_id: Uuid,
) -> Result<String, ReplayError> {
    let t = &config.tenant;
    let a = &config.agent;
    let tenant = serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": t.name},
        "spec": {
            "displayName": t.display_name,
            "namespace": namespace,
            "profile": {
                "timezone": t.timezone,
                "locale": a.locale,
                "businessHours": t.business_hours,
                "holidays": t.holidays.iter().map(|d| serde_json::json!({"date": d})).collect::<Vec<_>>(),
            },
            "escalationContacts": t.escalation_contacts,
        },
    });
    let agent = serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": a.name, "namespace": namespace},
        "spec": {
            "displayName": a.display_name,
            "persona": a.persona,
            "locale": a.locale,
            "objectives": config.objectives.iter().map(|o| serde_json::json!({"name": o.name})).collect::<Vec<_>>(),
        },
    });
    let mut docs = vec![tenant, agent];
    for (i, o) in config.objectives.iter().enumerate() {
        let steps: Vec<Step> = o
            .steps
            .iter()
            .map(|s| Step {
                transfer: s.transfer.as_ref().map(as_written),
                ..s.clone()
            })
            .collect();
        let mut spec = serde_json::json!({
            "start": o.start,
            "steps": steps,
            "silence": o.silence,
        });
        if let Some(e) = &o.escalation {
            spec["escalation"] = serde_json::json!(as_written(e));
        }
        // Calls start in the first objective.
        if i == 0 {
            spec["tests"] = serde_json::json!([test]);
        }
        docs.push(serde_json::json!({
            "apiVersion": "dialtone.io/v1alpha1",
            "kind": "Objective",
            "metadata": {"name": o.name, "namespace": namespace},
            "spec": spec,
        }));
    }
    let mut yaml = format!(
        "# Call {call_id}, recorded on config version {hash}, as an Objective test case.\n\
         # Run it with `dialtone test <this file>`; to keep it, copy the test into the\n\
         # Objective's spec.tests and change the expectations to what should happen.\n"
    );
    for doc in docs {
        let text = serde_yaml::to_string(&doc).map_err(|e| ReplayError::Export {
            what: "writing YAML".to_owned(),
            message: e.to_string(),
        })?;
        yaml.push_str("---\n");
        yaml.push_str(&text);
    }
    Ok(yaml)
}

/// A compiled transfer as a spec writes it: compiling resolves a named
/// contact to its number and keeps both, but a spec sets one or the other
/// (the name, which the warm-transfer phrase uses).
fn as_written(t: &TransferStep) -> TransferStep {
    TransferStep {
        to: if t.contact.is_some() {
            None
        } else {
            t.to.clone()
        },
        ..t.clone()
    }
}

/// `dialtone replay`: prints the conversation and the differences; `Ok(true)`
/// when the replay is identical.
pub fn run(call_id: Uuid, database_url: &str, export: Option<&Path>) -> Result<bool, ReplayError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ReplayError::Export {
            what: "starting the async runtime".to_owned(),
            message: e.to_string(),
        })?;
    let (events, config) = runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(database_url)
            .await
            .map_err(ReplayError::Connect)?;
        let loaded = load(&pool, call_id).await;
        pool.close().await;
        loaded
    })?;
    let replay = replay(&config, &events)?;
    print!("{}", replay.render());
    if let Some(path) = export {
        let export = export_test(&replay, &config)?;
        std::fs::write(path, &export.yaml).map_err(|e| ReplayError::Export {
            what: format!("writing {}", path.display()),
            message: e.to_string(),
        })?;
        for s in &export.skipped {
            println!("export: skipped {s}");
        }
        println!(
            "export: wrote test {:?} to {}",
            export.test.name,
            path.display()
        );
    }
    Ok(replay.differences().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    use chrono::TimeZone;
    use dialtone_engine::ConfigVersion;
    use dialtone_engine::testcall::{default_now, turn_input};
    use dialtone_spine::event::{Channel, CostComponent, CostUnit, Direction, output_event};
    use dialtone_spine::writer::{EventWriter, WriterConfig};

    fn required() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
            || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
    }

    /// The shared test database, or `None` to skip.
    async fn pool() -> Option<PgPool> {
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
                std::fs::read_to_string(file)
                    .ok()
                    .map(|s| s.trim().to_owned())
            });
        let why = match url {
            None => "no DATABASE_URL and no .testenv/database-url".to_owned(),
            Some(url) => match sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url)
                .await
            {
                Ok(pool) => return Some(pool),
                Err(e) => format!("cannot connect to the test database: {e}"),
            },
        };
        assert!(!required(), "the database is required but {why}");
        eprintln!("SKIPPED: {why}");
        None
    }

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// The dental clinic's reception Agent and its first test call.
    fn dental() -> (ConfigVersion, TestCall) {
        let set = crate::load::load(&[root().join("examples/dental-clinic")]).expect("loads");
        let (_, agent) = set
            .agents()
            .find(|(_, a)| a.metadata.name.as_deref() == Some("reception"))
            .expect("the reception agent");
        let version = crate::compile_agent(&set, agent).expect("compiles");
        let (_, objective) = set.objectives().next().expect("an objective");
        let test = objective.spec.tests[0].clone();
        (version, test)
    }

    /// What the voice runtime records for `test`: the engine driven by its
    /// turns, with cost and latency between the outputs.
    fn record(
        version: &ConfigVersion,
        tenant: &str,
        test: &TestCall,
        call_id: Uuid,
    ) -> Vec<CallEvent> {
        let config = &version.config;
        let engine = Engine::new(config).expect("the config runs");
        let tz: chrono_tz::Tz = config.tenant.timezone.parse().expect("a zone");
        let started_at = default_now(tz);
        let mut bodies = vec![EventBody::Runtime(RuntimeEvent::CallOpened {
            namespace: config.agent.namespace.clone(),
            agent: config.agent.name.clone(),
            config_version: version.hash.clone(),
            core_version: config.core_version.clone(),
            direction: Direction::Inbound,
            caller: Some("+61412345678".into()),
            callee: Some("+61290001234".into()),
            channel: Channel::Text,
            external_id: None,
            started_at,
        })];
        let (mut state, outputs) = engine.start(started_at);
        bodies.extend(outputs.iter().map(output_event));
        for turn in &test.turns {
            let input = turn_input(turn).expect("a scripted input");
            bodies.push(EventBody::Runtime(RuntimeEvent::InputReceived {
                input: input.clone(),
                original: None,
                altered_from: None,
            }));
            let (next, outputs) = engine.step(state, &input);
            state = next;
            bodies.push(EventBody::Runtime(RuntimeEvent::CostAccrued {
                component: CostComponent::Stt,
                provider: "builtin".into(),
                quantity: 2.0,
                unit: CostUnit::Seconds,
                micro_usd: 150,
            }));
            bodies.extend(outputs.iter().map(output_event));
            bodies.push(EventBody::Runtime(RuntimeEvent::TurnMeasured {
                latency_micros: 900,
            }));
        }
        bodies.push(EventBody::Runtime(RuntimeEvent::CallClosed {
            reason: CloseReason::Ended,
            ended_at: started_at + chrono::Duration::seconds(90),
            duration_millis: 90_000,
        }));
        bodies
            .into_iter()
            .enumerate()
            .map(|(seq, body)| CallEvent {
                call_id,
                seq: i32::try_from(seq).expect("small"),
                tenant: tenant.to_owned(),
                occurred_at: started_at
                    + chrono::Duration::seconds(i64::try_from(seq).expect("small")),
                body,
            })
            .collect()
    }

    async fn write(pool: &PgPool, events: Vec<CallEvent>) {
        let spill = std::env::temp_dir().join(format!("dialtone-replay-{}.spill", Uuid::new_v4()));
        let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
        for e in events {
            sink.send(e).await.expect("sends");
        }
        sink.flush().await.expect("flushes");
        task.shutdown().await.expect("stops");
        assert_eq!(
            sink.stats()
                .spilled
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        let _ = std::fs::remove_file(spill);
    }

    #[tokio::test]
    async fn a_recorded_call_replays_identically_and_exports_a_passing_test() {
        let Some(pool) = pool().await else { return };
        let (version, test) = dental();
        let tenant = format!("replay-{}", Uuid::new_v4().simple());
        versions::put(
            &pool,
            &version,
            &tenant,
            &version.config.agent.namespace,
            &version.config.agent.name,
        )
        .await
        .expect("stores the config version");
        let call_id = Uuid::new_v4();
        write(&pool, record(&version, &tenant, &test, call_id)).await;

        let (events, config) = load(&pool, call_id).await.expect("loads the call");
        assert_eq!(config, version.config);
        let replay = replay(&config, &events).expect("replays");
        assert_eq!(replay.differences(), Vec::new());
        assert_eq!(replay.turns.len(), test.turns.len() + 1);
        let text = replay.render();
        assert!(
            text.contains("[1] caller: says \"just a check-up and clean please\""),
            "{text}"
        );
        assert!(text.contains("    → end: booked"), "{text}");
        assert!(text.contains("replay: identical"), "{text}");

        // The export runs under `dialtone test` and passes.
        let export = export_test(&replay, &config).expect("exports");
        assert!(export.skipped.is_empty(), "{:?}", export.skipped);
        assert_eq!(export.test.turns.len(), test.turns.len());
        assert_eq!(export.test.expect.outcome.as_deref(), Some("booked"));
        assert_eq!(
            export.test.expect.slots.get("phone").map(String::as_str),
            Some("+61412345678")
        );
        let dir = std::env::temp_dir().join(format!("dialtone-export-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("replayed.yaml");
        std::fs::write(&file, &export.yaml).expect("writes");
        assert!(
            crate::test(std::slice::from_ref(&file), None).expect("runs the test"),
            "{}",
            export.yaml
        );
        // And fails once the expectation no longer holds.
        let mut wrong = export.test.clone();
        wrong.expect.outcome = Some("transferred".to_owned());
        let o = &replay.opening;
        let yaml = manifests(&config, &o.namespace, &wrong, &o.config_version, o.call_id)
            .expect("writes manifests");
        std::fs::write(&file, yaml).expect("writes");
        assert!(!crate::test(&[file], None).expect("runs the test"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_tampered_agent_line_is_the_one_difference() {
        let Some(pool) = pool().await else { return };
        let (version, test) = dental();
        let tenant = format!("replay-{}", Uuid::new_v4().simple());
        versions::put(
            &pool,
            &version,
            &tenant,
            &version.config.agent.namespace,
            &version.config.agent.name,
        )
        .await
        .expect("stores the config version");
        let call_id = Uuid::new_v4();
        let mut events = record(&version, &tenant, &test, call_id);
        // The agent's first line after the caller's second turn.
        let inputs: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                matches!(
                    e.body,
                    EventBody::Runtime(RuntimeEvent::InputReceived { .. })
                )
            })
            .map(|(i, _)| i)
            .collect();
        let at = (inputs[1]..events.len())
            .find(|&i| {
                matches!(
                    events[i].body,
                    EventBody::Runtime(RuntimeEvent::AgentSpoke { .. })
                )
            })
            .expect("the agent answers turn 2");
        let original = events[at].body.as_output().expect("an output");
        if let EventBody::Runtime(RuntimeEvent::AgentSpoke { text, .. }) = &mut events[at].body {
            *text = "Sure, I'll give your number to our sales team.".to_owned();
        }
        let tampered = events[at].body.as_output().expect("an output");
        write(&pool, events).await;

        let (events, config) = load(&pool, call_id).await.expect("loads the call");
        let replay = replay(&config, &events).expect("replays");
        let differences = replay.differences();
        assert_eq!(differences.len(), 1, "{differences:?}");
        let Difference::Output {
            turn,
            recorded,
            replayed,
            ..
        } = &differences[0]
        else {
            panic!("an output difference, got {differences:?}");
        };
        assert_eq!(*turn, 2);
        assert_eq!(recorded.as_ref(), Some(&tampered));
        assert_eq!(replayed.as_ref(), Some(&original));
        let text = replay.render();
        assert!(text.contains("replay: 1 difference(s)"), "{text}");
        assert!(text.contains("our sales team"), "{text}");
    }

    #[test]
    fn a_record_with_missing_events_reports_the_gap() {
        let (version, test) = dental();
        let mut events = record(&version, "t", &test, Uuid::new_v4());
        let removed = events.remove(5);
        let replay = replay(&version.config, &events).expect("replays");
        let differences = replay.differences();
        assert!(
            differences.contains(&Difference::Gap {
                expected: removed.seq,
                found: removed.seq + 1
            }),
            "{differences:?}"
        );
    }

    #[test]
    fn a_record_that_does_not_open_is_refused() {
        let (version, test) = dental();
        let mut events = record(&version, "t", &test, Uuid::new_v4());
        events.remove(0);
        assert!(matches!(
            replay(&version.config, &events),
            Err(ReplayError::NotOpened(_))
        ));
    }

    #[test]
    fn inputs_a_test_cannot_express_are_reported() {
        let (version, test) = dental();
        let mut events = record(&version, "t", &test, Uuid::new_v4());
        let tick = Utc
            .with_ymd_and_hms(2025, 3, 3, 0, 0, 5)
            .single()
            .expect("a time");
        let end = events.len() - 1;
        events.insert(
            end,
            CallEvent {
                body: EventBody::Runtime(RuntimeEvent::InputReceived {
                    input: Input::Now(tick),
                    original: None,
                    altered_from: None,
                }),
                ..events[end].clone()
            },
        );
        for (seq, e) in events.iter_mut().enumerate() {
            e.seq = i32::try_from(seq).expect("small");
        }
        let replay = replay(&version.config, &events).expect("replays");
        assert_eq!(replay.differences(), Vec::new());
        let export = export_test(&replay, &version.config).expect("exports");
        assert_eq!(export.skipped.len(), 1, "{:?}", export.skipped);
        assert!(export.skipped[0].contains("clock"), "{:?}", export.skipped);
        assert_eq!(export.test.turns.len(), test.turns.len());
    }
}
