//! A list of named steps run in order, each timed, failing fast.

use std::time::Instant;

use anyhow::{Result, bail};

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

/// Runs `steps` in order and stops at the first failure. Prints each step's
/// duration and a closing `N passed, N failed` line.
pub fn run_all(title: &str, steps: Vec<Step<'_>>) -> Result<()> {
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
    let skipped = total - passed - failed;
    let skipped_note = if skipped > 0 {
        format!(", {skipped} not run")
    } else {
        String::new()
    };
    println!(
        "\n{title}: {passed} passed, {failed} failed{skipped_note} in {}",
        human(started.elapsed())
    );
    match failure {
        Some((name, err)) => bail!("step `{name}` failed: {err:#}"),
        None => Ok(()),
    }
}
