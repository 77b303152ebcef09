//! The `/v1/calls` text channel: simulated callers and web widgets drive the
//! same [`CallSession`] as telephony, with JSON instead of audio.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use dialtone_engine::{Engine, Input, Output};
use dialtone_spine::event::CloseReason;

use crate::drain::{CallGuard, Drain};
use crate::pod::Pod;
use crate::session::{CallMeta, CallSession, Pinned};
use crate::textproto::{ClientMessage, ServerMessage};
use crate::vendors::CallVendors;

/// How long a closed call waits for the client's close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The socket went away while the call was being written to.
struct Gone;

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), Gone> {
    socket
        .send(Message::Text(message.to_json().into()))
        .await
        .map_err(|_| Gone)
}

/// Sends the caller-visible outputs; the first `say` of a reply ends the
/// turn's latency clock.
async fn deliver(
    socket: &mut WebSocket,
    session: &mut CallSession<'_>,
    outputs: &[Output],
) -> Result<(), Gone> {
    for output in outputs {
        let message = match output {
            Output::Speak {
                phrase_id, text, ..
            } => ServerMessage::Say {
                text: text.clone(),
                phrase_id: phrase_id.clone(),
            },
            Output::Listen { expect, step } => ServerMessage::Listen {
                expect: expect.as_str().to_owned(),
                step: step.clone(),
                options: session
                    .listening()
                    .filter(|l| !l.options.is_empty() && l.expect == *expect)
                    .map(|l| l.options.clone()),
            },
            Output::StopSpeaking => ServerMessage::Stop,
            Output::Transfer { to, .. } => ServerMessage::Transfer { to: to.clone() },
            Output::End { .. } | Output::Event(_) => continue,
        };
        send(socket, &message).await?;
        if matches!(output, Output::Speak { .. }) {
            session.replied();
        }
    }
    Ok(())
}

/// Runs one text call to its end; the call's events end with `callClosed`
/// whatever happens to the socket.
pub async fn run(
    pod: Arc<Pod>,
    mut socket: WebSocket,
    pinned: Pinned,
    meta: CallMeta,
    guard: CallGuard,
) {
    let call_id = meta.call_id;
    let engine = match Engine::new(&pinned.config) {
        Ok(e) => e,
        Err(err) => {
            tracing::error!(%call_id, version = %pinned.hash, error = %err, "config version cannot run");
            let _ = send(
                &mut socket,
                &ServerMessage::Ended {
                    outcome: CloseReason::Error.as_str().to_owned(),
                    completed: None,
                },
            )
            .await;
            return;
        }
    };
    let vendors = pod.vendors.text(&pinned);
    let (mut session, outputs) =
        CallSession::open(&engine, &pinned, meta, pod.call_context()).await;
    let reason = converse(&pod, &mut socket, &mut session, &vendors, outputs).await;
    // A caller who hung up is usually gone already; trying costs nothing.
    let outcome = session.outcome().unwrap_or(reason.as_str()).to_owned();
    let ended = ServerMessage::Ended {
        outcome,
        completed: session.objective_completed(),
    };
    let _ = send(&mut socket, &ended).await;
    let _ = socket.send(Message::Close(None)).await;
    tracing::debug!(%call_id, reason = reason.as_str(), "text call closed");
    session.close(reason).await;
    drop(guard);
    // Read what the client still sends (a barge-in racing the closing line)
    // until its close: a socket dropped with unread input is reset, and the
    // reset can reach the client before `ended` does. The call is closed
    // and its place on the pod free by now.
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// When the caller's silence times out, if the engine listens.
fn silence_deadline(pod: &Pod, session: &CallSession<'_>) -> Option<tokio::time::Instant> {
    session
        .listening()
        .map(|l| tokio::time::Instant::now() + pod.settings.silence.timeout(l.expect))
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The call's conversation; returns why it closes.
async fn converse(
    pod: &Pod,
    socket: &mut WebSocket,
    session: &mut CallSession<'_>,
    vendors: &CallVendors,
    opening: Vec<Output>,
) -> CloseReason {
    let started = ServerMessage::Started {
        call_id: session.call_id().to_string(),
    };
    if send(socket, &started).await.is_err() || deliver(socket, session, &opening).await.is_err() {
        session.input(Input::Hangup, None);
        return CloseReason::Hangup;
    }
    let mut forced = pod.drain.forced();
    // Only call messages count as activity: pings alone do not hold a
    // place on the pod.
    let mut idle_until = tokio::time::Instant::now() + pod.settings.text_idle;
    // The objective's silence policy applies here as on the phone: a
    // caller (or widget) that says nothing gets the reprompt, then the
    // closing line.
    let mut silent_until = silence_deadline(pod, session);
    loop {
        if session.ended() {
            return session.engine_close_reason();
        }
        let message = tokio::select! {
            m = socket.recv() => Some(m),
            () = sleep_opt(silent_until) => None,
            () = tokio::time::sleep_until(idle_until) => {
                tracing::info!(call_id = %session.call_id(), "text call idle: closed as a hang-up");
                session.input(Input::Hangup, None);
                return CloseReason::Hangup;
            }
            () = Drain::until_forced(&mut forced) => return CloseReason::Drained,
        };
        let outputs = match message {
            None => session.input(Input::SilenceTimeout, None),
            Some(message) => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => {
                        idle_until = tokio::time::Instant::now() + pod.settings.text_idle;
                        text
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        session.input(Input::Hangup, None);
                        return CloseReason::Hangup;
                    }
                    // Pings are answered by axum; binary frames mean nothing here.
                    Some(Ok(_)) => continue,
                };
                match serde_json::from_str::<ClientMessage>(text.as_str()) {
                    Err(err) => {
                        let message = ServerMessage::Error {
                            message: format!("not a call message: {err}"),
                        };
                        if send(socket, &message).await.is_err() {
                            session.input(Input::Hangup, None);
                            return CloseReason::Hangup;
                        }
                        continue;
                    }
                    Ok(ClientMessage::Hangup) => {
                        session.input(Input::Hangup, None);
                        return CloseReason::Hangup;
                    }
                    Ok(ClientMessage::Utterance { text, confidence }) => {
                        session.turn_ended(Instant::now());
                        vendors.utterance(session, text, confidence).await
                    }
                    Ok(ClientMessage::Dtmf { digits }) => {
                        session.turn_ended(Instant::now());
                        session.input(Input::Dtmf { digits }, None)
                    }
                    Ok(ClientMessage::Silence) => session.input(Input::SilenceTimeout, None),
                    Ok(ClientMessage::BargeIn) => session.input(Input::BargeIn, None),
                }
            }
        };
        let delivered = deliver(socket, session, &outputs).await;
        // Recorded after the reply went out (see `CallSession::flush`).
        session.flush().await;
        silent_until = silence_deadline(pod, session);
        if delivered.is_err() {
            if !session.ended() {
                session.input(Input::Hangup, None);
                return CloseReason::Hangup;
            }
            return session.engine_close_reason();
        }
    }
}
