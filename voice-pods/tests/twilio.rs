//! Twilio ingress end to end: the signed voice webhook and a Media Streams
//! session, against PostgreSQL.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use dialtone_providers::twilio::signature;
use dialtone_spine::routes;
use dialtone_voice::testkit::{
    self, AUTH_TOKEN, DEFAULT_TOKEN, TestPod, random_number, random_suffix, seed_dental,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_webhook_answers_only_signed_requests() {
    let Some(url) = testkit::database_or_skip("voice webhook") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-hook-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    let p = params(&number, "CAsigned");

    let (status, body) = post(&pod, form(&p), None).await;
    assert_eq!((status, body.as_str()), (403, ""));
    assert_eq!(pod.pod.metrics.rejections("missing"), 1);

    let wrong = signature("not-the-token", &signed_url, &p);
    let (status, body) = post(&pod, form(&p), Some(&wrong)).await;
    assert_eq!((status, body.as_str()), (403, ""));
    // Tampering with a signed request breaks its signature.
    let good = signature(AUTH_TOKEN, &signed_url, &p);
    let mut tampered = p.clone();
    tampered[2].1 = "+61400000666".to_owned();
    let (status, _) = post(&pod, form(&tampered), Some(&good)).await;
    assert_eq!(status, 403);
    assert_eq!(pod.pod.metrics.rejections("invalid"), 2);

    let (status, twiml) = post(&pod, form(&p), Some(&good)).await;
    assert_eq!(status, 200, "{twiml}");
    let (url, claims) = stream_of(&twiml);
    assert!(
        url.starts_with(&format!("ws://{}/twilio/media/", pod.addr)),
        "{url}"
    );
    assert_eq!(claims.config_version, seeded.version.hash);
    assert_eq!(claims.caller, "+61400000009");
    assert_eq!(claims.callee, number);
    assert_eq!(claims.call_sid, "CAsigned");
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_number_hears_a_message_and_a_hang_up() {
    let Some(url) = testkit::database_or_skip("unknown number webhook") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let p = params(&random_number(), "CAunknown");
    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    // Only the platform's default account can vouch for a number that
    // routes nowhere.
    let tenant_signed = signature(AUTH_TOKEN, &signed_url, &p);
    assert_eq!(post(&pod, form(&p), Some(&tenant_signed)).await.0, 403);
    let (status, twiml) = post(
        &pod,
        form(&p),
        Some(&signature(DEFAULT_TOKEN, &signed_url, &p)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>Sorry, this number is not in service."),
        "{twiml}"
    );
    assert!(twiml.ends_with("<Hangup/></Response>"), "{twiml}");
    assert!(!twiml.contains("<Stream"));
    pod.stop().await.unwrap();
}

/// Reads Media Streams messages until `want` arrives, echoing marks when
/// `echo` (as Twilio does once playback reaches them); returns the media
/// frames seen on the way.
async fn read_until(socket: &mut Socket, want: &str, echo: bool) -> (usize, serde_json::Value) {
    let mut frames = 0;
    loop {
        let m = next_json(socket)
            .await
            .unwrap_or_else(|| panic!("closed before {want}"));
        let event = m["event"].as_str().unwrap().to_owned();
        if event == "media" {
            let audio = STANDARD
                .decode(m["media"]["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(audio.len(), 160, "20 ms frames");
            assert_eq!(m["streamSid"], "MZtest");
            frames += 1;
        }
        if event == "mark" && echo {
            send(
                socket,
                json!({"event": "mark", "streamSid": "MZtest", "mark": m["mark"]}),
            )
            .await;
        }
        if event == want {
            return (frames, m);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_stream_call_plays_audio_takes_keys_and_records_everything() {
    let Some(url) = testkit::database_or_skip("media stream") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-media-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    let p = params(&number, "CAmedia");
    let (status, twiml) = post(
        &pod,
        form(&p),
        Some(&signature(AUTH_TOKEN, &signed_url, &p)),
    )
    .await;
    assert_eq!(status, 200);
    let (stream_url, _) = stream_of(&twiml);

    // Without a ticket the pod's secret opens, no WebSocket is opened.
    let base = format!("ws://{}/twilio/media", pod.addr);
    for forged in [
        format!("{base}/forged"),
        base.clone(),
        format!("{base}/{}", "A".repeat(4_000)),
    ] {
        match tokio_tungstenite::connect_async(&forged).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert!(
                    matches!(r.status().as_u16(), 401 | 404),
                    "{forged}: {}",
                    r.status()
                );
            }
            other => panic!("{forged} must be refused before the upgrade, got {other:?}"),
        }
    }
    assert_eq!(pod.pod.metrics.rejections("stream-token"), 2);

    let mut socket = connect(&stream_url).await;
    // A ticket opens one stream: a copy of it is refused.
    match tokio_tungstenite::connect_async(&stream_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a replayed ticket must be refused, got {other:?}"),
    }
    assert_eq!(pod.pod.metrics.rejections("stream-replay"), 1);
    send(
        &mut socket,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
    )
    .await;
    send(
        &mut socket,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZtest", "start": {
            "accountSid": "ACtest", "streamSid": "MZtest", "callSid": "CAmedia",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"configVersion": "sha256:ignored"},
        }}),
    )
    .await;
    // The greeting plays; a key pressed during it barges in.
    let (frames, _) = read_until(&mut socket, "mark", false).await;
    assert!(frames > 10, "the greeting is audio: {frames} frames");
    send(&mut socket, json!({"event": "dtmf", "streamSid": "MZtest", "dtmf": {"track": "inbound_track", "digit": "2"}})).await;
    read_until(&mut socket, "clear", false).await;
    // "2" picks the second service; the agent asks for a name.
    let (frames, _) = read_until(&mut socket, "mark", true).await;
    assert!(frames > 10, "the next question is audio");
    for _ in 0..5 {
        let silence = STANDARD.encode([0xFFu8; 160]);
        send(&mut socket, json!({"event": "media", "streamSid": "MZtest", "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": silence}})).await;
    }
    send(&mut socket, json!({"event": "stop", "streamSid": "MZtest", "stop": {"accountSid": "ACtest", "callSid": "CAmedia"}})).await;
    while next_json(&mut socket).await.is_some() {}

    let call_id: uuid::Uuid = sqlx::query_scalar(
        "SELECT call_id FROM call_events WHERE event_type = 'callOpened' AND payload->>'externalId' = 'CAmedia' \
         AND payload->>'callee' = $1",
    )
    .bind(&number)
    .fetch_one(pod.pool())
    .await
    .unwrap();
    let events = closed_events(pod.pool(), call_id).await;
    assert_well_formed(&events);
    let opened = &events[0].2;
    assert_eq!(opened["channel"], "twilio");
    assert_eq!(opened["configVersion"], seeded.version.hash.as_str());
    assert_eq!(opened["caller"], "+61400000009");
    let kinds = types(&events);
    for wanted in [
        "bargeIn",
        "speechStopped",
        "slotCaptured",
        "turnMeasured",
        "callEnded",
    ] {
        assert!(kinds.contains(&wanted), "{wanted} missing from {kinds:?}");
    }
    let captured = events.iter().find(|e| e.1 == "slotCaptured").unwrap();
    assert_eq!(captured.2["value"], "filling");
    let costs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e.1 == "costAccrued")
        .map(|e| &e.2)
        .collect();
    let telephony = costs
        .iter()
        .find(|c| c["component"] == "telephony")
        .unwrap();
    assert_eq!(telephony["provider"], "twilio");
    assert_eq!(telephony["quantity"], 1.0);
    assert_eq!(
        telephony["microUsd"], 13_500,
        "one started minute at $0.0135"
    );
    let stt = costs.iter().find(|c| c["component"] == "stt").unwrap();
    assert_eq!(stt["quantity"], 0.1, "five 20 ms frames");
    assert!(
        costs
            .iter()
            .any(|c| c["component"] == "tts" && c["unit"] == "characters")
    );
    // One stt stream, a tts request per phrase (greeting, question), none failed.
    let metrics = &pod.pod.metrics;
    assert_eq!(metrics.provider_requests("stt", "builtin", "ok"), 1);
    assert!(metrics.provider_requests("tts", "builtin", "ok") >= 2);
    assert_eq!(metrics.provider_requests("tts", "builtin", "error"), 0);
    assert_eq!(events.last().unwrap().2["reason"], "hangup");
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_token_vouches_for_no_tenant_number() {
    let Some(url) = testkit::database_or_skip("platform token") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-notel-{}", random_suffix());
    // The Agent has no telephony Provider, so no account vouches for it.
    let seeded = testkit::seed_dental_with(pod.pool(), &agent, &number, "Mia", |_, spec| {
        spec.providers.telephony = None;
    })
    .await
    .unwrap();
    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    let p = params(&number, "CAplatform");
    for token in [DEFAULT_TOKEN, AUTH_TOKEN] {
        let (status, twiml) = post(&pod, form(&p), Some(&signature(token, &signed_url, &p))).await;
        assert_eq!(status, 403, "signed with {token}: {twiml}");
    }
    assert_eq!(pod.pod.metrics.rejections("no-token"), 2);
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_number_hears_the_suspended_message_and_stays_routed() {
    let Some(url) = testkit::database_or_skip("suspended number") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-susp-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let held = routes::suspend(
        pod.pool(),
        testkit::NAMESPACE,
        &agent,
        std::slice::from_ref(&number),
    )
    .await
    .unwrap();
    assert_eq!(held, std::slice::from_ref(&number));
    // Another Agent cannot take the number while it is suspended.
    let other = routes::activate(
        pod.pool(),
        "someone-else",
        "tenant-someone-else",
        "thief",
        std::slice::from_ref(&number),
        &seeded.version.hash,
    )
    .await
    .unwrap();
    assert_eq!(other.conflicts.len(), 1, "{other:?}");

    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    let p = params(&number, "CAsuspended");
    let good = signature(AUTH_TOKEN, &signed_url, &p);
    let (status, twiml) = post(&pod, form(&p), Some(&good)).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains("temporarily unavailable"), "{twiml}");
    assert!(!twiml.contains("<Stream"), "{twiml}");
    match tokio_tungstenite::connect_async(pod.call_url(&number, "+61400000009")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a text call to a suspended number: {other:?}"),
    }

    // Resuming routes calls to the Agent again.
    routes::activate(
        pod.pool(),
        &seeded.version.config.tenant.name,
        testkit::NAMESPACE,
        &agent,
        std::slice::from_ref(&number),
        &seeded.version.hash,
    )
    .await
    .unwrap();
    let (status, twiml) = post(&pod, form(&p), Some(&good)).await;
    assert_eq!(status, 200, "{twiml}");
    assert!(twiml.contains("<Stream"), "{twiml}");
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}
