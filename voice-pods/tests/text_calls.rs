//! The `/v1/calls` text channel end to end against PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::Duration;

use common::*;
use dialtone_spine::call_tokens;
use dialtone_voice::testkit::{
    self, CALLS_TOKEN, DENTAL_TENANT, TestPod, random_number, random_suffix, seed_dental,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_call_books_the_dental_appointment_and_records_it_in_order() {
    let Some(url) = testkit::database_or_skip("text call") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-text-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();

    let mut socket = connect(&pod.call_url(&number, "+61400000001")).await;
    let mut t = Transcript::default();
    cooperate(&mut socket, &mut t).await;
    assert_eq!(t.outcome.as_deref(), Some("booked"), "{t:?}");
    assert_eq!(t.completed, Some(true));
    assert!(t.says[0].contains("Harbour Dental"), "{t:?}");
    assert_eq!(t.listens[0], "choice");

    let call_id: Uuid = t.call_id.parse().unwrap();
    let events = closed_events(pod.pool(), call_id).await;
    assert_well_formed(&events);
    let kinds = types(&events);
    assert_eq!(kinds[1], "callStarted", "start outputs follow callOpened");
    for wanted in [
        "inputReceived",
        "agentSpoke",
        "listening",
        "slotCaptured",
        "appointmentRequested",
        "objectiveCompleted",
        "callEnded",
        "turnMeasured",
    ] {
        assert!(kinds.contains(&wanted), "{wanted} missing from {kinds:?}");
    }
    let opened = &events[0].2;
    assert_eq!(opened["channel"], "text");
    assert_eq!(opened["configVersion"], seeded.version.hash.as_str());
    assert_eq!(opened["callee"], number.as_str());
    assert_eq!(opened["caller"], "+61400000001");
    let closed = &events.last().unwrap().2;
    assert_eq!(closed["reason"], "ended");
    let inputs = kinds.iter().filter(|k| **k == "inputReceived").count();
    assert_eq!(inputs, t.listens.len(), "one input per answered listen");
    // Every reply to an utterance was timed.
    let turns = kinds.iter().filter(|k| **k == "turnMeasured").count();
    assert_eq!(turns, inputs);

    // The projection saw the same call.
    let (outcome, version): (Option<String>, String) =
        sqlx::query_as("SELECT outcome, config_version FROM calls WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(pod.pool())
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("booked"));
    assert_eq!(version, seeded.version.hash);

    let metrics = &pod.pod.metrics;
    assert_eq!(
        metrics.calls_closed(&seeded.version.config.tenant.name, "ended"),
        1
    );
    assert_eq!(metrics.active_calls(), 0);
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_keeps_its_version_when_the_route_moves_mid_call() {
    let Some(url) = testkit::database_or_skip("pinned version") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-pin-{}", random_suffix());
    let first = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();

    let mut socket = connect(&pod.call_url(&number, "+61400000002")).await;
    let mut t = Transcript::default();
    let listen = until_listen(&mut socket, &mut t).await.unwrap();

    // A new version is activated for the number while the call runs.
    let second = seed_dental(pod.pool(), &agent, &number, "Noah")
        .await
        .unwrap();
    assert_ne!(first.version.hash, second.version.hash);

    send(
        &mut socket,
        answer(listen["expect"].as_str().unwrap(), &["filling".to_owned()]),
    )
    .await;
    cooperate(&mut socket, &mut t).await;
    assert_eq!(t.outcome.as_deref(), Some("booked"));
    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_eq!(events[0].2["configVersion"], first.version.hash.as_str());
    assert!(t.says.iter().any(|s| s.contains("Mia")));
    assert!(!t.says.iter().any(|s| s.contains("Noah")), "{t:?}");

    // The next call uses the new version.
    let mut socket = connect(&pod.call_url(&number, "+61400000002")).await;
    let mut next = Transcript::default();
    until_listen(&mut socket, &mut next).await.unwrap();
    assert!(next.says[0].contains("Noah"), "{next:?}");
    send(&mut socket, serde_json::json!({"type": "hangup"})).await;
    let events = closed_events(pod.pool(), next.call_id.parse().unwrap()).await;
    assert_well_formed(&events);
    assert_eq!(events.last().unwrap().2["reason"], "hangup");
    assert_eq!(events[0].2["configVersion"], second.version.hash.as_str());
    first.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_call_to_an_unknown_number_is_refused() {
    let Some(url) = testkit::database_or_skip("unknown number") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    testkit::issue_calls_token(pod.pool()).await.unwrap();
    let err = tokio_tungstenite::connect_async(pod.call_url(&random_number(), "+61400000003"))
        .await
        .expect_err("no agent answers");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected HTTP 404, got {other:?}"),
    }
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_silence_and_bad_messages_follow_the_same_call_path() {
    let Some(url) = testkit::database_or_skip("barge-in") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-barge-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let mut socket = connect(&pod.call_url(&number, "+61400000004")).await;
    let mut t = Transcript::default();
    until_listen(&mut socket, &mut t).await.unwrap();

    send(&mut socket, serde_json::json!({"type": "bargeIn"})).await;
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "stop");
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "listen");

    send(&mut socket, serde_json::json!({"type": "dance"})).await;
    assert_eq!(next_json(&mut socket).await.unwrap()["type"], "error");

    // The dental objective ends after the third silence.
    for _ in 0..3 {
        send(&mut socket, serde_json::json!({"type": "silence"})).await;
    }
    let mut last = None;
    while let Some(m) = next_json(&mut socket).await {
        last = Some(m);
    }
    let last = last.unwrap();
    assert_eq!(last["type"], "ended");
    assert_eq!(last["outcome"], "no-response");
    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_well_formed(&events);
    let kinds = types(&events);
    for wanted in [
        "bargeIn",
        "speechStopped",
        "silenceReprompted",
        "objectiveFailed",
    ] {
        assert!(kinds.contains(&wanted), "{wanted} missing from {kinds:?}");
    }
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_classifier_maps_only_what_the_parsers_cannot_read() {
    let Some(url) = testkit::database_or_skip("classifier") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-llm-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let mut socket = connect(&pod.call_url(&number, "+61400000006")).await;
    let mut t = Transcript::default();
    until_listen(&mut socket, &mut t).await.unwrap();
    // Two options heard: the choice parser is unsure, so the (builtin)
    // classifier picks one and the engine gets that option.
    let words = "filling please um actually check-up and clean";
    send(
        &mut socket,
        serde_json::json!({"type": "utterance", "text": words}),
    )
    .await;
    let listen = until_listen(&mut socket, &mut t).await.unwrap();
    assert_eq!(listen["expect"], "name", "{t:?}");
    // A name is not a choice: no classifier, whatever the words.
    send(
        &mut socket,
        serde_json::json!({"type": "utterance", "text": "Jane Citizen"}),
    )
    .await;
    until_listen(&mut socket, &mut t).await.unwrap();
    send(&mut socket, serde_json::json!({"type": "hangup"})).await;

    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    let inputs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.1 == "inputReceived")
        .map(|e| &e.2)
        .collect();
    assert_eq!(inputs[0]["input"]["text"], "check-up and clean");
    assert_eq!(inputs[0]["original"], words);
    assert_eq!(inputs[1]["input"]["text"], "Jane Citizen");
    assert!(inputs[1].get("original").is_none());
    let captured = events.iter().find(|e| e.1 == "slotCaptured").unwrap();
    assert_eq!(captured.2["value"], "check-up and clean");
    // The builtin classifier uses no tokens, so it accrues no cost.
    assert!(
        !events
            .iter()
            .any(|e| e.1 == "costAccrued" && e.2["component"] == "llm")
    );
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_from_the_caller_leaves_no_hole_in_the_call() {
    let Some(url) = testkit::database_or_skip("nul") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-nul-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    // `%00` in the query: the caller's number holds a NUL too.
    let mut socket = connect(&pod.call_url(&number, "+61400000%0007")).await;
    let mut t = Transcript::default();
    until_listen(&mut socket, &mut t).await.unwrap();
    send(
        &mut socket,
        serde_json::json!({"type": "utterance", "text": "filling"}),
    )
    .await;
    let listen = until_listen(&mut socket, &mut t).await.unwrap();
    assert_eq!(listen["expect"], "name", "{t:?}");
    send(
        &mut socket,
        serde_json::json!({"type": "utterance", "text": "Jane\u{0} Citizen"}),
    )
    .await;
    until_listen(&mut socket, &mut t).await.unwrap();
    send(&mut socket, serde_json::json!({"type": "hangup"})).await;

    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_well_formed(&events);
    assert_eq!(events[0].2["caller"], "+61400000\u{FFFD}07");
    let named = events
        .iter()
        .find(|e| e.1 == "inputReceived" && e.2["input"]["text"] == "Jane\u{FFFD} Citizen")
        .unwrap_or_else(|| panic!("the name as fed to the engine: {events:?}"));
    // The exact words are kept, escaped.
    let exact: String = serde_json::from_str(named.2["alteredFrom"].as_str().unwrap()).unwrap();
    assert_eq!(exact, "Jane\u{0} Citizen");
    let stats = pod.pod.events.stats();
    assert_eq!(stats.rejected.load(std::sync::atomic::Ordering::Relaxed), 0);
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

/// The HTTP status a `/v1/calls` upgrade gets (101 when it opens).
async fn upgrade_status(url: &str, bearer: Option<&str>) -> u16 {
    let mut request = url.into_client_request().unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, response)) => {
            let _ = socket.close(None).await;
            response.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(other) => panic!("{url}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_call_needs_a_token_of_the_numbers_tenant() {
    let Some(url) = testkit::database_or_skip("call tokens") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-token-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let bare = format!(
        "ws://{}/v1/calls?to={}&from=%2B61400000007",
        pod.addr,
        number.replace('+', "%2B")
    );
    let now = chrono::Utc::now().timestamp();
    // Nothing, a guess, the tenant token in the URL, an expired widget.
    assert_eq!(upgrade_status(&bare, None).await, 401);
    assert_eq!(upgrade_status(&bare, Some("dtc_guessed")).await, 401);
    assert_eq!(
        upgrade_status(&format!("{bare}&token={CALLS_TOKEN}"), None).await,
        401
    );
    let stale = call_tokens::mint_widget(CALLS_TOKEN, DENTAL_TENANT, now - 1);
    assert_eq!(
        upgrade_status(&format!("{bare}&token={stale}"), None).await,
        401
    );
    // A widget naming the tenant but minted with another tenant's token.
    let other_token = call_tokens::new_tenant_token();
    let other = format!("other-{}", random_suffix());
    call_tokens::issue(
        pod.pool(),
        &other,
        &call_tokens::digest(&other_token),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let forged = call_tokens::mint_widget(&other_token, DENTAL_TENANT, now + 600);
    assert_eq!(
        upgrade_status(&format!("{bare}&token={forged}"), None).await,
        401
    );
    assert_eq!(pod.pod.metrics.rejections("calls-token"), 5);
    // Another tenant's valid token does not reach this tenant's number: it
    // looks like a number that routes nowhere.
    assert_eq!(upgrade_status(&bare, Some(&other_token)).await, 404);
    let theirs = call_tokens::mint_widget(&other_token, &other, now + 600);
    assert_eq!(
        upgrade_status(&format!("{bare}&token={theirs}"), None).await,
        404
    );

    // The tenant's own token in the header, or its widget in the URL.
    assert_eq!(upgrade_status(&bare, Some(CALLS_TOKEN)).await, 101);
    assert_eq!(
        upgrade_status(&pod.call_url(&number, "+61400000007"), None).await,
        101
    );
    call_tokens::revoke_tenant(pod.pool(), &other)
        .await
        .unwrap();
    assert_eq!(upgrade_status(&bare, Some(&other_token)).await, 401);
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}
