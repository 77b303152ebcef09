//! The database schema this build knows: the repository's `migrations/`,
//! embedded. `dialtone migrate` applies them; the operator, the voice pods
//! and the workers check at start that the database has exactly these, so
//! a binary never runs half-understanding a schema a newer release made,
//! nor against one that was not migrated yet.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The migrations of this build.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Why the database's schema is not the one this build knows.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database has a migration this build does not know.
    #[error(
        "the database has migration {0}, which this build does not know: a newer release migrated it; run that release"
    )]
    Newer(i64),
    /// The database lacks a migration of this build.
    #[error(
        "the database lacks migration {0}: run this release's `dialtone migrate` (the chart's migration Job) first"
    )]
    Missing(i64),
}

/// The migration versions the database records as applied, oldest first
/// (none on a new database).
pub async fn applied(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// How `applied` compares with what this build knows.
pub fn compare(applied: &[i64], known: &[i64]) -> Result<(), SchemaError> {
    if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
        return Err(SchemaError::Newer(*newer));
    }
    if let Some(missing) = known.iter().find(|v| !applied.contains(v)) {
        return Err(SchemaError::Missing(*missing));
    }
    Ok(())
}

/// Checks the database's schema is this build's. `Ok(false)` when the
/// database did not answer within `wait`, or failed (the caller starts
/// anyway and its work retries, as during any outage; the check is for a
/// database that answers).
pub async fn check(pool: &PgPool, wait: Duration) -> Result<bool, SchemaError> {
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    match tokio::time::timeout(wait, applied(pool)).await {
        Err(_) => Ok(false),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read the database's migrations");
            Ok(false)
        }
        Ok(Ok(applied)) => compare(&applied, &known).map(|()| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_and_missing_migrations_are_named() {
        let known = [1, 2, 3];
        assert!(compare(&[1, 2, 3], &known).is_ok());
        assert!(matches!(
            compare(&[1, 2, 3, 4], &known),
            Err(SchemaError::Newer(4))
        ));
        assert!(matches!(
            compare(&[1, 2], &known),
            Err(SchemaError::Missing(3))
        ));
        assert!(matches!(compare(&[], &known), Err(SchemaError::Missing(1))));
    }

    #[test]
    fn this_build_knows_the_repositorys_migrations() {
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count();
        assert_eq!(MIGRATOR.iter().count(), files);
    }
}
