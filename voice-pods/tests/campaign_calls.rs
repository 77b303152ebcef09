//! Campaign calls' Twilio callbacks against a real pod and PostgreSQL:
//! only the attempt's own account can answer for or finish it, a person
//! gets a media stream naming the attempt, a machine gets the voicemail
//! policy, and the final status moves the lead on exactly once.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a panic fails the test

mod common;

use std::time::Duration;

use common::stream_of;

use dialtone_crds::campaign::{
    CampaignPurpose, CampaignRetries, Pacing, Schedule, VoicemailAction, VoicemailPolicy,
};
use dialtone_providers::twilio::signature;
use dialtone_spine::campaigns::{self, CampaignKey, DialPlan, LeadRow};
use dialtone_voice::testkit::{
    self, AUTH_TOKEN, DEFAULT_TOKEN, NAMESPACE, TestPod, random_number, random_suffix, seed_dental,
};
use uuid::Uuid;

fn plan(caller_id: &str) -> DialPlan {
    DialPlan {
        schedule: Schedule {
            windows: Vec::new(),
            start_date: None,
            end_date: None,
        },
        purpose: CampaignPurpose::Informational,
        tenant_timezone: "Australia/Sydney".to_owned(),
        holidays: Vec::new(),
        caller_ids: vec![caller_id.to_owned()],
        pacing: Pacing::default(),
        retries: CampaignRetries::default(),
        respect_do_not_call: true,
        suppress: Vec::new(),
        budget_usd: None,
        tenant_daily_budget_usd: None,
        voicemail: VoicemailPolicy {
            policy: VoicemailAction::LeaveMessage,
            message: Some("Harbour Dental: your check-up is due.".to_owned()),
        },
    }
}

async fn post(url: &str, params: &[(String, String)], token: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature(token, url, params))
        .body(serde_urlencoded::to_string(params).unwrap())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_callbacks_verify_with_the_attempts_account_and_finish_once() {
    let Some(url) = testkit::database_or_skip("campaign callbacks") else {
        return;
    };
    let pod = TestPod::start(&url, Duration::from_secs(5)).await.unwrap();
    let pool = pod.pool().clone();
    let caller_id = random_number();
    let agent = format!("reminders-{}", random_suffix());
    let seeded = seed_dental(&pool, &agent, &caller_id, "Mia").await.unwrap();
    let tenant = seeded.version.config.tenant.name.clone();
    let key = CampaignKey {
        namespace: NAMESPACE.to_owned(),
        name: format!("recall-{}", random_suffix()),
    };
    campaigns::upsert(&pool, &key, &tenant, &agent, &plan(&caller_id), true)
        .await
        .unwrap();
    let lead = random_number();
    campaigns::sync_leads(
        &pool,
        &key,
        &[LeadRow {
            phone: lead.clone(),
            name: Some("Jane".to_owned()),
            timezone: None,
            fields: Default::default(),
        }],
    )
    .await
    .unwrap();
    // What the dialer's turn writes for a dial.
    let id = Uuid::new_v4();
    sqlx::query("UPDATE campaign_leads SET status = 'dialing', attempts = 1 WHERE namespace = $1 AND campaign = $2")
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaign_attempts (id, namespace, campaign, phone, attempt, caller_id, config_version)
         VALUES ($1, $2, $3, $4, 1, $5, $6)",
    )
    .bind(id)
    .bind(&key.namespace)
    .bind(&key.name)
    .bind(&lead)
    .bind(&caller_id)
    .bind(&seeded.version.hash)
    .execute(&pool)
    .await
    .unwrap();

    let answer_url = format!("http://{}/twilio/outbound?attempt={id}", pod.addr);
    let human = form(&[
        ("CallSid", "CAcampaign1"),
        ("From", &caller_id),
        ("To", &lead),
        ("CallStatus", "in-progress"),
        ("AnsweredBy", "human"),
        ("MachineDetectionDuration", "1830"),
    ]);
    // The platform's token verifies nothing that belongs to a tenant.
    let (status, _) = post(&answer_url, &human, DEFAULT_TOKEN).await;
    assert_eq!(status, 403);
    // An attempt id that is not the one signed, or not one at all.
    let other = format!(
        "http://{}/twilio/outbound?attempt={}",
        pod.addr,
        Uuid::new_v4()
    );
    let (status, _) = post(&other, &human, AUTH_TOKEN).await;
    assert_eq!(status, 403);

    let (status, twiml) = post(&answer_url, &human, AUTH_TOKEN).await;
    assert_eq!(status, 200, "{twiml}");
    let (url, claims) = stream_of(&twiml);
    assert!(
        url.starts_with(&format!("ws://{}/twilio/media/", pod.addr)),
        "{url}"
    );
    assert_eq!(claims.attempt, id.to_string());
    assert_eq!(claims.config_version, seeded.version.hash);
    assert_eq!(claims.caller, caller_id);
    assert_eq!(claims.callee, lead);
    assert_eq!(claims.call_sid, "CAcampaign1");

    let machine = form(&[
        ("CallSid", "CAcampaign1"),
        ("From", &caller_id),
        ("To", &lead),
        ("CallStatus", "in-progress"),
        ("AnsweredBy", "machine_end_beep"),
    ]);
    let (status, twiml) = post(&answer_url, &machine, AUTH_TOKEN).await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say>Harbour Dental: your check-up is due.</Say><Hangup/>"),
        "{twiml}"
    );

    let status_url = format!("http://{}/twilio/status?attempt={id}", pod.addr);
    let ringing = form(&[("CallSid", "CAcampaign1"), ("CallStatus", "ringing")]);
    assert_eq!(post(&status_url, &ringing, AUTH_TOKEN).await.0, 204);
    let done = form(&[
        ("CallSid", "CAcampaign1"),
        ("CallStatus", "completed"),
        ("AnsweredBy", "machine_end_beep"),
    ]);
    assert_eq!(post(&status_url, &done, DEFAULT_TOKEN).await.0, 403);
    assert_eq!(post(&status_url, &done, AUTH_TOKEN).await.0, 204);
    // Twilio retries callbacks: a second report changes nothing.
    assert_eq!(post(&status_url, &done, AUTH_TOKEN).await.0, 204);
    let (lead_status, attempts): (String, i32) = sqlx::query_as(
        "SELECT status, attempts FROM campaign_leads WHERE namespace = $1 AND campaign = $2",
    )
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((lead_status.as_str(), attempts), ("voicemail", 1));
    let (outcome, answered_by, amd_ms): (String, Option<String>, Option<i32>) =
        sqlx::query_as("SELECT outcome, answered_by, amd_ms FROM campaign_attempts WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(outcome, "completed");
    assert_eq!(answered_by.as_deref(), Some("machine_end_beep"));
    assert_eq!(amd_ms, Some(1830));
    campaigns::deactivate(&pool, &key).await.unwrap();
    seeded.unroute(&pool).await.unwrap();
    pod.stop().await.unwrap();
}
