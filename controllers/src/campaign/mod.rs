//! The Campaign controller, in stages: resolve the Agent (Ready, with a
//! telephony provider, placing calls from the caller ids) and the Tenant →
//! validate the schedule → load the audience into `campaign_leads` (inline,
//! or a ConfigMap or Secret CSV; bad rows skipped and named by line) →
//! store the dialing plan the dialer in `dialtone-workers` reads → status
//! from the database's counts. The dialer does the dialing; this controller
//! never places a call.
//!
//! Deleting a Campaign stops its dialing and keeps its records (the
//! finalizer deactivates the plan; leads and attempts stay for export).

pub mod audience;
pub mod status;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialtone_crds::agent::{Agent, Direction};
use dialtone_crds::campaign::{Audience, Campaign, CampaignPhase};
use dialtone_crds::common::{READY, is_true};
use dialtone_crds::tenant::Tenant;
use dialtone_engine::dialing::{DialWindows, LegalFloor};
use dialtone_spine::campaigns::{self, CampaignError, CampaignKey, DialPlan};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use sqlx::PgPool;

use self::audience::Loaded;
use self::status::{AudienceReport, Observed, Problem};
use crate::events::{EventRecorder, EventType};
use crate::runtime::{
    FailureBackoff, Shared, drain, mark_synced, object_key, pruned_watch, publish, report_failure,
    shutdown_future, timed,
};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "campaign";
/// The field manager of status writes, and the events' reporting controller.
pub const FIELD_MANAGER: &str = "dialtone-campaign-controller";
/// The finalizer that stops dialing before a Campaign goes.
pub const FINALIZER: &str = "dialtone.io/campaign-stop";
/// How often a running campaign's status is refreshed from the database.
pub const PROGRESS: Duration = Duration::from_secs(5);
/// How often a finished or stuck campaign is looked at.
pub const RESYNC: Duration = Duration::from_secs(300);

/// Everything that can fail in a Campaign reconcile (spec mistakes are
/// conditions, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// The campaign tables failed.
    #[error(transparent)]
    Database(#[from] CampaignError),
    /// Writing status failed.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the finalizer failed, or a stage under it.
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A CamelCase category for metrics labels and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Database(_) => "DatabaseFailed",
            Error::Status(_) => "StatusWriteFailed",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "FinalizerFailed",
            },
        }
    }
}

/// The controller's context.
pub struct Context {
    shared: Shared,
    recorder: EventRecorder,
    backoff: FailureBackoff,
    db: PgPool,
}

/// Runs the Campaign controller until shutdown.
pub async fn run(shared: Shared, db: PgPool, synced: Arc<std::sync::atomic::AtomicBool>) {
    let client = shared.client.clone();
    let (store, campaigns) =
        pruned_watch(Api::<Campaign>::all(client.clone()), shared.watch_config());
    let campaigns = campaigns.predicate_filter(campaign_changes, PredicateConfig::default());
    mark_synced(store.clone(), synced);
    let ctx = Arc::new(Context {
        recorder: shared.recorder(FIELD_MANAGER),
        shared: shared.clone(),
        backoff: FailureBackoff::default(),
        db,
    });
    let controller = Controller::for_stream(campaigns, store)
        .reconcile_all_on(shared.leadership.gained())
        .graceful_shutdown_on(shutdown_future(&shared.shutdown))
        .with_config(Config::default().concurrency(shared.concurrency))
        .run(reconcile, error_policy, ctx);
    drain(CONTROLLER, controller).await;
}

/// What of a Campaign starts a reconcile: its spec, its finalizers (the
/// first reconcile only adds ours) and its deletion; status writes do not.
fn campaign_changes(c: &Campaign) -> Option<u64> {
    let mut h = DefaultHasher::new();
    c.metadata.generation.hash(&mut h);
    c.finalizers().hash(&mut h);
    c.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

fn key_of(campaign: &Campaign) -> CampaignKey {
    CampaignKey {
        namespace: campaign.namespace().unwrap_or_default(),
        name: campaign.name_any(),
    }
}

async fn reconcile(campaign: Arc<Campaign>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.shared.leadership.is_leader() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let key = object_key(campaign.as_ref());
    let api: Api<Campaign> = Api::namespaced(
        ctx.shared.client.clone(),
        &campaign.namespace().unwrap_or_default(),
    );
    let result = finalizer::finalizer(&api, FINALIZER, campaign, |event| {
        let ctx = ctx.clone();
        async move {
            match event {
                FinalizerEvent::Apply(c) => apply(&c, &ctx).await,
                FinalizerEvent::Cleanup(c) => {
                    campaigns::deactivate(&ctx.db, &key_of(&c)).await?;
                    tracing::info!(campaign = %object_key(c.as_ref()), "campaign deleted: dialing stopped, records kept");
                    Ok(Action::await_change())
                }
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.shared
        .metrics
        .reconciled(CONTROLLER, result.is_ok(), started.elapsed());
    if result.is_ok() {
        ctx.backoff.reset(&format!("{CONTROLLER}:{key}"));
    }
    result
}

/// The Agent stage: the Agent must be Ready, have a telephony provider and
/// place calls from every caller id (an empty list takes the Agent's
/// outbound numbers).
fn resolve_agent(agent: Option<&Agent>, campaign: &Campaign) -> Result<Vec<String>, Problem> {
    let name = &campaign.spec.agent;
    let Some(agent) = agent else {
        return Err(Problem {
            reason: "AgentNotFound",
            message: format!("agent {name} does not exist in this namespace"),
        });
    };
    let ready = agent
        .status
        .as_ref()
        .is_some_and(|s| is_true(&s.conditions, READY));
    if !ready {
        return Err(Problem {
            reason: "AgentNotReady",
            message: format!("agent {name} is not Ready"),
        });
    }
    if agent.spec.providers.telephony.is_none() {
        return Err(Problem {
            reason: "NoTelephony",
            message: format!("agent {name} has no telephony provider to place calls with"),
        });
    }
    let outbound: Vec<&str> = agent
        .spec
        .phone_numbers
        .iter()
        .filter(|n| matches!(n.direction, Direction::Outbound | Direction::Both))
        .map(|n| n.number.as_str())
        .collect();
    if campaign.spec.caller_ids.is_empty() {
        if outbound.is_empty() {
            return Err(Problem {
                reason: "NoCallerId",
                message: format!("agent {name} has no number with direction outbound or both"),
            });
        }
        return Ok(outbound.iter().map(|n| (*n).to_owned()).collect());
    }
    let foreign: Vec<&str> = campaign
        .spec
        .caller_ids
        .iter()
        .map(|c| c.number.as_str())
        .filter(|c| !outbound.contains(c))
        .collect();
    if !foreign.is_empty() {
        return Err(Problem {
            reason: "CallerIdNotOutbound",
            message: format!(
                "caller ids {} are not outbound numbers of agent {name}",
                foreign.join(", ")
            ),
        });
    }
    Ok(campaign
        .spec
        .caller_ids
        .iter()
        .map(|c| c.number.clone())
        .collect())
}

/// Reads the audience's CSV text from its ConfigMap or Secret.
async fn csv_text(
    ctx: &Context,
    namespace: &str,
    audience: &Audience,
) -> Result<Result<String, Problem>, Error> {
    let missing = |kind: &str, name: &str, key: &str| Problem {
        reason: "AudienceNotFound",
        message: format!("{kind} {name} has no key {key}"),
    };
    if let Some(r) = &audience.config_map_ref {
        let api: Api<ConfigMap> = Api::namespaced(ctx.shared.client.clone(), namespace);
        let cm = timed(api.get_opt(&r.name))
            .await
            .map_err(|source| Error::Read {
                what: format!("ConfigMap {namespace}/{}", r.name),
                source,
            })?;
        return Ok(cm
            .and_then(|cm| cm.data.and_then(|mut d| d.remove(&r.key)))
            .ok_or_else(|| missing("ConfigMap", &r.name, &r.key)));
    }
    if let Some(r) = &audience.secret_ref {
        let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), namespace);
        let secret = timed(api.get_opt(&r.name))
            .await
            .map_err(|source| Error::Read {
                what: format!("Secret {namespace}/{}", r.name),
                source,
            })?;
        let bytes = secret.and_then(|s| s.data.and_then(|mut d| d.remove(&r.key)));
        return Ok(match bytes {
            None => Err(missing("Secret", &r.name, &r.key)),
            Some(b) => String::from_utf8(b.0).map_err(|_| Problem {
                reason: "AudienceUnreadable",
                message: format!("Secret {} key {} is not UTF-8 text", r.name, r.key),
            }),
        });
    }
    Ok(Err(Problem {
        reason: "AudienceEmpty",
        message: "the audience names no leads, ConfigMap or Secret".to_owned(),
    }))
}

async fn apply(campaign: &Campaign, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(campaign);
    let ns = key.namespace.clone();
    let agent = timed(
        Api::<Agent>::namespaced(ctx.shared.client.clone(), &ns).get_opt(&campaign.spec.agent),
    )
    .await
    .map_err(|source| Error::Read {
        what: format!("Agent {ns}/{}", campaign.spec.agent),
        source,
    })?;
    let tenants = timed(Api::<Tenant>::all(ctx.shared.client.clone()).list(&Default::default()))
        .await
        .map_err(|source| Error::Read {
            what: "Tenants".to_owned(),
            source,
        })?;
    let tenant = tenants.items.into_iter().find(|t| t.owns_namespace(&ns));

    let mut observed = Observed {
        agent: Ok(()),
        audience: None,
        progress: None,
        suspended: campaign.spec.suspend || tenant.as_ref().is_some_and(|t| t.spec.suspend),
        before_start: false,
    };
    let caller_ids = match (&tenant, resolve_agent(agent.as_ref(), campaign)) {
        (None, _) => Err(Problem {
            reason: "NoTenant",
            message: format!("no Tenant owns namespace {ns}"),
        }),
        (Some(_), resolved) => resolved,
    };
    let windows = DialWindows::new(
        &campaign.spec.schedule,
        campaign.spec.purpose,
        &LegalFloor::default(),
        &tenant
            .as_ref()
            .map(|t| {
                t.spec
                    .profile
                    .holidays
                    .iter()
                    .map(|h| h.date.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let caller_ids = caller_ids.and_then(|ids| match &windows {
        Err(err) => Err(Problem {
            reason: "InvalidSchedule",
            message: err.to_string(),
        }),
        Ok(w) if w.is_never_open() => Err(Problem {
            reason: "NeverOpen",
            message: format!(
                "no window falls within the legal calling hours for {:?} calls",
                campaign.spec.purpose
            ),
        }),
        Ok(_) => Ok(ids),
    });
    let (Ok(caller_ids), Some(tenant)) = (caller_ids.clone(), tenant) else {
        observed.agent = caller_ids.map(drop);
        // Nothing new is dialed while the spec cannot run; what was loaded
        // before keeps its state.
        campaigns::deactivate(&ctx.db, &key).await?;
        observed.progress = Some(campaigns::progress(&ctx.db, &key).await?);
        write_status(campaign, &observed, ctx).await?;
        return Ok(Action::requeue(PROGRESS * 2));
    };
    let locale = tenant.spec.profile.locale;
    let inline = !campaign.spec.audience.leads.is_empty();
    let loaded: Result<Loaded, Problem> = if inline {
        Ok(audience::from_inline(&campaign.spec.audience.leads, locale))
    } else {
        match csv_text(ctx, &ns, &campaign.spec.audience).await? {
            Ok(text) => audience::from_csv(&text, locale).map_err(|err| Problem {
                reason: "AudienceUnreadable",
                message: err.to_string(),
            }),
            Err(p) => Err(p),
        }
    };
    let plan = DialPlan {
        schedule: campaign.spec.schedule.clone(),
        purpose: campaign.spec.purpose,
        tenant_timezone: tenant.spec.profile.timezone.clone(),
        holidays: tenant
            .spec
            .profile
            .holidays
            .iter()
            .map(|h| h.date.clone())
            .collect(),
        caller_ids,
        pacing: campaign.spec.pacing.clone(),
        retries: campaign.spec.retries.clone(),
        respect_do_not_call: campaign.spec.compliance.respect_do_not_call,
        suppress: campaign.spec.compliance.suppress.clone(),
        budget_usd: campaign.spec.budget_usd,
        tenant_daily_budget_usd: tenant.spec.limits.daily_budget_usd,
        voicemail: campaign.spec.voicemail.clone(),
    };
    let active = !observed.suspended && loaded.is_ok();
    campaigns::upsert(
        &ctx.db,
        &key,
        &tenant.name_any(),
        &campaign.spec.agent,
        &plan,
        active,
    )
    .await?;
    observed.audience = Some(match loaded {
        Ok(loaded) => {
            let sync = campaigns::sync_leads(&ctx.db, &key, &loaded.leads).await?;
            if sync.added > 0 || sync.retired > 0 {
                tracing::info!(campaign = %object_key(campaign), added = sync.added, retired = sync.retired, "audience loaded");
            }
            Ok(AudienceReport {
                leads: loaded.leads.len(),
                bad: loaded.bad,
                inline,
            })
        }
        Err(p) => Err(p),
    });
    observed.before_start = campaign
        .spec
        .schedule
        .start_date
        .as_deref()
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .is_some_and(|start| {
            let tz: chrono_tz::Tz = plan.tenant_timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
            chrono::Utc::now().with_timezone(&tz).date_naive() < start
        });
    observed.progress = Some(campaigns::progress(&ctx.db, &key).await?);
    let phase = write_status(campaign, &observed, ctx).await?;
    Ok(Action::requeue(match phase {
        CampaignPhase::Completed => RESYNC,
        _ => PROGRESS,
    }))
}

/// Writes the status when it changed; an Event when the phase changes.
async fn write_status(
    campaign: &Campaign,
    observed: &Observed,
    ctx: &Context,
) -> Result<CampaignPhase, Error> {
    let desired = status::desired(campaign, observed, Timestamp::now());
    let phase = desired.phase.unwrap_or_default();
    if !status::needs_write(campaign.status.as_ref(), &desired) {
        return Ok(phase);
    }
    let api: Api<Campaign> = Api::namespaced(
        ctx.shared.client.clone(),
        &campaign.namespace().unwrap_or_default(),
    );
    let patch = serde_json::json!({
        "apiVersion": Campaign::api_version(&()),
        "kind": Campaign::kind(&()),
        "status": desired,
    });
    timed(api.patch_status(
        &campaign.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    ))
    .await
    .map_err(Error::Status)?;
    let before = campaign.status.as_ref().and_then(|s| s.phase);
    if before != Some(phase) {
        let (_, _, reason, message) = status::phase(observed);
        let type_ = match phase {
            CampaignPhase::Paused | CampaignPhase::BudgetExhausted | CampaignPhase::Failed => {
                EventType::Warning
            }
            _ => EventType::Normal,
        };
        tracing::info!(campaign = %object_key(campaign), ?phase, reason, "campaign phase changed");
        publish(&ctx.recorder, campaign, type_, reason, "Dial", message).await;
    }
    Ok(phase)
}

fn error_policy(campaign: Arc<Campaign>, err: &Error, ctx: Arc<Context>) -> Action {
    report_failure(
        &ctx.shared,
        &ctx.recorder,
        &ctx.backoff,
        CONTROLLER,
        campaign,
        err.category(),
        err,
        "Dial",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_crds::agent::AgentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn agent(ready: bool, numbers: &str) -> Agent {
        let spec = serde_yaml::from_str(&format!(
            "objectives: [{{name: remind}}]\nproviders: {{telephony: {{name: twilio}}}}\nphoneNumbers: {numbers}\n"
        ))
        .unwrap();
        let mut a = Agent::new("reminders", spec);
        a.status = Some(AgentStatus {
            conditions: vec![Condition {
                type_: READY.to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                reason: "Test".to_owned(),
                message: String::new(),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
                observed_generation: None,
            }],
            ..AgentStatus::default()
        });
        a
    }

    fn campaign(caller_ids: &str) -> Campaign {
        let spec = serde_yaml::from_str(&format!(
            "agent: reminders\ncallerIds: {caller_ids}\naudience: {{leads: [{{phone: '+61412345678'}}]}}\nschedule: {{windows: [{{days: [Monday], start: '09:00', end: '17:00'}}]}}\n"
        ))
        .unwrap();
        Campaign::new("recall", spec)
    }

    #[test]
    fn caller_ids_must_be_outbound_numbers_of_a_ready_agent() {
        let numbers = "[{number: '+61290001234', direction: inbound}, {number: '+61290001235', direction: outbound}]";
        let ready = agent(true, numbers);
        assert_eq!(
            resolve_agent(Some(&ready), &campaign("[]")),
            Ok(vec!["+61290001235".to_owned()])
        );
        let err = resolve_agent(Some(&ready), &campaign("[{number: '+61290001234'}]")).unwrap_err();
        assert_eq!(err.reason, "CallerIdNotOutbound");
        assert!(err.message.contains("+61290001234"), "{}", err.message);
        let err = resolve_agent(Some(&agent(false, numbers)), &campaign("[]")).unwrap_err();
        assert_eq!(err.reason, "AgentNotReady");
        assert_eq!(
            resolve_agent(None, &campaign("[]")).unwrap_err().reason,
            "AgentNotFound"
        );
    }
}
