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

/// Starts are spaced `60 / calls_per_minute` seconds apart from
/// `next_dial_at`; a turn at `now` takes every start that is due, up to the
/// free concurrency.
pub fn allowance(
    now: DateTime<Utc>,
    next_dial_at: DateTime<Utc>,
    tick: Duration,
    calls_per_minute: i32,
    max_concurrent: i32,
    in_flight: i64,
) -> Allowance {
    let per_minute = i64::from(calls_per_minute.max(1));
    let interval = Duration::microseconds(60_000_000 / per_minute);
    let base = next_dial_at.max(now - tick);
    let free = (i64::from(max_concurrent) - in_flight).max(0);
    let due = if base > now {
        0
    } else {
        let elapsed = (now - base).num_microseconds().unwrap_or(i64::MAX);
        elapsed / interval.num_microseconds().unwrap_or(1).max(1) + 1
    };
    Allowance {
        dials: u32::try_from(due.min(free)).unwrap_or(0),
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
        let a = allowance(at(0), at(-10_000), Duration::seconds(60), 600, 3, 1);
        assert_eq!(a.dials, 2);
        let full = allowance(at(0), at(-10_000), Duration::seconds(60), 600, 3, 3);
        assert_eq!(full.dials, 0);
    }

    #[test]
    fn an_idle_campaign_saves_up_no_burst() {
        // Idle for an hour at 60 a minute: one tick (250 ms) of starts.
        let a = allowance(
            at(0),
            at(-3_600_000),
            Duration::milliseconds(250),
            60,
            100,
            0,
        );
        assert_eq!(a.dials, 1);
        assert_eq!(a.base, at(-250));
        assert_eq!(a.next_after(1), at(750));
    }

    /// Simulates turns every 250 ms for ten minutes: the starts never run
    /// ahead of the rate in any window, and stay within one start of it.
    #[test]
    fn starts_keep_to_calls_per_minute() {
        for per_minute in [1, 7, 60, 600, 6000] {
            let tick = Duration::milliseconds(250);
            let mut next = at(0);
            let mut starts: Vec<DateTime<Utc>> = Vec::new();
            for step in 0..2400 {
                let now = at(step * 250);
                if next > now {
                    continue;
                }
                let a = allowance(now, next, tick, per_minute, 10_000, 0);
                starts.extend((0..a.dials).map(|_| now));
                next = a.next_after(a.dials);
            }
            // Every start the schedule had due by the last turn (at
            // 599.75 s) was taken: the rate is met, not just bounded.
            let interval_us = 60_000_000 / i64::from(per_minute);
            let expected = 599_750_000 / interval_us + 1;
            let placed = starts.len() as i64;
            assert_eq!(placed, expected, "{per_minute}/min over 10 min");
            // No sliding minute holds more than the rate, plus the starts
            // one tick late can bring in (a turn takes what fell due since
            // the last) and the one a boundary can share.
            let late = (250 * i64::from(per_minute) + 59_999) / 60_000;
            let mut end = 0;
            for (i, first) in starts.iter().enumerate() {
                while end < starts.len() && starts[end] < *first + Duration::minutes(1) {
                    end += 1;
                }
                let in_minute = (end - i) as i64;
                assert!(
                    in_minute <= i64::from(per_minute) + late + 1,
                    "{per_minute}/min: {in_minute} starts within a minute"
                );
            }
        }
    }
}
