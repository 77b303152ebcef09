//! The smallest Agent the benchmarks need: a Tenant in UTC, an Objective
//! that ends at once, one Provider, and the Agent's own spec, compiled
//! into a config version. Shared by the workflow and dialer benchmarks.

use dialtone_crds::{Agent, Objective, Provider, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use serde_json::{Value, json};

/// Compiles Agent `a` in `namespace` with `provider_spec` as Provider
/// `provider` and `agent_spec` (its objective is added).
pub fn one_step_version(
    namespace: &str,
    provider: &str,
    provider_spec: Value,
    mut agent_spec: Value,
) -> ConfigVersion {
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Tenant", "metadata": {"name": namespace},
        "spec": {"displayName": "Bench", "namespace": namespace, "profile": {"timezone": "UTC"},
                 "escalationContacts": [{"name": "m", "phone": "+61291234567"}]},
    }))
    .expect("tenant");
    let objective: Objective = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Objective",
        "metadata": {"name": "o", "namespace": namespace},
        "spec": {"start": "done", "steps": [{"id": "done", "kind": "end", "end": {"outcome": "done"}}]},
    }))
    .expect("objective");
    let provider: Provider = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Provider",
        "metadata": {"name": provider, "namespace": namespace},
        "spec": provider_spec,
    }))
    .expect("provider");
    agent_spec["objectives"] = json!([{"name": "o"}]);
    let agent: Agent = serde_json::from_value(json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Agent",
        "metadata": {"name": "a", "namespace": namespace},
        "spec": agent_spec,
    }))
    .expect("agent");
    compile(&CompileInput {
        agent: &agent,
        tenant: &tenant,
        objectives: vec![&objective],
        providers: vec![&provider],
        cluster_providers: vec![],
    })
    .expect("compiles")
}
