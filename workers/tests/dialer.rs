//! The dialer's turns against real PostgreSQL: two replicas racing over
//! one campaign, caps and concurrency counted in the database, compliance
//! checked at the moment of each dial, windows per recipient, the budget
//! stop and released dial slots. (Placing the calls through Twilio is the
//! demo's and the voice pods' tests' part.)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use common::campaign::{always_open, daily_plan, zone_at};
use dialtone_crds::campaign::Pacing;
use dialtone_spine::campaigns::{self, CampaignKey, DialOutcome, DialPlan, LeadRow};
use dialtone_workers::dialer::turn::{self, Turn, TurnSettings};
use sqlx::PgPool;
use uuid::Uuid;

fn settings() -> TurnSettings {
    TurnSettings {
        floor: always_open(),
        tick: chrono::Duration::milliseconds(100),
        dial_timeout: chrono::Duration::minutes(30),
    }
}

fn plan(caller_ids: &[String], max_concurrent: i32, cap: i32) -> DialPlan {
    daily_plan(
        caller_ids,
        Pacing {
            max_concurrent_calls: max_concurrent,
            calls_per_minute: 6000,
            per_caller_id_daily_cap: cap,
        },
        2,
    )
}

fn number(prefix: u64, i: u64) -> String {
    format!("+614{:08}", prefix * 1000 + i)
}

fn fresh_prefix() -> u64 {
    u64::from(Uuid::new_v4().as_fields().1) % 90_000 + 1
}

struct Seeded {
    key: CampaignKey,
    tenant: String,
    caller_ids: Vec<String>,
}

/// A campaign with `leads` (phone, timezone), routed caller ids and an
/// active plan.
async fn seed(
    pool: &PgPool,
    plan_of: impl Fn(&[String]) -> DialPlan,
    leads: &[(String, String)],
) -> Seeded {
    let tenant = common::tenant();
    let key = CampaignKey {
        namespace: format!("tenant-{tenant}"),
        name: "recall".to_owned(),
    };
    let version = format!("sha256:{}", Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO config_versions (hash, tenant, namespace, agent, core_version, config)
         VALUES ($1, $2, $3, 'reminders', 'test', '{}'::jsonb)",
    )
    .bind(&version)
    .bind(&tenant)
    .bind(&key.namespace)
    .execute(pool)
    .await
    .expect("config version");
    let prefix = fresh_prefix();
    let caller_ids: Vec<String> = (0..2)
        .map(|i| format!("+612{:08}", prefix * 1000 + i))
        .collect();
    for caller_id in &caller_ids {
        sqlx::query(
            "INSERT INTO phone_routes (number, tenant, namespace, agent, active_version)
             VALUES ($1, $2, $3, 'reminders', $4)",
        )
        .bind(caller_id)
        .bind(&tenant)
        .bind(&key.namespace)
        .bind(&version)
        .execute(pool)
        .await
        .expect("route");
    }
    campaigns::upsert(
        pool,
        &key,
        &tenant,
        "reminders",
        &plan_of(&caller_ids),
        true,
    )
    .await
    .expect("plan");
    let rows: Vec<LeadRow> = leads
        .iter()
        .map(|(phone, tz)| LeadRow {
            phone: phone.clone(),
            name: None,
            timezone: Some(tz.clone()),
            fields: Default::default(),
        })
        .collect();
    let sync = campaigns::sync_leads(pool, &key, &rows)
        .await
        .expect("leads");
    assert_eq!(sync.added, leads.len() as u64);
    Seeded {
        key,
        tenant,
        caller_ids,
    }
}

async fn turn_now(pool: &PgPool, key: &CampaignKey) -> Option<Turn> {
    // Pacing may have scheduled the next look a few ms ahead.
    sqlx::query("UPDATE campaigns SET next_dial_at = LEAST(next_dial_at, now()) WHERE namespace = $1 AND name = $2")
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(pool)
        .await
        .expect("due");
    turn::run(pool, &settings(), key).await.expect("turn")
}

async fn lead_statuses(pool: &PgPool, key: &CampaignKey) -> HashMap<String, String> {
    sqlx::query_as(
        "SELECT phone, status FROM campaign_leads WHERE namespace = $1 AND campaign = $2",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_all(pool)
    .await
    .expect("leads")
    .into_iter()
    .collect()
}

#[tokio::test]
async fn two_replicas_never_dial_a_lead_twice_nor_pass_the_caps() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let prefix = fresh_prefix();
    let afternoon = zone_at(13);
    let leads: Vec<(String, String)> = (0..40)
        .map(|i| (number(prefix, i), afternoon.clone()))
        .collect();
    let s = seed(&pool, |ids| plan(ids, 5, 7), &leads).await;
    let mut replicas = Vec::new();
    for replica in 0..2 {
        let (pool, key) = (pool.clone(), s.key.clone());
        replicas.push(tokio::spawn(async move {
            let mut max_in_flight = 0;
            let mut ringing = Vec::new();
            // Rounds run until the caps stop the campaign (bounded, so a
            // slow machine only takes longer, never tests less).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let mut round = 0;
            while !caller_ids_capped(&pool, &key).await
                && tokio::time::Instant::now() < deadline
            {
                round += 1;
                if let Some(turn) = turn_now(&pool, &key).await {
                    let (in_flight,): (i64,) = sqlx::query_as(
                        "SELECT count(*) FROM campaign_leads WHERE namespace = $1 AND campaign = $2 AND status = 'dialing'",
                    )
                    .bind(&key.namespace)
                    .bind(&key.name)
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                    max_in_flight = max_in_flight.max(in_flight);
                    ringing.extend(turn.dials.into_iter().map(|d| d.attempt_id));
                }
                // Calls end a little later: every second turn, this replica's
                // calls so far hang up.
                if (round + replica) % 2 == 0 {
                    for attempt in ringing.drain(..) {
                        campaigns::finish_attempt(&pool, attempt, DialOutcome::Completed, None)
                            .await
                            .expect("finish");
                    }
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            max_in_flight
        }));
    }
    let mut max_in_flight = 0;
    for r in replicas {
        max_in_flight = max_in_flight.max(r.await.expect("replica"));
    }
    assert!(
        max_in_flight <= 5,
        "{max_in_flight} calls in flight with maxConcurrentCalls 5"
    );
    let per_lead: Vec<(String, i64)> = sqlx::query_as(
        "SELECT phone, count(*) FROM campaign_attempts WHERE namespace = $1 AND campaign = $2 GROUP BY phone",
    )
    .bind(&s.key.namespace)
    .bind(&s.key.name)
    .fetch_all(&pool)
    .await
    .expect("attempts");
    assert!(
        per_lead.iter().all(|(_, n)| *n == 1),
        "a lead was dialed twice: {per_lead:?}"
    );
    // Two caller ids at 7 a day: 14 dials, then the campaign waits.
    assert_eq!(per_lead.len(), 14, "dials");
    for id in &s.caller_ids {
        let (used,): (i32,) =
            sqlx::query_as("SELECT used FROM campaign_caller_usage WHERE number = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("usage");
        assert_eq!(used, 7, "{id}");
    }
    assert!(caller_ids_capped(&pool, &s.key).await, "the campaign waits");
}

async fn caller_ids_capped(pool: &PgPool, key: &CampaignKey) -> bool {
    let (waiting,): (Option<String>,) =
        sqlx::query_as("SELECT waiting FROM campaigns WHERE namespace = $1 AND name = $2")
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_one(pool)
            .await
            .expect("campaign");
    waiting.as_deref() == Some("CallerIdsCapped")
}

#[tokio::test]
async fn a_number_suppressed_mid_campaign_is_never_dialed_and_the_night_waits() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let prefix = fresh_prefix();
    let (first, second, sleeper) = (number(prefix, 1), number(prefix, 2), number(prefix, 3));
    let leads = vec![
        (first.clone(), zone_at(13)),
        (second.clone(), zone_at(13)),
        (sleeper.clone(), zone_at(2)),
    ];
    let s = seed(&pool, |ids| plan(ids, 1, 50), &leads).await;
    let turn = turn_now(&pool, &s.key).await.expect("turn");
    assert_eq!(turn.dials.len(), 1, "one slot");
    let dialed = turn.dials[0].phone.clone();
    let other = if dialed == first { &second } else { &first };
    // The caller asks not to be called while the first call runs.
    sqlx::query(
        "INSERT INTO suppression (tenant, phone, reason) VALUES ($1, $2, 'asked not to be called')",
    )
    .bind(&s.tenant)
    .bind(other)
    .execute(&pool)
    .await
    .expect("suppress");
    campaigns::finish_attempt(
        &pool,
        turn.dials[0].attempt_id,
        DialOutcome::Completed,
        None,
    )
    .await
    .expect("finish");
    let turn = turn_now(&pool, &s.key).await.expect("turn");
    assert!(turn.dials.is_empty(), "{:?}", turn.dials);
    let statuses = lead_statuses(&pool, &s.key).await;
    assert_eq!(statuses[&dialed], "completed");
    assert_eq!(statuses[other], "suppressed");
    assert_eq!(statuses[&sleeper], "pending");
    // The sleeper's window (08:00 their time) is recorded; the campaign is
    // outside every window.
    let progress = campaigns::progress(&pool, &s.key).await.expect("progress");
    assert_eq!(progress.waiting.as_deref(), Some("OutsideWindow"));
    let opens = progress.next_dial_at.expect("next dial");
    let hours = (opens - Utc::now()).num_minutes() as f64 / 60.0;
    assert!((5.0..=6.1).contains(&hours), "window opens in {hours:.2} h");
}

#[tokio::test]
async fn the_budget_stops_dialing_before_the_next_call_could_pass_it() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let prefix = fresh_prefix();
    let leads: Vec<(String, String)> = (0..3).map(|i| (number(prefix, i), zone_at(13))).collect();
    let s = seed(
        &pool,
        |ids| DialPlan {
            budget_usd: Some(0.25),
            ..plan(ids, 1, 50)
        },
        &leads,
    )
    .await;
    let turn = turn_now(&pool, &s.key).await.expect("turn");
    let attempt = turn.dials[0].attempt_id;
    // The call ran and cost 0.15 USD: one more would make about 0.30.
    let call_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO calls (call_id, tenant, namespace, agent, config_version, core_version, direction,
                            started_at, ended_at, cost_usd, last_seq)
         VALUES ($1, $2, $3, 'reminders', 'v', 'c', 'outbound', now(), now(), 0.15, 3)",
    )
    .bind(call_id)
    .bind(&s.tenant)
    .bind(&s.key.namespace)
    .execute(&pool)
    .await
    .expect("call");
    campaigns::link_call(&pool, attempt, call_id)
        .await
        .expect("link");
    campaigns::finish_attempt(&pool, attempt, DialOutcome::Completed, None)
        .await
        .expect("finish");
    let turn = turn_now(&pool, &s.key).await.expect("turn");
    assert_eq!(turn.held, Some("BudgetExhausted"));
    assert!(turn.dials.is_empty());
    let progress = campaigns::progress(&pool, &s.key).await.expect("progress");
    assert_eq!(progress.stopped.as_deref(), Some("BudgetExhausted"));
    assert!((progress.spend_usd - 0.15).abs() < 1e-9);
    // A stopped campaign is not turned again until its spec changes.
    assert!(turn_now(&pool, &s.key).await.is_none());
}

#[tokio::test]
async fn a_call_that_never_reports_its_end_releases_its_slot_and_retries() {
    let Some(pool) = common::pool().await else {
        return;
    };
    let prefix = fresh_prefix();
    let leads = vec![(number(prefix, 1), zone_at(13))];
    let s = seed(&pool, |ids| plan(ids, 1, 50), &leads).await;
    let turn = turn_now(&pool, &s.key).await.expect("turn");
    assert_eq!(turn.dials.len(), 1);
    // The dial slot's lease runs out.
    sqlx::query("UPDATE campaign_leads SET lease_until = now() - interval '1 second' WHERE namespace = $1 AND campaign = $2")
        .bind(&s.key.namespace)
        .bind(&s.key.name)
        .execute(&pool)
        .await
        .expect("expire");
    assert_eq!(turn::release_lost(&pool, &s.key).await.expect("release"), 1);
    let (outcome,): (String,) =
        sqlx::query_as("SELECT outcome FROM campaign_attempts WHERE id = $1")
            .bind(turn.dials[0].attempt_id)
            .fetch_one(&pool)
            .await
            .expect("attempt");
    assert_eq!(outcome, "lost");
    let (status, attempts): (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM campaign_leads WHERE namespace = $1 AND campaign = $2",
    )
    .bind(&s.key.namespace)
    .bind(&s.key.name)
    .fetch_one(&pool)
    .await
    .expect("lead");
    assert_eq!(
        (status.as_str(), attempts),
        ("pending", 1),
        "retried after the backoff"
    );
}
