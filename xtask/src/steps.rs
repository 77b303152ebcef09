//! A list of named steps run in order, each timed, failing fast.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cmd::human;

/// One step of a pipeline such as `test` or `demo`.
pub struct Step<'a> {
    pub name: &'static str,
    pub action: Box<dyn FnOnce() -> Result<()> + 'a>,
}

impl<'a> Step<'a> {
    pub fn new(name: &'static str, action: impl FnOnce() -> Result<()> + 'a) -> Self {
        Self {
            name,
            action: Box::new(action),
        }
    }
}

/// How a run of steps went.
pub struct Summary {
    title: String,
    passed: usize,
    failed: usize,
    not_run: usize,
    elapsed: Duration,
}

impl Summary {
    /// Prints the closing lines; the last is the plain `steps: N passed,
    /// N failed` that CI reads.
    pub fn print(&self) {
        let not_run = if self.not_run > 0 {
            format!(", {} skipped", self.not_run)
        } else {
            String::new()
        };
        println!("\n{} finished in {}", self.title, human(self.elapsed));
        println!(
            "steps: {} passed, {} failed{not_run}",
            self.passed, self.failed
        );
    }
}

/// Runs `steps` in order and stops at the first failure, printing each
/// step's duration and then the summary.
pub fn run_all(title: &str, steps: Vec<Step<'_>>) -> Result<()> {
    let (summary, result) = run_steps(title, steps);
    summary.print();
    result
}

/// Like [`run_all`], but leaves printing the summary to the caller, so that
/// clean-up output can come before it.
pub fn run_steps(title: &str, steps: Vec<Step<'_>>) -> (Summary, Result<()>) {
    let total = steps.len();
    let started = Instant::now();
    let mut passed = 0;
    let mut failure = None;
    for (index, step) in steps.into_iter().enumerate() {
        println!("\n==> [{}/{total}] {}", index + 1, step.name);
        let step_started = Instant::now();
        match (step.action)() {
            Ok(()) => {
                passed += 1;
                println!("<== {} ok ({})", step.name, human(step_started.elapsed()));
            }
            Err(err) => {
                println!(
                    "<== {} FAILED ({})",
                    step.name,
                    human(step_started.elapsed())
                );
                failure = Some((step.name, err));
                break;
            }
        }
    }
    let failed = usize::from(failure.is_some());
    let summary = Summary {
        title: title.to_owned(),
        passed,
        failed,
        not_run: total - passed - failed,
        elapsed: started.elapsed(),
    };
    let result = match failure {
        Some((name, err)) => Err(anyhow::anyhow!("step `{name}` failed: {err:#}")),
        None => Ok(()),
    };
    (summary, result)
}
