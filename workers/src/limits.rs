//! Limits shared by every worker replica, counted in PostgreSQL: daily caps
//! per sender (reset at midnight in the Tenant's timezone) and requests per
//! second per vendor account. Concurrency per account is part of the claim
//! (see [`queue`](crate::queue)).

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::PgPool;

/// The Tenant's timezone; an unknown name (which compilation refuses)
/// counts in UTC rather than failing the job.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The Tenant's local date at `now`.
pub fn local_day(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The first instant of the local day after `now`'s. Where midnight does
/// not exist (a DST gap at 00:00), the first instant that does.
pub fn next_local_midnight(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let tomorrow = local_day(now, tz)
        .checked_add_days(Days::new(1))
        .unwrap_or(NaiveDate::MAX);
    let mut t = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(instant) = tz.from_local_datetime(&t).earliest() {
            return instant.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    now + chrono::Duration::days(1)
}

/// Counts one message against `scope`'s cap for `day`; `false` when the
/// cap is reached (and nothing is counted).
pub async fn take_daily(
    pool: &PgPool,
    scope: &str,
    day: NaiveDate,
    cap: i32,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "INSERT INTO workflow_daily_usage (scope, day, used) VALUES ($1, $2, 1) \
         ON CONFLICT (scope, day) DO UPDATE SET used = workflow_daily_usage.used + 1 \
         WHERE workflow_daily_usage.used < $3 \
         RETURNING used",
    )
    .bind(scope)
    .bind(day)
    .bind(cap)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Counts one request against `provider`'s limit for the second `now`
/// falls in; `false` when that second is full.
pub async fn take_rate(
    pool: &PgPool,
    provider: &str,
    now: DateTime<Utc>,
    per_second: i32,
) -> Result<bool, sqlx::Error> {
    let row: Option<(i32,)> = sqlx::query_as(
        "INSERT INTO workflow_rate (provider, epoch_second, used) VALUES ($1, $2, 1) \
         ON CONFLICT (provider, epoch_second) DO UPDATE SET used = workflow_rate.used + 1 \
         WHERE workflow_rate.used < $3 \
         RETURNING used",
    )
    .bind(provider)
    .bind(now.timestamp())
    .bind(per_second)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Deletes rate rows older than a minute and daily rows older than a week.
pub async fn sweep(pool: &PgPool, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM workflow_rate WHERE epoch_second < $1")
        .bind(now.timestamp() - 60)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM workflow_daily_usage WHERE day < $1")
        .bind(now.date_naive() - chrono::Duration::days(7))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("a time")
    }

    #[test]
    fn the_next_day_starts_at_the_tenants_midnight() {
        let sydney = zone("Australia/Sydney");
        // 2026-12-06 14:00 UTC is 01:00 on the 7th in Sydney (AEDT, +11).
        let now = utc(2026, 12, 6, 14, 0);
        assert_eq!(
            local_day(now, sydney),
            NaiveDate::from_ymd_opt(2026, 12, 7).expect("a day")
        );
        assert_eq!(next_local_midnight(now, sydney), utc(2026, 12, 7, 13, 0));
        // And in UTC for a name that is not a zone.
        assert_eq!(
            next_local_midnight(now, zone("Mars/Olympus")),
            utc(2026, 12, 7, 0, 0)
        );
    }

    #[test]
    fn a_midnight_lost_to_daylight_saving_moves_to_the_first_real_instant() {
        // Chile (America/Santiago) springs forward at 00:00 on 2026-09-06.
        let santiago = zone("America/Santiago");
        let next = next_local_midnight(utc(2026, 9, 5, 12, 0), santiago);
        let local = next.with_timezone(&santiago);
        assert_eq!(
            local.date_naive(),
            NaiveDate::from_ymd_opt(2026, 9, 6).expect("a day")
        );
        assert!(next > utc(2026, 9, 5, 12, 0));
    }
}
