//! `cargo xtask testenv up | down | env | status`.
//!
//! Layout of the environment directory (`.testenv/` or `$DIALTONE_TESTENV_DIR`):
//!
//! ```text
//! state.json        ports and PIDs of the started processes
//! kubeconfig        admin kubeconfig, CA embedded
//! database-url      the DATABASE_URL
//! env               the `export` lines `testenv env` prints
//! certs/            CA, apiserver serving pair, admin client pair, SA keys
//! etcd/             etcd data
//! etcd.layout       the settings etcd's data was written under
//! postgres/         PostgreSQL cluster
//! prometheus/       Prometheus' configuration, scrape targets and data
//! logs/<name>.log   one log per process
//! bin/              symlinks to the cached binaries (kubectl, ...)
//! ```

pub mod build;
mod certs;
pub mod debian;
mod kube;
mod postgres;
pub mod prometheus;
pub mod run;
mod speech;
mod state;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use crate::cmd::{self, human};
use crate::paths;
use build::Tool;
use state::{Ports, State};

/// The environment variables through which tests find the environment.
pub const ENV_KUBECONFIG: &str = "KUBECONFIG";
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
pub const ENV_TESTENV: &str = "DIALTONE_TESTENV";

/// Beside `etcd/`: the `kube::etcd_layout` its data was written under.
const ETCD_LAYOUT_FILE: &str = "etcd.layout";

/// How to reach a running environment.
pub struct Env {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub database_url: String,
    /// Prometheus' HTTP port on 127.0.0.1.
    pub prometheus_port: u16,
}

impl Env {
    fn from_state(dir: &Path, state: &State) -> Self {
        Self {
            dir: dir.to_path_buf(),
            kubeconfig: dir.join("kubeconfig"),
            database_url: postgres::url(state.ports.postgres, postgres::DATABASE),
            prometheus_port: state.ports.prometheus,
        }
    }

    /// Reads the environment description of an environment that was brought up.
    pub fn load() -> Result<Self> {
        let dir = paths::testenv_dir()?;
        if !State::path(&dir).is_file() {
            bail!(
                "no test environment in {} (run `cargo xtask testenv up`)",
                dir.display()
            );
        }
        Ok(Self::from_state(&dir, &State::load(&dir)?))
    }

    pub fn vars(&self) -> [(&'static str, String); 3] {
        [
            (ENV_KUBECONFIG, self.kubeconfig.display().to_string()),
            (ENV_DATABASE_URL, self.database_url.clone()),
            (ENV_TESTENV, self.dir.display().to_string()),
        ]
    }

    /// Sets KUBECONFIG, DATABASE_URL and DIALTONE_TESTENV on `command`.
    pub fn apply<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        for (name, value) in self.vars() {
            command.env(name, value);
        }
        command
    }

    fn exports(&self) -> String {
        self.vars()
            .iter()
            .map(|(name, value)| format!("export {name}={}\n", shell_quote(value)))
            .collect()
    }

    /// `kubectl` with this environment's kubeconfig.
    pub fn kubectl(&self) -> Result<Command> {
        kube::kubectl(&self.kubeconfig)
    }
}

fn shell_quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@=".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The processes of the environment, in start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Component {
    Etcd,
    Apiserver,
    ControllerManager,
    Scheduler,
    Kwok,
    Postgres,
    Prometheus,
}

impl Component {
    const ALL: [Component; 7] = [
        Component::Etcd,
        Component::Apiserver,
        Component::ControllerManager,
        Component::Scheduler,
        Component::Kwok,
        Component::Postgres,
        Component::Prometheus,
    ];

    fn name(self) -> &'static str {
        match self {
            Component::Etcd => "etcd",
            Component::Apiserver => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Kwok => "kwok",
            Component::Postgres => "postgres",
            Component::Prometheus => "prometheus",
        }
    }

    fn port(self, ports: &Ports) -> u16 {
        match self {
            Component::Etcd => ports.etcd,
            Component::Apiserver => ports.apiserver,
            Component::ControllerManager => ports.controller_manager,
            Component::Scheduler => ports.scheduler,
            Component::Kwok => ports.kwok,
            Component::Postgres => ports.postgres,
            Component::Prometheus => ports.prometheus,
        }
    }

    /// PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for clients).
    fn stop_signal(self) -> Signal {
        match self {
            Component::Postgres => Signal::SIGINT,
            _ => Signal::SIGTERM,
        }
    }

    fn start_timeout(self) -> Duration {
        match self {
            Component::Apiserver => Duration::from_secs(120),
            _ => Duration::from_secs(60),
        }
    }
}

/// Everything the components' command lines and probes need.
struct Ctx {
    dir: PathBuf,
    pki: certs::Pki,
    kubeconfig: PathBuf,
    ports: Ports,
    pg: postgres::Binaries,
    pg_user: Option<run::RunAs>,
}

impl Ctx {
    fn layout(&self) -> kube::Layout<'_> {
        kube::Layout {
            dir: &self.dir,
            pki: &self.pki,
            kubeconfig: &self.kubeconfig,
        }
    }

    fn launch(&self, component: Component) -> Result<run::Launch> {
        let layout = self.layout();
        match component {
            Component::Etcd => kube::etcd(&layout, &self.ports),
            Component::Apiserver => kube::apiserver(&layout, &self.ports),
            Component::ControllerManager => kube::controller_manager(&layout, &self.ports),
            Component::Scheduler => kube::scheduler(&layout, &self.ports),
            Component::Kwok => kube::kwok(&layout, &self.ports),
            Component::Postgres => Ok(postgres::launch(
                &self.pg,
                &self.dir.join("postgres"),
                self.ports.postgres,
                self.dir.join("logs").join("postgres.log"),
                self.pg_user,
            )),
            Component::Prometheus => prometheus::launch(
                &self.dir,
                self.ports.prometheus,
                &paths::repo_root()?
                    .join("charts")
                    .join("dialtone")
                    .join("files")
                    .join("alerts.yaml"),
            ),
        }
    }

    fn ready(&self, component: Component) -> Result<bool> {
        let port = component.port(&self.ports);
        Ok(match component {
            Component::Etcd => cmd::http_get(port, "/health")
                .is_ok_and(|(code, body)| code == 200 && body.contains("true")),
            Component::Apiserver => kube::apiserver_ready(&self.kubeconfig)?,
            // Their secure ports only open once they have started serving.
            Component::ControllerManager | Component::Scheduler => cmd::port_open(port),
            Component::Kwok => cmd::http_get(port, "/healthz").is_ok_and(|(code, _)| code == 200),
            Component::Postgres => postgres::ready(port),
            Component::Prometheus => prometheus::ready(port),
        })
    }
}

/// `testenv up`: builds what is missing, starts what is not running, waits
/// until everything is ready. Idempotent.
pub fn up() -> Result<Env> {
    let started = Instant::now();
    let dir = paths::testenv_dir()?;
    for sub in ["logs", "certs", "bin"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    println!("test environment: {}", dir.display());

    let mut built = Vec::new();
    for tool in Tool::ENVIRONMENT {
        let (path, build_time) = build::ensure(tool)?;
        link_binary(&dir, tool, &path)?;
        if let Some(time) = build_time {
            built.push(format!("{} {}", tool.name(), human(time)));
        }
    }
    if built.is_empty() {
        println!(
            "binaries: cached in {}",
            paths::cache_dir()?.join("bin").display()
        );
    } else {
        println!("built: {}", built.join(", "));
    }

    let pg = postgres::ensure_installed()?;
    speech::ensure_installed()?;
    let pg_user = postgres::run_as()?;

    if etcd_data_is_stale(&dir) {
        println!("etcd data was written under an older layout: starting it afresh");
        down()?;
        let data = dir.join("etcd");
        fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
    }
    let mut state = State::load(&dir)?;
    if state.ports.prometheus == 0 {
        state.ports.prometheus = cmd::free_ports(1)?[0];
    }
    if !state.processes.values().any(run::alive) {
        state.processes.clear();
        if !state.ports.all_free() {
            state.ports = Ports::fresh()?;
        }
    }
    let pki = certs::ensure(&dir.join("certs"))?;
    let kubeconfig = dir.join("kubeconfig");
    let server = format!("https://127.0.0.1:{}", state.ports.apiserver);
    fs::write(&kubeconfig, certs::kubeconfig(&pki, &server)?)
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    state.save(&dir)?;

    let ctx = Ctx {
        dir: dir.clone(),
        pki,
        kubeconfig,
        ports: state.ports,
        pg,
        pg_user,
    };
    for component in Component::ALL {
        if component == Component::Postgres {
            postgres::ensure_initialised(&ctx.pg, &dir.join("postgres"), ctx.pg_user)?;
        }
        ensure_running(&ctx, &mut state, component)?;
        if component == Component::Etcd {
            fs::write(dir.join(ETCD_LAYOUT_FILE), kube::etcd_layout())
                .context("recording etcd's layout")?;
        }
        if component == Component::Kwok {
            kube::ensure_nodes(&ctx.kubeconfig, Duration::from_secs(60))?;
            println!("  nodes: {} Ready", kube::FAKE_NODES.join(", "));
        }
    }
    let migrations = paths::repo_root()?.join("migrations");
    postgres::prepare_database(state.ports.postgres, &migrations)?;

    let env = Env::from_state(&dir, &state);
    fs::write(dir.join("database-url"), format!("{}\n", env.database_url))
        .context("writing database-url")?;
    fs::write(dir.join("env"), env.exports()).context("writing env")?;
    println!("test environment up in {}", human(started.elapsed()));
    println!(
        "Prometheus: http://127.0.0.1:{} (scrapes what the demo starts)",
        env.prometheus_port
    );
    print!("{}", env.exports());
    Ok(env)
}

/// True when etcd holds data written under another `kube::etcd_layout`.
fn etcd_data_is_stale(dir: &Path) -> bool {
    dir.join("etcd").exists()
        && fs::read_to_string(dir.join(ETCD_LAYOUT_FILE)).ok() != Some(kube::etcd_layout())
}

/// Starts `component` unless it already runs and is ready.
fn ensure_running(ctx: &Ctx, state: &mut State, component: Component) -> Result<()> {
    let name = component.name();
    let port = component.port(&ctx.ports);
    if let Some(record) = state.processes.get(name).filter(|r| run::alive(r)) {
        let became_ready = cmd::wait_until(
            &format!("{name} to become ready"),
            Duration::from_secs(10),
            Duration::from_millis(250),
            || ctx.ready(component),
        );
        if became_ready.is_ok() {
            println!("  {name}: running (pid {}, port {port})", record.pid);
            return Ok(());
        }
        println!("  {name}: running but not ready; restarting it");
        run::stop(
            name,
            record,
            component.stop_signal(),
            Duration::from_secs(10),
        )?;
    }
    let launch = ctx.launch(component)?;
    let log = launch.log.clone();
    let (mut child, record) = run::spawn(&launch)?;
    let pid = record.pid;
    state.processes.insert(name.to_string(), record);
    state.save(&ctx.dir)?;
    let step = Instant::now();
    cmd::wait_until(
        &format!("{name} to become ready"),
        component.start_timeout(),
        Duration::from_millis(250),
        || {
            if let Some(status) = child.try_wait().context("checking the process")? {
                bail!(
                    "{name} exited ({status}); last lines of {}:\n{}",
                    log.display(),
                    run::log_tail(&log, 15)
                );
            }
            ctx.ready(component)
        },
    )
    .with_context(|| format!("{name} did not start; see {}", log.display()))?;
    println!(
        "  {name}: started (pid {pid}, port {port}) in {}",
        human(step.elapsed())
    );
    Ok(())
}

fn link_binary(dir: &Path, tool: Tool, target: &Path) -> Result<()> {
    let link = dir.join("bin").join(tool.name());
    if fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(target, &link)
        .with_context(|| format!("linking {} to {}", link.display(), target.display()))
}

/// `testenv tools`: builds (or finds cached) every tool.
pub fn build_all() -> Result<()> {
    for tool in Tool::ALL {
        let (path, _) = build::ensure(tool)?;
        println!(
            "{:<24} {:<9} {}",
            tool.name(),
            tool.version(),
            path.display()
        );
    }
    Ok(())
}

/// `testenv down`: stops every process the environment started (anything
/// else recorded first, e.g. a demo operator, then the components in
/// reverse start order). Keeps data and the build cache.
pub fn down() -> Result<()> {
    let dir = paths::testenv_dir()?;
    let mut state = State::load(&dir)?;
    let known: Vec<&str> = Component::ALL.iter().map(|c| c.name()).collect();
    let mut order: Vec<(String, Signal)> = state
        .processes
        .keys()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| (name.clone(), Signal::SIGTERM))
        .collect();
    order.extend(
        Component::ALL
            .iter()
            .rev()
            .map(|c| (c.name().to_string(), c.stop_signal())),
    );
    let mut stopped = 0;
    for (name, signal) in order {
        let Some(record) = state.processes.get(&name).cloned() else {
            continue;
        };
        if run::alive(&record) {
            run::stop(&name, &record, signal, Duration::from_secs(10))?;
            println!("stopped {name} (pid {})", record.pid);
            stopped += 1;
        }
        state.processes.remove(&name);
        state.save(&dir)?;
    }
    if stopped == 0 {
        println!("nothing running in {}", dir.display());
    }
    Ok(())
}

/// `testenv env`: the export lines.
pub fn print_env() -> Result<()> {
    print!("{}", Env::load()?.exports());
    Ok(())
}

/// `testenv status`: each component and whether it is up.
pub fn status() -> Result<()> {
    let dir = paths::testenv_dir()?;
    let state = State::load(&dir)?;
    println!("test environment: {}", dir.display());
    let mut down = 0;
    for component in Component::ALL {
        let name = component.name();
        let port = component.port(&state.ports);
        match state.processes.get(name).filter(|r| run::alive(r)) {
            Some(record) => println!("  {name:<24} up    pid {:<8} port {port}", record.pid),
            None => {
                down += 1;
                println!("  {name:<24} down");
            }
        }
    }
    for (name, record) in &state.processes {
        if Component::ALL.iter().all(|c| c.name() != name) {
            let state_word = if run::alive(record) { "up" } else { "down" };
            println!("  {name:<24} {state_word:<5} pid {}", record.pid);
        }
    }
    if down > 0 {
        println!("{down} component(s) down: run `cargo xtask testenv up`");
    }
    Ok(())
}

/// Records a process started outside `up` (e.g. the demo's operator) so
/// `down` stops it too.
pub fn record_process(name: &str, record: run::Record) -> Result<()> {
    let dir = paths::testenv_dir()?;
    let mut state = State::load(&dir)?;
    state.processes.insert(name.to_string(), record);
    state.save(&dir)
}

/// Stops a process recorded with [`record_process`].
pub fn stop_process(name: &str) -> Result<()> {
    let dir = paths::testenv_dir()?;
    let mut state = State::load(&dir)?;
    if let Some(record) = state.processes.remove(name) {
        run::stop(name, &record, Signal::SIGTERM, Duration::from_secs(10))?;
        state.save(&dir)?;
    }
    Ok(())
}

/// Installs the chart's CRDs into the test apiserver.
pub fn install_crds(env: &Env, root: &Path) -> Result<()> {
    let crds = root.join("charts").join("dialtone").join("crds");
    let has_crds = fs::read_dir(&crds)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|ext| ext == "yaml"))
        })
        .unwrap_or(false);
    if !has_crds {
        bail!(
            "no CRDs in {} (run `cargo run -p dialtone-crds --bin crdgen`)",
            crds.display()
        );
    }
    cmd::run(
        env.kubectl()?
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=dialtone-xtask",
                "-f",
            ])
            .arg(&crds),
    )?;
    cmd::run(env.kubectl()?.args([
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]))
}
