//! PostgreSQL from Debian's packages: found (or installed), initialised in
//! `<testenv>/postgres`, listening on 127.0.0.1 only, with the `dialtone`
//! database and the migrations of `migrations/` applied.

use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::unistd::{Uid, User};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::run::{Launch, RunAs};
use crate::cmd;

/// Must match the literal in `CREATE DATABASE` below.
pub const DATABASE: &str = "dialtone";
const SUPERUSER: &str = "postgres";

/// The directory holding `initdb` and `postgres`.
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    pub fn postgres(&self) -> PathBuf {
        self.dir.join("postgres")
    }

    fn initdb(&self) -> PathBuf {
        self.dir.join("initdb")
    }
}

/// Finds PostgreSQL's binaries; installs Debian's `postgresql` when missing.
pub fn ensure_installed() -> Result<Binaries> {
    if let Some(found) = find() {
        return Ok(found);
    }
    if !Uid::effective().is_root() {
        bail!(
            "PostgreSQL is not installed (no initdb/postgres in PATH or /usr/lib/postgresql/*/bin); \
             install it with `sudo apt-get install -y postgresql`"
        );
    }
    println!("PostgreSQL not found: installing Debian's postgresql package ...");
    cmd::run(Command::new("apt-get").arg("update")).context("apt-get update")?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("installing postgresql")?;
    find().context("postgresql was installed but initdb/postgres are still not found")
}

fn find() -> Option<Binaries> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    // Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin;
    // prefer the newest major version.
    let mut versioned: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_both(dir))
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.pop() {
        return Some(Binaries { dir });
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| has_both(dir))
        .map(|dir| Binaries { dir })
}

/// PostgreSQL refuses to run as root: when we are root, use the `postgres`
/// user the Debian package creates.
pub fn run_as() -> Result<Option<RunAs>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name(SUPERUSER)
        .context("looking up the postgres user")?
        .context("running as root, but there is no `postgres` user to run PostgreSQL as")?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

/// Runs `initdb` once for `data_dir` (trust authentication: the server only
/// listens on 127.0.0.1 and holds throwaway test data).
pub fn ensure_initialised(bins: &Binaries, data_dir: &Path, user: Option<RunAs>) -> Result<()> {
    if data_dir.join("PG_VERSION").is_file() {
        return Ok(());
    }
    if data_dir.exists() {
        // A previous initdb was interrupted.
        fs::remove_dir_all(data_dir)
            .with_context(|| format!("removing the incomplete {}", data_dir.display()))?;
    }
    fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", data_dir.display()))?;
    let mut initdb = Command::new(bins.initdb());
    if let Some(user) = user {
        chown(data_dir, Some(user.uid), Some(user.gid))
            .with_context(|| format!("giving {} to the postgres user", data_dir.display()))?;
        std::os::unix::process::CommandExt::uid(&mut initdb, user.uid);
        std::os::unix::process::CommandExt::gid(&mut initdb, user.gid);
    }
    initdb.current_dir("/").arg("-D").arg(data_dir).args([
        "-U",
        SUPERUSER,
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]);
    println!("initialising PostgreSQL in {}", data_dir.display());
    cmd::output(&mut initdb).context("initdb failed")?;
    Ok(())
}

/// How to start the server on `port`, loopback only, without Unix sockets.
pub fn launch(
    bins: &Binaries,
    data_dir: &Path,
    port: u16,
    log: PathBuf,
    user: Option<RunAs>,
) -> Launch {
    Launch {
        program: bins.postgres(),
        args: vec![
            "-D".into(),
            data_dir.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "unix_socket_directories=".into(),
            // Test data: durability is not needed, speed is.
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "synchronous_commit=off".into(),
            "-c".into(),
            "full_page_writes=off".into(),
            "-c".into(),
            "max_connections=200".into(),
        ],
        log,
        run_as: user,
        env: Vec::new(),
    }
}

pub fn url(port: u16, database: &str) -> String {
    format!("postgres://{SUPERUSER}@127.0.0.1:{port}/{database}")
}

/// True when the server accepts connections.
pub fn ready(port: u16) -> bool {
    block_on(async { PgConnection::connect(&url(port, "postgres")).await.is_ok() }).unwrap_or(false)
}

/// Creates the database if needed and applies `migrations_dir` with sqlx's
/// runtime migrator (migrations are read from disk, not compiled in).
pub fn prepare_database(port: u16, migrations_dir: &Path) -> Result<()> {
    block_on(async {
        let mut admin = PgConnection::connect(&url(port, "postgres"))
            .await
            .context("connecting to PostgreSQL")?;
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(DATABASE)
                .fetch_optional(&mut admin)
                .await
                .context("looking up the dialtone database")?;
        if exists.is_none() {
            sqlx::query("CREATE DATABASE dialtone")
                .execute(&mut admin)
                .await
                .context("creating the dialtone database")?;
            println!("created database {DATABASE}");
        }
        admin
            .close()
            .await
            .context("closing the admin connection")?;

        let has_migrations = fs::read_dir(migrations_dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
            })
            .unwrap_or(false);
        if !has_migrations {
            println!("no migrations in {} yet", migrations_dir.display());
            return Ok(());
        }
        let migrator = sqlx::migrate::Migrator::new(migrations_dir)
            .await
            .with_context(|| format!("reading migrations from {}", migrations_dir.display()))?;
        let mut db = PgConnection::connect(&url(port, DATABASE))
            .await
            .context("connecting to the dialtone database")?;
        migrator.run(&mut db).await.context("applying migrations")?;
        println!(
            "migrations up to date ({} in {})",
            migrator.iter().count(),
            migrations_dir.display()
        );
        Ok(())
    })?
}

fn block_on<T>(future: impl Future<Output = T>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a Tokio runtime")?;
    Ok(runtime.block_on(future))
}
