//! Events PostgreSQL cannot take as they are: text with a NUL (made
//! storable, never refused) and an event refused for good (isolated in a
//! bounded number of statements, without leaving a hole in its call).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dialtone_engine::{Event, Input};
use dialtone_spine::event::{CallEvent, EventBody, RuntimeEvent};
use dialtone_spine::projection::{self, Scope};
use dialtone_spine::writer::{EventWriter, WriterConfig};
use uuid::Uuid;

use crate::calls::{Ending, call};
use crate::support::{config, folded, pool, stored, tenant};

/// A writer config that puts everything sent before a flush in one batch.
fn one_batch(what: &str) -> WriterConfig {
    WriterConfig {
        max_batch: 5_000,
        max_delay: Duration::from_secs(2),
        ..config(what)
    }
}

fn dead_letters(cfg: &WriterConfig) -> Vec<serde_json::Value> {
    let path = cfg.spill_path.with_file_name("events.spill.rejected");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letters are JSON"))
        .collect()
}

/// Puts `text` into the call's first utterance and first captured value.
fn with_text(mut events: Vec<CallEvent>, text: &str) -> Vec<CallEvent> {
    let utterance = events.iter_mut().find_map(|e| match &mut e.body {
        EventBody::Runtime(RuntimeEvent::InputReceived {
            input: Input::Utterance { text, .. },
            ..
        }) => Some(text),
        _ => None,
    });
    *utterance.expect("the call has an utterance") = format!("my name is {text}");
    let captured = events.iter_mut().find_map(|e| match &mut e.body {
        EventBody::Engine(Event::SlotCaptured { value, .. }) => Some(value),
        _ => None,
    });
    *captured.expect("the call captures a slot") = text.to_owned();
    events
}

#[tokio::test]
async fn a_batch_with_a_nul_in_an_event_is_written_whole_without_a_gap() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let cfg = one_batch("nul");
    let (sink, task) = EventWriter::start(pool.clone(), cfg.clone());
    let clean = call(Uuid::new_v4(), &tenant, 3, Ending::Booked);
    let poisoned_id = Uuid::new_v4();
    let poisoned = with_text(call(poisoned_id, &tenant, 3, Ending::Booked), "Bo\0b");
    for e in clean.iter().chain(&poisoned).cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");

    let total = clean.len() + poisoned.len();
    assert_eq!(dead_letters(&cfg), Vec::<serde_json::Value>::new());
    assert_eq!(stats.rejected.load(Ordering::Relaxed), 0);
    assert_eq!(stats.failures.load(Ordering::Relaxed), 0, "no batch failed");
    assert_eq!(stats.written.load(Ordering::Relaxed), total as u64);
    assert_eq!(stats.text_replaced.load(Ordering::Relaxed), 2);

    // Every seq of both calls, the NUL stored as U+FFFD.
    let expected = with_text(poisoned, "Bo\u{FFFD}b");
    let stored = stored(&pool, &tenant).await;
    assert_eq!(stored.get(&poisoned_id), Some(&expected));
    assert_eq!(stored.get(&clean[0].call_id), Some(&clean));
    let live = projection::load_calls(&pool, Scope::Tenant(tenant))
        .await
        .expect("loads calls");
    assert_eq!(live, folded([&clean, &expected]));
}

#[tokio::test]
async fn an_event_refused_for_good_costs_a_few_statements_and_leaves_no_hole() {
    let Some(pool) = pool().await else { return };
    let tenant = tenant();
    let cfg = one_batch("poison");
    let (sink, task) = EventWriter::start(pool.clone(), cfg.clone());
    let calls: Vec<Vec<CallEvent>> = (0..40)
        .map(|i| call(Uuid::new_v4(), &tenant, 2, Ending::nth(i)))
        .collect();
    // PostgreSQL's timestamps end at 4713 BC: this event is refused every
    // time, whatever batch it is in.
    let victim = &calls[17];
    let mut poison = victim[3].clone();
    poison.occurred_at = Utc
        .with_ymd_and_hms(-200_000, 1, 1, 0, 0, 0)
        .single()
        .expect("a time chrono can hold");
    let sent: Vec<CallEvent> = calls
        .iter()
        .flat_map(|events| {
            events.iter().map(|e| {
                if e.call_id == poison.call_id && e.seq == poison.seq {
                    poison.clone()
                } else {
                    e.clone()
                }
            })
        })
        .collect();
    for e in sent.iter().cloned() {
        sink.send(e).await.expect("sends");
    }
    sink.flush().await.expect("flushes");
    let stats = std::sync::Arc::clone(sink.stats());
    task.shutdown().await.expect("stops");

    // One poison event in a batch of n costs about 2·log2(n) statements.
    let n = sent.len();
    let bound = 2 * (usize::BITS - n.leading_zeros()) as u64 + 1;
    let statements = stats.batches.load(Ordering::Relaxed) + stats.failures.load(Ordering::Relaxed);
    assert!(
        statements <= bound,
        "{statements} statements for {n} events"
    );

    // The victim's events before the poison are stored, the poison and the
    // rest of the call are dead letters, in order; every other call is
    // whole.
    let stored = stored(&pool, &tenant).await;
    let mut expected: BTreeMap<Uuid, Vec<CallEvent>> = calls
        .iter()
        .map(|events| (events[0].call_id, events.clone()))
        .collect();
    expected.insert(victim[0].call_id, victim[..3].to_vec());
    assert_eq!(stored, expected);
    let letters = dead_letters(&cfg);
    let seqs: Vec<i64> = letters
        .iter()
        .map(|l| l["row"]["seq"].as_i64().expect("a seq"))
        .collect();
    let rest: Vec<i64> = (3..victim.len() as i64).collect();
    assert_eq!(seqs, rest, "{letters:?}");
    assert!(
        letters[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("out of range")),
        "{letters:?}"
    );
    assert_eq!(stats.rejected.load(Ordering::Relaxed), rest.len() as u64);

    // The victim's row is the fold of its stored prefix.
    let live = projection::load_calls(&pool, Scope::Tenant(tenant))
        .await
        .expect("loads calls");
    let prefixes: Vec<Vec<CallEvent>> = expected.into_values().collect();
    assert_eq!(live, folded(&prefixes));
}
