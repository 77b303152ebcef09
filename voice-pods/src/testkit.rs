//! Support for tests and benchmarks (feature `testkit`): the test database,
//! a config version and route seeded from `examples/dental-clinic`, and a
//! pod on a free loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dialtone_crds::agent::{AgentSpec, ProviderRef};
use dialtone_crds::{Agent, Objective, Provider, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use dialtone_spine::call_tokens::{self, TokenError};
use dialtone_spine::routes::{self, RouteError};
use dialtone_spine::versions::{self, VersionError};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::pod::Silence;
use crate::token::StreamSecret;
use crate::{DrainReport, Pod, PodError, Settings};

/// The stream secret of test pods.
pub const STREAM_SECRET: &str = "test-stream-secret-0123456789";
/// The Twilio auth token of the dental example's `twilio` Provider in test
/// pods' credentials directory.
pub const AUTH_TOKEN: &str = "test-auth-token-not-a-secret";
/// The platform default Twilio token of test pods.
pub const DEFAULT_TOKEN: &str = "test-platform-default-token";
/// The dental example's Tenant.
pub const DENTAL_TENANT: &str = "harbour-dental";
/// The call token the seeded Tenant's text calls present.
pub const CALLS_TOKEN: &str = "dtc_test-calls-token-of-the-dental-example";
/// The dental example's namespace.
pub const NAMESPACE: &str = "tenant-harbour-dental";

/// Why the test setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// Reading the example or writing a temporary file.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The example does not parse.
    #[error("{0}: {1}")]
    Yaml(String, #[source] serde_yaml::Error),
    /// The example does not compile.
    #[error("compile: {0}")]
    Compile(String),
    /// Storing the version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// Routing the number.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Storing the call token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Connecting.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Starting the pod.
    #[error(transparent)]
    Pod(#[from] PodError),
    /// The stream secret.
    #[error(transparent)]
    Secret(#[from] crate::token::WeakSecret),
}

/// Installs the process's TLS crypto provider (the binary does this in
/// `main`); harmless when already installed.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `DATABASE_URL`, else the test environment's `.testenv/database-url`.
pub fn database_url() -> Option<String> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        return Some(url.trim().to_owned());
    }
    std::fs::read_to_string(workspace_root().join(".testenv/database-url"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether a missing test environment must fail the test.
pub fn environment_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| matches!(v.trim(), "1" | "true"))
            .unwrap_or(false)
    };
    set("CI") || set("DIALTONE_REQUIRE_ENV")
}

/// The database URL, or `None` after printing a skip line. Panics when
/// the environment is required (`CI`, `DIALTONE_REQUIRE_ENV`) and absent.
pub fn database_or_skip(test: &str) -> Option<String> {
    install_crypto();
    let url = database_url();
    if url.is_none() {
        assert!(
            !environment_required(),
            "{test}: no DATABASE_URL and no .testenv/database-url (run `cargo xtask testenv up`)"
        );
        println!("skip {test}: no PostgreSQL (run `cargo xtask testenv up`)");
    }
    url
}

/// A random Australian-looking E.164 number, unique enough to isolate
/// tests sharing a database.
pub fn random_number() -> String {
    let n = Uuid::new_v4().as_u128() % 100_000_000;
    format!("+6129{n:08}")
}

/// A random suffix for names.
pub fn random_suffix() -> String {
    Uuid::new_v4().simple().to_string()[..10].to_owned()
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    kind: String,
}

/// The resources of `examples/dental-clinic`.
pub struct DentalExample {
    /// The Tenant.
    pub tenant: Tenant,
    /// The Objectives.
    pub objectives: Vec<Objective>,
    /// The Providers.
    pub providers: Vec<Provider>,
    /// The Agent `reception`.
    pub agent: Agent,
}

/// Reads `examples/dental-clinic`.
pub fn dental_example() -> Result<DentalExample, TestkitError> {
    let dir = workspace_root().join("examples/dental-clinic");
    let mut tenant = None;
    let mut agent = None;
    let mut objectives = Vec::new();
    let mut providers = Vec::new();
    for file in [
        "tenant.yaml",
        "objectives.yaml",
        "providers.yaml",
        "agents.yaml",
    ] {
        let path = dir.join(file);
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| TestkitError::Io(name.clone(), e))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| TestkitError::Yaml(name.clone(), e))?;
            let header: Header = serde_yaml::from_value(value.clone())
                .map_err(|e| TestkitError::Yaml(name.clone(), e))?;
            let yaml = |e| TestkitError::Yaml(name.clone(), e);
            match header.kind.as_str() {
                "Tenant" => tenant = Some(serde_yaml::from_value(value).map_err(yaml)?),
                "Agent" => agent = Some(serde_yaml::from_value(value).map_err(yaml)?),
                "Objective" => objectives.push(serde_yaml::from_value(value).map_err(yaml)?),
                "Provider" => providers.push(serde_yaml::from_value(value).map_err(yaml)?),
                _ => {}
            }
        }
    }
    match (tenant, agent) {
        (Some(tenant), Some(agent)) => Ok(DentalExample {
            tenant,
            objectives,
            providers,
            agent,
        }),
        _ => Err(TestkitError::Compile(
            "examples/dental-clinic lacks its Tenant or Agent".to_owned(),
        )),
    }
}

/// A config version stored and routed for tests.
pub struct Seeded {
    /// The number routed to it.
    pub number: String,
    /// The Agent's name.
    pub agent: String,
    /// The version.
    pub version: ConfigVersion,
}

impl Seeded {
    /// Removes the Agent's routes, so finished tests leave no numbers in
    /// the shared database that no Agent resource owns. The version stays:
    /// the test's call records refer to it.
    pub async fn unroute(&self, pool: &PgPool) -> Result<(), TestkitError> {
        routes::remove_agent(pool, NAMESPACE, &self.agent).await?;
        Ok(())
    }
}

/// Compiles the dental example's Agent as `agent` answering `number` (with
/// the builtin speech and classifier providers, Twilio for telephony),
/// with `display_name` so variants differ, stores the version and routes
/// the number to it.
pub async fn seed_dental(
    pool: &PgPool,
    agent: &str,
    number: &str,
    display_name: &str,
) -> Result<Seeded, TestkitError> {
    // Tests and benchmarks carry far more calls than the example clinic's
    // limit; the limit itself is tested through `seed_dental_limited`.
    seed_dental_limited(pool, agent, number, display_name, 10_000).await
}

/// [`seed_dental`] with the Tenant's `maxConcurrentCalls` set to
/// `max_concurrent_calls`.
pub async fn seed_dental_limited(
    pool: &PgPool,
    agent: &str,
    number: &str,
    display_name: &str,
    max_concurrent_calls: i32,
) -> Result<Seeded, TestkitError> {
    seed_dental_with(pool, agent, number, display_name, |tenant, _| {
        tenant.spec.limits.max_concurrent_calls = max_concurrent_calls;
    })
    .await
}

/// [`seed_dental`] with the example's Tenant and Agent spec changed by
/// `edit` before compiling.
pub async fn seed_dental_with(
    pool: &PgPool,
    agent: &str,
    number: &str,
    display_name: &str,
    edit: impl FnOnce(&mut Tenant, &mut AgentSpec),
) -> Result<Seeded, TestkitError> {
    let mut example = dental_example()?;
    let mut spec = example.agent.spec.clone();
    spec.display_name = Some(display_name.to_owned());
    spec.phone_numbers = vec![dialtone_crds::agent::PhoneNumber {
        number: number.to_owned(),
        direction: Default::default(),
    }];
    let builtin = |name: &str| {
        Some(ProviderRef {
            name: name.to_owned(),
            kind: Default::default(),
        })
    };
    spec.providers.stt = builtin("builtin-stt");
    spec.providers.tts = builtin("builtin-tts");
    spec.providers.llm = builtin("builtin-llm");
    edit(&mut example.tenant, &mut spec);
    let mut resource = Agent::new(agent, spec);
    resource.metadata.namespace = Some(NAMESPACE.to_owned());
    let input = CompileInput {
        agent: &resource,
        tenant: &example.tenant,
        objectives: example.objectives.iter().collect(),
        providers: example.providers.iter().collect(),
        cluster_providers: Vec::new(),
    };
    let version = compile(&input).map_err(|e| TestkitError::Compile(e.to_string()))?;
    let tenant = version.config.tenant.name.clone();
    versions::put(pool, &version, &tenant, NAMESPACE, agent).await?;
    issue_calls_token(pool).await?;
    routes::activate(
        pool,
        &tenant,
        NAMESPACE,
        agent,
        &[number.to_owned()],
        &version.hash,
    )
    .await?;
    Ok(Seeded {
        number: number.to_owned(),
        agent: agent.to_owned(),
        version,
    })
}

/// Stores [`CALLS_TOKEN`] as the dental Tenant's call token, with a day's
/// grace for a token an operator issued to the same Tenant.
pub async fn issue_calls_token(pool: &PgPool) -> Result<(), TestkitError> {
    call_tokens::issue(
        pool,
        DENTAL_TENANT,
        &call_tokens::digest(CALLS_TOKEN),
        Duration::from_secs(86_400),
    )
    .await?;
    Ok(())
}

/// `ws://<addr>/v1/calls?to=…&from=…&token=…` (the `+` escaped), with a
/// widget token of the seeded Tenant valid for 50 minutes.
pub fn call_url(addr: &str, to: &str, from: &str) -> String {
    let widget = call_tokens::mint_widget(
        CALLS_TOKEN,
        DENTAL_TENANT,
        chrono::Utc::now().timestamp() + 3_000,
    );
    format!(
        "ws://{addr}/v1/calls?to={}&from={}&token={widget}",
        to.replace('+', "%2B"),
        from.replace('+', "%2B")
    )
}

/// A scratch directory under the system temp dir, with the credentials
/// the dental example's Twilio Provider needs.
pub fn scratch_dir() -> Result<PathBuf, TestkitError> {
    let dir = std::env::temp_dir().join(format!("dialtone-voice-{}", random_suffix()));
    let twilio = dir.join("credentials").join(NAMESPACE).join("twilio");
    std::fs::create_dir_all(&twilio)
        .map_err(|e| TestkitError::Io(twilio.display().to_string(), e))?;
    for (key, value) in [("accountSid", "ACtest"), ("authToken", AUTH_TOKEN)] {
        let path = twilio.join(key);
        std::fs::write(&path, value)
            .map_err(|e| TestkitError::Io(path.display().to_string(), e))?;
    }
    Ok(dir)
}

/// Settings of a test pod using `dir` (from [`scratch_dir`]).
pub fn settings(dir: &Path, public_url: &str, drain: Duration) -> Result<Settings, TestkitError> {
    Ok(Settings {
        public_url: public_url.to_owned(),
        credentials_dir: dir.join("credentials"),
        stream_secret: StreamSecret::new(STREAM_SECRET.as_bytes())?,
        drain,
        default_twilio_token: Some(DEFAULT_TOKEN.to_owned()),
        max_calls: 5_000,
        max_connections: 10_000,
        text_idle: Duration::from_secs(300),
        silence: Silence::PerPrimitive,
    })
}

/// A pod serving on a loopback port in this process.
pub struct TestPod {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves `/metrics`.
    pub metrics_addr: SocketAddr,
    /// The pod (metrics, store).
    pub pod: Arc<Pod>,
    /// Its scratch directory.
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<DrainReport, PodError>>,
}

impl TestPod {
    /// Starts a pod against `database_url` with grace period `drain`.
    pub async fn start(database_url: &str, drain: Duration) -> Result<Self, TestkitError> {
        Self::start_with(database_url, drain, |_| {}).await
    }

    /// [`start`](Self::start) with the settings changed by `tune`.
    pub async fn start_with(
        database_url: &str,
        drain: Duration,
        tune: impl FnOnce(&mut Settings),
    ) -> Result<Self, TestkitError> {
        let dir = scratch_dir()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestkitError::Io("binding a loopback port".to_owned(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::Io("reading the bound port".to_owned(), e))?;
        let mut settings = settings(&dir, &format!("http://{addr}"), drain)?;
        tune(&mut settings);
        let (pod, writer) = crate::start(settings, database_url, dir.join("events.spill"))?;
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestkitError::Io("binding a loopback port".to_owned(), e))?;
        let metrics_addr = metrics
            .local_addr()
            .map_err(|e| TestkitError::Io("reading the bound port".to_owned(), e))?;
        let metrics = tokio::spawn(crate::serve_metrics(metrics, pod.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(crate::serve(listener, pod.clone(), writer, async move {
            let _ = stopped.await;
            metrics.abort();
        }));
        Ok(Self {
            addr,
            metrics_addr,
            pod,
            dir,
            stop: Some(stop),
            handle,
        })
    }

    /// The pool of the pod.
    pub fn pool(&self) -> &PgPool {
        self.pod.store.pool()
    }

    /// `ws://…/v1/calls?to=…&from=…&token=…` (the `+` escaped), with a
    /// widget token of the seeded Tenant.
    pub fn call_url(&self, to: &str, from: &str) -> String {
        call_url(&self.addr.to_string(), to, from)
    }

    /// Drains and stops the pod, flushing its events.
    pub async fn stop(mut self) -> Result<DrainReport, TestkitError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let report = match self.handle.await {
            Ok(r) => r?,
            Err(e) => {
                return Err(TestkitError::Io(
                    "pod task".to_owned(),
                    std::io::Error::other(e.to_string()),
                ));
            }
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_names_the_dental_examples_tenant() {
        let example = dental_example().unwrap();
        assert_eq!(example.tenant.metadata.name.as_deref(), Some(DENTAL_TENANT));
    }
}
