//! Convergence benchmark (issue 5), run by `cargo xtask bench`.
//!
//! 1. Tenants (`BENCH_TENANTS`, default 100), one Objective in each, Ready
//!    under an operator started for this run.
//! 2. **Operator:** `BENCH_AGENTS` (default 1,000) dedicated Agents applied at
//!    once; the time until every one is `Ready=True` at its generation, and
//!    the operator's peak RSS while it converges.
//! 3. **Floor:** the same number of Agents that the operator does not select,
//!    with a plain client making the writes the operator makes for each (the
//!    config ConfigMap, the Deployment, the Service and the status), and the
//!    time until every Deployment has a ready replica, as the operator's
//!    Agents need.
//! 4. **At rest:** shared Agents added until `BENCH_REST_AGENTS` (default
//!    10,000) exist; the operator's RSS once they are all Ready and it idles.
//!
//! Prints one `convergence:` line per figure and removes what it created.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dialtone_crds::{Agent, Objective};
use dialtone_e2e::{Operator, RUN_LABEL, condition, tenant_manifest, unique};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// Requests in flight at once, for the operator's inputs and the floor alike.
const IN_FLIGHT: usize = 32;
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(1800);
/// The floor run's numbers start here, clear of the measured run's.
const FLOOR_OFFSET: usize = 5_000_000;

/// The number Agent `i` answers.
fn number(i: usize, offset: usize) -> String {
    format!("+6120{:07}", i + offset)
}

fn setting(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value} is not a number")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let tenants = setting("BENCH_TENANTS", 100)?;
    let agents = setting("BENCH_AGENTS", 1000)?;
    let rest_agents = setting("BENCH_REST_AGENTS", 10_000)?.max(agents);
    let Some(env) = dialtone_e2e::env().await? else {
        bail!("the convergence benchmark needs the test environment (`cargo xtask testenv up`)");
    };
    let run = unique("bench");
    // The Agent controller's concurrency is a tuning flag (default 4); a
    // platform applying a thousand Agents at once would raise it.
    let operator = Operator::solo_with(&env, &run, &["--concurrency", "16"])?;
    let pid = operator.pid().context("operator not running")?;
    let bench = Bench {
        client: env.client.clone(),
        run: run.clone(),
        namespaces: (0..tenants).map(|t| format!("{run}-t{t}")).collect(),
        agents: rest_agents,
        floor_agents: agents,
    };
    let outcome = bench.measure(pid, agents, rest_agents).await;
    // Tenants own their namespaces: deleting them (operator still running,
    // so finalizers complete) removes everything else.
    bench.cleanup().await;
    dialtone_e2e::remove_voice_pool(&env.client, &run).await;
    drop(operator);
    outcome
}

struct Bench {
    client: Client,
    run: String,
    namespaces: Vec<String>,
    /// Agents of the measured run (their numbers are granted up front).
    agents: usize,
    /// Agents of the floor run.
    floor_agents: usize,
}

impl Bench {
    async fn measure(&self, pid: u32, agents: usize, rest_agents: usize) -> Result<()> {
        let setup = Instant::now();
        self.create_tenants().await?;
        println!(
            "convergence: {} tenants with an Objective each Ready in {:.1} s",
            self.namespaces.len(),
            setup.elapsed().as_secs_f64()
        );

        // The operator.
        let start = Instant::now();
        self.apply_agents(0..agents, "dedicated", &self.run).await?;
        let applied = start.elapsed();
        self.wait_agents_ready(agents).await?;
        let operator_time = start.elapsed();
        // The kernel keeps the high-water mark.
        let peak_rss = rss_kib(pid, "VmHWM:")?;
        println!(
            "convergence: operator: {agents} Agents Ready in {:.1} s (applied in {:.1} s), peak RSS {:.1} MiB",
            operator_time.as_secs_f64(),
            applied.as_secs_f64(),
            peak_rss as f64 / 1024.0
        );

        // The floor: the same writes from a plain client, for Agents the
        // operator does not select.
        let floor_run = format!("{}-floor", self.run);
        let start = Instant::now();
        self.apply_agents(0..agents, "dedicated", &floor_run)
            .await?;
        self.floor_writes(agents, &floor_run).await?;
        self.wait_floor_deployments(agents, &floor_run).await?;
        let floor_time = start.elapsed();
        println!(
            "convergence: floor: the same writes from a plain client in {:.1} s",
            floor_time.as_secs_f64()
        );
        println!(
            "convergence: ratio {:.2} (target <= 1.5)",
            operator_time.as_secs_f64() / floor_time.as_secs_f64()
        );

        // At rest with many Agents.
        if rest_agents > agents {
            let start = Instant::now();
            self.apply_agents(agents..rest_agents, "shared", &self.run)
                .await?;
            self.wait_agents_ready(rest_agents).await?;
            println!(
                "convergence: {} more shared Agents Ready in {:.1} s",
                rest_agents - agents,
                start.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_secs(30)).await;
            println!(
                "convergence: operator RSS at rest with {rest_agents} Agents {:.1} MiB (peak {:.1} MiB, target <= 150)",
                rss_kib(pid, "VmRSS:")? as f64 / 1024.0,
                rss_kib(pid, "VmHWM:")? as f64 / 1024.0
            );
        }
        Ok(())
    }

    async fn create_tenants(&self) -> Result<()> {
        let tenants: Api<dialtone_crds::Tenant> = Api::all(self.client.clone());
        stream::iter(self.namespaces.iter().enumerate().map(|(t, ns)| {
            let tenants = tenants.clone();
            let mine = |i: &usize| i % self.namespaces.len() == t;
            let granted: Vec<String> = (0..self.agents)
                .filter(mine)
                .map(|i| number(i, 0))
                .chain(
                    (0..self.floor_agents)
                        .filter(mine)
                        .map(|i| number(i, FLOOR_OFFSET)),
                )
                .collect();
            async move {
                let mut spec = dialtone_e2e::basic_tenant_spec(ns);
                spec["namespace"] = ns.clone().into();
                spec["phoneNumbers"] = granted.into();
                spec["isolation"] = "dedicated".into();
                // Room for ten dedicated Agents and ten floor Deployments.
                spec["limits"] = serde_json::json!({
                    "cpu": "20", "memory": "40Gi", "pods": 40, "dailyBudgetUsd": 25.0,
                });
                let tenant = tenant_manifest(ns, &self.run, spec)?;
                tenants.create(&PostParams::default(), &tenant).await?;
                dialtone_e2e::wait_tenant_ready(&self.client, ns, Duration::from_secs(180)).await?;
                let objective: Objective = serde_json::from_value(serde_json::json!({
                    "apiVersion": "dialtone.io/v1alpha1",
                    "kind": "Objective",
                    "metadata": {"name": "lead", "namespace": ns, "labels": {RUN_LABEL: &self.run}},
                    "spec": {"template": "lead-capture"},
                }))?;
                Api::<Objective>::namespaced(self.client.clone(), ns)
                    .create(&PostParams::default(), &objective)
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Agent `i` lives in tenant `i % tenants` and answers `+6120<i>`.
    fn agent(&self, i: usize, isolation: &str, run: &str) -> Result<Agent> {
        let ns = &self.namespaces[i % self.namespaces.len()];
        let prefix = if run == self.run { "agent" } else { "floor" };
        let offset = if run == self.run { 0 } else { FLOOR_OFFSET };
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "dialtone.io/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": format!("{prefix}-{i}"), "namespace": ns, "labels": {RUN_LABEL: run}},
            "spec": {
                "objectives": [{"name": "lead"}],
                "phoneNumbers": [{"number": number(i, offset), "direction": "inbound"}],
                "runtime": {"minReplicas": 1, "maxReplicas": 2, "cpu": "100m", "memory": "128Mi", "isolation": isolation},
            },
        }))?)
    }

    async fn apply_agents(
        &self,
        range: std::ops::Range<usize>,
        isolation: &str,
        run: &str,
    ) -> Result<()> {
        stream::iter(range.map(|i| async move {
            let agent = self.agent(i, isolation, run)?;
            let ns = agent.metadata.namespace.clone().unwrap_or_default();
            Api::<Agent>::namespaced(self.client.clone(), &ns)
                .create(&PostParams::default(), &agent)
                .await
                .with_context(|| format!("creating Agent {i}"))?;
            Ok::<_, anyhow::Error>(())
        }))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// Polls the run's Agents until `count` are Ready at their generation.
    async fn wait_agents_ready(&self, count: usize) -> Result<()> {
        let agents: Api<Agent> = Api::all(self.client.clone());
        let params = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run));
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let list = agents.list(&params).await?;
            let ready = list
                .items
                .iter()
                .filter(|agent| {
                    agent.status.as_ref().is_some_and(|status| {
                        status.observed_generation == agent.metadata.generation
                            && condition(&status.conditions, "Ready")
                                .is_some_and(|c| c.status == "True")
                    })
                })
                .count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                let reasons = not_ready_reasons(&list.items);
                bail!(
                    "{ready} of {count} Agents Ready after {CONVERGE_TIMEOUT:?}; not ready: {reasons:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What the operator writes for an Agent, from a plain client.
    async fn floor_writes(&self, count: usize, run: &str) -> Result<()> {
        let params = PatchParams::apply("dialtone-bench-floor");
        stream::iter((0..count).map(|i| {
            let params = params.clone();
            async move {
                let agent = self.agent(i, "dedicated", run)?;
                let name = agent.metadata.name.clone().unwrap_or_default();
                let ns = agent.metadata.namespace.clone().unwrap_or_default();
                let labels = BTreeMap::from([
                    (RUN_LABEL.to_owned(), run.to_owned()),
                    ("app.kubernetes.io/instance".to_owned(), name.clone()),
                ]);
                let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-0123456789abcdef"), "labels": labels},
                    "immutable": true,
                    "data": {"config.json": floor_config(&name)},
                }))?;
                Api::<ConfigMap>::namespaced(self.client.clone(), &ns)
                    .create(&PostParams::default(), &config_map)
                    .await?;
                let deployment: Deployment =
                    serde_json::from_value(floor_deployment(&name, &labels))?;
                Api::<Deployment>::namespaced(self.client.clone(), &ns)
                    .patch(&name, &params, &Patch::Apply(&deployment))
                    .await?;
                let service: Service = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"selector": {"app.kubernetes.io/instance": name},
                             "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
                }))?;
                Api::<Service>::namespaced(self.client.clone(), &ns)
                    .patch(&name, &params, &Patch::Apply(&service))
                    .await?;
                let status = serde_json::json!({
                    "apiVersion": "dialtone.io/v1alpha1", "kind": "Agent",
                    "status": {
                        "observedGeneration": 1,
                        "activeVersion": "sha256:0123456789abcdef",
                        "conditions": [{
                            "type": "Ready", "status": "True", "reason": "Serving",
                            "message": "floor", "observedGeneration": 1,
                            "lastTransitionTime": "2026-11-22T00:00:00Z",
                        }],
                    },
                });
                Api::<Agent>::namespaced(self.client.clone(), &ns)
                    .patch_status(&name, &params, &Patch::Apply(&status))
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    async fn wait_floor_deployments(&self, count: usize, run: &str) -> Result<()> {
        let deployments: Api<Deployment> = Api::all(self.client.clone());
        let params = ListParams::default().labels(&format!("{RUN_LABEL}={run}"));
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let ready = deployments
                .list(&params)
                .await?
                .items
                .iter()
                .filter(|d| {
                    d.status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0)
                        >= 1
                })
                .count();
            if ready >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{ready} of {count} floor Deployments ready after {CONVERGE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn cleanup(&self) {
        let params = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run));
        // Agents first, while the operator runs their finalizers; left to
        // the namespace controller, thousands of them take far longer.
        stream::iter(self.namespaces.iter().map(|ns| {
            let params = params.clone();
            async move {
                let agents: Api<Agent> = Api::namespaced(self.client.clone(), ns);
                let _ = agents
                    .delete_collection(&DeleteParams::background(), &params)
                    .await;
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
        let all_agents: Api<Agent> = Api::all(self.client.clone());
        let one_agent = params.clone().limit(1);
        let agents_gone = dialtone_e2e::wait_for(CONVERGE_TIMEOUT, || {
            let agents = all_agents.clone();
            let params = one_agent.clone();
            async move { Ok(agents.list(&params).await?.items.is_empty()) }
        })
        .await;
        if let Err(err) = agents_gone {
            eprintln!("warning: the benchmark's Agents were not all removed: {err:#}");
        }
        let tenants: Api<dialtone_crds::Tenant> = Api::all(self.client.clone());
        for ns in &self.namespaces {
            let _ = tenants.delete(ns, &DeleteParams::background()).await;
        }
        let gone = dialtone_e2e::wait_for(Duration::from_secs(600), || {
            let tenants = tenants.clone();
            let params = params.clone();
            async move { Ok(tenants.list(&params).await?.items.is_empty()) }
        })
        .await;
        if let Err(err) = gone {
            eprintln!("warning: the benchmark's Tenants were not all removed: {err:#}");
        }
    }
}

/// A config document of the size the operator stores (a compiled Agent).
fn floor_config(name: &str) -> String {
    let steps: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"id": format!("{name}-step-{i}"), "prompt": "x".repeat(120)}))
        .collect();
    serde_json::json!({"agent": name, "steps": steps}).to_string()
}

/// A Deployment shaped like a dedicated voice pod's.
fn floor_deployment(name: &str, labels: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 60,
                    "containers": [{
                        "name": "voice", "image": "dialtone/voice:bench",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                      "limits": {"cpu": "100m", "memory": "128Mi"}},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                    }],
                },
            },
        },
    })
}

fn not_ready_reasons(agents: &[Agent]) -> BTreeMap<String, usize> {
    let mut reasons = BTreeMap::new();
    for agent in agents {
        let reason = agent
            .status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Ready"))
            .filter(|c| c.status != "True")
            .map(|c| c.reason.clone());
        if let Some(reason) = reason {
            *reasons.entry(reason).or_insert(0) += 1;
        }
    }
    reasons
}

/// A `/proc/<pid>/status` memory line in KiB.
fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}
