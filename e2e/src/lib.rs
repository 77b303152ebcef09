//! Helpers for the end-to-end tests in `tests/`.
//!
//! The tests run against the environment named by `KUBECONFIG` (or
//! `$DIALTONE_TESTENV/kubeconfig`), as printed by `cargo xtask testenv env`.
//! Without one, a test prints why and returns — unless `CI=true` or
//! `DIALTONE_REQUIRE_ENV=1`, where it fails.
//!
//! Each test starts its own operator processes. The binary is
//! `$DIALTONE_OPERATOR_BIN` when set; otherwise the tests run
//! `cargo build -p dialtone-operator` once and use
//! `$CARGO_TARGET_DIR/debug/dialtone-operator` (default `<workspace>/target`).
//! Every test labels its objects with a unique `dialtone.io/e2e-run` value and
//! starts its operators with `--selector` on that label and a Lease of its
//! own, so tests run in parallel against one cluster without interfering.
//! Operators get the test database (`DATABASE_URL`, else
//! `.testenv/database-url`), so the Agent controller runs, and a shared voice
//! pool of their own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use dialtone_crds::common::Condition;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Config, ResourceExt};

/// The label every object of a test run carries; operators select on it.
pub const RUN_LABEL: &str = "dialtone.io/e2e-run";
/// Namespace of the tests' leader-election Leases.
pub const LEASE_NAMESPACE: &str = "dialtone-e2e";

/// A connection to the test environment.
pub struct Env {
    /// A client of the test cluster.
    pub client: Client,
    /// The kubeconfig the operators get.
    pub kubeconfig: PathBuf,
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
}

fn kubeconfig_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("DIALTONE_TESTENV").map(|d| PathBuf::from(d).join("kubeconfig"))
}

/// Connects to the environment, installs the CRDs once, or explains why
/// not: `Ok(None)` means "skip this test".
pub async fn env() -> Result<Option<Env>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let why = match kubeconfig_path() {
        None => "neither KUBECONFIG nor DIALTONE_TESTENV is set (run `cargo xtask testenv up` and `eval \"$(cargo xtask testenv env)\"`)".to_owned(),
        Some(path) if !path.exists() => format!("kubeconfig {} does not exist", path.display()),
        Some(path) => match connect(&path).await {
            Ok(client) => {
                install_crds(&client).await?;
                ensure_namespace(&client, LEASE_NAMESPACE, None).await?;
                return Ok(Some(Env { client, kubeconfig: path }));
            }
            Err(err) => format!("cannot reach the API server of {}: {err:#}", path.display()),
        },
    };
    if required() {
        bail!(
            "the end-to-end environment is required (CI=true or DIALTONE_REQUIRE_ENV=1) but {why}"
        );
    }
    eprintln!("SKIPPED: {why}");
    Ok(None)
}

async fn connect(path: &Path) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = Client::try_from(config)?;
    tokio::time::timeout(Duration::from_secs(5), client.apiserver_version())
        .await
        .map_err(|_| anyhow!("timed out"))??;
    Ok(client)
}

async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    use kube::CustomResourceExt;
    // Only the kinds these tests exercise, so a kind under construction
    // elsewhere cannot break them.
    let crds = [
        dialtone_crds::Tenant::crd(),
        dialtone_crds::Provider::crd(),
        dialtone_crds::ClusterProvider::crd(),
        dialtone_crds::Objective::crd(),
        dialtone_crds::Agent::crd(),
    ];
    for crd in crds {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("dialtone-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|e| anyhow!("applying CRD {name}: {e:?}"))?;
        wait_for(Duration::from_secs(30), || async {
            let crd = api.get(&name).await?;
            Ok(crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"))
        })
        .await
        .with_context(|| format!("CRD {name} not established"))?;
    }
    Ok(())
}

/// Creates `name` if it does not exist.
pub async fn ensure_namespace(client: &Client, name: &str, run: Option<&str>) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    if let Some(run) = run {
        ns.labels_mut().insert(RUN_LABEL.to_owned(), run.to_owned());
    }
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a namespace, ignoring "not found".
pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

/// A name unique to this test process and call, e.g. `t-1a2b-3`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{:x}{:x}-{n}",
        std::process::id() % 0xfff,
        nanos % 0xffff
    )
}

/// Polls `check` every 100 ms until it returns `true`; errors from `check`
/// count as "not yet". Returns the time it took.
pub async fn wait_for<F, Fut>(timeout: Duration, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last_err = None;
    while start.elapsed() < timeout {
        match check().await {
            Ok(true) => return Ok(start.elapsed()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match last_err {
        Some(e) => Err(e.context(format!("condition not met within {timeout:?}"))),
        None => bail!("condition not met within {timeout:?}"),
    }
}

/// The condition of `type_`, if present.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The operator binary, built once per test process.
pub fn operator_binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_operator().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_operator() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("DIALTONE_OPERATOR_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "dialtone-operator"])
        .current_dir(&workspace)
        .status()
        .context("running cargo build -p dialtone-operator")?;
    if !status.success() {
        bail!("cargo build -p dialtone-operator failed");
    }
    let bin = target.join("debug").join("dialtone-operator");
    if !bin.exists() {
        bail!("{} not found after building", bin.display());
    }
    Ok(bin)
}

/// The test database: `DATABASE_URL`, else `.testenv/database-url` at the
/// workspace root (written by `cargo xtask testenv up`).
pub fn database_url() -> Option<String> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A connection pool to the test database, or why there is none.
pub async fn database() -> Result<sqlx::PgPool> {
    let url = database_url()
        .context("no DATABASE_URL and no .testenv/database-url (run `cargo xtask testenv up`)")?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await?)
}

/// The shared voice pool of test run `run`'s operator (in
/// [`LEASE_NAMESPACE`]): each run has its own, so parallel tests do not
/// size one pool against each other.
pub fn voice_pool_name(run: &str) -> String {
    format!("{run}-pool")
}

/// Deletes the shared voice pool of test run `run` (it has no owner: the
/// operator keeps it while shared Agents exist).
pub async fn remove_voice_pool(client: &Client, run: &str) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let name = voice_pool_name(run);
    let dp = DeleteParams::background();
    let _ = Api::<Deployment>::namespaced(client.clone(), LEASE_NAMESPACE)
        .delete(&name, &dp)
        .await;
    let _ = Api::<Service>::namespaced(client.clone(), LEASE_NAMESPACE)
        .delete(&name, &dp)
        .await;
    let _ = Api::<PodDisruptionBudget>::namespaced(client.clone(), LEASE_NAMESPACE)
        .delete(&name, &dp)
        .await;
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), LEASE_NAMESPACE)
        .delete(&name, &dp)
        .await;
}

/// An operator process started by a test; killed when dropped.
pub struct Operator {
    /// Its identity in the Lease.
    pub identity: String,
    /// Its metrics port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
}

impl Operator {
    /// The one operator of test run `run`: its own Lease, identity `<run>-a`.
    pub fn solo(env: &Env, run: &str) -> Result<Self> {
        Self::start(env, run, &format!("{run}-lease"), &format!("{run}-a"), &[])
    }

    /// The one operator of test run `run`, with extra arguments.
    pub fn solo_with(env: &Env, run: &str, extra: &[&str]) -> Result<Self> {
        Self::start(
            env,
            run,
            &format!("{run}-lease"),
            &format!("{run}-a"),
            extra,
        )
    }

    /// Starts an operator that manages only objects labelled
    /// `dialtone.io/e2e-run=<run>`, electing on Lease `lease`. It gets the
    /// test database (so the Agent controller runs) and a shared voice pool
    /// of its own ([`voice_pool_name`]).
    pub fn start(
        env: &Env,
        run: &str,
        lease: &str,
        identity: &str,
        extra: &[&str],
    ) -> Result<Self> {
        let bin = operator_binary()?;
        let port = free_port()?;
        let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = std::fs::File::create(logs.join(format!("{identity}.log")))?;
        let mut command = Command::new(bin);
        if let Some(url) = database_url() {
            command.env("DATABASE_URL", url);
        }
        let child = command
            .env("KUBECONFIG", &env.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args([
                "--lease-namespace",
                LEASE_NAMESPACE,
                "--lease-name",
                lease,
                "--identity",
                identity,
            ])
            .args(["--selector", &format!("{RUN_LABEL}={run}")])
            .args([
                "--voice-pool-namespace",
                LEASE_NAMESPACE,
                "--voice-pool-name",
                &voice_pool_name(run),
            ])
            .args(extra)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting the operator")?;
        Ok(Self {
            identity: identity.to_owned(),
            port,
            child: Some(child),
        })
    }

    /// The sum of every sample of the metric family `name` whose labels
    /// contain `label` (e.g. `controller="tenant"`), read from `/metrics`.
    pub async fn metric(&self, name: &str, label: &str) -> Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let prefix = format!("{name}{{");
        let total = body
            .lines()
            .filter(|line| line.starts_with(&prefix) && line.contains(label))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        Ok(total)
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<()> {
        let pid = self.pid().context("not running")?;
        let pid = i32::try_from(pid)?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)?;
        Ok(())
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let start = Instant::now();
        let child = self.child.as_mut().context("not running")?;
        while start.elapsed() < timeout {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status.success());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("operator {} did not exit within {timeout:?}", self.identity)
    }

    /// Fetches a path of the operator's HTTP server (`/readyz`, `/metrics`).
    pub async fn get(&self, path: &str) -> Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let code = response
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The holder of Lease `name` in [`LEASE_NAMESPACE`].
pub async fn lease_holder(client: &Client, name: &str) -> Result<Option<String>> {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), LEASE_NAMESPACE);
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// A Tenant manifest labelled for `run`.
pub fn tenant_manifest(
    name: &str,
    run: &str,
    spec: serde_json::Value,
) -> Result<dialtone_crds::Tenant> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "dialtone.io/v1alpha1",
        "kind": "Tenant",
        "metadata": {"name": name, "labels": {RUN_LABEL: run}},
        "spec": spec,
    }))?)
}

/// A minimal valid Tenant spec.
pub fn basic_tenant_spec(display: &str) -> serde_json::Value {
    serde_json::json!({
        "displayName": display,
        "profile": {"timezone": "Australia/Sydney"},
        "limits": {"cpu": "2", "memory": "4Gi", "pods": 10, "dailyBudgetUsd": 25.0},
        "escalationContacts": [{"name": "the practice manager", "phone": "+61291234567"}],
    })
}

/// Waits until Tenant `name` is `Ready=True` at its current generation.
pub async fn wait_tenant_ready(client: &Client, name: &str, timeout: Duration) -> Result<Duration> {
    let api: Api<dialtone_crds::Tenant> = Api::all(client.clone());
    wait_for(timeout, || {
        let api = api.clone();
        async move {
            let t = api.get(name).await?;
            let status = t.status.clone().unwrap_or_default();
            let ready = condition(&status.conditions, "Ready").is_some_and(|c| c.status == "True");
            Ok(ready && status.observed_generation == t.metadata.generation)
        }
    })
    .await
}
