//! `cargo xtask bench` — the campaign dialer at scale: a 100,000-lead
//! campaign against PostgreSQL and a local Twilio Calls API that answers at
//! once; each call lasts a simulated 1–3 s, after which its status callback
//! finishes the attempt as a voice pod would. The real dialer loop
//! (`dialtone_workers::dialer::run`) places the calls. Prints:
//!
//! 1. loading the audience (`sync_leads` of 100,000 rows, then the same
//!    audience again, which must change nothing);
//! 2. scheduling overhead per dial: each turn's time (under the campaign's
//!    row lock) divided by the dials it claimed, p50/p99 over dials;
//! 3. PostgreSQL statements the dialer issued per dial placed (counted
//!    from sqlx's statement log inside the dialer's span: the walk, the
//!    turn, recording the placed call);
//! 4. the achieved dial rate against `callsPerMinute` over a two-minute
//!    window after a warm-up, and the most starts seen in any 60 s.
//!
//! Needs `DATABASE_URL` (`eval "$(cargo xtask testenv env)"`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use dialtone_crds::campaign::Pacing;
use dialtone_spine::campaigns::{self, CampaignKey, DialOutcome, DialPlan, LeadRow};
use dialtone_spine::{routes, versions};
use dialtone_workers::dialer::{self, DialerConfig};
use dialtone_workers::metrics::DialerMetrics;
use serde_json::json;
use sqlx::PgPool;
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

#[path = "../tests/common/campaign.rs"]
mod campaign;
use campaign::{always_open, daily_plan, zone_at};
#[path = "shared/one_step.rs"]
mod one_step;
use one_step::one_step_version;

const LEADS: usize = 100_000;
const CALLS_PER_MINUTE: i32 = 3_000;
const CALLER_IDS: usize = 20;
const WARM_UP: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(120);
/// The span the dialer runs in; statements outside it (the simulated
/// callbacks, the set-up) are not the dialer's.
const DIALER_SPAN: &str = "dialer";

/// What the bench reads off the dialer's traces.
#[derive(Default)]
struct Trace {
    statements: AtomicU64,
    /// (microseconds, dials) of every turn that claimed dials.
    turns: Mutex<Vec<(u64, u64)>>,
}

#[derive(Default)]
struct TurnFields {
    dials: u64,
    took_us: u64,
}

impl Visit for TurnFields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "dials" => self.dials = value,
            "took_us" => self.took_us = value,
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

struct Counting(Arc<Trace>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Counting {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if target == "sqlx::query" {
            let in_dialer = ctx
                .event_scope(event)
                .is_some_and(|mut scope| scope.any(|span| span.name() == DIALER_SPAN));
            if in_dialer {
                self.0.statements.fetch_add(1, Ordering::Relaxed);
            }
        } else if target.starts_with("dialtone_workers::dialer") {
            let mut fields = TurnFields::default();
            event.record(&mut fields);
            if fields.dials > 0 {
                self.0
                    .turns
                    .lock()
                    .expect("lock")
                    .push((fields.took_us, fields.dials));
            }
        }
    }
}

/// The local Twilio: every create-call request is answered at once; the
/// call "ends" 1–3 s later through its status callback's attempt.
#[derive(Clone)]
struct Twilio {
    pool: PgPool,
    placed: Arc<Mutex<Vec<Instant>>>,
    serial: Arc<AtomicU64>,
}

async fn create_call(
    State(twilio): State<Twilio>,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, String) {
    twilio.placed.lock().expect("lock").push(Instant::now());
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let attempt = form
        .get("StatusCallback")
        .and_then(|url| url.rsplit("attempt=").next())
        .and_then(|id| id.parse::<Uuid>().ok());
    let n = twilio.serial.fetch_add(1, Ordering::Relaxed);
    if let Some(attempt) = attempt {
        let pool = twilio.pool.clone();
        let length = Duration::from_millis(1_000 + (n * 7_919) % 2_000);
        tokio::spawn(async move {
            tokio::time::sleep(length).await;
            if let Err(err) =
                campaigns::finish_attempt(&pool, attempt, DialOutcome::Completed, None).await
            {
                eprintln!("finishing {attempt}: {err}");
            }
        });
    }
    (
        axum::http::StatusCode::CREATED,
        json!({"sid": format!("CA{:032x}", n)}).to_string(),
    )
}

async fn start_twilio(pool: PgPool) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let placed: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Calls.json",
            post(create_call),
        )
        .with_state(Twilio {
            pool,
            placed: Arc::clone(&placed),
            serial: Arc::default(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, placed)
}

/// Compiles and routes an Agent whose caller ids place calls through the
/// local Twilio.
async fn seed_agent(pool: &PgPool, namespace: &str, twilio_url: &str, caller_ids: &[String]) {
    let numbers: Vec<serde_json::Value> = caller_ids
        .iter()
        .map(|n| json!({"number": n, "direction": "outbound"}))
        .collect();
    let version = one_step_version(
        namespace,
        "twilio",
        json!({"type": "telephony", "vendor": "twilio", "credentialsSecretRef": {"name": "s"},
               "settings": {"baseUrl": twilio_url}}),
        json!({"phoneNumbers": numbers, "providers": {"telephony": {"name": "twilio"}}}),
    );
    versions::put(pool, &version, namespace, namespace, "a")
        .await
        .expect("version");
    routes::activate(pool, namespace, namespace, "a", caller_ids, &version.hash)
        .await
        .expect("routes");
}

fn plan(caller_ids: &[String]) -> DialPlan {
    daily_plan(
        caller_ids,
        Pacing {
            max_concurrent_calls: 500,
            calls_per_minute: CALLS_PER_MINUTE,
            per_caller_id_daily_cap: 5_000,
        },
        1,
    )
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The most starts within any 60 s of `times` (sorted).
fn busiest_minute(times: &[Instant]) -> usize {
    let mut best = 0;
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= Duration::from_secs(60) {
            first += 1;
        }
        best = best.max(last - first + 1);
    }
    best
}

async fn clean_up(pool: &PgPool, key: &CampaignKey, caller_ids: &[String]) {
    campaigns::deactivate(pool, key).await.expect("deactivate");
    for statement in [
        "DELETE FROM campaign_attempts WHERE namespace = $1 AND campaign = $2",
        "DELETE FROM campaign_leads WHERE namespace = $1 AND campaign = $2",
    ] {
        sqlx::query(statement)
            .bind(&key.namespace)
            .bind(&key.name)
            .execute(pool)
            .await
            .expect("clean up");
    }
    sqlx::query("DELETE FROM campaign_caller_usage WHERE number = ANY($1)")
        .bind(caller_ids)
        .execute(pool)
        .await
        .expect("clean up usage");
    routes::remove_agent(pool, &key.namespace, "a")
        .await
        .expect("unroute");
}

#[tokio::main]
async fn main() {
    let trace = Arc::new(Trace::default());
    let filter = Targets::new()
        .with_target("sqlx::query", Level::TRACE)
        .with_target("dialtone_workers::dialer", Level::DEBUG)
        .with_target("dialer_bench", Level::INFO);
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Counting(Arc::clone(&trace)).with_filter(filter)),
    )
    .expect("subscriber");

    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (cargo xtask testenv env)");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("PostgreSQL");
    let id = &Uuid::new_v4().simple().to_string()[..8];
    let namespace = format!("bench-{id}");
    let key = CampaignKey {
        namespace: namespace.clone(),
        name: "recall".to_owned(),
    };
    let prefix = u64::from(Uuid::new_v4().as_fields().1) % 90 + 10;
    let caller_ids: Vec<String> = (0..CALLER_IDS)
        .map(|i| format!("+612{prefix:02}{i:06}"))
        .collect();
    let (twilio_url, placed) = start_twilio(pool.clone()).await;
    seed_agent(&pool, &namespace, &twilio_url, &caller_ids).await;
    let credentials = std::env::temp_dir().join(format!("dialtone-dialer-bench-{id}"));
    let twilio = credentials.join(&namespace).join("twilio");
    std::fs::create_dir_all(&twilio).expect("credentials");
    std::fs::write(twilio.join("accountSid"), "ACbench").expect("sid");
    std::fs::write(twilio.join("authToken"), "bench-token").expect("token");

    campaigns::upsert(&pool, &key, &namespace, "a", &plan(&caller_ids), true)
        .await
        .expect("plan");
    // Every lead well inside its window for the bench's few minutes.
    let zone = zone_at(13);
    let leads: Vec<LeadRow> = (0..LEADS)
        .map(|i| LeadRow {
            phone: format!("+614{prefix:02}{i:06}"),
            name: None,
            timezone: Some(zone.clone()),
            fields: Default::default(),
        })
        .collect();
    let started = Instant::now();
    let first = campaigns::sync_leads(&pool, &key, &leads)
        .await
        .expect("leads");
    let load = started.elapsed();
    let started = Instant::now();
    let again = campaigns::sync_leads(&pool, &key, &leads)
        .await
        .expect("leads again");
    let reload = started.elapsed();
    println!(
        "audience: {} leads loaded in {:.2} s; the same audience again in {:.2} s ({} changed)",
        first.added,
        load.as_secs_f64(),
        reload.as_secs_f64(),
        again.added + again.retired
    );

    let cfg = DialerConfig {
        voice_url: "http://127.0.0.1:9".to_owned(),
        credentials_dir: credentials.clone(),
        floor: always_open(),
        tick: Duration::from_millis(250),
        dial_timeout: Duration::from_secs(1_800),
        ring_timeout_seconds: 25,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = DialerMetrics::register(&mut registry);
    let run_for = WARM_UP + WINDOW;
    let began = Instant::now();
    dialer::run(pool.clone(), cfg, metrics, tokio::time::sleep(run_for))
        .instrument(tracing::info_span!(target: "dialer_bench", DIALER_SPAN))
        .await;

    let mut times = placed.lock().expect("lock").clone();
    times.sort();
    let in_window: Vec<Instant> = times
        .iter()
        .copied()
        .filter(|t| *t >= began + WARM_UP && *t < began + run_for)
        .collect();
    let achieved = in_window.len() as f64 / WINDOW.as_secs_f64() * 60.0;
    let deviation = (achieved - f64::from(CALLS_PER_MINUTE)) / f64::from(CALLS_PER_MINUTE) * 100.0;
    let statements = trace.statements.load(Ordering::Relaxed);
    let mut per_dial: Vec<u64> = Vec::new();
    let mut turn_times: Vec<u64> = Vec::new();
    for (took, dials) in trace.turns.lock().expect("lock").iter() {
        turn_times.push(*took);
        per_dial.extend(std::iter::repeat_n(took / dials, *dials as usize));
    }
    per_dial.sort_unstable();
    turn_times.sort_unstable();
    println!(
        "dialing: {} calls placed in {:.0} s from a {LEADS}-lead campaign; {} turns with dials",
        times.len(),
        run_for.as_secs_f64(),
        turn_times.len()
    );
    println!(
        "scheduling overhead per dial: p50 {} µs, p99 {} µs (turn p50 {:.1} ms, p99 {:.1} ms)",
        percentile(&per_dial, 50.0),
        percentile(&per_dial, 99.0),
        percentile(&turn_times, 50.0) as f64 / 1_000.0,
        percentile(&turn_times, 99.0) as f64 / 1_000.0,
    );
    println!(
        "PostgreSQL statements by the dialer: {statements} = {:.2} per dial placed",
        statements as f64 / times.len().max(1) as f64
    );
    println!(
        "achieved rate: {achieved:.0}/min against callsPerMinute {CALLS_PER_MINUTE} \
         ({deviation:+.2} %) over {:.0} s after a {:.0} s warm-up; busiest 60 s: {} starts",
        WINDOW.as_secs_f64(),
        WARM_UP.as_secs_f64(),
        busiest_minute(&times)
    );
    // Let the last simulated calls end before the rows go.
    tokio::time::sleep(Duration::from_secs(4)).await;
    clean_up(&pool, &key, &caller_ids).await;
    let _ = std::fs::remove_dir_all(&credentials);
    let met = deviation.abs() <= 2.0 && busiest_minute(&times) <= CALLS_PER_MINUTE as usize;
    println!(
        "target (within 2 % of callsPerMinute, never above in any minute): {}",
        if met { "met" } else { "NOT met" }
    );
}
