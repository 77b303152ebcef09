//! Phone routes and config versions, read through the spine, with a cache of
//! versions by hash. Versions are immutable, so a cached version never needs
//! invalidating; routes are read per call, so an activation is seen by the
//! next call and never by one in flight (it holds its own `Arc`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use dialtone_engine::CompiledConfig;
use dialtone_spine::call_tokens::{self, TokenDigest, TokenError};
use dialtone_spine::routes::{self, Route, RouteError};
use dialtone_spine::versions::{self, VersionError};
use sqlx::PgPool;

/// Why routing or a version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading the route failed.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Reading call tokens failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Reading or verifying the version failed.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A route points at a version that is not stored.
    #[error("config version {0} is not in config_versions")]
    MissingVersion(String),
    /// PostgreSQL did not answer a ping.
    #[error("pinging PostgreSQL: {0}")]
    Ping(#[source] sqlx::Error),
}

/// Routes and versions, shared by every call of the pod.
#[derive(Debug)]
pub struct Store {
    pool: PgPool,
    versions: RwLock<HashMap<String, Arc<CompiledConfig>>>,
    reached: AtomicBool,
}

impl Store {
    /// A store over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            versions: RwLock::new(HashMap::new()),
            reached: AtomicBool::new(false),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether PostgreSQL has answered at least once.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    fn answered(&self) {
        self.reached.store(true, Ordering::Relaxed);
    }

    /// Checks that PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Ping)?;
        self.answered();
        Ok(())
    }

    /// The tenant a valid tenant token opens calls for.
    pub async fn token_tenant(&self, token: &TokenDigest) -> Result<Option<String>, StoreError> {
        let tenant = call_tokens::tenant_of(&self.pool, token).await?;
        self.answered();
        Ok(tenant)
    }

    /// The digests of the tenant's valid tokens.
    pub async fn token_keys(&self, tenant: &str) -> Result<Vec<TokenDigest>, StoreError> {
        let keys = call_tokens::keys_of(&self.pool, tenant).await?;
        self.answered();
        Ok(keys)
    }

    /// The route of `number`, if it has one.
    pub async fn route(&self, number: &str) -> Result<Option<Route>, StoreError> {
        let route = routes::lookup(&self.pool, number).await?;
        self.answered();
        Ok(route)
    }

    /// The config version `hash`, from the cache or the database (verified
    /// against its hash by the spine).
    pub async fn version(&self, hash: &str) -> Result<Arc<CompiledConfig>, StoreError> {
        if let Some(found) = self
            .versions
            .read()
            .ok()
            .and_then(|cache| cache.get(hash).cloned())
        {
            return Ok(found);
        }
        let loaded = versions::load(&self.pool, hash).await?;
        self.answered();
        let config = Arc::new(loaded.ok_or_else(|| StoreError::MissingVersion(hash.to_owned()))?);
        if let Ok(mut cache) = self.versions.write() {
            cache.insert(hash.to_owned(), config.clone());
        }
        Ok(config)
    }

    /// Versions held in the cache.
    pub fn cached_versions(&self) -> usize {
        self.versions.read().map(|c| c.len()).unwrap_or(0)
    }
}
