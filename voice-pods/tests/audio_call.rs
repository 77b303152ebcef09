//! A phone call that hears and speaks with no vendor account: a scripted
//! caller talks in audio (espeak-ng, real-time 20 ms µ-law frames over
//! Media Streams, a signed webhook) to a voice pod whose Agent uses the
//! builtin providers, and books an appointment. The outcome and the slots
//! are read back from the call's events. Needs espeak-ng and PocketSphinx
//! (`cargo xtask test` installs them) and PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::Duration;

use common::*;
use dialtone_voice::audio_caller::Line;
use dialtone_voice::testkit::{self, TestPod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_caller_books_an_appointment_with_builtin_speech() {
    let Some(url) = testkit::database_or_skip("audio call") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let say = |text: &str| Line::Say(text.to_owned());
    let script = vec![
        say("a check up and clean please"),
        say("peter brown"),
        Line::Keys("0412345678#".to_owned()),
        say("yes"),
        say("next monday at ten in the morning"),
        say("yes"),
    ];
    let (report, events) = audio_call_to_dental(&pod, script).await;
    let heard: Vec<String> = events
        .iter()
        .filter(|e| e.1 == "inputReceived")
        .map(|e| e.2["input"].to_string())
        .collect();
    let slots: std::collections::BTreeMap<String, serde_json::Value> = events
        .iter()
        .filter(|e| e.1 == "slotCaptured")
        .map(|e| {
            (
                e.2["slot"].as_str().unwrap_or_default().to_owned(),
                e.2["value"].clone(),
            )
        })
        .collect();
    let completed: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.1 == "objectiveCompleted")
        .map(|e| &e.2)
        .collect();
    let summary = format!(
        "caller: {report:#?}\npod heard: {heard:#?}\nslots: {slots:?}\ncompleted: {completed:?}"
    );
    println!("{summary}");
    assert_eq!(completed.len(), 1, "{summary}");
    assert_eq!(completed[0]["outcome"], "booked", "{summary}");
    assert_eq!(slots["service"], "check-up and clean", "{summary}");
    assert_eq!(slots["name"], "Peter Brown", "{summary}");
    assert_eq!(slots["phone"], "+61412345678", "{summary}");
    assert!(slots.contains_key("appointment"), "{summary}");
    assert!(
        report.agent_hung_up,
        "the agent ends the call after booking: {summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talking_over_the_greeting_stops_it_and_is_heard() {
    let Some(url) = testkit::database_or_skip("audio barge-in") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let script = vec![
        Line::Interrupt("a check up and clean please".to_owned()),
        Line::Say("peter brown".to_owned()),
    ];
    let (report, events) = audio_call_to_dental(&pod, script).await;
    let first = &report.exchanges[0];
    let barge_in = first
        .barge_in_ms
        .unwrap_or_else(|| panic!("the greeting was not cleared: {report:#?}"));
    println!("clear {barge_in} ms after the caller began talking over the greeting");
    // The endpointer needs 60 ms of speech; the rest is the line.
    assert!(barge_in <= 150, "clear after {barge_in} ms: {report:#?}");

    let kinds = types(&events);
    assert!(kinds.contains(&"bargeIn"), "{kinds:?}");
    // What was said over the greeting still answers its question.
    let service = events
        .iter()
        .find(|e| e.1 == "slotCaptured" && e.2["slot"] == "service")
        .map(|e| e.2["value"].clone());
    assert_eq!(
        service,
        Some(serde_json::json!("check-up and clean")),
        "{kinds:?}"
    );
}
