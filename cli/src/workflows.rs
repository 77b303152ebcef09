//! `dialtone workflows list|inspect|retry|discard`: day-2 work on the
//! workflow jobs, against the database the operator and workers use.

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::Value;
use sqlx::PgPool;

/// What to do with workflow jobs.
#[derive(Subcommand, Debug)]
pub enum WorkflowsCommand {
    /// Jobs, newest first, filtered by tenant, call, workflow and status.
    List {
        /// Only this tenant's jobs.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this call's jobs.
        #[arg(long)]
        call: Option<uuid::Uuid>,
        /// Only this workflow's jobs.
        #[arg(long)]
        workflow: Option<String>,
        /// Only jobs in this status: pending, running, succeeded, dead,
        /// discarded.
        #[arg(long)]
        status: Option<String>,
        /// Most jobs shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One job in full: parameters, result and every attempt.
    Inspect {
        /// The job's id.
        id: i64,
    },
    /// Put dead-lettered jobs back in the queue (same idempotency key).
    Retry {
        /// The jobs' ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
    /// Give up on pending or dead-lettered jobs for good.
    Discard {
        /// The jobs' ids.
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowsError {
    /// The database refused or is unreachable.
    #[error("workflow jobs: {0}")]
    Db(#[from] sqlx::Error),
    /// No async runtime.
    #[error("starting the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// No such job.
    #[error("no workflow job {0}")]
    NotFound(i64),
}

/// Runs the command; `false` when some ids were not in a state the command
/// applies to.
pub fn run(database_url: &str, command: WorkflowsCommand) -> Result<bool, WorkflowsError> {
    crate::db::with_pool(database_url, async |pool| execute(pool, command).await)
}

type ListRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i32,
    i32,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
);

async fn execute(pool: &PgPool, command: WorkflowsCommand) -> Result<bool, WorkflowsError> {
    match command {
        WorkflowsCommand::List {
            tenant,
            call,
            workflow,
            status,
            limit,
        } => {
            let rows: Vec<ListRow> = sqlx::query_as(
                "SELECT id, status, tenant, workflow, action, vendor, attempts, max_attempts, \
                     CASE WHEN status IN ('pending', 'running') THEN next_attempt_at \
                          ELSE coalesce(finished_at, updated_at) END, \
                     last_error, waiting_reason \
                 FROM workflow_jobs \
                 WHERE ($1::text IS NULL OR tenant = $1) AND ($2::uuid IS NULL OR call_id = $2) \
                   AND ($3::text IS NULL OR workflow = $3) AND ($4::text IS NULL OR status = $4) \
                 ORDER BY id DESC LIMIT $5",
            )
            .bind(tenant)
            .bind(call)
            .bind(workflow)
            .bind(status)
            .bind(limit.max(1))
            .fetch_all(pool)
            .await?;
            print!("{}", render_list(&rows));
            Ok(true)
        }
        WorkflowsCommand::Inspect { id } => {
            let job: Option<Value> = sqlx::query_scalar(
                "SELECT to_jsonb(j) - 'provider_config' || jsonb_build_object('attempt_history', \
                     coalesce((SELECT jsonb_agg(to_jsonb(a) ORDER BY a.attempt) \
                               FROM workflow_attempts a WHERE a.job_id = j.id), '[]'::jsonb)) \
                 FROM workflow_jobs j WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            let job = job.ok_or(WorkflowsError::NotFound(id))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&job).unwrap_or_else(|_| job.to_string())
            );
            Ok(true)
        }
        WorkflowsCommand::Retry { ids } => {
            let done = dialtone_workers::queue::requeue(pool, &ids).await?;
            Ok(report("requeued", "dead or discarded", &ids, &done))
        }
        WorkflowsCommand::Discard { ids } => {
            let done = dialtone_workers::queue::discard(pool, &ids).await?;
            Ok(report("discarded", "pending or dead", &ids, &done))
        }
    }
}

fn report(verb: &str, states: &str, asked: &[i64], done: &[i64]) -> bool {
    for id in asked {
        if done.contains(id) {
            println!("job {id} {verb}");
        } else {
            eprintln!("job {id} not {verb}: no such job, or it is not {states}");
        }
    }
    done.len() == asked.len()
}

fn render_list(rows: &[ListRow]) -> String {
    let mut out = format!(
        "{:>8}  {:<10} {:<22} {:<20} {:<13} {:<15} {:>8}  {:<20}  {}\n",
        "ID",
        "STATUS",
        "TENANT",
        "WORKFLOW",
        "ACTION",
        "VENDOR",
        "ATTEMPTS",
        "DUE/FINISHED",
        "NOTE"
    );
    for (id, status, tenant, workflow, action, vendor, attempts, max, at, error, waiting) in rows {
        let note = waiting.as_deref().or(error.as_deref()).unwrap_or("");
        let note: String = note.chars().take(100).collect();
        out.push_str(&format!(
            "{id:>8}  {status:<10} {tenant:<22} {workflow:<20} {action:<13} {vendor:<15} {:>8}  {:<20}  {note}\n",
            format!("{attempts}/{max}"),
            at.format("%Y-%m-%d %H:%M:%S"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_list_says_why_a_job_waits_or_failed() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 7, 13, 0, 0)
            .single()
            .expect("a time");
        let rows = vec![(
            7,
            "pending".to_owned(),
            "harbour-dental".to_owned(),
            "notify".to_owned(),
            "email".to_owned(),
            "sendgrid".to_owned(),
            0,
            5,
            at,
            None,
            Some("daily cap of 50 reached".to_owned()),
        )];
        let text = render_list(&rows);
        assert!(text.contains("ATTEMPTS"));
        assert!(
            text.contains("       7  pending    harbour-dental"),
            "{text}"
        );
        assert!(text.contains("0/5"));
        assert!(
            text.contains("2026-12-07 13:00:00   daily cap of 50 reached"),
            "{text}"
        );
    }
}
