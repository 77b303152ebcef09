//! Provider credentials, read from a mounted Secret volume.
//!
//! The voice pods mount each provider's Secret at
//! `<credentials-dir>/<namespace>/<provider-name>/` (ClusterProviders under
//! `_cluster/` instead of a namespace), projected so that every file is named
//! by the key the vendor needs (`apiKey`, `accountSid`, `authToken`,
//! `signingSecret`) whatever the Secret itself calls it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use dialtone_crds::agent::ProviderKind;
use dialtone_engine::config::ProviderConfig;

/// The directory ClusterProvider credentials are mounted under, next to
/// one directory per tenant namespace. A namespace name cannot hold `_`
/// (RFC 1123), so no tenant can name a namespace that reads or overwrites
/// the platform's credentials (it could with `cluster`).
pub const CLUSTER_DIR: &str = "_cluster";

/// Secret values of one provider, by key. `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    provider: String,
    values: BTreeMap<String, String>,
}

/// Why credentials could not be read. Names files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A key the vendor needs has no file.
    #[error("credential file {} of provider {provider:?} is missing", .path.display())]
    Missing {
        /// The provider.
        provider: String,
        /// The file that should hold the key.
        path: PathBuf,
    },
    /// The file exists but holds nothing.
    #[error("credential file {} of provider {provider:?} is empty", .path.display())]
    Empty {
        /// The provider.
        provider: String,
        /// The empty file.
        path: PathBuf,
    },
    /// The file could not be read, or is not UTF-8.
    #[error("credential file {} of provider {provider:?} cannot be read: {reason}", .path.display())]
    Unreadable {
        /// The provider.
        provider: String,
        /// The file.
        path: PathBuf,
        /// The I/O error kind or "not UTF-8"; never the contents.
        reason: String,
    },
    /// A name would leave the credentials directory.
    #[error("{what} {name:?} is not a valid directory name for credentials")]
    InvalidName {
        /// `namespace` or `provider`.
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// A key was asked for that was not loaded.
    #[error("provider {provider:?} has no credential {key:?}")]
    NoSuchKey {
        /// The provider.
        provider: String,
        /// The key.
        key: String,
    },
}

impl Credentials {
    /// Reads the keys `cfg`'s vendor needs
    /// (`Vendor::required_secret_keys`) from
    /// `<dir>/<namespace or "_cluster">/<cfg.name>/<key>`, dropping one
    /// trailing newline. Vendors that need none (builtin, sip) read nothing.
    /// The files are small and on a tmpfs, so this reads synchronously.
    pub fn load(
        dir: &Path,
        cfg: &ProviderConfig,
        namespace: &str,
    ) -> Result<Credentials, CredentialsError> {
        let keys = cfg.vendor.required_secret_keys();
        let mut creds = Credentials {
            provider: cfg.name.clone(),
            values: BTreeMap::new(),
        };
        if keys.is_empty() {
            return Ok(creds);
        }
        let scope = match cfg.kind {
            ProviderKind::ClusterProvider => CLUSTER_DIR,
            ProviderKind::Provider => namespace,
        };
        check_name("namespace", scope)?;
        check_name("provider", &cfg.name)?;
        let base = dir.join(scope).join(&cfg.name);
        for key in keys {
            let path = base.join(key);
            let value = read_value(&cfg.name, &path)?;
            creds.values.insert((*key).to_owned(), value);
        }
        Ok(creds)
    }

    /// Credentials for a provider from values in memory (tests, the CLI).
    pub fn from_values<K, V>(
        provider: impl Into<String>,
        values: impl IntoIterator<Item = (K, V)>,
    ) -> Credentials
    where
        K: Into<String>,
        V: Into<String>,
    {
        Credentials {
            provider: provider.into(),
            values: values
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `key`, if loaded.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key`, or an error naming the provider and key.
    pub fn require(&self, key: &str) -> Result<&str, CredentialsError> {
        self.get(key).ok_or_else(|| CredentialsError::NoSuchKey {
            provider: self.provider.clone(),
            key: key.to_owned(),
        })
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), CredentialsError> {
    // Kubernetes names never contain these; refusing them keeps a bad
    // config from reading files outside the mount.
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(CredentialsError::InvalidName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn read_value(provider: &str, path: &Path) -> Result<String, CredentialsError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CredentialsError::Missing {
            provider: provider.to_owned(),
            path: path.to_owned(),
        },
        kind => CredentialsError::Unreadable {
            provider: provider.to_owned(),
            path: path.to_owned(),
            reason: kind.to_string(),
        },
    })?;
    let text = String::from_utf8(bytes).map_err(|_| CredentialsError::Unreadable {
        provider: provider.to_owned(),
        path: path.to_owned(),
        reason: "not UTF-8".to_owned(),
    })?;
    // `kubectl create secret --from-file` keeps the newline editors add.
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(CredentialsError::Empty {
            provider: provider.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(value.to_owned())
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("provider", &self.provider)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("values", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_keys_not_values() {
        let c = Credentials::from_values("dg", [("apiKey", "sekrit-value")]);
        let shown = format!("{c:?}");
        assert!(shown.contains("apiKey") && shown.contains("dg"), "{shown}");
        assert!(!shown.contains("sekrit-value"), "{shown}");
        assert_eq!(c.get("apiKey"), Some("sekrit-value"));
        let err = c.require("authToken").unwrap_err().to_string();
        assert_eq!(err, "provider \"dg\" has no credential \"authToken\"");
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b"] {
            assert!(check_name("provider", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("provider", "deepgram-main").is_ok());
    }
}
