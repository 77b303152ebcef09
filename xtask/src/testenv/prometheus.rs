//! Prometheus (the server of promtool's release) on loopback. It scrapes
//! what the demo starts (the operator, voice pods, workers) from target
//! files that give each the labels the chart's ServiceMonitors would (job =
//! the Service's name, namespace, pod, service, endpoint), and evaluates
//! the chart's alert rules.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;

use super::run::Launch;
use crate::cmd;

/// Seconds between scrapes and rule evaluations: short, so a demo-sized
/// run has many samples in a 5-minute rate window.
const INTERVAL: &str = "2s";

fn home(dir: &Path) -> PathBuf {
    dir.join("prometheus")
}

fn targets(dir: &Path) -> PathBuf {
    home(dir).join("targets")
}

/// Writes the configuration and returns how to start Prometheus.
pub fn launch(dir: &Path, port: u16, rules: &Path) -> Result<Launch> {
    let home = home(dir);
    fs::create_dir_all(targets(dir))
        .with_context(|| format!("creating {}", targets(dir).display()))?;
    let config = format!(
        "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n  - job_name: dialtone\n    file_sd_configs:\n      - files: ['{targets}/*.json']\n        refresh_interval: 1s\n",
        rules = rules.display(),
        targets = targets(dir).display(),
    );
    let path = home.join("prometheus.yml");
    fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Ok(Launch {
        program: dir.join("bin").join("prometheus"),
        args: vec![
            format!("--config.file={}", path.display()),
            format!("--storage.tsdb.path={}", home.join("data").display()),
            "--storage.tsdb.retention.time=2d".to_owned(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle".to_owned(),
        ],
        log: dir.join("logs").join("prometheus.log"),
        run_as: None,
        env: Vec::new(),
    })
}

pub fn ready(port: u16) -> bool {
    cmd::http_get(port, "/-/ready").is_ok_and(|(code, _)| code == 200)
}

/// The namespace the demo's processes stand in for (the chart's).
const NAMESPACE: &str = "dialtone-system";

/// Lists the demo's process `name` (`operator`, `voice`, `workers`),
/// serving metrics on `port`, for scraping with the labels a ServiceMonitor
/// gives it: `job` (the Service's name), namespace, pod, service and the
/// `http-metrics` endpoint. Replaces an earlier listing of the same name.
pub fn register(dir: &Path, name: &str, port: u16, job: &str) -> Result<()> {
    let group = json!([{
        "targets": [format!("127.0.0.1:{port}")],
        "labels": {
            "job": job,
            "namespace": NAMESPACE,
            "pod": format!("dialtone-{name}-local"),
            "service": job,
            "endpoint": "http-metrics",
        },
    }]);
    fs::create_dir_all(targets(dir))
        .with_context(|| format!("creating {}", targets(dir).display()))?;
    // Written beside and renamed, so Prometheus never reads half a file.
    let path = targets(dir).join(format!("{name}.json"));
    let partial = targets(dir).join(format!(".{name}.json.partial"));
    fs::write(&partial, group.to_string())
        .with_context(|| format!("writing {}", partial.display()))?;
    fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))
}
