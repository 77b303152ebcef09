//! One image layer: a sorted set of files, written as a tar that depends on
//! nothing but their contents (fixed owner, modes and time), so the same
//! commit always gives the same digest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// What a path in the layer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The contents of a file on this machine (symlinks followed).
    File(PathBuf),
    Bytes(Vec<u8>),
    Dir,
    Symlink(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub source: Source,
    pub mode: u32,
}

/// A layer's files by their path in the image (no leading `/`).
#[derive(Default, Debug)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

/// A written layer: the tar, and its digest (the image config's `diff_id`).
pub struct Tar {
    pub bytes: Vec<u8>,
    pub diff_id: String,
}

impl Layer {
    /// Adds `path` and, as directories, every parent it lacks. A path added
    /// twice must be the same both times.
    pub fn add(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() || path.split('/').any(|part| part == ".." || part.is_empty()) {
            bail!("{path:?} is not a clean path inside the image");
        }
        self.add_parents(path);
        match self.entries.get(path) {
            Some(existing) if existing != &entry && existing.source != Source::Dir => {
                bail!("{path} is added twice with different contents")
            }
            _ => {
                self.entries.insert(path.to_owned(), entry);
            }
        }
        Ok(())
    }

    fn add_parents(&mut self, path: &str) {
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(d.to_string_lossy().into_owned())
                .or_insert(Entry {
                    source: Source::Dir,
                    mode: 0o755,
                });
            dir = d.parent();
        }
    }

    pub fn file(&mut self, path: &str, from: &Path, mode: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                source: Source::File(from.to_path_buf()),
                mode,
            },
        )
    }

    pub fn bytes(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                source: Source::Bytes(bytes.into()),
                mode,
            },
        )
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        self.add(
            path,
            Entry {
                source: Source::Dir,
                mode,
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.add(
            path,
            Entry {
                source: Source::Symlink(target.to_owned()),
                mode: 0o777,
            },
        )
    }

    /// Adds the tree under `from` at `path`, keeping its symlinks.
    pub fn tree(&mut self, path: &str, from: &Path) -> Result<()> {
        let mut children: Vec<_> = std::fs::read_dir(from)
            .with_context(|| format!("reading {}", from.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", from.display()))?;
        children.sort_by_key(|child| child.file_name());
        self.dir(path, 0o755)?;
        for child in children {
            let name = child.file_name();
            let name = name
                .to_str()
                .with_context(|| format!("{:?} in {} is not UTF-8", name, from.display()))?;
            let inside = format!("{}/{name}", path.trim_end_matches('/'));
            let source = child.path();
            let kind = child
                .file_type()
                .with_context(|| format!("reading {}", source.display()))?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&source)
                    .with_context(|| format!("reading the link {}", source.display()))?;
                self.symlink(&inside, &target.to_string_lossy())?;
            } else if kind.is_dir() {
                self.tree(&inside, &source)?;
            } else {
                self.file(&inside, &source, 0o644)?;
            }
        }
        Ok(())
    }

    /// The tar of the layer: entries in path order, owned by root, every
    /// time `epoch` (seconds since 1970).
    pub fn tar(&self, epoch: u64) -> Result<Tar> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(epoch);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mode(entry.mode);
            match &entry.source {
                Source::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())
                }
                Source::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)
                }
                Source::Bytes(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())
                }
                Source::File(from) => {
                    let bytes = std::fs::read(from)
                        .with_context(|| format!("reading {}", from.display()))?;
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())
                }
            }
            .with_context(|| format!("adding {path} to the layer"))?;
        }
        let bytes = builder.into_inner().context("finishing the layer")?;
        let diff_id = sha256(&bytes);
        Ok(Tar { bytes, diff_id })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// gzip at the best ratio with no name or time in its header: the same tar
/// always compresses to the same bytes.
pub fn gzip(tar: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(tar).context("compressing a layer")?;
    encoder.finish().context("compressing a layer")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer() -> Layer {
        let mut layer = Layer::default();
        layer
            .bytes("etc/passwd", "root:x:0:0::/:\n", 0o644)
            .unwrap();
        layer.symlink("lib", "usr/lib").unwrap();
        layer
            .bytes("usr/local/bin/app", vec![1, 2, 3], 0o755)
            .unwrap();
        layer
    }

    #[test]
    fn parents_are_directories_and_paths_sort() {
        let tar = layer().tar(1_700_000_000).unwrap();
        let mut archive = tar::Archive::new(tar.bytes.as_slice());
        let paths: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let header = entry.header();
                (
                    entry.path().unwrap().to_string_lossy().into_owned(),
                    header.mode().unwrap(),
                    header.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = paths.iter().map(|(p, ..)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/passwd",
                "lib",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/app"
            ]
        );
        assert!(paths.iter().all(|(.., mtime)| *mtime == 1_700_000_000));
        assert_eq!(paths[6].1, 0o755);
    }

    #[test]
    fn the_same_files_give_the_same_digest() {
        let a = layer().tar(1).unwrap();
        let b = layer().tar(1).unwrap();
        assert_eq!(a.diff_id, b.diff_id);
        assert_eq!(
            sha256(&gzip(&a.bytes).unwrap()),
            sha256(&gzip(&b.bytes).unwrap())
        );
        assert_ne!(a.diff_id, layer().tar(2).unwrap().diff_id);
    }

    #[test]
    fn paths_outside_the_image_and_conflicts_are_refused() {
        let mut layer = layer();
        assert!(layer.bytes("../etc/shadow", "x", 0o600).is_err());
        assert!(layer.bytes("etc//x", "x", 0o600).is_err());
        assert!(layer.bytes("etc/passwd", "other", 0o644).is_err());
        layer
            .bytes("etc/passwd", "root:x:0:0::/:\n", 0o644)
            .unwrap();
    }
}
