//! The workflow half of `cargo xtask demo`: a local server that stands in
//! for Cal.com, Twilio Messages and the plumber's job board (checking each
//! request as the vendor would), the examples' workflow Providers pointed
//! at it, a `dialtone-workers` process, and what it delivered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};

use crate::cmd;
use crate::demo_calls::{block_on, database_url, ready};
use crate::testenv::{self, Env, run};

pub const VENDORS: &str = "demo-vendors";
pub const WORKERS: &str = "dialtone-workers";

/// `(namespace, Provider, field, path on the vendor server)` of every
/// workflow Provider the examples define.
const PROVIDERS: &[(&str, &str, &str, &str)] = &[
    ("tenant-harbour-dental", "calcom", "baseUrl", "/calcom"),
    ("tenant-harbour-dental", "twilio-sms", "baseUrl", "/twilio"),
    // The telephony account: the campaign dialer places calls through it.
    ("tenant-harbour-dental", "twilio", "baseUrl", "/twilio"),
    (
        "tenant-rapid-plumbing",
        "office-webhook",
        "webhookUrl",
        "/hooks/rapid-plumbing",
    ),
];

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port")?
        .port())
}

/// The vendor server's log: one line per request it accepted or refused.
pub fn vendor_log(env: &Env) -> PathBuf {
    env.dir.join("logs").join("demo-vendors.log")
}

/// Starts the local vendor server; returns its port.
pub fn start_vendor_server(env: &Env, target: &Path) -> Result<u16> {
    testenv::stop_process(VENDORS)?;
    let program = target.join("debug").join("examples").join("demo_vendors");
    if !program.is_file() {
        bail!("{} was not built", program.display());
    }
    let port = free_port()?;
    let log = vendor_log(env);
    // A fresh log per demo, so what it prints is this run's.
    let _ = std::fs::remove_file(&log);
    // The webhook's signing secret, to verify signatures as a receiver would.
    let secret = secret_value(
        env,
        "tenant-rapid-plumbing",
        "office-webhook-secret",
        "signingSecret",
    )?;
    let launch = run::Launch {
        program,
        args: vec![format!("--port={port}")],
        log: log.clone(),
        run_as: None,
        env: vec![
            ("DEMO_WEBHOOK_SECRET".to_owned(), secret),
            (
                "DEMO_TWILIO_TOKEN".to_owned(),
                secret_value(
                    env,
                    "tenant-harbour-dental",
                    "twilio-credentials",
                    "authToken",
                )?,
            ),
            (
                "DEMO_MACHINE_NUMBERS".to_owned(),
                crate::demo_campaigns::MACHINE.to_owned(),
            ),
        ],
    };
    let (mut child, record) = run::spawn(&launch)?;
    testenv::record_process(VENDORS, record)?;
    wait_ready(&mut child, port, &log, "the vendor server")?;
    println!(
        "local vendor server on 127.0.0.1:{port} (log {})",
        log.display()
    );
    Ok(port)
}

/// Points the examples' workflow Providers at the vendor server: one field
/// each, as a real account would differ from the vendor's default only in
/// its endpoint.
pub fn point_providers(env: &Env, port: u16) -> Result<()> {
    for (namespace, name, field, path) in PROVIDERS {
        let patch =
            format!(r#"{{"spec":{{"settings":{{"{field}":"http://127.0.0.1:{port}{path}"}}}}}}"#);
        cmd::run(env.kubectl()?.args([
            "patch",
            "provider",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            &patch,
        ]))?;
    }
    Ok(())
}

/// Waits until the examples' phone routes serve a config version that has
/// the vendor server's address (the operator compiled and rolled it out).
pub fn wait_for_versions(env: &Env, port: u16) -> Result<()> {
    let url = database_url(env)?;
    let needle = format!("%127.0.0.1:{port}%");
    block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (routed,): (i64,) = sqlx::query_as(
                "SELECT count(DISTINCT r.namespace) FROM phone_routes r \
                 JOIN config_versions v ON v.hash = r.active_version \
                 WHERE r.namespace IN ('tenant-harbour-dental', 'tenant-rapid-plumbing') \
                   AND v.canonical LIKE $1",
            )
            .bind(&needle)
            .fetch_one(&mut db)
            .await
            .context("reading phone routes")?;
            if routed == 2 {
                println!("both tenants' routes serve a version that uses the local vendors");
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the routes did not move to a version with the local vendors within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

pub fn secret_value(env: &Env, namespace: &str, secret: &str, key: &str) -> Result<String> {
    let template = format!("{{{{index .data \"{key}\" | base64decode}}}}");
    cmd::output(env.kubectl()?.args([
        "get",
        "secret",
        secret,
        "-n",
        namespace,
        "-o",
        &format!("go-template={template}"),
    ]))
}

/// The credentials directory the workers read, laid out as the operator
/// mounts Secrets (`<namespace>/<provider>/<key>`), from the examples'
/// Secrets.
fn write_credentials(env: &Env) -> Result<PathBuf> {
    let dir = env.dir.join("workers").join("credentials");
    let files: &[(&str, &str, &str, &[&str])] = &[
        (
            "tenant-harbour-dental",
            "calcom",
            "calcom-credentials",
            &["apiKey"],
        ),
        (
            "tenant-harbour-dental",
            "twilio-sms",
            "twilio-credentials",
            &["accountSid", "authToken"],
        ),
        (
            "tenant-harbour-dental",
            "twilio",
            "twilio-credentials",
            &["accountSid", "authToken"],
        ),
        (
            "tenant-rapid-plumbing",
            "office-webhook",
            "office-webhook-secret",
            &["signingSecret"],
        ),
    ];
    for (namespace, provider, secret, keys) in files {
        let at = dir.join(namespace).join(provider);
        std::fs::create_dir_all(&at).with_context(|| format!("creating {}", at.display()))?;
        for key in *keys {
            let value = secret_value(env, namespace, secret, key)?;
            std::fs::write(at.join(key), value).with_context(|| format!("writing {key}"))?;
        }
    }
    Ok(dir)
}

/// Starts `dialtone-workers` against the demo's database, dialing through
/// the voice pod on `voice_port`.
pub fn start_workers(env: &Env, target: &Path, voice_port: u16) -> Result<()> {
    testenv::stop_process(WORKERS)?;
    let program = target.join("debug").join(WORKERS);
    if !program.is_file() {
        bail!("{} was not built", program.display());
    }
    let credentials = write_credentials(env)?;
    let port = free_port()?;
    let log = env.dir.join("logs").join("workers.log");
    let launch = run::Launch {
        program,
        args: vec![
            format!("--listen=127.0.0.1:{port}"),
            format!("--credentials-dir={}", credentials.display()),
            "--worker-id=demo-worker".to_owned(),
            "--idle-poll-ms=100".to_owned(),
            format!("--voice-url=http://127.0.0.1:{voice_port}"),
            format!(
                "--legal-floor={}",
                crate::demo_campaigns::write_floor(env)?.display()
            ),
            "--dialer-tick-ms=100".to_owned(),
        ],
        log: log.clone(),
        run_as: None,
        env: env
            .vars()
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect(),
    };
    let (mut child, record) = run::spawn(&launch)?;
    testenv::record_process(WORKERS, record)?;
    wait_ready(&mut child, port, &log, "the workers")?;
    testenv::prometheus::register(&env.dir, "workers", port, "dialtone-workers")?;
    println!(
        "workers ready (metrics on http://127.0.0.1:{port}/metrics, log {})",
        log.display()
    );
    Ok(())
}

fn wait_ready(child: &mut std::process::Child, port: u16, log: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(port) {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("checking {what}"))?
        {
            bail!(
                "{what} exited ({status}); last lines of {}:\n{}",
                log.display(),
                run::log_tail(log, 20)
            );
        }
        if Instant::now() > deadline {
            bail!("{what} were not ready within 20 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// `(id, namespace, workflow, vendor, status, attempts, reference, note)`.
type JobRow = (
    i64,
    String,
    String,
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    bool,
);

/// Waits for the demo's workflow jobs to settle, prints them, and prints
/// what the vendor server received. Fails when no booking reached the
/// calendar or no SMS was sent: that is what the demo is for.
pub fn show_deliveries(env: &Env, since_unix: f64) -> Result<()> {
    let url = database_url(env)?;
    let jobs = block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let jobs: Vec<JobRow> = sqlx::query_as(
                "SELECT id, namespace, workflow, vendor, status, attempts, \
                     result->>'reference', coalesce(waiting_reason, last_error), \
                     status = 'running' OR \
                     (status = 'pending' AND next_attempt_at < now() + interval '1 minute') \
                 FROM workflow_jobs \
                 WHERE namespace IN ('tenant-harbour-dental', 'tenant-rapid-plumbing', 'tenant-law-firm') \
                   AND created_at >= to_timestamp($1) ORDER BY id",
            )
            .bind(since_unix)
            .fetch_all(&mut db)
            .await
            .context("reading workflow_jobs")?;
            // A job held back by a rate limit or a short backoff is due
            // within the minute: wait for it. One waiting longer (a daily
            // cap, a long backoff) is shown as waiting.
            let busy = jobs.iter().any(|j| j.8);
            if !busy || Instant::now() > deadline {
                return Ok::<_, anyhow::Error>(jobs);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })?;
    println!(
        "\n{:>6}  {:<22} {:<20} {:<9} {:<10} {:>3}  REFERENCE / NOTE",
        "JOB", "NAMESPACE", "WORKFLOW", "VENDOR", "STATUS", "TRY"
    );
    for (id, namespace, workflow, vendor, status, attempts, reference, note, _) in &jobs {
        let detail = reference.as_deref().or(note.as_deref()).unwrap_or("");
        let detail: String = detail.chars().take(70).collect();
        println!(
            "{id:>6}  {namespace:<22} {workflow:<20} {vendor:<9} {status:<10} {attempts:>3}  {detail}"
        );
    }
    let log = std::fs::read_to_string(vendor_log(env)).unwrap_or_default();
    println!("\nwhat the vendors received (checked as each vendor documents its API):");
    for line in log.lines().filter(|l| l.starts_with("vendor ")) {
        println!("  {}", line.trim_start_matches("vendor "));
    }
    let delivered = |workflow: &str| jobs.iter().any(|j| j.2 == workflow && j.4 == "succeeded");
    if !delivered("book-in-calendar") || !delivered("confirm-by-sms") {
        bail!(
            "no booked call reached the calendar and the caller's phone; see {}",
            vendor_log(env).display()
        );
    }
    if !delivered("escalation-webhook") {
        println!("  (no plumber call escalated in this run, so no webhook was posted)");
    }
    Ok(())
}

/// `dialtone workflows list` for one tenant, as an operator would run it.
pub fn list(env: &Env, target: &Path) -> Result<()> {
    let program = target.join("debug").join("dialtone");
    cmd::run(env.apply(&mut Command::new(program)).args([
        "workflows",
        "list",
        "--tenant=harbour-dental",
        "--limit=5",
    ]))
}
