//! `cargo xtask image`: an OCI image of every binary, built without a
//! container engine. Each holds the release binary, the shared libraries
//! `ldd` finds for it on this (Debian) machine, CA certificates, tzdata and
//! a non-root user: no shell, no package manager. Layers are written
//! byte for byte the same from the same commit (decision 0029).

mod layer;
mod oci;
mod rootfs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::cmd::cargo;
use layer::Layer;
pub use rootfs::USER_ID;

/// The image registry the chart pulls from by default.
pub const REGISTRY: &str = "ghcr.io/dialtone";
/// Where a binary lives in its image.
pub const BIN_DIR: &str = "/usr/local/bin";

/// One image: a binary of the workspace and what it needs besides its
/// libraries.
pub struct Spec {
    pub name: &'static str,
    pub package: &'static str,
    pub binary: &'static str,
    pub description: &'static str,
    pub ports: &'static [u16],
    /// Other programs it runs, with their libraries.
    pub programs: &'static [&'static str],
    /// Data trees it reads, in a layer of their own: they change with
    /// Debian's packages, not with every release, so upgrades pull only
    /// the binary.
    pub data: &'static [&'static str],
}

/// Every image, in the order they are built.
pub const IMAGES: [Spec; 4] = [
    Spec {
        name: "dialtone-operator",
        package: "dialtone-operator",
        binary: "dialtone-operator",
        description: "The Dialtone operator: compiles Tenants, Objectives, Agents, Providers and Campaigns into config versions and voice pods",
        ports: &[8080],
        programs: &[],
        data: &[],
    },
    Spec {
        name: "dialtone-voice",
        package: "dialtone-voice",
        binary: "dialtone-voice",
        description: "Dialtone voice pod: Twilio webhooks and media streams, the text channel, builtin speech",
        ports: &[8080],
        programs: &["/usr/bin/espeak-ng"],
        data: &[
            "/usr/share/pocketsphinx/model/en-us",
            "/usr/lib/x86_64-linux-gnu/espeak-ng-data",
        ],
    },
    Spec {
        name: "dialtone-workers",
        package: "dialtone-workers",
        binary: "dialtone-workers",
        description: "Dialtone workers: workflow delivery with retries and dead letters, and the campaign dialer",
        ports: &[9090],
        programs: &[],
        data: &[],
    },
    Spec {
        name: "dialtone",
        package: "dialtone-cli",
        binary: "dialtone",
        description: "The dialtone CLI: validate, test, replay, migrations and GitOps checks",
        ports: &[],
        programs: &[],
        data: &[],
    },
];

/// An image written to its OCI layout.
pub struct Built {
    pub name: &'static str,
    pub tag: String,
    pub layout: PathBuf,
    /// The manifest digest (what `image.digest` pins in the chart).
    pub digest: String,
    /// Compressed bytes of its layers: what a node pulls.
    pub compressed: u64,
    pub layers: usize,
    /// The commit's time its files carry.
    pub epoch: u64,
}

impl Built {
    /// Writes the image as one OCI archive (skopeo's `oci-archive:`).
    pub fn archive(&self, path: &Path) -> Result<()> {
        oci::Layout {
            dir: self.layout.clone(),
        }
        .archive(path, self.epoch)
    }

    /// `<layout>:<tag>`, as umoci and skopeo's `oci:` transport name it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.layout.display(), self.tag)
    }
}

/// What the images say about where they came from.
pub struct Provenance {
    pub version: String,
    pub revision: String,
    /// The commit's time, for every file and the config's `created`.
    pub epoch: u64,
}

/// Builds the release binaries and writes every image under
/// `<target>/images/<name>/`.
pub fn build(root: &Path) -> Result<Vec<Built>> {
    let metadata = cmd::cargo_metadata(root)?;
    let version = metadata
        .packages
        .iter()
        .find(|package| package.name == "dialtone-operator")
        .map(|package| package.version.clone())
        .context("cargo metadata has no dialtone-operator")?;
    let provenance = Provenance {
        version,
        revision: revision(root)?,
        epoch: epoch(root)?,
    };
    let started = Instant::now();
    let mut build = cargo();
    build
        .current_dir(root)
        .args(["build", "--release", "--locked", "--bins"]);
    for spec in &IMAGES {
        build.args(["-p", spec.package]);
    }
    cmd::run(&mut build).context("building the release binaries")?;
    println!(
        "release binaries built in {}",
        cmd::human(started.elapsed())
    );

    let started = Instant::now();
    let release = metadata.target_directory.join("release");
    let out = metadata.target_directory.join("images");
    let built = assemble(&release, &out, &provenance)?;
    println!(
        "images written to {} in {}",
        out.display(),
        cmd::human(started.elapsed())
    );
    for image in &built {
        println!(
            "  {REGISTRY}/{}:{}  {}  {:.1} MB compressed, {} layers",
            image.name,
            image.tag,
            image.digest,
            image.compressed as f64 / 1e6,
            image.layers
        );
    }
    Ok(built)
}

/// Writes the images of the binaries in `release` to `out`.
fn assemble(release: &Path, out: &Path, provenance: &Provenance) -> Result<Vec<Built>> {
    let binaries: Vec<PathBuf> = IMAGES
        .iter()
        .map(|spec| release.join(spec.binary))
        .collect();
    let mut needs = Vec::new();
    for (spec, binary) in IMAGES.iter().zip(&binaries) {
        if !binary.is_file() {
            bail!("{} was not built", binary.display());
        }
        let mut libraries = rootfs::libraries(binary)?;
        for program in spec.programs {
            if !Path::new(program).is_file() {
                bail!("{} needs {program}, which is not installed", spec.name);
            }
            libraries.extend(rootfs::libraries(Path::new(program))?);
        }
        needs.push(libraries);
    }
    // Libraries every binary loads (the C library, the loader) go into the
    // base layer, which all images share.
    let common: BTreeSet<rootfs::Library> = needs
        .iter()
        .skip(1)
        .fold(needs.first().cloned().unwrap_or_default(), |all, next| {
            all.intersection(next).cloned().collect()
        });
    let mut base = Layer::default();
    rootfs::base(&mut base)?;
    rootfs::add_libraries(&mut base, &common)?;
    let base = base.tar(provenance.epoch)?;

    let mut built = Vec::new();
    for ((spec, binary), libraries) in IMAGES.iter().zip(&binaries).zip(&needs) {
        let layout = oci::Layout::create(&out.join(spec.name))?;
        let mut tars = vec![&base];
        let data = if spec.data.is_empty() {
            None
        } else {
            let mut data = Layer::default();
            for tree in spec.data {
                data.tree(tree, Path::new(tree))?;
            }
            Some(data.tar(provenance.epoch)?)
        };
        tars.extend(data.as_ref());
        let mut app = Layer::default();
        app.file(&format!("{BIN_DIR}/{}", spec.binary), binary, 0o755)?;
        for program in spec.programs {
            app.file(program, Path::new(program), 0o755)?;
        }
        rootfs::add_libraries(&mut app, libraries.difference(&common))?;
        let app = app.tar(provenance.epoch)?;
        tars.push(&app);

        let mut layers = Vec::new();
        for tar in tars {
            layers.push((tar.diff_id.clone(), layout.write_layer(tar)?));
        }
        let config = oci::Config {
            architecture: architecture()?.to_owned(),
            entrypoint: vec![format!("{BIN_DIR}/{}", spec.binary)],
            env: vec![
                format!("PATH={BIN_DIR}:/usr/bin"),
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_owned(),
            ],
            user: format!("{USER_ID}:{USER_ID}"),
            exposed_ports: spec.ports.to_vec(),
            labels: labels(spec, provenance),
            created: rfc3339(provenance.epoch),
        };
        let manifest = layout.write_image(&config, &layers, &provenance.version)?;
        let mut keep: Vec<&str> = layers
            .iter()
            .map(|(_, blob)| blob.digest.as_str())
            .collect();
        let config_digest = manifest_config_digest(&layout, &manifest.digest)?;
        keep.push(&config_digest);
        keep.push(&manifest.digest);
        layout.prune(&keep)?;
        built.push(Built {
            name: spec.name,
            tag: provenance.version.clone(),
            layout: layout.dir.clone(),
            digest: manifest.digest.clone(),
            compressed: layers.iter().map(|(_, blob)| blob.size).sum(),
            layers: layers.len(),
            epoch: provenance.epoch,
        });
    }
    Ok(built)
}

/// The config digest a written manifest names.
fn manifest_config_digest(layout: &oci::Layout, manifest: &str) -> Result<String> {
    let path = layout.blob_path(manifest);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    manifest["config"]["digest"]
        .as_str()
        .map(str::to_owned)
        .context("the manifest has no config digest")
}

fn labels(spec: &Spec, provenance: &Provenance) -> BTreeMap<String, String> {
    [
        ("title", spec.name.to_owned()),
        ("description", spec.description.to_owned()),
        ("source", "https://github.com/dialtone/dialtone".to_owned()),
        ("url", "https://github.com/dialtone/dialtone".to_owned()),
        ("licenses", "Apache-2.0".to_owned()),
        ("vendor", "Dialtone".to_owned()),
        ("version", provenance.version.clone()),
        ("revision", provenance.revision.clone()),
        ("created", rfc3339(provenance.epoch)),
    ]
    .into_iter()
    .map(|(key, value)| (format!("org.opencontainers.image.{key}"), value))
    .collect()
}

/// The hex SHA-256 of `bytes` (as `sha256sum` prints it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    layer::sha256(bytes)
        .trim_start_matches("sha256:")
        .to_owned()
}

/// The OCI architecture of this machine's binaries.
pub fn architecture() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        other => bail!("no OCI architecture name for {other}"),
    }
}

/// The commit the images are built from; `-dirty` when the work tree has
/// changes, so an image never claims a commit it does not match.
fn revision(root: &Path) -> Result<String> {
    let head = cmd::output(
        Command::new("git")
            .current_dir(root)
            .args(["rev-parse", "HEAD"]),
    )?;
    let status = cmd::output(Command::new("git").current_dir(root).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))?;
    let dirty = if status.trim().is_empty() {
        ""
    } else {
        "-dirty"
    };
    Ok(format!("{}{dirty}", head.trim()))
}

/// `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else the
/// commit's time.
fn epoch(root: &Path) -> Result<u64> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={epoch} is not a number of seconds"));
    }
    let time =
        cmd::output(
            Command::new("git")
                .current_dir(root)
                .args(["log", "-1", "--format=%ct"]),
        )?;
    time.trim()
        .parse()
        .with_context(|| format!("git gave the commit time {time:?}"))
}

/// Seconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let seconds = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_print_as_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_659_993), "2026-12-07T16:13:13Z");
    }
}
