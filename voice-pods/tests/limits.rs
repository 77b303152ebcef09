//! What one client can make a pod spend, bounded: huge frames, floods of
//! idle sockets, a tenant's calls beyond its limit, text calls left open.
//! Each of these took a pod down, or a tenant's share of it, before.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::Duration;

use common::*;
use dialtone_providers::twilio::signature;
use dialtone_voice::testkit::{
    self, AUTH_TOKEN, TestPod, random_number, random_suffix, seed_dental, seed_dental_limited,
};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::{self, Message};

/// Idle sockets opened by the flood test.
const IDLE_SOCKETS: usize = 5_000;

/// Lets this process hold the flood's sockets, both ends of each.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = (IDLE_SOCKETS as u64 * 2 + 1_024).min(hard);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        soft >= IDLE_SOCKETS as u64 * 2,
        "the hard open-file limit ({hard}) is below what the flood needs"
    );
}

/// Sends a 50 MB message and expects the pod to close the socket rather
/// than read it.
async fn send_huge_and_expect_close(socket: &mut Socket) {
    let huge = "x".repeat(50 * 1024 * 1024);
    // The pod closes while the client is still writing: an error here is
    // the expected outcome too.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        socket.send(Message::Text(huge.into())),
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the pod closed the socket of a 50 MB message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_frames_and_a_flood_of_idle_sockets_leave_the_pod_serving() {
    let Some(url) = testkit::database_or_skip("limits") else {
        return;
    };
    raise_open_file_limit();
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-limits-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();

    // 5,000 connections that never send a byte.
    let mut idle = Vec::with_capacity(IDLE_SOCKETS);
    for _ in 0..IDLE_SOCKETS {
        idle.push(tokio::net::TcpStream::connect(pod.addr).await.unwrap());
    }

    // A text call whose caller sends 50 MB.
    let mut flooder = connect(&pod.call_url(&number, "+61400000003")).await;
    let mut t = Transcript::default();
    until_listen(&mut flooder, &mut t).await.unwrap();
    send_huge_and_expect_close(&mut flooder).await;

    // A media stream, with a real ticket, whose peer sends 50 MB.
    let signed_url = format!("http://{}/twilio/voice", pod.addr);
    let p = params(&number, "CAhuge");
    let (status, twiml) = post(
        &pod,
        form(&p),
        Some(&signature(AUTH_TOKEN, &signed_url, &p)),
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    let (stream_url, _) = stream_of(&twiml);
    let mut media = connect(&stream_url).await;
    send_huge_and_expect_close(&mut media).await;

    // Meanwhile a caller books as usual.
    let mut socket = connect(&pod.call_url(&number, "+61400000004")).await;
    let mut booked = Transcript::default();
    cooperate(&mut socket, &mut booked).await;
    assert_eq!(booked.outcome.as_deref(), Some("booked"), "{booked:?}");

    // The flooded text call was recorded and closed, not left open.
    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_well_formed(&events);
    assert_eq!(events.last().unwrap().2["reason"], "hangup");
    drop(idle);
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_sockets_are_shed_until_places_free() {
    let Some(url) = testkit::database_or_skip("connection cap") else {
        return;
    };
    let pod = TestPod::start_with(&url, Duration::from_secs(5), |s| s.max_connections = 50)
        .await
        .unwrap();
    let ready = format!("http://{}/readyz", pod.addr);
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(tokio::net::TcpStream::connect(pod.addr).await.unwrap());
    }
    for _ in 0..500 {
        if pod.pod.metrics.connections_shed().get() >= 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pod.pod.metrics.connections_shed().get(), 150);
    assert!(
        reqwest::get(&ready).await.is_err(),
        "a full pod sheds probes too"
    );
    // The idle sockets go away (or time out): the pod serves again.
    drop(idle);
    let mut served = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&ready).await
            && r.status().is_success()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the pod serves once places are free");
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_limit_gets_429_and_its_next_call_after_one_ends() {
    let Some(url) = testkit::database_or_skip("tenant call limit") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let number = random_number();
    let agent = format!("voice-cap-{}", random_suffix());
    let seeded = seed_dental_limited(pod.pool(), &agent, &number, "Mia", 2)
        .await
        .unwrap();
    let call_url = pod.call_url(&number, "+61400000005");
    let mut first = connect(&call_url).await;
    let mut second = connect(&call_url).await;
    let mut t = Transcript::default();
    until_listen(&mut first, &mut t).await.unwrap();
    until_listen(&mut second, &mut Transcript::default())
        .await
        .unwrap();
    match tokio_tungstenite::connect_async(&call_url).await {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            assert_eq!(r.headers()["retry-after"], "1");
        }
        other => panic!("a third call must get 429, got {other:?}"),
    }
    assert_eq!(
        pod.pod
            .metrics
            .refusals("tenant-full", &seeded.version.config.tenant.name),
        1
    );
    send(&mut first, json!({"type": "hangup"})).await;
    while next_json(&mut first).await.is_some() {}
    // The place is freed once the call has closed.
    let mut admitted = None;
    for _ in 0..100 {
        match tokio_tungstenite::connect_async(&call_url).await {
            Ok((socket, _)) => {
                admitted = Some(socket);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(admitted.is_some(), "a new call once one has ended");
    drop((second, admitted));
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_call_left_silent_is_closed_after_the_idle_limit() {
    let Some(url) = testkit::database_or_skip("text idle limit") else {
        return;
    };
    let pod = TestPod::start_with(&url, Duration::from_secs(5), |s| {
        s.text_idle = Duration::from_millis(500);
    })
    .await
    .unwrap();
    let number = random_number();
    let agent = format!("voice-idle-{}", random_suffix());
    let seeded = seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let mut socket = connect(&pod.call_url(&number, "+61400000006")).await;
    let mut t = Transcript::default();
    until_listen(&mut socket, &mut t).await.unwrap();
    // Pings alone do not keep it open.
    socket.send(Message::Ping(Vec::new().into())).await.unwrap();
    let mut last = None;
    while let Some(m) = next_json(&mut socket).await {
        last = Some(m);
    }
    assert_eq!(last.unwrap()["outcome"], "hangup");
    let events = closed_events(pod.pool(), t.call_id.parse().unwrap()).await;
    assert_eq!(events.last().unwrap().2["reason"], "hangup");
    seeded.unroute(pod.pool()).await.unwrap();
    pod.stop().await.unwrap();
}

/// Anyone on the internet reaches the public listener; the metrics name
/// every tenant and its spend, so they are served on their own listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_on_the_public_listener() {
    let Some(url) = testkit::database_or_skip("metrics listener") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    pod.pod.metrics.call_started("harbour-dental");
    let client = reqwest::Client::new();
    let public = client
        .get(format!("http://{}/metrics", pod.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
    let private = client
        .get(format!("http://{}/metrics", pod.metrics_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), reqwest::StatusCode::OK);
    let text = private.text().await.unwrap();
    assert!(
        text.contains(r#"dialtone_voice_active_calls{tenant="harbour-dental"} 1"#),
        "{text}"
    );
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    pod.stop().await.unwrap();
}
