//! The database the operator, voice pods and workers share, for the
//! subcommands that read or change it: one connection on a current-thread
//! runtime, closed when the work is done.

use sqlx::PgPool;

/// Runs `work` with a one-connection pool to `database_url`.
pub fn with_pool<T, E>(
    database_url: &str,
    work: impl AsyncFnOnce(&PgPool) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<sqlx::Error> + From<std::io::Error>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(database_url)
            .await?;
        let result = work(&pool).await;
        pool.close().await;
        result
    })
}
