//! `cargo xtask test`: the one command that runs every check and test.

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, cargo};
use crate::paths;
use crate::steps::{self, Step};
use crate::testenv::build::{self, Tool};
use crate::testenv::{self, Env};

/// Set for the end-to-end tests: a missing environment is a failure, never a skip.
pub const ENV_REQUIRE: &str = "DIALTONE_REQUIRE_ENV";
/// The namespace the chart is rendered into and dry-run applied to.
const CHART_NAMESPACE: &str = "dialtone-system";
/// Values that turn on every optional part of the chart, so that lint and
/// schema checks see every template.
const ALL_ENABLED: [&str; 5] = [
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "dashboards.enabled=true",
    "database.existingSecret=dialtone-database",
    "imagePullSecrets[0].name=regcred",
];
/// Where the Argo CD health scripts (`health.lua` beside a `health_test.yaml`)
/// live; every one found is run.
const HEALTH_SCRIPT_ROOTS: [&str; 2] = ["charts", "docs"];

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Runs every step, less those `skip` names; when `only` is not empty, just
/// the steps it names (a step that needs the environment then needs it up).
pub fn run(down_after: bool, skip: &[String], only: &[String]) -> Result<()> {
    if is_ci() && !(skip.is_empty() && only.is_empty()) {
        bail!("--skip and --only are not allowed under CI=true: CI runs every step");
    }
    let root = paths::repo_root()?;
    let chart = root.join("charts").join("dialtone");
    let env: RefCell<Option<Env>> = RefCell::new(None);
    let up_env = || -> Result<Env> { Env::load() };

    let steps = vec![
        Step::new("cargo fmt --check", || {
            cmd::run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))
        }),
        Step::new("cargo clippy", || {
            cmd::run(cargo().current_dir(&root).args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        }),
        // Before the unit tests: the event spine's and the voice pods'
        // integration tests run against the environment's PostgreSQL.
        Step::new("testenv up", || {
            *env.borrow_mut() = Some(testenv::up()?);
            Ok(())
        }),
        Step::new("unit and integration tests", || {
            let env = up_env()?;
            let mut test = cargo();
            test.current_dir(&root)
                .args(["test", "--workspace", "--exclude", "dialtone-e2e"])
                .env(ENV_REQUIRE, "1");
            cmd::run(env.apply(&mut test))
        }),
        Step::new("dialtone validate examples/", || {
            cmd::run(cargo().current_dir(&root).args([
                "run",
                "--quiet",
                "-p",
                "dialtone-cli",
                "--",
                "validate",
                "examples",
            ]))
        }),
        Step::new("dialtone test examples/", || {
            cmd::run(cargo().current_dir(&root).args([
                "run",
                "--quiet",
                "-p",
                "dialtone-cli",
                "--",
                "test",
                "examples",
            ]))
        }),
        Step::new("crdgen --check", || {
            cmd::run(cargo().current_dir(&root).args([
                "run",
                "--quiet",
                "-p",
                "dialtone-crds",
                "--bin",
                "crdgen",
                "--",
                "--check",
            ]))
        }),
        Step::new("install CRDs", || {
            let env = up_env()?;
            testenv::install_crds(&env, &root)
        }),
        Step::new("helm lint", || {
            let (helm, _) = build::ensure(Tool::Helm)?;
            cmd::run(Command::new(&helm).args(["lint", "--strict"]).arg(&chart))?;
            cmd::run(
                Command::new(&helm)
                    .args(["lint", "--strict"])
                    .arg(&chart)
                    .args(ALL_ENABLED.iter().flat_map(|v| ["--set", v])),
            )
        }),
        Step::new("kubeconform", || {
            let env = up_env()?;
            let rendered = render_chart(&env, &chart, &ALL_ENABLED)?;
            kubeconform(&env, &root, &rendered)
        }),
        Step::new("chart server-side dry run", || {
            let env = up_env()?;
            // Default values: the test apiserver has no Prometheus operator
            // CRDs for the optional ServiceMonitor and PrometheusRule.
            let rendered = render_chart(&env, &chart, &[])?;
            dry_run(&env, &rendered)
        }),
        Step::new("promtool test rules", || promtool(&chart)),
        Step::new("argocd health scripts", || argocd_health(&root)),
        Step::new("end-to-end tests", || {
            let env = up_env()?;
            // A demo operator left running (`demo --keep`) would reconcile the
            // tests' objects and could make a leader test pass for it.
            testenv::stop_process("dialtone-operator")?;
            let mut test = cargo();
            test.current_dir(&root)
                .args(["test", "-p", "dialtone-e2e"])
                // The environment is up: an e2e test that cannot reach it must fail.
                .env(ENV_REQUIRE, "1");
            cmd::run(env.apply(&mut test))
        }),
        // The README's main command must keep working: examples/ admitted by
        // the API server and Ready under the operator.
        Step::new("cargo xtask demo", || crate::demo::run(false)),
        // After the demo, which built and ran the images.
        Step::new("cargo xtask release", || {
            let out = crate::release::run(&root)?;
            crate::release::verify(&out)
        }),
    ];
    let steps = steps
        .into_iter()
        .filter(|step| {
            let named = |names: &[String]| names.iter().any(|s| step.name.contains(s.as_str()));
            let skipped = named(skip) || !(only.is_empty() || named(only));
            if skipped {
                let flag = if named(skip) { "--skip" } else { "--only" };
                println!("skipping `{}` ({flag})", step.name);
            }
            !skipped
        })
        .collect();
    let (summary, result) = steps::run_steps("cargo xtask test", steps);

    if (down_after || is_ci()) && env.borrow().is_some() {
        println!("\nstopping the test environment");
        if let Err(err) = testenv::down() {
            eprintln!("warning: stopping the test environment: {err:#}");
        }
    }
    summary.print();
    result
}

/// Renders the chart (CRDs included) into `<testenv>/chart.yaml`.
fn render_chart(env: &Env, chart: &Path, values: &[&str]) -> Result<PathBuf> {
    let (helm, _) = build::ensure(Tool::Helm)?;
    let rendered = cmd::output(
        Command::new(helm)
            .args(["template", "dialtone"])
            .arg(chart)
            .args(["--namespace", CHART_NAMESPACE, "--include-crds"])
            .args(values.iter().flat_map(|v| ["--set", v])),
    )
    .context("rendering the chart")?;
    let name = if values.is_empty() {
        "chart.yaml"
    } else {
        "chart-all-enabled.yaml"
    };
    let path = env.dir.join(name);
    fs::write(&path, rendered).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Validates the rendered chart with kubeconform against JSON schemas
/// generated from the test apiserver's OpenAPI document (the public schema
/// registry is not reachable from CI, and this way the schemas match the
/// Kubernetes version we test against), then the vendored ones in
/// `xtask/schemas/` for the Prometheus Operator's kinds. No kind is skipped:
/// an object without a schema fails the step.
fn kubeconform(env: &Env, root: &Path, rendered: &Path) -> Result<()> {
    let (kubeconform, _) = build::ensure(Tool::Kubeconform)?;
    let schemas = env.dir.join("schemas");
    crate::schemas::generate(env, &schemas)?;
    cmd::run(
        Command::new(kubeconform)
            .args(["-strict", "-summary", "-schema-location"])
            .arg(crate::schemas::location(&schemas))
            .arg("-schema-location")
            .arg(crate::schemas::vendored_location(root))
            .arg(rendered),
    )
}

/// Applies the rendered chart to the test apiserver with a server-side dry run.
fn dry_run(env: &Env, rendered: &Path) -> Result<()> {
    let namespace =
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {CHART_NAMESPACE}\n");
    cmd::run_with_stdin(
        env.kubectl()?.args([
            "apply",
            "--server-side",
            "--field-manager=dialtone-xtask",
            "-f",
            "-",
        ]),
        namespace.as_bytes(),
    )
    .context("creating the chart's namespace")?;
    cmd::run(
        env.kubectl()?
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                // The demo applies the same RBAC under its own field manager;
                // a dry run must not fail on that ownership.
                "--force-conflicts",
                "--field-manager=dialtone-xtask",
                "-f",
            ])
            .arg(rendered),
    )
}

/// `promtool test rules` on every `charts/dialtone/tests/*.yaml`.
fn promtool(chart: &Path) -> Result<()> {
    let tests_dir = chart.join("tests");
    let mut tests: Vec<PathBuf> = match fs::read_dir(&tests_dir) {
        Ok(entries) => entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    if tests.is_empty() {
        bail!(
            "no rule tests in {}: the alert rules must be tested",
            tests_dir.display()
        );
    }
    tests.sort();
    let (promtool, _) = build::ensure(Tool::Promtool)?;
    cmd::run(
        Command::new(promtool)
            .current_dir(&tests_dir)
            .args(["test", "rules"])
            .args(&tests),
    )
}

/// Runs every Argo CD health script under [`HEALTH_SCRIPT_ROOTS`] against its
/// `health_test.yaml` with gopher-lua, the interpreter Argo CD embeds
/// (`xtask/go/argocd-lua-health`).
fn argocd_health(root: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    for top in HEALTH_SCRIPT_ROOTS {
        find_health_scripts(&root.join(top), &mut dirs)?;
    }
    if dirs.is_empty() {
        bail!("found no health.lua under {HEALTH_SCRIPT_ROOTS:?}");
    }
    dirs.sort();
    for dir in &dirs {
        if !dir.join("health_test.yaml").is_file() {
            bail!(
                "{} has a health.lua but no health_test.yaml: every health script must be tested",
                dir.display()
            );
        }
    }
    let (harness, _) = build::ensure(Tool::ArgocdLuaHealth)?;
    cmd::run(
        Command::new(harness)
            .current_dir(root)
            .args(dirs.iter().map(|dir| dir.strip_prefix(root).unwrap_or(dir))),
    )
}

/// Collects the directories below `dir` that hold a `health.lua`.
fn find_health_scripts(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            find_health_scripts(&path, found)?;
        } else if entry.file_name() == "health.lua" {
            found.push(dir.to_path_buf());
        }
    }
    Ok(())
}
