//! Pacing: how many calls one dialer turn may start, so that a campaign
//! never starts more than `callsPerMinute` in any minute and never has
//! more than `maxConcurrentCalls` in flight, across all replicas (the turn
//! runs under the campaign row's lock; this is the arithmetic).

use chrono::{DateTime, Duration, Utc};

/// What a turn may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// Calls to start now.
    pub dials: u32,
    /// Where the schedule of starts begins: the stored next-dial instant,
    /// but never earlier than one tick ago, so an idle campaign does not
    /// save up a burst.
    pub base: DateTime<Utc>,
    /// The spacing between starts.
    pub interval: Duration,
}

impl Allowance {
    /// The next start after `dials` calls were actually placed from `base`.
    pub fn next_after(&self, placed: u32) -> DateTime<Utc> {
        self.base + self.interval * i32::try_from(placed).unwrap_or(i32::MAX)
    }
}

/// How many ticks behind its schedule a campaign may catch up. A walk
/// takes a tick's sleep plus the turns and the placing, so in steady state
/// the schedule lags by more than one tick; starts further behind than this
/// (a campaign that waited, or was outside its window) are forgone, not
/// saved up into a burst.
pub const CATCH_UP_TICKS: i32 = 4;

/// Starts are spaced `60 / calls_per_minute` seconds apart from
/// `next_dial_at`; a turn at `now` takes every start that is due (at most
/// `catch_up` behind), up to the free concurrency, and never more than the
/// minute's rate leaves after the `started_last_minute` starts of the
/// trailing 60 s.
pub fn allowance(
    now: DateTime<Utc>,
    next_dial_at: DateTime<Utc>,
    catch_up: Duration,
    calls_per_minute: i32,
    max_concurrent: i32,
    in_flight: i64,
    started_last_minute: i64,
) -> Allowance {
    let per_minute = i64::from(calls_per_minute.max(1));
    let interval = Duration::microseconds(60_000_000 / per_minute);
    let base = next_dial_at.max(now - catch_up);
    let free = (i64::from(max_concurrent) - in_flight).max(0);
    let minute_left = (per_minute - started_last_minute).max(0);
    let due = if base > now {
        0
    } else {
        let elapsed = (now - base).num_microseconds().unwrap_or(i64::MAX);
        elapsed / interval.num_microseconds().unwrap_or(1).max(1) + 1
    };
    Allowance {
        dials: u32::try_from(due.min(free).min(minute_left)).unwrap_or(0),
        base,
        interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(1_780_000_000_000 + ms).unwrap()
    }

    #[test]
    fn concurrency_bounds_the_starts() {
        let a = allowance(at(0), at(-10_000), Duration::seconds(60), 600, 3, 1, 0);
        assert_eq!(a.dials, 2);
        let full = allowance(at(0), at(-10_000), Duration::seconds(60), 600, 3, 3, 0);
        assert_eq!(full.dials, 0);
    }

    #[test]
    fn an_idle_campaign_saves_up_no_burst() {
        // Idle for an hour at 60 a minute: one second of starts at most.
        let a = allowance(at(0), at(-3_600_000), Duration::seconds(1), 60, 100, 0, 0);
        assert_eq!(a.dials, 2);
        assert_eq!(a.base, at(-1_000));
        assert_eq!(a.next_after(2), at(1_000));
    }

    #[test]
    fn the_trailing_minute_caps_the_starts() {
        let a = allowance(at(0), at(-10_000), Duration::seconds(60), 60, 100, 0, 58);
        assert_eq!(a.dials, 2, "two of the minute's 60 left");
        let spent = allowance(at(0), at(-10_000), Duration::seconds(60), 60, 100, 0, 60);
        assert_eq!(spent.dials, 0);
    }

    /// Simulates a dialer whose walks take longer than its tick (250 ms of
    /// sleep plus 80 ms of work) for ten minutes: the rate is met within
    /// 0.5 % (starts the trailing-minute cap defers can fall out of the
    /// catch-up), and no sliding minute holds more than the rate.
    #[test]
    fn starts_keep_to_calls_per_minute_when_walks_outlast_the_tick() {
        for per_minute in [1, 7, 60, 600, 3_000, 6_000] {
            let catch_up = Duration::milliseconds(250) * CATCH_UP_TICKS;
            let mut next = at(0);
            let mut starts: Vec<DateTime<Utc>> = Vec::new();
            let mut now_ms = 0;
            while now_ms < 600_000 {
                let now = at(now_ms);
                now_ms += 330;
                if next > now {
                    continue;
                }
                let minute_ago = now - Duration::minutes(1);
                let recent = starts.iter().filter(|s| **s > minute_ago).count() as i64;
                let a = allowance(now, next, catch_up, per_minute, 10_000, 0, recent);
                starts.extend((0..a.dials).map(|_| now));
                next = a.next_after(a.dials);
            }
            let interval_us = 60_000_000 / i64::from(per_minute);
            let last_turn_us = (now_ms - 330) * 1_000;
            let expected = last_turn_us / interval_us + 1;
            let placed = starts.len() as i64;
            assert!(
                (expected - placed).abs() <= 1 + expected / 200,
                "{per_minute}/min over 10 min: {placed} starts, {expected} due"
            );
            let mut end = 0;
            for (i, first) in starts.iter().enumerate() {
                while end < starts.len() && starts[end] < *first + Duration::minutes(1) {
                    end += 1;
                }
                let in_minute = (end - i) as i64;
                assert!(
                    in_minute <= i64::from(per_minute),
                    "{per_minute}/min: {in_minute} starts within a minute"
                );
            }
        }
    }
}
