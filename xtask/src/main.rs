//! Dialtone's own tooling: `cargo xtask <command>`.
//!
//! - `testenv up | down | env | status`: a real Kubernetes control plane
//!   (built from the Go module proxy) and PostgreSQL on loopback.
//! - `test`: the one command that runs every check and test.
//! - `bench`: the benchmarks, in release builds, printing their figures.
//! - `demo`: brings the environment up, runs the operator and applies
//!   `examples/`.
//! - `image`: OCI images of every binary, without a container engine.
//! - `release`: the images, the packaged chart, the CRDs and checksums.
//! - `vendor-schemas`: regenerates `xtask/schemas/` (kubeconform schemas
//!   of the Prometheus Operator's kinds).

mod bench;
mod cmd;
mod containers;
mod dashboards;
mod demo;
mod demo_audio;
mod demo_calls;
mod demo_campaigns;
mod demo_images;
mod demo_limits;
mod demo_workflows;
mod image;
mod paths;
mod release;
mod schemas;
mod steps;
mod test;
mod testenv;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Dialtone project tooling")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the local test environment (Kubernetes control plane, kwok, PostgreSQL).
    Testenv {
        #[command(subcommand)]
        action: TestenvAction,
    },
    /// Run every check and test: fmt, clippy, unit tests, chart checks, end-to-end tests.
    Test {
        /// Stop the test environment after the run (always done under CI=true).
        #[arg(long)]
        down: bool,
        /// Skip steps whose name contains this text (repeatable; refused under CI=true).
        #[arg(long, value_name = "STEP")]
        skip: Vec<String>,
        /// Run only steps whose name contains this text (repeatable; refused under CI=true).
        #[arg(long, value_name = "STEP")]
        only: Vec<String>,
    },
    /// Run the benchmarks (release builds) and print their figures.
    Bench,
    /// Build the OCI images of every binary (release builds, no container
    /// engine) under <target>/images/.
    Image,
    /// Write a release: the images as OCI archives, the packaged chart, the
    /// CRD bundle and SHA256SUMS, under <target>/release-artifacts/.
    Release,
    /// Bring up the environment, run the operator and apply `examples/`.
    Demo {
        /// Leave the operator running after the demo.
        #[arg(long)]
        keep: bool,
    },
    /// Regenerate the vendored JSON schemas in xtask/schemas/ from the Prometheus Operator CRDs.
    VendorSchemas,
}

#[derive(Subcommand)]
enum TestenvAction {
    /// Build (if needed) and start every component; reuses healthy ones.
    Up,
    /// Stop every component the environment started (keeps data and the build cache).
    Down,
    /// Print `export` lines for KUBECONFIG, DATABASE_URL and DIALTONE_TESTENV.
    Env,
    /// Print each component and whether it is running.
    Status,
    /// Build every cached tool, including those only `test` needs (helm, kubeconform, promtool, argocd-lua-health) and controller-gen.
    Tools,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Testenv { action } => match action {
            TestenvAction::Up => testenv::up().map(|_| ()),
            TestenvAction::Down => testenv::down(),
            TestenvAction::Env => testenv::print_env(),
            TestenvAction::Status => testenv::status(),
            TestenvAction::Tools => testenv::build_all(),
        },
        Command::Test { down, skip, only } => test::run(down, &skip, &only),
        Command::Bench => bench::run(),
        Command::Image => paths::repo_root().and_then(|root| image::build(&root).map(|_| ())),
        Command::Release => paths::repo_root().and_then(|root| release::run(&root).map(|_| ())),
        Command::Demo { keep } => demo::run(keep),
        Command::VendorSchemas => paths::repo_root().and_then(|root| schemas::vendor(&root)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
