//! Leader election: a standby takes over when the leader stops.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dialtone_crds::Tenant;
use dialtone_e2e::*;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use nix::sys::signal::Signal;

/// Starts two operators on one Lease; returns (leader, standby).
async fn pair(env: &Env, run: &str, lease: &str) -> Result<(Operator, Operator)> {
    let a = Operator::start(env, run, lease, &format!("{run}-a"), &[])?;
    // Let `a` win, so the test knows who leads without racing.
    wait_for(Duration::from_secs(20), || async {
        Ok(lease_holder(&env.client, lease).await?.as_deref() == Some(a.identity.as_str()))
    })
    .await?;
    let b = Operator::start(env, run, lease, &format!("{run}-b"), &[])?;
    // The standby is warm (caches synced) while not leading.
    wait_for(Duration::from_secs(20), || async {
        let (code, body) = b.get("/readyz").await?;
        Ok(code == 200 && body.contains("standby"))
    })
    .await?;
    let (_, metrics) = b.get("/metrics").await?;
    assert!(metrics.contains("dialtone_leader 0"), "{metrics}");
    Ok((a, b))
}

async fn takeover(signal: Signal) -> Result<()> {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let run = unique(if signal == Signal::SIGKILL {
        "lk"
    } else {
        "lt"
    });
    let lease = format!("{run}-lease");
    let (mut leader, standby) = pair(&env, &run, &lease).await?;

    let tenants: Api<Tenant> = Api::all(env.client.clone());
    let first = format!("{run}-first");
    tenants
        .create(
            &PostParams::default(),
            &tenant_manifest(&first, &run, basic_tenant_spec("Before"))?,
        )
        .await?;
    wait_tenant_ready(&env.client, &first, Duration::from_secs(30)).await?;

    let start = Instant::now();
    leader.signal(signal)?;
    let took = wait_for(Duration::from_secs(30), || async {
        Ok(lease_holder(&env.client, &lease).await?.as_deref() == Some(standby.identity.as_str()))
    })
    .await
    .context("the standby did not take over")?;
    println!("{signal:?}: standby holds the Lease after {took:?}");
    let exited_ok = leader.wait_exit(Duration::from_secs(15)).await?;
    if signal == Signal::SIGTERM {
        assert!(exited_ok, "SIGTERM ends the operator cleanly");
        // The leader released the Lease: no waiting for expiry.
        assert!(
            took < Duration::from_secs(3),
            "takeover after SIGTERM took {took:?}"
        );
    } else {
        // 15 s lease: expiry as observed by the standby, plus at most one retry.
        assert!(
            took < Duration::from_secs(22),
            "takeover after SIGKILL took {took:?}"
        );
    }

    let second = format!("{run}-second");
    tenants
        .create(
            &PostParams::default(),
            &tenant_manifest(&second, &run, basic_tenant_spec("After"))?,
        )
        .await?;
    wait_tenant_ready(&env.client, &second, Duration::from_secs(30)).await?;
    println!(
        "{signal:?}: a new Tenant is Ready {:?} after the leader stopped",
        start.elapsed()
    );
    let (_, metrics) = standby.get("/metrics").await?;
    assert!(metrics.contains("dialtone_leader 1"), "{metrics}");

    for name in [&first, &second] {
        tenants.delete(name, &DeleteParams::default()).await?;
    }
    wait_for(Duration::from_secs(60), || async {
        Ok(tenants.get_opt(&first).await?.is_none() && tenants.get_opt(&second).await?.is_none())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn standby_takes_over_after_sigterm() -> Result<()> {
    takeover(Signal::SIGTERM).await
}

#[tokio::test]
async fn standby_takes_over_after_sigkill() -> Result<()> {
    takeover(Signal::SIGKILL).await
}
