//! Tenant controller, end to end.

use std::time::{Duration, Instant};

use anyhow::Result;
use dialtone_crds::Tenant;
use dialtone_e2e::*;

const RECONCILES: &str = "dialtone_reconciles_total";
const TENANT: &str = "controller=\"tenant\"";
use dialtone_spine::call_tokens;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};

#[tokio::test]
async fn tenant_gets_namespace_children_and_ready() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("tn");
    let op = Operator::solo(&env, &run)?;
    let tenants: Api<Tenant> = Api::all(env.client.clone());
    let name = run.clone();
    tenants
        .create(
            &PostParams::default(),
            &tenant_manifest(&name, &run, basic_tenant_spec("Harbour Dental"))?,
        )
        .await?;

    let took = wait_tenant_ready(&env.client, &name, Duration::from_secs(30)).await?;
    println!("tenant Ready after {took:?}");
    let t = tenants.get(&name).await?;
    let status = t.status.clone().unwrap_or_default();
    let ns = format!("tenant-{name}");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(status.health_score, Some(100));
    for type_ in ["NamespaceReady", "GuardrailsReady"] {
        assert_eq!(
            condition(&status.conditions, type_).map(|c| c.status.as_str()),
            Some("True"),
            "{type_}"
        );
    }
    assert!(
        t.finalizers()
            .iter()
            .any(|f| f == "dialtone.io/tenant-cleanup")
    );

    let namespace = Api::<Namespace>::all(env.client.clone()).get(&ns).await?;
    assert_eq!(namespace.labels().get("dialtone.io/tenant"), Some(&name));
    assert_eq!(
        namespace
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("dialtone")
    );
    let c = env.client.clone();
    let quota = Api::<ResourceQuota>::namespaced(c.clone(), &ns)
        .get("dialtone-quota")
        .await?;
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(hard.get("requests.cpu").map(|q| q.0.as_str()), Some("2"));
    assert_eq!(hard.get("pods").map(|q| q.0.as_str()), Some("10"));
    Api::<LimitRange>::namespaced(c.clone(), &ns)
        .get("dialtone-limits")
        .await?;
    let policies = Api::<NetworkPolicy>::namespaced(c.clone(), &ns);
    policies.get("dialtone-default-deny").await?;
    policies.get("dialtone-allow-voice").await?;
    Api::<ServiceAccount>::namespaced(c.clone(), &ns)
        .get("dialtone-voice")
        .await?;
    Api::<Role>::namespaced(c.clone(), &ns)
        .get("dialtone-voice")
        .await?;
    Api::<RoleBinding>::namespaced(c.clone(), &ns)
        .get("dialtone-voice")
        .await?;

    // A spec change: new generation observed, quota follows.
    let patch = serde_json::json!({"spec": {"limits": {"pods": 7}}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for(Duration::from_secs(20), || {
        let (tenants, c, ns, name) = (tenants.clone(), c.clone(), ns.clone(), name.clone());
        async move {
            let t = tenants.get(&name).await?;
            let quota = Api::<ResourceQuota>::namespaced(c, &ns)
                .get("dialtone-quota")
                .await?;
            let pods = quota
                .spec
                .and_then(|s| s.hard)
                .and_then(|h| h.get("pods").cloned());
            Ok(t.status.and_then(|s| s.observed_generation) == Some(2)
                && pods.map(|q| q.0) == Some("7".into()))
        }
    })
    .await?;

    // A second, identical reconcile writes no status: the resourceVersion
    // holds. A change to the tenant's namespace triggers that reconcile.
    let rv = tenants.get(&name).await?.resource_version();
    let before = op.metric(RECONCILES, TENANT).await?;
    Api::<Namespace>::all(c.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"annotations": {"e2e/poke": "1"}}})),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while op.metric(RECONCILES, TENANT).await? <= before {
        assert!(
            Instant::now() < deadline,
            "changing the namespace did not reconcile the tenant"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tenants.get(&name).await?.resource_version(),
        rv,
        "no-op reconcile wrote status"
    );

    // suspend: Ready stays True with reason Suspended.
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"spec": {"suspend": true}})),
        )
        .await?;
    wait_for(Duration::from_secs(20), || {
        let tenants = tenants.clone();
        let name = name.clone();
        async move {
            let s = tenants.get(&name).await?.status.unwrap_or_default();
            Ok(condition(&s.conditions, "Ready")
                .is_some_and(|c| c.status == "True" && c.reason == "Suspended")
                && condition(&s.conditions, "Suspended").is_some_and(|c| c.status == "True"))
        }
    })
    .await?;

    let (code, body) = op.get("/metrics").await?;
    assert_eq!(code, 200);
    assert!(
        body.contains("dialtone_reconciles_total{controller=\"tenant\",result=\"success\"}"),
        "{body}"
    );
    assert!(body.contains("dialtone_leader 1"));

    // The call token: issued into a Secret, its digest stored; deleting the
    // Secret rotates it, and the old one keeps working for the grace hour.
    let db = database().await?;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &ns);
    let first = calls_token(&secrets).await?;
    assert!(first.starts_with(call_tokens::TENANT_PREFIX), "{first}");
    assert_eq!(
        call_tokens::tenant_of(&db, &call_tokens::digest(&first)).await?,
        Some(name.clone())
    );
    secrets
        .delete("dialtone-calls-token", &DeleteParams::default())
        .await?;
    let rotated = wait_for(Duration::from_secs(30), || {
        let secrets = secrets.clone();
        let first = first.clone();
        async move {
            Ok(match secrets.get_opt("dialtone-calls-token").await? {
                Some(_) => calls_token(&secrets).await? != first,
                None => false,
            })
        }
    })
    .await;
    assert!(
        rotated.is_ok(),
        "the Secret was not issued again: {rotated:?}"
    );
    let second = calls_token(&secrets).await?;
    wait_for(Duration::from_secs(30), || {
        let db = db.clone();
        let second = second.clone();
        async move {
            Ok(call_tokens::tenant_of(&db, &call_tokens::digest(&second))
                .await?
                .is_some())
        }
    })
    .await?;
    let old_expires: Option<bool> = sqlx::query_scalar(
        "SELECT expires_at BETWEEN now() + interval '50 minutes' AND now() + interval '61 minutes' \
         FROM call_tokens WHERE token_sha256 = $1",
    )
    .bind(call_tokens::digest(&first).as_slice())
    .fetch_one(&db)
    .await?;
    assert_eq!(old_expires, Some(true), "the old token expires in an hour");
    assert_eq!(
        call_tokens::tenant_of(&db, &call_tokens::digest(&first)).await?,
        Some(name.clone()),
        "the old token works during the grace"
    );

    tenants.delete(&name, &DeleteParams::default()).await?;
    wait_for(Duration::from_secs(60), || {
        let tenants = tenants.clone();
        let name = name.clone();
        async move { Ok(tenants.get_opt(&name).await?.is_none()) }
    })
    .await?;
    // A deleted Tenant's tokens open nothing.
    assert_eq!(
        call_tokens::keys_of(&db, &name).await?,
        Vec::<[u8; 32]>::new()
    );
    Ok(())
}

/// The token in the tenant's `dialtone-calls-token` Secret.
async fn calls_token(secrets: &Api<Secret>) -> Result<String> {
    let secret = secrets.get("dialtone-calls-token").await?;
    let bytes = secret
        .data
        .and_then(|d| d.get("token").cloned())
        .map(|b| b.0)
        .unwrap_or_default();
    Ok(String::from_utf8(bytes)?)
}

#[tokio::test]
async fn deleting_a_tenant_removes_its_namespace() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("td");
    let _op = Operator::solo(&env, &run)?;
    let tenants: Api<Tenant> = Api::all(env.client.clone());
    let name = run.clone();
    let ns = format!("{run}-ns");
    let mut spec = basic_tenant_spec("Rapid Plumbing");
    spec["namespace"] = serde_json::json!(ns);
    tenants
        .create(&PostParams::default(), &tenant_manifest(&name, &run, spec)?)
        .await?;
    wait_tenant_ready(&env.client, &name, Duration::from_secs(30)).await?;

    let start = Instant::now();
    tenants.delete(&name, &DeleteParams::default()).await?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    // While the namespace goes, the Tenant is held by its finalizer.
    let held = tenants.get_opt(&name).await?;
    if let Some(t) = held {
        assert!(t.metadata.deletion_timestamp.is_some());
    }
    wait_for(Duration::from_secs(90), || {
        let (namespaces, tenants, ns, name) = (
            namespaces.clone(),
            tenants.clone(),
            ns.clone(),
            name.clone(),
        );
        async move {
            Ok(namespaces.get_opt(&ns).await?.is_none() && tenants.get_opt(&name).await?.is_none())
        }
    })
    .await?;
    println!("tenant and namespace gone after {:?}", start.elapsed());
    Ok(())
}

#[tokio::test]
async fn namespace_owned_by_someone_else_is_never_adopted() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("tc");
    let _op = Operator::solo(&env, &run)?;
    let ns = format!("{run}-theirs");
    ensure_namespace(&env.client, &ns, None).await?;
    let tenants: Api<Tenant> = Api::all(env.client.clone());
    let mut spec = basic_tenant_spec("Squatter");
    spec["namespace"] = serde_json::json!(ns);
    tenants
        .create(&PostParams::default(), &tenant_manifest(&run, &run, spec)?)
        .await?;
    wait_for(Duration::from_secs(20), || {
        let tenants = tenants.clone();
        let name = run.clone();
        async move {
            let s = tenants.get(&name).await?.status.unwrap_or_default();
            Ok(condition(&s.conditions, "Ready")
                .is_some_and(|c| c.status == "False" && c.reason == "NamespaceConflict"))
        }
    })
    .await?;
    tenants.delete(&run, &DeleteParams::default()).await?;
    wait_for(Duration::from_secs(30), || {
        let tenants = tenants.clone();
        let name = run.clone();
        async move { Ok(tenants.get_opt(&name).await?.is_none()) }
    })
    .await?;
    // Not ours: still there.
    let namespace = Api::<Namespace>::all(env.client.clone()).get(&ns).await?;
    assert!(namespace.metadata.deletion_timestamp.is_none());
    delete_namespace(&env.client, &ns).await;
    Ok(())
}

fn expect_refused(result: Result<Tenant, kube::Error>, message: &str) {
    match result {
        Ok(_) => panic!("the API server accepted an invalid Tenant (expected {message:?})"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains(message),
                "{:?} does not contain {message:?}",
                status.message
            );
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

#[tokio::test]
async fn invalid_tenants_are_refused_by_cel() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique("tv");
    let tenants: Api<Tenant> = Api::all(env.client.clone());
    let pp = PostParams::default();

    let mut bad_phone = basic_tenant_spec("Bad Phone");
    bad_phone["escalationContacts"][0]["phone"] = serde_json::json!("0291234567");
    expect_refused(
        tenants
            .create(&pp, &tenant_manifest(&format!("{run}-a"), &run, bad_phone)?)
            .await,
        "phone must be E.164",
    );

    let mut negative = basic_tenant_spec("Negative Budget");
    negative["limits"]["dailyBudgetUsd"] = serde_json::json!(-5.0);
    expect_refused(
        tenants
            .create(&pp, &tenant_manifest(&format!("{run}-b"), &run, negative)?)
            .await,
        "dailyBudgetUsd must not be negative",
    );

    // spec.namespace is immutable (no operator needed: admission alone).
    let name = format!("{run}-c");
    let mut spec = basic_tenant_spec("Immutable");
    spec["namespace"] = serde_json::json!(format!("{run}-one"));
    tenants
        .create(&pp, &tenant_manifest(&name, &run, spec)?)
        .await?;
    let patch = serde_json::json!({"spec": {"namespace": format!("{run}-two")}});
    let changed = tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    expect_refused(changed, "spec.namespace is immutable");
    // Nobody reconciles this run's Tenants, so no finalizer holds it.
    tenants.delete(&name, &DeleteParams::default()).await?;
    Ok(())
}
