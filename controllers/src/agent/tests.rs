//! The pipeline's pure parts on the examples: compile, smoke test, and the
//! voice pods built from the result.

use std::sync::Arc;

use dialtone_crds::agent::Agent;
use dialtone_crds::{ClusterProvider, Objective, Provider, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::Deserialize;

use super::build::{self, PoolSettings, VoiceSettings};
use super::names::voice_name;
use super::resolve::{self, Resolved};
use super::{Error, rollout, test_calls};

struct Example {
    tenant: Tenant,
    objectives: Vec<Arc<Objective>>,
    providers: Vec<Arc<Provider>>,
    agent: Agent,
}

fn docs(path: &str) -> Vec<serde_yaml::Value> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path);
    let text = std::fs::read_to_string(&file).expect("example file");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("yaml"))
        .collect()
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[serde_yaml::Value], kind: &str) -> Vec<T> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| serde_yaml::from_value(d.clone()).expect(kind))
        .collect()
}

fn arcs<T: serde::de::DeserializeOwned>(dir: &str, file: &str, kind: &str) -> Vec<Arc<T>> {
    of_kind(&docs(&format!("{dir}/{file}")), kind)
        .into_iter()
        .map(Arc::new)
        .collect()
}

fn example(dir: &str) -> Example {
    let mut agent: Agent = of_kind(&docs(&format!("{dir}/agents.yaml")), "Agent").remove(0);
    agent.metadata.uid = Some(format!("uid-{dir}"));
    Example {
        tenant: of_kind(&docs(&format!("{dir}/tenant.yaml")), "Tenant").remove(0),
        objectives: arcs(dir, "objectives.yaml", "Objective"),
        providers: arcs(dir, "providers.yaml", "Provider"),
        agent,
    }
}

fn dental() -> Example {
    example("dental-clinic")
}

fn compiled(e: &Example) -> ConfigVersion {
    compile(&CompileInput {
        agent: &e.agent,
        tenant: &e.tenant,
        objectives: e.objectives.iter().map(AsRef::as_ref).collect(),
        providers: e.providers.iter().map(AsRef::as_ref).collect(),
        cluster_providers: vec![],
    })
    .expect("the example compiles")
}

fn voice() -> VoiceSettings {
    VoiceSettings {
        image: "ghcr.io/dialtone/dialtone-voice:0.1.0".into(),
        port: 8080,
        drain_seconds: 300,
        public_url: Some("https://voice.example.com".into()),
        secret: "dialtone-voice".into(),
        image_pull_secrets: vec!["registry".into()],
    }
}

fn owner(agent: &Agent) -> OwnerReference {
    use kube::Resource;
    agent.controller_owner_ref(&()).expect("owner")
}

fn resolved<'a>(e: &'a Example, cluster: &'a [Arc<ClusterProvider>]) -> Vec<Resolved<'a>> {
    resolve::role_refs(&e.agent)
        .into_iter()
        .filter_map(|r| resolve::find(r, "tenant-harbour-dental", &e.providers, cluster))
        .collect()
}

fn dedicated(e: &Example) -> build::DedicatedChildren {
    let mounts =
        resolve::dedicated_mounts("tenant-harbour-dental", &resolved(e, &[])).expect("mountable");
    build::dedicated(
        &voice_name("reception"),
        "tenant-harbour-dental",
        "harbour-dental",
        "reception",
        &e.agent.spec.runtime,
        &mounts,
        &voice(),
        "dialtone-voice",
        owner(&e.agent),
    )
    .expect("children")
}

#[test]
fn the_dental_example_compiles_and_passes_its_smoke_test() {
    let e = dental();
    let v = compiled(&e);
    let tests = test_calls(&e.agent, &e.objectives);
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0].1.len(), 4);
    let smoke = rollout::smoke_test(&v.config, &tests);
    assert_eq!(smoke.failure, None);
    assert_eq!(smoke.ran, 4);
    assert_eq!(smoke.record(), rollout::PASSED);
}

#[test]
fn every_example_agent_compiles_and_passes_its_smoke_test() {
    let cluster: Vec<Arc<ClusterProvider>> =
        of_kind(&docs("platform/providers.yaml"), "ClusterProvider")
            .into_iter()
            .map(Arc::new)
            .collect();
    for dir in ["dental-clinic", "law-firm", "plumber"] {
        let e = example(dir);
        let v = compile(&CompileInput {
            agent: &e.agent,
            tenant: &e.tenant,
            objectives: e.objectives.iter().map(AsRef::as_ref).collect(),
            providers: e.providers.iter().map(AsRef::as_ref).collect(),
            cluster_providers: cluster.iter().map(AsRef::as_ref).collect(),
        })
        .unwrap_or_else(|errors| panic!("{dir}: {errors}"));
        let tests = test_calls(&e.agent, &e.objectives);
        assert!(!tests.is_empty(), "{dir} has test calls");
        let smoke = rollout::smoke_test(&v.config, &tests);
        assert_eq!(smoke.failure, None, "{dir}");
        // Every provider the voice pods use resolves, with mountable
        // credentials.
        let namespace = e.tenant.namespace_name();
        let resolved: Vec<_> = resolve::role_refs(&e.agent)
            .into_iter()
            .filter_map(|r| resolve::find(r, &namespace, &e.providers, &cluster))
            .collect();
        assert_eq!(resolved.len(), resolve::role_refs(&e.agent).len(), "{dir}");
        resolve::dedicated_mounts(&namespace, &resolved).expect("mountable");
    }
}

#[test]
fn a_failing_test_call_names_the_objective_test_and_turn() {
    let mut e = dental();
    let mut objective = (*e.objectives[0]).clone();
    let test = &mut objective.spec.tests[0];
    let expect = test.turns[1].expect.as_mut().expect("turn 2 expects");
    expect.step = Some("ask-service".into());
    e.objectives = vec![Arc::new(objective)];
    let v = compiled(&e);
    let smoke = rollout::smoke_test(&v.config, &test_calls(&e.agent, &e.objectives));
    let failure = smoke.failure.expect("fails");
    assert!(
        failure.starts_with("objective book-appointment: "),
        "{failure}"
    );
    assert!(
        failure.contains("books a check-up on Thursday afternoon"),
        "{failure}"
    );
    assert!(failure.contains("turn 2"), "{failure}");
    assert_eq!(smoke.ran, 1, "the smoke test stops at the first failure");
}

#[test]
fn a_new_version_does_not_change_the_pod_template() {
    let e = dental();
    let v1 = compiled(&e);
    let before = dedicated(&e);
    let mut edited = dental();
    let mut objective = (*edited.objectives[0]).clone();
    objective.spec.description = Some("edited".into());
    objective.spec.silence =
        Some(serde_yaml::from_str("{reprompts: 1, then: end}").expect("silence"));
    edited.objectives = vec![Arc::new(objective)];
    let v2 = compiled(&edited);
    assert_ne!(v1.hash, v2.hash, "the edit is a new version");
    let after = dedicated(&edited);
    assert_eq!(before, after);
    let json = serde_json::to_string(&after).expect("json");
    for v in [&v1, &v2] {
        let hex = v.hash.trim_start_matches("sha256:");
        assert!(!json.contains(&hex[..16]), "the pods never name a version");
    }
}

#[test]
fn dedicated_voice_pods_are_restricted_probed_spread_and_drain() {
    let e = dental();
    let c = dedicated(&e);
    let d = c.deployment.spec.as_ref().expect("spec");
    assert_eq!(d.replicas, None, "the autoscaler owns replicas");
    let pod = d.template.spec.as_ref().expect("pod");
    assert_eq!(pod.termination_grace_period_seconds, Some(315));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("dialtone-voice"));
    let psc = pod.security_context.as_ref().expect("pod security");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let spread = pod.topology_spread_constraints.as_ref().expect("spread");
    assert_eq!(spread.len(), 2);
    assert!(
        spread
            .iter()
            .all(|s| s.when_unsatisfiable == "ScheduleAnyway")
    );
    let container = &pod.containers[0];
    assert_eq!(container.name, "dialtone-voice");
    let sc = container.security_context.as_ref().expect("security");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(path(&container.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(path(&container.readiness_probe).as_deref(), Some("/readyz"));
    let resources = container.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert_eq!(requests["cpu"].0, "250m");
    assert_eq!(requests["memory"].0, "256Mi");
    assert!(
        resources
            .limits
            .as_ref()
            .expect("limits")
            .get("cpu")
            .is_none()
    );
    let env: Vec<(&str, Option<&str>)> = container
        .env
        .as_ref()
        .expect("env")
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_deref()))
        .collect();
    assert!(env.contains(&("DIALTONE_DRAIN_SECONDS", Some("300"))));
    let per_pod = e.agent.spec.runtime.calls_per_pod;
    let cap = (per_pod * 2).to_string();
    assert!(
        env.contains(&("DIALTONE_MAX_CALLS", Some(cap.as_str()))),
        "twice the {per_pod} calls the autoscaler aims at"
    );
    assert!(env.contains(&("DIALTONE_PUBLIC_URL", Some("https://voice.example.com"))));
    assert!(
        env.contains(&("DATABASE_URL", None)),
        "from the voice Secret"
    );

    // The telephony Provider's Secret, with its keys named for the vendor.
    let volume = pod
        .volumes
        .as_ref()
        .expect("volumes")
        .iter()
        .find(|v| v.name == "credentials")
        .expect("credentials volume");
    let sources = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.clone())
        .expect("sources");
    let paths: Vec<String> = sources
        .iter()
        .flat_map(|s| s.secret.iter())
        .flat_map(|s| s.items.iter().flatten())
        .map(|i| i.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "tenant-harbour-dental/deepgram/apiKey",
            "tenant-harbour-dental/elevenlabs/apiKey",
            "tenant-harbour-dental/twilio/accountSid",
            "tenant-harbour-dental/twilio/authToken",
        ]
    );
    let mount = container
        .volume_mounts
        .as_ref()
        .expect("mounts")
        .iter()
        .find(|m| m.name == "credentials")
        .expect("mounted");
    assert_eq!(mount.mount_path, build::CREDENTIALS_DIR);

    // Everything is owned by the Agent and selects the same pods.
    for meta in [
        &c.deployment.metadata,
        &c.service.metadata,
        &c.pdb.metadata,
        &c.hpa.metadata,
    ] {
        assert_eq!(meta.name.as_deref(), Some("reception-voice"));
        let owners = meta.owner_references.as_ref().expect("owner");
        assert_eq!(owners[0].kind, "Agent");
        assert_eq!(owners[0].controller, Some(true));
    }
    let hpa = c.hpa.spec.as_ref().expect("hpa");
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(1), 3));
    let metric = &hpa.metrics.as_ref().expect("metrics")[0];
    let pods = metric.pods.as_ref().expect("pods metric");
    assert_eq!(pods.metric.name, "dialtone_voice_active_calls");
    assert_eq!(pods.target.type_, "AverageValue");
    assert_eq!(
        pods.target.average_value.as_ref().map(|q| q.0.as_str()),
        Some("20")
    );
    let pdb = c.pdb.spec.as_ref().expect("pdb");
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    let svc = c.service.spec.as_ref().expect("service");
    assert_eq!(svc.selector, d.selector.match_labels);
}

#[test]
fn invalid_runtime_quantities_are_refused() {
    let mut e = dental();
    e.agent.spec.runtime.memory = "lots".into();
    let err = build::dedicated(
        "reception-voice",
        "tenant-harbour-dental",
        "harbour-dental",
        "reception",
        &e.agent.spec.runtime,
        &[],
        &voice(),
        "dialtone-voice",
        owner(&e.agent),
    )
    .expect_err("invalid");
    assert!(err.to_string().contains("spec.runtime.memory"), "{err}");
}

#[test]
fn the_config_map_is_immutable_named_by_hash_and_owned() {
    let e = dental();
    let v = compiled(&e);
    let cm = build::config_map(
        &v,
        "harbour-dental",
        "tenant-harbour-dental",
        "reception",
        owner(&e.agent),
    );
    let short = v.short().to_owned();
    assert_eq!(cm.metadata.name, Some(format!("reception-{short}")));
    assert_eq!(cm.immutable, Some(true));
    assert_eq!(
        cm.data.as_ref().expect("data")[build::CONFIG_KEY],
        v.canonical_json
    );
    let annotations = cm.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(annotations[super::names::VERSION_ANNOTATION], v.hash);
    let labels = cm.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels[super::names::AGENT_LABEL], "reception");
    assert_eq!(labels[super::names::VERSION_LABEL], short);
}

#[test]
fn the_pool_mounts_copies_and_keeps_going_without_them() {
    let pool = PoolSettings {
        namespace: "dialtone-system".into(),
        name: "dialtone-voice-pool".into(),
        min_replicas: 2,
        max_replicas: 10,
        calls_per_pod: 50,
        cpu: "500m".into(),
        memory: "512Mi".into(),
    };
    let e = dental();
    let plans = resolve::pool_mirrors("tenant-harbour-dental", &resolved(&e, &[]), &pool.name);
    let mounts: Vec<_> = plans.iter().map(resolve::pool_mount).collect();
    let c = build::pool(&pool, &voice(), 3, &mounts).expect("pool");
    let spec = c.deployment.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().expect("pod");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("dialtone-voice-pool")
    );
    let pulls: Vec<&str> = pod
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        pulls,
        ["registry"],
        "the image is pulled with the platform's credentials"
    );
    let sources = pod.volumes.as_ref().expect("volumes")[2]
        .projected
        .as_ref()
        .and_then(|p| p.sources.clone())
        .expect("sources");
    assert_eq!(sources.len(), 3);
    assert!(
        sources
            .iter()
            .all(|s| s.secret.as_ref().and_then(|s| s.optional) == Some(true)),
        "one tenant's missing Secret must not stop the pool"
    );

    // A copy holds only the vendor's keys, under the vendor's names.
    let twilio = plans
        .iter()
        .find(|p| p.provider == "twilio")
        .expect("twilio");
    let data = std::collections::BTreeMap::from([
        (
            "accountSid".to_owned(),
            k8s_openapi::ByteString(b"AC1".to_vec()),
        ),
        (
            "authToken".to_owned(),
            k8s_openapi::ByteString(b"t".to_vec()),
        ),
        (
            "unrelated".to_owned(),
            k8s_openapi::ByteString(b"x".to_vec()),
        ),
    ]);
    let copy = build::mirror(
        &pool,
        &twilio.scope,
        &twilio.provider,
        ("tenant-harbour-dental", "twilio-credentials", "42"),
        &data,
        &twilio.items,
    );
    let keys: Vec<&String> = copy.data.as_ref().expect("data").keys().collect();
    assert_eq!(keys, ["accountSid", "authToken"]);
    assert_eq!(copy.metadata.name.as_deref(), Some(twilio.mirror.as_str()));
    assert_eq!(
        copy.metadata.annotations.as_ref().expect("annotations")[build::MIRROR_VERSION_ANNOTATION],
        "42"
    );
}

#[test]
fn error_categories() {
    let e = Error::Status(kube::Error::LinesCodecMaxLineLengthExceeded);
    assert_eq!(e.category(), "StatusWriteFailed");
    let db = Error::Routes(dialtone_spine::routes::RouteError::Db(
        sqlx::Error::PoolClosed,
    ));
    assert_eq!(db.category(), "DatabaseFailed");
}

mod mappers {
    use dialtone_crds::ProviderSpec;
    use dialtone_crds::agent::AgentSpec;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PartialObjectMeta;
    use kube::runtime::reflector::{self, ObjectRef, Store};
    use kube::runtime::watcher;

    use super::super::{Caches, Settings, deployment_dependents, secret_dependents};
    use super::*;

    fn store<K>(items: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let (reader, mut writer) = reflector::store();
        for item in items {
            writer.apply_watcher_event(&watcher::Event::Apply(item));
        }
        reader
    }

    fn agent(ns: &str, name: &str, yaml: &str) -> Agent {
        let spec: AgentSpec = serde_yaml::from_str(yaml).expect("agent");
        let mut a = Agent::new(name, spec);
        a.metadata.namespace = Some(ns.into());
        a
    }

    fn provider(ns: &str, name: &str, secret: &str) -> Provider {
        let spec: ProviderSpec = serde_yaml::from_str(&format!(
            "type: telephony\nvendor: twilio\ncredentialsSecretRef: {{name: {secret}}}\n"
        ))
        .expect("provider");
        let mut p = Provider::new(name, spec);
        p.metadata.namespace = Some(ns.into());
        p
    }

    fn tenant(name: &str, isolation: &str) -> Tenant {
        serde_yaml::from_str(&format!(
            "metadata: {{name: {name}}}\nspec: {{displayName: x, namespace: {name}, isolation: {isolation}, profile: {{timezone: UTC}}}}\n"
        ))
        .expect("tenant")
    }

    fn secret(ns: &str, name: &str) -> PartialObjectMeta<Secret> {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
        }))
        .expect("secret")
    }

    fn settings() -> Settings {
        Settings {
            voice: voice(),
            pool: PoolSettings {
                namespace: "dialtone-system".into(),
                name: "dialtone-voice-pool".into(),
                min_replicas: 1,
                max_replicas: 5,
                calls_per_pod: 50,
                cpu: "500m".into(),
                memory: "512Mi".into(),
            },
        }
    }

    fn caches() -> Caches {
        let with_twilio = "objectives: [{name: x}]\nproviders: {telephony: {name: twilio}}\n";
        Caches {
            agents: store(vec![
                agent("a", "front", with_twilio),
                agent("a", "back", "objectives: [{name: x}]\n"),
                agent("b", "other", with_twilio),
                agent("s", "pooled", "objectives: [{name: x}]\n"),
            ]),
            objectives: store(vec![]),
            providers: store(vec![
                provider("a", "twilio", "twilio-creds"),
                provider("b", "twilio", "twilio-creds"),
            ]),
            cluster: store(vec![]),
            tenants: store(vec![
                tenant("a", "dedicated"),
                tenant("b", "dedicated"),
                tenant("s", "shared"),
            ]),
            secrets: store(vec![]),
            deployments: store(vec![]),
        }
    }

    fn names(refs: Vec<ObjectRef<Agent>>) -> Vec<String> {
        let mut n: Vec<String> = refs
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_secret_reaches_exactly_the_agents_whose_providers_read_it() {
        let (c, s) = (caches(), settings());
        assert_eq!(
            names(secret_dependents(&secret("a", "twilio-creds"), &c, &s)),
            ["a/front"]
        );
        assert!(secret_dependents(&secret("a", "unrelated"), &c, &s).is_empty());
        // The voice Secret: the Agents whose pods read it.
        assert_eq!(
            names(secret_dependents(&secret("a", "dialtone-voice"), &c, &s)),
            ["a/back", "a/front"]
        );
        assert_eq!(
            names(secret_dependents(
                &secret("dialtone-system", "dialtone-voice"),
                &c,
                &s
            )),
            ["s/pooled"]
        );
    }

    #[test]
    fn a_deployment_reaches_its_owner_or_the_pools_agents() {
        let (c, s) = (caches(), settings());
        let owned: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "front-voice", "namespace": "a", "ownerReferences": [{
                "apiVersion": "dialtone.io/v1alpha1", "kind": "Agent", "name": "front", "uid": "u",
            }]},
        }))
        .expect("deployment");
        assert_eq!(names(deployment_dependents(&owned, &c, &s)), ["a/front"]);
        let pool: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "dialtone-voice-pool", "namespace": "dialtone-system"},
            "status": {"readyReplicas": 2},
        }))
        .expect("pool");
        assert_eq!(names(deployment_dependents(&pool, &c, &s)), ["s/pooled"]);
        let stranger: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "a"},
        }))
        .expect("other");
        assert!(deployment_dependents(&stranger, &c, &s).is_empty());
    }
}
