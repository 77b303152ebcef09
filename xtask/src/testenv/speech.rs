//! The builtin speech providers' parts from Debian's packages: espeak-ng
//! (text to speech) and PocketSphinx with its US English model (speech to
//! text). Found, or installed when we are root, like PostgreSQL.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::unistd::Uid;

use crate::cmd;

const PACKAGES: [&str; 3] = ["espeak-ng", "libpocketsphinx-dev", "pocketsphinx-en-us"];
const MODEL: &str = "/usr/share/pocketsphinx/model/en-us/en-us/mdef";
const LIBRARY_DIRS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
];

fn missing() -> Vec<&'static str> {
    let espeak = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("espeak-ng").is_file())
    });
    let library = LIBRARY_DIRS
        .iter()
        .any(|dir| Path::new(dir).join("libpocketsphinx.so").exists());
    let model = Path::new(MODEL).is_file();
    PACKAGES
        .into_iter()
        .zip([espeak, library, model])
        .filter(|(_, present)| !present)
        .map(|(package, _)| package)
        .collect()
}

/// Makes sure espeak-ng, PocketSphinx and its model are installed.
pub fn ensure_installed() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        return Ok(());
    }
    if !Uid::effective().is_root() {
        bail!(
            "the builtin speech providers need Debian's {}: install them with \
             `sudo apt-get install -y --no-install-recommends {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    println!(
        "installing Debian's {} for builtin speech ...",
        missing.join(", ")
    );
    cmd::run(Command::new("apt-get").arg("update")).context("apt-get update")?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("installing the speech packages")?;
    let still = self::missing();
    if !still.is_empty() {
        bail!("{} installed but still not found", still.join(", "));
    }
    Ok(())
}
