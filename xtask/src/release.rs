//! `cargo xtask release`: everything a release publishes, in one folder
//! named after the workspace version: each image as an OCI archive, the
//! packaged chart, the CRD bundle, and `SHA256SUMS` over them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::cmd;
use crate::image;
use crate::testenv::build::{self, Tool};

/// Writes the release to `<target>/release-artifacts/dialtone-<version>/`
/// and returns that folder.
pub fn run(root: &Path) -> Result<PathBuf> {
    let images = image::build(root)?;
    let version = images
        .first()
        .map(|image| image.tag.clone())
        .context("no image was built")?;
    let metadata = cmd::cargo_metadata(root)?;
    let out = metadata
        .target_directory
        .join("release-artifacts")
        .join(format!("dialtone-{version}"));
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let mut files = Vec::new();
    for image in &images {
        let name = format!(
            "{}-{version}-{}.oci.tar",
            image.name,
            image::architecture()?
        );
        image.archive(&out.join(&name))?;
        files.push(name);
    }

    let (helm, _) = build::ensure(Tool::Helm)?;
    let chart = root.join("charts").join("dialtone");
    cmd::run(
        Command::new(helm)
            .arg("package")
            .arg(&chart)
            .args([
                "--version",
                &version,
                "--app-version",
                &version,
                "--destination",
            ])
            .arg(&out),
    )
    .context("packaging the chart")?;
    files.push(format!("dialtone-{version}.tgz"));

    let bundle = format!("dialtone-crds-{version}.yaml");
    fs::write(out.join(&bundle), crd_bundle(&chart.join("crds"))?)
        .with_context(|| format!("writing {bundle}"))?;
    files.push(bundle);

    files.sort();
    let mut sums = String::new();
    for name in &files {
        let bytes = fs::read(out.join(name)).with_context(|| format!("reading {name}"))?;
        let digest = image::sha256_hex(&bytes);
        sums.push_str(&format!("{digest}  {name}\n"));
        println!(
            "  {name:<44} {:>8.1} MB  sha256:{digest}",
            bytes.len() as f64 / 1e6
        );
    }
    fs::write(out.join("SHA256SUMS"), sums).context("writing SHA256SUMS")?;
    println!("release {version} written to {}", out.display());
    Ok(out)
}

/// Checks a written release the way a user would: `sha256sum -c`, skopeo
/// reading each archive, and helm reading the packaged chart.
pub fn verify(out: &Path) -> Result<()> {
    cmd::run(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(out),
    )
    .context("checking SHA256SUMS")?;
    let mut names: Vec<String> = fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", out.display()))?;
    names.sort();
    for name in &names {
        if name.ends_with(".oci.tar") {
            let reference = format!("oci-archive:{}", out.join(name).display());
            let digest = cmd::output(Command::new("skopeo").args([
                "inspect",
                "--format",
                "{{.Digest}}",
                &reference,
            ]))
            .with_context(|| format!("skopeo inspect {reference}"))?;
            println!("skopeo reads {name}: {}", digest.trim());
        } else if name.ends_with(".tgz") {
            let (helm, _) = build::ensure(Tool::Helm)?;
            let chart = cmd::output(
                Command::new(helm)
                    .args(["show", "chart"])
                    .arg(out.join(name)),
            )
            .with_context(|| format!("helm show chart {name}"))?;
            let version = chart
                .lines()
                .find(|line| line.starts_with("appVersion:"))
                .unwrap_or("appVersion: ?");
            println!("helm reads {name}: {version}");
        }
    }
    Ok(())
}

/// Every CRD of the chart in one multi-document YAML, in name order, so
/// `kubectl apply --server-side -f` upgrades them in one step.
fn crd_bundle(dir: &Path) -> Result<String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    paths.retain(|path| path.extension().is_some_and(|ext| ext == "yaml"));
    paths.sort();
    let mut bundle = String::new();
    for path in paths {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        bundle.push_str("---\n");
        bundle.push_str(text.trim_start_matches("---\n").trim_end());
        bundle.push('\n');
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_bundle_holds_every_crd_of_the_chart_once() {
        let chart = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("charts/dialtone/crds");
        let bundle = crd_bundle(&chart).unwrap();
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&bundle)
            .map(|document| {
                let value =
                    <serde_yaml::Value as serde::Deserialize>::deserialize(document).unwrap();
                value["spec"]["names"]["kind"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Agent",
                "Campaign",
                "ClusterProvider",
                "Objective",
                "Provider",
                "Tenant"
            ]
        );
    }
}
