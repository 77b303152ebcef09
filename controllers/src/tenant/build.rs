//! Pure desired state of a Tenant: spec in, Kubernetes objects out.

use std::collections::BTreeMap;

use dialtone_crds::Tenant;
use dialtone_crds::tenant::Isolation;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL, quantity};

/// Name of the ResourceQuota.
pub const QUOTA: &str = "dialtone-quota";
/// Name of the LimitRange.
pub const LIMIT_RANGE: &str = "dialtone-limits";
/// Name of the default-deny NetworkPolicy.
pub const DENY_ALL: &str = "dialtone-default-deny";
/// Name of the NetworkPolicy allowing what voice pods need.
pub const ALLOW_VOICE: &str = "dialtone-allow-voice";
/// Name of the voice pods' ServiceAccount, and of its Role and RoleBinding.
pub const VOICE_SA: &str = "dialtone-voice";
/// Label on the namespace: `true` while the tenant is suspended.
pub const SUSPENDED_LABEL: &str = "dialtone.io/suspended";
/// Label on the namespace: the tenant's isolation.
pub const ISOLATION_LABEL: &str = "dialtone.io/isolation";

/// Where the platform's pieces run, for the tenant's network policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Namespace of the platform's telephony ingress (allowed to reach voice pods).
    pub ingress_namespace: String,
    /// Namespace of the platform (PostgreSQL, shared services).
    pub platform_namespace: String,
    /// The port voice pods listen on.
    pub voice_port: i32,
    /// The PostgreSQL port.
    pub postgres_port: i32,
    /// Namespace of the Prometheus that scrapes voice pods' metrics port;
    /// `None`: nothing may reach it.
    pub monitoring_namespace: Option<String>,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            ingress_namespace: "dialtone-system".to_owned(),
            platform_namespace: "dialtone-system".to_owned(),
            voice_port: 8080,
            postgres_port: 5432,
            monitoring_namespace: None,
        }
    }
}

/// Everything the Tenant controller applies, in apply order. Destructure it
/// without `..` so that a child that is built but never applied fails to
/// compile.
#[derive(Clone, Debug, PartialEq)]
pub struct TenantChildren {
    /// The tenant namespace (applied first).
    pub namespace: Namespace,
    /// Quota from `spec.limits`.
    pub quota: ResourceQuota,
    /// Default container requests and limits.
    pub limit_range: LimitRange,
    /// Denies all ingress and egress not allowed elsewhere.
    pub deny_all: NetworkPolicy,
    /// DNS, vendor HTTPS, PostgreSQL and telephony ingress for voice pods.
    pub allow_voice: NetworkPolicy,
    /// The voice pods' identity.
    pub service_account: ServiceAccount,
    /// Read ConfigMaps (compiled config versions) in the namespace.
    pub role: Role,
    /// Binds [`Self::role`] to [`Self::service_account`].
    pub role_binding: RoleBinding,
}

/// Why a Tenant's spec cannot be turned into objects. Messages are shown in
/// status as they are.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSpec {
    /// The namespace is not a DNS label.
    #[error(
        "namespace {0:?} is not a valid DNS label of at most 63 characters; set spec.namespace"
    )]
    Namespace(String),
    /// The Tenant's name cannot be a label value.
    #[error("tenant name {0:?} is longer than 63 characters and cannot label its objects")]
    Name(String),
    /// A quantity in `spec.limits` does not parse.
    #[error("spec.limits.{field} {value:?} is not a Kubernetes quantity (e.g. 4, 500m, 8Gi)")]
    Quantity {
        /// `cpu` or `memory`.
        field: &'static str,
        /// The value given.
        value: String,
    },
}

/// Whether `s` is an RFC 1123 DNS label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks what admission could not: the derived namespace name, the label
/// value and the quantities.
pub fn validate(tenant: &Tenant) -> Result<(), InvalidSpec> {
    let name = tenant.name_any();
    if name.len() > 63 {
        return Err(InvalidSpec::Name(name));
    }
    let ns = tenant.namespace_name();
    if !is_dns_label(&ns) {
        return Err(InvalidSpec::Namespace(ns));
    }
    let limits = &tenant.spec.limits;
    if !quantity::is_valid(&limits.cpu) {
        return Err(InvalidSpec::Quantity {
            field: "cpu",
            value: limits.cpu.clone(),
        });
    }
    if !quantity::is_valid(&limits.memory) {
        return Err(InvalidSpec::Quantity {
            field: "memory",
            value: limits.memory.clone(),
        });
    }
    Ok(())
}

/// The labels of every object made for `tenant`.
pub fn labels(tenant_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (TENANT_LABEL.to_owned(), tenant_name.to_owned()),
    ])
}

fn meta(name: &str, namespace: &str, tenant_name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(tenant_name)),
        ..ObjectMeta::default()
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.to_owned())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Builds every child of `tenant`. Call [`validate`] first.
pub fn children(tenant: &Tenant, net: &NetworkSettings) -> Result<TenantChildren, InvalidSpec> {
    validate(tenant)?;
    let name = tenant.name_any();
    let ns = tenant.namespace_name();

    let mut ns_labels = labels(&name);
    ns_labels.insert(SUSPENDED_LABEL.to_owned(), tenant.spec.suspend.to_string());
    ns_labels.insert(
        ISOLATION_LABEL.to_owned(),
        match tenant.spec.isolation {
            Isolation::Shared => "shared",
            Isolation::Dedicated => "dedicated",
        }
        .to_owned(),
    );
    // Voice pods are expected to run with the restricted profile; baseline is
    // enforced so nothing privileged can ever run in a tenant namespace.
    ns_labels.insert(
        "pod-security.kubernetes.io/enforce".to_owned(),
        "baseline".to_owned(),
    );
    ns_labels.insert(
        "pod-security.kubernetes.io/warn".to_owned(),
        "restricted".to_owned(),
    );
    ns_labels.insert(
        "pod-security.kubernetes.io/audit".to_owned(),
        "restricted".to_owned(),
    );
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(ns_labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };

    let limits = &tenant.spec.limits;
    let quota = ResourceQuota {
        metadata: meta(QUOTA, &ns, &name),
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([
                ("requests.cpu".to_owned(), q(&limits.cpu)),
                ("requests.memory".to_owned(), q(&limits.memory)),
                ("limits.memory".to_owned(), q(&limits.memory)),
                ("pods".to_owned(), q(&limits.pods.max(0).to_string())),
                ("services.loadbalancers".to_owned(), q("0")),
                ("services.nodeports".to_owned(), q("0")),
            ])),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    };

    let limit_range = LimitRange {
        metadata: meta(LIMIT_RANGE, &ns, &name),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default_request: Some(BTreeMap::from([
                    ("cpu".to_owned(), q("100m")),
                    ("memory".to_owned(), q("128Mi")),
                ])),
                default: Some(BTreeMap::from([
                    ("cpu".to_owned(), q("1")),
                    ("memory".to_owned(), q("512Mi")),
                ])),
                ..LimitRangeItem::default()
            }],
        }),
    };

    let deny_all = NetworkPolicy {
        metadata: meta(DENY_ALL, &ns, &name),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(strings(&["Ingress", "Egress"])),
            ..NetworkPolicySpec::default()
        }),
    };

    let allow_voice = NetworkPolicy {
        metadata: meta(ALLOW_VOICE, &ns, &name),
        spec: Some(allow_voice_spec(net)),
    };

    let service_account = ServiceAccount {
        metadata: meta(VOICE_SA, &ns, &name),
        ..ServiceAccount::default()
    };

    let role = Role {
        metadata: meta(VOICE_SA, &ns, &name),
        rules: Some(vec![PolicyRule {
            api_groups: Some(strings(&[""])),
            resources: Some(strings(&["configmaps"])),
            verbs: strings(&["get", "list", "watch"]),
            ..PolicyRule::default()
        }]),
    };

    let role_binding = RoleBinding {
        metadata: meta(VOICE_SA, &ns, &name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: VOICE_SA.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: VOICE_SA.to_owned(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };

    Ok(TenantChildren {
        namespace,
        quota,
        limit_range,
        deny_all,
        allow_voice,
        service_account,
        role,
        role_binding,
    })
}

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.to_owned()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    }
}

fn public_internet() -> Vec<NetworkPolicyPeer> {
    let block = |cidr: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: Some(strings(except)),
        }),
        ..NetworkPolicyPeer::default()
    };
    vec![
        // Vendors are on the public internet. Private ranges (the cluster, the
        // API server) and link-local (cloud metadata) stay closed.
        block(
            "0.0.0.0/0",
            &[
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "100.64.0.0/10",
            ],
        ),
        block("::/0", &["fc00::/7", "fe80::/10"]),
    ]
}

/// Ingress on the voice port from the telephony ingress namespace (and on
/// the metrics port from the monitoring namespace, when there is one); egress to
/// DNS, vendors over HTTPS, and PostgreSQL in the platform namespace.
fn allow_voice_spec(net: &NetworkSettings) -> NetworkPolicySpec {
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(strings(&["Ingress", "Egress"])),
        ingress: Some(
            std::iter::once(NetworkPolicyIngressRule {
                from: Some(vec![namespace_peer(&net.ingress_namespace)]),
                ports: Some(vec![port("TCP", net.voice_port)]),
            })
            .chain(
                net.monitoring_namespace
                    .iter()
                    .map(|monitoring| NetworkPolicyIngressRule {
                        from: Some(vec![namespace_peer(monitoring)]),
                        ports: Some(vec![port("TCP", crate::agent::build::METRICS_PORT)]),
                    }),
            )
            .collect(),
        ),
        egress: Some(vec![
            // DNS anywhere: clusters differ (kube-dns, node-local caches).
            NetworkPolicyEgressRule {
                to: None,
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            },
            NetworkPolicyEgressRule {
                to: Some(public_internet()),
                ports: Some(vec![port("TCP", 443)]),
            },
            NetworkPolicyEgressRule {
                to: Some(vec![namespace_peer(&net.platform_namespace)]),
                ports: Some(vec![port("TCP", net.postgres_port)]),
            },
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::TenantSpec;

    pub(crate) fn tenant(name: &str, yaml_spec: &str) -> Tenant {
        let spec: TenantSpec = serde_yaml::from_str(yaml_spec).expect("spec");
        Tenant::new(name, spec)
    }

    const SPEC: &str = r#"
displayName: Harbour Dental
profile: { timezone: Australia/Sydney }
limits: { cpu: "2", memory: 4Gi, pods: 12 }
"#;

    #[test]
    fn namespace_defaults_and_labels() {
        let t = tenant("harbour", SPEC);
        let c = children(&t, &NetworkSettings::default()).expect("valid");
        assert_eq!(c.namespace.metadata.name.as_deref(), Some("tenant-harbour"));
        let labels = c.namespace.metadata.labels.expect("labels");
        assert_eq!(labels[MANAGED_BY_LABEL], "dialtone");
        assert_eq!(labels[TENANT_LABEL], "harbour");
        assert_eq!(labels[SUSPENDED_LABEL], "false");
        assert_eq!(labels[ISOLATION_LABEL], "shared");
        for meta in [
            &c.quota.metadata,
            &c.limit_range.metadata,
            &c.deny_all.metadata,
            &c.role.metadata,
        ] {
            assert_eq!(meta.namespace.as_deref(), Some("tenant-harbour"));
            assert_eq!(
                meta.labels.as_ref().expect("labels")[TENANT_LABEL],
                "harbour"
            );
        }
    }

    #[test]
    fn quota_follows_limits() {
        let t = tenant("harbour", SPEC);
        let c = children(&t, &NetworkSettings::default()).expect("valid");
        let hard = c.quota.spec.expect("spec").hard.expect("hard");
        assert_eq!(hard["requests.cpu"], q("2"));
        assert_eq!(hard["requests.memory"], q("4Gi"));
        assert_eq!(hard["pods"], q("12"));
        assert_eq!(hard["services.loadbalancers"], q("0"));
    }

    #[test]
    fn explicit_namespace_is_used() {
        let t = tenant("harbour", &format!("{SPEC}namespace: harbour-dental\n"));
        let c = children(&t, &NetworkSettings::default()).expect("valid");
        assert_eq!(c.namespace.metadata.name.as_deref(), Some("harbour-dental"));
        assert_eq!(
            c.role_binding.subjects.expect("subjects")[0]
                .namespace
                .as_deref(),
            Some("harbour-dental")
        );
    }

    #[test]
    fn only_the_monitoring_namespace_reaches_the_metrics_port() {
        let port_of = |net: &NetworkSettings| -> Vec<(String, i32)> {
            let c = children(&tenant("harbour", SPEC), net).expect("valid");
            c.allow_voice
                .spec
                .expect("spec")
                .ingress
                .expect("ingress")
                .iter()
                .flat_map(|rule| {
                    let from = rule.from.as_ref().expect("from")[0]
                        .namespace_selector
                        .as_ref()
                        .and_then(|s| s.match_labels.as_ref())
                        .map(|l| l["kubernetes.io/metadata.name"].clone())
                        .unwrap_or_default();
                    rule.ports
                        .iter()
                        .flatten()
                        .filter_map(move |p| match p.port {
                            Some(IntOrString::Int(n)) => Some((from.clone(), n)),
                            _ => None,
                        })
                })
                .collect()
        };
        let closed = NetworkSettings::default();
        assert_eq!(port_of(&closed), [("dialtone-system".to_owned(), 8080)]);
        let scraped = NetworkSettings {
            monitoring_namespace: Some("monitoring".into()),
            ..NetworkSettings::default()
        };
        assert_eq!(
            port_of(&scraped),
            [
                ("dialtone-system".to_owned(), 8080),
                ("monitoring".to_owned(), 9090)
            ]
        );
    }

    #[test]
    fn network_policies_deny_by_default_and_allow_voice_needs() {
        let net = NetworkSettings {
            ingress_namespace: "edge".into(),
            ..NetworkSettings::default()
        };
        let c = children(&tenant("harbour", SPEC), &net).expect("valid");
        let deny = c.deny_all.spec.expect("spec");
        assert_eq!(deny.pod_selector, Some(LabelSelector::default()));
        assert!(deny.ingress.is_none() && deny.egress.is_none());
        let allow = c.allow_voice.spec.expect("spec");
        let ingress = &allow.ingress.expect("ingress")[0];
        let from_ns = ingress.from.as_ref().expect("from")[0]
            .namespace_selector
            .as_ref()
            .expect("ns");
        assert_eq!(
            from_ns.match_labels.as_ref().expect("labels")["kubernetes.io/metadata.name"],
            "edge"
        );
        let egress = allow.egress.expect("egress");
        let ports: Vec<i32> = egress
            .iter()
            .flat_map(|r| r.ports.iter().flatten())
            .filter_map(|p| match p.port {
                Some(IntOrString::Int(n)) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(ports, [53, 53, 443, 5432]);
        let internet = egress[1].to.as_ref().expect("to")[0]
            .ip_block
            .as_ref()
            .expect("block");
        assert!(
            internet
                .except
                .as_ref()
                .expect("except")
                .contains(&"169.254.0.0/16".to_owned())
        );
    }

    #[test]
    fn rbac_reads_configmaps_only() {
        let c = children(&tenant("harbour", SPEC), &NetworkSettings::default()).expect("valid");
        let rules = c.role.rules.expect("rules");
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resources.as_deref(),
            Some(&["configmaps".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
        assert_eq!(c.role_binding.role_ref.name, VOICE_SA);
    }

    #[test]
    fn invalid_quantities_and_names_are_refused() {
        let bad_cpu = tenant(
            "harbour",
            "displayName: x\nprofile: { timezone: UTC }\nlimits: { cpu: lots }\n",
        );
        assert_eq!(
            validate(&bad_cpu),
            Err(InvalidSpec::Quantity {
                field: "cpu",
                value: "lots".into()
            })
        );
        let long = "a".repeat(60);
        let t = tenant(&long, SPEC);
        assert!(matches!(validate(&t), Err(InvalidSpec::Namespace(_))));
    }

    #[test]
    fn serialised_children_carry_kind_and_api_version() {
        let c = children(&tenant("harbour", SPEC), &NetworkSettings::default()).expect("valid");
        let v = serde_json::to_value(&c.allow_voice).expect("json");
        assert_eq!(v["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(v["kind"], "NetworkPolicy");
        // only what we own is sent
        assert!(v["metadata"].get("resourceVersion").is_none());
    }
}
