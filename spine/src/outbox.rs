//! The workflow outbox: the jobs a batch of call events triggers, inserted
//! into `workflow_jobs` in the transaction that stores the events.
//!
//! A job's idempotency key is `<call id>/<workflow>/<trigger>`, unique in
//! the table, and only events the transaction actually inserted trigger
//! jobs; so a replayed, spilled-then-drained or duplicated batch creates no
//! second job. [`plan_jobs`] is pure; [`insert_jobs`] and [`load_plans`]
//! are the I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dialtone_crds::agent::{ProviderKind, Workflow, WorkflowAction, WorkflowTrigger};
use dialtone_crds::provider::Vendor;
use dialtone_engine::Event;
use dialtone_engine::config::{CompiledConfig, ProviderConfig, load_version};
use dialtone_engine::workflow::{self, CallFacts};
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::event::{CallEvent, EventBody, RuntimeEvent};
use crate::projection::CallRow;

/// Emails one sending domain may send per day unless the Provider says.
pub const DEFAULT_EMAILS_PER_DOMAIN_PER_DAY: i32 = 50;
/// SMS one number may send per day unless the Provider says.
pub const DEFAULT_SMS_PER_NUMBER_PER_DAY: i32 = 100;

/// What a config version asks of the workers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The Agent's workflows.
    pub workflows: Vec<Workflow>,
    /// Their providers, by workflow name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// The Tenant's timezone (daily caps reset at its midnight).
    pub timezone: String,
}

impl Plan {
    /// The workers' part of a config.
    pub fn of(config: &CompiledConfig) -> Self {
        Self {
            workflows: config.agent.workflows.clone(),
            providers: config.workflow_providers.clone(),
            timezone: config.tenant.timezone.clone(),
        }
    }
}

/// Plans of the config versions the writer has seen, by hash. Versions
/// are immutable, so entries never go stale; the cache is emptied when it
/// grows past [`PlanCache::CAPACITY`].
#[derive(Debug, Default)]
pub struct PlanCache(HashMap<String, Option<Arc<Plan>>>);

impl PlanCache {
    /// Most versions kept.
    pub const CAPACITY: usize = 4096;

    fn get(&self, hash: &str) -> Option<&Option<Arc<Plan>>> {
        self.0.get(hash)
    }

    fn insert(&mut self, hash: String, plan: Option<Arc<Plan>>) {
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.insert(hash, plan);
    }
}

/// The workflow trigger an event is, if it is one.
pub fn trigger_of(body: &EventBody) -> Option<WorkflowTrigger> {
    match body {
        EventBody::Runtime(RuntimeEvent::CallClosed { .. }) => Some(WorkflowTrigger::CallCompleted),
        EventBody::Engine(Event::ObjectiveCompleted { .. }) => {
            Some(WorkflowTrigger::ObjectiveCompleted)
        }
        EventBody::Engine(Event::ObjectiveFailed { .. }) => Some(WorkflowTrigger::ObjectiveFailed),
        EventBody::Engine(Event::AppointmentRequested { .. }) => {
            Some(WorkflowTrigger::AppointmentRequested)
        }
        EventBody::Engine(Event::Escalation { .. }) => Some(WorkflowTrigger::Escalated),
        _ => None,
    }
}

/// A trigger event the batch inserted.
#[derive(Clone, Debug)]
pub struct Triggered<'a> {
    /// The event.
    pub event: &'a CallEvent,
    /// Its stored payload.
    pub payload: &'a Value,
    /// Which trigger it is.
    pub trigger: WorkflowTrigger,
}

/// A job to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// `<call id>/<workflow>/<trigger>`.
    pub idempotency_key: String,
    /// The call's tenant.
    pub tenant: String,
    /// The call.
    pub call_id: Uuid,
    /// The Agent's namespace.
    pub namespace: String,
    /// The Agent.
    pub agent: String,
    /// The config version the call ran on.
    pub config_version: String,
    /// The workflow.
    pub workflow: String,
    /// Its trigger.
    pub trigger: String,
    /// Its action.
    pub action: String,
    /// `<namespace>/<name>`, `_cluster/<name>` or `builtin`.
    pub provider: String,
    /// The vendor.
    pub vendor: String,
    /// The provider's config (no credentials).
    pub provider_config: Option<Value>,
    /// Rendered parameters, the call's facts and the trigger event.
    pub payload: Value,
    /// From the workflow's `RetryPolicy`.
    pub max_attempts: i32,
    /// From the workflow's `RetryPolicy`.
    pub backoff_seconds: i32,
    /// From the provider's `rateLimits`.
    pub max_concurrent: Option<i32>,
    /// From the provider's `rateLimits`.
    pub per_second: Option<i32>,
    /// What the daily cap counts.
    pub cap_scope: Option<String>,
    /// The daily cap.
    pub daily_cap: Option<i32>,
    /// The Tenant's timezone.
    pub timezone: String,
    /// When the trigger happened.
    pub event_at: DateTime<Utc>,
}

/// The jobs `triggered` asks for. `rows` are the calls' rows after the
/// batch; `plans` the plans of their config versions.
pub fn plan_jobs(
    triggered: &[Triggered<'_>],
    rows: &HashMap<Uuid, &CallRow>,
    plans: &PlanCache,
) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for t in triggered {
        let Some(row) = rows.get(&t.event.call_id) else {
            continue;
        };
        let Some(Some(plan)) = plans.get(&row.config_version) else {
            continue;
        };
        for w in plan.workflows.iter().filter(|w| w.trigger == t.trigger) {
            jobs.push(job(t, row, plan, w));
        }
    }
    jobs
}

fn job(t: &Triggered<'_>, row: &CallRow, plan: &Plan, w: &Workflow) -> NewJob {
    let call_id = row.call_id.to_string();
    let trigger = workflow::trigger_name(t.trigger);
    let facts = CallFacts {
        call_id: &call_id,
        caller: row.caller.as_deref(),
        callee: row.callee.as_deref(),
        outcome: row.outcome.as_deref(),
        agent: &row.agent,
        tenant: &t.event.tenant,
        trigger: t.trigger,
        slots: &row.slots,
    };
    let rendered = workflow::render(&w.params, &facts);
    let provider = plan.providers.get(&w.name);
    let (cap_scope, daily_cap) =
        daily_cap(w.action, provider, &rendered.params, row, &t.event.tenant);
    let limits = provider.and_then(|p| p.rate_limits.as_ref());
    NewJob {
        idempotency_key: format!("{call_id}/{}/{trigger}", w.name),
        tenant: t.event.tenant.clone(),
        call_id: row.call_id,
        namespace: row.namespace.clone(),
        agent: row.agent.clone(),
        config_version: row.config_version.clone(),
        workflow: w.name.clone(),
        trigger: trigger.to_owned(),
        action: workflow::action_name(w.action).to_owned(),
        provider: provider
            .map_or_else(|| "builtin".to_owned(), |p| provider_key(p, &row.namespace)),
        vendor: provider
            .map_or(Vendor::Builtin, |p| p.vendor)
            .as_str()
            .to_owned(),
        provider_config: provider.and_then(|p| serde_json::to_value(p).ok()),
        payload: json!({
            "params": rendered.params,
            "missing": rendered.missing,
            "call": {
                "callId": call_id,
                "caller": row.caller,
                "callee": row.callee,
                "outcome": row.outcome,
                "agent": row.agent,
                "slots": row.slots,
            },
            "event": t.payload,
        }),
        max_attempts: w.retry.max_attempts,
        backoff_seconds: w.retry.backoff_seconds,
        max_concurrent: limits.and_then(|l| l.max_concurrent),
        per_second: limits.and_then(|l| l.requests_per_second),
        cap_scope,
        daily_cap,
        timezone: plan.timezone.clone(),
        event_at: t.event.occurred_at,
    }
}

/// The unit rate limits are counted in: one vendor account. `_cluster` is
/// no namespace name, so a tenant's Provider never shares a ClusterProvider's
/// key.
pub fn provider_key(p: &ProviderConfig, namespace: &str) -> String {
    match p.kind {
        ProviderKind::Provider => format!("{namespace}/{}", p.name),
        ProviderKind::ClusterProvider => format!("_cluster/{}", p.name),
    }
}

/// What a job's daily cap counts, and the cap: emails per sending domain,
/// SMS per from-number (the number the call came in on unless `from` is
/// given), anything else only when its Provider sets `dailyCap`. Scopes
/// are per tenant, so no tenant can spend another's allowance.
fn daily_cap(
    action: WorkflowAction,
    provider: Option<&ProviderConfig>,
    params: &BTreeMap<String, String>,
    row: &CallRow,
    tenant: &str,
) -> (Option<String>, Option<i32>) {
    let configured = provider
        .and_then(|p| p.rate_limits.as_ref())
        .and_then(|l| l.daily_cap);
    let nonempty = |s: Option<&String>| s.filter(|v| !v.is_empty()).cloned();
    match action {
        WorkflowAction::Email => {
            let from = nonempty(params.get("from"))
                .or_else(|| provider.and_then(|p| p.settings.from_address.clone()));
            let domain = from
                .as_deref()
                .and_then(|f| f.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_else(|| "default".to_owned());
            (
                Some(format!("{tenant}/email/{domain}")),
                Some(configured.unwrap_or(DEFAULT_EMAILS_PER_DOMAIN_PER_DAY)),
            )
        }
        WorkflowAction::Sms => {
            let from = nonempty(params.get("from"))
                .or_else(|| row.callee.clone())
                .unwrap_or_else(|| "default".to_owned());
            (
                Some(format!("{tenant}/sms/{from}")),
                Some(configured.unwrap_or(DEFAULT_SMS_PER_NUMBER_PER_DAY)),
            )
        }
        _ => match (configured, provider) {
            (Some(cap), Some(p)) => (
                Some(format!("{tenant}/{}", provider_key(p, &row.namespace))),
                Some(cap),
            ),
            _ => (None, None),
        },
    }
}

/// Loads into `cache` the plans of `hashes` it does not hold. A version
/// that is missing (or fails its hash check) gets no plan, loudly: its
/// calls' workflows cannot run.
pub async fn load_plans(
    tx: &mut Transaction<'_, Postgres>,
    cache: &mut PlanCache,
    hashes: Vec<String>,
) -> Result<(), sqlx::Error> {
    let wanted: Vec<String> = hashes
        .into_iter()
        .filter(|h| cache.get(h).is_none())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let found: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT hash, canonical FROM config_versions WHERE hash = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut **tx)
            .await?;
    let mut found: HashMap<String, Option<String>> = found.into_iter().collect();
    for hash in wanted {
        let plan = match found.remove(&hash).flatten() {
            Some(bytes) => match load_version(&hash, &bytes) {
                Ok(config) => Some(Arc::new(Plan::of(&config))),
                Err(e) => {
                    tracing::error!(config_version = %hash, error = %e, "cannot load the config version; its calls' workflows do not run");
                    None
                }
            },
            None => None,
        };
        cache.insert(hash, plan);
    }
    Ok(())
}

/// Whether any of these calls' versions has workflows at all (checked
/// before building jobs, so calls of Agents without workflows cost one
/// hash lookup).
pub fn any_workflows(cache: &PlanCache, hashes: &[&str]) -> bool {
    hashes
        .iter()
        .any(|h| matches!(cache.get(h), Some(Some(p)) if !p.workflows.is_empty()))
}

/// Inserts the jobs; a key that exists already is left alone. Returns how
/// many were new.
pub async fn insert_jobs(
    tx: &mut Transaction<'_, Postgres>,
    jobs: &[NewJob],
) -> Result<u64, sqlx::Error> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let col = |f: fn(&NewJob) -> String| jobs.iter().map(f).collect::<Vec<_>>();
    let result = sqlx::query(
        "INSERT INTO workflow_jobs (idempotency_key, tenant, call_id, namespace, agent, \
             config_version, workflow, trigger, action, provider, vendor, provider_config, \
             payload, max_attempts, backoff_seconds, max_concurrent, per_second, cap_scope, \
             daily_cap, timezone, event_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::jsonb[], $13::jsonb[], $14::int4[], $15::int4[], $16::int4[], $17::int4[], \
             $18::text[], $19::int4[], $20::text[], $21::timestamptz[]) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(col(|j| j.idempotency_key.clone()))
    .bind(col(|j| j.tenant.clone()))
    .bind(jobs.iter().map(|j| j.call_id).collect::<Vec<_>>())
    .bind(col(|j| j.namespace.clone()))
    .bind(col(|j| j.agent.clone()))
    .bind(col(|j| j.config_version.clone()))
    .bind(col(|j| j.workflow.clone()))
    .bind(col(|j| j.trigger.clone()))
    .bind(col(|j| j.action.clone()))
    .bind(col(|j| j.provider.clone()))
    .bind(col(|j| j.vendor.clone()))
    .bind(
        jobs.iter()
            .map(|j| j.provider_config.clone())
            .collect::<Vec<_>>(),
    )
    .bind(jobs.iter().map(|j| j.payload.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.backoff_seconds).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.max_concurrent).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.per_second).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.cap_scope.clone()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.daily_cap).collect::<Vec<_>>())
    .bind(col(|j| j.timezone.clone()))
    .bind(jobs.iter().map(|j| j.event_at).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected())
}

/// Appends a workflow result event to a closed call's stream, at the seq
/// after its last, and moves the call's `last_seq` along. Fails with a
/// unique violation when another result took that seq first (retry), and
/// returns `None` when the call is not closed yet (or unknown): its voice
/// pod still numbers the call's events.
pub async fn append_result(
    tx: &mut Transaction<'_, Postgres>,
    call_id: Uuid,
    occurred_at: DateTime<Utc>,
    body: &RuntimeEvent,
) -> Result<Option<i32>, sqlx::Error> {
    let (event_type, mut payload) = EventBody::Runtime(body.clone()).to_parts();
    // A vendor's error text may hold a NUL, which JSONB refuses.
    crate::storable::make_value_storable(&mut payload);
    let seq: Option<(i32,)> = sqlx::query_as(
        "WITH closed AS ( \
             SELECT c.call_id, c.tenant, \
                 (SELECT max(seq) FROM call_events e WHERE e.call_id = c.call_id) + 1 AS seq \
             FROM calls c WHERE c.call_id = $1 AND c.ended_at IS NOT NULL \
         ), inserted AS ( \
             INSERT INTO call_events \
                 (call_id, seq, tenant, event_type, schema_version, occurred_at, payload) \
             SELECT call_id, seq, tenant, $2, $3, $4, $5 FROM closed \
             RETURNING call_id, seq \
         ) \
         UPDATE calls c SET last_seq = i.seq FROM inserted i \
         WHERE c.call_id = i.call_id AND c.last_seq < i.seq \
         RETURNING i.seq",
    )
    .bind(call_id)
    .bind(event_type)
    .bind(crate::event::SCHEMA_VERSION)
    .bind(occurred_at)
    .bind(payload)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(seq.map(|(s,)| s))
}
