//! Behaviour of validation, compilation, the state machine and test calls,
//! on a small realistic fixture.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use dialtone_crds::{Agent, ClusterProvider, Objective, Provider, Tenant};
use dialtone_engine::{
    CompileInput, Engine, ErrorKind, Event, Input, Output, compile, load_version, run_test_call,
    validate_objective,
};

const TENANT: &str = r#"
apiVersion: dialtone.io/v1alpha1
kind: Tenant
metadata: {name: harbour-dental}
spec:
  displayName: Harbour Dental
  namespace: tenant-harbour-dental
  profile:
    timezone: Australia/Sydney
    locale: en-AU
    businessHours:
      - {days: [Monday, Tuesday, Wednesday, Thursday, Friday], open: "08:00", close: "17:00"}
  escalationContacts:
    - {name: the practice manager, phone: "+61291234567", role: manager}
"#;

const AGENT: &str = r#"
apiVersion: dialtone.io/v1alpha1
kind: Agent
metadata: {name: reception, namespace: tenant-harbour-dental}
spec:
  displayName: Mia
  persona: professional
  objectives: [{name: booking}]
  providers:
    telephony: {name: twilio}
  phoneNumbers: [{number: "+61290001234"}]
"#;

const PROVIDER: &str = r#"
apiVersion: dialtone.io/v1alpha1
kind: Provider
metadata: {name: twilio, namespace: tenant-harbour-dental}
spec:
  type: telephony
  vendor: twilio
  credentialsSecretRef: {name: twilio-credentials}
  pricing: {perMinuteUsd: 0.013}
"#;

const OBJECTIVE: &str = r#"
apiVersion: dialtone.io/v1alpha1
kind: Objective
metadata: {name: booking, namespace: tenant-harbour-dental}
spec:
  start: greet
  steps:
    - id: greet
      kind: say
      say: {phrase: greeting}
      next: ask-phone
    - id: ask-phone
      kind: capture
      capture: {slot: phone, primitive: phone, confirm: always, maxAttempts: 2}
      next: ask-emergency
    - id: ask-emergency
      kind: capture
      capture: {slot: emergency, primitive: yesNo, prompt: ask.emergency, confirm: never}
      next: triage
    - id: triage
      kind: route
      route:
        branches:
          - when: {slot: emergency, equals: "yes"}
            next: to-human
        default: book
    - id: book
      kind: book
      book: {slots: [phone], service: check-up}
      next: done
    - id: to-human
      kind: transfer
      transfer: {contact: manager, mode: warm, reason: dental emergency}
    - id: done
      kind: end
      end: {outcome: booked}
  tests:
    - name: books after confirming the number
      turns:
        - say: "oh four one two three four five six seven eight"
          expect: {step: ask-phone, says: [confirm]}
        - say: "yes"
          expect: {step: ask-emergency, slots: {phone: "+61412345678"}}
        - say: "no"
      expect: {outcome: booked, slots: {phone: "+61412345678"}, events: [appointmentRequested]}
"#;

fn tenant() -> Tenant {
    serde_yaml::from_str(TENANT).expect("tenant")
}
fn agent() -> Agent {
    serde_yaml::from_str(AGENT).expect("agent")
}
fn provider() -> Provider {
    serde_yaml::from_str(PROVIDER).expect("provider")
}
fn objective(yaml: &str) -> Objective {
    serde_yaml::from_str(yaml).expect("objective")
}

fn compile_with(obj: &Objective) -> dialtone_engine::ConfigVersion {
    let (t, a, p) = (tenant(), agent(), provider());
    let input = CompileInput {
        agent: &a,
        tenant: &t,
        objectives: vec![obj],
        providers: vec![&p],
        cluster_providers: Vec::<&ClusterProvider>::new(),
    };
    compile(&input).expect("compiles")
}

fn monday_10am() -> DateTime<Utc> {
    // 10:00 in Sydney (UTC+11 in March).
    Utc.with_ymd_and_hms(2025, 3, 2, 23, 0, 0)
        .single()
        .expect("time")
}

fn say(text: &str) -> Input {
    Input::Utterance {
        text: text.to_owned(),
        confidence: 0.95,
        is_final: true,
    }
}

fn phrases(outputs: &[Output]) -> Vec<&str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Speak { phrase_id, .. } => Some(phrase_id.as_str()),
            _ => None,
        })
        .collect()
}

fn events(outputs: &[Output]) -> Vec<&'static str> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.type_name()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cycle_is_named_and_every_error_is_reported_at_once() {
    let spec = objective(
        r#"
metadata: {name: broken}
spec:
  start: a
  steps:
    - {id: a, kind: say, say: {phrase: greeting}, next: b}
    - {id: b, kind: say, say: {phrase: hold}, next: a}
    - {id: lonely, kind: end, end: {outcome: done}}
    - {id: lonely, kind: end, end: {outcome: again}}
    - {id: c, kind: say, say: {phrase: no-such-phrase}, next: nowhere}
"#,
    )
    .spec;
    let errors = validate_objective(&spec, None).expect_err("invalid");
    let by_kind = |k: ErrorKind| errors.iter().filter(|e| e.kind == k).collect::<Vec<_>>();
    let cycle = by_kind(ErrorKind::Cycle);
    assert_eq!(cycle.len(), 1, "{errors:?}");
    assert_eq!(
        cycle[0].message,
        "cycle a → b → a: objectives must be acyclic"
    );
    assert_eq!(cycle[0].path, "spec.steps[1].next");
    assert_eq!(
        by_kind(ErrorKind::DuplicateStep)[0].path,
        "spec.steps[3].id"
    );
    assert_eq!(
        by_kind(ErrorKind::UnknownStep)[0].path,
        "spec.steps[4].next"
    );
    assert_eq!(
        by_kind(ErrorKind::UnknownPhrase)[0].path,
        "spec.steps[4].say.phrase"
    );
    let unreachable: Vec<_> = by_kind(ErrorKind::Unreachable)
        .iter()
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(unreachable, ["spec.steps[2]", "spec.steps[4]"]);
}

#[test]
fn slots_must_be_captured_on_every_path_before_use() {
    let spec = objective(
        r#"
metadata: {name: flow}
spec:
  start: ask
  steps:
    - {id: ask, kind: capture, capture: {slot: urgent, primitive: yesNo}, next: split}
    - id: split
      kind: route
      route:
        branches: [{when: {slot: urgent, equals: "yes"}, next: get-phone}]
        default: book
    - {id: get-phone, kind: capture, capture: {slot: phone, primitive: phone, validation: {pattern: "^(+61"}}, next: book}
    - {id: book, kind: book, book: {slots: [phone, email]}, next: done}
    - {id: done, kind: end, end: {outcome: done}}
"#,
    )
    .spec;
    let errors = validate_objective(&spec, None).expect_err("invalid");
    let paths: Vec<(&str, ErrorKind)> = errors.iter().map(|e| (e.path.as_str(), e.kind)).collect();
    assert!(
        paths.contains(&("spec.steps[3].book.slots[0]", ErrorKind::SlotNotCaptured)),
        "{errors:#?}"
    );
    assert!(paths.contains(&("spec.steps[3].book.slots[1]", ErrorKind::SlotNotCaptured)));
    assert!(paths.contains(&(
        "spec.steps[2].capture.validation.pattern",
        ErrorKind::InvalidRule
    )));
    let never = errors
        .iter()
        .find(|e| e.path == "spec.steps[3].book.slots[1]")
        .expect("email");
    assert!(
        never.message.contains("never captured"),
        "{}",
        never.message
    );
}

#[test]
fn a_transfer_with_nowhere_to_go_is_rejected_with_the_tenant_known() {
    let spec = objective(
        r#"
metadata: {name: t}
spec:
  template: route-to-human
"#,
    )
    .spec;
    assert!(
        validate_objective(&spec, None).is_ok(),
        "without a tenant the target is checked at compile time"
    );
    let mut t = tenant();
    t.spec.escalation_contacts.clear();
    let errors = validate_objective(&spec, Some(&t.spec)).expect_err("no target");
    assert_eq!(errors[0].kind, ErrorKind::NoTransferTarget);
    assert_eq!(
        errors[0].path,
        "spec.template(route-to-human).steps[1].transfer"
    );
}

#[test]
fn every_template_validates_and_reports_its_summary() {
    for t in [
        "lead-capture",
        "appointment-booking",
        "support-triage",
        "route-to-human",
    ] {
        let spec = objective(&format!("metadata: {{name: x}}\nspec: {{template: {t}}}\n")).spec;
        let valid = validate_objective(&spec, Some(&tenant().spec))
            .unwrap_or_else(|e| panic!("{t}: {e:?}"));
        assert_eq!(valid.summary.template.as_deref(), Some(t));
        assert!(valid.summary.steps >= 2);
    }
}

#[test]
fn the_hash_ignores_order_whitespace_and_defaults_but_not_behaviour() {
    let base = compile_with(&objective(OBJECTIVE));
    // Same objective with steps reordered, defaults written out, other spacing.
    let reordered = OBJECTIVE
        .replace(
            "capture: {slot: phone, primitive: phone, confirm: always, maxAttempts: 2}",
            "capture: {maxAttempts: 2, confirm: always, primitive: phone, slot: phone, required: true, onFailure: transfer, prompt: ask.phone}",
        )
        .replace("      end: {outcome: booked}", "      end:   {outcome: booked, success: true, phrase: goodbye}");
    let mut obj = objective(&reordered);
    obj.spec.steps.reverse();
    let same = compile_with(&obj);
    assert_eq!(base.hash, same.hash);
    assert_eq!(base.canonical_json, same.canonical_json);

    let changed = compile_with(&objective(
        &OBJECTIVE.replace("maxAttempts: 2", "maxAttempts: 3"),
    ));
    assert_ne!(base.hash, changed.hash);

    assert!(base.hash.starts_with("sha256:") && base.hash.len() == 71);
    assert!(
        !base.canonical_json.contains("twilio-credentials"),
        "secrets never reach a config"
    );
    assert!(!base.canonical_json.contains(' ') || base.canonical_json.contains("Harbour Dental"));
    let loaded = load_version(&base.hash, &base.canonical_json).expect("loads");
    assert_eq!(loaded, base.config);
    assert!(load_version(&base.hash, &base.canonical_json.replace("booked", "booker")).is_err());
}

#[test]
fn compile_names_missing_references() {
    let (t, mut a) = (tenant(), agent());
    a.spec.objectives.push(dialtone_crds::agent::ObjectiveRef {
        name: "missing".into(),
    });
    let obj = objective(OBJECTIVE);
    let input = CompileInput {
        agent: &a,
        tenant: &t,
        objectives: vec![&obj],
        providers: vec![],
        cluster_providers: vec![],
    };
    let errors = compile(&input).expect_err("fails").0;
    let reasons: Vec<_> = errors
        .iter()
        .map(|e| (e.kind.reason(), e.path.as_str()))
        .collect();
    assert!(
        reasons.contains(&("ObjectiveNotFound", "spec.objectives[1].name")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&("ProviderNotFound", "spec.providers.telephony")),
        "{reasons:?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.resource == "Agent/tenant-harbour-dental/reception")
    );
}

#[test]
fn a_call_confirms_critical_data_and_books() {
    let version = compile_with(&objective(OBJECTIVE));
    let engine = Engine::new(&version.config).expect("engine");
    let (state, out) = engine.start(monday_10am());
    assert_eq!(phrases(&out), ["greeting", "ask.phone"]);
    assert!(out.iter().any(|o| matches!(o, Output::Speak { text, .. } if text == "Thanks for calling Harbour Dental, this is Mia.")));
    let (state, out) = engine.step(
        state,
        &say("oh four one two three four five six seven eight"),
    );
    assert_eq!(
        phrases(&out),
        ["confirm"],
        "phone numbers are always read back"
    );
    let (state, out) = engine.step(state, &say("yep"));
    assert_eq!(events(&out)[..2], ["slotConfirmed", "slotCaptured"]);
    assert_eq!(phrases(&out), ["ask.emergency"]);
    let (state, out) = engine.step(state, &say("no"));
    assert!(state.ended());
    assert_eq!(state.outcome.as_deref(), Some("booked"));
    let booked = out.iter().find_map(|o| match o {
        Output::Event(Event::AppointmentRequested { slots, service, .. }) => {
            Some((slots.clone(), service.clone()))
        }
        _ => None,
    });
    let expected: BTreeMap<String, String> =
        [("phone".to_owned(), "+61412345678".to_owned())].into();
    assert_eq!(booked, Some((expected, Some("check-up".to_owned()))));
    assert!(matches!(out.last(), Some(Output::End { outcome }) if outcome == "booked"));
}

#[test]
fn repairs_change_wording_and_attempts_are_bounded() {
    let version = compile_with(&objective(OBJECTIVE));
    let engine = Engine::new(&version.config).expect("engine");
    let (state, _) = engine.start(monday_10am());
    let (state, out) = engine.step(state, &say("purple monkey dishwasher"));
    assert_eq!(phrases(&out), ["repair.phone.1"]);
    assert_eq!(events(&out), ["repairAttempted"]);
    let (state, out) = engine.step(state, &say("banana"));
    // maxAttempts 2: the second failure gives up and escalates (warm).
    assert_eq!(
        events(&out),
        [
            "repairAttempted",
            "captureFailed",
            "escalation",
            "objectiveFailed"
        ]
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Transfer { to, .. } if to == "+61291234567"))
    );
    assert_eq!(state.transferred_to.as_deref(), Some("+61291234567"));
}

#[test]
fn an_emergency_routes_to_the_named_contact() {
    let version = compile_with(&objective(OBJECTIVE));
    let engine = Engine::new(&version.config).expect("engine");
    let (state, _) = engine.start(monday_10am());
    let (state, _) = engine.step(
        state,
        &Input::Dtmf {
            digits: "0412345678#".into(),
        },
    );
    let (state, _) = engine.step(state, &Input::Dtmf { digits: "1".into() });
    let (state, out) = engine.step(state, &say("yes"));
    assert_eq!(phrases(&out), ["transfer.warm"]);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Speak { text, .. } if text.contains("the practice manager"))
        )
    );
    assert_eq!(state.outcome.as_deref(), Some("transferred"));
    assert!(events(&out).contains(&"objectiveCompleted"));
}

#[test]
fn silence_reprompts_then_ends_and_barge_in_stops_speech() {
    let version = compile_with(&objective(OBJECTIVE));
    let engine = Engine::new(&version.config).expect("engine");
    let (state, _) = engine.start(monday_10am());
    let (state, out) = engine.step(state, &Input::BargeIn);
    assert_eq!(out[0], Output::StopSpeaking);
    assert!(matches!(out.last(), Some(Output::Listen { step, .. }) if step == "ask-phone"));
    let (state, out) = engine.step(state, &Input::BargeIn);
    assert!(out.is_empty(), "nothing to stop once speech stopped");
    let (state, out) = engine.step(state, &Input::SilenceTimeout);
    assert_eq!(phrases(&out), ["reprompt", "ask.phone"]);
    let (state, _) = engine.step(state, &Input::SilenceTimeout);
    let (state, out) = engine.step(state, &Input::SilenceTimeout);
    assert_eq!(phrases(&out), ["no-response"]);
    assert_eq!(state.outcome.as_deref(), Some("no-response"));
    let (_, out) = engine.step(state, &say("hello?"));
    assert!(out.is_empty(), "inputs after the end change nothing");
}

#[test]
fn the_same_inputs_give_the_same_outputs() {
    let version = compile_with(&objective(OBJECTIVE));
    let engine = Engine::new(&version.config).expect("engine");
    let inputs = [
        say("oh four one two three four five six seven eight"),
        Input::SilenceTimeout,
        say("no it's 0413 999 888"),
        say("yes"),
        say("no"),
    ];
    let run = || {
        let (mut state, mut all) = engine.start(monday_10am());
        for i in &inputs {
            let (next, out) = engine.step(state, i);
            state = next;
            all.extend(out);
        }
        (serde_json::to_string(&all).expect("json"), state)
    };
    let (a, sa) = run();
    let (b, sb) = run();
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_eq!(
        sa.slots.get("phone").map(|v| v.display()).as_deref(),
        Some("+61413999888")
    );
}

#[test]
fn scripted_test_calls_pass_and_fail_with_the_turn() {
    let obj = objective(OBJECTIVE);
    let version = compile_with(&obj);
    let outcome = run_test_call(&version.config, "booking", &obj.spec.tests[0]);
    assert!(outcome.passed, "{:?}", outcome.message);

    let mut broken = obj.spec.tests[0].clone();
    broken.turns[1].expect.as_mut().expect("expect").step = Some("triage".into());
    let outcome = run_test_call(&version.config, "booking", &broken);
    assert!(!outcome.passed);
    assert_eq!(outcome.failed_turn, Some(2));
    assert_eq!(
        outcome.message.as_deref(),
        Some(
            "test \"books after confirming the number\" turn 2: expected the call in step \"triage\", but it is in \"ask-emergency\""
        )
    );
}
