//! `dialtone rebuild-projections`: rebuilds the `calls` projection from
//! `call_events` alone, for every call or one tenant's.

use dialtone_spine::projection::{self, ProjectionError, RebuildReport, Scope};

/// Why the rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The database is unreachable.
    #[error("connecting to the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The rebuild failed (and was rolled back).
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// No async runtime.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Rebuilds the scope's projection and reports what it wrote.
pub async fn rebuild(database_url: &str, scope: Scope) -> Result<RebuildReport, RebuildError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .map_err(RebuildError::Connect)?;
    let report = projection::rebuild(&pool, scope).await;
    pool.close().await;
    Ok(report?)
}

/// `dialtone rebuild-projections [--tenant T]`.
pub fn run(database_url: &str, tenant: Option<String>) -> Result<bool, RebuildError> {
    let scope = tenant.map_or(Scope::All, Scope::Tenant);
    let what = match &scope {
        Scope::All => "every tenant".to_owned(),
        Scope::Tenant(t) => format!("tenant {t}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RebuildError::Runtime)?;
    let report = runtime.block_on(rebuild(database_url, scope))?;
    println!(
        "rebuilt calls for {what}: {} calls from {} events",
        report.calls, report.events
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use dialtone_spine::event::{
        CallEvent, Channel, CloseReason, Direction, EventBody, RuntimeEvent,
    };
    use dialtone_spine::writer::{EventWriter, WriterConfig};
    use uuid::Uuid;

    fn database_url() -> Option<String> {
        std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../.testenv/database-url");
                std::fs::read_to_string(file)
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
    }

    #[tokio::test]
    async fn a_damaged_projection_row_is_rebuilt_from_the_events() {
        let Some(url) = database_url() else {
            let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
                || std::env::var("DIALTONE_REQUIRE_ENV").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "the database is required but no DATABASE_URL is set"
            );
            eprintln!("SKIPPED: no DATABASE_URL and no .testenv/database-url");
            return;
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .expect("connects");
        let tenant = format!("rebuild-{}", Uuid::new_v4().simple());
        let call_id = Uuid::new_v4();
        let at = |s| {
            Utc.with_ymd_and_hms(2025, 3, 3, 0, 0, s)
                .single()
                .expect("a time")
        };
        let bodies = [
            EventBody::Runtime(RuntimeEvent::CallOpened {
                namespace: "ns".into(),
                agent: "reception".into(),
                config_version: "sha256:x".into(),
                core_version: "0.1.0".into(),
                direction: Direction::Inbound,
                caller: None,
                callee: None,
                channel: Channel::Text,
                external_id: None,
                started_at: at(0),
            }),
            EventBody::Runtime(RuntimeEvent::CallEnded {
                outcome: "booked".into(),
            }),
            EventBody::Runtime(RuntimeEvent::CallClosed {
                reason: CloseReason::Ended,
                ended_at: at(9),
                duration_millis: 9_000,
            }),
        ];
        let spill = std::env::temp_dir().join(format!("dialtone-rebuild-{call_id}.spill"));
        let (sink, task) = EventWriter::start(pool.clone(), WriterConfig::new(&spill));
        for (seq, body) in bodies.into_iter().enumerate() {
            let seq = i32::try_from(seq).expect("small");
            sink.send(CallEvent {
                call_id,
                seq,
                tenant: tenant.clone(),
                occurred_at: at(seq.unsigned_abs()),
                body,
            })
            .await
            .expect("sends");
        }
        task.shutdown().await.expect("stops");
        let _ = std::fs::remove_file(spill);
        let scope = Scope::Tenant(tenant.clone());
        let live = projection::load_calls(&pool, scope.clone())
            .await
            .expect("loads");
        sqlx::query("UPDATE calls SET outcome = 'lost', last_seq = 0 WHERE call_id = $1")
            .bind(call_id)
            .execute(&pool)
            .await
            .expect("damages the row");

        let report = rebuild(&url, scope.clone()).await.expect("rebuilds");
        assert_eq!(
            report,
            RebuildReport {
                calls: 1,
                events: 3
            }
        );
        let rebuilt = projection::load_calls(&pool, scope).await.expect("loads");
        assert_eq!(rebuilt, live);
        assert_eq!(rebuilt[0].outcome.as_deref(), Some("booked"));
    }
}
