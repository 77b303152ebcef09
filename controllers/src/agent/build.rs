//! Pure desired state of an Agent: its config version's ConfigMap, its voice
//! pods (dedicated: Deployment, Service, PodDisruptionBudget and
//! HorizontalPodAutoscaler in the tenant namespace; shared: the platform's
//! pool in the operator's namespace) and the pool's copies of credentials.
//!
//! The pod template never mentions a config version: voice pods load
//! versions by hash through the phone routes, so activating a version
//! restarts nothing.

use std::collections::BTreeMap;

use dialtone_engine::ConfigVersion;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget, PodsMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, LocalObjectReference, ObjectFieldSelector, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecretProjection, SecurityContext, Service, ServiceAccount,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{
    COMPONENT_LABEL, POOL_LABEL, VERSION_ANNOTATION, VERSION_LABEL, agent_labels, configmap_name,
    label_value, mirror_name, short_version, voice_selector,
};
use crate::{MANAGED_BY, MANAGED_BY_LABEL, quantity};

/// Where voice pods find provider credentials (the voice binary's
/// `--credentials-dir` default).
pub const CREDENTIALS_DIR: &str = "/var/run/dialtone/credentials";
/// Where the voice binary keeps its event spill file.
pub const SPILL_DIR: &str = "/var/lib/dialtone";
/// The key of a config version's ConfigMap holding the canonical JSON.
pub const CONFIG_KEY: &str = "config.json";
/// The key of the voice Secret holding the PostgreSQL URL.
pub const DATABASE_URL_KEY: &str = "database-url";
/// The key of the voice Secret holding the media stream token key.
pub const STREAM_SECRET_KEY: &str = "stream-secret";
/// The annotation on a pool's credential copy naming its source Secret.
pub const MIRROR_SOURCE_ANNOTATION: &str = "dialtone.io/source";
/// The annotation on a pool's credential copy carrying its source's
/// resourceVersion, so an unchanged source is not copied again.
pub const MIRROR_VERSION_ANNOTATION: &str = "dialtone.io/source-resource-version";
/// Seconds a pod gets after the voice binary's drain period before it is
/// killed: time to flush events and close sockets.
pub const TERMINATION_MARGIN_SECONDS: i64 = 15;
/// The metric the HorizontalPodAutoscaler scales on (served through a
/// custom metrics adapter from the voice pods' `/metrics`).
pub const ACTIVE_CALLS_METRIC: &str = "dialtone_voice_active_calls";
/// The non-root user voice pods run as.
const VOICE_UID: i64 = 65532;

/// How voice pods are built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoiceSettings {
    /// The `dialtone-voice` image.
    pub image: String,
    /// The port voice pods listen on (webhook, sockets, probes, metrics).
    pub port: i32,
    /// Seconds calls get to finish after SIGTERM (`--drain-seconds`).
    pub drain_seconds: i64,
    /// The public base URL Twilio reaches the voice pods at; unset, voice
    /// pods get their in-cluster Service URL and telephony is not bound.
    pub public_url: Option<String>,
    /// Name of the Secret (keys `database-url`, `stream-secret`) voice pods
    /// read in their namespace; the platform provides it.
    pub secret: String,
    /// Registry credentials (`kubernetes.io/dockerconfigjson` Secrets) voice
    /// pods pull their image with; the Tenant controller copies them into
    /// tenant namespaces.
    pub image_pull_secrets: Vec<String>,
}

/// The platform's shared voice pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Namespace of the pool (the operator's).
    pub namespace: String,
    /// Name of its Deployment, Service, PodDisruptionBudget and
    /// ServiceAccount.
    pub name: String,
    /// Fewest pool replicas.
    pub min_replicas: i32,
    /// Most pool replicas.
    pub max_replicas: i32,
    /// Concurrent calls one pool pod carries.
    pub calls_per_pod: i32,
    /// CPU request of a pool pod.
    pub cpu: String,
    /// Memory request and limit of a pool pod.
    pub memory: String,
}

/// One provider's credentials as voice pods see them: the files
/// `<scope>/<provider>/<key>` under [`CREDENTIALS_DIR`], projected from a
/// Secret in the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CredentialMount {
    /// The provider's namespace, or `cluster` for a ClusterProvider.
    pub scope: String,
    /// The provider's name.
    pub provider: String,
    /// The Secret in the pod's namespace.
    pub secret: String,
    /// `(key in the Secret, file name)`: the file is named by the key the
    /// vendor needs, whatever the Secret calls it.
    pub items: Vec<(String, String)>,
}

/// Why voice pods cannot be built from a runtime spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRuntime {
    /// A quantity does not parse.
    #[error("spec.runtime.{field} {value:?} is not a Kubernetes quantity (e.g. 250m, 256Mi)")]
    Quantity {
        /// `cpu` or `memory`.
        field: &'static str,
        /// The value given.
        value: String,
    },
}

/// Checks the runtime quantities admission cannot.
pub fn check_runtime(cpu: &str, memory: &str) -> Result<(), InvalidRuntime> {
    if !quantity::is_valid(cpu) {
        return Err(InvalidRuntime::Quantity {
            field: "cpu",
            value: cpu.to_owned(),
        });
    }
    if !quantity::is_valid(memory) {
        return Err(InvalidRuntime::Quantity {
            field: "memory",
            value: memory.to_owned(),
        });
    }
    Ok(())
}

/// The immutable ConfigMap `<agent>-<short hash>` of a config version,
/// owned by the Agent.
pub fn config_map(
    version: &ConfigVersion,
    tenant: &str,
    namespace: &str,
    agent: &str,
    owner: OwnerReference,
) -> ConfigMap {
    let short = short_version(&version.hash);
    let mut labels = agent_labels(tenant, agent);
    labels.insert(VERSION_LABEL.to_owned(), short.to_owned());
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(configmap_name(agent, short)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                VERSION_ANNOTATION.to_owned(),
                version.hash.clone(),
            )])),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_owned(),
            version.canonical_json.clone(),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// Everything a dedicated Agent runs, in apply order. Destructure it
/// without `..` so a child that is built but never applied fails to compile.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DedicatedChildren {
    /// The voice pods. `replicas` is left to the autoscaler.
    pub deployment: Deployment,
    /// In-cluster address of the voice pods.
    pub service: Service,
    /// At most one voice pod evicted at a time.
    pub pdb: PodDisruptionBudget,
    /// Scales on active calls per pod.
    pub hpa: HorizontalPodAutoscaler,
}

/// The voice pods of a dedicated Agent. `name` comes from
/// [`super::names::voice_name`].
#[allow(clippy::too_many_arguments)]
pub fn dedicated(
    name: &str,
    namespace: &str,
    tenant: &str,
    agent: &str,
    runtime: &dialtone_crds::agent::AgentRuntime,
    mounts: &[CredentialMount],
    voice: &VoiceSettings,
    service_account: &str,
    owner: OwnerReference,
) -> Result<DedicatedChildren, InvalidRuntime> {
    check_runtime(&runtime.cpu, &runtime.memory)?;
    let selector = voice_selector(name);
    let mut labels = agent_labels(tenant, agent);
    labels.extend(selector.clone());
    labels.insert(COMPONENT_LABEL.to_owned(), "voice".to_owned());
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    let public_url = voice
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{name}.{namespace}.svc"));
    let template = pod_template(
        &labels,
        service_account,
        mounts,
        &runtime.cpu,
        &runtime.memory,
        runtime.calls_per_pod,
        voice,
        &public_url,
        false,
    );
    // The autoscaler owns replicas: a Deployment applied without them
    // starts at one, and the autoscaler raises it to minReplicas.
    let deployment = Deployment {
        metadata: meta.clone(),
        spec: Some(deployment_spec(None, &selector, template)),
        ..Deployment::default()
    };
    let min = runtime.min_replicas.max(1);
    let hpa = HorizontalPodAutoscaler {
        metadata: meta.clone(),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: name.to_owned(),
            },
            min_replicas: Some(min),
            max_replicas: runtime.max_replicas.max(min),
            metrics: Some(vec![MetricSpec {
                type_: "Pods".to_owned(),
                pods: Some(PodsMetricSource {
                    metric: MetricIdentifier {
                        name: ACTIVE_CALLS_METRIC.to_owned(),
                        selector: None,
                    },
                    target: MetricTarget {
                        type_: "AverageValue".to_owned(),
                        average_value: Some(Quantity(runtime.calls_per_pod.to_string())),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            // Calls last minutes: scale down slowly, so a pod drained for a
            // lull is not needed again a minute later.
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(600),
                    ..HPAScalingRules::default()
                }),
                scale_up: None,
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    };
    Ok(DedicatedChildren {
        deployment,
        service: service(meta.clone(), &selector, voice.port),
        pdb: pdb(meta, &selector),
        hpa,
    })
}

/// The shared pool's objects, in apply order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PoolChildren {
    /// The pool pods' identity (they never call the Kubernetes API).
    pub service_account: ServiceAccount,
    /// In-cluster address of the pool.
    pub service: Service,
    /// At most one pool pod evicted at a time.
    pub pdb: PodDisruptionBudget,
    /// The pool pods, sized by [`pool_replicas`].
    pub deployment: Deployment,
}

/// The shared voice pool with `replicas` pods mounting `mounts` (copies of
/// the shared Agents' credentials, see [`mirror`]).
pub fn pool(
    pool: &PoolSettings,
    voice: &VoiceSettings,
    replicas: i32,
    mounts: &[CredentialMount],
) -> Result<PoolChildren, InvalidRuntime> {
    check_runtime(&pool.cpu, &pool.memory)?;
    let selector = voice_selector(&pool.name);
    let mut labels = selector.clone();
    labels.insert(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned());
    labels.insert(COMPONENT_LABEL.to_owned(), "voice-pool".to_owned());
    labels.insert(POOL_LABEL.to_owned(), label_value(&pool.name));
    let meta = ObjectMeta {
        name: Some(pool.name.clone()),
        namespace: Some(pool.namespace.clone()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let public_url = voice
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}.{}.svc", pool.name, pool.namespace));
    // A tenant whose Secret is missing must not stop the whole pool.
    let template = pod_template(
        &labels,
        &pool.name,
        mounts,
        &pool.cpu,
        &pool.memory,
        pool.calls_per_pod,
        voice,
        &public_url,
        true,
    );
    Ok(PoolChildren {
        service_account: ServiceAccount {
            metadata: meta.clone(),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        service: service(meta.clone(), &selector, voice.port),
        pdb: pdb(meta.clone(), &selector),
        deployment: Deployment {
            metadata: meta,
            spec: Some(deployment_spec(Some(replicas), &selector, template)),
            ..Deployment::default()
        },
    })
}

/// One shared Agent's standing demand on the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedDemand {
    /// The Agent's Tenant.
    pub tenant: String,
    /// `spec.runtime.minReplicas`: the pods' worth of capacity it asks for.
    pub min_replicas: i32,
    /// `spec.runtime.callsPerPod`.
    pub calls_per_pod: i32,
}

/// Pool replicas for the summed demand of the shared Agents: each asks for
/// `minReplicas × callsPerPod` concurrent calls, a Tenant never gets more
/// than its `maxConcurrentCalls` (`caps`, by tenant; a Tenant without one
/// is not capped), and a pool pod carries `pool.callsPerPod` calls. The
/// result is clamped to the pool's bounds.
pub fn pool_replicas(
    demands: &[SharedDemand],
    caps: &BTreeMap<String, i32>,
    pool: &PoolSettings,
) -> i32 {
    let mut per_tenant: BTreeMap<&str, i64> = BTreeMap::new();
    for d in demands {
        let calls = i64::from(d.min_replicas.max(0)) * i64::from(d.calls_per_pod.max(1));
        *per_tenant.entry(d.tenant.as_str()).or_default() += calls;
    }
    let total: i64 = per_tenant
        .iter()
        .map(|(tenant, calls)| match caps.get(*tenant) {
            Some(cap) => (*calls).min(i64::from((*cap).max(0))),
            None => *calls,
        })
        .sum();
    let per_pod = i64::from(pool.calls_per_pod.max(1));
    let needed = (total + per_pod - 1) / per_pod;
    let min = pool.min_replicas.max(0);
    let max = pool.max_replicas.max(min);
    i32::try_from(needed).unwrap_or(i32::MAX).clamp(min, max)
}

/// The pool's copy of a provider's credentials: only the keys the vendor
/// needs, renamed to the names the voice pods read. `data` is the source
/// Secret's data; `keys` pairs each Secret key with the vendor's key name.
/// Keys missing from the source are left out (the Provider's own status
/// reports them).
pub fn mirror(
    pool: &PoolSettings,
    scope: &str,
    provider: &str,
    source: (&str, &str, &str),
    data: &BTreeMap<String, ByteString>,
    keys: &[(String, String)],
) -> Secret {
    let (source_namespace, source_name, source_version) = source;
    let picked: BTreeMap<String, ByteString> = keys
        .iter()
        .filter_map(|(secret_key, file)| data.get(secret_key).map(|v| (file.clone(), v.clone())))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(mirror_name(&pool.name, scope, provider)),
            namespace: Some(pool.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (POOL_LABEL.to_owned(), label_value(&pool.name)),
            ])),
            annotations: Some(BTreeMap::from([
                (
                    MIRROR_SOURCE_ANNOTATION.to_owned(),
                    format!("{source_namespace}/{source_name}"),
                ),
                (
                    MIRROR_VERSION_ANNOTATION.to_owned(),
                    source_version.to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(picked),
        ..Secret::default()
    }
}

fn deployment_spec(
    replicas: Option<i32>,
    selector: &BTreeMap<String, String>,
    template: PodTemplateSpec,
) -> DeploymentSpec {
    DeploymentSpec {
        replicas,
        revision_history_limit: Some(3),
        selector: LabelSelector {
            match_labels: Some(selector.clone()),
            ..LabelSelector::default()
        },
        // Never below capacity while rolling: a new pod is Ready before an
        // old one starts draining its calls.
        strategy: Some(DeploymentStrategy {
            type_: Some("RollingUpdate".to_owned()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        }),
        template,
        ..DeploymentSpec::default()
    }
}

fn service(meta: ObjectMeta, selector: &BTreeMap<String, String>, port: i32) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector.clone()),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".to_owned()),
                    port: 80,
                    target_port: Some(IntOrString::Int(port)),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
                // For the ServiceMonitor; the public ingress routes to
                // `http` only.
                ServicePort {
                    name: Some(METRICS_PORT_NAME.to_owned()),
                    port: METRICS_PORT,
                    target_port: Some(IntOrString::String(METRICS_PORT_NAME.to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pdb(meta: ObjectMeta, selector: &BTreeMap<String, String>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta,
        spec: Some(PodDisruptionBudgetSpec {
            // maxUnavailable, not minAvailable: with one replica a
            // minAvailable of 1 would block every node drain.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(source),
        ..EnvVar::default()
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    env_from(
        name,
        EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        },
    )
}

fn field_env(name: &str, path: &str) -> EnvVar {
    env_from(
        name,
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        },
    )
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn credentials_volume(mounts: &[CredentialMount], optional: bool) -> Option<Volume> {
    if mounts.is_empty() {
        return None;
    }
    let mut mounts = mounts.to_vec();
    mounts.sort();
    mounts.dedup();
    let sources = mounts
        .into_iter()
        .map(|m| VolumeProjection {
            secret: Some(SecretProjection {
                name: m.secret.clone(),
                items: Some(
                    m.items
                        .iter()
                        .map(|(key, file)| KeyToPath {
                            key: key.clone(),
                            path: format!("{}/{}/{file}", m.scope, m.provider),
                            mode: None,
                        })
                        .collect(),
                ),
                optional: Some(optional),
            }),
            ..VolumeProjection::default()
        })
        .collect();
    Some(Volume {
        name: "credentials".to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    })
}

fn spread(topology_key: &str, selector: &BTreeMap<String, String>) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: topology_key.to_owned(),
        // Soft: a one-node or one-zone cluster still runs every replica.
        when_unsatisfiable: "ScheduleAnyway".to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }
}

/// How many calls a voice pod takes beyond the `callsPerPod` the
/// autoscaler aims at, while new pods start; past this it refuses with 503
/// rather than run out of memory.
const CALL_HEADROOM: i64 = 2;

/// Where voice pods serve `/metrics`: not the public port.
pub const METRICS_PORT: i32 = 9090;
const METRICS_PORT_NAME: &str = "http-metrics";

/// The voice pod: one `dialtone-voice` container, restricted security
/// profile, probes, a call cap, and a grace period covering the drain.
/// Nothing in it depends on a config version.
#[allow(clippy::too_many_arguments)]
fn pod_template(
    labels: &BTreeMap<String, String>,
    service_account: &str,
    mounts: &[CredentialMount],
    cpu: &str,
    memory: &str,
    calls_per_pod: i32,
    voice: &VoiceSettings,
    public_url: &str,
    optional_credentials: bool,
) -> PodTemplateSpec {
    let selector: BTreeMap<String, String> = labels
        .iter()
        .filter(|(k, _)| {
            k.as_str() == super::names::NAME_LABEL || k.as_str() == super::names::INSTANCE_LABEL
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let credentials = credentials_volume(mounts, optional_credentials);
    let mut volumes = vec![
        Volume {
            name: "spill".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: Some(Quantity("16Mi".to_owned())),
            }),
            ..Volume::default()
        },
    ];
    let mut volume_mounts = vec![
        VolumeMount {
            name: "spill".to_owned(),
            mount_path: SPILL_DIR.to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    ];
    if let Some(v) = credentials {
        volumes.push(v);
        volume_mounts.push(VolumeMount {
            name: "credentials".to_owned(),
            mount_path: CREDENTIALS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let container = Container {
        name: "dialtone-voice".to_owned(),
        image: Some(voice.image.clone()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: voice.port,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        env: Some(vec![
            env("DIALTONE_VOICE_LISTEN", format!("0.0.0.0:{}", voice.port)),
            env(
                "DIALTONE_VOICE_METRICS_LISTEN",
                format!("0.0.0.0:{METRICS_PORT}"),
            ),
            env("DIALTONE_PUBLIC_URL", public_url),
            env("DIALTONE_CREDENTIALS_DIR", CREDENTIALS_DIR),
            env("DIALTONE_SPILL_PATH", format!("{SPILL_DIR}/events.spill")),
            env("DIALTONE_DRAIN_SECONDS", voice.drain_seconds.to_string()),
            env(
                "DIALTONE_MAX_CALLS",
                (i64::from(calls_per_pod.max(1)) * CALL_HEADROOM).to_string(),
            ),
            secret_env("DATABASE_URL", &voice.secret, DATABASE_URL_KEY),
            secret_env("DIALTONE_STREAM_SECRET", &voice.secret, STREAM_SECRET_KEY),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.to_owned())),
                ("memory".to_owned(), Quantity(memory.to_owned())),
            ])),
            // No CPU limit: throttling a voice pod is audible.
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(memory.to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(VOICE_UID),
            run_as_group: Some(VOICE_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(service_account.to_owned()),
            // Voice pods read routes and versions from PostgreSQL, never the
            // Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(
                voice.drain_seconds.max(0) + TERMINATION_MARGIN_SECONDS,
            ),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(VOICE_UID),
                run_as_group: Some(VOICE_UID),
                fs_group: Some(VOICE_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            topology_spread_constraints: Some(vec![
                spread("kubernetes.io/hostname", &selector),
                spread("topology.kubernetes.io/zone", &selector),
            ]),
            containers: vec![container],
            volumes: Some(volumes),
            image_pull_secrets: (!voice.image_pull_secrets.is_empty()).then(|| {
                voice
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            ..PodSpec::default()
        }),
    }
}

/// The Agent as the controlling owner of a child, which the garbage
/// collector removes with it.
pub fn owner_ref(agent: &dialtone_crds::Agent) -> OwnerReference {
    let mut owner = kube::Resource::controller_owner_ref(agent, &()).unwrap_or_default();
    owner.block_owner_deletion = Some(true);
    owner
}
