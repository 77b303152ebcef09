//! `spine::versions` and `spine::routes` against a real PostgreSQL.
//!
//! The database is `DATABASE_URL`, else the one in `.testenv/database-url`
//! at the workspace root (`cargo xtask testenv up`). Without either, the
//! tests fail under `CI=true`/`1` or `DIALTONE_REQUIRE_ENV=1` and are skipped
//! otherwise. Tests share the database, so every test uses its own random
//! namespace, Agents and phone numbers and never truncates a table.

use dialtone_crds::{Agent, Objective, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use dialtone_spine::routes::{self, Conflict};
use dialtone_spine::versions::{self, VersionError};
use sqlx::PgPool;
use uuid::Uuid;

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
}

fn database_url() -> Option<String> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A pool, or `None` to skip the test (panics when the environment is required).
async fn pool() -> Option<PgPool> {
    let why = match database_url() {
        None => {
            "no DATABASE_URL and no .testenv/database-url (run `cargo xtask testenv up`)".to_owned()
        }
        Some(url) => match sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
        {
            Ok(pool) => return Some(pool),
            Err(e) => format!("cannot connect to the test database: {e}"),
        },
    };
    assert!(!required(), "the database is required but {why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// A namespace nobody else uses.
fn namespace() -> String {
    format!("t-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A random Australian-looking E.164 number.
fn number() -> String {
    let digits: String = Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(8)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("+612{digits}")
}

/// A config version of Agent `namespace/agent` whose single objective ends
/// with `outcome` (different outcomes give different versions).
fn version(namespace: &str, agent: &str, outcome: &str) -> ConfigVersion {
    let tenant: Tenant = serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {
            "displayName": "Acme", "namespace": namespace,
            "profile": {"timezone": "Australia/Sydney"},
            "escalationContacts": [{"name": "manager", "phone": "+61291234567"}],
        },
    }))
    .expect("tenant");
    let objective: Objective = serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Objective",
        "metadata": {"name": "lead", "namespace": namespace},
        "spec": {"start": "done", "steps": [{"id": "done", "kind": "end", "end": {"outcome": outcome}}]},
    }))
    .expect("objective");
    let agent: Agent = serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1", "kind": "Agent",
        "metadata": {"name": agent, "namespace": namespace},
        "spec": {"objectives": [{"name": "lead"}]},
    }))
    .expect("agent");
    compile(&CompileInput {
        agent: &agent,
        tenant: &tenant,
        objectives: vec![&objective],
        providers: vec![],
        cluster_providers: vec![],
    })
    .expect("compiles")
}

#[tokio::test]
async fn a_version_is_stored_once_and_loads_verified() {
    let Some(pool) = pool().await else { return };
    let ns = namespace();
    let v = version(&ns, "front", "done");
    assert!(
        versions::put(&pool, &v, "acme", &ns, "front")
            .await
            .expect("put")
    );
    assert!(
        !versions::put(&pool, &v, "acme", &ns, "front")
            .await
            .expect("put again")
    );
    let loaded = versions::load(&pool, &v.hash).await.expect("load");
    assert_eq!(loaded.as_ref(), Some(&v.config));
    assert_eq!(
        versions::list(&pool, &ns, "front").await.expect("list"),
        [v.hash.as_str()]
    );
    let missing = format!(
        "sha256:{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    assert_eq!(versions::load(&pool, &missing).await.expect("load"), None);

    // Bytes that do not hash to their name are refused.
    // Random, so that reruns against the same database do not collide.
    let forged = format!(
        "sha256:{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    sqlx::query(
        "INSERT INTO config_versions (hash, tenant, namespace, agent, core_version, config, canonical) \
         VALUES ($1, 'acme', $2, 'forged', 'x', $3::jsonb, $3)",
    )
    .bind(&forged)
    .bind(&ns)
    .bind(&v.canonical_json)
    .execute(&pool)
    .await
    .expect("insert forged");
    match versions::load(&pool, &forged).await {
        Err(VersionError::Load { hash, .. }) => assert_eq!(hash, forged),
        other => panic!("expected a load error, got {other:?}"),
    }
    // Versions are immutable.
    let update = sqlx::query("UPDATE config_versions SET agent = 'other' WHERE hash = $1")
        .bind(&v.hash)
        .execute(&pool)
        .await;
    assert!(update.is_err(), "config_versions rejects UPDATE");
}

#[tokio::test]
async fn activation_routes_moves_removes_and_reports_conflicts() {
    let Some(pool) = pool().await else { return };
    let ns = namespace();
    let (v1, v2) = (version(&ns, "front", "one"), version(&ns, "front", "two"));
    let b1 = version(&ns, "back", "one");
    for (v, agent) in [(&v1, "front"), (&v2, "front"), (&b1, "back")] {
        versions::put(&pool, v, "acme", &ns, agent)
            .await
            .expect("put");
    }
    let (n1, n2, n3) = (number(), number(), number());

    let a = routes::activate(
        &pool,
        "acme",
        &ns,
        "front",
        &[n1.clone(), n2.clone()],
        &v1.hash,
    )
    .await
    .expect("activate front");
    let mut both = vec![n1.clone(), n2.clone()];
    both.sort();
    assert_eq!(a.routed, both);
    assert_eq!(a.changed, both);
    assert!(a.conflicts.is_empty() && a.removed.is_empty());
    let r = routes::lookup(&pool, &n1)
        .await
        .expect("lookup")
        .expect("routed");
    assert_eq!(
        (r.agent.as_str(), r.active_version.as_str()),
        ("front", v1.hash.as_str())
    );
    assert_eq!(r.tenant, "acme");

    // The same activation again changes nothing.
    let again = routes::activate(
        &pool,
        "acme",
        &ns,
        "front",
        &[n2.clone(), n1.clone()],
        &v1.hash,
    )
    .await
    .expect("again");
    assert_eq!(again.routed, both);
    assert!(again.changed.is_empty());

    // Another Agent claiming n2: a conflict; the earlier owner keeps it.
    let b = routes::activate(
        &pool,
        "acme",
        &ns,
        "back",
        &[n2.clone(), n3.clone()],
        &b1.hash,
    )
    .await
    .expect("activate back");
    assert_eq!(b.routed, [n3.as_str()]);
    assert_eq!(
        b.conflicts,
        [Conflict {
            number: n2.clone(),
            namespace: ns.clone(),
            agent: "front".into()
        }]
    );
    let held = routes::lookup(&pool, &n2)
        .await
        .expect("lookup")
        .expect("route");
    assert_eq!(held.agent, "front");

    // front moves n1 to v2 and drops n2; back can then take n2.
    let moved = routes::activate(
        &pool,
        "acme",
        &ns,
        "front",
        std::slice::from_ref(&n1),
        &v2.hash,
    )
    .await
    .expect("move");
    assert_eq!(moved.routed, [n1.as_str()]);
    assert_eq!(moved.changed, [n1.as_str()]);
    assert_eq!(moved.removed, [n2.as_str()]);
    let r = routes::lookup(&pool, &n1)
        .await
        .expect("lookup")
        .expect("route");
    assert_eq!(r.active_version, v2.hash);
    let b = routes::activate(
        &pool,
        "acme",
        &ns,
        "back",
        &[n2.clone(), n3.clone()],
        &b1.hash,
    )
    .await
    .expect("activate back again");
    let mut back = vec![n2.clone(), n3.clone()];
    back.sort();
    assert_eq!(b.routed, back);
    assert!(b.conflicts.is_empty());
    assert_eq!(
        routes::of_agent(&pool, &ns, "back")
            .await
            .expect("of agent")
            .len(),
        2
    );

    // The history records every change.
    let history: Vec<(String,)> =
        sqlx::query_as("SELECT change FROM phone_route_history WHERE number = $1 ORDER BY id")
            .bind(&n2)
            .fetch_all(&pool)
            .await
            .expect("history");
    let changes: Vec<&str> = history.iter().map(|(c,)| c.as_str()).collect();
    assert_eq!(changes, ["routed", "removed", "routed"]);

    assert_eq!(
        routes::remove_agent(&pool, &ns, "back")
            .await
            .expect("remove"),
        2
    );
    assert_eq!(routes::lookup(&pool, &n3).await.expect("lookup"), None);
    assert_eq!(
        routes::remove_agent(&pool, &ns, "front")
            .await
            .expect("remove"),
        1
    );
}

#[tokio::test]
async fn concurrent_claims_of_one_number_give_it_to_exactly_one_agent() {
    let Some(pool) = pool().await else { return };
    let ns = namespace();
    let (a, b) = (version(&ns, "a", "done"), version(&ns, "b", "done"));
    versions::put(&pool, &a, "acme", &ns, "a")
        .await
        .expect("put a");
    versions::put(&pool, &b, "acme", &ns, "b")
        .await
        .expect("put b");
    for _ in 0..10 {
        let n = vec![number()];
        let (ra, rb) = tokio::join!(
            routes::activate(&pool, "acme", &ns, "a", &n, &a.hash),
            routes::activate(&pool, "acme", &ns, "b", &n, &b.hash),
        );
        let (ra, rb) = (ra.expect("a"), rb.expect("b"));
        assert_eq!(
            ra.routed.len() + rb.routed.len(),
            1,
            "exactly one Agent holds {n:?}: {ra:?} {rb:?}"
        );
        assert_eq!(ra.conflicts.len() + rb.conflicts.len(), 1);
        let holder = routes::lookup(&pool, &n[0])
            .await
            .expect("lookup")
            .expect("route");
        let winner = if ra.routed.is_empty() { "b" } else { "a" };
        assert_eq!(holder.agent, winner);
    }
    routes::remove_agent(&pool, &ns, "a")
        .await
        .expect("remove a");
    routes::remove_agent(&pool, &ns, "b")
        .await
        .expect("remove b");
}

#[tokio::test]
async fn prune_keeps_what_is_listed_routed_or_in_flight() {
    let Some(pool) = pool().await else { return };
    let ns = namespace();
    let (v1, v2, v3, v4) = (
        version(&ns, "front", "one"),
        version(&ns, "front", "two"),
        version(&ns, "front", "three"),
        version(&ns, "front", "four"),
    );
    for v in [&v1, &v2, &v3, &v4] {
        versions::put(&pool, v, "acme", &ns, "front")
            .await
            .expect("put");
    }
    let n = number();
    routes::activate(
        &pool,
        "acme",
        &ns,
        "front",
        std::slice::from_ref(&n),
        &v1.hash,
    )
    .await
    .expect("route v1");
    let call = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO calls (call_id, tenant, namespace, agent, config_version, core_version, \
         direction, started_at, last_seq) VALUES ($1, 'acme', $2, 'front', $3, 'x', 'inbound', now(), 0)",
    )
    .bind(call)
    .bind(&ns)
    .bind(&v2.hash)
    .execute(&pool)
    .await
    .expect("call in flight");

    // v1 is routed, v2 in flight, v3 kept: only v4 goes.
    let deleted = versions::prune(&pool, &ns, "front", std::slice::from_ref(&v3.hash))
        .await
        .expect("prune");
    assert_eq!(deleted, [v4.hash.as_str()]);
    assert!(
        versions::load(&pool, &v4.hash)
            .await
            .expect("load")
            .is_none()
    );

    // Once the call ends and the route moves, they go too.
    sqlx::query("UPDATE calls SET ended_at = now() WHERE call_id = $1")
        .bind(call)
        .execute(&pool)
        .await
        .expect("end call");
    routes::activate(
        &pool,
        "acme",
        &ns,
        "front",
        std::slice::from_ref(&n),
        &v3.hash,
    )
    .await
    .expect("route v3");
    let mut expected = vec![v1.hash.clone(), v2.hash.clone()];
    expected.sort();
    let deleted = versions::prune(&pool, &ns, "front", std::slice::from_ref(&v3.hash))
        .await
        .expect("prune");
    assert_eq!(deleted, expected);
    assert_eq!(
        versions::list(&pool, &ns, "front").await.expect("list"),
        [v3.hash.as_str()]
    );
    // The routed version survives even an empty keep list.
    assert!(
        versions::prune(&pool, &ns, "front", &[])
            .await
            .expect("prune")
            .is_empty()
    );
    routes::remove_agent(&pool, &ns, "front")
        .await
        .expect("remove");
    assert_eq!(
        versions::prune(&pool, &ns, "front", &[])
            .await
            .expect("prune"),
        [v3.hash.as_str()]
    );
}
