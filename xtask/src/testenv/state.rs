//! `<testenv>/state.json`: the ports chosen at `up` and the processes started.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::run::Record;
use crate::cmd;

/// Loopback ports, chosen free at the first `up` and kept while free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub etcd: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub kwok: u16,
    pub postgres: u16,
    /// Absent from environments brought up before Prometheus joined.
    #[serde(default)]
    pub prometheus: u16,
}

impl Ports {
    fn all(&self) -> [u16; 8] {
        [
            self.etcd,
            self.etcd_peer,
            self.apiserver,
            self.controller_manager,
            self.scheduler,
            self.kwok,
            self.postgres,
            self.prometheus,
        ]
    }

    pub fn fresh() -> Result<Self> {
        let p = cmd::free_ports(8)?;
        Ok(Self {
            etcd: p[0],
            etcd_peer: p[1],
            apiserver: p[2],
            controller_manager: p[3],
            scheduler: p[4],
            kwok: p[5],
            postgres: p[6],
            prometheus: p[7],
        })
    }

    /// True when every port is set and nothing listens on any of them.
    pub fn all_free(&self) -> bool {
        self.all()
            .iter()
            .all(|&port| port != 0 && !cmd::port_open(port))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub ports: Ports,
    /// Component name -> the process running it.
    pub processes: BTreeMap<String, Record>,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        match fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).context("serialising the state")?;
        fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }
}
