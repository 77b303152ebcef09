//! What goes into an image's file system: the shared libraries a program
//! loads (as `ldd` resolves them on this machine), and the base every image
//! shares: a non-root user, CA certificates, tzdata and a `/tmp`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::layer::Layer;
use crate::cmd;

/// The user every image runs as (distroless's `nonroot`).
pub const USER_ID: u32 = 65532;

const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A shared library as the dynamic loader finds it: `path` is the name it
/// opens (e.g. `/lib/x86_64-linux-gnu/libc.so.6`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Library {
    pub path: PathBuf,
}

impl Library {
    /// Where the library goes in the image: its directory with symlinks
    /// resolved (Debian's `/lib` is `/usr/lib`), under the name the loader
    /// asks for (the soname, not the versioned file it links to).
    pub fn image_path(&self) -> Result<String> {
        let name = self
            .path
            .file_name()
            .with_context(|| format!("{} has no file name", self.path.display()))?;
        let dir = self
            .path
            .parent()
            .with_context(|| format!("{} has no directory", self.path.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        Ok(dir.join(name).to_string_lossy().into_owned())
    }
}

/// The libraries `program` loads, the dynamic loader included.
pub fn libraries(program: &Path) -> Result<BTreeSet<Library>> {
    let output = cmd::output(Command::new("ldd").arg(program))
        .with_context(|| format!("listing the libraries of {}", program.display()))?;
    parse_ldd(&output).with_context(|| format!("ldd {}", program.display()))
}

/// Parses `ldd` output: `libz.so.1 => /lib/.../libz.so.1 (0x…)` and the
/// loader's `/lib64/ld-linux-x86-64.so.2 (0x…)`; the kernel's vDSO has no
/// file and is skipped. A library `ldd` cannot find is an error.
pub fn parse_ldd(output: &str) -> Result<BTreeSet<Library>> {
    let mut libraries = BTreeSet::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not found") {
            bail!("a library is missing: {line}");
        }
        let path = match line.split_once("=>") {
            Some((_, resolved)) => resolved.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(path) if path.starts_with('/') => {
                libraries.insert(Library {
                    path: PathBuf::from(path),
                });
            }
            // linux-vdso.so.1, or "statically linked".
            _ => {}
        }
    }
    Ok(libraries)
}

/// Adds `libraries` to `layer`.
pub fn add_libraries<'a>(
    layer: &mut Layer,
    libraries: impl IntoIterator<Item = &'a Library>,
) -> Result<()> {
    for library in libraries {
        layer.file(&library.image_path()?, &library.path, 0o755)?;
    }
    Ok(())
}

/// The files every image shares.
pub fn base(layer: &mut Layer) -> Result<()> {
    // Debian's merged /usr: the loader and libraries live under /usr/lib*,
    // and binaries name `/lib64/ld-linux-x86-64.so.2` as their interpreter.
    layer.symlink("lib", "usr/lib")?;
    layer.symlink("lib64", "usr/lib64")?;
    layer.bytes(
        "etc/passwd",
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{USER_ID}:{USER_ID}:nonroot:/home/nonroot:/sbin/nologin\n"
        ),
        0o644,
    )?;
    layer.bytes(
        "etc/group",
        format!("root:x:0:\nnonroot:x:{USER_ID}:\n"),
        0o644,
    )?;
    layer.dir("home/nonroot", 0o755)?;
    layer.dir("tmp", 0o1777)?;
    for (what, path, package) in [
        ("CA certificates", CA_CERTIFICATES, "ca-certificates"),
        ("time zones", ZONEINFO, "tzdata"),
    ] {
        if !Path::new(path).exists() {
            bail!("{what} ({path}) are missing: install Debian's {package}");
        }
    }
    layer.file(
        CA_CERTIFICATES,
        &Path::new(CA_CERTIFICATES)
            .canonicalize()
            .with_context(|| format!("resolving {CA_CERTIFICATES}"))?,
        0o644,
    )?;
    layer.tree(ZONEINFO, Path::new(ZONEINFO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_loader_and_resolved_libraries() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\
             \tlibpocketsphinx.so.3 => /lib/x86_64-linux-gnu/libpocketsphinx.so.3 (0x00007f1)\n\
             \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
             \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        let paths: Vec<_> = parse_ldd(output)
            .unwrap()
            .into_iter()
            .map(|library| library.path.display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libpocketsphinx.so.3",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn a_missing_library_is_an_error() {
        let output = "\tlibsphinxbase.so.3 => not found\n";
        let err = parse_ldd(output).unwrap_err();
        assert!(err.to_string().contains("libsphinxbase"), "{err}");
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }
}
