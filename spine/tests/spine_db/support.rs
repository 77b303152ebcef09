//! The shared test database, a private PostgreSQL for the outage test, and
//! helpers to compare what was sent with what was stored.

use std::collections::BTreeMap;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use dialtone_spine::db::EventRow;
use dialtone_spine::event::CallEvent;
use dialtone_spine::projection::{self, CallRow};
use dialtone_spine::writer::WriterConfig;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// Whether a missing environment fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
}

/// Fails under CI, else prints a skip line.
pub fn skip(why: &str) {
    assert!(!required(), "the test environment is required but {why}");
    eprintln!("SKIPPED: {why}");
}

fn database_url() -> Option<String> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        return Some(url);
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// A pool on the shared test database, or `None` to skip.
pub async fn pool() -> Option<PgPool> {
    let why = match database_url() {
        None => {
            "no DATABASE_URL and no .testenv/database-url (run `cargo xtask testenv up`)".to_owned()
        }
        Some(url) => match PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
        {
            Ok(pool) => return Some(pool),
            Err(e) => format!("cannot connect to the test database: {e}"),
        },
    };
    skip(&why);
    None
}

/// A tenant no other test uses.
pub fn tenant() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dialtone-{what}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("creates a temp dir");
    dir
}

/// A writer config with a fresh spill file and quick batches and retries.
pub fn config(what: &str) -> WriterConfig {
    WriterConfig {
        buffer: 1_000,
        max_batch: 64,
        max_delay: Duration::from_millis(5),
        retry_interval: Duration::from_millis(200),
        write_timeout: Duration::from_secs(5),
        ..WriterConfig::new(temp_dir(what).join("events.spill"))
    }
}

/// The stored events of a tenant, by call, in seq order.
pub async fn stored(pool: &PgPool, tenant: &str) -> BTreeMap<Uuid, Vec<CallEvent>> {
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT call_id, seq, tenant, event_type, schema_version, occurred_at, payload \
         FROM call_events WHERE tenant = $1 ORDER BY call_id, seq",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("reads events");
    let mut calls: BTreeMap<Uuid, Vec<CallEvent>> = BTreeMap::new();
    for row in rows {
        let event = row.into_event().expect("stored events parse");
        calls.entry(event.call_id).or_default().push(event);
    }
    calls
}

/// What the `calls` rows of these calls must be: the fold of their events.
pub fn folded<'a>(calls: impl IntoIterator<Item = &'a Vec<CallEvent>>) -> Vec<CallRow> {
    let mut rows: Vec<CallRow> = calls
        .into_iter()
        .filter_map(|events| events.iter().fold(None, projection::apply))
        .collect();
    rows.sort_by_key(|r| r.call_id);
    rows
}

/// A PostgreSQL server of our own, to stop and start under load.
pub struct PrivatePostgres {
    dir: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    /// uid and gid to run the server as (PostgreSQL refuses root).
    user: Option<(u32, u32)>,
}

impl PrivatePostgres {
    /// Initialises and starts a server on a free loopback port; `None` (or
    /// a failure under CI) when PostgreSQL is not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = binaries() else {
            skip("no PostgreSQL binaries in /usr/lib/postgresql/*/bin");
            return None;
        };
        let user = if nix::unistd::Uid::effective().is_root() {
            let u = nix::unistd::User::from_name("postgres")
                .expect("looks up the postgres user")
                .expect("running as root needs a postgres user to run PostgreSQL as");
            Some((u.uid.as_raw(), u.gid.as_raw()))
        } else {
            None
        };
        let dir = temp_dir("private-pg");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("creates the data dir");
        if let Some((uid, gid)) = user {
            chown(&dir, Some(uid), Some(gid)).expect("chowns the temp dir");
            chown(&data, Some(uid), Some(gid)).expect("chowns the data dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("finds a free port")
            .port();
        let pg = Self {
            dir,
            data,
            bin,
            port,
            user,
        };
        pg.run(
            Command::new(pg.bin.join("initdb"))
                .arg("-D")
                .arg(&pg.data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync"]),
        );
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n\
             fsync = off\nfull_page_writes = off\n"
        );
        let path = pg.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&path).expect("reads postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&path, text).expect("writes postgresql.conf");
        pg.resume();
        Some(pg)
    }

    /// The connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl stop -m fast`: connections are terminated, the server exits.
    pub fn stop(&self) {
        self.run(self.pg_ctl().args(["stop", "-m", "fast", "-w"]));
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    pub fn resume(&self) {
        let log = self.dir.join("postgres.log");
        self.run(
            self.pg_ctl()
                .arg("-l")
                .arg(log)
                .args(["-w", "-t", "30", "start"]),
        );
    }

    fn pg_ctl(&self) -> Command {
        let mut c = Command::new(self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data);
        c
    }

    fn run(&self, command: &mut Command) {
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let out = command
            .current_dir(&self.dir)
            .output()
            .expect("runs a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let mut stop = self.pg_ctl();
        stop.args(["stop", "-m", "immediate", "-w"]);
        if let Some((uid, gid)) = self.user {
            stop.uid(uid).gid(gid);
        }
        let _ = stop.current_dir(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` with initdb and pg_ctl.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}
