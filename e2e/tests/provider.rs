//! Provider and ClusterProvider controllers, end to end.

use std::time::{Duration, Instant};

use anyhow::Result;
use dialtone_crds::{ClusterProvider, Provider};
use dialtone_e2e::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};

const SID: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "fake-token-e2e-never-shown";

fn provider(name: &str, run: &str, secret: &str) -> Result<Provider> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Provider",
        "metadata": {"name": name, "labels": {RUN_LABEL: run}},
        "spec": {"type": "telephony", "vendor": "twilio", "credentialsSecretRef": {"name": secret}},
    }))?)
}

fn secret(name: &str, pairs: &[(&str, &str)]) -> Result<Secret> {
    let data: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
        .collect();
    Ok(serde_json::from_value(
        serde_json::json!({"metadata": {"name": name}, "stringData": data}),
    )?)
}

async fn ready_reason(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(String, String, String)>> {
    let p = Api::<Provider>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let s = p.status.unwrap_or_default();
    if s.observed_generation != p.metadata.generation {
        return Ok(None);
    }
    Ok(condition(&s.conditions, "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())))
}

async fn wait_reason(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
    timeout: Duration,
) -> Result<Duration> {
    wait_for(timeout, || async move {
        Ok(ready_reason(client, ns, name)
            .await?
            .is_some_and(|(s, r, _)| s == status && r == reason))
    })
    .await
}

#[tokio::test]
async fn provider_becomes_ready_when_its_secret_appears() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("pv");
    let ns = format!("{run}-ns");
    ensure_namespace(&env.client, &ns, Some(&run)).await?;
    let op = Operator::solo(&env, &run)?;
    wait_for(Duration::from_secs(20), || async {
        Ok(op.get("/readyz").await?.0 == 200)
    })
    .await?;
    let providers: Api<Provider> = Api::namespaced(env.client.clone(), &ns);
    providers
        .create(
            &PostParams::default(),
            &provider("twilio", &run, "twilio-creds")?,
        )
        .await?;
    wait_reason(
        &env.client,
        &ns,
        "twilio",
        "False",
        "SecretNotFound",
        Duration::from_secs(20),
    )
    .await?;
    let (_, _, message) = ready_reason(&env.client, &ns, "twilio")
        .await?
        .unwrap_or_default();
    assert!(message.contains(&format!("{ns}/twilio-creds")), "{message}");

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let start = Instant::now();
    secrets
        .create(
            &PostParams::default(),
            &secret("twilio-creds", &[("accountSid", SID), ("authToken", TOKEN)])?,
        )
        .await?;
    wait_reason(
        &env.client,
        &ns,
        "twilio",
        "True",
        "Validated",
        Duration::from_secs(10),
    )
    .await?;
    let latency = start.elapsed();
    println!("Provider Ready {latency:?} after its Secret was created");
    assert!(latency < Duration::from_secs(5), "took {latency:?}");
    let p = providers.get("twilio").await?;
    let rv = p.status.and_then(|s| s.secret_resource_version);
    assert!(rv.is_some(), "secretResourceVersion recorded");

    // Deleting the Secret makes it not ready again.
    secrets
        .delete("twilio-creds", &DeleteParams::default())
        .await?;
    wait_reason(
        &env.client,
        &ns,
        "twilio",
        "False",
        "SecretNotFound",
        Duration::from_secs(10),
    )
    .await?;
    delete_namespace(&env.client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn missing_key_and_bad_sid_never_show_values() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("pk");
    let ns = format!("{run}-ns");
    ensure_namespace(&env.client, &ns, Some(&run)).await?;
    let _op = Operator::solo(&env, &run)?;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let providers: Api<Provider> = Api::namespaced(env.client.clone(), &ns);
    let pp = PostParams::default();

    secrets
        .create(&pp, &secret("only-sid", &[("accountSid", SID)])?)
        .await?;
    providers
        .create(&pp, &provider("missing-key", &run, "only-sid")?)
        .await?;
    wait_reason(
        &env.client,
        &ns,
        "missing-key",
        "False",
        "KeyMissing",
        Duration::from_secs(20),
    )
    .await?;
    let (_, _, message) = ready_reason(&env.client, &ns, "missing-key")
        .await?
        .unwrap_or_default();
    assert!(
        message.contains("authToken") && message.contains(&format!("{ns}/only-sid")),
        "{message}"
    );
    assert!(!message.contains(SID), "{message}");

    let bad_sid = "ACthis-is-not-a-sid";
    secrets
        .create(
            &pp,
            &secret("bad-sid", &[("accountSid", bad_sid), ("authToken", TOKEN)])?,
        )
        .await?;
    providers
        .create(&pp, &provider("bad-sid", &run, "bad-sid")?)
        .await?;
    wait_reason(
        &env.client,
        &ns,
        "bad-sid",
        "False",
        "InvalidCredentials",
        Duration::from_secs(20),
    )
    .await?;

    // Nothing the operator wrote — status or Events — contains a value.
    for name in ["missing-key", "bad-sid"] {
        let yaml = serde_yaml::to_string(&providers.get(name).await?)?;
        for value in [SID, TOKEN, bad_sid] {
            assert!(!yaml.contains(value), "{name} shows a secret value");
        }
    }
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(env.client.clone(), &ns);
    let events = events.list(&ListParams::default()).await?;
    assert!(!events.items.is_empty(), "readiness changes publish Events");
    let dump = serde_json::to_string(&events.items)?;
    for value in [SID, TOKEN, bad_sid] {
        assert!(!dump.contains(value), "an Event shows a secret value");
    }
    delete_namespace(&env.client, &ns).await;
    Ok(())
}

#[tokio::test]
async fn cluster_provider_reads_the_named_namespace() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("cp");
    let ns = format!("{run}-ns");
    ensure_namespace(&env.client, &ns, Some(&run)).await?;
    let _op = Operator::solo(&env, &run)?;
    let api: Api<ClusterProvider> = Api::all(env.client.clone());
    let cp: ClusterProvider = serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "ClusterProvider",
        "metadata": {"name": run, "labels": {RUN_LABEL: &run}},
        "spec": {"type": "tts", "vendor": "elevenlabs", "settings": {"voiceId": "fake-voice"},
                 "credentialsSecretRef": {"name": "eleven", "namespace": &ns}},
    }))?;
    api.create(&PostParams::default(), &cp).await?;
    let reason = |want: &'static str| {
        let api = api.clone();
        let name = run.clone();
        move || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let s = api.get(&name).await?.status.unwrap_or_default();
                Ok(condition(&s.conditions, "Ready").is_some_and(|c| c.reason == want))
            }
        }
    };
    wait_for(Duration::from_secs(20), reason("SecretNotFound")).await?;
    Api::<Secret>::namespaced(env.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &secret("eleven", &[("apiKey", "fake-key-e2e")])?,
        )
        .await?;
    let took = wait_for(Duration::from_secs(10), reason("Validated")).await?;
    println!("ClusterProvider Ready {took:?} after its Secret was created");
    api.delete(&run, &DeleteParams::default()).await?;
    delete_namespace(&env.client, &ns).await;
    Ok(())
}
