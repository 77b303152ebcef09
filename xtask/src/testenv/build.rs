//! Builds the environment's binaries from the Go module proxy at pinned
//! versions and caches them in `<cache>/bin/<tool>-<version>/`.
//!
//! Every build goes into a temporary directory that is renamed into place
//! only when complete, so an interrupted build is never taken for a cached
//! one. Throwaway Go modules live in `<cache>/build/`.
//!
//! Besides upstream commands, the project builds small Go programs of its own
//! (`xtask/go/<name>/main.go`) against pinned modules; their cache directory
//! carries a hash of the source, so an edited program is rebuilt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cmd::{self, human};
use crate::paths;

pub const KUBERNETES_VERSION: &str = "v1.35.4";
pub const ETCD_VERSION: &str = "v3.6.5";
pub const KWOK_VERSION: &str = "v0.8.0";
pub const HELM_VERSION: &str = "v3.22.0";
pub const KUBECONFORM_VERSION: &str = "v0.7.0";
/// Prometheus tags its Go module v0.3xx.y for release 3.xx.y. v0.316.0
/// needs pseudo-versions the module proxy refuses (403), so 3.15.
pub const PROMETHEUS_VERSION: &str = "v0.315.0";
/// The Lua interpreter Argo CD embeds for resource health checks.
pub const GOPHER_LUA_VERSION: &str = "v1.1.1";
/// The YAML-to-JSON decoder Argo CD's health-check tests read fixtures with.
pub const SIGS_YAML_VERSION: &str = "v1.6.0";
/// controller-gen, which generates the Prometheus Operator's CRDs from its
/// API types (used by `cargo xtask vendor-schemas` only).
pub const CONTROLLER_TOOLS_VERSION: &str = "v0.23.0";

/// A fixed build date keeps the Kubernetes binaries reproducible.
const KUBERNETES_BUILD_DATE: &str = "2026-01-01T00:00:00Z";

/// The kwok Stage files (from the kwok module itself) that make fake Nodes
/// Ready, keep their leases fresh and move Pods through their life cycle.
pub const KWOK_STAGES: &[&str] = &[
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
];

/// Every binary the project builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubectl,
    Etcd,
    Kwok,
    Helm,
    Kubeconform,
    Promtool,
    Prometheus,
    ArgocdLuaHealth,
    ControllerGen,
}

/// How a tool is built.
enum Recipe {
    /// A command of `k8s.io/kubernetes`, whose staging modules need replaces.
    Kubernetes { package: &'static str },
    /// A main package of an ordinary module.
    Module {
        module: &'static str,
        package: &'static str,
        tags: &'static str,
    },
    /// A program of this repository (`xtask/go/<name>/main.go`), built in a
    /// throwaway module that requires `requires` at their pinned versions.
    Program {
        source: &'static str,
        requires: &'static [(&'static str, &'static str)],
    },
}

impl Tool {
    pub const ALL: [Tool; 12] = [
        Tool::KubeApiserver,
        Tool::KubeControllerManager,
        Tool::KubeScheduler,
        Tool::Kubectl,
        Tool::Etcd,
        Tool::Kwok,
        Tool::Helm,
        Tool::Kubeconform,
        Tool::Promtool,
        Tool::Prometheus,
        Tool::ArgocdLuaHealth,
        Tool::ControllerGen,
    ];

    /// The binaries `testenv up` needs.
    pub const ENVIRONMENT: [Tool; 7] = [
        Tool::KubeApiserver,
        Tool::KubeControllerManager,
        Tool::KubeScheduler,
        Tool::Kubectl,
        Tool::Etcd,
        Tool::Kwok,
        Tool::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::KubeApiserver => "kube-apiserver",
            Tool::KubeControllerManager => "kube-controller-manager",
            Tool::KubeScheduler => "kube-scheduler",
            Tool::Kubectl => "kubectl",
            Tool::Etcd => "etcd",
            Tool::Kwok => "kwok",
            Tool::Helm => "helm",
            Tool::Kubeconform => "kubeconform",
            Tool::Promtool => "promtool",
            Tool::Prometheus => "prometheus",
            Tool::ArgocdLuaHealth => "argocd-lua-health",
            Tool::ControllerGen => "controller-gen",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Tool::KubeApiserver | Tool::KubeControllerManager | Tool::KubeScheduler => {
                KUBERNETES_VERSION
            }
            Tool::Kubectl => KUBERNETES_VERSION,
            Tool::Etcd => ETCD_VERSION,
            Tool::Kwok => KWOK_VERSION,
            Tool::Helm => HELM_VERSION,
            Tool::Kubeconform => KUBECONFORM_VERSION,
            Tool::Promtool | Tool::Prometheus => PROMETHEUS_VERSION,
            Tool::ArgocdLuaHealth => GOPHER_LUA_VERSION,
            Tool::ControllerGen => CONTROLLER_TOOLS_VERSION,
        }
    }

    fn recipe(self) -> Recipe {
        match self {
            Tool::KubeApiserver => Recipe::Kubernetes {
                package: "k8s.io/kubernetes/cmd/kube-apiserver",
            },
            Tool::KubeControllerManager => Recipe::Kubernetes {
                package: "k8s.io/kubernetes/cmd/kube-controller-manager",
            },
            Tool::KubeScheduler => Recipe::Kubernetes {
                package: "k8s.io/kubernetes/cmd/kube-scheduler",
            },
            Tool::Kubectl => Recipe::Kubernetes {
                package: "k8s.io/kubernetes/cmd/kubectl",
            },
            Tool::Etcd => Recipe::Module {
                module: "go.etcd.io/etcd/server/v3",
                package: "go.etcd.io/etcd/server/v3",
                tags: "",
            },
            Tool::Kwok => Recipe::Module {
                module: "sigs.k8s.io/kwok",
                package: "sigs.k8s.io/kwok/cmd/kwok",
                tags: "",
            },
            Tool::Helm => Recipe::Module {
                module: "helm.sh/helm/v3",
                package: "helm.sh/helm/v3/cmd/helm",
                tags: "",
            },
            Tool::Kubeconform => Recipe::Module {
                module: "github.com/yannh/kubeconform",
                package: "github.com/yannh/kubeconform/cmd/kubeconform",
                tags: "",
            },
            // promtool only needs the rule engine: leave out every service
            // discovery plugin (cloud SDKs) to shorten the build.
            Tool::Promtool => Recipe::Module {
                module: "github.com/prometheus/prometheus",
                package: "github.com/prometheus/prometheus/cmd/promtool",
                tags: "remove_all_sd",
            },
            // The server of the same release, for the demo's scrapes and the
            // dashboard queries: static and file discovery are all it uses.
            // Its web UI assets are not in the module; the HTTP API is.
            Tool::Prometheus => Recipe::Module {
                module: "github.com/prometheus/prometheus",
                package: "github.com/prometheus/prometheus/cmd/prometheus",
                tags: "remove_all_sd",
            },
            Tool::ArgocdLuaHealth => Recipe::Program {
                source: include_str!("../../go/argocd-lua-health/main.go"),
                requires: &[
                    ("github.com/yuin/gopher-lua", GOPHER_LUA_VERSION),
                    ("sigs.k8s.io/yaml", SIGS_YAML_VERSION),
                ],
            },
            Tool::ControllerGen => Recipe::Module {
                module: "sigs.k8s.io/controller-tools",
                package: "sigs.k8s.io/controller-tools/cmd/controller-gen",
                tags: "",
            },
        }
    }

    /// The cache key: `<tool>-<version>`, plus a hash of the source for the
    /// project's own programs.
    fn key(self) -> String {
        match self.recipe() {
            Recipe::Program { source, requires } => {
                let pins: String = requires.iter().map(|(m, v)| format!("{m}@{v}\n")).collect();
                format!(
                    "{}-{}-{:016x}",
                    self.name(),
                    self.version(),
                    fnv1a(format!("{pins}{source}").as_bytes())
                )
            }
            _ => format!("{}-{}", self.name(), self.version()),
        }
    }

    /// `<cache>/bin/<tool>-<version>` (see [`Tool::key`]).
    pub fn dir(self) -> Result<PathBuf> {
        Ok(paths::cache_dir()?.join("bin").join(self.key()))
    }

    /// The cached binary's path (which may not exist yet).
    pub fn path(self) -> Result<PathBuf> {
        Ok(self.dir()?.join(self.name()))
    }
}

/// What `go mod download -json` reports about a module.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModuleInfo {
    go_mod: PathBuf,
    pub dir: PathBuf,
}

/// Returns the cached binary of `tool`, building it first when missing.
/// The second value is the build time when a build happened.
pub fn ensure(tool: Tool) -> Result<(PathBuf, Option<Duration>)> {
    let final_dir = tool.dir()?;
    let binary = tool.path()?;
    if binary.is_file() {
        return Ok((binary, None));
    }
    let bin_root = final_dir
        .parent()
        .context("cache bin directory has no parent")?;
    fs::create_dir_all(bin_root)
        .with_context(|| format!("creating the cache directory {}", bin_root.display()))?;
    let tmp_dir = bin_root.join(format!(".{}.partial-{}", tool.key(), std::process::id()));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir)
            .with_context(|| format!("removing the stale {}", tmp_dir.display()))?;
    }
    fs::create_dir_all(&tmp_dir).with_context(|| format!("creating {}", tmp_dir.display()))?;

    let started = Instant::now();
    println!(
        "building {} {} with {} (a cold build takes minutes) ...",
        tool.name(),
        tool.version(),
        go_version()?
    );
    let built = with_heartbeat(tool, || build_into(tool, &tmp_dir));
    if let Err(err) = built {
        // Leave nothing behind that could be mistaken for a cached build.
        let _ = fs::remove_dir_all(&tmp_dir);
        return Err(err);
    }
    match fs::rename(&tmp_dir, &final_dir) {
        Ok(()) => {}
        // Another run finished the same build first: keep theirs.
        Err(_) if binary.is_file() => {
            let _ = fs::remove_dir_all(&tmp_dir);
        }
        Err(err) => {
            return Err(err).with_context(|| {
                format!(
                    "moving {} into place at {}",
                    tmp_dir.display(),
                    final_dir.display()
                )
            });
        }
    }
    let elapsed = started.elapsed();
    println!(
        "built {} {} in {} -> {}",
        tool.name(),
        tool.version(),
        human(elapsed),
        binary.display()
    );
    Ok((binary, Some(elapsed)))
}

/// Runs `work` while printing a line every 30 s so a long build is visibly alive.
fn with_heartbeat<T>(tool: Tool, work: impl FnOnce() -> Result<T>) -> Result<T> {
    let (stop, stopped) = mpsc::channel::<()>();
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(30))
            {
                println!(
                    "  ... still building {} {} ({})",
                    tool.name(),
                    tool.version(),
                    human(started.elapsed())
                );
            }
        });
        let result = work();
        // The receiver only disappears when the thread has ended already.
        let _ = stop.send(());
        result
    })
}

fn build_into(tool: Tool, out_dir: &Path) -> Result<()> {
    let output = out_dir.join(tool.name());
    match tool.recipe() {
        Recipe::Kubernetes { package } => {
            let module_dir = kubernetes_module()?;
            let ldflags = format!("-s -w {}", kubernetes_version_ldflags(KUBERNETES_VERSION)?);
            go_build(&module_dir, package, &output, &ldflags, "")
        }
        Recipe::Module {
            module,
            package,
            tags,
        } => {
            let (module_dir, info) = plain_module(tool.name(), module, tool.version())?;
            go_build(&module_dir, package, &output, "-s -w", tags)?;
            if tool == Tool::Kwok {
                copy_kwok_stages(&info.dir, out_dir)?;
            }
            Ok(())
        }
        Recipe::Program { source, requires } => {
            let module_dir = program_module(tool, source, requires)?;
            go_build(&module_dir, ".", &output, "-s -w", "")
        }
    }
}

/// 64-bit FNV-1a: a hash that stays the same across Rust releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Go binary: `go` on PATH, else the standard /usr/local/go.
fn go_binary() -> PathBuf {
    let standard = PathBuf::from("/usr/local/go/bin/go");
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("go"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or(standard)
}

/// A `go` command with the environment every build uses.
fn go() -> Command {
    let mut command = Command::new(go_binary());
    command
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false");
    command
}

fn go_version() -> Result<String> {
    let out = cmd::output(go().arg("env").arg("GOVERSION"))
        .context("Go is required to build the test environment (install it from go.dev/dl)")?;
    Ok(out.trim().to_string())
}

fn go_build(
    module_dir: &Path,
    package: &str,
    output: &Path,
    ldflags: &str,
    tags: &str,
) -> Result<()> {
    let mut build = go();
    build
        .current_dir(module_dir)
        .args(["build", "-mod=mod", "-trimpath"])
        .arg(format!("-ldflags={ldflags}"));
    if !tags.is_empty() {
        build.arg(format!("-tags={tags}"));
    }
    build.arg("-o").arg(output).arg(package);
    cmd::run(&mut build).with_context(|| format!("building {package}"))
}

/// Writes the throwaway module of one of the project's own programs:
/// `<cache>/build/<key>/{go.mod,main.go}`. `go build -mod=mod` then fills in
/// go.sum (verified against GOSUMDB) and the indirect requirements.
fn program_module(
    tool: Tool,
    source: &str,
    requires: &[(&'static str, &'static str)],
) -> Result<PathBuf> {
    let dir = paths::cache_dir()?.join("build").join(tool.key());
    let mut go_mod = format!(
        "module dialtone.local/build/{}\n\ngo 1.22\n\nrequire (\n",
        tool.name()
    );
    for (module, version) in requires {
        go_mod.push_str(&format!("\t{module} {version}\n"));
    }
    go_mod.push_str(")\n");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("main.go"), source)
        .with_context(|| format!("writing {}/main.go", dir.display()))?;
    if !dir.join("go.mod").is_file() {
        write_module(&dir, &go_mod)?;
    }
    Ok(dir)
}

/// Downloads `module@version` (verified against go.sum / GOSUMDB) and
/// reports where its go.mod and sources are.
pub fn download(module: &str, version: &str) -> Result<ModuleInfo> {
    let scratch = paths::cache_dir()?.join("build");
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let json = cmd::output(
        go().current_dir(&scratch)
            .args(["mod", "download", "-json"])
            .arg(format!("{module}@{version}")),
    )
    .with_context(|| format!("downloading {module}@{version} from the Go module proxy"))?;
    serde_json::from_str(&json)
        .with_context(|| format!("parsing `go mod download` output for {module}"))
}

/// The `go` directive of a go.mod, e.g. `1.25.0`.
fn go_directive(go_mod: &str) -> Option<&str> {
    go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("go ").map(str::trim))
}

/// Requirements pinned at `v0.0.0` in a go.mod: Kubernetes' staging modules.
fn staging_modules(go_mod: &str) -> Vec<String> {
    let mut modules: Vec<String> = go_mod
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let first = fields.next()?;
            // Inside `require ( ... )` lines are `module version`; single-line
            // form is `require module version`.
            let (module, version) = if first == "require" {
                (fields.next()?, fields.next()?)
            } else {
                (first, fields.next()?)
            };
            (version == "v0.0.0").then(|| module.to_string())
        })
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

/// `v1.35.4` -> (`1`, `35`, `v0.35.4`).
fn kubernetes_parts(version: &str) -> Result<(&str, &str, String)> {
    let bare = version
        .strip_prefix('v')
        .context("version must start with v")?;
    let mut parts = bare.splitn(3, '.');
    let (Some(major), Some(minor), Some(patch)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("malformed Kubernetes version {version}");
    };
    Ok((major, minor, format!("v0.{minor}.{patch}")))
}

fn kubernetes_version_ldflags(version: &str) -> Result<String> {
    let (major, minor, _) = kubernetes_parts(version)?;
    let pkg = "k8s.io/component-base/version";
    Ok(format!(
        "-X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} \
         -X {pkg}.gitTreeState=clean -X {pkg}.buildDate={KUBERNETES_BUILD_DATE}"
    ))
}

/// The go.mod of the throwaway module that builds `k8s.io/kubernetes` commands.
fn kubernetes_go_mod(upstream_go_mod: &str, version: &str) -> Result<String> {
    let (_, _, staging_version) = kubernetes_parts(version)?;
    let go =
        go_directive(upstream_go_mod).context("k8s.io/kubernetes go.mod has no go directive")?;
    let staging = staging_modules(upstream_go_mod);
    if staging.is_empty() {
        bail!("found no v0.0.0 staging requirements in k8s.io/kubernetes {version}'s go.mod");
    }
    let mut text = format!(
        "module dialtone.local/build/kubernetes\n\ngo {go}\n\nrequire k8s.io/kubernetes {version}\n\n"
    );
    for module in staging {
        text.push_str(&format!("replace {module} => {module} {staging_version}\n"));
    }
    Ok(text)
}

/// Creates (once) the throwaway module for the Kubernetes commands.
fn kubernetes_module() -> Result<PathBuf> {
    let dir = paths::cache_dir()?
        .join("build")
        .join(format!("kubernetes-{KUBERNETES_VERSION}"));
    if dir.join("go.mod").is_file() {
        return Ok(dir);
    }
    let info = download("k8s.io/kubernetes", KUBERNETES_VERSION)?;
    let upstream = fs::read_to_string(&info.go_mod)
        .with_context(|| format!("reading {}", info.go_mod.display()))?;
    write_module(&dir, &kubernetes_go_mod(&upstream, KUBERNETES_VERSION)?)?;
    Ok(dir)
}

/// Creates (once) a throwaway module requiring `module@version`, with the
/// same go directive as the module itself.
fn plain_module(name: &str, module: &str, version: &str) -> Result<(PathBuf, ModuleInfo)> {
    let dir = paths::cache_dir()?
        .join("build")
        .join(format!("{name}-{version}"));
    let info = download(module, version)?;
    if !dir.join("go.mod").is_file() {
        let upstream = fs::read_to_string(&info.go_mod)
            .with_context(|| format!("reading {}", info.go_mod.display()))?;
        let go = go_directive(&upstream)
            .with_context(|| format!("{module} go.mod has no go directive"))?;
        write_module(
            &dir,
            &format!(
                "module dialtone.local/build/{name}\n\ngo {go}\n\nrequire {module} {version}\n"
            ),
        )?;
    }
    Ok((dir, info))
}

/// Writes go.mod atomically so a half-written one is never reused.
fn write_module(dir: &Path, go_mod: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!("go.mod.tmp-{}", std::process::id()));
    fs::write(&tmp, go_mod).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, dir.join("go.mod"))
        .with_context(|| format!("installing {}/go.mod", dir.display()))
}

fn copy_kwok_stages(module_dir: &Path, out_dir: &Path) -> Result<()> {
    let stages = out_dir.join("stages");
    fs::create_dir_all(&stages).with_context(|| format!("creating {}", stages.display()))?;
    for file in KWOK_STAGES {
        let source = module_dir.join(file);
        let name = Path::new(file)
            .file_name()
            .context("stage path has no file name")?;
        fs::copy(&source, stages.join(name))
            .with_context(|| format!("copying kwok stage {}", source.display()))?;
    }
    Ok(())
}

/// The kwok Stage files cached next to the kwok binary.
pub fn kwok_stage_files() -> Result<Vec<PathBuf>> {
    let dir = Tool::Kwok.dir()?.join("stages");
    KWOK_STAGES
        .iter()
        .map(|file| {
            let name = Path::new(file)
                .file_name()
                .context("stage path has no file name")?;
            Ok(dir.join(name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_MOD: &str = "module k8s.io/kubernetes\n\ngo 1.25.0\n\nrequire (\n\tgithub.com/x/y v1.2.3\n\tk8s.io/api v0.0.0\n\tk8s.io/apimachinery v0.0.0\n)\n\nrequire k8s.io/kubectl v0.0.0\n\nrequire (\n\tk8s.io/api v0.0.0 // indirect\n)\n";

    #[test]
    fn finds_staging_modules() {
        assert_eq!(
            staging_modules(GO_MOD),
            ["k8s.io/api", "k8s.io/apimachinery", "k8s.io/kubectl"]
        );
    }

    #[test]
    fn kubernetes_module_replaces_staging() {
        let go_mod = kubernetes_go_mod(GO_MOD, "v1.35.4").expect("go.mod");
        assert!(go_mod.contains("go 1.25.0"));
        assert!(go_mod.contains("require k8s.io/kubernetes v1.35.4"));
        assert!(go_mod.contains("replace k8s.io/api => k8s.io/api v0.35.4\n"));
        assert!(!go_mod.contains("github.com/x/y"));
    }

    #[test]
    fn program_cache_key_follows_its_source() {
        let key = Tool::ArgocdLuaHealth.key();
        assert!(key.starts_with(&format!("argocd-lua-health-{GOPHER_LUA_VERSION}-")));
        assert_ne!(fnv1a(b"package main"), fnv1a(b"package main "));
        assert_eq!(Tool::Helm.key(), format!("helm-{HELM_VERSION}"));
    }

    #[test]
    fn version_ldflags() {
        let flags = kubernetes_version_ldflags("v1.35.4").expect("flags");
        assert!(flags.contains("gitVersion=v1.35.4"));
        assert!(flags.contains("gitMajor=1 "));
        assert!(flags.contains("gitMinor=35 "));
    }
}
