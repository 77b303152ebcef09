//! `dialtone campaign status|leads|export` and `dialtone dnc import`: a
//! campaign's progress and per-lead outcomes, and the do-not-call register
//! copy the dialer checks before every telemarketing dial, against the
//! database the operator and workers use.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use clap::Subcommand;
use dialtone_crds::common::Locale;
use dialtone_engine::dialing::normalize_phone;
use dialtone_spine::campaigns::{self, CampaignKey};
use sqlx::PgPool;

/// Most numbers one register file may hold (the national register is far
/// smaller than this per wash).
const MAX_REGISTER_NUMBERS: usize = 5_000_000;

/// What to show of a campaign.
#[derive(Subcommand, Debug)]
pub enum CampaignCommand {
    /// Counts by lead status, answer rate, spend and what the dialer waits
    /// for.
    Status {
        /// `<namespace>/<name>` of the Campaign.
        campaign: String,
    },
    /// Leads with their status, attempts and last outcome.
    Leads {
        /// `<namespace>/<name>` of the Campaign.
        campaign: String,
        /// Only leads in this status: pending, dialing, completed, failed,
        /// suppressed, voicemail, retired.
        #[arg(long)]
        status: Option<String>,
        /// Most leads shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Every lead's outcome as CSV (RFC 4180), to stdout or `--output`.
    Export {
        /// `<namespace>/<name>` of the Campaign.
        campaign: String,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// What to do with the do-not-call register.
#[derive(Subcommand, Debug)]
pub enum DncCommand {
    /// Replace the register copy with the numbers in FILE (one per line,
    /// or the first column of a CSV; `#` starts a comment) and record the
    /// wash. Any unreadable line refuses the whole file: a register with a
    /// number missing would let it be called.
    Import {
        /// The register file.
        file: PathBuf,
        /// How national numbers in the file are read.
        #[arg(long, default_value = "en-AU")]
        locale: String,
        /// Where the copy came from (recorded with the wash).
        #[arg(long, default_value = "file")]
        source: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CampaignCliError {
    /// The database refused or is unreachable.
    #[error("campaigns: {0}")]
    Db(#[from] sqlx::Error),
    /// The spine refused.
    #[error(transparent)]
    Campaign(#[from] campaigns::CampaignError),
    /// No async runtime.
    #[error("starting the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// Not `<namespace>/<name>`.
    #[error("{0:?} is not <namespace>/<name>")]
    Name(String),
    /// No such campaign.
    #[error("no campaign {0} in the database (has the operator loaded it?)")]
    NotFound(String),
    /// Not a locale Dialtone reads.
    #[error("unknown locale {0:?} (en-AU or en-US)")]
    Locale(String),
    /// Reading or writing a file.
    #[error("{}: {source}", .path.display())]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Lines that are not phone numbers, by line number.
    #[error("nothing imported; {} line(s) are not phone numbers:\n{}", .0.len(), .0.join("\n"))]
    BadLines(Vec<String>),
    /// Too many numbers.
    #[error("the file holds more than {MAX_REGISTER_NUMBERS} numbers")]
    TooMany,
}

fn key(campaign: &str) -> Result<CampaignKey, CampaignCliError> {
    match campaign.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(CampaignKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        _ => Err(CampaignCliError::Name(campaign.to_owned())),
    }
}

/// Runs a campaign command.
pub fn run_campaign(
    database_url: &str,
    command: CampaignCommand,
) -> Result<bool, CampaignCliError> {
    crate::db::with_pool(database_url, async |pool| match command {
        CampaignCommand::Status { campaign } => status(pool, &key(&campaign)?).await,
        CampaignCommand::Leads {
            campaign,
            status,
            limit,
        } => leads(pool, &key(&campaign)?, status.as_deref(), limit).await,
        CampaignCommand::Export { campaign, output } => {
            export(pool, &key(&campaign)?, output.as_deref()).await
        }
    })
}

/// Runs a register command.
pub fn run_dnc(database_url: &str, command: DncCommand) -> Result<bool, CampaignCliError> {
    let DncCommand::Import {
        file,
        locale,
        source,
    } = command;
    let locale = match locale.as_str() {
        "en-AU" => Locale::EnAu,
        "en-US" => Locale::EnUs,
        other => return Err(CampaignCliError::Locale(other.to_owned())),
    };
    let text = std::fs::read_to_string(&file).map_err(|source| CampaignCliError::Io {
        path: file.clone(),
        source,
    })?;
    let numbers = register_numbers(&text, locale)?;
    crate::db::with_pool(database_url, async |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM dnc_register")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO dnc_register (phone) SELECT DISTINCT unnest($1::text[])")
            .bind(&numbers)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO dnc_washes (source, numbers) VALUES ($1, $2)")
            .bind(&source)
            .bind(i32::try_from(numbers.len()).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        println!(
            "do-not-call register: {} numbers from {} (source {source:?}); washed now",
            numbers.len(),
            file.display()
        );
        Ok(true)
    })
}

/// The E.164 numbers of a register file, sorted and unique, or every line
/// that is not one.
fn register_numbers(text: &str, locale: Locale) -> Result<Vec<String>, CampaignCliError> {
    let mut numbers = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default();
        let first = content.split(',').next().unwrap_or_default().trim();
        let first = first.trim_matches('"');
        if first.is_empty() {
            continue;
        }
        match normalize_phone(first, locale) {
            Ok(n) => numbers.push(n),
            // A CSV header line is not a number and not an error.
            Err(_) if i == 0 && first.chars().all(|c| c.is_ascii_alphabetic() || c == '_') => {}
            Err(why) => bad.push(format!("  line {}: {why}", i + 1)),
        }
        if numbers.len() > MAX_REGISTER_NUMBERS {
            return Err(CampaignCliError::TooMany);
        }
    }
    if !bad.is_empty() {
        return Err(CampaignCliError::BadLines(bad));
    }
    numbers.sort_unstable();
    numbers.dedup();
    Ok(numbers)
}

async fn status(pool: &PgPool, key: &CampaignKey) -> Result<bool, CampaignCliError> {
    let exists: Option<(bool,)> =
        sqlx::query_as("SELECT active FROM campaigns WHERE namespace = $1 AND name = $2")
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(pool)
            .await?;
    let Some((active,)) = exists else {
        return Err(CampaignCliError::NotFound(format!(
            "{}/{}",
            key.namespace, key.name
        )));
    };
    let p = campaigns::progress(pool, key).await?;
    let answer_rate = if p.finished_attempts > 0 {
        format!(
            "{:.0} %",
            100.0 * p.answered as f64 / p.finished_attempts as f64
        )
    } else {
        "-".to_owned()
    };
    println!("campaign {}/{}", key.namespace, key.name);
    println!(
        "  dialing:    {}",
        match (&p.stopped, &p.waiting, active) {
            (Some(why), _, _) => format!("stopped ({why})"),
            (None, _, false) => "suspended or deleted".to_owned(),
            (None, Some(why), true) => format!("waiting ({why})"),
            (None, None, true) => "active".to_owned(),
        }
    );
    println!(
        "  leads:      {} total: {} pending, {} dialing, {} completed, {} voicemail, {} failed, {} suppressed",
        p.total, p.pending, p.dialing, p.completed, p.voicemail, p.failed, p.suppressed
    );
    println!(
        "  attempts:   {} finished, {} answered by a person ({answer_rate})",
        p.finished_attempts, p.answered
    );
    println!("  spend:      USD {:.4}", p.spend_usd);
    if let Some(next) = p.next_dial_at {
        println!("  next dial:  {}", next.to_rfc3339());
    }
    if let Some(error) = &p.last_error {
        println!("  last error: {error}");
    }
    Ok(true)
}

/// One lead as the commands show it.
#[derive(sqlx::FromRow)]
struct LeadLine {
    phone: String,
    name: Option<String>,
    status: String,
    attempts: i32,
    last_outcome: Option<String>,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
}

async fn lead_lines(
    pool: &PgPool,
    key: &CampaignKey,
    status: Option<&str>,
    limit: Option<i64>,
) -> Result<Vec<LeadLine>, CampaignCliError> {
    Ok(sqlx::query_as(
        "SELECT phone, name, status, attempts, last_outcome, last_error, updated_at
         FROM campaign_leads
         WHERE namespace = $1 AND campaign = $2 AND ($3::text IS NULL OR status = $3)
         ORDER BY phone LIMIT $4",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(status)
    .bind(limit.unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?)
}

async fn leads(
    pool: &PgPool,
    key: &CampaignKey,
    status: Option<&str>,
    limit: i64,
) -> Result<bool, CampaignCliError> {
    let lines = lead_lines(pool, key, status, Some(limit)).await?;
    println!(
        "{:<16} {:<11} {:>8} {:<14} NAME",
        "PHONE", "STATUS", "ATTEMPTS", "LAST OUTCOME"
    );
    for l in &lines {
        println!(
            "{:<16} {:<11} {:>8} {:<14} {}",
            l.phone,
            l.status,
            l.attempts,
            l.last_outcome.as_deref().unwrap_or("-"),
            l.name.as_deref().unwrap_or("")
        );
    }
    Ok(true)
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

async fn export(
    pool: &PgPool,
    key: &CampaignKey,
    output: Option<&Path>,
) -> Result<bool, CampaignCliError> {
    let lines = lead_lines(pool, key, None, None).await?;
    let mut csv = String::from("phone,name,status,attempts,last_outcome,last_error,updated_at\r\n");
    for l in &lines {
        let fields = [
            l.phone.clone(),
            l.name.clone().unwrap_or_default(),
            l.status.clone(),
            l.attempts.to_string(),
            l.last_outcome.clone().unwrap_or_default(),
            l.last_error.clone().unwrap_or_default(),
            l.updated_at.to_rfc3339(),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        csv.push_str(&row.join(","));
        csv.push_str("\r\n");
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CampaignCliError::Io { path, source }
    };
    match output {
        Some(path) => std::fs::write(path, csv).map_err(io(path))?,
        None => std::io::stdout()
            .write_all(csv.as_bytes())
            .map_err(io(Path::new("stdout")))?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_register_file_is_read_whole_or_not_at_all() {
        let text = "phone\n0412 345 678 # mobile\n+61290001234,extra\n\n\"0412345678\"\n";
        assert_eq!(
            register_numbers(text, Locale::EnAu).unwrap(),
            ["+61290001234", "+61412345678"]
        );
        let err = register_numbers("0412345678\nnot a number\n12\n", Locale::EnAu).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("nothing imported; 2 line(s)"),
            "{message}"
        );
        assert!(
            message.contains("line 2:") && message.contains("line 3:"),
            "{message}"
        );
    }

    #[test]
    fn campaign_names_and_csv_fields() {
        assert_eq!(key("tenant-a/recall").unwrap().name, "recall");
        assert!(key("recall").is_err());
        assert!(key("/recall").is_err());
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
