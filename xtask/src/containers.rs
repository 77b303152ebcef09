//! The images, run for real: unpacked by umoci and started by runc (both
//! Debian's) the way a kubelet's runtime would start them: read-only root,
//! the image's non-root user, no capabilities, no new privileges. They share
//! the host's network so they reach the test environment on loopback.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::cmd;
use crate::image::{self, Built};
use crate::testenv::debian::{self, Package};
use crate::testenv::run;

const TOOLS: [Package; 3] = [
    Package {
        name: "runc",
        probe: "/usr/sbin/runc",
    },
    Package {
        name: "umoci",
        probe: "/usr/bin/umoci",
    },
    Package {
        name: "skopeo",
        probe: "/usr/bin/skopeo",
    },
];

/// Installs runc, umoci and skopeo when they are missing.
pub fn ensure_tools() -> Result<()> {
    debian::ensure(&TOOLS, "running the images")
}

/// What a container gets besides its image.
#[derive(Default)]
pub struct Run {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `(host path, container path)`, read-only.
    pub binds: Vec<(PathBuf, String)>,
    /// Writable, memory-backed directories (the chart's `emptyDir`s).
    pub scratch: Vec<String>,
}

/// The runtime spec umoci wrote for the image, changed for `run`: the
/// host's network, a read-only root, no capabilities, the mounts.
pub fn runtime_spec(mut spec: Value, run: &Run) -> Result<Value> {
    let process = spec
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .context("the runtime spec has no process")?;
    let mut args: Vec<Value> = process
        .get("args")
        .and_then(Value::as_array)
        .cloned()
        .context("the image has no entrypoint")?;
    args.extend(run.args.iter().map(|arg| json!(arg)));
    process.insert("args".into(), json!(args));
    process.insert("terminal".into(), json!(false));
    process.insert("noNewPrivileges".into(), json!(true));
    process.insert(
        "capabilities".into(),
        json!({"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []}),
    );
    let env = process
        .entry("env")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .context("the process env is not a list")?;
    env.extend(
        run.env
            .iter()
            .map(|(name, value)| json!(format!("{name}={value}"))),
    );
    spec["root"]["readonly"] = json!(true);
    let namespaces = spec["linux"]["namespaces"]
        .as_array_mut()
        .context("the runtime spec has no namespaces")?;
    namespaces.retain(|namespace| namespace["type"] != "network");
    let mounts = spec["mounts"]
        .as_array_mut()
        .context("the runtime spec has no mounts")?;
    for (host, inside) in &run.binds {
        mounts.push(json!({
            "destination": inside,
            "type": "bind",
            "source": host,
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }));
    }
    for inside in &run.scratch {
        mounts.push(json!({
            "destination": inside,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", "size=64m"],
        }));
    }
    Ok(spec)
}

/// A running container; stopped (SIGTERM, then SIGKILL) and deleted when
/// dropped.
pub struct Container {
    id: String,
    child: Child,
    pub log: PathBuf,
}

/// Unpacks `image` under `dir` and writes its runtime spec for `run`.
fn bundle(image: &Built, dir: &Path, run: &Run) -> Result<PathBuf> {
    let bundle = dir.join(image.name);
    if bundle.exists() {
        fs::remove_dir_all(&bundle).with_context(|| format!("removing {}", bundle.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    cmd::output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(image.reference())
            .arg(&bundle),
    )
    .with_context(|| format!("unpacking {}", image.name))?;
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let spec =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let spec = runtime_spec(spec, run)?;
    fs::write(&path, spec.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(bundle)
}

impl Container {
    /// Starts `image` as container `id`, its output in `<dir>/<id>.log`.
    pub fn start(image: &Built, dir: &Path, id: &str, run: &Run) -> Result<Container> {
        let bundle = bundle(image, dir, run)?;
        let _ = Command::new("runc")
            .args(["delete", "--force", id])
            .stderr(Stdio::null())
            .status();
        let log = dir.join(format!("{id}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting runc")?;
        Ok(Container {
            id: id.to_owned(),
            child,
            log,
        })
    }

    /// Fails when the container has exited.
    pub fn running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking runc")? {
            bail!(
                "container {} exited ({status}); its output:\n{}",
                self.id,
                run::log_tail(&self.log, 30)
            );
        }
        Ok(())
    }

    /// Waits for the container to exit; returns its output.
    pub fn wait(mut self, timeout: Duration) -> Result<String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("checking runc")? {
                let output = fs::read_to_string(&self.log).unwrap_or_default();
                if !status.success() {
                    bail!("container {} failed ({status}):\n{output}", self.id);
                }
                return Ok(output);
            }
            if started.elapsed() > timeout {
                bail!("container {} still running after {timeout:?}", self.id);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; returns how long the
    /// stop took.
    pub fn stop(mut self, grace: Duration) -> Result<Duration> {
        let started = Instant::now();
        let _ = Command::new("runc")
            .args(["kill", &self.id, "TERM"])
            .stderr(Stdio::null())
            .status();
        while started.elapsed() < grace {
            if self.child.try_wait().context("checking runc")?.is_some() {
                return Ok(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "container {} did not stop within {grace:?} of SIGTERM; its output:\n{}",
            self.id,
            run::log_tail(&self.log, 30)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("runc")
                .args(["kill", &self.id, "KILL"])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.wait();
        }
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

/// `skopeo inspect` of every image: it must read the layout, and the
/// config must say what we built (non-root user, the revision label).
pub fn inspect(images: &[Built]) -> Result<()> {
    for built in images {
        let reference = format!("oci:{}", built.reference());
        let text = cmd::output(Command::new("skopeo").args(["inspect", "--config", &reference]))
            .with_context(|| format!("skopeo inspect {reference}"))?;
        let config: Value = serde_json::from_str(&text).context("parsing skopeo's output")?;
        let user = config["config"]["User"].as_str().unwrap_or_default();
        let expected_user = format!("{0}:{0}", image::USER_ID);
        if user != expected_user {
            bail!("{} runs as {user:?}, not {expected_user}", built.name);
        }
        let labels = &config["config"]["Labels"];
        let revision = labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap_or_default();
        if revision.len() < 40 {
            bail!("{} has no revision label", built.name);
        }
        let layers = config["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
        println!(
            "{:<18} user {user}, {layers} layers, revision {}, entrypoint {}",
            built.name,
            &revision[..12],
            config["config"]["Entrypoint"]
        );
    }
    Ok(())
}

/// Twilio's request signature: base64 HMAC-SHA1 of the URL followed by the
/// form's keys and values in key order.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> Result<String> {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes())
        .context("a Twilio auth token of any length is an HMAC key")?;
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Waits for `GET path` on `port` to answer 200 while the container runs.
pub fn wait_http(
    container: &mut Container,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    loop {
        container.running()?;
        if matches!(cmd::http_get(port, path), Ok((200, _))) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("{path} on port {port} did not answer 200 within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umoci_spec() -> Value {
        json!({
            "process": {"args": ["/usr/local/bin/dialtone"], "env": ["PATH=/usr/local/bin"],
                        "user": {"uid": 65532, "gid": 65532},
                        "capabilities": {"bounding": ["CAP_KILL"]}},
            "root": {"path": "rootfs"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
        })
    }

    #[test]
    fn the_spec_is_locked_down_and_on_the_host_network() {
        let run = Run {
            args: vec!["validate".into(), "/examples".into()],
            env: vec![("RUST_LOG".into(), "info".into())],
            binds: vec![(PathBuf::from("/work/examples"), "/examples".into())],
            scratch: vec!["/var/lib/dialtone".into()],
        };
        let spec = runtime_spec(umoci_spec(), &run).unwrap();
        assert_eq!(
            spec["process"]["args"],
            json!(["/usr/local/bin/dialtone", "validate", "/examples"])
        );
        assert_eq!(spec["root"]["readonly"], json!(true));
        assert_eq!(spec["process"]["noNewPrivileges"], json!(true));
        assert_eq!(spec["process"]["capabilities"]["bounding"], json!([]));
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "mount"}])
        );
        assert_eq!(spec["process"]["env"][1], json!("RUST_LOG=info"));
        let mounts = spec["mounts"].as_array().unwrap();
        assert_eq!(mounts[1]["options"][1], json!("ro"));
        assert_eq!(mounts[2]["type"], json!("tmpfs"));
    }

    #[test]
    fn twilio_signatures_match_twilios_documented_example() {
        // The worked example of Twilio's "Webhooks security" guide, its
        // parameters deliberately out of order.
        let params = [
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ];
        let signature = twilio_signature(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
        )
        .unwrap();
        assert_eq!(signature, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }
}
