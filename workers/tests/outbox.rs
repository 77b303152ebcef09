//! The outbox: jobs inserted with their trigger events, once, whatever
//! happens to the batch; parameter templates checked at compile time.

mod common;

use chrono::Utc;
use dialtone_crds::{Agent, Objective, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use dialtone_spine::event::{CallEvent, Channel, CloseReason, Direction, EventBody, RuntimeEvent};
use dialtone_spine::versions;
use dialtone_spine::writer::{EventWriter, WriterConfig};
use serde_json::json;
use uuid::Uuid;

fn inputs(namespace: &str, params: serde_json::Value) -> (Tenant, Objective, Agent) {
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {
            "displayName": "Acme", "namespace": namespace,
            "profile": {"timezone": "Australia/Sydney"},
            "escalationContacts": [{"name": "manager", "phone": "+61291234567"}],
        },
    }))
    .expect("tenant");
    let objective: Objective = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Objective",
        "metadata": {"name": "lead", "namespace": namespace},
        "spec": {"start": "ask", "steps": [
            {"id": "ask", "kind": "capture", "capture": {"slot": "service", "primitive": "name"}, "next": "done"},
            {"id": "done", "kind": "end", "end": {"outcome": "captured"}},
        ]},
    }))
    .expect("objective");
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Agent",
        "metadata": {"name": "front", "namespace": namespace},
        "spec": {
            "objectives": [{"name": "lead"}],
            "workflows": [{"name": "confirm", "trigger": "callCompleted", "action": "sms", "params": params}],
        },
    }))
    .expect("agent");
    (tenant, objective, agent)
}

fn version(namespace: &str, params: serde_json::Value) -> Result<ConfigVersion, String> {
    let (tenant, objective, agent) = inputs(namespace, params);
    compile(&CompileInput {
        agent: &agent,
        tenant: &tenant,
        objectives: vec![&objective],
        providers: vec![],
        cluster_providers: vec![],
    })
    .map_err(|e| e.to_string())
}

#[test]
fn a_template_naming_an_unknown_slot_is_refused_at_compile_time() {
    let err = version("ns", json!({"to": "{{slots.phone}}"})).expect_err("refused");
    assert!(err.contains("spec.workflows[0].params.to"), "{err}");
    assert!(
        err.contains(
            "slot \"phone\", which no objective of this Agent captures (captured: service)"
        ),
        "{err}"
    );
    let err = version("ns", json!({"to": "{{calller}}"})).expect_err("refused");
    assert!(err.contains("{{calller}} is not a placeholder"), "{err}");
    version(
        "ns",
        json!({"to": "{{caller}}", "body": "{{slots.service}}"}),
    )
    .expect("compiles");
}

fn call_events(call_id: Uuid, tenant: &str, namespace: &str, hash: &str) -> Vec<CallEvent> {
    let now = Utc::now();
    let event = |seq, body| CallEvent {
        call_id,
        seq,
        tenant: tenant.to_owned(),
        occurred_at: now,
        body: EventBody::Runtime(body),
    };
    vec![
        event(
            0,
            RuntimeEvent::CallOpened {
                namespace: namespace.to_owned(),
                agent: "front".into(),
                config_version: hash.to_owned(),
                core_version: "test".into(),
                direction: Direction::Inbound,
                caller: Some("+61400111222".into()),
                callee: Some("+61290001234".into()),
                channel: Channel::Text,
                external_id: None,
                started_at: now,
            },
        ),
        event(
            1,
            RuntimeEvent::CallEnded {
                outcome: "captured".into(),
            },
        ),
        event(
            2,
            RuntimeEvent::CallClosed {
                reason: CloseReason::Ended,
                ended_at: now,
                duration_millis: 1000,
            },
        ),
    ]
}

#[tokio::test]
async fn a_closed_call_enqueues_its_workflow_once_even_when_its_batch_is_written_again() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let namespace = format!("t-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let tenant = common::tenant();
    let v = version(
        &namespace,
        json!({"to": "{{caller}}", "body": "Thanks for calling: {{outcome}}"}),
    )
    .expect("compiles");
    versions::put(&pool, &v, &tenant, &namespace, "front")
        .await
        .expect("put");
    let call_id = Uuid::new_v4();
    let spill = std::env::temp_dir().join(format!("outbox-{}.spill", Uuid::new_v4().simple()));
    for _ in 0..2 {
        // The second round is a re-delivery of the same events.
        let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
        for e in call_events(call_id, &tenant, &namespace, &v.hash) {
            sink.send(e).await.expect("send");
        }
        sink.flush().await.expect("flush");
        task.shutdown().await.expect("shutdown");
    }
    let jobs: Vec<(String, String, serde_json::Value, String, Option<i32>)> = sqlx::query_as(
        "SELECT idempotency_key, action, payload, cap_scope, daily_cap FROM workflow_jobs WHERE call_id = $1",
    )
    .bind(call_id)
    .fetch_all(&pool)
    .await
    .expect("jobs");
    assert_eq!(jobs.len(), 1, "one job for the call");
    let (key, action, payload, scope, cap) = &jobs[0];
    assert_eq!(key, &format!("{call_id}/confirm/callCompleted"));
    assert_eq!(action, "sms");
    assert_eq!(payload["params"]["to"], "+61400111222");
    assert_eq!(payload["params"]["body"], "Thanks for calling: captured");
    assert_eq!(
        scope,
        &format!("{tenant}/sms/+61290001234"),
        "SMS count per from-number"
    );
    assert_eq!(*cap, Some(100));
    sqlx::query("DELETE FROM workflow_jobs WHERE call_id = $1")
        .bind(call_id)
        .execute(&pool)
        .await
        .expect("clean up");
}
