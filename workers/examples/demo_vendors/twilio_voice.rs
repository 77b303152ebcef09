//! Twilio's Calls API as the demo's callees meet it: `POST
//! /2010-04-01/Accounts/{AccountSid}/Calls.json` checked as Twilio
//! documents it (basic auth, form body, `To`/`From` E.164, `Url`,
//! `StatusCallback`, `MachineDetection`), then the call itself played the
//! way Twilio plays it: the answer webhook (signed with the account's auth
//! token, `AnsweredBy` from answering-machine detection), the TwiML it
//! returns followed — a `<Connect><Stream>` opens a Media Streams socket
//! and a simulated person listens for three seconds of 20 ms µ-law frames
//! and hangs up — and the final status callback, signed too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The voice half of the vendor server.
#[derive(Clone, Default)]
pub struct Voice {
    /// The account's auth token, to sign the callbacks.
    pub auth_token: String,
    /// Numbers answered by a machine.
    pub machines: Arc<Vec<String>>,
    /// Calls created.
    pub created: Arc<AtomicU32>,
    /// The HTTP client of the callbacks.
    pub http: reqwest::Client,
}

fn e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|d| {
        (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> axum::response::Response {
    println!("vendor REFUSED twilio: {message}");
    (
        status,
        Json(json!({"code": code, "message": message, "status": status.as_u16()})),
    )
        .into_response()
}

/// `POST /twilio/2010-04-01/Accounts/{sid}/Calls.json`.
pub async fn create(
    State(voice): State<Voice>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !super::basic_ok(&headers, &sid) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (to, from, url, callback) = (get("To"), get("From"), get("Url"), get("StatusCallback"));
    if !e164(&to) {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "Invalid 'To' Phone Number");
    }
    if !e164(&from) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21212,
            "Invalid 'From' Phone Number",
        );
    }
    if !url.starts_with("http") {
        return twilio_error(StatusCode::BAD_REQUEST, 21205, "Url parameter is required");
    }
    let detection = get("MachineDetection");
    if !matches!(detection.as_str(), "" | "Enable" | "DetectMessageEnd") {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21626,
            "Invalid MachineDetection value",
        );
    }
    let n = voice.created.fetch_add(1, Ordering::SeqCst) + 1;
    let call_sid = format!("CA{n:032}");
    println!(
        "vendor twilio    call {call_sid} placed to {to} from {from} (machine detection: {detection})"
    );
    let call = Call {
        sid: call_sid.clone(),
        account: sid.clone(),
        to: to.clone(),
        from: from.clone(),
        url,
        callback,
        detection,
    };
    tokio::spawn(play(voice, call));
    (
        StatusCode::CREATED,
        Json(json!({"sid": call_sid, "to": to, "from": from, "status": "queued", "account_sid": sid})),
    )
        .into_response()
}

struct Call {
    sid: String,
    account: String,
    to: String,
    from: String,
    url: String,
    callback: String,
    detection: String,
}

async fn post_signed(voice: &Voice, url: &str, params: &[(String, String)]) -> Option<String> {
    let signature = dialtone_providers::twilio::signature(&voice.auth_token, url, params);
    let response = voice
        .http
        .post(url)
        .header(dialtone_providers::twilio::SIGNATURE_HEADER, signature)
        .form(params)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let text = response.text().await.ok()?;
    if !status.is_success() {
        println!("vendor twilio    callback {url} answered HTTP {status}");
        return None;
    }
    Some(text)
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `attribute="…"` in `tag`.
fn attribute(tag: &str, attribute: &str) -> Option<String> {
    let start = tag.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// `<Stream url>` and its `<Parameter>`s, when the TwiML connects a stream.
fn stream_of(twiml: &str) -> Option<(String, serde_json::Map<String, Value>)> {
    let stream_at = twiml.find("<Stream ")?;
    let url = attribute(&twiml[stream_at..], "url")?;
    let mut parameters = serde_json::Map::new();
    for tag in twiml.split("<Parameter ").skip(1) {
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            parameters.insert(name, Value::String(value));
        }
    }
    Some((url, parameters))
}

async fn play(voice: Voice, call: Call) {
    // Ringing, then detection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let machine = voice.machines.contains(&call.to);
    let answered_by = if call.detection.is_empty() {
        None
    } else if machine {
        Some("machine_end_beep")
    } else {
        Some("human")
    };
    let mut params = vec![
        ("CallSid".to_owned(), call.sid.clone()),
        ("AccountSid".to_owned(), call.account.clone()),
        ("From".to_owned(), call.from.clone()),
        ("To".to_owned(), call.to.clone()),
        ("CallStatus".to_owned(), "in-progress".to_owned()),
        ("Direction".to_owned(), "outbound-api".to_owned()),
    ];
    if let Some(by) = answered_by {
        params.push(("AnsweredBy".to_owned(), by.to_owned()));
        params.push(("MachineDetectionDuration".to_owned(), "2150".to_owned()));
    }
    let Some(twiml) = post_signed(&voice, &call.url, &params).await else {
        finish(&voice, &call, "failed", answered_by, 0).await;
        return;
    };
    let seconds = if let Some((stream_url, parameters)) = stream_of(&twiml) {
        let frames = listen(&stream_url, &call, parameters).await;
        println!(
            "vendor twilio    call {} answered by a person; the agent sent {frames} audio frames; the callee hung up after 3 s",
            call.sid
        );
        3
    } else if twiml.contains("<Say>") {
        println!(
            "vendor twilio    call {} answered by a machine: a voicemail was left",
            call.sid
        );
        1
    } else {
        println!(
            "vendor twilio    call {} answered by a machine: hung up by policy",
            call.sid
        );
        0
    };
    finish(&voice, &call, "completed", answered_by, seconds).await;
}

/// The callee on a Media Streams socket: `connected`, `start`, three
/// seconds of silence in 20 ms frames, `stop`. Returns the media frames the
/// agent sent.
async fn listen(url: &str, call: &Call, parameters: serde_json::Map<String, Value>) -> u32 {
    let Ok((socket, _)) = tokio_tungstenite::connect_async(url).await else {
        println!(
            "vendor twilio    call {}: cannot open the media stream at {url}",
            call.sid
        );
        return 0;
    };
    let (mut tx, mut rx) = socket.split();
    let stream_sid = format!("MZ{}", &call.sid[2..]);
    let start = json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "accountSid": call.account,
            "callSid": call.sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    });
    let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
    for message in [connected, start] {
        if tx
            .send(Message::Text(message.to_string().into()))
            .await
            .is_err()
        {
            return 0;
        }
    }
    let heard = tokio::spawn(async move {
        let mut frames = 0;
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Text(text) = message
                && text.as_str().contains("\"media\"")
            {
                frames += 1;
            }
        }
        frames
    });
    let silence = base64::engine::general_purpose::STANDARD.encode([0xFFu8; 160]);
    for chunk in 0..150u32 {
        let media = json!({
            "event": "media",
            "sequenceNumber": (chunk + 2).to_string(),
            "streamSid": stream_sid,
            "media": {"track": "inbound", "chunk": (chunk + 1).to_string(),
                      "timestamp": (chunk * 20).to_string(), "payload": silence},
        });
        if tx
            .send(Message::Text(media.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stop = json!({"event": "stop", "sequenceNumber": "152", "streamSid": stream_sid,
                      "stop": {"accountSid": call.account, "callSid": call.sid}});
    let _ = tx.send(Message::Text(stop.to_string().into())).await;
    let _ = tx.close().await;
    tokio::time::timeout(Duration::from_secs(5), heard)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0)
}

async fn finish(voice: &Voice, call: &Call, status: &str, answered_by: Option<&str>, seconds: u32) {
    if call.callback.is_empty() {
        return;
    }
    let mut params = vec![
        ("CallSid".to_owned(), call.sid.clone()),
        ("AccountSid".to_owned(), call.account.clone()),
        ("From".to_owned(), call.from.clone()),
        ("To".to_owned(), call.to.clone()),
        ("CallStatus".to_owned(), status.to_owned()),
        ("CallDuration".to_owned(), seconds.to_string()),
        ("Direction".to_owned(), "outbound-api".to_owned()),
    ];
    if let Some(by) = answered_by {
        params.push(("AnsweredBy".to_owned(), by.to_owned()));
    }
    if post_signed(voice, &call.callback, &params).await.is_none() {
        println!(
            "vendor twilio    call {}: the status callback was refused",
            call.sid
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_and_its_parameters_are_read_from_twiml() {
        let twiml = r#"<?xml version="1.0"?><Response><Connect><Stream url="ws://127.0.0.1:1/twilio/media"><Parameter name="caller" value="+61290001235" /><Parameter name="odd" value="a&amp;b" /></Stream></Connect></Response>"#;
        let (url, params) = stream_of(twiml).unwrap();
        assert_eq!(url, "ws://127.0.0.1:1/twilio/media");
        assert_eq!(params["caller"], "+61290001235");
        assert_eq!(params["odd"], "a&b");
        assert!(stream_of("<Response><Hangup/></Response>").is_none());
    }
}
