//! Objective controller, end to end.

use std::time::Duration;

use anyhow::Result;
use dialtone_crds::Objective;
use dialtone_e2e::*;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

fn objective(name: &str, run: &str, spec: serde_json::Value) -> Result<Objective> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Objective",
        "metadata": {"name": name, "labels": {RUN_LABEL: run}},
        "spec": spec,
    }))?)
}

fn capture(id: &str, slot: &str, next: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "kind": "capture",
        "capture": {"slot": slot, "primitive": slot, "onFailure": "end"},
        "next": next,
    })
}

fn end() -> serde_json::Value {
    serde_json::json!({"id": "done", "kind": "end", "end": {"outcome": "lead-captured"}})
}

fn valid_spec() -> serde_json::Value {
    serde_json::json!({
        "start": "ask-name",
        "steps": [capture("ask-name", "name", "ask-phone"), capture("ask-phone", "phone", "done"), end()],
    })
}

fn cyclic_spec() -> serde_json::Value {
    serde_json::json!({
        "start": "ask-name",
        "steps": [capture("ask-name", "name", "ask-phone"), capture("ask-phone", "phone", "ask-name")],
    })
}

/// `(status, reason, message)` of condition `type_`, once the status
/// describes the current generation.
async fn observed(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
) -> Result<Option<(String, String, String)>> {
    let o = Api::<Objective>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let s = o.status.unwrap_or_default();
    if s.observed_generation != o.metadata.generation {
        return Ok(None);
    }
    Ok(condition(&s.conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())))
}

async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: &str,
) -> Result<(String, String, String)> {
    wait_for(Duration::from_secs(20), || async move {
        Ok(observed(client, ns, name, type_)
            .await?
            .is_some_and(|(s, r, _)| s == status && r == reason))
    })
    .await?;
    Ok(observed(client, ns, name, type_).await?.unwrap_or_default())
}

#[tokio::test]
async fn objective_is_validated_and_a_cycle_is_named() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("ob");
    let ns = format!("{run}-ns");
    ensure_namespace(&env.client, &ns, Some(&run)).await?;
    let op = Operator::solo(&env, &run)?;
    wait_for(Duration::from_secs(20), || async {
        Ok(op.get("/readyz").await?.0 == 200)
    })
    .await?;
    let api: Api<Objective> = Api::namespaced(env.client.clone(), &ns);
    let pp = PostParams::default();

    // A valid Objective becomes Ready with its summary.
    api.create(&pp, &objective("lead", &run, valid_spec())?)
        .await?;
    wait_condition(&env.client, &ns, "lead", "Ready", "True", "Validated").await?;
    let lead = api.get("lead").await?;
    let status = lead.status.unwrap_or_default();
    assert_eq!(status.observed_generation, lead.metadata.generation);
    assert_eq!(status.summary.map(|s| s.steps), Some(3));
    assert!(
        condition(&status.conditions, "Validated").is_some_and(|c| c.status == "True"),
        "Validated=True"
    );

    // A cycle is named in the message.
    api.create(&pp, &objective("loop", &run, cyclic_spec())?)
        .await?;
    let (_, _, message) = wait_condition(
        &env.client,
        &ns,
        "loop",
        "Validated",
        "False",
        "CycleDetected",
    )
    .await?;
    assert!(message.contains('→'), "{message}");
    assert!(message.contains("ask-name"), "{message}");
    wait_condition(&env.client, &ns, "loop", "Ready", "False", "CycleDetected").await?;

    // Fixing it makes it Ready again, at the new generation.
    api.patch(
        "loop",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": valid_spec()})),
    )
    .await?;
    wait_condition(&env.client, &ns, "loop", "Ready", "True", "Validated").await?;
    let fixed = api.get("loop").await?;
    let status = fixed.status.unwrap_or_default();
    assert_eq!(status.observed_generation, fixed.metadata.generation);
    assert_eq!(fixed.metadata.generation, Some(2));
    assert_eq!(status.summary.map(|s| s.steps), Some(3));

    delete_namespace(&env.client, &ns).await;
    Ok(())
}
