//! `dialtone`: validate, test, simulate and parse, offline.
//!
//! Everything runs the same engine and capture code as the operator and the
//! voice pods, so what passes here passes there.

mod call;
mod campaigns;
mod db;
mod load;
mod loadtest;
mod migrate;
mod projections;
mod replay;
mod workflows;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use dialtone_capture::{Locale, ParseContext, Primitive};
use dialtone_crds::{Agent, Objective};
use dialtone_engine::testcall::default_now;
use dialtone_engine::{
    CompileInput, ConfigVersion, Engine, Input, Output, TestOutcome, compile, run_test_call,
    validate_objective,
};

use crate::load::{Set, load};

#[derive(Parser)]
#[command(
    name = "dialtone",
    version,
    about = "Validate, test and simulate Dialtone resources offline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate Kubernetes YAML (files and directories): schema, objective
    /// graphs, references within the set. Exit status 1 on any error.
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run every Objective's scripted test calls. Exit status 1 on failure.
    Test {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write a JUnit XML report here.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Talk to an Agent: type caller lines, see the agent's turns, slots and
    /// events. Lines starting with `/` are commands: `/dtmf 123`, `/silence`,
    /// `/bargein`, `/hangup`, `/now RFC3339`, `/conf 0.5 text`.
    Simulate {
        /// The Agent, as `name` or `namespace/name`.
        agent: String,
        /// Read caller lines from this file instead of standard input.
        #[arg(long)]
        script: Option<PathBuf>,
        /// Files or directories holding the Agent and what it references.
        #[arg(short = 'f', long = "file", default_value = ".")]
        files: Vec<PathBuf>,
        /// The call's start time (RFC 3339); defaults to Monday 2025-03-03
        /// 10:00 in the tenant's time zone, so runs are reproducible.
        #[arg(long)]
        now: Option<String>,
    },
    /// Parse one utterance per line of standard input with a capture
    /// primitive; one JSON object per line on standard output.
    Parse {
        /// phone, email, name, address, date, time, dateTime, number, money,
        /// yesNo or choice.
        primitive: String,
        /// en-AU or en-US.
        #[arg(long, default_value = "en-AU")]
        locale: String,
        /// IANA time zone for dates and times.
        #[arg(long, default_value = "Australia/Sydney")]
        tz: String,
        /// The current time, RFC 3339; defaults to the wall clock.
        #[arg(long)]
        now: Option<String>,
        /// An allowed option of the choice primitive (repeatable).
        #[arg(long = "choice")]
        choices: Vec<String>,
    },
    /// Run simulated callers with personas against a voice pod's /v1/calls
    /// socket; report completion per persona and turn-latency percentiles.
    /// Exit status 1 when calls failed on the client side.
    Loadtest {
        /// The voice pod, e.g. ws://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// The number to call, E.164.
        #[arg(long)]
        to: String,
        /// Calls in total.
        #[arg(long, default_value_t = 100)]
        calls: usize,
        /// Calls at once.
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        /// Personas, assigned to calls in turn: cooperative, confused,
        /// hostile, silent, interrupting, hangup.
        #[arg(long, value_delimiter = ',', default_value = "cooperative")]
        personas: Vec<loadtest::Persona>,
        /// Seed of the callers' choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The tenant's call token (the `token` key of the Secret
        /// `dialtone-calls-token` in the tenant's namespace).
        #[arg(long, env = "DIALTONE_CALLS_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Mint a short-lived widget token that opens text calls for a
    /// tenant from a browser (`/v1/calls?token=…`), from the tenant's call
    /// token. Prints the token.
    WidgetToken {
        /// The tenant's name.
        #[arg(long)]
        tenant: String,
        /// The tenant's call token.
        #[arg(long, env = "DIALTONE_CALLS_TOKEN", hide_env_values = true)]
        token: String,
        /// Seconds the widget token stays valid (at most 3600).
        #[arg(long, default_value_t = 600)]
        ttl: i64,
    },
    /// Place one phone call in audio to a voice pod, as Twilio would: a
    /// signed voice webhook, then real-time µ-law over Media Streams; the
    /// caller speaks each `say:` line (espeak-ng) or keys each `keys:` line
    /// once the agent has finished its turn. Exit status 1 when the agent
    /// did not end the call.
    Call {
        /// The voice pod, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// The number to call, E.164.
        #[arg(long)]
        to: String,
        /// The caller's number.
        #[arg(long, default_value = "+61400000009")]
        from: String,
        /// A file holding the Twilio auth token the pod checks webhooks with.
        #[arg(long)]
        auth_token_file: PathBuf,
        /// The caller's espeak-ng voice.
        #[arg(long, default_value = "en-us")]
        voice: String,
        /// The caller's words per minute.
        #[arg(long, default_value_t = 165)]
        speed: u32,
        /// The script, one line per agent turn: say:WORDS, keys:DIGITS, or
        /// interrupt:WORDS (said 300 ms into the agent's next turn).
        #[arg(long = "line", required = true, value_parser = call::parse_line)]
        lines: Vec<dialtone_voice::audio_caller::Line>,
    },
    /// Re-run a recorded call's inputs through the engine at its config
    /// version; print the conversation and every difference from the
    /// record. Exit status 1 on a difference.
    Replay {
        /// The call's id.
        call_id: uuid::Uuid,
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Also write the call as an Objective test case (YAML that
        /// `dialtone test` runs).
        #[arg(long)]
        export_test: Option<PathBuf>,
    },
    /// Workflow jobs: list, inspect, retry dead letters, discard.
    Workflows {
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        command: workflows::WorkflowsCommand,
    },
    /// A campaign's progress and its leads' outcomes.
    Campaign {
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        command: campaigns::CampaignCommand,
    },
    /// The do-not-call register copy the dialer checks.
    Dnc {
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
        database_url: Option<String>,
        #[command(subcommand)]
        command: campaigns::DncCommand,
    },
    /// Apply the database migrations this release carries (the chart's
    /// pre-install/pre-upgrade Job runs it); safe to re-run.
    Migrate {
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Rebuild the calls projection from the call events alone.
    RebuildProjections {
        /// Only this tenant's calls.
        #[arg(long)]
        tenant: Option<String>,
        /// The event spine's database.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

/// A failure of the command itself (not of the resources it checks).
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Load(#[from] load::LoadError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Rebuild(#[from] projections::RebuildError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error(transparent)]
    Workflows(#[from] workflows::WorkflowsError),
    #[error(transparent)]
    Campaigns(#[from] campaigns::CampaignCliError),
    #[error(transparent)]
    Call(#[from] dialtone_voice::audio_caller::AudioCallError),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

/// The database URL a subcommand needs, or the usage error naming it.
fn database(url: Option<String>, command: &str) -> Result<String, CliError> {
    url.ok_or_else(|| {
        CliError::Usage(format!(
            "dialtone {command} needs --database-url or DATABASE_URL"
        ))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { paths } => validate(&paths),
        Command::Test { paths, junit } => test(&paths, junit.as_deref()),
        Command::Simulate {
            agent,
            script,
            files,
            now,
        } => simulate(&agent, script.as_deref(), &files, now.as_deref()),
        Command::Parse {
            primitive,
            locale,
            tz,
            now,
            choices,
        } => parse(&primitive, &locale, &tz, now.as_deref(), &choices),
        Command::Loadtest {
            url,
            to,
            calls,
            concurrency,
            personas,
            seed,
            token,
        } => run_loadtest(loadtest::Options {
            url,
            to,
            calls,
            concurrency,
            personas,
            seed,
            token,
        }),
        Command::WidgetToken { tenant, token, ttl } => widget_token(&tenant, &token, ttl),
        Command::Call {
            url,
            to,
            from,
            auth_token_file,
            voice,
            speed,
            lines,
        } => run_call(url, to, from, &auth_token_file, (voice, speed), lines),
        Command::Replay {
            call_id,
            database_url,
            export_test,
        } => replay::run(call_id, &database_url, export_test.as_deref()).map_err(CliError::from),
        Command::Migrate { database_url } => migrate::run(&database_url)
            .map(|migrated| {
                match (migrated.applied.as_slice(), migrated.latest) {
                    ([], Some(latest)) => {
                        println!("database at migration {latest}: nothing to apply")
                    }
                    (applied, latest) => println!(
                        "applied {} migration(s) {applied:?}; database at migration {}",
                        applied.len(),
                        latest.map_or("none".to_owned(), |v| v.to_string())
                    ),
                }
                true
            })
            .map_err(CliError::from),
        Command::RebuildProjections {
            tenant,
            database_url,
        } => projections::run(&database_url, tenant).map_err(CliError::from),
        Command::Workflows {
            database_url,
            command,
        } => database(database_url, "workflows")
            .and_then(|url| workflows::run(&url, command).map_err(CliError::from)),
        Command::Campaign {
            database_url,
            command,
        } => database(database_url, "campaign")
            .and_then(|url| campaigns::run_campaign(&url, command).map_err(CliError::from)),
        Command::Dnc {
            database_url,
            command,
        } => database(database_url, "dnc")
            .and_then(|url| campaigns::run_dnc(&url, command).map_err(CliError::from)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_loadtest(options: loadtest::Options) -> Result<bool, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    let report = runtime.block_on(loadtest::run(&options));
    print!("{}", report.render(&options));
    Ok(report.errors() == 0)
}

fn widget_token(tenant: &str, token: &str, ttl: i64) -> Result<bool, CliError> {
    use dialtone_spine::call_tokens::{MAX_WIDGET_TTL_SECONDS, TENANT_PREFIX, mint_widget};
    if !(1..=MAX_WIDGET_TTL_SECONDS).contains(&ttl) {
        return Err(CliError::Usage(format!(
            "--ttl must be 1 to {MAX_WIDGET_TTL_SECONDS} seconds"
        )));
    }
    if !token.starts_with(TENANT_PREFIX) {
        return Err(CliError::Usage(format!(
            "the call token must be the tenant's ({TENANT_PREFIX}…), from the Secret dialtone-calls-token"
        )));
    }
    let expires = chrono::Utc::now().timestamp() + ttl;
    println!("{}", mint_widget(token, tenant, expires));
    Ok(true)
}

fn run_call(
    pod: String,
    to: String,
    from: String,
    auth_token_file: &Path,
    voice: (String, u32),
    script: Vec<dialtone_voice::audio_caller::Line>,
) -> Result<bool, CliError> {
    let auth_token = std::fs::read_to_string(auth_token_file)
        .map_err(io(format!("reading {}", auth_token_file.display())))?;
    let call = dialtone_voice::audio_caller::AudioCall {
        pod,
        auth_token: auth_token.trim().to_owned(),
        from,
        to,
        call_sid: format!("CA{}", uuid::Uuid::new_v4().simple()),
        voice,
        script,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io("starting the async runtime"))?;
    runtime.block_on(call::run(&call)).map_err(CliError::from)
}

fn meta_name(m: &dialtone_crds::objective::Objective) -> (String, String) {
    (
        m.metadata.namespace.clone().unwrap_or_default(),
        m.metadata.name.clone().unwrap_or_default(),
    )
}

/// Every problem in the set, as `file: resource: path: message` lines.
fn problems(set: &Set) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for e in &set.errors {
        out.insert(format!("{}: {}: {}", e.file, e.resource, e.message));
    }
    for (file, obj) in set.objectives() {
        let (ns, name) = meta_name(obj);
        let tenant = set.tenant_for(&ns);
        if let Err(errors) = validate_objective(&obj.spec, tenant.map(|t| &t.spec)) {
            for e in errors {
                out.insert(format!(
                    "{file}: Objective/{ns}/{name}: {}: {}",
                    e.path, e.message
                ));
            }
        }
    }
    let mut numbers: BTreeMap<String, String> = BTreeMap::new();
    for (file, agent) in set.agents() {
        let ns = agent.metadata.namespace.clone().unwrap_or_default();
        let id = format!(
            "Agent/{ns}/{}",
            agent.metadata.name.clone().unwrap_or_default()
        );
        let tenant = set.tenant_for(&ns);
        for (i, n) in agent.spec.phone_numbers.iter().enumerate() {
            if let Some(t) = tenant.filter(|t| !t.spec.phone_numbers.contains(&n.number)) {
                out.insert(format!(
                    "{file}: {id}: spec.phoneNumbers[{i}].number: {} is not granted to Tenant {} (its spec.phoneNumbers); it would not be routed",
                    n.number,
                    t.metadata.name.clone().unwrap_or_default()
                ));
            }
            if let Some(other) = numbers.insert(n.number.clone(), id.clone()) {
                out.insert(format!(
                    "{file}: {id}: spec.phoneNumbers[{i}].number: {} is already claimed by {other}",
                    n.number
                ));
            }
        }
        if let Err(errors) = compile_agent(set, agent) {
            out.extend(errors);
        }
    }
    out.into_iter().collect()
}

/// Compiles an Agent against the set; errors as report lines.
fn compile_agent(set: &Set, agent: &Agent) -> Result<ConfigVersion, Vec<String>> {
    let ns = agent.metadata.namespace.clone().unwrap_or_default();
    let id = format!(
        "Agent/{ns}/{}",
        agent.metadata.name.clone().unwrap_or_default()
    );
    let file = set.file_of(&id).unwrap_or("<input>").to_owned();
    let Some(tenant) = set.tenant_for(&ns) else {
        return Err(vec![format!(
            "{file}: {id}: metadata.namespace: no Tenant in the input owns namespace {ns:?}"
        )]);
    };
    let input = CompileInput {
        agent,
        tenant,
        objectives: set.objectives().map(|(_, o)| o).collect(),
        providers: set.providers(),
        cluster_providers: set.cluster_providers(),
    };
    compile(&input).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| {
                let file = set.file_of(&e.resource).unwrap_or(&file);
                format!("{file}: {}: {}: {}", e.resource, e.path, e.message)
            })
            .collect()
    })
}

fn validate(paths: &[PathBuf]) -> Result<bool, CliError> {
    let set = load(paths)?;
    let problems = problems(&set);
    for p in &problems {
        println!("{p}");
    }
    let summary = format!("{} resources, {} errors", set.docs.len(), problems.len());
    if problems.is_empty() {
        println!("ok: {summary}");
    } else {
        eprintln!("invalid: {summary}");
    }
    Ok(problems.is_empty())
}

/// The config an Objective's tests run against: the first Agent of the set
/// that uses it, else a stand-in Agent of the namespace's Tenant that uses
/// only this Objective.
fn config_for(set: &Set, obj: &Objective) -> Result<ConfigVersion, Vec<String>> {
    let (ns, name) = meta_name(obj);
    let user = set.agents().map(|(_, a)| a).find(|a| {
        a.metadata.namespace.as_deref() == Some(ns.as_str())
            && a.spec.objectives.iter().any(|r| r.name == name)
    });
    if let Some(agent) = user {
        return compile_agent(set, agent);
    }
    let Some(tenant) = set.tenant_for(&ns) else {
        return Err(vec![format!(
            "no Tenant in the input owns namespace {ns:?}"
        )]);
    };
    let mut agent = Agent::new(
        "dialtone-test",
        serde_json::from_value(serde_json::json!({"objectives": [{"name": name}]}))
            .map_err(|e| vec![e.to_string()])?,
    );
    agent.metadata.namespace = Some(ns);
    let input = CompileInput {
        agent: &agent,
        tenant,
        objectives: vec![obj],
        providers: vec![],
        cluster_providers: vec![],
    };
    compile(&input).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn test(paths: &[PathBuf], junit: Option<&std::path::Path>) -> Result<bool, CliError> {
    let set = load(paths)?;
    let mut suites: Vec<(String, Vec<TestOutcome>)> = Vec::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (file, obj) in set.objectives() {
        if obj.spec.tests.is_empty() {
            continue;
        }
        let (ns, name) = meta_name(obj);
        let suite = format!("{ns}/{name}");
        println!("{suite} ({file})");
        let outcomes: Vec<TestOutcome> = match config_for(&set, obj) {
            Ok(version) => obj
                .spec
                .tests
                .iter()
                .map(|t| run_test_call(&version.config, &name, t))
                .collect(),
            Err(errors) => obj
                .spec
                .tests
                .iter()
                .map(|t| TestOutcome {
                    name: t.name.clone(),
                    objective: name.clone(),
                    passed: false,
                    failed_turn: None,
                    message: Some(format!(
                        "test {:?}: does not compile: {}",
                        t.name,
                        errors.join("; ")
                    )),
                    outcome: None,
                    slots: BTreeMap::new(),
                    transcript: Vec::new(),
                })
                .collect(),
        };
        for o in &outcomes {
            if o.passed {
                passed += 1;
                println!(
                    "  PASS {} → {}",
                    o.name,
                    o.outcome.as_deref().unwrap_or("(call still open)")
                );
            } else {
                failed += 1;
                println!("  FAIL {}", o.name);
                println!("       {}", o.message.as_deref().unwrap_or_default());
                for t in &o.transcript {
                    print_turn(t.turn, &t.caller, &t.outputs, "       ");
                }
            }
        }
        suites.push((suite, outcomes));
    }
    for e in &set.errors {
        failed += 1;
        println!("ERROR {}: {}: {}", e.file, e.resource, e.message);
    }
    println!("{passed} passed, {failed} failed");
    if let Some(path) = junit {
        std::fs::write(path, junit_xml(&suites))
            .map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(failed == 0)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn junit_xml(suites: &[(String, Vec<TestOutcome>)]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"dialtone\">\n",
    );
    for (suite, outcomes) in suites {
        let failures = outcomes.iter().filter(|o| !o.passed).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
            xml_escape(suite),
            outcomes.len()
        ));
        for o in outcomes {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(suite),
                xml_escape(&o.name)
            ));
            match &o.message {
                Some(m) if !o.passed => xml.push_str(&format!(
                    ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(m)
                )),
                _ => xml.push_str("/>\n"),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn print_turn(turn: usize, caller: &str, outputs: &[Output], indent: &str) {
    if !caller.is_empty() {
        println!("{indent}[{turn}] caller: {caller}");
    }
    for o in outputs {
        match o {
            Output::Speak {
                phrase_id, text, ..
            } => println!("{indent}    agent: {text}  ({phrase_id})"),
            Output::Listen { expect, step } => {
                println!("{indent}    … listening for {} at {step}", expect.as_str())
            }
            Output::StopSpeaking => println!("{indent}    (stops speaking)"),
            Output::Transfer { to, mode, .. } => {
                println!("{indent}    → transfer {mode:?} to {to}")
            }
            Output::End { outcome } => println!("{indent}    → end: {outcome}"),
            Output::Event(e) => println!(
                "{indent}    · {}",
                serde_json::to_string(e).unwrap_or_default()
            ),
        }
    }
}

fn parse_now(now: Option<&str>) -> Result<Option<DateTime<Utc>>, CliError> {
    now.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| CliError::Usage(format!("--now {s:?}: {e}")))
    })
    .transpose()
}

fn simulate(
    agent: &str,
    script: Option<&std::path::Path>,
    files: &[PathBuf],
    now: Option<&str>,
) -> Result<bool, CliError> {
    let set = load(files)?;
    let (ns, name) = match agent.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, agent),
    };
    let found: Vec<&Agent> = set
        .agents()
        .map(|(_, a)| a)
        .filter(|a| {
            a.metadata.name.as_deref() == Some(name)
                && ns.is_none_or(|ns| a.metadata.namespace.as_deref() == Some(ns))
        })
        .collect();
    let agent = match found.as_slice() {
        [one] => *one,
        [] => return Err(CliError::Usage(format!("no Agent {agent:?} in the input"))),
        _ => {
            return Err(CliError::Usage(format!(
                "several Agents are named {name:?}; use namespace/name"
            )));
        }
    };
    let version = compile_agent(&set, agent)
        .map_err(|e| CliError::Usage(format!("the Agent does not compile:\n{}", e.join("\n"))))?;
    let engine = Engine::new(&version.config).map_err(|e| CliError::Usage(e.to_string()))?;
    let tz: chrono_tz::Tz = version
        .config
        .tenant
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Tz::UTC);
    let start = parse_now(now)?.unwrap_or_else(|| default_now(tz));
    println!(
        "config {} · {} ({}, {})",
        version.hash,
        version.config.agent.name,
        version.config.agent.persona.as_str(),
        version.config.agent.locale.as_str()
    );
    let (mut state, outputs) = engine.start(start);
    print_turn(0, "", &outputs, "");

    let reader: Box<dyn BufRead> = match script {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(io(format!("reading {}", p.display())))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let interactive = script.is_none();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io("reading caller lines"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let input = match caller_input(line) {
            Ok(input) => input,
            Err(e) => {
                println!("  ? {e}");
                continue;
            }
        };
        let (next, outputs) = engine.step(state, &input);
        state = next;
        print_turn(i + 1, line, &outputs, "");
        let slots: Vec<String> = state
            .slots
            .iter()
            .map(|(k, v)| format!("{k}={}", v.display()))
            .collect();
        println!(
            "    slots: {{{}}} · step {}",
            slots.join(", "),
            engine.step_id(&state)
        );
        if state.ended() {
            break;
        }
        if interactive {
            let _ = std::io::stdout().flush();
        }
    }
    println!(
        "outcome: {}",
        state.outcome.as_deref().unwrap_or("(call still open)")
    );
    Ok(true)
}

fn caller_input(line: &str) -> Result<Input, String> {
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Utterance {
            text: line.to_owned(),
            confidence: 0.95,
            is_final: true,
        });
    };
    let (cmd, rest) = command.split_once(' ').unwrap_or((command, ""));
    match cmd {
        "dtmf" => Ok(Input::Dtmf {
            digits: rest.trim().to_owned(),
        }),
        "silence" => Ok(Input::SilenceTimeout),
        "bargein" => Ok(Input::BargeIn),
        "hangup" => Ok(Input::Hangup),
        "now" => DateTime::parse_from_rfc3339(rest.trim())
            .map(|t| Input::Now(t.with_timezone(&Utc)))
            .map_err(|e| format!("/now: {e}")),
        "conf" => {
            let (c, text) = rest.split_once(' ').ok_or("usage: /conf 0.5 text")?;
            let confidence: f32 = c.parse().map_err(|_| "usage: /conf 0.5 text".to_owned())?;
            Ok(Input::Utterance {
                text: text.to_owned(),
                confidence,
                is_final: true,
            })
        }
        other => Err(format!(
            "unknown command /{other}; try /dtmf, /silence, /bargein, /hangup, /now, /conf"
        )),
    }
}

fn parse(
    primitive: &str,
    locale: &str,
    tz: &str,
    now: Option<&str>,
    choices: &[String],
) -> Result<bool, CliError> {
    let primitive: Primitive = primitive
        .parse()
        .map_err(|e| CliError::Usage(format!("{e}")))?;
    let locale: Locale = locale
        .parse()
        .map_err(|e| CliError::Usage(format!("{e}")))?;
    let timezone: chrono_tz::Tz = tz
        .parse()
        .map_err(|_| CliError::Usage(format!("unknown time zone {tz:?}")))?;
    // The CLI is an edge: here, and only here, "now" may come from the clock.
    let now = parse_now(now)?.unwrap_or_else(Utc::now);
    let ctx = ParseContext {
        locale,
        timezone,
        now,
        choices,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(io("reading standard input"))?;
        let parsed = dialtone_capture::parse(primitive, &line, &ctx);
        let json = serde_json::json!({
            "input": line,
            "status": parsed.status,
            "value": parsed.value.as_ref().map(dialtone_capture::Value::display),
            "typed": parsed.value,
            "confidence": (f64::from(parsed.confidence) * 1000.0).round() / 1000.0,
            "reason": parsed.reason,
        });
        writeln!(out, "{json}").map_err(io("writing standard output"))?;
    }
    Ok(true)
}
