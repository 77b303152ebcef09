//! The call half of `cargo xtask demo`: a voice pod process against the
//! demo's PostgreSQL, simulated calls to every routed example number over
//! the `/v1/calls` WebSocket, and what the event spine recorded of them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::{Connection, PgConnection};

use crate::cmd;
use crate::testenv::{self, Env, run};

pub const VOICE: &str = "dialtone-voice";

/// `(number, namespace, agent, active version)` of every route of the
/// examples' tenants.
pub type Route = (String, String, String, String);

pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a Tokio runtime")?
        .block_on(future)
}

pub fn database_url(env: &Env) -> Result<String> {
    env.vars()
        .iter()
        .find(|(name, _)| *name == "DATABASE_URL")
        .map(|(_, value)| value.clone())
        .context("the environment has no DATABASE_URL")
}

/// The routes of the examples' Agents (`(namespace, name)`), as the
/// operator activated them. Tests and benchmarks route other Agents in the
/// same namespaces; those are left out.
pub fn routes(env: &Env, agents: &[(String, String)]) -> Result<Vec<Route>> {
    let namespaces: Vec<String> = agents.iter().map(|(ns, _)| ns.clone()).collect();
    let url = database_url(env)?;
    let rows: Vec<Route> = block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        sqlx::query_as(
            "SELECT number, namespace, agent, active_version FROM phone_routes
             WHERE namespace = ANY($1) ORDER BY namespace, agent, number",
        )
        .bind(&namespaces)
        .fetch_all(&mut db)
        .await
        .context("reading phone_routes")
    })?;
    let rows: Vec<Route> = rows
        .into_iter()
        .filter(|(_, ns, agent, _)| agents.iter().any(|(n, a)| n == ns && a == agent))
        .collect();
    if rows.is_empty() {
        bail!("no phone routes for the examples' Agents {agents:?}");
    }
    println!(
        "{:<16} {:<24} {:<18} VERSION",
        "NUMBER", "NAMESPACE", "AGENT"
    );
    for (number, namespace, agent, version) in &rows {
        let short = version.strip_prefix("sha256:").unwrap_or(version);
        println!(
            "{number:<16} {namespace:<24} {agent:<18} {}",
            &short[..short.len().min(16)]
        );
    }
    Ok(rows)
}

/// Starts `dialtone-voice` on a free loopback port; returns its port.
/// Starts the demo's voice pod; returns its public port and its metrics
/// port.
pub fn start_voice_pod(env: &Env, target: &Path) -> Result<(u16, u16)> {
    testenv::stop_process(VOICE)?;
    let program = target.join("debug").join(VOICE);
    if !program.is_file() {
        bail!("{} was not built", program.display());
    }
    let [port, metrics_port] = cmd::free_ports(2)?[..] else {
        bail!("no two free ports");
    };
    let state = env.dir.join("voice");
    let credentials = state.join("credentials");
    std::fs::create_dir_all(&credentials)
        .with_context(|| format!("creating {}", credentials.display()))?;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut secret))
        .context("reading /dev/urandom")?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut vars: Vec<(String, String)> = env
        .vars()
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    vars.push(("DIALTONE_STREAM_SECRET".to_owned(), secret));
    let launch = run::Launch {
        program,
        args: vec![
            format!("--listen=127.0.0.1:{port}"),
            format!("--metrics-listen=127.0.0.1:{metrics_port}"),
            format!("--public-url=http://127.0.0.1:{port}"),
            format!("--credentials-dir={}", credentials.display()),
            format!("--spill-path={}", state.join("events.spill").display()),
        ],
        log: env.dir.join("logs").join("voice.log"),
        run_as: None,
        env: vars,
    };
    let (mut child, record) = run::spawn(&launch)?;
    testenv::record_process(VOICE, record)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(port) {
        if let Some(status) = child.try_wait().context("checking the voice pod")? {
            bail!(
                "the voice pod exited ({status}); last lines of {}:\n{}",
                launch.log.display(),
                run::log_tail(&launch.log, 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the voice pod was not ready within 20 s; see {}",
                launch.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    testenv::prometheus::register(&env.dir, "voice", metrics_port, "dialtone-voice-pool")?;
    println!(
        "voice pod ready on 127.0.0.1:{port} (log {})",
        launch.log.display()
    );
    Ok((port, metrics_port))
}

/// Whether `/readyz` answers 200.
pub fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// The `dialtone` CLI the demo built (running it through `cargo run` would
/// check the build again for every call batch).
pub fn dialtone(target: &Path) -> Result<Command> {
    let program = target.join("debug").join("dialtone");
    if !program.is_file() {
        bail!("{} was not built", program.display());
    }
    Ok(Command::new(program))
}

/// The call token the operator issued to the tenant of `namespace` (the
/// Secret `dialtone-calls-token`).
pub fn calls_token(env: &Env, namespace: &str) -> Result<String> {
    use base64::Engine as _;
    let encoded = cmd::output(env.kubectl()?.args([
        "get",
        "secret",
        "dialtone-calls-token",
        "--namespace",
        namespace,
        "--output=jsonpath={.data.token}",
    ]))
    .with_context(|| format!("reading the call token of {namespace}"))?;
    let token = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .with_context(|| format!("the call token of {namespace} is not base64"))?;
    String::from_utf8(token).with_context(|| format!("the call token of {namespace} is not text"))
}

/// A few simulated callers per routed number, with `dialtone loadtest` and
/// the number's tenant's call token.
pub fn place_calls(env: &Env, target: &Path, port: u16, routes: &[Route]) -> Result<()> {
    for (number, namespace, agent, _) in routes {
        println!(
            "\ncalling {number} ({namespace}/{agent}) with the token of Secret {namespace}/dialtone-calls-token"
        );
        let token = calls_token(env, namespace)?;
        loadtest(target, port, number, &token, "cooperative,confused,hangup")?;
    }
    Ok(())
}

/// Three simulated text callers of `personas` to `number` at once, with
/// `dialtone loadtest` against the voice pod on `port`.
pub fn loadtest(target: &Path, port: u16, number: &str, token: &str, personas: &str) -> Result<()> {
    cmd::run(
        dialtone(target)?
            .args([
                "loadtest",
                &format!("--url=ws://127.0.0.1:{port}"),
                &format!("--to={number}"),
                "--calls=3",
                "--concurrency=3",
                &format!("--personas={personas}"),
            ])
            // Not in argv, where every process on the machine can read it.
            .env("DIALTONE_CALLS_TOKEN", token),
    )
}

/// The calls the demo placed, as the `calls` projection has them, and the
/// event types of the latest one with captured slots; returns that
/// call's id. `since_unix` (seconds) keeps earlier demos' calls out.
pub fn show_calls(env: &Env, routes: &[Route], since_unix: f64) -> Result<String> {
    let url = database_url(env)?;
    let numbers: Vec<String> = routes.iter().map(|(number, ..)| number.clone()).collect();
    block_on(async {
        let mut db = PgConnection::connect(&url)
            .await
            .context("connecting to PostgreSQL")?;
        // The pod hands events to its writer after each reply and the writer
        // batches them: give the last calls' closing events a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let calls = loop {
            let calls: Vec<CallRow> = sqlx::query_as(
                "SELECT call_id::text, agent, outcome, slots, cost_usd::text, last_seq FROM calls
                 WHERE callee = ANY($1) AND started_at >= to_timestamp($2)
                 ORDER BY started_at",
            )
            .bind(&numbers)
            .bind(since_unix)
            .fetch_all(&mut db)
            .await
            .context("reading calls")?;
            let open = calls.iter().filter(|call| call.2.is_none()).count();
            if open == 0 || Instant::now() > deadline {
                break calls;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if calls.is_empty() {
            bail!("the calls projection has no calls from this demo");
        }
        println!(
            "\n{:<36} {:<14} {:<18} {:>10} {:>6}  SLOTS",
            "CALL", "AGENT", "OUTCOME", "COST USD", "EVENTS"
        );
        for (id, agent, outcome, slots, cost, last_seq) in &calls {
            println!(
                "{id:<36} {agent:<14} {:<18} {cost:>10} {:>6}  {slots}",
                outcome.as_deref().unwrap_or("-"),
                last_seq + 1
            );
        }
        let latest = calls
            .iter()
            .rev()
            .find(|(_, _, _, slots, _, _)| slots.as_object().is_some_and(|s| !s.is_empty()))
            .or(calls.last())
            .map(|(id, ..)| id.clone())
            .context("no call")?;
        let types: Vec<(i32, String)> = sqlx::query_as(
            "SELECT seq, event_type FROM call_events WHERE call_id = $1::uuid ORDER BY seq",
        )
        .bind(&latest)
        .fetch_all(&mut db)
        .await
        .context("reading call_events")?;
        let listed: Vec<String> = types.iter().map(|(seq, t)| format!("{seq}:{t}")).collect();
        println!("\nevents of {latest}:\n  {}", listed.join(" "));
        Ok(latest)
    })
}

/// `(call id, agent, outcome, slots, cost, last seq)` of a `calls` row.
type CallRow = (
    String,
    String,
    Option<String>,
    serde_json::Value,
    String,
    i32,
);

/// `dialtone replay` of one call: the conversation, re-run through the
/// engine at the call's config version, with any difference.
pub fn replay(env: &Env, target: &Path, call_id: &str) -> Result<()> {
    let mut replay = dialtone(target)?;
    replay.args(["replay", call_id]);
    cmd::run(env.apply(&mut replay))
}

/// Now in seconds since the Unix epoch, less a second of slack, for
/// [`show_calls`].
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
        - 1.0
}
