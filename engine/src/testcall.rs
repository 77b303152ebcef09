//! Scripted test calls: the smoke test the operator runs against every new
//! config version before activating it, and what `dialtone test` runs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use dialtone_crds::objective::{TestCall, TestTurn};
use serde::Serialize;

use crate::config::CompiledConfig;
use crate::machine::{CallState, Engine, Input, Output};

/// Speech recognition confidence of a scripted utterance without one.
pub const DEFAULT_CONFIDENCE: f32 = 0.95;

/// One turn of a test call as it happened, for reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnRecord {
    /// 1-based turn number; 0 is the agent's opening before any caller input.
    pub turn: usize,
    /// What the caller did, e.g. `say "yes"`.
    pub caller: String,
    /// The agent's outputs in reply.
    pub outputs: Vec<Output>,
    /// The step the call waits in afterwards.
    pub step: String,
}

/// The result of one test call.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    /// The test's name.
    pub name: String,
    /// The objective it ran against.
    pub objective: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// The turn (1-based) where it failed; `None` for a failure at the start
    /// or in the end-of-call expectations.
    pub failed_turn: Option<usize>,
    /// `test "<name>" turn <n>: <what differed>`, when it failed.
    pub message: Option<String>,
    /// The call's outcome label, if it ended.
    pub outcome: Option<String>,
    /// Slots at the end, canonical values.
    pub slots: BTreeMap<String, String>,
    /// Every turn, for reports and debugging.
    pub transcript: Vec<TurnRecord>,
}

/// Monday 2025-03-03 10:00 local time: the default "now" of a test call, so
/// results never depend on the day the tests run.
pub fn default_now(tz: Tz) -> DateTime<Utc> {
    let local = NaiveDate::from_ymd_opt(2025, 3, 3)
        .and_then(|d| d.and_hms_opt(10, 0, 0))
        .unwrap_or_default();
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// The input a scripted turn stands for.
pub fn turn_input(turn: &TestTurn) -> Option<Input> {
    if let Some(text) = &turn.say {
        #[allow(clippy::cast_possible_truncation)] // a confidence in 0..=1 fits an f32
        let confidence = turn
            .confidence
            .map(|c| c as f32)
            .unwrap_or(DEFAULT_CONFIDENCE);
        return Some(Input::Utterance {
            text: text.clone(),
            confidence,
            is_final: true,
        });
    }
    if let Some(digits) = &turn.dtmf {
        return Some(Input::Dtmf {
            digits: digits.clone(),
        });
    }
    if turn.silence == Some(true) {
        return Some(Input::SilenceTimeout);
    }
    if turn.hangup == Some(true) {
        return Some(Input::Hangup);
    }
    None
}

fn describe(turn: &TestTurn) -> String {
    match (&turn.say, &turn.dtmf) {
        (Some(s), _) => format!("say {s:?}"),
        (_, Some(d)) => format!("dtmf {d:?}"),
        _ if turn.silence == Some(true) => "silence".to_owned(),
        _ if turn.hangup == Some(true) => "hang up".to_owned(),
        _ => "nothing".to_owned(),
    }
}

fn slots_of(state: &CallState) -> BTreeMap<String, String> {
    state
        .slots
        .iter()
        .map(|(k, v)| (k.clone(), v.display()))
        .collect()
}

/// Runs one scripted test call of `objective` against `config`.
pub fn run_test_call(config: &CompiledConfig, objective: &str, test: &TestCall) -> TestOutcome {
    let mut result = TestOutcome {
        name: test.name.clone(),
        objective: objective.to_owned(),
        passed: false,
        failed_turn: None,
        message: None,
        outcome: None,
        slots: BTreeMap::new(),
        transcript: Vec::new(),
    };
    let fail = |mut r: TestOutcome, turn: Option<usize>, what: String| {
        let at = turn.map(|t| format!(" turn {t}")).unwrap_or_default();
        r.message = Some(format!("test {:?}{at}: {what}", r.name));
        r.failed_turn = turn;
        r
    };
    let engine = match Engine::with_timezone(config, test.timezone.as_deref()) {
        Ok(e) => e,
        Err(e) => return fail(result, None, e.to_string()),
    };
    let tz: Tz = test
        .timezone
        .as_deref()
        .unwrap_or(&config.tenant.timezone)
        .parse()
        .unwrap_or(Tz::UTC);
    let now = match &test.now {
        None => default_now(tz),
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => return fail(result, None, format!("now {s:?} is not RFC 3339: {e}")),
        },
    };
    let (mut state, outputs) = match engine.start_objective(objective, now) {
        Ok(started) => started,
        Err(e) => return fail(result, None, e.to_string()),
    };
    result.transcript.push(TurnRecord {
        turn: 0,
        caller: String::new(),
        outputs,
        step: engine.step_id(&state).to_owned(),
    });

    for (i, turn) in test.turns.iter().enumerate() {
        let n = i + 1;
        let Some(input) = turn_input(turn) else {
            return fail(
                result,
                Some(n),
                "the turn sets none of say, dtmf, silence or hangup".to_owned(),
            );
        };
        if state.ended() {
            return fail(
                result,
                Some(n),
                format!(
                    "the call already ended ({}) before this turn",
                    state.outcome.as_deref().unwrap_or("?")
                ),
            );
        }
        let (next, outputs) = engine.step(state, &input);
        state = next;
        let step = engine.step_id(&state).to_owned();
        let check = turn
            .expect
            .as_ref()
            .map(|e| check_turn(e, &outputs, &state, &step));
        result.transcript.push(TurnRecord {
            turn: n,
            caller: describe(turn),
            outputs,
            step,
        });
        if let Some(Err(what)) = check {
            result.slots = slots_of(&state);
            result.outcome = state.outcome.clone();
            return fail(result, Some(n), what);
        }
    }

    result.slots = slots_of(&state);
    result.outcome = state.outcome.clone();
    let e = &test.expect;
    if let Some(want) = &e.outcome {
        match &state.outcome {
            None => {
                let what = format!(
                    "expected outcome {want:?}, but the call is still waiting in step {:?}",
                    engine.step_id(&state)
                );
                return fail(result, None, what);
            }
            Some(got) if got != want => {
                return fail(
                    result,
                    None,
                    format!("expected outcome {want:?}, got {got:?}"),
                );
            }
            Some(_) => {}
        }
    }
    if let Err(what) = check_slots(&e.slots, &state) {
        return fail(result, None, what);
    }
    if let Some(want) = &e.transferred_to
        && state.transferred_to.as_ref() != Some(want)
    {
        let got = state.transferred_to.as_deref().unwrap_or("nowhere");
        return fail(
            result,
            None,
            format!("expected a transfer to {want}, got {got}"),
        );
    }
    let all: Vec<&Output> = result
        .transcript
        .iter()
        .flat_map(|t| t.outputs.iter())
        .collect();
    for want in &e.events {
        if !all
            .iter()
            .any(|o| matches!(o, Output::Event(ev) if ev.type_name() == want))
        {
            return fail(
                result,
                None,
                format!("expected a {want} event during the call"),
            );
        }
    }
    result.passed = true;
    result
}

fn check_slots(want: &BTreeMap<String, String>, state: &CallState) -> Result<(), String> {
    for (slot, value) in want {
        match state.slots.get(slot).map(dialtone_capture::Value::display) {
            None => {
                return Err(format!(
                    "expected slot {slot} = {value:?}, but it was not captured"
                ));
            }
            Some(got) if !got.eq_ignore_ascii_case(value) => {
                return Err(format!("expected slot {slot} = {value:?}, got {got:?}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_turn(
    e: &dialtone_crds::objective::TurnExpectation,
    outputs: &[Output],
    state: &CallState,
    step: &str,
) -> Result<(), String> {
    if let Some(want) = &e.step
        && want != step
    {
        return Err(format!(
            "expected the call in step {want:?}, but it is in {step:?}"
        ));
    }
    let said: Vec<&str> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Speak { phrase_id, .. } => Some(phrase_id.as_str()),
            _ => None,
        })
        .collect();
    if !e.says.is_empty()
        && !said.starts_with(&e.says.iter().map(String::as_str).collect::<Vec<_>>())
    {
        return Err(format!(
            "expected the agent to say {:?}, it said {:?}",
            e.says, said
        ));
    }
    check_slots(&e.slots, state)?;
    for want in &e.events {
        if !outputs
            .iter()
            .any(|o| matches!(o, Output::Event(ev) if ev.type_name() == want))
        {
            return Err(format!("expected a {want} event in reply"));
        }
    }
    Ok(())
}
