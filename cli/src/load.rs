//! Loading Kubernetes YAML: files and directories, multi-document files,
//! Dialtone kinds typed, everything else skipped.

use std::path::{Path, PathBuf};

use dialtone_crds::{Agent, ClusterProvider, Objective, Provider, Tenant};
use serde::Deserialize;

/// Why the input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path that cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory reached again inside itself, through a symlink.
    #[error("{path}: symlink loop (it is {ancestor}, which contains it)")]
    SymlinkLoop {
        /// The path that leads back.
        path: String,
        /// The directory it leads back to.
        ancestor: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A Dialtone resource found in the input.
#[derive(Clone, Debug)]
pub enum Resource {
    /// A Tenant.
    Tenant(Box<Tenant>),
    /// A Provider.
    Provider(Box<Provider>),
    /// A ClusterProvider.
    ClusterProvider(Box<ClusterProvider>),
    /// An Objective.
    Objective(Box<Objective>),
    /// An Agent.
    Agent(Box<Agent>),
}

/// A resource and where it came from.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The file it was read from.
    pub file: String,
    /// The typed resource.
    pub resource: Resource,
}

impl Doc {
    /// `Kind/namespace/name` (or `Kind/name` for cluster-scoped kinds).
    pub fn id(&self) -> String {
        let (kind, meta) = match &self.resource {
            Resource::Tenant(r) => ("Tenant", &r.metadata),
            Resource::Provider(r) => ("Provider", &r.metadata),
            Resource::ClusterProvider(r) => ("ClusterProvider", &r.metadata),
            Resource::Objective(r) => ("Objective", &r.metadata),
            Resource::Agent(r) => ("Agent", &r.metadata),
        };
        let name = meta.name.as_deref().unwrap_or("<unnamed>");
        match &meta.namespace {
            Some(ns) => format!("{kind}/{ns}/{name}"),
            None => format!("{kind}/{name}"),
        }
    }
}

/// A problem reading one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocError {
    /// The file.
    pub file: String,
    /// `document N` or the resource id.
    pub resource: String,
    /// What went wrong.
    pub message: String,
}

/// Everything read from the given paths.
#[derive(Debug, Default)]
pub struct Set {
    /// Dialtone resources, in file order.
    pub docs: Vec<Doc>,
    /// Documents that could not be read.
    pub errors: Vec<DocError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// YAML files under `paths` (directories recursively, in name order).
fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// Adds the YAML files under `path` to `out`. `walking` holds the real
/// paths of the directories being walked: meeting one of them again means
/// a symlink loops back, and following it would never end.
fn collect(
    path: &Path,
    walking: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> Result<(), LoadError> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let real = std::fs::canonicalize(path).map_err(io_error(path))?;
    if walking.contains(&real) {
        return Err(LoadError::SymlinkLoop {
            path: path.display().to_string(),
            ancestor: real.display().to_string(),
        });
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io_error(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|e| e.is_dir() || e.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    entries.sort();
    walking.push(real);
    for entry in entries {
        collect(&entry, walking, out)?;
    }
    walking.pop();
    Ok(())
}

/// Reads every Dialtone resource under `paths`.
pub fn load(paths: &[PathBuf]) -> Result<Set, LoadError> {
    let mut set = Set::default();
    for file in files(paths)? {
        let text = std::fs::read_to_string(&file).map_err(io_error(&file))?;
        read_docs(&file, &text, &mut set);
    }
    Ok(set)
}

fn read_docs(file: &Path, text: &str, set: &mut Set) {
    let name = file.display().to_string();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let position = format!("document {}", i + 1);
        let value = match serde_yaml::Value::deserialize(doc) {
            Ok(serde_yaml::Value::Null) => continue,
            Ok(v) => v,
            Err(e) => {
                set.errors.push(DocError {
                    file: name.clone(),
                    resource: position,
                    message: format!("not YAML: {e}"),
                });
                // A syntax error ends the stream; later documents are unreadable.
                break;
            }
        };
        let Ok(header) = serde_yaml::from_value::<Header>(value.clone()) else {
            continue;
        };
        if !header.api_version.starts_with("dialtone.io/") {
            continue;
        }
        let typed = match header.kind.as_str() {
            "Tenant" => serde_yaml::from_value(value).map(|r| Resource::Tenant(Box::new(r))),
            "Provider" => serde_yaml::from_value(value).map(|r| Resource::Provider(Box::new(r))),
            "ClusterProvider" => {
                serde_yaml::from_value(value).map(|r| Resource::ClusterProvider(Box::new(r)))
            }
            "Objective" => serde_yaml::from_value(value).map(|r| Resource::Objective(Box::new(r))),
            "Agent" => serde_yaml::from_value(value).map(|r| Resource::Agent(Box::new(r))),
            // Campaigns are not part of validation or tests yet.
            _ => continue,
        };
        match typed {
            Ok(resource) => set.docs.push(Doc {
                file: name.clone(),
                resource,
            }),
            Err(e) => set.errors.push(DocError {
                file: name.clone(),
                resource: format!("{position} ({})", header.kind),
                message: format!("does not match the {} schema: {e}", header.kind),
            }),
        }
    }
}

impl Set {
    /// Tenants in the set.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.docs.iter().filter_map(|d| match &d.resource {
            Resource::Tenant(t) => Some(t.as_ref()),
            _ => None,
        })
    }

    /// Objectives with their file.
    pub fn objectives(&self) -> impl Iterator<Item = (&str, &Objective)> {
        self.docs.iter().filter_map(|d| match &d.resource {
            Resource::Objective(o) => Some((d.file.as_str(), o.as_ref())),
            _ => None,
        })
    }

    /// Agents with their file.
    pub fn agents(&self) -> impl Iterator<Item = (&str, &Agent)> {
        self.docs.iter().filter_map(|d| match &d.resource {
            Resource::Agent(a) => Some((d.file.as_str(), a.as_ref())),
            _ => None,
        })
    }

    /// Providers.
    pub fn providers(&self) -> Vec<&Provider> {
        self.docs
            .iter()
            .filter_map(|d| match &d.resource {
                Resource::Provider(p) => Some(p.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// ClusterProviders.
    pub fn cluster_providers(&self) -> Vec<&ClusterProvider> {
        self.docs
            .iter()
            .filter_map(|d| match &d.resource {
                Resource::ClusterProvider(p) => Some(p.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// The Tenant owning `namespace`.
    pub fn tenant_for(&self, namespace: &str) -> Option<&Tenant> {
        self.tenants().find(|t| t.namespace_name() == namespace)
    }

    /// The file a resource id came from.
    pub fn file_of(&self, id: &str) -> Option<&str> {
        self.docs
            .iter()
            .find(|d| d.id() == id)
            .map(|d| d.file.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "apiVersion: dialtone.io/v1alpha1\nkind: Tenant\nmetadata: {name: acme}\n\
                          spec: {displayName: Acme, profile: {timezone: UTC}}\n";

    fn scratch(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dialtone-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("creates a temp dir");
        dir
    }

    #[test]
    fn a_symlink_loop_ends_the_walk_with_an_error() {
        let dir = scratch("symlink-loop");
        let nested = dir.join("tenants");
        std::fs::create_dir(&nested).expect("creates a dir");
        std::fs::write(nested.join("acme.yaml"), TENANT).expect("writes");
        std::os::unix::fs::symlink(&dir, nested.join("back-up")).expect("links");

        let err = load(std::slice::from_ref(&dir)).expect_err("a loop");
        let message = err.to_string();
        assert!(
            matches!(&err, LoadError::SymlinkLoop { path, .. } if path.ends_with("tenants/back-up")),
            "{message}"
        );
        assert!(message.contains("symlink loop"), "{message}");
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn a_symlink_to_a_directory_elsewhere_is_followed() {
        let dir = scratch("symlink-elsewhere");
        let shared = scratch("symlink-target");
        std::fs::write(shared.join("acme.yaml"), TENANT).expect("writes");
        std::os::unix::fs::symlink(&shared, dir.join("shared")).expect("links");

        let set = load(std::slice::from_ref(&dir)).expect("loads");
        assert_eq!(set.tenants().count(), 1);
        for d in [dir, shared] {
            std::fs::remove_dir_all(d).expect("cleans up");
        }
    }
}
