//! Phone routing in `phone_routes`: number → tenant, Agent and the config
//! version new calls use. Every change is kept in `phone_route_history` by
//! trigger.
//!
//! A number belongs to one Agent at a time. [`activate`] never takes a
//! number from another Agent: the earlier owner keeps it and the caller is
//! told about the conflict. A suspended Agent keeps its numbers
//! ([`suspend`]): nobody else can claim them while calls hear the
//! suspended message.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

/// Why routes could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The database failed.
    #[error("phone_routes: {0}")]
    Db(#[from] sqlx::Error),
}

/// Where calls to a number go.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Route {
    /// The number, E.164.
    pub number: String,
    /// The Tenant owning the Agent.
    pub tenant: String,
    /// The Agent's namespace.
    pub namespace: String,
    /// The Agent's name.
    pub agent: String,
    /// The config version new calls to the number use.
    pub active_version: String,
    /// The Agent or its Tenant is suspended: calls are answered with the
    /// suspended message and nothing else.
    pub suspended: bool,
}

/// A number another Agent already holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The number, E.164.
    pub number: String,
    /// Namespace of the Agent holding it.
    pub namespace: String,
    /// Name of the Agent holding it.
    pub agent: String,
}

/// What [`activate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activation {
    /// Numbers now routed to the Agent at the version, sorted.
    pub routed: Vec<String>,
    /// Of those, the numbers whose route changed (new, or moved to the
    /// version), sorted.
    pub changed: Vec<String>,
    /// Numbers held by other Agents and left with them, sorted.
    pub conflicts: Vec<Conflict>,
    /// The Agent's numbers no longer listed, whose routes were removed, sorted.
    pub removed: Vec<String>,
}

/// The route of `number`, if it has one.
pub async fn lookup(pool: &PgPool, number: &str) -> Result<Option<Route>, RouteError> {
    Ok(sqlx::query_as(
        "SELECT number, tenant, namespace, agent, active_version, suspended FROM phone_routes WHERE number = $1",
    )
    .bind(number)
    .fetch_optional(pool)
    .await?)
}

/// The routes of the Agent `namespace/agent`, sorted by number.
pub async fn of_agent(
    pool: &PgPool,
    namespace: &str,
    agent: &str,
) -> Result<Vec<Route>, RouteError> {
    Ok(sqlx::query_as(
        "SELECT number, tenant, namespace, agent, active_version, suspended FROM phone_routes \
         WHERE namespace = $1 AND agent = $2 ORDER BY number",
    )
    .bind(namespace)
    .bind(agent)
    .fetch_all(pool)
    .await?)
}

/// Routes `numbers` to the Agent `namespace/agent` at `version`, in one
/// transaction: numbers of the Agent move to the version (calls in flight
/// keep theirs), new numbers are claimed, numbers held by another Agent are
/// reported as conflicts and left alone, and the Agent's numbers that are no
/// longer listed are removed. `version` must be stored first
/// ([`crate::versions::put`]).
pub async fn activate(
    pool: &PgPool,
    tenant: &str,
    namespace: &str,
    agent: &str,
    numbers: &[String],
    version: &str,
) -> Result<Activation, RouteError> {
    let wanted: BTreeSet<&str> = numbers.iter().map(String::as_str).collect();
    let wanted_vec: Vec<String> = wanted.iter().map(|n| (*n).to_owned()).collect();
    let mut tx = pool.begin().await?;

    // Lock every row involved, so a concurrent activation of another Agent
    // waits for this one (and then sees its numbers as taken).
    let existing: Vec<Route> = sqlx::query_as(
        "SELECT number, tenant, namespace, agent, active_version, suspended FROM phone_routes \
         WHERE number = ANY($1) OR (namespace = $2 AND agent = $3) \
         ORDER BY number FOR UPDATE",
    )
    .bind(&wanted_vec)
    .bind(namespace)
    .bind(agent)
    .fetch_all(&mut *tx)
    .await?;
    let ours = |r: &Route| r.namespace == namespace && r.agent == agent;

    let plan = plan(&existing, &wanted, tenant, namespace, agent, version);

    let removed: Vec<(String,)> = sqlx::query_as(
        "DELETE FROM phone_routes WHERE namespace = $1 AND agent = $2 AND number = ANY($3) \
         RETURNING number",
    )
    .bind(namespace)
    .bind(agent)
    .bind(&plan.remove)
    .fetch_all(&mut *tx)
    .await?;

    sqlx::query(
        "UPDATE phone_routes SET tenant = $1, active_version = $2, suspended = false, \
         updated_at = now() \
         WHERE namespace = $3 AND agent = $4 AND number = ANY($5)",
    )
    .bind(tenant)
    .bind(version)
    .bind(namespace)
    .bind(agent)
    .bind(&plan.update)
    .execute(&mut *tx)
    .await?;

    // A number another transaction claimed since the SELECT is skipped
    // here and reported as a conflict below.
    let inserted: Vec<(String,)> = sqlx::query_as(
        "INSERT INTO phone_routes (number, tenant, namespace, agent, active_version) \
         SELECT n, $2, $3, $4, $5 FROM UNNEST($1::text[]) AS n \
         ON CONFLICT (number) DO NOTHING RETURNING number",
    )
    .bind(&plan.insert)
    .bind(tenant)
    .bind(namespace)
    .bind(agent)
    .bind(version)
    .fetch_all(&mut *tx)
    .await?;
    let inserted: BTreeSet<String> = inserted.into_iter().map(|(n,)| n).collect();

    let mut conflicts: BTreeMap<String, Conflict> = existing
        .iter()
        .filter(|r| !ours(r) && wanted.contains(r.number.as_str()))
        .map(|r| (r.number.clone(), conflict(r)))
        .collect();
    let lost: Vec<String> = plan
        .insert
        .iter()
        .filter(|n| !inserted.contains(*n))
        .cloned()
        .collect();
    if !lost.is_empty() {
        let holders: Vec<Route> = sqlx::query_as(
            "SELECT number, tenant, namespace, agent, active_version, suspended FROM phone_routes \
             WHERE number = ANY($1)",
        )
        .bind(&lost)
        .fetch_all(&mut *tx)
        .await?;
        for r in holders {
            conflicts.insert(r.number.clone(), conflict(&r));
        }
    }
    tx.commit().await?;

    let mut changed: Vec<String> = plan.update.clone();
    changed.extend(inserted.iter().cloned());
    changed.sort();
    let mut routed: Vec<String> = plan.unchanged;
    routed.extend(changed.iter().cloned());
    routed.sort();
    let mut removed: Vec<String> = removed.into_iter().map(|(n,)| n).collect();
    removed.sort();
    Ok(Activation {
        routed,
        changed,
        conflicts: conflicts.into_values().collect(),
        removed,
    })
}

fn conflict(r: &Route) -> Conflict {
    Conflict {
        number: r.number.clone(),
        namespace: r.namespace.clone(),
        agent: r.agent.clone(),
    }
}

/// What [`activate`] writes, from the rows it locked.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// The Agent's rows already at the version (no write: a write would add
    /// a history row for nothing).
    unchanged: Vec<String>,
    /// The Agent's rows to move to the version.
    update: Vec<String>,
    /// Numbers nobody holds.
    insert: Vec<String>,
    /// The Agent's rows no longer wanted.
    remove: Vec<String>,
}

fn plan(
    existing: &[Route],
    wanted: &BTreeSet<&str>,
    tenant: &str,
    namespace: &str,
    agent: &str,
    version: &str,
) -> Plan {
    let mut p = Plan::default();
    let by_number: BTreeMap<&str, &Route> =
        existing.iter().map(|r| (r.number.as_str(), r)).collect();
    for r in existing {
        let ours = r.namespace == namespace && r.agent == agent;
        if ours && !wanted.contains(r.number.as_str()) {
            p.remove.push(r.number.clone());
        }
    }
    for n in wanted {
        match by_number.get(n) {
            None => p.insert.push((*n).to_owned()),
            Some(r) if r.namespace == namespace && r.agent == agent => {
                if r.active_version == version && r.tenant == tenant && !r.suspended {
                    p.unchanged.push((*n).to_owned());
                } else {
                    p.update.push((*n).to_owned());
                }
            }
            Some(_) => {}
        }
    }
    p
}

/// Suspends the routes of the Agent `namespace/agent`, in one transaction:
/// the routes of `numbers` stay with it, marked suspended, and its other
/// routes are removed. Numbers it does not hold are not claimed. Returns
/// the numbers it holds, sorted.
pub async fn suspend(
    pool: &PgPool,
    namespace: &str,
    agent: &str,
    numbers: &[String],
) -> Result<Vec<String>, RouteError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM phone_routes WHERE namespace = $1 AND agent = $2 AND NOT (number = ANY($3))",
    )
    .bind(namespace)
    .bind(agent)
    .bind(numbers)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE phone_routes SET suspended = true, updated_at = now() \
         WHERE namespace = $1 AND agent = $2 AND NOT suspended",
    )
    .bind(namespace)
    .bind(agent)
    .execute(&mut *tx)
    .await?;
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT number FROM phone_routes WHERE namespace = $1 AND agent = $2 ORDER BY number",
    )
    .bind(namespace)
    .bind(agent)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(held)
}

/// Removes every route of the Agent `namespace/agent` (it is being
/// deleted). Returns how many were removed.
pub async fn remove_agent(pool: &PgPool, namespace: &str, agent: &str) -> Result<u64, RouteError> {
    Ok(
        sqlx::query("DELETE FROM phone_routes WHERE namespace = $1 AND agent = $2")
            .bind(namespace)
            .bind(agent)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(number: &str, agent: &str, version: &str) -> Route {
        Route {
            number: number.into(),
            tenant: "acme".into(),
            namespace: "tenant-acme".into(),
            agent: agent.into(),
            active_version: version.into(),
            suspended: false,
        }
    }

    #[test]
    fn plan_sorts_numbers_into_writes() {
        let existing = [
            route("+61200000001", "front", "v1"),
            route("+61200000002", "front", "v2"),
            route("+61200000003", "front", "v1"),
            route("+61200000004", "back", "v1"),
        ];
        let wanted: BTreeSet<&str> = [
            "+61200000001",
            "+61200000002",
            "+61200000004",
            "+61200000005",
        ]
        .into_iter()
        .collect();
        let p = plan(&existing, &wanted, "acme", "tenant-acme", "front", "v2");
        assert_eq!(p.unchanged, ["+61200000002"]);
        assert_eq!(p.update, ["+61200000001"]);
        assert_eq!(p.insert, ["+61200000005"]);
        assert_eq!(p.remove, ["+61200000003"]);
    }

    #[test]
    fn a_tenant_change_rewrites_the_route() {
        let existing = [route("+61200000001", "front", "v1")];
        let wanted: BTreeSet<&str> = ["+61200000001"].into_iter().collect();
        let p = plan(&existing, &wanted, "other", "tenant-acme", "front", "v1");
        assert_eq!(p.update, ["+61200000001"]);
        assert!(p.unchanged.is_empty());
    }

    #[test]
    fn activating_a_suspended_route_resumes_it() {
        let mut suspended = route("+61200000001", "front", "v1");
        suspended.suspended = true;
        let wanted: BTreeSet<&str> = ["+61200000001"].into_iter().collect();
        let p = plan(&[suspended], &wanted, "acme", "tenant-acme", "front", "v1");
        assert_eq!(p.update, ["+61200000001"]);
        assert!(p.unchanged.is_empty());
    }
}
