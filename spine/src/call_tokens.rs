//! Tokens that open text calls (`/v1/calls`) for one tenant, in
//! `call_tokens`. Only a token's SHA-256 is stored.
//!
//! Two kinds are accepted:
//! * the **tenant token** (`dtc_…`), which the operator issues into a Secret
//!   of the tenant's namespace, for servers that place test or load calls;
//! * a **widget token** (`dtw1.<expiry>.<mac>.<tenant>`), which the tenant's
//!   own backend mints for a browser from the tenant token: an HMAC-SHA256,
//!   keyed with the SHA-256 of the tenant token, of `dtw1.<expiry>.<tenant>`.
//!   It lives at most [`MAX_WIDGET_TTL_SECONDS`], so a token copied out of
//!   a web page is worth little.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a tenant token.
pub const TENANT_PREFIX: &str = "dtc_";
/// The prefix of a widget token.
pub const WIDGET_PREFIX: &str = "dtw1.";
/// The longest a widget token may be valid for, from now.
pub const MAX_WIDGET_TTL_SECONDS: i64 = 3_600;
/// The longest token read; anything longer is refused before hashing.
pub const MAX_TOKEN_BYTES: usize = 512;

/// The SHA-256 of a token: what is stored, and a widget token's key.
pub type TokenDigest = [u8; 32];

/// Why tokens could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The database failed.
    #[error("call_tokens: {0}")]
    Db(#[from] sqlx::Error),
}

/// The SHA-256 of `token`.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A new tenant token from 244 bits of the operating system's randomness
/// (two version-4 UUIDs).
pub fn new_tenant_token() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("{TENANT_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn widget_mac(key: &TokenDigest, tenant: &str, expires: i64) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(format!("{WIDGET_PREFIX}{expires}.{tenant}").as_bytes());
    Some(mac)
}

/// A widget token for `tenant` valid until `expires` (Unix seconds), minted
/// with the tenant token `tenant_token`.
pub fn mint_widget(tenant_token: &str, tenant: &str, expires: i64) -> String {
    let tag = widget_mac(&digest(tenant_token), tenant, expires)
        .map(|m| URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{WIDGET_PREFIX}{expires}.{tag}.{tenant}")
}

/// A widget token's parts, before its MAC is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WidgetToken {
    /// The tenant it names.
    pub tenant: String,
    /// Its expiry, Unix seconds.
    pub expires: i64,
    mac: Vec<u8>,
}

/// What a presented token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presented {
    /// A tenant token, by digest.
    Tenant(TokenDigest),
    /// A widget token that is well formed and within its life at `now`.
    Widget(WidgetToken),
}

/// Why a presented token is refused before any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("the token is too long")]
    TooLong,
    /// Neither kind.
    #[error("not a Dialtone call token")]
    Unknown,
    /// A widget token whose parts do not parse.
    #[error("a malformed widget token")]
    Widget,
    /// A widget token past its expiry, or valid for longer than allowed.
    #[error("the widget token is expired or valid for too long")]
    Expired,
}

/// Parses `token` as presented at `now` (Unix seconds).
pub fn parse(token: &str, now: i64) -> Result<Presented, Malformed> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Malformed::TooLong);
    }
    if token.starts_with(TENANT_PREFIX) {
        return Ok(Presented::Tenant(digest(token)));
    }
    let Some(rest) = token.strip_prefix(WIDGET_PREFIX) else {
        return Err(Malformed::Unknown);
    };
    let mut parts = rest.splitn(3, '.');
    let (Some(expires), Some(mac), Some(tenant)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed::Widget);
    };
    let expires: i64 = expires.parse().map_err(|_| Malformed::Widget)?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Malformed::Widget)?;
    if tenant.is_empty() {
        return Err(Malformed::Widget);
    }
    if expires <= now || expires - now > MAX_WIDGET_TTL_SECONDS {
        return Err(Malformed::Expired);
    }
    Ok(Presented::Widget(WidgetToken {
        tenant: tenant.to_owned(),
        expires,
        mac,
    }))
}

impl WidgetToken {
    /// Whether the token was minted with the tenant token whose digest is
    /// `key` (compared in constant time).
    pub fn signed_with(&self, key: &TokenDigest) -> bool {
        widget_mac(key, &self.tenant, self.expires)
            .is_some_and(|m| m.verify_slice(&self.mac).is_ok())
    }
}

/// Makes `token` the tenant's current token: stored if new, never expiring;
/// the tenant's other tokens expire after `grace`, so clients that hold
/// them can move over. Returns whether the token was new.
pub async fn issue(
    pool: &PgPool,
    tenant: &str,
    token: &TokenDigest,
    grace: Duration,
) -> Result<bool, TokenError> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO call_tokens (token_sha256, tenant) VALUES ($1, $2) \
         ON CONFLICT (token_sha256) DO UPDATE SET expires_at = NULL \
         WHERE call_tokens.tenant = EXCLUDED.tenant AND call_tokens.expires_at IS NOT NULL",
    )
    .bind(token.as_slice())
    .bind(tenant)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE call_tokens SET expires_at = now() + make_interval(secs => $3) \
         WHERE tenant = $1 AND token_sha256 <> $2 AND expires_at IS NULL",
    )
    .bind(tenant)
    .bind(token.as_slice())
    .bind(grace.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(inserted > 0)
}

/// The tenant a tenant token opens calls for, if it is stored and valid.
pub async fn tenant_of(pool: &PgPool, token: &TokenDigest) -> Result<Option<String>, TokenError> {
    Ok(sqlx::query_scalar(
        "SELECT tenant FROM call_tokens \
         WHERE token_sha256 = $1 AND (expires_at IS NULL OR expires_at > now())",
    )
    .bind(token.as_slice())
    .fetch_optional(pool)
    .await?)
}

/// The digests of the tenant's valid tokens (a widget token's keys).
pub async fn keys_of(pool: &PgPool, tenant: &str) -> Result<Vec<TokenDigest>, TokenError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT token_sha256 FROM call_tokens \
         WHERE tenant = $1 AND (expires_at IS NULL OR expires_at > now()) \
         ORDER BY created_at DESC LIMIT 8",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| TokenDigest::try_from(r.as_slice()).ok())
        .collect())
}

/// Forgets every token of the tenant (it is being deleted).
pub async fn revoke_tenant(pool: &PgPool, tenant: &str) -> Result<u64, TokenError> {
    Ok(sqlx::query("DELETE FROM call_tokens WHERE tenant = $1")
        .bind(tenant)
        .execute(pool)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_tenant_token_is_recognised_and_hashed() {
        let token = new_tenant_token();
        assert!(token.starts_with(TENANT_PREFIX));
        assert_eq!(token.len(), TENANT_PREFIX.len() + 43);
        assert_ne!(token, new_tenant_token());
        assert_eq!(parse(&token, NOW), Ok(Presented::Tenant(digest(&token))));
    }

    #[test]
    fn a_widget_token_verifies_only_with_its_tenant_token() {
        let token = new_tenant_token();
        let widget = mint_widget(&token, "harbour-dental", NOW + 600);
        let Ok(Presented::Widget(w)) = parse(&widget, NOW) else {
            panic!("{widget} did not parse");
        };
        assert_eq!(w.tenant, "harbour-dental");
        assert!(w.signed_with(&digest(&token)));
        assert!(!w.signed_with(&digest(&new_tenant_token())));
        // Naming another tenant breaks the MAC.
        let forged = widget.replace("harbour-dental", "other-clinic");
        let Ok(Presented::Widget(f)) = parse(&forged, NOW) else {
            panic!("{forged} did not parse");
        };
        assert!(!f.signed_with(&digest(&token)));
    }

    #[test]
    fn expired_long_lived_and_malformed_tokens_are_refused() {
        let token = new_tenant_token();
        let late = mint_widget(&token, "a", NOW);
        assert_eq!(parse(&late, NOW), Err(Malformed::Expired));
        let long = mint_widget(&token, "a", NOW + MAX_WIDGET_TTL_SECONDS + 1);
        assert_eq!(parse(&long, NOW), Err(Malformed::Expired));
        assert_eq!(parse("dtw1.x.y.z", NOW), Err(Malformed::Widget));
        assert_eq!(parse("dtw1.1800000600.AAAA", NOW), Err(Malformed::Widget));
        assert_eq!(parse("Bearer xyz", NOW), Err(Malformed::Unknown));
        let huge = format!("{TENANT_PREFIX}{}", "a".repeat(MAX_TOKEN_BYTES));
        assert_eq!(parse(&huge, NOW), Err(Malformed::TooLong));
    }
}
