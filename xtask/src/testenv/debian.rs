//! Tools from Debian's packages: found, or installed when we are root (as
//! CI is), else a clear instruction.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::unistd::Uid;

use crate::cmd;

/// A Debian package and a file that is there once it is installed.
pub struct Package {
    pub name: &'static str,
    pub probe: &'static str,
}

fn missing(packages: &[Package]) -> Vec<&'static str> {
    packages
        .iter()
        .filter(|package| !Path::new(package.probe).exists())
        .map(|package| package.name)
        .collect()
}

/// Makes sure `packages` are installed; `purpose` says what for.
pub fn ensure(packages: &[Package], purpose: &str) -> Result<()> {
    let missing = missing(packages);
    if missing.is_empty() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        bail!(
            "{purpose} needs Debian's {}: install them with \
             `sudo apt-get install -y --no-install-recommends {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    println!(
        "installing Debian's {} for {purpose} ...",
        missing.join(", ")
    );
    cmd::run(Command::new("apt-get").arg("update")).context("apt-get update")?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("installing {}", missing.join(", ")))?;
    let still = self::missing(packages);
    if !still.is_empty() {
        bail!("{} installed but still not found", still.join(", "));
    }
    Ok(())
}
