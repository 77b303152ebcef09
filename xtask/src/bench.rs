//! `cargo xtask bench`: every benchmark, in release builds. Each prints its
//! own figures; results worth keeping go in `docs/benchmarks.md`.
//!
//! The event-ingest, workflow, dialer, voice and convergence benchmarks run against the test
//! environment (PostgreSQL, the Kubernetes control plane), which is brought
//! up first.

use std::process::Command;

use anyhow::Result;

use crate::cmd;
use crate::cmd::cargo;
use crate::paths;
use crate::steps::{self, Step};
use crate::testenv::{self, Env};

/// `cargo run --release -p <package> --example <example>` in the test
/// environment.
fn example(root: &std::path::Path, package: &str, example: &str) -> Command {
    let mut command = cargo();
    command.current_dir(root).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        package,
        "--example",
        example,
    ]);
    command
}

pub fn run() -> Result<()> {
    let root = paths::repo_root()?;
    let with_env = |mut command: Command| -> Result<()> {
        let env = Env::load()?;
        cmd::run(env.apply(&mut command))
    };
    let steps = vec![
        Step::new("objective engine and parse throughput", || {
            cmd::run(&mut example(&root, "dialtone-engine", "bench"))
        }),
        Step::new("capture corpus precision and recall", || {
            cmd::run(&mut example(&root, "dialtone-capture", "corpus_report"))
        }),
        // Up first: it installs the speech packages too.
        Step::new("testenv up", || testenv::up().map(|_| ())),
        Step::new(
            "builtin speech to text: CPU per audio second, decoder memory",
            || cmd::run(&mut example(&root, "dialtone-providers", "stt_bench")),
        ),
        Step::new("event ingest against a plain INSERT", || {
            with_env(example(&root, "dialtone-spine", "ingest_bench"))
        }),
        Step::new(
            "workflow delivery: throughput, latency, outbox cost",
            || with_env(example(&root, "dialtone-workers", "bench")),
        ),
        Step::new(
            "campaign dialer: 100,000 leads, overhead, queries and rate per dial",
            || with_env(example(&root, "dialtone-workers", "dialer_bench")),
        ),
        Step::new("1,000 concurrent calls against one voice pod", || {
            with_env(example(&root, "dialtone-voice", "call_bench"))
        }),
        Step::new("Agent convergence against a plain client", || {
            cmd::run(cargo().current_dir(&root).args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "dialtone-operator",
            ]))?;
            let operator = crate::demo::target_dir(&root)?
                .join("release")
                .join("dialtone-operator");
            let mut bench = example(&root, "dialtone-e2e", "convergence");
            bench.env("DIALTONE_OPERATOR_BIN", operator);
            with_env(bench)
        }),
    ];
    steps::run_all("cargo xtask bench", steps)
}
