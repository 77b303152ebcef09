//! The tenant's call token: the operator keeps one in the Secret
//! `dialtone-calls-token` of the tenant's namespace and its SHA-256 in
//! `call_tokens`, where the voice pods check `/v1/calls` against it.
//! Deleting the Secret rotates the token; the old one keeps working for
//! [`ROTATION_GRACE`].

use std::collections::BTreeMap;
use std::time::Duration;

use dialtone_crds::Tenant;
use dialtone_spine::call_tokens::{self, TENANT_PREFIX, TokenError};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::{FIELD_MANAGER, build};
use crate::runtime::timed;

/// The Secret's name.
pub const SECRET: &str = "dialtone-calls-token";
/// The Secret's key holding the token.
pub const KEY: &str = "token";
/// How long a replaced token keeps opening calls.
pub const ROTATION_GRACE: Duration = Duration::from_secs(3_600);

/// Why the token could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum CallsTokenError {
    /// Reading or writing the Secret failed.
    #[error("Secret {namespace}/{SECRET}: {source}")]
    Secret {
        /// The tenant's namespace.
        namespace: String,
        /// The API error.
        source: kube::Error,
    },
    /// Storing the digest failed.
    #[error(transparent)]
    Store(#[from] TokenError),
}

/// The token a Secret holds, if it holds a well-formed one.
pub fn token_of(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(KEY)?;
    let token = std::str::from_utf8(&bytes.0).ok()?.trim();
    (token.starts_with(TENANT_PREFIX) && token.len() <= call_tokens::MAX_TOKEN_BYTES)
        .then(|| token.to_owned())
}

/// The Secret holding `token` for the tenant.
pub fn secret(tenant: &Tenant, namespace: &str, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(build::labels(&tenant.name_any())),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Makes sure the tenant has a token in its Secret and that the token is
/// the current one in `call_tokens`. Returns whether a token was issued
/// (first time, or the Secret was deleted or spoilt).
pub async fn ensure(
    client: &kube::Client,
    db: &sqlx::PgPool,
    tenant: &Tenant,
    namespace: &str,
) -> Result<bool, CallsTokenError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let failed = |source| CallsTokenError::Secret {
        namespace: namespace.to_owned(),
        source,
    };
    let existing = timed(api.get_opt(SECRET)).await.map_err(failed)?;
    let (token, made) = match existing.as_ref().and_then(token_of) {
        Some(token) => (token, false),
        None => {
            let token = call_tokens::new_tenant_token();
            timed(api.patch(
                SECRET,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret(tenant, namespace, &token)),
            ))
            .await
            .map_err(failed)?;
            (token, true)
        }
    };
    let stored = call_tokens::issue(
        db,
        &tenant.name_any(),
        &call_tokens::digest(&token),
        ROTATION_GRACE,
    )
    .await?;
    Ok(made || stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_round_trips_its_token_and_refuses_others() {
        let tenant = super::super::tests::test_tenant("acme");
        let token = call_tokens::new_tenant_token();
        let s = secret(&tenant, "tenant-acme", &token);
        assert_eq!(token_of(&s).as_deref(), Some(token.as_str()));
        assert_eq!(
            s.labels().get(crate::TENANT_LABEL).map(String::as_str),
            Some("acme")
        );
        let spoilt = secret(&tenant, "tenant-acme", "hunter2");
        assert_eq!(token_of(&spoilt), None);
    }
}
