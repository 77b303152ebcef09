//! The campaign half of `cargo xtask demo`: Harbour Dental's reminder
//! Campaign to five patients — one on the suppress list, one for whom it is
//! 2 am, one whose voicemail answers — dialed by the workers through the
//! local Twilio server, answered into the voice pod as outbound calls, and
//! what `kubectl get campaigns` and PostgreSQL say at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};

use crate::cmd;
use crate::demo_calls::{block_on, database_url};
use crate::demo_workflows::secret_value;
use crate::testenv::Env;

pub const NAMESPACE: &str = "tenant-harbour-dental";
pub const CAMPAIGN: &str = "demo-checkup-reminders";
/// The patient whose voicemail answers.
pub const MACHINE: &str = "+61412000003";
const DEADLINE: Duration = Duration::from_secs(120);

/// The legal floor the demo's workers run with: every hour of every day,
/// no holidays, so the demo shows the same thing whenever it runs; the
/// Campaign's own window (08:00–20:00 recipient-local) still decides who
/// is called. Production keeps the chart's default (Australia's).
pub const DEMO_FLOOR: &str = r#"{
  "telemarketing": {"days": ["00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00"]},
  "research": {"days": ["00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00", "00:00-24:00"]},
  "publicHolidays": []
}"#;

/// Writes [`DEMO_FLOOR`]; returns its path.
pub fn write_floor(env: &Env) -> Result<PathBuf> {
    let path = env.dir.join("workers").join("legal-floor.json");
    std::fs::create_dir_all(env.dir.join("workers")).context("creating the workers' directory")?;
    std::fs::write(&path, DEMO_FLOOR).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Gives the voice pod the telephony account's credentials, which it
/// checks Twilio's signatures on the campaign callbacks with.
pub fn write_voice_credentials(env: &Env) -> Result<()> {
    let dir = env
        .dir
        .join("voice")
        .join("credentials")
        .join(NAMESPACE)
        .join("twilio");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for key in ["accountSid", "authToken"] {
        let value = secret_value(env, NAMESPACE, "twilio-credentials", key)?;
        std::fs::write(dir.join(key), value).with_context(|| format!("writing {key}"))?;
    }
    Ok(())
}

/// Waits until the reminders Agent's caller id routes to a config version
/// whose telephony account points at the local Twilio server.
pub fn wait_for_route(env: &Env, vendor_port: u16) -> Result<()> {
    let url = database_url(env)?;
    let needle = format!("%127.0.0.1:{vendor_port}/twilio%");
    block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        let started = Instant::now();
        loop {
            let routed: Option<(String,)> = sqlx::query_as(
                "SELECT r.active_version FROM phone_routes r
                 JOIN config_versions v ON v.hash = r.active_version
                 WHERE r.number = '+61290001235' AND v.canonical LIKE $1",
            )
            .bind(&needle)
            .fetch_optional(&mut db)
            .await
            .context("reading phone routes")?;
            if let Some((version,)) = routed {
                println!("+61290001235 (reminders) serves {version}");
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the reminders Agent's route did not move to the local Twilio within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// The `Etc/GMT…` zone where the local hour is `hour` now.
fn zone_at_hour(hour: i64) -> String {
    let utc_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() / 3600 % 24) as i64)
        .unwrap_or(0);
    // Offsets from UTC-11 to UTC+12.
    let offset = (hour - utc_hour + 35).rem_euclid(24) - 11;
    // The IANA Etc zones' signs are POSIX's: Etc/GMT-10 is UTC+10.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// The demo Campaign, with timezones that put four patients in the early
/// afternoon and one at 2 am whenever the demo runs.
pub fn manifest() -> String {
    let afternoon = zone_at_hour(13);
    let night = zone_at_hour(2);
    format!(
        r#"apiVersion: dialtone.io/v1alpha1
kind: Campaign
metadata:
  name: {CAMPAIGN}
  namespace: {NAMESPACE}
spec:
  agent: reminders
  purpose: informational
  callerIds: [{{number: "+61290001235"}}]
  audience:
    leads:
      - {{phone: "+61412000001", name: Jane Citizen, timezone: {afternoon}, fields: {{service: check-up}}}}
      - {{phone: "+61412000002", name: Bob Nguyen, timezone: {afternoon}, fields: {{service: clean}}}}
      - {{phone: "{MACHINE}", name: Amy Chen, timezone: {afternoon}, fields: {{service: filling}}}}
      - {{phone: "+61412000004", name: Tom Baker, timezone: {afternoon}}}
      - {{phone: "+61412000005", name: Priya Patel, timezone: {night}}}
  schedule:
    windows:
      - days: [Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday]
        start: "08:00"
        end: "20:00"
  pacing: {{maxConcurrentCalls: 2, callsPerMinute: 30, perCallerIdDailyCap: 50}}
  retries: {{maxAttempts: 2, backoffMinutes: 60}}
  voicemail:
    policy: leaveMessage
    message: "Hi, it's Harbour Dental about your check-up. Please call us on 02 9000 1234. Thanks!"
  compliance:
    suppress: ["+61412000004"]
  budgetUsd: 5
"#
    )
}

/// Applies the demo Campaign and prints it.
pub fn apply(env: &Env) -> Result<()> {
    let yaml = manifest();
    let path = env.dir.join("demo-campaign.yaml");
    std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
    println!("{yaml}");
    cmd::run(
        env.kubectl()?
            .args([
                "apply",
                "--server-side",
                "--field-manager=dialtone-demo",
                "-f",
            ])
            .arg(&path),
    )
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    phase: String,
    completed: i64,
    voicemail: i64,
    suppressed: i64,
    pending: i64,
    dialing: i64,
}

fn counts(env: &Env) -> Result<Counts> {
    let json = cmd::output(
        env.kubectl()?
            .args(["get", "campaign", CAMPAIGN, "-n", NAMESPACE, "-o", "json"]),
    )?;
    let v: serde_json::Value = serde_json::from_str(&json).context("parsing the Campaign")?;
    let n = |k: &str| v["status"]["leads"][k].as_i64().unwrap_or(-1);
    Ok(Counts {
        phase: v["status"]["phase"].as_str().unwrap_or("").to_owned(),
        completed: n("completed"),
        voicemail: n("voicemail"),
        suppressed: n("suppressed"),
        pending: n("pending"),
        dialing: n("dialing"),
    })
}

/// Waits until the dialer has done all it may: two patients reached, one
/// voicemail left, one suppressed, one waiting for their morning.
pub fn wait_for_outcome(env: &Env) -> Result<()> {
    let want = Counts {
        phase: "OutsideWindow".to_owned(),
        completed: 2,
        voicemail: 1,
        suppressed: 1,
        pending: 1,
        dialing: 0,
    };
    let started = Instant::now();
    let mut last = Counts::default();
    while started.elapsed() < DEADLINE {
        let now = counts(env)?;
        if now != last {
            println!(
                "  {:>5.1}s  phase {:<14} completed {} voicemail {} suppressed {} pending {} dialing {}",
                started.elapsed().as_secs_f64(),
                now.phase,
                now.completed,
                now.voicemail,
                now.suppressed,
                now.pending,
                now.dialing
            );
        }
        if now == want {
            return Ok(());
        }
        last = now;
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the campaign did not reach {want:?} within {DEADLINE:?} (last: {last:?})")
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    phone: String,
    attempt: i32,
    caller_id: String,
    answered_by: Option<String>,
    amd_ms: Option<i32>,
    outcome: String,
    direction: Option<String>,
    call_outcome: Option<String>,
}

/// Each attempt as PostgreSQL recorded it, with the call it became.
pub fn show_attempts(env: &Env) -> Result<()> {
    let url = database_url(env)?;
    let rows: Vec<AttemptRow> = block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query_as(
            "SELECT a.phone, a.attempt, a.caller_id, a.answered_by,
                        a.amd_ms, a.outcome, c.direction, c.outcome AS call_outcome
                 FROM campaign_attempts a LEFT JOIN calls c ON c.call_id = a.call_id
                 WHERE a.namespace = $1 AND a.campaign = $2 ORDER BY a.phone, a.attempt",
        )
        .bind(NAMESPACE)
        .bind(CAMPAIGN)
        .fetch_all(&mut db)
        .await
        .context("reading campaign_attempts")
    })?;
    println!("lead           try  from          answered by       AMD ms  status     call");
    for AttemptRow {
        phone,
        attempt,
        caller_id: from,
        answered_by: by,
        amd_ms: amd,
        outcome,
        direction,
        call_outcome: call,
    } in &rows
    {
        println!(
            "{phone:<14} {attempt:>3}  {from:<13} {:<17} {:>6}  {outcome:<10} {}",
            by.as_deref().unwrap_or("-"),
            amd.map(|a| a.to_string()).unwrap_or_else(|| "-".to_owned()),
            match (direction, call) {
                (Some(d), Some(o)) => format!("{d}, {o}"),
                (Some(d), None) => d.clone(),
                _ => "-".to_owned(),
            }
        );
    }
    if rows.len() != 3 {
        bail!(
            "expected 3 dial attempts (the suppressed and the 2 am patients are never dialed), found {}",
            rows.len()
        );
    }
    let leads = cmd::output(env.kubectl()?.args([
        "get",
        "campaign",
        CAMPAIGN,
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.nextWindowStart}",
    ]))?;
    println!("Priya Patel's window opens at {leads} (08:00 her time)");
    Ok(())
}

/// The campaign from the CLI: `dialtone campaign status` and `export`, and
/// a do-not-call register copy loaded with `dialtone dnc import`.
pub fn cli(env: &Env, target: &Path) -> Result<()> {
    let program = target.join("debug").join("dialtone");
    let campaign = format!("{NAMESPACE}/{CAMPAIGN}");
    cmd::run(
        env.apply(&mut Command::new(&program))
            .args(["campaign", "status", &campaign]),
    )?;
    let export = env.dir.join("campaign-export.csv");
    cmd::run(env.apply(&mut Command::new(&program)).args([
        "campaign",
        "export",
        &campaign,
        &format!("--output={}", export.display()),
    ]))?;
    let csv = std::fs::read_to_string(&export).context("reading the export")?;
    println!("{} (first lines):", export.display());
    for line in csv.lines().take(3) {
        println!("  {line}");
    }
    if csv.lines().count() != 6 {
        bail!("the export should hold a header and five leads:\n{csv}");
    }
    let register = env.dir.join("dnc-register.csv");
    std::fs::write(
        &register,
        "phone\n0412 000 004\n+61 2 9000 0001 # a landline\n",
    )
    .context("writing the register file")?;
    cmd::run(env.apply(&mut Command::new(&program)).args([
        "dnc",
        "import",
        &register.display().to_string(),
        "--source=demo",
    ]))
}
