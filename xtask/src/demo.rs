//! `cargo xtask demo`: the environment, the CRDs, the operator and
//! `examples/` until every resource is Ready (`kubectl get dialtone -A`),
//! then a voice pod, simulated calls to every routed number, what the event
//! spine recorded of them, and a replay of one.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use std::process::Command;

use crate::cmd::{self, cargo};
use crate::dashboards;
use crate::demo_audio;
use crate::demo_calls;
use crate::demo_campaigns;
use crate::demo_images;
use crate::demo_limits;
use crate::demo_workflows;
use crate::paths;
use crate::steps::{self, Step};
use crate::testenv::build::{self, Tool};
use crate::testenv::{self, Env, install_crds, run};

const OPERATOR: &str = "dialtone-operator";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Where the chart is installed (its RBAC, and the operator's Lease).
const CHART_NAMESPACE: &str = "dialtone-system";
/// The image pull Secret the demo's operator hands its voice pods.
const PULL_SECRET: &str = "dialtone-demo-registry";
/// The kubeconfig of the chart's ServiceAccount, in the environment directory.
pub const OPERATOR_KUBECONFIG: &str = "operator-kubeconfig";

/// Applies the chart's ServiceAccount and RBAC (rendered by helm with the
/// default values) and writes a kubeconfig holding a token of that
/// ServiceAccount; returns its path.
fn operator_identity(env: &Env, root: &Path) -> Result<PathBuf> {
    let (helm, _) = build::ensure(Tool::Helm)?;
    let rendered = cmd::output(
        Command::new(helm)
            .args(["template", "dialtone"])
            .arg(root.join("charts").join("dialtone"))
            .args(["--namespace", CHART_NAMESPACE])
            .args(["--show-only", "templates/serviceaccount.yaml"])
            .args(["--show-only", "templates/rbac.yaml"])
            .args(["--set", &format!("imagePullSecrets[0].name={PULL_SECRET}")]),
    )
    .context("rendering the chart's RBAC")?;
    // A registry credential like a private registry's (it authenticates
    // nowhere): the operator copies it into every tenant namespace.
    let namespace = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {CHART_NAMESPACE}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: {PULL_SECRET}\n  namespace: {CHART_NAMESPACE}\n\
         type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{{\"auths\":{{}}}}'\n---\n"
    );
    cmd::run_with_stdin(
        env.kubectl()?.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dialtone-demo",
            "-f",
            "-",
        ]),
        format!("{namespace}{rendered}").as_bytes(),
    )?;
    let token = cmd::output(env.kubectl()?.args([
        "create",
        "token",
        "dialtone",
        "--namespace",
        CHART_NAMESPACE,
        "--duration=24h",
    ]))?;
    let admin = std::fs::read_to_string(&env.kubeconfig)
        .with_context(|| format!("reading {}", env.kubeconfig.display()))?;
    let operator = token_kubeconfig(&admin, token.trim())?;
    let path = env.dir.join(OPERATOR_KUBECONFIG);
    std::fs::write(&path, operator).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The admin kubeconfig with its user's credentials replaced by `token`.
fn token_kubeconfig(admin: &str, token: &str) -> Result<String> {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(admin).context("parsing the kubeconfig")?;
    let users = config
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .context("the kubeconfig has no users")?;
    for user in users {
        let mut credentials = serde_yaml::Mapping::new();
        credentials.insert("token".into(), token.into());
        if let Some(entry) = user.as_mapping_mut() {
            entry.insert("user".into(), serde_yaml::Value::Mapping(credentials));
        }
    }
    serde_yaml::to_string(&config).context("writing the kubeconfig")
}

pub fn run(keep: bool) -> Result<()> {
    let root = paths::repo_root()?;
    let env = || Env::load();
    let routes = RefCell::new(Vec::new());
    let voice_port = RefCell::new(0u16);
    let voice_metrics_port = RefCell::new(0u16);
    let vendor_port = RefCell::new(0u16);
    let replayed = RefCell::new(String::new());
    let images = RefCell::new(Vec::new());
    let since = demo_calls::now_unix();
    let steps = vec![
        Step::new("testenv up", || testenv::up().map(|_| ())),
        Step::new("install CRDs", || install_crds(&env()?, &root)),
        Step::new("build the operator", || {
            cmd::run(cargo().current_dir(&root).args(["build", "-p", OPERATOR]))
        }),
        Step::new("install the chart's RBAC for the operator", || {
            operator_identity(&env()?, &root).map(|_| ())
        }),
        Step::new("start the operator", || start_operator(&env()?, &root)),
        // Secrets and Providers live in the tenants' namespaces, which the
        // operator creates: Tenants (and platform-wide objects) go first.
        Step::new("apply Tenants and ClusterProviders", || {
            let mut files = example_files(&root, |path| {
                path.file_name().is_some_and(|name| name == "tenant.yaml")
                    || path.parent().is_some_and(|dir| dir.ends_with("platform"))
            })?;
            files.sort();
            apply(&env()?, &files)
        }),
        Step::new("wait for Tenants to be Ready", || {
            wait_ready(&env()?, &["tenants", "clusterproviders"])
        }),
        Step::new("apply the rest of examples/", || {
            let mut files = example_files(&root, |_| true)?;
            files.retain(|path| {
                path.file_name().is_none_or(|name| name != "tenant.yaml")
                    && !path.parent().is_some_and(|dir| dir.ends_with("platform"))
            });
            files.sort();
            apply(&env()?, &files)
        }),
        Step::new(
            "build the voice pod, the workers, the CLI and the demo's vendor server",
            || {
                cmd::run(cargo().current_dir(&root).args([
                    "build",
                    "-p",
                    demo_calls::VOICE,
                    "-p",
                    "dialtone-cli",
                    "-p",
                    demo_workflows::WORKERS,
                    "--bins",
                    "--example",
                    "demo_vendors",
                ]))
            },
        ),
        Step::new(
            "start the local vendor server (Cal.com, Twilio, the plumber's job board)",
            || {
                *vendor_port.borrow_mut() =
                    demo_workflows::start_vendor_server(&env()?, &target_dir(&root)?)?;
                Ok(())
            },
        ),
        Step::new("point the workflow Providers at it", || {
            demo_workflows::point_providers(&env()?, *vendor_port.borrow())
        }),
        Step::new(
            "wait for Providers, Objectives and Agents to be Ready",
            || wait_ready(&env()?, &["providers", "objectives", "agents"]),
        ),
        Step::new("kubectl get dialtone -A", || {
            cmd::run(env()?.kubectl()?.args(["get", "dialtone", "-A"]))
        }),
        Step::new(
            "what the operator gave each tenant: its call token and the voice image's pull Secret",
            || {
                // Fails unless both are there.
                cmd::run(env()?.kubectl()?.args([
                    "get",
                    "secrets",
                    "--namespace=tenant-harbour-dental",
                    "dialtone-calls-token",
                    PULL_SECRET,
                ]))
            },
        ),
        Step::new("routes serve the version with the local vendors", || {
            demo_workflows::wait_for_versions(&env()?, *vendor_port.borrow())
        }),
        Step::new("phone routes in PostgreSQL", || {
            *routes.borrow_mut() = demo_calls::routes(&env()?, &example_agents(&root)?)?;
            Ok(())
        }),
        Step::new("start a voice pod", || {
            let (port, metrics) = demo_calls::start_voice_pod(&env()?, &target_dir(&root)?)?;
            *voice_port.borrow_mut() = port;
            *voice_metrics_port.borrow_mut() = metrics;
            demo_campaigns::write_voice_credentials(&env()?)
        }),
        Step::new(
            "start the workers (workflows and the campaign dialer)",
            || demo_workflows::start_workers(&env()?, &target_dir(&root)?, *voice_port.borrow()),
        ),
        Step::new("simulated calls to every routed number", || {
            demo_calls::place_calls(
                &env()?,
                &target_dir(&root)?,
                *voice_port.borrow(),
                &routes.borrow(),
            )
        }),
        Step::new("the calls and their events", || {
            let call = demo_calls::show_calls(&env()?, &routes.borrow(), since)?;
            *replayed.borrow_mut() = call;
            Ok(())
        }),
        Step::new("dialtone replay of one call", || {
            demo_calls::replay(&env()?, &target_dir(&root)?, &replayed.borrow())
        }),
        Step::new("what the calls delivered: bookings, SMS, webhooks", || {
            demo_workflows::show_deliveries(&env()?, since)
        }),
        Step::new("dialtone workflows list --tenant=harbour-dental", || {
            demo_workflows::list(&env()?, &target_dir(&root)?)
        }),
        Step::new("the reminders Agent's route uses the local Twilio", || {
            demo_campaigns::wait_for_route(&env()?, *vendor_port.borrow())
        }),
        Step::new(
            "a reminder Campaign: five patients, one suppressed, one at 2 am, one voicemail",
            || demo_campaigns::apply(&env()?),
        ),
        Step::new("the dialer works through it", || {
            demo_campaigns::wait_for_outcome(&env()?)
        }),
        Step::new("kubectl get campaigns -A", || {
            cmd::run(env()?.kubectl()?.args(["get", "campaigns", "-A"]))
        }),
        Step::new(
            "each dial: caller id, answering-machine detection, the call",
            || demo_campaigns::show_attempts(&env()?),
        ),
        Step::new("dialtone campaign status, export and dnc import", || {
            demo_campaigns::cli(&env()?, &target_dir(&root)?)
        }),
        Step::new(
            "a phone call in audio with builtin speech: the caller talks over the greeting, is heard and books",
            || demo_audio::show(&env()?, &target_dir(&root)?, *voice_port.borrow()),
        ),
        Step::new(
            "a hostile client: forged stream, no call token, 50 MB frame, 1,000 idle sockets",
            || {
                let routes = routes.borrow();
                let (number, namespace, ..) = routes.first().context("no routed number")?;
                let token = demo_calls::calls_token(&env()?, namespace)?;
                demo_limits::show(
                    *voice_port.borrow(),
                    *voice_metrics_port.borrow(),
                    number,
                    &token,
                )
            },
        ),
        Step::new(
            "the images: release binaries in OCI layouts, checked by skopeo (cargo xtask image)",
            || {
                *images.borrow_mut() = demo_images::build(&root)?;
                Ok(())
            },
        ),
        Step::new(
            "the CLI image under runc: dialtone validate examples/ and dialtone migrate",
            || demo_images::cli(&env()?, &root, &images.borrow()),
        ),
        Step::new(
            "the voice image under runc: ready, a signed Twilio webhook, text calls, SIGTERM",
            || {
                demo_images::voice(
                    &env()?,
                    &target_dir(&root)?,
                    &images.borrow(),
                    demo_audio::NUMBER,
                )
            },
        ),
        Step::new(
            "the operator image under runc takes the Lease and reconciles a Tenant",
            || demo_images::operator(&env()?, &root, &images.borrow(), OPERATOR),
        ),
        Step::new(
            "Prometheus: every dashboard panel and alert rule of the chart, on what it scraped",
            || {
                let env = env()?;
                let port = env.prometheus_port;
                let targets = dashboards::wait_for_targets(port, Duration::from_secs(30))?;
                println!(
                    "Prometheus http://127.0.0.1:{port} scrapes {targets} targets (operator, voice pod, workers)"
                );
                let queries = dashboards::chart_queries(&root.join("charts").join("dialtone"))?;
                dashboards::check(port, &queries, &root)
            },
        ),
    ];
    let result = steps::run_all("cargo xtask demo", steps);
    if keep && result.is_ok() {
        let log = paths::testenv_dir()?.join("logs").join("operator.log");
        println!(
            "the operator and the voice pod (port {}) keep running (log: {}); `cargo xtask testenv down` stops them",
            voice_port.borrow(),
            log.display()
        );
    } else {
        for process in [
            demo_workflows::WORKERS,
            demo_workflows::VENDORS,
            demo_calls::VOICE,
            OPERATOR,
        ] {
            if let Err(err) = testenv::stop_process(process) {
                eprintln!("warning: stopping {process}: {err:#}");
            }
        }
    }
    result
}

/// Cargo's target directory (the workspace's, or `CARGO_TARGET_DIR`).
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    cmd::cargo_metadata(root).map(|metadata| metadata.target_directory)
}

pub fn start_operator(env: &Env, root: &Path) -> Result<()> {
    testenv::stop_process(OPERATOR)?;
    let program = target_dir(root)?.join("debug").join(OPERATOR);
    if !program.is_file() {
        bail!("{} was not built", program.display());
    }
    // The operator runs as the chart's ServiceAccount, so the demo (and the
    // test command, which runs it) fails when the chart's RBAC lacks a verb.
    let kubeconfig = env.dir.join(OPERATOR_KUBECONFIG);
    let metrics_port = cmd::free_ports(1)?[0];
    let launch = run::Launch {
        program,
        args: vec![
            format!("--lease-namespace={CHART_NAMESPACE}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--voice-image-pull-secret={PULL_SECRET}"),
        ],
        log: env.dir.join("logs").join("operator.log"),
        run_as: None,
        env: env
            .vars()
            .iter()
            .map(|(name, value)| {
                let value = if *name == "KUBECONFIG" {
                    kubeconfig.display().to_string()
                } else {
                    value.clone()
                };
                (name.to_string(), value)
            })
            .collect(),
    };
    let (mut child, record) = run::spawn(&launch)?;
    let pid = record.pid;
    testenv::record_process(OPERATOR, record)?;
    // Give it a moment to fail fast on configuration errors.
    std::thread::sleep(Duration::from_secs(2));
    if let Some(status) = child.try_wait().context("checking the operator")? {
        bail!(
            "the operator exited ({status}); last lines of {}:\n{}",
            launch.log.display(),
            run::log_tail(&launch.log, 20)
        );
    }
    testenv::prometheus::register(&env.dir, "operator", metrics_port, "dialtone")?;
    println!("operator running (pid {pid}, log {})", launch.log.display());
    Ok(())
}

/// `(namespace, name)` of every Agent in `examples/`.
fn example_agents(root: &Path) -> Result<Vec<(String, String)>> {
    let mut agents = Vec::new();
    for file in example_files(root, |path| {
        path.file_name().is_some_and(|name| name == "agents.yaml")
    })? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .with_context(|| format!("parsing {}", file.display()))?;
            if value.get("kind").and_then(serde_yaml::Value::as_str) != Some("Agent") {
                continue;
            }
            let field = |name: &str| {
                value
                    .get("metadata")
                    .and_then(|m| m.get(name))
                    .and_then(serde_yaml::Value::as_str)
                    .map(str::to_owned)
                    .with_context(|| {
                        format!("an Agent without metadata.{name} in {}", file.display())
                    })
            };
            agents.push((field("namespace")?, field("name")?));
        }
    }
    agents.sort();
    Ok(agents)
}

/// The YAML files under `examples/` that `keep` accepts.
fn example_files(root: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![root.join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
                && keep(&path)
            {
                found.push(path);
            }
        }
    }
    Ok(found)
}

fn apply(env: &Env, files: &[PathBuf]) -> Result<()> {
    let mut kubectl = env.kubectl()?;
    // A second demo on the same environment finds the vendor URLs the last
    // one patched in; the examples win, and are patched again later.
    kubectl.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=dialtone-demo",
    ]);
    for file in files {
        kubectl.arg("-f").arg(file);
    }
    cmd::run(&mut kubectl)
}

/// Waits, within one overall deadline, for every object of `kinds` (kinds
/// without objects are skipped).
fn wait_ready(env: &Env, kinds: &[&str]) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for &kind in kinds {
        let names = cmd::output(env.kubectl()?.args(["get", kind, "-A", "-o", "name"]))?;
        if names.trim().is_empty() {
            println!("no {kind} in examples/");
            continue;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let timeout = format!("--timeout={left}s");
        cmd::run(env.kubectl()?.args([
            "wait",
            "--for=condition=Ready",
            kind,
            "--all",
            "-A",
            &timeout,
        ]))
        .with_context(|| {
            format!(
                "{kind} did not become Ready within {}s; see {}",
                READY_TIMEOUT.as_secs(),
                env.dir.join("logs").join("operator.log").display()
            )
        })?;
    }
    Ok(())
}
