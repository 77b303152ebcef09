//! The operator refuses to start on a schema it does not know: one a newer
//! release migrated, or one this release's migrations were not applied to.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use dialtone_e2e::*;
use dialtone_spine::schema::MIGRATOR;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPoolOptions;

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').context("a database URL has a path")?;
    Ok(match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    })
}

/// Starts an operator on `url` and returns its log once it has exited,
/// failing if it keeps running or exits successfully.
async fn refused(env: &Env, url: &str) -> Result<String> {
    let run = unique("sc");
    let mut op = Operator::solo_with(env, &run, &["--database-url", url])?;
    let succeeded = op.wait_exit(Duration::from_secs(60)).await?;
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/e2e-logs")
        .join(format!("{run}-a.log"));
    let log =
        std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    assert!(!succeeded, "the operator exited 0:\n{log}");
    Ok(log)
}

#[tokio::test]
async fn the_operator_refuses_a_schema_it_does_not_know() -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let admin = database().await?;
    let name = format!("dialtone_schema_{}", std::process::id());
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&admin)
        .await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    let url = with_database(&database_url().context("no database URL")?, &name)?;
    let scratch = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    MIGRATOR.run(&scratch).await?;

    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000001, 'from a newer release', true, '\\x00', 0)",
    )
    .execute(&scratch)
    .await?;
    let log = refused(&env, &url).await?;
    assert!(
        log.contains("migration 99991231000001") && log.contains("newer release"),
        "{log}"
    );

    let latest = MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .context("no migrations")?;
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version IN (99991231000001, $1)")
        .bind(latest)
        .execute(&scratch)
        .await?;
    let log = refused(&env, &url).await?;
    assert!(
        log.contains(&format!("lacks migration {latest}")) && log.contains("dialtone migrate"),
        "{log}"
    );

    scratch.close().await;
    sqlx::query(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await?;
    Ok(())
}
