//! Agent controller (the compile pipeline), end to end: real API server,
//! kube-controller-manager (garbage collection, Deployments), kwok (pods
//! become Ready) and PostgreSQL (config versions, phone routes), with a
//! local server standing in for Twilio's REST API.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use dialtone_crds::{Agent, Objective, Provider, Tenant};
use dialtone_e2e::*;
use dialtone_spine::{routes, versions};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use sqlx::PgPool;

const TIMEOUT: Duration = Duration::from_secs(90);
const PUBLIC_VOICE_URL: &str = "https://voice.e2e.example";

// --- A stand-in for Twilio's IncomingPhoneNumbers API -----------------------

/// What the fake Twilio saw.
#[derive(Default)]
struct TwilioState {
    account: String,
    authorization: String,
    /// Number → (sid, voice URL).
    numbers: BTreeMap<String, (String, Option<String>)>,
    /// `(number, VoiceUrl, VoiceMethod)` of every update.
    updates: Vec<(String, String, String)>,
}

type Shared = Arc<Mutex<TwilioState>>;

fn authorized(state: &TwilioState, headers: &HeaderMap, account: &str) -> bool {
    account == state.account
        && headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == state.authorization)
}

async fn list_numbers(
    State(state): State<Shared>,
    Path(account): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Ok(mut s) = state.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !authorized(&s, &headers, &account) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(number) = query.get("PhoneNumber").cloned() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Every number the tests use belongs to the account.
    let count = s.numbers.len();
    let (sid, url) = s
        .numbers
        .entry(number.clone())
        .or_insert_with(|| (format!("PN{count:032x}"), None))
        .clone();
    axum::Json(serde_json::json!({
        "incoming_phone_numbers": [{
            "sid": sid, "phone_number": number, "voice_url": url, "voice_method": "POST",
        }],
    }))
    .into_response()
}

async fn update_number(
    State(state): State<Shared>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let Ok(mut s) = state.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !authorized(&s, &headers, &account) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(sid) = file.strip_suffix(".json") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(number) = s
        .numbers
        .iter()
        .find(|(_, (s, _))| s == sid)
        .map(|(n, _)| n.clone())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (Some(url), Some(method)) = (form.get("VoiceUrl"), form.get("VoiceMethod")) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    s.updates
        .push((number.clone(), url.clone(), method.clone()));
    if let Some(entry) = s.numbers.get_mut(&number) {
        entry.1 = Some(url.clone());
    }
    axum::Json(serde_json::json!({"sid": sid, "phone_number": number, "voice_url": url}))
        .into_response()
}

/// Serves the fake Twilio on 127.0.0.1; returns its base URL.
async fn fake_twilio(account: &str, token: &str) -> Result<(String, Shared)> {
    let state: Shared = Arc::new(Mutex::new(TwilioState {
        account: account.to_owned(),
        authorization: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{account}:{token}"))
        ),
        ..TwilioState::default()
    }));
    let app = axum::Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
            get(list_numbers),
        )
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{file}",
            post(update_number),
        )
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), state))
}

// --- Helpers ------------------------------------------------------------------

/// A random Sydney-looking number, so tests never collide in the shared
/// database (nor with the demo's numbers).
fn random_number() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("+6129{:07}", h.finish() % 10_000_000)
}

fn docs(path: &str) -> Result<Vec<serde_json::Value>> {
    use serde::Deserialize;
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path);
    let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Ok(serde_json::Value::deserialize(d)?))
        .collect()
}

/// Labels `doc` for `run` and moves it into `namespace` (if namespaced).
fn adopt(mut doc: serde_json::Value, run: &str, namespace: Option<&str>) -> serde_json::Value {
    doc["metadata"]["labels"][RUN_LABEL] = run.into();
    if let Some(ns) = namespace {
        doc["metadata"]["namespace"] = ns.into();
    }
    doc
}

/// The Agent, once `check` holds for it.
async fn wait_agent(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Agent) -> bool,
) -> Result<Agent> {
    let api: Api<Agent> = Api::namespaced(client.clone(), ns);
    let waited = wait_for(TIMEOUT, || {
        let api = api.clone();
        let check = &check;
        async move { Ok(check(&api.get(name).await?)) }
    })
    .await;
    let agent = api.get(name).await?;
    if let Err(e) = waited {
        bail!(
            "Agent {ns}/{name}: {what}: {e:#}; status: {}",
            serde_json::to_string_pretty(&agent.status).unwrap_or_default()
        );
    }
    Ok(agent)
}

/// `(status, reason, message)` of an Agent's condition, once the status
/// describes its current generation.
fn cond(agent: &Agent, type_: &str) -> Option<(String, String, String)> {
    let s = agent.status.as_ref()?;
    if s.observed_generation != agent.metadata.generation {
        return None;
    }
    condition(&s.conditions, type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn holds(agent: &Agent, type_: &str, status: &str, reason: &str) -> bool {
    cond(agent, type_).is_some_and(|(s, r, _)| s == status && r == reason)
}

fn active(agent: &Agent) -> Option<String> {
    agent.status.as_ref().and_then(|s| s.active_version.clone())
}

async fn route_of(db: &PgPool, number: &str) -> Result<Option<(String, String, String)>> {
    Ok(routes::lookup(db, number)
        .await?
        .map(|r| (r.namespace, r.agent, r.active_version)))
}

/// Each of the Agent's numbers and its state.
fn number_states(agent: &Agent) -> BTreeMap<String, String> {
    agent
        .status
        .as_ref()
        .map(|s| {
            s.phone_numbers
                .iter()
                .map(|p| (p.number.clone(), p.state.clone()))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(
        TIMEOUT,
        || async move { Ok(api.get_opt(name).await?.is_none()) },
    )
    .await
    .with_context(|| format!("{name} still exists"))?;
    Ok(())
}

/// Deletes the Tenant (and so its namespace) and waits until it is gone.
async fn remove_tenant(client: &Client, name: &str) -> Result<()> {
    let tenants: Api<Tenant> = Api::all(client.clone());
    let _ = tenants.delete(name, &DeleteParams::default()).await;
    wait_gone(&tenants, name).await
}

async fn patch_spec<K>(api: &Api<K>, name: &str, spec: serde_json::Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": spec })),
    )
    .await?;
    Ok(())
}

async fn has_event(client: &Client, ns: &str, agent: &str, reason: &str) -> Result<bool> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(agent)
                && e.reason.as_deref() == Some(reason)
        }))
}

// --- The dental example -------------------------------------------------------

const ACCOUNT: &str = "ACdeadbeefdeadbeefdeadbeefdeadbeef";
const TOKEN: &str = "fake-auth-token-not-a-real-secret";

#[tokio::test]
async fn the_dental_example_compiles_rolls_out_rolls_back_and_goes() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let db = database().await?;
    let client = env.client.clone();
    let run = unique("ag");
    let ns = format!("{run}-dental");
    let (twilio_url, twilio) = fake_twilio(ACCOUNT, TOKEN).await?;
    let op = Operator::solo_with(&env, &run, &["--public-voice-url", PUBLIC_VOICE_URL])?;
    wait_for(Duration::from_secs(30), || async {
        Ok(op.get("/readyz").await?.0 == 200)
    })
    .await?;

    // The Tenant first: it makes the namespace and is granted the number.
    let number = random_number();
    let mut tenant = adopt(docs("dental-clinic/tenant.yaml")?.remove(0), &run, None);
    tenant["metadata"]["name"] = ns.clone().into();
    tenant["spec"]["namespace"] = ns.clone().into();
    tenant["spec"]["phoneNumbers"] = serde_json::json!([number]);
    let tenant: Tenant = serde_json::from_value(tenant)?;
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &tenant)
        .await?;
    wait_tenant_ready(&client, &ns, TIMEOUT).await?;

    // Secrets and Providers (Twilio at the fake), the Objective, the Agent.
    let pp = PostParams::default();
    for doc in docs("dental-clinic/providers.yaml")? {
        let mut doc = adopt(doc, &run, Some(&ns));
        if doc["kind"] == "Secret" {
            let secret: Secret = serde_json::from_value(doc)?;
            Api::<Secret>::namespaced(client.clone(), &ns)
                .create(&pp, &secret)
                .await?;
        } else {
            if doc["metadata"]["name"] == "twilio" {
                doc["spec"]["settings"]["baseUrl"] = twilio_url.clone().into();
            }
            let provider: Provider = serde_json::from_value(doc)?;
            Api::<Provider>::namespaced(client.clone(), &ns)
                .create(&pp, &provider)
                .await?;
        }
    }
    let objectives: Api<Objective> = Api::namespaced(client.clone(), &ns);
    let objective: Objective = serde_json::from_value(adopt(
        docs("dental-clinic/objectives.yaml")?.remove(0),
        &run,
        Some(&ns),
    ))?;
    objectives.create(&pp, &objective).await?;
    let mut agent = adopt(
        docs("dental-clinic/agents.yaml")?.remove(0),
        &run,
        Some(&ns),
    );
    agent["spec"]["phoneNumbers"][0]["number"] = number.clone().into();
    let agent: Agent = serde_json::from_value(agent)?;
    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    agents.create(&pp, &agent).await?;

    // Ready, routed in the database, bound at Twilio, voice pods running.
    let a = wait_agent(&client, &ns, "reception", "Ready", |a| {
        holds(a, "Ready", "True", "Serving")
    })
    .await?;
    let status = a.status.clone().unwrap_or_default();
    let v1 = active(&a).context("an active version")?;
    assert!(v1.starts_with("sha256:"), "{v1}");
    assert_eq!(status.history.len(), 1);
    assert_eq!(status.history[0].smoke_test.as_deref(), Some("Passed"));
    assert!(status.history[0].activated.is_some());
    for stage in [
        "Validated",
        "Compiled",
        "SmokeTested",
        "Routed",
        "Provisioned",
    ] {
        assert_eq!(
            cond(&a, stage).map(|c| c.0),
            Some("True".to_owned()),
            "{stage}"
        );
    }
    let webhook = format!("{PUBLIC_VOICE_URL}/twilio/voice");
    assert_eq!(status.phone_numbers.len(), 1);
    assert_eq!(status.phone_numbers[0].state, "Bound");
    assert_eq!(
        status.phone_numbers[0].voice_url.as_deref(),
        Some(webhook.as_str())
    );
    {
        let t = twilio.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        assert_eq!(
            t.updates,
            [(number.clone(), webhook.clone(), "POST".to_owned())],
            "the webhook was set once, with POST"
        );
    }
    assert_eq!(
        route_of(&db, &number).await?,
        Some((ns.clone(), "reception".into(), v1.clone()))
    );
    let loaded = versions::load(&db, &v1).await?.context("v1 stored")?;
    assert_eq!(loaded.agent.name, "reception");
    let short = |h: &str| h.trim_start_matches("sha256:")[..16].to_owned();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm = config_maps
        .get(&format!("reception-{}", short(&v1)))
        .await?;
    assert_eq!(cm.immutable, Some(true));
    assert!(cm.data.unwrap_or_default().contains_key("config.json"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = deployments.get("reception-voice").await?;
    assert_eq!(deployment.owner_references()[0].name, "reception");
    Api::<Service>::namespaced(client.clone(), &ns)
        .get("reception-voice")
        .await?;
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
        .get("reception-voice")
        .await?;
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns)
        .get("reception-voice")
        .await?;
    assert!(status.ready_replicas.unwrap_or(0) >= 1);
    wait_for(Duration::from_secs(20), || async {
        has_event(&client, &ns, "reception", "VersionActivated").await
    })
    .await
    .context("a VersionActivated event")?;

    // Editing the Objective: a new version, smoke-tested and activated, the
    // old one still listed, the voice pods untouched.
    let mut spec = serde_json::to_value(&objective.spec)?;
    let steps = spec["steps"].as_array_mut().context("steps")?;
    for step in steps.iter_mut() {
        if step["id"] == "book" {
            step["book"]["durationMinutes"] = 60.into();
        }
    }
    patch_spec(&objectives, "book-appointment", spec.clone()).await?;
    let a = wait_agent(&client, &ns, "reception", "a second version active", |a| {
        active(a).is_some_and(|v| v != v1) && holds(a, "Ready", "True", "Serving")
    })
    .await?;
    let v2 = active(&a).context("v2")?;
    let history: Vec<String> = a
        .status
        .as_ref()
        .map(|s| s.history.iter().map(|h| h.hash.clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        history,
        [v2.clone(), v1.clone()],
        "newest first, the old one kept"
    );
    assert_eq!(route_of(&db, &number).await?.map(|r| r.2), Some(v2.clone()));
    let after = deployments.get("reception-voice").await?;
    assert_eq!(
        after.metadata.generation, deployment.metadata.generation,
        "a new version does not touch the pod template"
    );

    // A cycle: Validated=False naming it; v2 keeps serving and stays routed.
    let mut cyclic = spec.clone();
    for step in cyclic["steps"].as_array_mut().context("steps")? {
        if step["id"] == "triage" {
            step["route"]["default"] = "greet".into();
        }
    }
    patch_spec(&objectives, "book-appointment", cyclic).await?;
    let a = wait_agent(
        &client,
        &ns,
        "reception",
        "Validated=False CycleDetected",
        |a| holds(a, "Validated", "False", "CycleDetected"),
    )
    .await?;
    let (_, _, message) = cond(&a, "Validated").unwrap_or_default();
    assert!(
        message.contains('→') && message.contains("greet"),
        "{message}"
    );
    assert!(holds(&a, "Ready", "False", "CycleDetected"));
    assert_eq!(active(&a), Some(v2.clone()));
    assert_eq!(route_of(&db, &number).await?.map(|r| r.2), Some(v2.clone()));

    // A new version whose test call fails: compiled, not activated.
    let mut failing = spec.clone();
    for step in failing["steps"].as_array_mut().context("steps")? {
        if step["id"] == "book" {
            step["book"]["durationMinutes"] = 90.into();
        }
    }
    failing["tests"][0]["turns"][1]["expect"]["step"] = "ask-service".into();
    patch_spec(&objectives, "book-appointment", failing).await?;
    let a = wait_agent(&client, &ns, "reception", "SmokeTested=False", |a| {
        holds(a, "SmokeTested", "False", "SmokeTestFailed")
    })
    .await?;
    let (_, _, message) = cond(&a, "SmokeTested").unwrap_or_default();
    assert!(
        message.contains("books a check-up on Thursday afternoon"),
        "{message}"
    );
    assert!(message.contains("turn 2"), "{message}");
    let status = a.status.clone().unwrap_or_default();
    assert_eq!(status.active_version, Some(v2.clone()));
    let v3 = status.candidate_version.clone().context("a candidate")?;
    assert!(v3 != v2 && v3 != v1);
    assert!(status.history.iter().any(|h| {
        h.hash == v3
            && h.smoke_test
                .as_deref()
                .is_some_and(|s| s.starts_with("Failed:"))
            && h.activated.is_none()
    }));
    assert_eq!(route_of(&db, &number).await?.map(|r| r.2), Some(v2.clone()));

    // Pinning v1 rolls back at once.
    patch_spec(
        &agents,
        "reception",
        serde_json::json!({"rollout": {"pinnedVersion": v1.clone()}}),
    )
    .await?;
    wait_agent(&client, &ns, "reception", "v1 active again", |a| {
        active(a).as_deref() == Some(v1.as_str())
    })
    .await?;
    assert_eq!(route_of(&db, &number).await?.map(|r| r.2), Some(v1.clone()));

    // Unpinned with a history of one: the newest (failing) version and the
    // active one stay; v2 goes from status, the database and its ConfigMap.
    agents
        .patch(
            "reception",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"rollout": {"pinnedVersion": null, "revisionHistoryLimit": 1}},
            })),
        )
        .await?;
    let a = wait_agent(&client, &ns, "reception", "history trimmed", |a| {
        a.status
            .as_ref()
            .is_some_and(|s| s.observed_generation == a.metadata.generation && s.history.len() == 2)
    })
    .await?;
    let status = a.status.clone().unwrap_or_default();
    let kept: Vec<&str> = status.history.iter().map(|h| h.hash.as_str()).collect();
    assert_eq!(kept, [v3.as_str(), v1.as_str()]);
    assert_eq!(status.active_version.as_deref(), Some(v1.as_str()));
    assert_eq!(status.candidate_version.as_deref(), Some(v3.as_str()));
    assert!(versions::load(&db, &v2).await?.is_none(), "v2 pruned");
    assert!(versions::load(&db, &v1).await?.is_some());
    wait_gone(&config_maps, &format!("reception-{}", short(&v2))).await?;
    config_maps
        .get(&format!("reception-{}", short(&v3)))
        .await
        .context("the candidate's ConfigMap stays")?;

    // Deleting the Agent removes its routes and (by garbage collection) its
    // children.
    agents.delete("reception", &DeleteParams::default()).await?;
    wait_gone(&agents, "reception").await?;
    assert_eq!(route_of(&db, &number).await?, None);
    wait_gone(&deployments, "reception-voice").await?;
    wait_gone(&config_maps, &format!("reception-{}", short(&v1))).await?;

    remove_tenant(&client, &ns).await?;
    Ok(())
}

// --- Conflicts and the shared pool --------------------------------------------

fn simple_objective(run: &str, ns: &str) -> Result<Objective> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Objective",
        "metadata": {"name": "lead", "namespace": ns, "labels": {RUN_LABEL: run}},
        "spec": {
            "start": "ask-name",
            "steps": [
                {"id": "ask-name", "kind": "capture",
                 "capture": {"slot": "name", "primitive": "name", "onFailure": "end", "confirm": "never"},
                 "next": "done"},
                {"id": "done", "kind": "end", "end": {"outcome": "lead-captured"}},
            ],
            "tests": [{
                "name": "takes a name",
                "turns": [{"say": "Jane Citizen"}],
                "expect": {"outcome": "lead-captured", "slots": {"name": "Jane Citizen"}},
            }],
        },
    }))?)
}

fn shared_agent(run: &str, ns: &str, name: &str, numbers: &[&str]) -> Result<Agent> {
    let numbers: Vec<serde_json::Value> = numbers
        .iter()
        .map(|n| serde_json::json!({"number": n}))
        .collect();
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name, "namespace": ns, "labels": {RUN_LABEL: run}},
        "spec": {"objectives": [{"name": "lead"}], "phoneNumbers": numbers},
    }))?)
}

async fn pool_replicas(client: &Client, run: &str) -> Result<Option<i32>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    Ok(api
        .get_opt(&voice_pool_name(run))
        .await?
        .and_then(|d| d.spec)
        .and_then(|s| s.replicas))
}

#[tokio::test]
async fn a_number_stays_with_its_first_agent_and_the_shared_pool_follows_demand() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let db = database().await?;
    let client = env.client.clone();
    let run = unique("ap");
    let ns = format!("{run}-shared");
    // A pool pod carries 5 calls; each Agent asks for 1 pod × 20 calls.
    let op = Operator::solo_with(
        &env,
        &run,
        &[
            "--voice-pool-min-replicas",
            "1",
            "--voice-pool-calls-per-pod",
            "5",
        ],
    )?;
    wait_for(Duration::from_secs(30), || async {
        Ok(op.get("/readyz").await?.0 == 200)
    })
    .await?;
    // The platform grants n1 and n2; n3 not yet.
    let (n1, n2, n3) = (random_number(), random_number(), random_number());
    let mut spec = basic_tenant_spec("Shared Plumbing");
    spec["namespace"] = ns.clone().into();
    spec["isolation"] = "shared".into();
    spec["limits"]["maxConcurrentCalls"] = 100.into();
    spec["phoneNumbers"] = serde_json::json!([n1, n2]);
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants
        .create(&PostParams::default(), &tenant_manifest(&ns, &run, spec)?)
        .await?;
    wait_tenant_ready(&client, &ns, TIMEOUT).await?;
    let pp = PostParams::default();
    Api::<Objective>::namespaced(client.clone(), &ns)
        .create(&pp, &simple_objective(&run, &ns)?)
        .await?;

    let agents: Api<Agent> = Api::namespaced(client.clone(), &ns);
    agents
        .create(&pp, &shared_agent(&run, &ns, "first", &[&n1, &n2])?)
        .await?;
    let first = wait_agent(&client, &ns, "first", "Ready", |a| {
        holds(a, "Ready", "True", "Serving")
    })
    .await?;
    agents
        .create(&pp, &shared_agent(&run, &ns, "second", &[&n2, &n3])?)
        .await?;
    // A number the Tenant was not granted never reaches the routes.
    let second = wait_agent(&client, &ns, "second", "PhoneNumberNotGranted", |a| {
        holds(a, "Ready", "False", "PhoneNumberNotGranted")
    })
    .await?;
    assert_eq!(
        number_states(&second).get(&n3).map(String::as_str),
        Some("NotGranted")
    );
    assert_eq!(route_of(&db, &n3).await?, None);
    assert!(
        active(&second).is_some(),
        "a version is active all the same"
    );

    patch_spec(
        &tenants,
        &ns,
        serde_json::json!({"phoneNumbers": [n1, n2, n3]}),
    )
    .await?;
    let second = wait_agent(&client, &ns, "second", "PhoneNumberConflict", |a| {
        holds(a, "Ready", "False", "PhoneNumberConflict")
    })
    .await?;
    let (_, _, message) = cond(&second, "Routed").unwrap_or_default();
    assert!(
        message.contains(&n2) && message.contains(&format!("{ns}/first")),
        "{message}"
    );
    let states = number_states(&second);
    assert_eq!(states.get(&n2).map(String::as_str), Some("Conflict"));
    assert_eq!(states.get(&n3).map(String::as_str), Some("Routed"));
    let first_version = active(&first).context("first active")?;
    assert_eq!(
        route_of(&db, &n2).await?,
        Some((ns.clone(), "first".into(), first_version))
    );
    assert_eq!(
        route_of(&db, &n3).await?.map(|r| r.1),
        Some("second".into())
    );

    // Shared Agents run in the pool: 2 × 20 calls / 5 per pod = 8 pods.
    wait_for(TIMEOUT, || async {
        Ok(pool_replicas(&client, &run).await? == Some(8))
    })
    .await
    .context("the pool sized for two Agents")?;
    let a = agents.get("first").await?;
    assert!(a.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= 1);
    assert!(
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt("first-voice")
            .await?
            .is_none(),
        "no voice pods of its own"
    );

    // Deleting the second Agent: its routes go, the first keeps n2, the
    // pool shrinks.
    agents.delete("second", &DeleteParams::default()).await?;
    wait_gone(&agents, "second").await?;
    assert_eq!(route_of(&db, &n3).await?, None);
    assert_eq!(route_of(&db, &n2).await?.map(|r| r.1), Some("first".into()));
    wait_for(TIMEOUT, || async {
        Ok(pool_replicas(&client, &run).await? == Some(4))
    })
    .await
    .context("the pool sized for one Agent")?;

    // A suspended Tenant keeps its numbers: the routes stay, marked
    // suspended, so no other Agent can take them.
    patch_spec(&tenants, &ns, serde_json::json!({"suspend": true})).await?;
    wait_agent(&client, &ns, "first", "Suspended", |a| {
        holds(a, "Routed", "False", "Suspended")
    })
    .await?;
    for n in [&n1, &n2] {
        let route = routes::lookup(&db, n).await?.context("route kept")?;
        assert!(route.suspended, "{n} is suspended");
        assert_eq!(route.agent, "first");
    }
    patch_spec(&tenants, &ns, serde_json::json!({"suspend": false})).await?;
    wait_agent(&client, &ns, "first", "Ready again", |a| {
        holds(a, "Ready", "True", "Serving")
    })
    .await?;
    let route = routes::lookup(&db, &n1).await?.context("route kept")?;
    assert!(!route.suspended, "resumed");

    agents.delete("first", &DeleteParams::default()).await?;
    wait_gone(&agents, "first").await?;
    assert_eq!(route_of(&db, &n1).await?, None);
    assert_eq!(route_of(&db, &n2).await?, None);

    remove_tenant(&client, &ns).await?;
    remove_voice_pool(&client, &run).await;
    Ok(())
}
