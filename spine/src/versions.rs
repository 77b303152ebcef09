//! Config versions in `config_versions`: immutable compiled Agent configs
//! named by the SHA-256 of their canonical JSON.
//!
//! The exact canonical bytes are stored next to the JSONB copy (JSONB
//! reorders keys, so the hashed bytes cannot be rebuilt from it), and
//! [`load`] verifies them against the hash with
//! [`dialtone_engine::load_version`]: a corrupted or hand-edited row is
//! refused, never run.

use dialtone_engine::{CompiledConfig, ConfigVersion, LoadError, load_version};
use sqlx::PgPool;

/// Why a config version could not be stored, loaded or pruned.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The database failed.
    #[error("config_versions: {0}")]
    Db(#[from] sqlx::Error),
    /// The stored bytes are not the version they are named after.
    #[error("config version {hash}: {source}")]
    Load {
        /// The version.
        hash: String,
        /// Why it does not load.
        #[source]
        source: LoadError,
    },
    /// The row predates the `canonical` column.
    #[error("config version {0} was stored without its canonical bytes and cannot be verified")]
    NoCanonicalBytes(String),
}

/// Stores `version` for the Agent `namespace/agent` of `tenant`. Versions
/// are immutable, so storing one that exists changes nothing. Returns
/// whether a row was inserted.
pub async fn put(
    pool: &PgPool,
    version: &ConfigVersion,
    tenant: &str,
    namespace: &str,
    agent: &str,
) -> Result<bool, VersionError> {
    let inserted = sqlx::query(
        "INSERT INTO config_versions (hash, tenant, namespace, agent, core_version, config, canonical) \
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $6) \
         ON CONFLICT (hash) DO NOTHING",
    )
    .bind(&version.hash)
    .bind(tenant)
    .bind(namespace)
    .bind(agent)
    .bind(&version.config.core_version)
    .bind(&version.canonical_json)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The config named `hash`, verified against its hash; `None` when no such
/// version is stored.
pub async fn load(pool: &PgPool, hash: &str) -> Result<Option<CompiledConfig>, VersionError> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT canonical FROM config_versions WHERE hash = $1")
            .bind(hash)
            .fetch_optional(pool)
            .await?;
    match row {
        None => Ok(None),
        Some((None,)) => Err(VersionError::NoCanonicalBytes(hash.to_owned())),
        Some((Some(bytes),)) => {
            load_version(hash, &bytes)
                .map(Some)
                .map_err(|source| VersionError::Load {
                    hash: hash.to_owned(),
                    source,
                })
        }
    }
}

/// The stored versions of the Agent `namespace/agent`, newest first.
pub async fn list(
    pool: &PgPool,
    namespace: &str,
    agent: &str,
) -> Result<Vec<String>, VersionError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT hash FROM config_versions WHERE namespace = $1 AND agent = $2 \
         ORDER BY created_at DESC, hash",
    )
    .bind(namespace)
    .bind(agent)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// Deletes the versions of the Agent `namespace/agent` that are not in
/// `keep`, except those a call in flight uses (`calls.ended_at IS NULL`) or
/// a phone route points at. Returns the deleted hashes, sorted.
pub async fn prune(
    pool: &PgPool,
    namespace: &str,
    agent: &str,
    keep: &[String],
) -> Result<Vec<String>, VersionError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM config_versions v \
         WHERE v.namespace = $1 AND v.agent = $2 AND NOT (v.hash = ANY($3)) \
           AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.config_version = v.hash AND c.ended_at IS NULL) \
           AND NOT EXISTS (SELECT 1 FROM phone_routes r WHERE r.active_version = v.hash) \
         RETURNING v.hash",
    )
    .bind(namespace)
    .bind(agent)
    .bind(keep)
    .fetch_all(pool)
    .await?;
    let mut deleted: Vec<String> = rows.into_iter().map(|(h,)| h).collect();
    deleted.sort();
    Ok(deleted)
}
