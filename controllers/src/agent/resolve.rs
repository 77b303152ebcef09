//! Pure lookups: which Tenant owns an Agent, which Providers it uses and
//! where their credentials come from, and which Agents depend on an
//! Objective, Provider, ClusterProvider or Secret (the watches' mappers).

use std::collections::HashMap;
use std::sync::Arc;

use dialtone_crds::agent::{Agent, ProviderKind, ProviderRef};
use dialtone_crds::tenant::Isolation;
use dialtone_crds::{ClusterProvider, Provider, ProviderSpec, Tenant};
use kube::ResourceExt;

use super::build::CredentialMount;
use super::names::mirror_name;

/// The directory ClusterProvider credentials are mounted under, and the
/// scope their pool copies are named by: never a namespace name.
pub const CLUSTER_SCOPE: &str = dialtone_providers::credentials::CLUSTER_DIR;

/// The Tenant whose namespace is `namespace`.
pub fn tenant_of(tenants: &[Arc<Tenant>], namespace: &str) -> Option<Arc<Tenant>> {
    tenants
        .iter()
        .find(|t| t.owns_namespace(namespace))
        .cloned()
}

/// Tenants by the namespace they own, for lookups over many Agents (the
/// pool's plan and the mappers visit every cached Agent). The first Tenant
/// claiming a namespace wins, as in [`tenant_of`].
pub struct TenantsByNamespace(HashMap<String, Arc<Tenant>>);

impl TenantsByNamespace {
    pub fn new(tenants: &[Arc<Tenant>]) -> Self {
        let mut index = HashMap::with_capacity(tenants.len());
        for tenant in tenants {
            index
                .entry(tenant.namespace_name())
                .or_insert_with(|| tenant.clone());
        }
        Self(index)
    }

    pub fn get(&self, namespace: &str) -> Option<&Arc<Tenant>> {
        self.0.get(namespace)
    }
}

/// The isolation the Agent runs with: its own override, else its Tenant's.
pub fn isolation(agent: &Agent, tenant: &Tenant) -> Isolation {
    agent
        .spec
        .runtime
        .isolation
        .unwrap_or(tenant.spec.isolation)
}

/// The providers the voice pods use, by role (telephony, stt, tts, llm).
/// Workflow providers are the workers' business, not the voice pods'.
pub fn role_refs(agent: &Agent) -> Vec<&ProviderRef> {
    let p = &agent.spec.providers;
    [&p.telephony, &p.stt, &p.tts, &p.llm]
        .into_iter()
        .flatten()
        .collect()
}

/// Every provider reference of the Agent, roles and workflows.
pub fn all_refs(agent: &Agent) -> Vec<&ProviderRef> {
    let mut refs = role_refs(agent);
    refs.extend(
        agent
            .spec
            .workflows
            .iter()
            .filter_map(|w| w.provider.as_ref()),
    );
    refs
}

/// A provider reference found in the caches.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved<'a> {
    /// Provider or ClusterProvider.
    pub kind: ProviderKind,
    /// Its name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a ProviderSpec,
}

/// Finds `r` among the Providers of `namespace` and the ClusterProviders.
pub fn find<'a>(
    r: &'a ProviderRef,
    namespace: &str,
    providers: &'a [Arc<Provider>],
    cluster: &'a [Arc<ClusterProvider>],
) -> Option<Resolved<'a>> {
    let spec = match r.kind {
        ProviderKind::Provider => providers
            .iter()
            .find(|p| p.name_any() == r.name && p.namespace().as_deref() == Some(namespace))
            .map(|p| &p.spec),
        ProviderKind::ClusterProvider => cluster
            .iter()
            .find(|p| p.name_any() == r.name)
            .map(|p| &p.spec.provider),
    }?;
    Some(Resolved {
        kind: r.kind,
        name: &r.name,
        spec,
    })
}

impl Resolved<'_> {
    /// `namespace` or [`CLUSTER_SCOPE`]: the directory its credentials are
    /// mounted under.
    pub fn scope(&self, agent_namespace: &str) -> String {
        match self.kind {
            ProviderKind::Provider => agent_namespace.to_owned(),
            ProviderKind::ClusterProvider => CLUSTER_SCOPE.to_owned(),
        }
    }

    /// `(namespace, name)` of the credentials Secret, when the vendor needs
    /// credentials and the reference is complete.
    pub fn secret(&self, agent_namespace: &str) -> Option<(String, String)> {
        if self.spec.vendor.required_secret_keys().is_empty() {
            return None;
        }
        let r = self.spec.credentials_secret_ref.as_ref()?;
        let namespace = match self.kind {
            ProviderKind::Provider => agent_namespace.to_owned(),
            ProviderKind::ClusterProvider => r.namespace.clone()?,
        };
        Some((namespace, r.name.clone()))
    }

    /// `(key in the Secret, key the vendor needs)` for every credential.
    pub fn items(&self) -> Vec<(String, String)> {
        let Some(r) = self.spec.credentials_secret_ref.as_ref() else {
            return Vec::new();
        };
        self.spec
            .vendor
            .required_secret_keys()
            .iter()
            .map(|k| (r.key_for(k).to_owned(), (*k).to_owned()))
            .collect()
    }

    /// `Provider/<name>` or `ClusterProvider/<name>`.
    pub fn describe(&self) -> String {
        match self.kind {
            ProviderKind::Provider => format!("Provider/{}", self.name),
            ProviderKind::ClusterProvider => format!("ClusterProvider/{}", self.name),
        }
    }
}

/// A credentials Secret a dedicated Agent's pods cannot mount: pods mount
/// Secrets of their own namespace only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{provider} keeps its credentials in Secret {secret_namespace}/{secret}, which voice pods in namespace {namespace} cannot mount; use a Provider in {namespace}, or isolation: shared"
)]
pub struct NotMountable {
    /// The provider.
    pub provider: String,
    /// The Secret's namespace.
    pub secret_namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The pods' namespace.
    pub namespace: String,
}

/// The credential mounts of a dedicated Agent's pods: Secrets in its own
/// namespace, projected under `<scope>/<provider>/`. A ClusterProvider
/// whose Secret lives in another namespace cannot be mounted (platform
/// credentials are not copied into tenant namespaces).
pub fn dedicated_mounts(
    namespace: &str,
    resolved: &[Resolved<'_>],
) -> Result<Vec<CredentialMount>, NotMountable> {
    let mut mounts = Vec::new();
    for p in resolved {
        let Some((secret_namespace, secret)) = p.secret(namespace) else {
            continue;
        };
        if secret_namespace != namespace {
            return Err(NotMountable {
                provider: p.describe(),
                secret_namespace,
                secret,
                namespace: namespace.to_owned(),
            });
        }
        mounts.push(CredentialMount {
            scope: p.scope(namespace),
            provider: p.name.to_owned(),
            secret,
            items: p.items(),
        });
    }
    mounts.sort();
    mounts.dedup();
    Ok(mounts)
}

/// The pool's copy of one provider's credentials.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MirrorPlan {
    /// `namespace` or `cluster`.
    pub scope: String,
    /// The provider.
    pub provider: String,
    /// Namespace of the source Secret.
    pub source_namespace: String,
    /// Name of the source Secret.
    pub source: String,
    /// `(key in the source, key the vendor needs)`.
    pub items: Vec<(String, String)>,
    /// Name of the copy in the pool's namespace.
    pub mirror: String,
}

/// The credential copies the pool needs for one shared Agent.
pub fn pool_mirrors(namespace: &str, resolved: &[Resolved<'_>], pool: &str) -> Vec<MirrorPlan> {
    let mut plans: Vec<MirrorPlan> = resolved
        .iter()
        .filter_map(|p| {
            let (source_namespace, source) = p.secret(namespace)?;
            let scope = p.scope(namespace);
            Some(MirrorPlan {
                mirror: mirror_name(pool, &scope, p.name),
                scope,
                provider: p.name.to_owned(),
                source_namespace,
                source,
                items: p.items(),
            })
        })
        .collect();
    plans.sort();
    plans.dedup();
    plans
}

/// How the pool mounts a copy: the copy already uses the vendor's key names.
pub fn pool_mount(plan: &MirrorPlan) -> CredentialMount {
    CredentialMount {
        scope: plan.scope.clone(),
        provider: plan.provider.clone(),
        secret: plan.mirror.clone(),
        items: plan
            .items
            .iter()
            .map(|(_, file)| (file.clone(), file.clone()))
            .collect(),
    }
}

/// Whether the Agent names the Objective `name` (both in the Agent's
/// namespace).
pub fn uses_objective(agent: &Agent, namespace: &str, name: &str) -> bool {
    agent.namespace().as_deref() == Some(namespace)
        && agent.spec.objectives.iter().any(|o| o.name == name)
}

/// Whether the Agent names the Provider `namespace/name`.
pub fn uses_provider(agent: &Agent, namespace: &str, name: &str) -> bool {
    agent.namespace().as_deref() == Some(namespace)
        && all_refs(agent)
            .iter()
            .any(|r| r.kind == ProviderKind::Provider && r.name == name)
}

/// Whether the Agent names the ClusterProvider `name`.
pub fn uses_cluster_provider(agent: &Agent, name: &str) -> bool {
    all_refs(agent)
        .iter()
        .any(|r| r.kind == ProviderKind::ClusterProvider && r.name == name)
}

/// Whether a provider spec reads the Secret `namespace/name`; `own` is the
/// provider's namespace (`None` for a ClusterProvider).
pub fn reads_secret(spec: &ProviderSpec, own: Option<&str>, namespace: &str, name: &str) -> bool {
    let Some(r) = spec.credentials_secret_ref.as_ref() else {
        return false;
    };
    let secret_namespace = match own {
        Some(ns) => Some(ns),
        None => r.namespace.as_deref(),
    };
    r.name == name && secret_namespace == Some(namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::agent::AgentSpec;
    use dialtone_crds::provider::ClusterProviderSpec;

    fn agent(yaml: &str) -> Agent {
        let spec: AgentSpec = serde_yaml::from_str(yaml).expect("agent spec");
        let mut a = Agent::new("reception", spec);
        a.metadata.namespace = Some("tenant-a".into());
        a
    }

    fn provider(name: &str, yaml: &str) -> Arc<Provider> {
        let spec: ProviderSpec = serde_yaml::from_str(yaml).expect("provider spec");
        let mut p = Provider::new(name, spec);
        p.metadata.namespace = Some("tenant-a".into());
        Arc::new(p)
    }

    fn cluster(name: &str, yaml: &str) -> Arc<ClusterProvider> {
        let spec: ProviderSpec = serde_yaml::from_str(yaml).expect("provider spec");
        Arc::new(ClusterProvider::new(
            name,
            ClusterProviderSpec { provider: spec },
        ))
    }

    fn tenant(name: &str, namespace: Option<&str>) -> Arc<Tenant> {
        let mut spec: dialtone_crds::tenant::TenantSpec =
            serde_yaml::from_str("displayName: T\nprofile: {timezone: UTC}\n")
                .expect("tenant spec");
        spec.namespace = namespace.map(str::to_owned);
        Arc::new(Tenant::new(name, spec))
    }

    #[test]
    fn tenants_are_found_by_their_namespace_alike_by_scan_and_index() {
        let tenants = vec![
            tenant("a", None),
            tenant("b", Some("clinic-b")),
            // Claims a namespace already claimed: the first Tenant keeps it.
            tenant("c", Some("clinic-b")),
        ];
        let index = TenantsByNamespace::new(&tenants);
        for (namespace, expected) in [
            ("tenant-a", Some("a")),
            ("clinic-b", Some("b")),
            ("tenant-b", None),
            ("tenant-", None),
            ("a", None),
        ] {
            let scanned = tenant_of(&tenants, namespace).map(|t| t.name_any());
            let indexed = index.get(namespace).map(|t| t.name_any());
            assert_eq!(scanned.as_deref(), expected, "scan of {namespace}");
            assert_eq!(indexed.as_deref(), expected, "index of {namespace}");
        }
    }

    const AGENT: &str = r#"
objectives: [{name: booking}]
providers:
  telephony: {name: twilio}
  stt: {name: deepgram, kind: ClusterProvider}
  tts: {name: speech}
workflows:
  - {name: hook, trigger: callCompleted, action: webhook, provider: {name: hooks}}
"#;

    fn providers() -> Vec<Arc<Provider>> {
        vec![
            provider(
                "twilio",
                "type: telephony\nvendor: twilio\ncredentialsSecretRef: {name: twilio-creds, keys: {authToken: token}}\n",
            ),
            provider("speech", "type: tts\nvendor: builtin\n"),
        ]
    }

    #[test]
    fn dedicated_mounts_project_vendor_key_names() {
        let a = agent(AGENT);
        let ps = providers();
        let cs = vec![cluster("deepgram", "type: stt\nvendor: builtin\n")];
        let resolved: Vec<_> = role_refs(&a)
            .into_iter()
            .filter_map(|r| find(r, "tenant-a", &ps, &cs))
            .collect();
        assert_eq!(resolved.len(), 3);
        let mounts = dedicated_mounts("tenant-a", &resolved).expect("mountable");
        assert_eq!(
            mounts,
            [CredentialMount {
                scope: "tenant-a".into(),
                provider: "twilio".into(),
                secret: "twilio-creds".into(),
                items: vec![
                    ("accountSid".into(), "accountSid".into()),
                    ("token".into(), "authToken".into())
                ],
            }]
        );
    }

    #[test]
    fn cluster_credentials_elsewhere_cannot_be_mounted_by_dedicated_pods() {
        let a = agent(AGENT);
        let ps = providers();
        let cs = vec![cluster(
            "deepgram",
            "type: stt\nvendor: deepgram\ncredentialsSecretRef: {name: dg, namespace: dialtone-system}\n",
        )];
        let resolved: Vec<_> = role_refs(&a)
            .into_iter()
            .filter_map(|r| find(r, "tenant-a", &ps, &cs))
            .collect();
        let err = dedicated_mounts("tenant-a", &resolved).expect_err("not mountable");
        assert_eq!(err.provider, "ClusterProvider/deepgram");
        assert!(err.to_string().contains("dialtone-system/dg"), "{err}");
        // The pool copies them instead, under _cluster/.
        let mirrors = pool_mirrors("tenant-a", &resolved, "pool");
        assert_eq!(mirrors.len(), 2);
        let dg = mirrors
            .iter()
            .find(|m| m.provider == "deepgram")
            .expect("deepgram");
        assert_eq!(dg.scope, CLUSTER_SCOPE);
        assert_eq!(
            (dg.source_namespace.as_str(), dg.source.as_str()),
            ("dialtone-system", "dg")
        );
        let mount = pool_mount(dg);
        assert_eq!(mount.secret, dg.mirror);
        assert_eq!(mount.items, [("apiKey".to_owned(), "apiKey".to_owned())]);
    }

    #[test]
    fn dependencies_are_found_by_kind_namespace_and_name() {
        let a = agent(AGENT);
        assert!(uses_objective(&a, "tenant-a", "booking"));
        assert!(!uses_objective(&a, "tenant-b", "booking"));
        assert!(uses_provider(&a, "tenant-a", "twilio"));
        assert!(
            uses_provider(&a, "tenant-a", "hooks"),
            "workflow providers count"
        );
        assert!(
            !uses_provider(&a, "tenant-a", "deepgram"),
            "that one is a ClusterProvider"
        );
        assert!(uses_cluster_provider(&a, "deepgram"));
        assert!(!uses_cluster_provider(&a, "twilio"));
        let p = providers();
        assert!(reads_secret(
            &p[0].spec,
            Some("tenant-a"),
            "tenant-a",
            "twilio-creds"
        ));
        assert!(!reads_secret(
            &p[0].spec,
            Some("tenant-a"),
            "tenant-b",
            "twilio-creds"
        ));
        let c = cluster(
            "deepgram",
            "type: stt\nvendor: deepgram\ncredentialsSecretRef: {name: dg, namespace: platform}\n",
        );
        assert!(reads_secret(&c.spec.provider, None, "platform", "dg"));
    }
}
