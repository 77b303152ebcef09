//! Where things live: the repository, the environment directory and the cache.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The repository root (the workspace that contains `xtask/`).
pub fn repo_root() -> Result<PathBuf> {
    // `cargo run` sets CARGO_MANIFEST_DIR at run time as well; prefer it over
    // the compile-time value so a shared CARGO_TARGET_DIR cannot point us at
    // another clone.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .parent()
        .context("xtask manifest directory has no parent")?
        .to_path_buf();
    if !root.join("Cargo.toml").is_file() {
        bail!("{} does not look like the repository root", root.display());
    }
    Ok(root)
}

/// The test environment's directory: `$DIALTONE_TESTENV_DIR` or `<repo>/.testenv`.
pub fn testenv_dir() -> Result<PathBuf> {
    match std::env::var_os("DIALTONE_TESTENV_DIR") {
        Some(dir) if !dir.is_empty() => absolute(Path::new(&dir)),
        _ => Ok(repo_root()?.join(".testenv")),
    }
}

/// `${XDG_CACHE_HOME:-~/.cache}/dialtone`.
pub fn cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home =
                std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(base.join("dialtone"))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("reading the current directory")?
            .join(path))
    }
}
