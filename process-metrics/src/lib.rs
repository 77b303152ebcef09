//! The process metrics every Prometheus client library exports
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, …), read from `/proc/self` at each scrape, so the
//! dashboards' memory, CPU and descriptor panels have data for Dialtone's
//! binaries as for any other. Register it on the root registry: the names
//! are unprefixed by convention.

use std::fmt;
use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports CPU time in clock ticks of USER_HZ, which is 100 on every
/// architecture the kernel supports (it is part of the user-space ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/self` on every scrape; a file that cannot be read leaves
/// its metrics out of that scrape rather than reporting zeros.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one scrape reads.
#[derive(Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub threads: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
}

impl Sample {
    pub fn read() -> Sample {
        let stat = fs::read_to_string("/proc/self/stat").ok();
        let status = fs::read_to_string("/proc/self/status").ok();
        let boot = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|text| boot_time(&text));
        let ticks = stat.as_deref().and_then(stat_ticks);
        Sample {
            cpu_seconds: ticks.map(|t| (t.user + t.system) as f64 / TICKS_PER_SECOND),
            start_time_seconds: ticks
                .zip(boot)
                .map(|(t, boot)| boot as f64 + t.start as f64 / TICKS_PER_SECOND),
            resident_bytes: status
                .as_deref()
                .and_then(|s| status_kib(s, "VmRSS:"))
                .map(|k| k * 1024),
            virtual_bytes: status
                .as_deref()
                .and_then(|s| status_kib(s, "VmSize:"))
                .map(|k| k * 1024),
            threads: status.as_deref().and_then(|s| status_kib(s, "Threads:")),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as i64),
            max_fds: fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|text| max_open_files(&text)),
        }
    }
}

/// CPU ticks and the start time (ticks after boot) of `/proc/self/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticks {
    pub user: u64,
    pub system: u64,
    pub start: u64,
}

/// Fields 14, 15 and 22 of `/proc/<pid>/stat`, counted after the command
/// name, which is in parentheses and may itself hold spaces or ')'.
pub fn stat_ticks(stat: &str) -> Option<Ticks> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (the state).
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some(Ticks {
        user: field(14)?,
        system: field(15)?,
        start: field(22)?,
    })
}

/// The number after `key` in `/proc/<pid>/status` (kB for memory lines).
pub fn status_kib(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: boot time in seconds since 1970.
pub fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`.
pub fn max_open_files(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sample = Sample::read();
        if let Some(seconds) = sample.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                sample.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                sample.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                sample.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_threads",
                "Number of OS threads in the process.",
                sample.threads.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                sample.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                sample.max_fds.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn stat_fields_are_counted_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2560 18446744073709551615";
        assert_eq!(
            stat_ticks(stat),
            Some(Ticks {
                user: 250,
                system: 75,
                start: 123456
            })
        );
        assert_eq!(stat_ticks("no parentheses"), None);
    }

    #[test]
    fn status_limits_and_boot_time_are_read() {
        let status =
            "Name:\tdialtone-voice\nVmSize:\t  204800 kB\nVmRSS:\t   51200 kB\nThreads:\t9\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(51_200));
        assert_eq!(status_kib(status, "Threads:"), Some(9));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1_048_576));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1796650000\nprocesses 9\n"),
            Some(1_796_650_000)
        );
    }

    #[test]
    fn a_scrape_exports_this_process_under_the_standard_names() {
        let mut registry = Registry::with_prefix("dialtone");
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let mut text = String::new();
        encode(&mut text, &root).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(rss > 1e6, "a test process uses more than 1 MB: {rss}");
        // A prefixed registry would rename them; the root one does not.
        registry.register_collector(Box::new(ProcessCollector));
        let mut prefixed = String::new();
        encode(&mut prefixed, &registry).unwrap();
        assert!(prefixed.contains("dialtone_process_open_fds"));
    }
}
