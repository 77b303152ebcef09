//! Helpers shared by the voice pod's end-to-end tests.
#![allow(dead_code)] // each test binary uses a different part
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failed test

use std::time::Duration;

use dialtone_voice::testkit::{self, TestPod};
use dialtone_voice::token::{StreamClaims, StreamSecret};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A cooperative caller's answer to what the agent listens for.
pub fn answer(expect: &str, options: &[String]) -> Value {
    let text = match expect {
        "choice" => options.first().cloned().unwrap_or_default(),
        "name" => "Jane Citizen".to_owned(),
        "phone" => "oh four one two three four five six seven eight".to_owned(),
        "dateTime" => "thursday at three in the afternoon".to_owned(),
        "date" => "thursday".to_owned(),
        "time" => "three in the afternoon".to_owned(),
        "email" => "jane at example dot com".to_owned(),
        _ => "yes".to_owned(),
    };
    json!({"type": "utterance", "text": text, "confidence": 0.95})
}

pub async fn connect(url: &str) -> Socket {
    let (socket, _) = connect_async(url).await.expect("connects");
    socket
}

/// The next JSON text message, within 10 s.
pub async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")?;
        match message.expect("socket error") {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON")),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

pub async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .expect("sends");
}

/// What a text call looked like from the caller's side.
#[derive(Debug, Default)]
pub struct Transcript {
    pub call_id: String,
    pub says: Vec<String>,
    pub listens: Vec<String>,
    pub outcome: Option<String>,
    pub completed: Option<bool>,
}

/// Reads until the first `listen` (or the end), collecting into `t`.
pub async fn until_listen(socket: &mut Socket, t: &mut Transcript) -> Option<Value> {
    while let Some(m) = next_json(socket).await {
        match m["type"].as_str() {
            Some("started") => {
                t.call_id = m["callId"].as_str().unwrap().to_owned();
                // The caller learns its call id and nothing internal.
                assert_eq!(m.as_object().unwrap().len(), 2, "{m}");
            }
            Some("say") => t.says.push(m["text"].as_str().unwrap().to_owned()),
            Some("listen") => {
                t.listens.push(m["expect"].as_str().unwrap().to_owned());
                return Some(m);
            }
            Some("ended") => {
                t.outcome = Some(m["outcome"].as_str().unwrap().to_owned());
                t.completed = m["completed"].as_bool();
                return None;
            }
            _ => {}
        }
    }
    None
}

/// Answers every `listen` cooperatively until the call ends.
pub async fn cooperate(socket: &mut Socket, t: &mut Transcript) {
    for _ in 0..30 {
        let Some(listen) = until_listen(socket, t).await else {
            return;
        };
        let options: Vec<String> = listen["options"]
            .as_array()
            .map(|a| a.iter().map(|o| o.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        send(socket, answer(listen["expect"].as_str().unwrap(), &options)).await;
    }
    panic!("the call did not end within 30 turns: {t:?}");
}

/// A call's events `(seq, type, payload)`, once its `callClosed` is in the
/// database (the writer batches, so this waits up to 10 s).
pub async fn closed_events(pool: &PgPool, call_id: Uuid) -> Vec<(i32, String, Value)> {
    for _ in 0..200 {
        let rows: Vec<(i32, String, Value)> = sqlx::query_as(
            "SELECT seq, event_type, payload FROM call_events WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(pool)
        .await
        .expect("reads call_events");
        if rows.last().is_some_and(|r| r.1 == "callClosed") {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("call {call_id} has no callClosed event after 10 s");
}

/// Checks the event contract: seq 0.. without gaps, `callOpened` first,
/// `callClosed` last and only there.
pub fn assert_well_formed(events: &[(i32, String, Value)]) {
    for (i, (seq, _, _)) in events.iter().enumerate() {
        assert_eq!(*seq as usize, i, "seqs have no gaps: {events:?}");
    }
    assert_eq!(events.first().unwrap().1, "callOpened");
    assert_eq!(events.last().unwrap().1, "callClosed");
    assert_eq!(
        events.iter().filter(|e| e.1 == "callClosed").count(),
        1,
        "one callClosed"
    );
}

pub fn types(events: &[(i32, String, Value)]) -> Vec<&str> {
    events.iter().map(|e| e.1.as_str()).collect()
}

/// The media stream URL of a `<Connect><Stream>` answer and the claims of
/// its ticket (opened with the test pods' stream secret).
pub fn stream_of(twiml: &str) -> (String, StreamClaims) {
    let start = twiml.find("<Stream url=\"").expect("a Stream") + "<Stream url=\"".len();
    let len = twiml[start..].find('"').unwrap();
    let url = twiml[start..start + len].replace("&amp;", "&");
    let ticket = url.rsplit('/').next().unwrap();
    let secret = StreamSecret::new(testkit::STREAM_SECRET.as_bytes()).unwrap();
    let opened = secret
        .open(ticket, chrono::Utc::now().timestamp())
        .expect("a ticket the pod's secret opens");
    (url, opened.claims)
}

/// A form body.
pub fn form(params: &[(String, String)]) -> String {
    serde_urlencoded::to_string(params).unwrap()
}

/// The voice webhook's parameters for a call to `to`.
pub fn params(to: &str, call_sid: &str) -> Vec<(String, String)> {
    [
        ("AccountSid", "ACtest"),
        ("CallSid", call_sid),
        ("From", "+61400000009"),
        ("To", to),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// Posts the voice webhook, signed with `signature` when given.
pub async fn post(pod: &TestPod, body: String, signature: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/twilio/voice", pod.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(s) = signature {
        request = request.header("X-Twilio-Signature", s);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// Seeds the dental Agent (builtin providers) on a fresh number, places an
/// audio call to it that plays `script`, and returns the caller's report
/// and the call's events once it has closed.
pub async fn audio_call_to_dental(
    pod: &TestPod,
    script: Vec<dialtone_voice::audio_caller::Line>,
) -> (
    dialtone_voice::audio_caller::AudioReport,
    Vec<(i32, String, Value)>,
) {
    let number = testkit::random_number();
    let agent = format!("voice-audio-{}", testkit::random_suffix());
    testkit::seed_dental(pod.pool(), &agent, &number, "Mia")
        .await
        .unwrap();
    let call_sid = format!("CAaudio{}", testkit::random_suffix());
    let call = dialtone_voice::audio_caller::AudioCall {
        pod: format!("http://{}", pod.addr),
        auth_token: testkit::AUTH_TOKEN.to_owned(),
        from: "+61400000009".to_owned(),
        to: number,
        call_sid: call_sid.clone(),
        voice: ("en-us".to_owned(), 165),
        script,
    };
    let report = dialtone_voice::audio_caller::place(&call).await.unwrap();
    let call_id: Uuid = sqlx::query_scalar(
        "SELECT call_id FROM call_events WHERE event_type = 'callOpened' AND payload->>'externalId' = $1",
    )
    .bind(&call_sid)
    .fetch_one(pod.pool())
    .await
    .unwrap();
    let events = closed_events(pod.pool(), call_id).await;
    assert_well_formed(&events);
    (report, events)
}
