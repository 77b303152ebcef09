//! Registry credentials for the voice image: the platform's image pull
//! Secrets, copied from the voice pool's namespace into each tenant
//! namespace, where a dedicated tenant's voice pods pull with them (a pod
//! can name only Secrets of its own namespace).

use dialtone_crds::Tenant;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{FIELD_MANAGER, build};
use crate::runtime::timed;

/// Where the pull Secrets come from and their names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullSecrets {
    /// The namespace holding the originals (the voice pool's).
    pub namespace: String,
    /// Their names, as voice pods reference them.
    pub names: Vec<String>,
}

/// Why a pull Secret could not be copied.
#[derive(Debug, thiserror::Error)]
#[error("image pull Secret {what}: {source}")]
pub struct PullSecretError {
    /// Which Secret, `namespace/name`.
    what: String,
    /// The API error.
    source: kube::Error,
}

/// The copy of `source` for the tenant's namespace: same name, type and
/// data, labelled as the tenant's.
pub fn copy(source: &Secret, tenant: &Tenant, namespace: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(source.name_any()),
            namespace: Some(namespace.to_owned()),
            labels: Some(build::labels(&tenant.name_any())),
            ..ObjectMeta::default()
        },
        type_: source.type_.clone(),
        data: Some(source.data.clone().unwrap_or_default()),
        ..Secret::default()
    }
}

/// Copies every pull Secret into the tenant's namespace; returns the names
/// of those missing from the source namespace.
pub async fn sync(
    client: &kube::Client,
    settings: &PullSecrets,
    tenant: &Tenant,
    namespace: &str,
) -> Result<Vec<String>, PullSecretError> {
    let mut missing = Vec::new();
    if settings.namespace == namespace {
        return Ok(missing);
    }
    let sources: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let targets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for name in &settings.names {
        let failed = |ns: &str| {
            let what = format!("{ns}/{name}");
            move |source| PullSecretError { what, source }
        };
        let Some(source) = timed(sources.get_opt(name))
            .await
            .map_err(failed(&settings.namespace))?
        else {
            missing.push(name.clone());
            continue;
        };
        timed(targets.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&copy(&source, tenant, namespace)),
        ))
        .await
        .map_err(failed(namespace))?;
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn a_copy_keeps_type_and_data_and_is_the_tenants() {
        let tenant = super::super::tests::test_tenant("acme");
        let source = Secret {
            metadata: ObjectMeta {
                name: Some("regcred".into()),
                namespace: Some("dialtone-system".into()),
                resource_version: Some("42".into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(
                ".dockerconfigjson".into(),
                ByteString(b"{}".to_vec()),
            )])),
            ..Secret::default()
        };
        let c = copy(&source, &tenant, "tenant-acme");
        assert_eq!(c.metadata.namespace.as_deref(), Some("tenant-acme"));
        assert_eq!(c.metadata.resource_version, None);
        assert_eq!(c.type_, source.type_);
        assert_eq!(c.data, source.data);
        assert_eq!(
            c.labels().get(crate::TENANT_LABEL).map(String::as_str),
            Some("acme")
        );
    }
}
