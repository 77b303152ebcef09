//! `dialtone migrate`: applies the migrations built into this binary (the
//! repository's `migrations/`) to the shared database. Each is recorded in
//! `_sqlx_migrations`, so a second run applies nothing; a database that
//! holds a migration this binary does not know was migrated by a newer
//! release, and is refused rather than half-understood.

use dialtone_spine::schema::{MIGRATOR, applied};
use sqlx::migrate::MigrateError as SqlxMigrateError;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("starting the runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error(
        "the database has migration {0}, which this dialtone does not know: a newer release migrated it; run that release's `dialtone migrate`"
    )]
    Newer(i64),
    #[error("applying the migrations: {0}")]
    Apply(SqlxMigrateError),
}

/// What a run did.
pub struct Migrated {
    /// Versions applied now, oldest first.
    pub applied: Vec<i64>,
    /// The newest version the database has.
    pub latest: Option<i64>,
}

/// Applies every migration the database lacks.
pub fn run(database_url: &str) -> Result<Migrated, MigrateError> {
    crate::db::with_pool(database_url, async |pool| {
        let before = applied(pool).await?;
        MIGRATOR.run(pool).await.map_err(|e| match e {
            SqlxMigrateError::VersionMissing(version) => MigrateError::Newer(version),
            other => MigrateError::Apply(other),
        })?;
        let after = applied(pool).await?;
        Ok(Migrated {
            latest: after.last().copied(),
            applied: after.into_iter().filter(|v| !before.contains(v)).collect(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_url() -> Option<String> {
        std::env::var("DATABASE_URL").ok().or_else(|| {
            let file =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.testenv/database-url");
            std::fs::read_to_string(file)
                .ok()
                .map(|s| s.trim().to_owned())
        })
    }

    /// `url` with its database name replaced by `name`.
    fn with_database(url: &str, name: &str) -> String {
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
        match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        }
    }

    #[test]
    fn a_new_database_is_migrated_once_and_a_newer_one_is_refused() {
        let required = std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let Some(url) = database_url() else {
            assert!(
                !required,
                "the database is required but DATABASE_URL is unset"
            );
            eprintln!("SKIPPED: no DATABASE_URL (run `cargo xtask testenv up`)");
            return;
        };
        let name = format!("dialtone_migrate_{}", std::process::id());
        let admin = |sql: String| {
            crate::db::with_pool(&url, async |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        };
        admin(format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        admin(format!("CREATE DATABASE {name}")).unwrap();
        let scratch = with_database(&url, &name);

        let first = run(&scratch).unwrap();
        let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        assert_eq!(first.applied, known);
        assert_eq!(first.latest, known.last().copied());
        let second = run(&scratch).unwrap();
        assert!(second.applied.is_empty());
        assert_eq!(second.latest, first.latest);

        crate::db::with_pool(&scratch, async |pool| {
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (99991231000001, 'from a newer release', true, '\\x00', 0)",
            )
            .execute(pool)
            .await
            .map(|_| ())
        })
        .unwrap();
        let err = run(&scratch).err().expect("a newer database is refused");
        assert!(matches!(err, MigrateError::Newer(99991231000001)), "{err}");
        assert!(err.to_string().contains("newer release"), "{err}");
        admin(format!("DROP DATABASE {name} WITH (FORCE)")).unwrap();
    }
}
