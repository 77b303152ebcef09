//! `cargo xtask bench`: every benchmark, in release builds. Each prints its
//! own figures; results worth keeping go in `docs/benchmarks.md`.

use anyhow::Result;

use crate::cmd;
use crate::paths;
use crate::steps::{self, Step};
use crate::test::cargo;

pub fn run() -> Result<()> {
    let root = paths::repo_root()?;
    let steps = vec![
        Step::new("objective engine and parse throughput", || {
            cmd::run(cargo().current_dir(&root).args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "dialtone-engine",
                "--example",
                "bench",
            ]))
        }),
        Step::new("capture corpus precision and recall", || {
            cmd::run(cargo().current_dir(&root).args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "dialtone-capture",
                "--example",
                "corpus_report",
            ]))
        }),
    ];
    steps::run_all("cargo xtask bench", steps)
}
