//! Every query the chart ships, run against the test environment's
//! Prometheus after the demo's traffic: each dashboard panel's targets and
//! each alert rule's expression. A query that Prometheus refuses, or that
//! names a metric no Dialtone process exports, fails; so does a panel that
//! draws nothing although every series it selects has data.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd;

/// One query and where it comes from.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    /// `<dashboard> / <panel>` or `alert <name>`.
    pub source: String,
    pub expr: String,
    /// Alerts are empty while they do not fire; panels must draw.
    pub must_draw: bool,
}

/// The panel targets of every dashboard and every alert rule of the chart.
pub fn chart_queries(chart: &Path) -> Result<Vec<Query>> {
    let mut queries = Vec::new();
    let dir = chart.join("dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    files.sort();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "json"))
    {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let dashboard: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        queries.extend(panel_queries(&dashboard));
    }
    let alerts = chart.join("files").join("alerts.yaml");
    let text = std::fs::read_to_string(&alerts)
        .with_context(|| format!("reading {}", alerts.display()))?;
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", alerts.display()))?;
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            if let (Some(name), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) {
                queries.push(Query {
                    source: format!("alert {name}"),
                    expr: expr.trim().to_owned(),
                    must_draw: false,
                });
            }
        }
    }
    Ok(queries)
}

fn panel_queries(dashboard: &Value) -> Vec<Query> {
    let title = dashboard["title"].as_str().unwrap_or("dashboard");
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // Rows nest their panels when collapsed.
    let nested: Vec<&Value> = panels
        .iter()
        .flat_map(|panel| panel["panels"].as_array().into_iter().flatten())
        .collect();
    panels.extend(nested);
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                queries.push(Query {
                    source: format!("{title} / {}", panel["title"].as_str().unwrap_or("?")),
                    expr: grafana_variables(expr),
                    must_draw: true,
                });
            }
        }
    }
    queries
}

/// The query as Grafana sends it with every variable at "All": template
/// variables match anything, interval variables get their usual values.
pub fn grafana_variables(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h");
    // `$name` and `${name}` of template variables, inside a matcher's quotes.
    let mut result = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            result.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            chars.next();
        }
        if braced && chars.peek() == Some(&'}') {
            chars.next();
        }
        result.push_str(".*");
    }
    out = result;
    out
}

/// The metric selectors of `expr` (`name` or `name{matchers}`), for the
/// metrics Dialtone exports (`dialtone_*`, `process_*`).
pub fn selectors(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_name_char(bytes[i - 1]);
        if starts_word && (expr[i..].starts_with("dialtone_") || expr[i..].starts_with("process_"))
        {
            let start = i;
            while i < bytes.len() && is_name_char(bytes[i]) {
                i += 1;
            }
            let mut end = i;
            if expr[i..].starts_with('{')
                && let Some(close) = expr[i..].find('}')
            {
                end = i + close + 1;
            }
            found.push(expr[start..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    found.sort();
    found.dedup();
    found
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// The metric name of a selector.
fn metric_name(selector: &str) -> &str {
    selector.split('{').next().unwrap_or(selector)
}

/// The family a sample name belongs to, as the metadata API lists it
/// (`x_total`, `x_bucket`, `x_sum`, `x_count` are samples of `x`).
fn families(name: &str) -> Vec<&str> {
    let mut names = vec![name];
    for suffix in ["_total", "_bucket", "_sum", "_count", "_created"] {
        if let Some(family) = name.strip_suffix(suffix) {
            names.push(family);
        }
    }
    names
}

/// Prometheus' HTTP API on loopback.
struct Api {
    port: u16,
}

impl Api {
    fn get(&self, path: &str) -> Result<Value> {
        let (status, body) = cmd::http_get(self.port, path)?;
        let value: Value = serde_json::from_str(&body)
            .with_context(|| format!("Prometheus answered {status} with {body:.200}"))?;
        if value["status"] != "success" {
            bail!(
                "{}: {}",
                value["errorType"].as_str().unwrap_or("error"),
                value["error"].as_str().unwrap_or(&body)
            );
        }
        Ok(value["data"].clone())
    }

    fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self.get(&format!("/api/v1/query?query={}", percent_encode(expr)))?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }
}

/// `application/x-www-form-urlencoded` of a query parameter.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The metric families the scraped processes declare (`# TYPE` lines of
/// their `/metrics`), with or without series: a family whose labelled
/// series were never created (no reconcile error yet) is still known.
fn declared(api: &Api) -> Result<BTreeSet<String>> {
    let data = api.get("/api/v1/targets?state=active")?;
    let mut families = BTreeSet::new();
    for target in data["activeTargets"].as_array().into_iter().flatten() {
        let url = target["scrapeUrl"].as_str().unwrap_or_default();
        let (port, path) =
            loopback(url).with_context(|| format!("the scrape URL {url} is not on 127.0.0.1"))?;
        let (status, body) = cmd::http_get(port, path)?;
        if status != 200 {
            bail!("{url} answered {status}");
        }
        families.extend(type_lines(&body));
    }
    Ok(families)
}

/// `(port, path)` of `http://127.0.0.1:<port><path>`.
fn loopback(url: &str) -> Option<(u16, &str)> {
    let rest = url.strip_prefix("http://127.0.0.1:")?;
    let slash = rest.find('/')?;
    Some((rest[..slash].parse().ok()?, &rest[slash..]))
}

/// The family names of an exposition's `# TYPE <name> <type>` lines.
fn type_lines(exposition: &str) -> impl Iterator<Item = String> + '_ {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Waits until Prometheus scrapes every listed target successfully.
pub fn wait_for_targets(port: u16, timeout: Duration) -> Result<usize> {
    let api = Api { port };
    let started = Instant::now();
    loop {
        let data = api.get("/api/v1/targets?state=active")?;
        let targets = data["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let down: Vec<String> = targets
            .iter()
            .filter(|t| t["health"] != "up")
            .map(|t| format!("{} ({})", t["scrapeUrl"], t["lastError"]))
            .collect();
        if !targets.is_empty() && down.is_empty() {
            return Ok(targets.len());
        }
        if started.elapsed() > timeout {
            bail!(
                "Prometheus targets not up within {timeout:?}: {}",
                down.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Where Dialtone's binaries register their metrics, and the prefixes of
/// their registries.
const METRIC_SOURCES: [&str; 4] = [
    "operator/src",
    "controllers/src",
    "voice-pods/src",
    "workers/src",
];
const METRIC_PREFIXES: [&str; 4] = [
    "dialtone",
    "dialtone_voice",
    "dialtone_workflow",
    "dialtone_campaign",
];
/// What `register_with_unit` appends.
const UNIT_SUFFIXES: [&str; 3] = ["", "_seconds", "_bytes"];

/// The metric names the source registers (`register("name", …)` and
/// `register_with_unit("name", …)`), with every registry prefix and unit:
/// a family whose labelled series were never created (no reconcile error
/// yet) exports nothing, but is still a metric Dialtone has.
fn registered(root: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for dir in METRIC_SOURCES {
        for file in rust_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for name in registered_names(&text) {
                for prefix in METRIC_PREFIXES {
                    for unit in UNIT_SUFFIXES {
                        names.insert(format!("{prefix}_{name}{unit}"));
                    }
                }
            }
        }
    }
    Ok(names)
}

fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(files)
}

/// The string literal that opens each `register(` or `register_with_unit(`.
fn registered_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for call in ["register(", "register_with_unit("] {
        for (at, _) in source.match_indices(call) {
            let rest = source[at + call.len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"')
                && let Some(end) = literal.find('"')
            {
                names.push(literal[..end].to_owned());
            }
        }
    }
    names
}

/// Runs every query; prints what each panel draws; fails on the first
/// refused query, unknown metric or empty panel with data.
pub fn check(port: u16, queries: &[Query], root: &Path) -> Result<()> {
    let api = Api { port };
    let mut known = declared(&api)?;
    known.extend(registered(root)?);
    let mut problems = Vec::new();
    let (mut drawn, mut idle) = (0, 0);
    for query in queries {
        let selectors = selectors(&query.expr);
        let unknown: Vec<&str> = selectors
            .iter()
            .map(|s| metric_name(s))
            .filter(|name| !families(name).iter().any(|f| known.contains(*f)))
            .collect();
        if !unknown.is_empty() {
            problems.push(format!(
                "{}: Dialtone has no metric {} (not exported, not registered in the source)",
                query.source,
                unknown.join(", ")
            ));
            continue;
        }
        let result = match api.query(&query.expr) {
            Ok(result) => result,
            Err(err) => {
                problems.push(format!(
                    "{}: Prometheus refused the query: {err:#}",
                    query.source
                ));
                continue;
            }
        };
        let mut without_data = Vec::new();
        for selector in &selectors {
            if api.query(&format!("count({selector})"))?.is_empty() {
                without_data.push(selector.clone());
            }
        }
        let shown = match (result.is_empty(), without_data.is_empty()) {
            (false, _) => {
                drawn += 1;
                format!("{} series, e.g. {}", result.len(), sample(&result[0]))
            }
            (true, true) if query.must_draw => {
                problems.push(format!(
                    "{}: draws nothing although every series it selects has data: {}",
                    query.source, query.expr
                ));
                continue;
            }
            (true, true) => {
                idle += 1;
                "not firing".to_owned()
            }
            (true, false) => {
                idle += 1;
                format!("no data in this run for {}", without_data.join(", "))
            }
        };
        println!("  {:<62} {shown}", truncate(&query.source, 62));
    }
    println!(
        "{} queries: {drawn} drew, {idle} without data or not firing, {} problems",
        queries.len(),
        problems.len()
    );
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    Ok(())
}

/// `{labels} value` of one result, short.
fn sample(result: &Value) -> String {
    let labels: Vec<String> = result["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let value = result["value"][1].as_str().unwrap_or("?");
    let value = value
        .parse::<f64>()
        .map_or(value.to_owned(), |v| format!("{v:.4}"));
    if labels.is_empty() {
        value
    } else {
        format!("{{{}}} {value}", labels.join(","))
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_become_what_all_sends() {
        assert_eq!(
            grafana_variables(r#"sum(rate(x{tenant=~"$tenant"}[$__rate_interval]))"#),
            r#"sum(rate(x{tenant=~".*"}[1m]))"#
        );
        assert_eq!(
            grafana_variables(r#"y{c=~"${controller}"}"#),
            r#"y{c=~".*"}"#
        );
    }

    #[test]
    fn selectors_are_found_with_their_matchers() {
        let expr = r#"sum(increase(dialtone_voice_cost_usd_total{tenant=~".*"}[1h])) / (sum(increase(dialtone_voice_call_duration_seconds_sum[1h])) / 60) + on() process_cpu_seconds_total"#;
        assert_eq!(
            selectors(expr),
            [
                "dialtone_voice_call_duration_seconds_sum",
                r#"dialtone_voice_cost_usd_total{tenant=~".*"}"#,
                "process_cpu_seconds_total"
            ]
        );
        assert!(selectors("sum(rate(up[5m]))").is_empty());
        assert!(selectors("my_dialtone_x").is_empty());
    }

    #[test]
    fn sample_names_map_to_their_family() {
        assert_eq!(
            families("dialtone_reconciles_total"),
            ["dialtone_reconciles_total", "dialtone_reconciles"]
        );
        assert_eq!(families("dialtone_leader"), ["dialtone_leader"]);
    }

    #[test]
    fn the_charts_queries_are_all_read() {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("charts/dialtone");
        let queries = chart_queries(&chart).unwrap();
        assert!(
            queries
                .iter()
                .any(|q| q.source.starts_with("alert ") && !q.must_draw)
        );
        assert!(queries.iter().filter(|q| q.must_draw).count() >= 20);
        assert!(queries.iter().all(|q| !q.expr.contains('$')), "{queries:?}");
    }

    #[test]
    fn every_alert_links_a_runbook_that_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let text = std::fs::read_to_string(root.join("charts/dialtone/files/alerts.yaml")).unwrap();
        let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mut alerts = 0;
        for rule in rules["groups"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|group| group["rules"].as_sequence().unwrap())
        {
            let name = rule["alert"].as_str().unwrap();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let file = format!("docs/runbooks/{name}.md");
            assert!(url.ends_with(&file), "{name}: {url} is not {file}");
            assert!(root.join(&file).is_file(), "{name}: {file} is missing");
            alerts += 1;
        }
        assert!(alerts >= 13, "{alerts} alerts");
    }

    #[test]
    fn declared_families_are_read_from_type_lines() {
        let exposition = "# HELP dialtone_reconcile_errors Errors.\n# TYPE dialtone_reconcile_errors counter\n# TYPE dialtone_leader gauge\ndialtone_leader 1\n# EOF\n";
        let names: Vec<String> = type_lines(exposition).collect();
        assert_eq!(names, ["dialtone_reconcile_errors", "dialtone_leader"]);
        assert_eq!(
            loopback("http://127.0.0.1:9090/metrics"),
            Some((9090, "/metrics"))
        );
        assert_eq!(loopback("http://10.0.0.1:9090/metrics"), None);
    }

    #[test]
    fn registered_metric_names_are_read_from_the_source() {
        let source = "registry.register(\n    \"calls_refused\",\n    \"help\",\n    x);\n\
                      registry.register_with_unit(\"turn_latency\", \"help\", Unit::Seconds, y);\n\
                      sqlx::register(other);";
        assert_eq!(registered_names(source), ["calls_refused", "turn_latency"]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let known = registered(root).unwrap();
        assert!(known.contains("dialtone_voice_calls_refused"));
        assert!(known.contains("dialtone_reconcile_errors"));
        assert!(known.contains("dialtone_voice_turn_latency_seconds"));
        assert!(!known.contains("dialtone_voice_calls_refusd"));
    }

    #[test]
    fn query_text_is_percent_encoded() {
        assert_eq!(percent_encode(r#"a{b="c d"}"#), "a%7Bb%3D%22c%20d%22%7D");
    }
}
