//! The pipeline of a live Agent, at the edges: compile and store a new
//! version, smoke-test it, move the phone routes, bind the numbers at the
//! telephony vendor, provision voice pods, prune old versions, write status.
//! The decisions are made by the pure modules ([`super::rollout`],
//! [`super::status`], [`super::telephony`], [`super::build`]).

use std::sync::Arc;

use dialtone_crds::agent::{Agent, PhoneNumberStatus, VersionRecord};
use dialtone_crds::common::ConditionUpdate;
use dialtone_crds::objective::TestCall;
use dialtone_crds::{Objective, Provider, Tenant};
use dialtone_engine::{CompileInput, ConfigVersion, compile};
use dialtone_spine::routes::{self, Activation};
use dialtone_spine::versions;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::provision::{delete_config_maps, provision, ssa};
use super::resolve::{self, Resolved};
use super::status::{self, Report, state};
use super::{Context, Error, RESYNC, RETRY_ROUTING, build, rollout, telephony, write_status};
use crate::runtime::{object_key, timed};

/// RFC 3339 in UTC with exactly six fractional digits, so that history
/// entries sort by it as strings (versions can be seconds apart).
fn stamp(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The whole pipeline for a live Agent.
pub(super) async fn apply(agent: &Agent, ctx: &Context) -> Result<Action, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let now = Timestamp::now();
    let current = agent.status.clone().unwrap_or_default();
    let mut report = Report {
        active_version: current.active_version.clone(),
        history: current.history.clone(),
        phone_numbers: current.phone_numbers.clone(),
        ready_replicas: current.ready_replicas,
        ..Report::default()
    };

    // Resolve.
    let Some(tenant) = resolve::tenant_of(&ctx.caches.tenants.state(), &ns) else {
        report.updates.push(ConditionUpdate::falsy(
            status::VALIDATED,
            "TenantNotFound",
            format!("no Tenant owns namespace {ns:?}; an Agent lives in its Tenant's namespace"),
        ));
        write_status(agent, &report, ctx).await?;
        return Ok(Action::requeue(RESYNC));
    };
    let in_ns = |o: &Option<String>| o.as_deref() == Some(ns.as_str());
    let objectives: Vec<Arc<Objective>> = ctx
        .caches
        .objectives
        .state()
        .into_iter()
        .filter(|o| in_ns(&o.metadata.namespace))
        .collect();
    let providers: Vec<Arc<Provider>> = ctx
        .caches
        .providers
        .state()
        .into_iter()
        .filter(|p| in_ns(&p.metadata.namespace))
        .collect();
    let cluster = ctx.caches.cluster.state();
    let resolved: Vec<Resolved<'_>> = resolve::role_refs(agent)
        .into_iter()
        .filter_map(|r| resolve::find(r, &ns, &providers, &cluster))
        .collect();

    // Validate and compile; store and smoke-test a new version.
    let compiled = compile(&CompileInput {
        agent,
        tenant: &tenant,
        objectives: objectives.iter().map(AsRef::as_ref).collect(),
        providers: providers.iter().map(AsRef::as_ref).collect(),
        cluster_providers: cluster.iter().map(AsRef::as_ref).collect(),
    });
    let newest = match compiled {
        Err(errors) => {
            report.updates.extend(status::compile_failed(&errors));
            report.updates.push(status::workflows(None, Some(&errors)));
            None
        }
        Ok(version) => {
            Some(admit(agent, &tenant, &version, &objectives, ctx, &mut report, now).await?)
        }
    };

    // Activate.
    let suspended = agent.spec.suspend || tenant.spec.suspend;
    let choice = rollout::choose(
        agent.spec.rollout.pinned_version.as_deref(),
        &name,
        newest.as_ref(),
        report.active_version.as_deref(),
        &report.history,
    );
    report.candidate_version = newest
        .as_ref()
        .map(|n| n.hash.clone())
        .filter(|h| Some(h) != choice.target.as_ref());
    let telephony = agent
        .spec
        .providers
        .telephony
        .as_ref()
        .and_then(|r| resolve::find(r, &ns, &providers, &cluster));
    route(
        agent,
        &tenant,
        &choice,
        suspended,
        telephony.as_ref(),
        ctx,
        &mut report,
        now,
    )
    .await?;
    report.updates.push(status::routed(
        choice.target.as_deref(),
        choice.pin_error.as_ref(),
        &report.phone_numbers,
        suspended,
    ));
    report.suspended = suspended;

    // Provision.
    provision(agent, &tenant, &resolved, ctx, &mut report).await?;

    // Keep revisionHistoryLimit versions, never the serving ones.
    let limit = usize::try_from(agent.spec.rollout.revision_history_limit.max(1)).unwrap_or(1);
    let protect: Vec<&str> = [report.active_version.as_deref(), choice.target.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let (kept, _) = rollout::trim(std::mem::take(&mut report.history), limit, &protect);
    report.history = kept;
    let keep: Vec<String> = report.history.iter().map(|r| r.hash.clone()).collect();
    let deleted = versions::prune(&ctx.db, &ns, &name, &keep).await?;
    delete_config_maps(&ns, &name, &deleted, ctx).await?;

    write_status(agent, &report, ctx).await?;
    let retry = report
        .phone_numbers
        .iter()
        .any(|n| n.state == state::CONFLICT || n.state == state::BINDING_FAILED);
    Ok(Action::requeue(if retry { RETRY_ROUTING } else { RESYNC }))
}

/// Records a compiled version: the first time it is seen, stores it (row
/// and ConfigMap). The smoke test runs every time: the test calls are not
/// part of the version (an edited test must be run against an unchanged
/// config), and running them is cheap and deterministic.
async fn admit(
    agent: &Agent,
    tenant: &Tenant,
    version: &ConfigVersion,
    objectives: &[Arc<Objective>],
    ctx: &Context,
    report: &mut Report,
    now: Timestamp,
) -> Result<VersionRecord, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    report
        .updates
        .extend(status::compiled(&version.hash, agent.spec.objectives.len()));
    report
        .updates
        .push(status::workflows(Some(&version.config), None));
    let tests = test_calls(agent, objectives);
    let count = tests.iter().map(|(_, t)| t.len()).sum();
    let smoke = rollout::smoke_test(&version.config, &tests);
    let known = report.history.iter_mut().find(|r| r.hash == version.hash);
    let record = match known {
        Some(r) => {
            r.smoke_test = Some(smoke.record());
            r.clone()
        }
        None => {
            versions::put(&ctx.db, version, &tenant.name_any(), &ns, &name).await?;
            let owner = build::owner_ref(agent);
            let cm = build::config_map(version, &tenant.name_any(), &ns, &name, owner);
            ssa(
                &Api::<ConfigMap>::namespaced(ctx.shared.client.clone(), &ns),
                &cm,
            )
            .await?;
            tracing::info!(
                agent = %object_key(agent),
                version = %version.hash,
                tests = smoke.ran,
                passed = smoke.failure.is_none(),
                "compiled and smoke-tested a new config version"
            );
            let record = VersionRecord {
                hash: version.hash.clone(),
                created: stamp(now),
                activated: None,
                smoke_test: Some(smoke.record()),
            };
            report.history.push(record.clone());
            record
        }
    };
    report.updates.push(status::smoke_tested(&record, count));
    Ok(record)
}

/// Each Objective the Agent names with its scripted test calls, in the
/// Agent's order (the smoke test's input).
pub fn test_calls<'a>(
    agent: &'a Agent,
    objectives: &'a [Arc<Objective>],
) -> Vec<(&'a str, &'a [TestCall])> {
    agent
        .spec
        .objectives
        .iter()
        .filter_map(|r| {
            objectives
                .iter()
                .find(|o| o.name_any() == r.name)
                .map(|o| (r.name.as_str(), o.spec.tests.as_slice()))
        })
        .collect()
}

/// Moves the numbers to the chosen version (or removes them while
/// suspended) and binds them at the telephony vendor.
#[allow(clippy::too_many_arguments)]
async fn route(
    agent: &Agent,
    tenant: &Tenant,
    choice: &rollout::Choice,
    suspended: bool,
    telephony: Option<&Resolved<'_>>,
    ctx: &Context,
    report: &mut Report,
    now: Timestamp,
) -> Result<(), Error> {
    let ns = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    // Only numbers the platform granted the Tenant are routed; the others
    // are reported and never reach `phone_routes`.
    let (granted, refused) = grants(agent, tenant);
    if suspended {
        let held = routes::suspend(&ctx.db, &ns, &name, &granted).await?;
        report.phone_numbers = refused;
        report.phone_numbers.extend(granted.iter().map(|n| {
            let why = if held.contains(n) {
                "calls hear that the service is unavailable; the number stays with this Agent"
            } else {
                "not routed while suspended"
            };
            status::number(n, state::SUSPENDED, Some(why.to_owned()))
        }));
        return Ok(());
    }
    let Some(target) = &choice.target else {
        report.phone_numbers = refused;
        report.phone_numbers.extend(granted.iter().map(|n| {
            status::number(
                n,
                state::PENDING,
                Some("no config version has passed its smoke test yet".to_owned()),
            )
        }));
        return Ok(());
    };
    let activation =
        routes::activate(&ctx.db, &tenant.name_any(), &ns, &name, &granted, target).await?;
    if report.active_version.as_deref() != Some(target.as_str()) {
        if let Some(r) = report.history.iter_mut().find(|r| &r.hash == target) {
            r.activated = Some(stamp(now));
        }
        tracing::info!(agent = %object_key(agent), version = %target, "activated");
        report.active_version = Some(target.clone());
    }
    let previous = std::mem::take(&mut report.phone_numbers);
    report.phone_numbers = refused;
    report
        .phone_numbers
        .extend(bind_numbers(agent, &activation, telephony, &previous, ctx).await?);
    Ok(())
}

/// The Agent's numbers the Tenant was granted, and the status of the
/// others.
fn grants(agent: &Agent, tenant: &Tenant) -> (Vec<String>, Vec<PhoneNumberStatus>) {
    let mut granted = Vec::new();
    let mut refused = Vec::new();
    for phone in &agent.spec.phone_numbers {
        if tenant.spec.phone_numbers.contains(&phone.number) {
            granted.push(phone.number.clone());
        } else {
            refused.push(status::number(
                &phone.number,
                state::NOT_GRANTED,
                Some(format!(
                    "not in Tenant {}'s spec.phoneNumbers; the platform grants numbers",
                    tenant.name_any()
                )),
            ));
        }
    }
    (granted, refused)
}

/// The state of each number activation saw, binding the routed ones.
async fn bind_numbers(
    agent: &Agent,
    activation: &Activation,
    telephony: Option<&Resolved<'_>>,
    previous: &[PhoneNumberStatus],
    ctx: &Context,
) -> Result<Vec<PhoneNumberStatus>, Error> {
    let ns = agent.namespace().unwrap_or_default();
    let url = ctx
        .settings
        .voice
        .public_url
        .as_deref()
        .map(telephony::voice_url);
    let secret = telephony.and_then(|t| t.secret(&ns));
    let secret_version = secret.as_ref().and_then(|(sns, sname)| {
        ctx.caches
            .secrets
            .state()
            .iter()
            .find(|s| s.namespace().as_deref() == Some(sns.as_str()) && &s.name_any() == sname)
            .and_then(|s| s.resource_version())
    });
    let with = telephony
        .map(|t| format!("{}@{}", t.describe(), secret_version.unwrap_or_default()))
        .unwrap_or_default();
    let mut client = None;
    let mut out = Vec::new();
    let activated = agent.spec.phone_numbers.iter().filter(|p| {
        activation.routed.contains(&p.number)
            || activation.conflicts.iter().any(|c| c.number == p.number)
    });
    for phone in activated {
        if let Some(c) = activation
            .conflicts
            .iter()
            .find(|c| c.number == phone.number)
        {
            out.push(status::number(
                &phone.number,
                state::CONFLICT,
                Some(format!("held by Agent {}/{}", c.namespace, c.agent)),
            ));
            continue;
        }
        let before = previous.iter().find(|p| p.number == phone.number);
        // The telephony Provider is missing (Validated says so): leave the
        // binding as it was rather than forget it.
        if agent.spec.providers.telephony.is_some() && telephony.is_none() {
            out.push(before.cloned().unwrap_or_else(|| {
                status::number(
                    &phone.number,
                    state::ROUTED,
                    Some(
                        "the telephony provider is missing; the webhook is not managed".to_owned(),
                    ),
                )
            }));
            continue;
        }
        match telephony::plan(phone, telephony, url.as_deref(), &with, before) {
            telephony::Plan::RouteOnly(note) => {
                out.push(status::number(&phone.number, state::ROUTED, note));
            }
            telephony::Plan::Keep => {
                out.extend(before.cloned());
            }
            telephony::Plan::Bind => {
                // plan() binds only with a provider and a URL.
                let (Some(t), Some(url)) = (telephony, url.as_deref()) else {
                    out.push(status::number(&phone.number, state::ROUTED, None));
                    continue;
                };
                // One Secret read per reconcile, whatever the number count.
                let made = match &client {
                    Some(made) => Clone::clone(made),
                    None => {
                        let made = twilio_client(t, secret.as_ref(), ctx).await?;
                        client = Some(made.clone());
                        made
                    }
                };
                let result = match made {
                    Ok(c) => telephony::bind(&c, &phone.number, url).await,
                    Err(e) => Err(e),
                };
                out.push(match result {
                    Ok(()) => {
                        tracing::info!(agent = %object_key(agent), number = %phone.number, url, "voice webhook bound");
                        telephony::bound(&phone.number, url, &with)
                    }
                    Err(e) => status::number(
                        &phone.number,
                        state::BINDING_FAILED,
                        Some(status::truncate(e.to_string())),
                    ),
                });
            }
        }
    }
    Ok(out)
}

/// Reads the telephony Provider's Secret (through the API; values are never
/// cached) and builds a Twilio client from it.
async fn twilio_client(
    t: &Resolved<'_>,
    secret: Option<&(String, String)>,
    ctx: &Context,
) -> Result<Result<dialtone_providers::twilio::rest::TwilioRest, telephony::BindError>, Error> {
    let Some((ns, name)) = secret else {
        return Ok(Err(telephony::BindError::SecretNotFound(format!(
            "of {} (spec.credentialsSecretRef)",
            t.describe()
        ))));
    };
    let what = format!("{ns}/{name}");
    let api: Api<Secret> = Api::namespaced(ctx.shared.client.clone(), ns);
    let found = timed(api.get_opt(name))
        .await
        .map_err(|source| Error::Read {
            what: format!("Secret {what}"),
            source,
        })?;
    Ok(match found {
        None => Err(telephony::BindError::SecretNotFound(what)),
        Some(s) => telephony::twilio_client(t, &what, &s.data.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_sort_like_the_times_they_name() {
        let t = |s: i64, ns: i32| Timestamp::new(s, ns).expect("time");
        assert_eq!(stamp(t(1_800_000_000, 0)), "2027-01-15T08:00:00.000000Z");
        let times = [t(100, 0), t(100, 5_000), t(100, 900_000_000), t(101, 0)];
        let stamps: Vec<String> = times.iter().map(|t| stamp(*t)).collect();
        let mut sorted = stamps.clone();
        sorted.sort();
        assert_eq!(stamps, sorted);
    }
}
