//! Campaigns in PostgreSQL: the dialing plan and leads the operator loads,
//! the attempts the dialer places, and what Twilio reports back through the
//! voice pods — with the one rule for what a finished attempt means for its
//! lead ([`next_for_lead`]).

use chrono::{DateTime, Duration, Utc};
use dialtone_crds::campaign::{
    CampaignPurpose, CampaignRetries, Pacing, Schedule, VoicemailAction, VoicemailPolicy,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// Why campaign rows could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The database failed.
    #[error("campaigns: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored plan does not parse (written by another version).
    #[error("campaign {namespace}/{name}: stored plan: {source}")]
    Plan {
        /// The Campaign's namespace.
        namespace: String,
        /// The Campaign's name.
        name: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// Everything the dialer needs to dial a campaign, copied from the
/// Campaign, its Agent and its Tenant by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DialPlan {
    /// Weekly windows and dates, recipient-local.
    pub schedule: Schedule,
    /// Decides the legal hours and the register rule.
    pub purpose: CampaignPurpose,
    /// The tenant's IANA timezone: a lead's when nothing better is known.
    pub tenant_timezone: String,
    /// The tenant's holidays, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// Caller ids, rotated; each routes to the campaign's Agent.
    pub caller_ids: Vec<String>,
    /// Concurrency, rate and per-caller-id cap.
    pub pacing: Pacing,
    /// Attempts and backoff.
    pub retries: CampaignRetries,
    /// Skip the tenant's suppression list and the register.
    pub respect_do_not_call: bool,
    /// The campaign's own never-call list.
    pub suppress: Vec<String>,
    /// The campaign's spend ceiling.
    pub budget_usd: Option<f64>,
    /// The tenant's daily ceiling, across its campaigns.
    pub tenant_daily_budget_usd: Option<f64>,
    /// What to do with a machine.
    pub voicemail: VoicemailPolicy,
}

fn plan_error(namespace: &str, name: &str, source: serde_json::Error) -> CampaignError {
    CampaignError::Plan {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    }
}

/// A stored plan, read back.
fn decode_plan(
    namespace: &str,
    name: &str,
    plan: serde_json::Value,
) -> Result<DialPlan, CampaignError> {
    serde_json::from_value(plan).map_err(|source| plan_error(namespace, name, source))
}

/// A Campaign's key: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One lead as the audience gives it, normalised.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LeadRow {
    /// E.164.
    pub phone: String,
    /// For greetings.
    pub name: Option<String>,
    /// IANA timezone, when the audience gives one.
    pub timezone: Option<String>,
    /// Further fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// What [`sync_leads`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadSync {
    /// New leads, or retired ones back in the audience.
    pub added: u64,
    /// Not-yet-dialed leads no longer in the audience.
    pub retired: u64,
}

/// Stores the campaign's plan. An edited plan clears a stop the dialer made
/// on its own (budget, breaker, stale register), so fixing the spec resumes
/// dialing; `active` follows suspend, deletion and the Agent's readiness.
pub async fn upsert(
    pool: &PgPool,
    key: &CampaignKey,
    tenant: &str,
    agent: &str,
    plan: &DialPlan,
    active: bool,
) -> Result<(), CampaignError> {
    let plan = serde_json::to_value(plan)
        .map_err(|source| plan_error(&key.namespace, &key.name, source))?;
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "INSERT INTO campaigns (namespace, name, tenant, agent, plan, active)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (namespace, name) DO UPDATE SET
             tenant = EXCLUDED.tenant, agent = EXCLUDED.agent, plan = EXCLUDED.plan,
             active = EXCLUDED.active,
             stopped = CASE WHEN campaigns.plan IS DISTINCT FROM EXCLUDED.plan
                            THEN NULL ELSE campaigns.stopped END,
             stopped_at = CASE WHEN campaigns.plan IS DISTINCT FROM EXCLUDED.plan
                               THEN NULL ELSE campaigns.stopped_at END,
             next_dial_at = LEAST(campaigns.next_dial_at, now()),
             updated_at = now()
         WHERE (campaigns.tenant, campaigns.agent, campaigns.plan, campaigns.active)
               IS DISTINCT FROM (EXCLUDED.tenant, EXCLUDED.agent, EXCLUDED.plan, EXCLUDED.active)",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(tenant)
    .bind(agent)
    .bind(plan)
    .bind(active)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() > 0 {
        // Edited windows or pacing take effect on the next dial.
        sqlx::query(
            "UPDATE campaign_leads SET window_opens_at = NULL
             WHERE namespace = $1 AND campaign = $2 AND status = 'pending'
               AND window_opens_at IS NOT NULL",
        )
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stops new dials (suspend, deletion, an Agent that is not ready); calls
/// in flight finish. A campaign never stored is left alone.
pub async fn deactivate(pool: &PgPool, key: &CampaignKey) -> Result<(), CampaignError> {
    sqlx::query(
        "UPDATE campaigns SET active = false, updated_at = now()
         WHERE namespace = $1 AND name = $2 AND active",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .execute(pool)
    .await?;
    Ok(())
}

/// Makes the stored leads match the audience, in one transaction: new
/// numbers are added, numbers that left the audience before their first
/// dial are retired, and a lead that was dialed keeps its row and state
/// whatever the audience says — so a re-uploaded CSV never calls anyone
/// twice. Re-applying the same audience writes nothing.
pub async fn sync_leads(
    pool: &PgPool,
    key: &CampaignKey,
    leads: &[LeadRow],
) -> Result<LeadSync, CampaignError> {
    let leads_json = serde_json::to_value(leads)
        .map_err(|source| plan_error(&key.namespace, &key.name, source))?;
    let mut tx = pool.begin().await?;
    let added = sqlx::query(
        "INSERT INTO campaign_leads (namespace, campaign, phone, name, timezone, fields)
         SELECT $1, $2, l.phone, l.name, l.timezone, COALESCE(l.fields, '{}'::jsonb)
         FROM jsonb_to_recordset($3) AS l(phone TEXT, name TEXT, timezone TEXT, fields JSONB)
         ON CONFLICT (namespace, campaign, phone) DO UPDATE SET
             name = EXCLUDED.name, timezone = EXCLUDED.timezone, fields = EXCLUDED.fields,
             status = 'pending', updated_at = now()
         WHERE campaign_leads.attempts = 0
           AND campaign_leads.status IN ('pending', 'retired')
           AND (campaign_leads.name, campaign_leads.timezone, campaign_leads.fields,
                campaign_leads.status)
               IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.timezone, EXCLUDED.fields,
                                 'pending'::text)",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(&leads_json)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let phones: Vec<&str> = leads.iter().map(|l| l.phone.as_str()).collect();
    let retired = sqlx::query(
        "UPDATE campaign_leads SET status = 'retired', updated_at = now()
         WHERE namespace = $1 AND campaign = $2 AND status = 'pending' AND attempts = 0
           AND NOT (phone = ANY($3))",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(&phones)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if added > 0 {
        sqlx::query(
            "UPDATE campaigns SET next_dial_at = LEAST(next_dial_at, now())
             WHERE namespace = $1 AND name = $2",
        )
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(LeadSync { added, retired })
}

/// A campaign's progress, for its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Leads (retired ones left out).
    pub total: i64,
    /// Waiting for a first dial or a retry.
    pub pending: i64,
    /// With a call in flight.
    pub dialing: i64,
    /// Reached.
    pub completed: i64,
    /// Given up on.
    pub failed: i64,
    /// Skipped by suppression or the register.
    pub suppressed: i64,
    /// Reached a machine, done by policy.
    pub voicemail: i64,
    /// Spend of the campaign's calls, USD.
    pub spend_usd: f64,
    /// Finished attempts.
    pub finished_attempts: i64,
    /// Answered by a person.
    pub answered: i64,
    /// Why the dialer stopped on its own, if it did.
    pub stopped: Option<String>,
    /// Why the dialer waits, if it does.
    pub waiting: Option<String>,
    /// The last dialing error.
    pub last_error: Option<String>,
    /// When the next lead's window opens (the dialer's view).
    pub next_dial_at: Option<DateTime<Utc>>,
}

/// What the dialer last decided about a campaign.
#[derive(sqlx::FromRow)]
struct DialerState {
    stopped: Option<String>,
    waiting: Option<String>,
    last_error: Option<String>,
    next_dial_at: DateTime<Utc>,
}

/// Counts, spend and stop state of one campaign.
pub async fn progress(pool: &PgPool, key: &CampaignKey) -> Result<Progress, CampaignError> {
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM campaign_leads
         WHERE namespace = $1 AND campaign = $2 AND status <> 'retired' GROUP BY status",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_all(pool)
    .await?;
    let mut p = Progress::default();
    for (status, n) in counts {
        p.total += n;
        match status.as_str() {
            "pending" => p.pending = n,
            "dialing" => p.dialing = n,
            "completed" => p.completed = n,
            "failed" => p.failed = n,
            "suppressed" => p.suppressed = n,
            "voicemail" => p.voicemail = n,
            _ => {}
        }
    }
    let (spend, finished, answered): (f64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(c.cost_usd), 0)::float8,
                count(*) FILTER (WHERE a.finished_at IS NOT NULL),
                count(*) FILTER (WHERE a.answered_by = 'human' OR
                                      (a.answered_by IS NULL AND a.outcome = 'completed'))
         FROM campaign_attempts a LEFT JOIN calls c ON c.call_id = a.call_id
         WHERE a.namespace = $1 AND a.campaign = $2",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_one(pool)
    .await?;
    p.spend_usd = spend;
    p.finished_attempts = finished;
    p.answered = answered;
    let state: Option<DialerState> = sqlx::query_as(
        "SELECT stopped, waiting, last_error, next_dial_at FROM campaigns
         WHERE namespace = $1 AND name = $2",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_optional(pool)
    .await?;
    if let Some(state) = state {
        p.stopped = state.stopped;
        p.waiting = state.waiting;
        p.last_error = state.last_error;
        p.next_dial_at = Some(state.next_dial_at);
    }
    Ok(p)
}

/// One attempt as the voice pods see it when Twilio calls back.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Attempt {
    /// The attempt's id (in the callback URLs).
    pub id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The Campaign's namespace.
    pub namespace: String,
    /// The Campaign.
    pub campaign: String,
    /// The lead's number (the callee).
    pub phone: String,
    /// The number presented (the caller id).
    pub caller_id: String,
    /// The config version the call runs.
    pub config_version: String,
    /// Which attempt at the lead, from 1.
    pub attempt: i32,
    /// `dialing` until a terminal status arrives.
    pub outcome: String,
}

/// The attempt `id`, if there is one.
pub async fn attempt(pool: &PgPool, id: Uuid) -> Result<Option<Attempt>, CampaignError> {
    Ok(sqlx::query_as(
        "SELECT a.id, c.tenant, a.namespace, a.campaign, a.phone, a.caller_id,
                a.config_version, a.attempt, a.outcome
         FROM campaign_attempts a JOIN campaigns c
              ON c.namespace = a.namespace AND c.name = a.campaign
         WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// The campaign's voicemail policy (the voice pods answer a machine with it).
pub async fn voicemail_policy(
    pool: &PgPool,
    namespace: &str,
    campaign: &str,
) -> Result<VoicemailPolicy, CampaignError> {
    let plan: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT plan FROM campaigns WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(campaign)
            .fetch_optional(pool)
            .await?;
    let Some((plan,)) = plan else {
        return Ok(VoicemailPolicy::default());
    };
    Ok(decode_plan(namespace, campaign, plan)?.voicemail)
}

/// Records what answered (Twilio's `AnsweredBy`, and how long detection
/// took) when the call connects.
pub async fn record_answer(
    pool: &PgPool,
    id: Uuid,
    call_sid: &str,
    answered_by: Option<&str>,
    amd_ms: Option<i32>,
) -> Result<(), CampaignError> {
    sqlx::query(
        "UPDATE campaign_attempts SET call_sid = COALESCE(call_sid, $2),
                answered_by = COALESCE($3, answered_by), amd_ms = COALESCE($4, amd_ms)
         WHERE id = $1",
    )
    .bind(id)
    .bind(call_sid)
    .bind(answered_by)
    .bind(amd_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ties the attempt to the call its media stream opened (for spend).
pub async fn link_call(pool: &PgPool, id: Uuid, call_id: Uuid) -> Result<(), CampaignError> {
    sqlx::query("UPDATE campaign_attempts SET call_id = $2 WHERE id = $1 AND call_id IS NULL")
        .bind(id)
        .bind(call_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// How an attempt ended, as Twilio reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialOutcome {
    /// The call connected and ended.
    Completed,
    /// Busy signal.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The call could not be placed or connected.
    Failed,
    /// Cancelled before it connected.
    Canceled,
    /// No terminal status arrived in time: the slot was released.
    Lost,
}

impl DialOutcome {
    /// From Twilio's `CallStatus`; `None` for a status that is not final.
    pub fn from_call_status(status: &str) -> Option<Self> {
        Some(match status {
            "completed" => DialOutcome::Completed,
            "busy" => DialOutcome::Busy,
            "no-answer" => DialOutcome::NoAnswer,
            "failed" => DialOutcome::Failed,
            "canceled" => DialOutcome::Canceled,
            _ => return None,
        })
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DialOutcome::Completed => "completed",
            DialOutcome::Busy => "busy",
            DialOutcome::NoAnswer => "no-answer",
            DialOutcome::Failed => "failed",
            DialOutcome::Canceled => "canceled",
            DialOutcome::Lost => "lost",
        }
    }
}

/// What becomes of a lead after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeadNext {
    /// Reached a person: done.
    Completed,
    /// Reached a machine and, by policy, done.
    Voicemail,
    /// Dial again at this instant.
    Retry(DateTime<Utc>),
    /// No attempts left.
    Failed(String),
}

/// Whether Twilio's `AnsweredBy` is a machine (or a fax).
pub fn is_machine(answered_by: Option<&str>) -> bool {
    answered_by.is_some_and(|a| a.starts_with("machine") || a == "fax")
}

/// The rule for a finished attempt: a person who answered completes the
/// lead; a machine follows the voicemail policy; no-answer, busy, failed
/// and lost retry after the backoff while attempts remain.
pub fn next_for_lead(
    outcome: DialOutcome,
    answered_by: Option<&str>,
    attempts: i32,
    retries: &CampaignRetries,
    voicemail: VoicemailAction,
    now: DateTime<Utc>,
) -> LeadNext {
    let retry_or_fail = |why: &str| {
        if attempts >= retries.max_attempts {
            LeadNext::Failed(format!("{why} after {attempts} attempts"))
        } else {
            LeadNext::Retry(now + Duration::minutes(i64::from(retries.backoff_minutes)))
        }
    };
    match outcome {
        DialOutcome::Completed if is_machine(answered_by) => match voicemail {
            VoicemailAction::Hangup | VoicemailAction::LeaveMessage => LeadNext::Voicemail,
            VoicemailAction::RetryLater => retry_or_fail("voicemail"),
        },
        DialOutcome::Completed => LeadNext::Completed,
        other => retry_or_fail(other.as_str()),
    }
}

/// Records an attempt's terminal status and moves its lead on, in one
/// transaction; a second report of the same attempt changes nothing.
/// Returns what became of the lead, or `None` when the attempt was already
/// finished or is unknown.
pub async fn finish_attempt(
    pool: &PgPool,
    id: Uuid,
    outcome: DialOutcome,
    error: Option<&str>,
) -> Result<Option<LeadNext>, CampaignError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, String, String, Option<String>, serde_json::Value)> = sqlx::query_as(
        "UPDATE campaign_attempts a SET outcome = $2, error = COALESCE($3, a.error),
                finished_at = now()
         FROM campaigns c
         WHERE a.id = $1 AND a.finished_at IS NULL
           AND c.namespace = a.namespace AND c.name = a.campaign
         RETURNING a.namespace, a.campaign, a.phone, a.answered_by, c.plan",
    )
    .bind(id)
    .bind(outcome.as_str())
    .bind(error)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((namespace, campaign, phone, answered_by, plan)) = row else {
        return Ok(None);
    };
    let plan = decode_plan(&namespace, &campaign, plan)?;
    let (attempts,): (i32,) = sqlx::query_as(
        "SELECT attempts FROM campaign_leads WHERE namespace = $1 AND campaign = $2 AND phone = $3
         FOR UPDATE",
    )
    .bind(&namespace)
    .bind(&campaign)
    .bind(&phone)
    .fetch_one(&mut *tx)
    .await?;
    let next = next_for_lead(
        outcome,
        answered_by.as_deref(),
        attempts,
        &plan.retries,
        plan.voicemail.policy,
        Utc::now(),
    );
    let (status, retry_at, reason) = match &next {
        LeadNext::Completed => ("completed", None, None),
        LeadNext::Voicemail => ("voicemail", None, None),
        LeadNext::Retry(at) => ("pending", Some(*at), None),
        LeadNext::Failed(why) => ("failed", None, Some(why.as_str())),
    };
    let last_outcome = if is_machine(answered_by.as_deref()) {
        "machine"
    } else {
        outcome.as_str()
    };
    sqlx::query(
        "UPDATE campaign_leads SET status = $4, lease_until = NULL,
                next_attempt_at = COALESCE($5, next_attempt_at), last_outcome = $6,
                last_error = COALESCE($7, $8, last_error), updated_at = now()
         WHERE namespace = $1 AND campaign = $2 AND phone = $3 AND status = 'dialing'",
    )
    .bind(&namespace)
    .bind(&campaign)
    .bind(&phone)
    .bind(status)
    .bind(retry_at)
    .bind(last_outcome)
    .bind(reason)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    if let Some(at) = retry_at {
        // The dialer may have scheduled its next look later than the retry.
        sqlx::query(
            "UPDATE campaigns SET next_dial_at = LEAST(next_dial_at, $3)
             WHERE namespace = $1 AND name = $2",
        )
        .bind(&namespace)
        .bind(&campaign)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Some(next))
}

/// Records the `CA…` sid Twilio gave the placed call.
pub async fn placed(pool: &PgPool, id: Uuid, call_sid: &str) -> Result<(), CampaignError> {
    sqlx::query("UPDATE campaign_attempts SET call_sid = $2 WHERE id = $1 AND call_sid IS NULL")
        .bind(id)
        .bind(call_sid)
        .execute(pool)
        .await?;
    Ok(())
}

/// Twilio refused to place the call in a way no retry can fix (a number
/// outside the account, an invalid `To`, bad credentials): the attempt
/// fails and so does its lead, with Twilio's reason, at once.
pub async fn refuse_attempt(pool: &PgPool, id: Uuid, reason: &str) -> Result<(), CampaignError> {
    let mut tx = pool.begin().await?;
    let row: Option<(String, String, String)> = sqlx::query_as(
        "UPDATE campaign_attempts SET outcome = 'failed', error = $2, finished_at = now()
         WHERE id = $1 AND finished_at IS NULL
         RETURNING namespace, campaign, phone",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((namespace, campaign, phone)) = row {
        sqlx::query(
            "UPDATE campaign_leads SET status = 'failed', lease_until = NULL,
                    last_outcome = 'refused', last_error = $4, updated_at = now()
             WHERE namespace = $1 AND campaign = $2 AND phone = $3 AND status = 'dialing'",
        )
        .bind(&namespace)
        .bind(&campaign)
        .bind(&phone)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE campaigns SET last_error = $3 WHERE namespace = $1 AND name = $2")
            .bind(&namespace)
            .bind(&campaign)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retries() -> CampaignRetries {
        CampaignRetries {
            max_attempts: 3,
            backoff_minutes: 30,
        }
    }

    #[test]
    fn a_person_completes_and_a_machine_follows_the_policy() {
        let now = Utc::now();
        let r = retries();
        assert_eq!(
            next_for_lead(
                DialOutcome::Completed,
                Some("human"),
                1,
                &r,
                VoicemailAction::Hangup,
                now
            ),
            LeadNext::Completed
        );
        assert_eq!(
            next_for_lead(
                DialOutcome::Completed,
                None,
                1,
                &r,
                VoicemailAction::Hangup,
                now
            ),
            LeadNext::Completed
        );
        assert_eq!(
            next_for_lead(
                DialOutcome::Completed,
                Some("machine_end_beep"),
                1,
                &r,
                VoicemailAction::LeaveMessage,
                now
            ),
            LeadNext::Voicemail
        );
        assert_eq!(
            next_for_lead(
                DialOutcome::Completed,
                Some("machine_start"),
                1,
                &r,
                VoicemailAction::RetryLater,
                now
            ),
            LeadNext::Retry(now + Duration::minutes(30))
        );
    }

    #[test]
    fn unanswered_calls_retry_until_the_last_attempt() {
        let now = Utc::now();
        let r = retries();
        for outcome in [
            DialOutcome::NoAnswer,
            DialOutcome::Busy,
            DialOutcome::Failed,
            DialOutcome::Lost,
        ] {
            assert_eq!(
                next_for_lead(outcome, None, 2, &r, VoicemailAction::Hangup, now),
                LeadNext::Retry(now + Duration::minutes(30))
            );
            assert_eq!(
                next_for_lead(outcome, None, 3, &r, VoicemailAction::Hangup, now),
                LeadNext::Failed(format!("{} after 3 attempts", outcome.as_str()))
            );
        }
    }

    #[test]
    fn only_final_call_statuses_finish_an_attempt() {
        assert_eq!(
            DialOutcome::from_call_status("no-answer"),
            Some(DialOutcome::NoAnswer)
        );
        for status in ["queued", "initiated", "ringing", "in-progress"] {
            assert_eq!(DialOutcome::from_call_status(status), None);
        }
    }
}
