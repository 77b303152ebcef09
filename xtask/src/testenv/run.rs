//! Starting, probing and stopping the environment's detached processes.

use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cmd;

/// A process the environment started, as recorded in `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub pid: u32,
    pub program: PathBuf,
    pub log: PathBuf,
}

/// A user to run a process as (PostgreSQL refuses to run as root).
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Everything needed to start one component.
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
    pub run_as: Option<RunAs>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

/// Starts a process in its own process group (so it outlives `up` and a
/// Ctrl-C in the terminal), with stdout and stderr appended to its log.
pub fn spawn(launch: &Launch) -> Result<(Child, Record)> {
    if let Some(dir) = launch.log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .with_context(|| format!("opening {}", launch.log.display()))?;
    let log_err = log
        .try_clone()
        .with_context(|| format!("duplicating {}", launch.log.display()))?;
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .process_group(0);
    if let Some(user) = launch.run_as {
        command.uid(user.uid).gid(user.gid);
    }
    let child = command
        .spawn()
        .with_context(|| format!("starting `{}`", cmd::describe(&command)))?;
    let record = Record {
        pid: child.id(),
        program: launch.program.clone(),
        log: launch.log.clone(),
    };
    Ok((child, record))
}

/// True when `record`'s process still runs the recorded program (guards
/// against a recycled PID) and is not a zombie.
pub fn alive(record: &Record) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{}", record.pid));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return false;
    }
    let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    Path::new(&*String::from_utf8_lossy(argv0)) == record.program
}

/// Sends `signal` to the process group, waits up to `grace`, then kills it.
pub fn stop(name: &str, record: &Record, signal: Signal, grace: Duration) -> Result<()> {
    if !alive(record) {
        return Ok(());
    }
    let group = Pid::from_raw(
        i32::try_from(record.pid).with_context(|| format!("pid {} out of range", record.pid))?,
    );
    killpg(group, signal).with_context(|| format!("signalling {name} (pid {})", record.pid))?;
    let stopped = cmd::wait_until(
        &format!("{name} to stop"),
        grace,
        Duration::from_millis(100),
        || Ok(!alive(record)),
    );
    if stopped.is_err() {
        println!(
            "  {name} did not stop within {}; killing it",
            cmd::human(grace)
        );
        killpg(group, Signal::SIGKILL)
            .with_context(|| format!("killing {name} (pid {})", record.pid))?;
        cmd::wait_until(
            &format!("{name} to die"),
            Duration::from_secs(5),
            Duration::from_millis(100),
            || Ok(!alive(record)),
        )?;
    }
    Ok(())
}

/// The last lines of a log, for error messages.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let Ok(text) = fs::read_to_string(log) else {
        return String::new();
    };
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
