//! The OCI image layout (image-spec v1.1): content-addressed blobs, the
//! image config, the manifest and an `index.json` naming it by tag, which
//! skopeo, umoci, crane, containerd and registries accept as they are.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use super::layer::{self, Tar};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The annotation that names a manifest in `index.json` (its tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What the image runs and says about itself.
pub struct Config {
    pub architecture: String,
    pub entrypoint: Vec<String>,
    pub env: Vec<String>,
    /// `uid:gid`.
    pub user: String,
    pub exposed_ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, the commit's time.
    pub created: String,
}

/// A descriptor of a blob written to the layout.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: &'static str,
    pub digest: String,
    pub size: u64,
}

impl Blob {
    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An OCI image layout directory holding one image.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn create(dir: &Path) -> Result<Layout> {
        fs::create_dir_all(dir.join("blobs").join("sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        fs::write(
            dir.join("oci-layout"),
            json!({"imageLayoutVersion": "1.0.0"}).to_string(),
        )
        .with_context(|| format!("writing {}/oci-layout", dir.display()))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs")
            .join("sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn write_blob(&self, media_type: &'static str, bytes: &[u8]) -> Result<Blob> {
        let digest = layer::sha256(bytes);
        let path = self.blob_path(&digest);
        if !path.is_file() {
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(Blob {
            media_type,
            digest,
            size: bytes.len() as u64,
        })
    }

    /// Writes a layer's compressed blob, reusing the one already written for
    /// the same tar (compression is the slow part and its output is fixed).
    pub fn write_layer(&self, tar: &Tar) -> Result<Blob> {
        let memo = self
            .dir
            .join("diff-ids")
            .join(tar.diff_id.replace(':', "-"));
        if let Ok(digest) = fs::read_to_string(&memo) {
            let path = self.blob_path(digest.trim());
            if let Ok(meta) = fs::metadata(&path) {
                return Ok(Blob {
                    media_type: LAYER,
                    digest: digest.trim().to_owned(),
                    size: meta.len(),
                });
            }
        }
        let blob = self.write_blob(LAYER, &layer::gzip(&tar.bytes)?)?;
        if let Some(dir) = memo.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        fs::write(&memo, &blob.digest).with_context(|| format!("writing {}", memo.display()))?;
        Ok(blob)
    }

    /// Writes the config and manifest of an image made of `layers` (diff
    /// ids beside their blobs, base first) and names it `tag` in
    /// `index.json`, replacing whatever the layout held. Returns the
    /// manifest's descriptor.
    pub fn write_image(
        &self,
        config: &Config,
        layers: &[(String, Blob)],
        tag: &str,
    ) -> Result<Blob> {
        let exposed: BTreeMap<String, Value> = config
            .exposed_ports
            .iter()
            .map(|port| (format!("{port}/tcp"), json!({})))
            .collect();
        let config_json = json!({
            "created": config.created,
            "architecture": config.architecture,
            "os": "linux",
            "config": {
                "User": config.user,
                "Entrypoint": config.entrypoint,
                "Env": config.env,
                "WorkingDir": "/",
                "ExposedPorts": exposed,
                "Labels": config.labels,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|(diff_id, _)| diff_id).collect::<Vec<_>>(),
            },
            "history": layers.iter().map(|_| json!({
                "created": config.created,
                "created_by": "cargo xtask image",
            })).collect::<Vec<_>>(),
        });
        let config_blob = self.write_blob(CONFIG, config_json.to_string().as_bytes())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config_blob.descriptor(),
            "layers": layers.iter().map(|(_, blob)| blob.descriptor()).collect::<Vec<_>>(),
            "annotations": config.labels,
        });
        let manifest_blob = self.write_blob(MANIFEST, manifest.to_string().as_bytes())?;
        let mut descriptor = manifest_blob.descriptor();
        descriptor["platform"] = json!({"architecture": config.architecture, "os": "linux"});
        descriptor["annotations"] = json!({ REF_NAME: tag });
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor],
        });
        let path = self.dir.join("index.json");
        fs::write(&path, index.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(manifest_blob)
    }

    /// The layout as one tar (skopeo's `oci-archive:`), its entries in the
    /// same fixed order, owner and time as the layers.
    pub fn archive(&self, path: &Path, epoch: u64) -> Result<()> {
        let mut archive = super::layer::Layer::default();
        for name in ["oci-layout", "index.json"] {
            archive.file(name, &self.dir.join(name), 0o644)?;
        }
        let blobs = self.dir.join("blobs").join("sha256");
        for entry in fs::read_dir(&blobs).with_context(|| format!("reading {}", blobs.display()))? {
            let entry = entry.with_context(|| format!("reading {}", blobs.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            archive.file(&format!("blobs/sha256/{name}"), &entry.path(), 0o644)?;
        }
        let tar = archive.tar(epoch)?;
        fs::write(path, tar.bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// Removes blobs no longer referenced by the image just written, so the
    /// layout does not grow with every build.
    pub fn prune(&self, keep: &[&str]) -> Result<()> {
        let dir = self.dir.join("blobs").join("sha256");
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep
                .iter()
                .any(|digest| digest.trim_start_matches("sha256:") == name)
            {
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
        Ok(())
    }
}
