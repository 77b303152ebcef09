//! One dialer turn at one campaign, in one transaction under the campaign
//! row's lock (`FOR UPDATE SKIP LOCKED`: a replica that finds it locked
//! moves on, so replicas never dial one campaign at once): the stops
//! (budget, failure breaker, stale register), the pacing allowance, then
//! due leads checked just in time — window, suppression, register — and
//! the ones that pass claimed with a caller id under its daily cap.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use dialtone_crds::campaign::CampaignPurpose;
use dialtone_engine::dialing::{self, DialWindows, LegalFloor, Verdict};
use dialtone_spine::campaigns::{CampaignKey, DialPlan};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::pace;

/// How old the do-not-call register copy may be for telemarketing (the Do
/// Not Call Register Act 2006 accepts a wash for 30 days).
pub const REGISTER_MAX_AGE_DAYS: i64 = 30;

/// The failure breaker: of the last [`BREAKER_WINDOW`] attempts finished
/// within [`BREAKER_SECONDS`], this many failed pauses the campaign.
pub const BREAKER_FAILURES: i64 = 10;
/// Attempts the breaker looks at.
pub const BREAKER_WINDOW: i64 = 20;
/// How recent they must be.
pub const BREAKER_SECONDS: i64 = 120;

/// Why a turn went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The database failed.
    #[error("dialer: {0}")]
    Db(#[from] sqlx::Error),
}

/// A call the turn claimed, to place once the transaction commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    /// The attempt (its id is in the callback URLs).
    pub attempt_id: Uuid,
    /// The tenant.
    pub tenant: String,
    /// The campaign.
    pub key: CampaignKey,
    /// The callee.
    pub phone: String,
    /// The caller id presented.
    pub caller_id: String,
    /// The config version the call will run (the caller id's route).
    pub config_version: String,
    /// Answering-machine detection mode.
    pub machine_detection: &'static str,
}

/// What a turn did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// Calls to place.
    pub dials: Vec<Dial>,
    /// Why the campaign stopped or waits, if it did.
    pub held: Option<&'static str>,
}

/// The settings a turn runs with.
#[derive(Clone, Debug)]
pub struct TurnSettings {
    /// The legal floor.
    pub floor: LegalFloor,
    /// The dialer's poll interval (pacing's burst bound).
    pub tick: Duration,
    /// How long a dial slot lasts without a terminal status.
    pub dial_timeout: Duration,
}

struct Locked {
    tenant: String,
    agent: String,
    plan: serde_json::Value,
    next_dial_at: DateTime<Utc>,
}

/// Holds the campaign: a stop (cleared only by an edited spec) or a wait
/// (the dialer looks again at `until`).
async fn hold(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
    stop: bool,
    reason: &'static str,
    detail: &str,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let sql = if stop {
        "UPDATE campaigns SET stopped = $3, stopped_at = now(), waiting = NULL, last_error = $4,
                next_dial_at = $5 WHERE namespace = $1 AND name = $2"
    } else {
        "UPDATE campaigns SET waiting = $3, last_error = $4, next_dial_at = $5
         WHERE namespace = $1 AND name = $2"
    };
    sqlx::query(sql)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(reason)
        .bind(detail)
        .bind(until)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Runs one turn at `key`. `None` when another replica holds it or it is
/// not due.
pub async fn run(
    pool: &PgPool,
    settings: &TurnSettings,
    key: &CampaignKey,
) -> Result<Option<Turn>, TurnError> {
    let mut tx = pool.begin().await?;
    let locked: Option<(String, String, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT tenant, agent, plan, next_dial_at FROM campaigns
         WHERE namespace = $1 AND name = $2 AND active AND stopped IS NULL
           AND next_dial_at <= now()
         FOR UPDATE SKIP LOCKED",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((tenant, agent, plan, next_dial_at)) = locked else {
        return Ok(None);
    };
    let locked = Locked {
        tenant,
        agent,
        plan,
        next_dial_at,
    };
    let now = Utc::now();
    let turn = dial(&mut tx, settings, key, &locked, now).await?;
    tx.commit().await?;
    Ok(Some(turn))
}

async fn dial(
    tx: &mut Transaction<'_, Postgres>,
    settings: &TurnSettings,
    key: &CampaignKey,
    locked: &Locked,
    now: DateTime<Utc>,
) -> Result<Turn, TurnError> {
    let mut turn = Turn::default();
    let retry_soon = now + Duration::seconds(30);
    let plan: DialPlan = match serde_json::from_value(locked.plan.clone()) {
        Ok(plan) => plan,
        Err(err) => {
            hold(tx, key, false, "InvalidPlan", &err.to_string(), retry_soon).await?;
            turn.held = Some("InvalidPlan");
            return Ok(turn);
        }
    };
    let windows = match DialWindows::new(
        &plan.schedule,
        plan.purpose,
        &settings.floor,
        &plan.holidays,
    ) {
        Ok(w) => w,
        Err(err) => {
            hold(
                tx,
                key,
                false,
                "InvalidSchedule",
                &err.to_string(),
                retry_soon,
            )
            .await?;
            turn.held = Some("InvalidSchedule");
            return Ok(turn);
        }
    };
    let tenant_tz = crate::limits::zone(&plan.tenant_timezone);

    if let Some(reason) = register_problem(tx, &plan, now).await? {
        hold(
            tx,
            key,
            false,
            "RegisterStale",
            &reason,
            now + Duration::minutes(1),
        )
        .await?;
        turn.held = Some("RegisterStale");
        return Ok(turn);
    }
    let (in_flight,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM campaign_leads
         WHERE namespace = $1 AND campaign = $2 AND status = 'dialing'",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(reason) = budget_exhausted(tx, key, &plan, in_flight).await? {
        hold(tx, key, true, "BudgetExhausted", &reason, now).await?;
        turn.held = Some("BudgetExhausted");
        return Ok(turn);
    }
    if let Some(reason) = tenant_budget_spent(tx, &locked.tenant, &plan, tenant_tz, now).await? {
        let until = crate::limits::next_local_midnight(now, tenant_tz);
        hold(tx, key, false, "TenantDailyBudget", &reason, until).await?;
        turn.held = Some("TenantDailyBudget");
        return Ok(turn);
    }
    if let Some(reason) = breaker_open(tx, key).await? {
        hold(tx, key, true, "FailureBreaker", &reason, now).await?;
        turn.held = Some("FailureBreaker");
        return Ok(turn);
    }

    // A tick more than a minute: calls reach Twilio some milliseconds after
    // their start is recorded, so Twilio sees no more than the rate in any
    // minute either.
    let (started_last_minute,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM campaign_attempts
         WHERE namespace = $1 AND campaign = $2 AND started_at > $3",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(now - Duration::minutes(1) - settings.tick)
    .fetch_one(&mut **tx)
    .await?;
    let allowance = pace::allowance(
        now,
        locked.next_dial_at,
        settings.tick * pace::CATCH_UP_TICKS,
        plan.pacing.calls_per_minute,
        plan.pacing.max_concurrent_calls,
        in_flight,
        started_last_minute,
    );
    if allowance.dials == 0 {
        // Every slot is taken: look again next tick.
        return Ok(turn);
    }
    let caller_ids = routed_caller_ids(tx, key, &locked.agent, &plan).await?;
    if caller_ids.is_empty() {
        let detail = "no caller id of the campaign routes to its Agent";
        hold(tx, key, false, "NoCallerId", detail, retry_soon).await?;
        turn.held = Some("NoCallerId");
        return Ok(turn);
    }

    // More candidates than dials: some will be outside their window or
    // suppressed.
    let candidates: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT phone, timezone, attempts FROM campaign_leads
         WHERE namespace = $1 AND campaign = $2 AND status = 'pending'
           AND next_attempt_at <= $3 AND (window_opens_at IS NULL OR window_opens_at <= $3)
         ORDER BY next_attempt_at, phone
         LIMIT $4
         FOR UPDATE SKIP LOCKED",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(now)
    .bind(i64::from(allowance.dials) * 4 + 16)
    .fetch_all(&mut **tx)
    .await?;

    let mut capped = false;
    for (phone, timezone, attempts) in candidates {
        if turn.dials.len() as u32 >= allowance.dials {
            break;
        }
        let tz = dialing::recipient_timezone(timezone.as_deref(), &phone, tenant_tz);
        match windows.verdict(tz, now) {
            Verdict::Closed { next: Some(opens) } => {
                wait_for_window(tx, key, &phone, opens).await?;
                continue;
            }
            Verdict::Closed { next: None } => {
                schedule_ended(tx, key, &phone).await?;
                continue;
            }
            Verdict::Open { .. } => {}
        }
        if let Some(why) = suppressed(tx, &locked.tenant, &plan, &phone).await? {
            sqlx::query(
                "UPDATE campaign_leads SET status = 'suppressed', last_outcome = 'suppressed',
                        last_error = $4, updated_at = now()
                 WHERE namespace = $1 AND campaign = $2 AND phone = $3",
            )
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(&phone)
            .bind(why)
            .execute(&mut **tx)
            .await?;
            continue;
        }
        let Some((caller_id, config_version)) =
            take_caller_id(tx, &caller_ids, &plan, tenant_tz, now).await?
        else {
            capped = true;
            break;
        };
        let attempt_id = Uuid::new_v4();
        let attempt = attempts + 1;
        sqlx::query(
            "UPDATE campaign_leads SET status = 'dialing', attempts = $4, lease_until = $5,
                    window_opens_at = NULL, updated_at = now()
             WHERE namespace = $1 AND campaign = $2 AND phone = $3",
        )
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(&phone)
        .bind(attempt)
        .bind(now + settings.dial_timeout)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO campaign_attempts
                 (id, namespace, campaign, phone, attempt, caller_id, config_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(attempt_id)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(&phone)
        .bind(attempt)
        .bind(&caller_id)
        .bind(&config_version)
        .execute(&mut **tx)
        .await?;
        turn.dials.push(Dial {
            attempt_id,
            tenant: locked.tenant.clone(),
            key: key.clone(),
            phone,
            caller_id,
            config_version,
            machine_detection: match plan.voicemail.policy {
                dialtone_crds::campaign::VoicemailAction::LeaveMessage => "DetectMessageEnd",
                _ => "Enable",
            },
        });
    }

    let placed = turn.dials.len() as u32;
    if capped && placed == 0 {
        let until = crate::limits::next_local_midnight(now, tenant_tz);
        let detail = "every caller id reached its daily cap";
        hold(tx, key, false, "CallerIdsCapped", detail, until).await?;
        turn.held = Some("CallerIdsCapped");
        return Ok(turn);
    }
    let mut waiting = None;
    let next = if placed > 0 {
        allowance.next_after(placed)
    } else {
        // Nothing due: sleep until the earliest lead may be dialed (a
        // retry, a window), looking again at least every minute for new
        // leads and released slots.
        let (earliest, all_outside): (Option<DateTime<Utc>>, Option<bool>) = sqlx::query_as(
            "SELECT min(GREATEST(next_attempt_at, COALESCE(window_opens_at, next_attempt_at))),
                    bool_and(window_opens_at IS NOT NULL AND window_opens_at > $3)
             FROM campaign_leads WHERE namespace = $1 AND campaign = $2 AND status = 'pending'",
        )
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let earliest = earliest.unwrap_or(now + Duration::minutes(1));
        if in_flight == 0 && all_outside == Some(true) {
            // Nothing can change before the first window opens but what
            // wakes the campaign anyway (new leads, an edited plan).
            waiting = Some("OutsideWindow");
            earliest.max(now + settings.tick)
        } else {
            earliest.clamp(now + settings.tick, now + Duration::minutes(1))
        }
    };
    sqlx::query(
        "UPDATE campaigns SET next_dial_at = $3, waiting = $4 WHERE namespace = $1 AND name = $2",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(next)
    .bind(waiting)
    .execute(&mut **tx)
    .await?;
    Ok(turn)
}

/// Puts a lead aside until its window opens.
async fn wait_for_window(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
    phone: &str,
    opens: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE campaign_leads SET window_opens_at = $4, updated_at = now()
         WHERE namespace = $1 AND campaign = $2 AND phone = $3",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(phone)
    .bind(opens)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A lead the schedule can no longer reach fails, saying so.
async fn schedule_ended(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
    phone: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE campaign_leads SET status = 'failed', last_outcome = 'schedule-ended',
                last_error = 'the campaign''s schedule ended before the lead was reached',
                window_opens_at = NULL, updated_at = now()
         WHERE namespace = $1 AND campaign = $2 AND phone = $3",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(phone)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A telemarketing campaign that respects the register needs a copy
/// washed within [`REGISTER_MAX_AGE_DAYS`].
async fn register_problem(
    tx: &mut Transaction<'_, Postgres>,
    plan: &DialPlan,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    if plan.purpose != CampaignPurpose::Telemarketing || !plan.respect_do_not_call {
        return Ok(None);
    }
    let (washed,): (Option<DateTime<Utc>>,) =
        sqlx::query_as("SELECT max(washed_at) FROM dnc_washes")
            .fetch_one(&mut **tx)
            .await?;
    Ok(match washed {
        None => Some(
            "telemarketing needs the do-not-call register: load it with `dialtone dnc import`"
                .to_owned(),
        ),
        Some(at) if now - at > Duration::days(REGISTER_MAX_AGE_DAYS) => Some(format!(
            "the do-not-call register was last washed {} days ago (at most {REGISTER_MAX_AGE_DAYS}); \
             import a fresh copy with `dialtone dnc import`",
            (now - at).num_days()
        )),
        Some(_) => None,
    })
}

/// Whether one more call could take the campaign past its budget: the
/// spend so far plus the average cost per call for every call in flight
/// and the next one.
async fn budget_exhausted(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
    plan: &DialPlan,
    in_flight: i64,
) -> Result<Option<String>, sqlx::Error> {
    let Some(budget) = plan.budget_usd else {
        return Ok(None);
    };
    let (spend, calls): (f64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(c.cost_usd), 0)::float8, count(c.call_id)
         FROM campaign_attempts a JOIN calls c ON c.call_id = a.call_id
         WHERE a.namespace = $1 AND a.campaign = $2 AND c.ended_at IS NOT NULL",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_one(&mut **tx)
    .await?;
    let average = if calls > 0 { spend / calls as f64 } else { 0.0 };
    let projected = spend + average * (in_flight + 1) as f64;
    Ok((projected > budget || spend >= budget).then(|| {
        format!(
            "spent {spend:.2} USD of {budget:.2}; the next call would make about {projected:.2}"
        )
    }))
}

async fn tenant_budget_spent(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    plan: &DialPlan,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    let Some(daily) = plan.tenant_daily_budget_usd else {
        return Ok(None);
    };
    let day_start = crate::limits::next_local_midnight(now - Duration::days(1), tz);
    let (spend,): (f64,) = sqlx::query_as(
        "SELECT COALESCE(sum(cost_usd), 0)::float8 FROM calls WHERE tenant = $1 AND started_at >= $2",
    )
    .bind(tenant)
    .bind(day_start)
    .fetch_one(&mut **tx)
    .await?;
    Ok((spend >= daily)
        .then(|| format!("the tenant spent {spend:.2} USD today, its daily budget is {daily:.2}")))
}

async fn breaker_open(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
) -> Result<Option<String>, sqlx::Error> {
    let (failed, total): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE outcome IN ('failed', 'lost')), count(*) FROM (
             SELECT outcome FROM campaign_attempts
             WHERE namespace = $1 AND campaign = $2
               AND finished_at > now() - make_interval(secs => $3)
             ORDER BY finished_at DESC LIMIT $4) recent",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(BREAKER_SECONDS as f64)
    .bind(BREAKER_WINDOW)
    .fetch_one(&mut **tx)
    .await?;
    Ok((failed >= BREAKER_FAILURES).then(|| {
        format!(
            "{failed} of the last {total} dials within {BREAKER_SECONDS} s failed; \
             check the caller ids and the Agent, then edit the Campaign to resume"
        )
    }))
}

/// The plan's caller ids that route to the campaign's Agent, with the
/// config version each routes to, in the plan's order.
async fn routed_caller_ids(
    tx: &mut Transaction<'_, Postgres>,
    key: &CampaignKey,
    agent: &str,
    plan: &DialPlan,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT number, active_version FROM phone_routes
         WHERE number = ANY($1) AND namespace = $2 AND agent = $3",
    )
    .bind(&plan.caller_ids)
    .bind(&key.namespace)
    .bind(agent)
    .fetch_all(&mut **tx)
    .await?;
    Ok(plan
        .caller_ids
        .iter()
        .filter_map(|id| rows.iter().find(|(n, _)| n == id).cloned())
        .collect())
}

/// Why a number must not be called, if it must not: the tenant's
/// suppression list (opt-outs), the campaign's own list, the register.
/// Checked right before the dial, so a number added a second ago counts.
async fn suppressed(
    tx: &mut Transaction<'_, Postgres>,
    tenant: &str,
    plan: &DialPlan,
    phone: &str,
) -> Result<Option<&'static str>, sqlx::Error> {
    if plan.suppress.iter().any(|p| p == phone) {
        return Ok(Some("on the campaign's suppress list"));
    }
    if !plan.respect_do_not_call {
        return Ok(None);
    }
    let (tenant_list, register): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM suppression WHERE tenant = $1 AND phone = $2),
                EXISTS (SELECT 1 FROM dnc_register WHERE phone = $2)",
    )
    .bind(tenant)
    .bind(phone)
    .fetch_one(&mut **tx)
    .await?;
    Ok(if tenant_list {
        Some("on the tenant's suppression list")
    } else if register {
        Some("on the do-not-call register")
    } else {
        None
    })
}

/// The least-used caller id today that is under its daily cap, counted in
/// its own local day; `None` when all are capped.
async fn take_caller_id(
    tx: &mut Transaction<'_, Postgres>,
    caller_ids: &[(String, String)],
    plan: &DialPlan,
    tenant_tz: Tz,
    now: DateTime<Utc>,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let numbers: Vec<&str> = caller_ids.iter().map(|(n, _)| n.as_str()).collect();
    let days: Vec<NaiveDate> = numbers
        .iter()
        .map(|n| crate::limits::local_day(now, dialing::number_timezone(n).unwrap_or(tenant_tz)))
        .collect();
    // One read for every caller id's count on its own local day.
    let used: Vec<(String, i32)> = sqlx::query_as(
        "SELECT u.number, u.used FROM campaign_caller_usage u
         JOIN unnest($1::text[], $2::date[]) AS wanted(number, day)
           ON u.number = wanted.number AND u.day = wanted.day",
    )
    .bind(&numbers)
    .bind(&days)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_use: Vec<(i32, usize, NaiveDate)> = numbers
        .iter()
        .zip(&days)
        .enumerate()
        .map(|(i, (number, day))| {
            let count = used
                .iter()
                .find(|(n, _)| n == number)
                .map_or(0, |(_, u)| *u);
            (count, i, *day)
        })
        .collect();
    by_use.sort_unstable();
    for (_, i, day) in by_use {
        let (number, version) = &caller_ids[i];
        // Counted across replicas and campaigns: the cap protects the
        // number, whoever dials from it.
        let counted: Option<(i32,)> = sqlx::query_as(
            "INSERT INTO campaign_caller_usage (number, day, used) VALUES ($1, $2, 1)
             ON CONFLICT (number, day) DO UPDATE SET used = campaign_caller_usage.used + 1
             WHERE campaign_caller_usage.used < $3
             RETURNING used",
        )
        .bind(number)
        .bind(day)
        .bind(plan.pacing.per_caller_id_daily_cap)
        .fetch_optional(&mut **tx)
        .await?;
        if counted.is_some() {
            return Ok(Some((number.clone(), version.clone())));
        }
    }
    Ok(None)
}

/// Releases the dial slots of calls whose terminal status never came
/// (the attempt counts as `lost` and the lead retries by the usual rule).
pub async fn release_lost(pool: &PgPool, key: &CampaignKey) -> Result<u64, TurnError> {
    let lost: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT a.id FROM campaign_attempts a JOIN campaign_leads l
              ON l.namespace = a.namespace AND l.campaign = a.campaign AND l.phone = a.phone
         WHERE a.namespace = $1 AND a.campaign = $2 AND a.finished_at IS NULL
           AND l.status = 'dialing' AND l.lease_until < now()",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_all(pool)
    .await?;
    let mut released = 0;
    for (id,) in lost {
        let finished = dialtone_spine::campaigns::finish_attempt(
            pool,
            id,
            dialtone_spine::campaigns::DialOutcome::Lost,
            Some("no terminal call status arrived before the dial timeout"),
        )
        .await;
        match finished {
            Ok(Some(_)) => released += 1,
            Ok(None) => {}
            Err(err) => tracing::warn!(%id, error = %err, "cannot release a lost dial slot"),
        }
    }
    Ok(released)
}
