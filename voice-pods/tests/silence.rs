//! A caller who says nothing hears the objective's reprompt after the
//! silence timeout, then its closing line, on the text channel and on a
//! Media Streams call alike; the call ends as `no-response`.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::{Duration, Instant};

use common::*;
use dialtone_voice::pod::Silence;
use dialtone_voice::testkit::{self, TestPod, random_number, random_suffix, seed_dental};

/// Short, so the test is quick; the default is 5–8 s per primitive.
const TIMEOUT: Duration = Duration::from_millis(700);

async fn pod(url: &str) -> TestPod {
    TestPod::start_with(url, Duration::from_secs(5), |settings| {
        settings.silence = Silence::Fixed(TIMEOUT);
    })
    .await
    .unwrap()
}

/// The silence reprompts and the `objectiveFailed` outcome of a closed
/// call's events.
fn silence_record(events: &[(i32, String, serde_json::Value)]) -> (usize, String) {
    let reprompts = events.iter().filter(|e| e.1 == "silenceReprompted").count();
    let closed = &events.last().unwrap().2;
    let outcome = events
        .iter()
        .find(|e| e.1 == "objectiveFailed")
        .map(|e| e.2["outcome"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| format!("no objectiveFailed: {:?} {closed}", types(events)));
    (reprompts, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_text_caller_is_reprompted_then_closed() {
    let Some(url) = testkit::database_or_skip("text silence") else {
        return;
    };
    let pod = pod(&url).await;
    let number = random_number();
    let agent = format!("voice-quiet-{}", random_suffix());
    seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let mut socket = connect(&pod.call_url(&number, "+61400000005")).await;
    let mut t = Transcript::default();
    until_listen(&mut socket, &mut t).await.unwrap();
    let heard_prompt = Instant::now();
    // The caller sends nothing at all; the pod's own timer runs.
    let mut last = None;
    while let Some(m) = next_json(&mut socket).await {
        if m["type"] == "say" {
            t.says.push(m["text"].as_str().unwrap().to_owned());
        }
        last = Some(m);
    }
    let waited = heard_prompt.elapsed();
    let last = last.unwrap();
    assert_eq!(last["type"], "ended", "{t:?}");
    assert_eq!(last["outcome"], "no-response", "{t:?}");
    // Two reprompts and the end: three timeouts.
    assert!(waited >= TIMEOUT * 3, "closed after {waited:?}");
    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_well_formed(&events);
    let (reprompts, outcome) = silence_record(&events);
    assert_eq!((reprompts, outcome.as_str()), (2, "no-response"));
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_phone_caller_is_reprompted_then_closed() {
    let Some(url) = testkit::database_or_skip("media silence") else {
        return;
    };
    let pod = pod(&url).await;
    // A script with no lines: the caller streams silence until hung up on.
    let (report, events) = audio_call_to_dental(&pod, Vec::new()).await;
    assert!(report.agent_hung_up, "{report:?}");
    let (reprompts, outcome) = silence_record(&events);
    assert_eq!(
        (reprompts, outcome.as_str()),
        (2, "no-response"),
        "{report:?}"
    );
    pod.stop().await.unwrap();
}
