//! Command lines and readiness checks of the Kubernetes components, and the
//! fake Nodes kwok manages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::build::{self, Tool};
use super::certs::Pki;
use super::run::Launch;
use super::state::Ports;
use crate::cmd;

/// The annotation kwok selects its Nodes by.
const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node=fake";
pub const FAKE_NODES: [&str; 2] = ["kwok-node-0", "kwok-node-1"];

/// Service ClusterIPs. Wide enough for the convergence benchmark, which
/// creates a Service per dedicated Agent twice over (operator and floor).
pub const SERVICE_RANGE: &str = "10.96.0.0/16";
/// Pod IPs kwok hands out: outside the Service range.
const POD_RANGE: &str = "10.244.0.0/16";
/// What each fake Node offers the scheduler: room for the benchmarks'
/// thousands of pods (2,500 at 100m CPU and 128Mi each fit one Node).
const PODS_PER_NODE: u32 = 2500;
const CPU_PER_NODE: &str = "500";
const MEMORY_PER_NODE: &str = "1Ti";

/// What etcd's data depends on: the Service range is fixed in the default
/// ServiceCIDR and the Nodes' capacity in their status when first created,
/// so data written under other values must be started afresh.
pub fn etcd_layout() -> String {
    format!(
        "service-range={SERVICE_RANGE} node-capacity=pods:{PODS_PER_NODE},cpu:{CPU_PER_NODE},memory:{MEMORY_PER_NODE}\n"
    )
}

/// Paths every component needs.
pub struct Layout<'a> {
    pub dir: &'a Path,
    pub pki: &'a Pki,
    pub kubeconfig: &'a Path,
}

impl Layout<'_> {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }
}

fn path_arg(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

pub fn etcd(layout: &Layout<'_>, ports: &Ports) -> Result<Launch> {
    let client = format!("http://127.0.0.1:{}", ports.etcd);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    Ok(Launch {
        program: Tool::Etcd.path()?,
        args: vec![
            "--name=dialtone".into(),
            path_arg("data-dir", &layout.dir.join("etcd")),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=dialtone={peer}"),
            // Test data: speed over durability.
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
        log: layout.log("etcd"),
        run_as: None,
        env: Vec::new(),
    })
}

pub fn apiserver(layout: &Layout<'_>, ports: &Ports) -> Result<Launch> {
    let pki = layout.pki;
    Ok(Launch {
        program: Tool::KubeApiserver.path()?,
        args: vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.apiserver),
            path_arg("cert-dir", &layout.dir.join("certs")),
            path_arg("tls-cert-file", &pki.serving_cert),
            path_arg("tls-private-key-file", &pki.serving_key),
            path_arg("client-ca-file", &pki.ca_cert),
            "--authorization-mode=Node,RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            path_arg("service-account-key-file", &pki.sa_pub),
            path_arg("service-account-signing-key-file", &pki.sa_key),
            format!("--service-cluster-ip-range={SERVICE_RANGE}"),
            "--allow-privileged=true".into(),
            // Nothing to reconcile the `kubernetes` Service's endpoints to:
            // loopback addresses are not valid endpoints.
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
        ],
        log: layout.log("kube-apiserver"),
        run_as: None,
        env: Vec::new(),
    })
}

pub fn controller_manager(layout: &Layout<'_>, ports: &Ports) -> Result<Launch> {
    let pki = layout.pki;
    Ok(Launch {
        program: Tool::KubeControllerManager.path()?,
        args: vec![
            path_arg("kubeconfig", layout.kubeconfig),
            path_arg("authentication-kubeconfig", layout.kubeconfig),
            path_arg("authorization-kubeconfig", layout.kubeconfig),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.controller_manager),
            path_arg("cert-dir", &layout.dir.join("certs").join("controller-manager")),
            "--leader-elect=false".into(),
            // Everything on by default except the controllers that need a cloud.
            "--controllers=*,-cloud-node-lifecycle-controller,-service-lb-controller,-node-route-controller"
                .into(),
            path_arg("service-account-private-key-file", &pki.sa_key),
            path_arg("root-ca-file", &pki.ca_cert),
            path_arg("cluster-signing-cert-file", &pki.ca_cert),
            path_arg("cluster-signing-key-file", &pki.ca_key),
            format!("--service-cluster-ip-range={SERVICE_RANGE}"),
            "--use-service-account-credentials=true".into(),
        ],
        log: layout.log("kube-controller-manager"),
        run_as: None,
        env: Vec::new(),
    })
}

pub fn scheduler(layout: &Layout<'_>, ports: &Ports) -> Result<Launch> {
    Ok(Launch {
        program: Tool::KubeScheduler.path()?,
        args: vec![
            path_arg("kubeconfig", layout.kubeconfig),
            path_arg("authentication-kubeconfig", layout.kubeconfig),
            path_arg("authorization-kubeconfig", layout.kubeconfig),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", ports.scheduler),
            path_arg("cert-dir", &layout.dir.join("certs").join("scheduler")),
            "--leader-elect=false".into(),
        ],
        log: layout.log("kube-scheduler"),
        run_as: None,
        env: Vec::new(),
    })
}

pub fn kwok(layout: &Layout<'_>, ports: &Ports) -> Result<Launch> {
    let stages = build::kwok_stage_files()?
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(Launch {
        program: Tool::Kwok.path()?,
        args: vec![
            format!("--config={stages}"),
            path_arg("kubeconfig", layout.kubeconfig),
            "--manage-all-nodes=false".into(),
            format!("--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}"),
            format!("--server-address=127.0.0.1:{}", ports.kwok),
            format!("--cidr={POD_RANGE}"),
            "--node-ip=127.0.0.1".into(),
            // Renew node Leases (the heartbeat-with-lease stage relies on
            // them); without this flag kwok leaves leases off and the node
            // lifecycle controller marks the nodes unreachable.
            "--node-lease-duration-seconds=40".into(),
        ],
        log: layout.log("kwok"),
        run_as: None,
        env: Vec::new(),
    })
}

/// A `kubectl` command using the environment's kubeconfig.
pub fn kubectl(kubeconfig: &Path) -> Result<Command> {
    let mut command = Command::new(Tool::Kubectl.path()?);
    command.arg(format!("--kubeconfig={}", kubeconfig.display()));
    Ok(command)
}

/// True when the apiserver answers `/readyz` with `ok`.
pub fn apiserver_ready(kubeconfig: &Path) -> Result<bool> {
    let mut command = kubectl(kubeconfig)?;
    command.args(["get", "--raw=/readyz", "--request-timeout=3s"]);
    Ok(cmd::output(&mut command).is_ok_and(|body| body.trim() == "ok"))
}

/// Creates (server-side apply, idempotent) the fake Nodes kwok manages and
/// waits until they are Ready.
pub fn ensure_nodes(kubeconfig: &Path, timeout: Duration) -> Result<()> {
    let manifest: String = FAKE_NODES.iter().map(|name| node_manifest(name)).collect();
    cmd::run_with_stdin(
        kubectl(kubeconfig)?.args([
            "apply",
            "--server-side",
            "--field-manager=dialtone-testenv",
            "-f",
            "-",
        ]),
        manifest.as_bytes(),
    )
    .context("creating the fake nodes")?;
    let timeout_arg = format!("--timeout={}s", timeout.as_secs());
    let mut wait = kubectl(kubeconfig)?;
    wait.args([
        "wait",
        "--for=condition=Ready",
        "node",
        "--all",
        &timeout_arg,
    ]);
    cmd::output(&mut wait).context(
        "waiting for the fake nodes to become Ready (is kwok running? see logs/kwok.log)",
    )?;
    Ok(())
}

/// A fake Node as kwok documents it, without the NoSchedule taint: every
/// node here is fake, so ordinary workloads must schedule onto them.
fn node_manifest(name: &str) -> String {
    format!(
        "---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    node.alpha.kubernetes.io/ttl: \"0\"
    kwok.x-k8s.io/node: fake
  labels:
    beta.kubernetes.io/arch: amd64
    beta.kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
    type: kwok
status:
  allocatable:
    cpu: \"{CPU_PER_NODE}\"
    memory: {MEMORY_PER_NODE}
    pods: \"{PODS_PER_NODE}\"
  capacity:
    cpu: \"{CPU_PER_NODE}\"
    memory: {MEMORY_PER_NODE}
    pods: \"{PODS_PER_NODE}\"
  nodeInfo:
    architecture: amd64
    kubeProxyVersion: fake
    kubeletVersion: fake
    operatingSystem: linux
  phase: Running
"
    )
}
