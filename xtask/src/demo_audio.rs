//! The demo's audio call: the reception Agent is switched to the builtin
//! speech providers (one field each, no vendor account), and a caller who
//! talks in audio (espeak-ng over Twilio Media Streams, in real time) talks
//! over the greeting (barge-in) and books a check-up. Prints what the
//! caller said, what the pod heard and the booking; then switches the
//! Agent back.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::cmd;
use crate::demo_calls::{block_on, database_url, dialtone, now_unix};
use crate::testenv::Env;

const NAMESPACE: &str = "tenant-harbour-dental";
const AGENT: &str = "reception";
pub const NUMBER: &str = "+61290001234";

/// The reception Agent's speech providers, as JSON for `kubectl patch`.
fn speech(stt: &str, tts: &str) -> String {
    format!(r#"{{"spec":{{"providers":{{"stt":{{"name":"{stt}"}},"tts":{{"name":"{tts}"}}}}}}}}"#)
}

fn patch(env: &Env, providers: &str) -> Result<()> {
    cmd::run(env.kubectl()?.args([
        "patch",
        "agent",
        AGENT,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        providers,
    ]))
}

/// The config version the number routes to.
async fn routed(db: &mut PgConnection) -> Result<Option<String>> {
    sqlx::query_scalar("SELECT active_version FROM phone_routes WHERE number = $1")
        .bind(NUMBER)
        .fetch_optional(db)
        .await
        .context("reading the phone route")
}

/// Waits until the number routes to a version whose speech is builtin.
async fn wait_for_builtin(db: &mut PgConnection) -> Result<String> {
    let started = Instant::now();
    loop {
        let version: Option<String> = sqlx::query_scalar(
            "SELECT r.active_version FROM phone_routes r
             JOIN config_versions v ON v.hash = r.active_version
             WHERE r.number = $1 AND v.canonical LIKE '%\"stt\":{\"kind\":\"Provider\",\"name\":\"builtin-stt\"%'
               AND v.canonical LIKE '%\"tts\":{\"kind\":\"Provider\",\"name\":\"builtin-tts\"%'",
        )
        .bind(NUMBER)
        .fetch_optional(&mut *db)
        .await
        .context("reading the phone route")?;
        if let Some(version) = version {
            return Ok(version);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{NUMBER} did not move to a builtin-speech version within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Switches the Agent to builtin speech, places the audio call, shows it
/// and switches back.
pub fn show(env: &Env, target: &Path, voice_port: u16) -> Result<()> {
    let url = database_url(env)?;
    let before = block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        routed(&mut db).await
    })?;
    patch(env, &speech("builtin-stt", "builtin-tts"))?;
    let result = call_and_show(env, target, voice_port, &url);
    // The rest of the demo (and the next run) expects the example as written.
    patch(env, &speech("deepgram", "elevenlabs"))?;
    result?;
    if let Some(before) = before {
        println!("switched back: {NUMBER} returns to {before} once the operator recompiles");
    }
    Ok(())
}

fn call_and_show(env: &Env, target: &Path, voice_port: u16, url: &str) -> Result<()> {
    let version = block_on(async {
        let mut db = PgConnection::connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        wait_for_builtin(&mut db).await
    })?;
    println!("{NUMBER} serves {version} (stt: builtin-stt, tts: builtin-tts)");
    let since = now_unix();
    let token = env
        .dir
        .join("voice")
        .join("credentials")
        .join(NAMESPACE)
        .join("twilio")
        .join("authToken");
    let ended = cmd::run(dialtone(target)?.args([
        "call",
        &format!("--url=http://127.0.0.1:{voice_port}"),
        &format!("--to={NUMBER}"),
        &format!("--auth-token-file={}", token.display()),
        "--line=interrupt:a check up and clean please",
        "--line=say:peter brown",
        "--line=keys:0412345678#",
        "--line=say:yes",
        "--line=say:next monday at ten in the morning",
        "--line=say:yes",
    ]));
    block_on(heard(url, since))?;
    ended
}

/// What the pod heard on the call and what the call booked.
async fn heard(url: &str, since_unix: f64) -> Result<()> {
    let mut db = PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    let started = Instant::now();
    let call_id: sqlx::types::Uuid = loop {
        let closed: Option<sqlx::types::Uuid> = sqlx::query_scalar(
            "SELECT o.call_id FROM call_events o JOIN call_events c ON c.call_id = o.call_id
             WHERE o.event_type = 'callOpened' AND o.payload->>'callee' = $1
               AND o.payload->>'channel' = 'twilio' AND o.occurred_at >= to_timestamp($2)
               AND c.event_type = 'callClosed'
             ORDER BY o.occurred_at DESC LIMIT 1",
        )
        .bind(NUMBER)
        .bind(since_unix)
        .fetch_optional(&mut db)
        .await
        .context("finding the audio call")?;
        if let Some(id) = closed {
            break id;
        }
        if started.elapsed() > Duration::from_secs(15) {
            bail!("the audio call to {NUMBER} has no callClosed event");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let events: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, payload FROM call_events WHERE call_id = $1 ORDER BY seq",
    )
    .bind(call_id)
    .fetch_all(&mut db)
    .await
    .context("reading the call's events")?;
    println!("call {call_id}: what the pod heard (builtin speech to text)");
    for (kind, payload) in &events {
        match kind.as_str() {
            "inputReceived" => match payload["input"]["type"].as_str() {
                Some("utterance") => println!("  heard: {}", payload["input"]["text"]),
                Some("dtmf") => println!("  keys:  {}", payload["input"]["digits"]),
                _ => {}
            },
            "slotCaptured" => println!("  captured {} = {}", payload["slot"], payload["value"]),
            "objectiveCompleted" => println!("  outcome: {}", payload["outcome"]),
            _ => {}
        }
    }
    let booked = events
        .iter()
        .any(|(kind, p)| kind == "objectiveCompleted" && p["outcome"] == "booked");
    if !booked {
        bail!(
            "the audio call did not book: {:?}",
            events.iter().map(|e| &e.0).collect::<Vec<_>>()
        );
    }
    Ok(())
}
