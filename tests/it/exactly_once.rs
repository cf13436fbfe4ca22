//! Exactly-once keys: what makes two deliveries "the same change", a CDC gap fetch that runs
//! again, reconciliation meeting a backlog, and once-per-record routes whose first attempt does
//! not land. The real binary, real Redis and the emulators.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, eventually};

/// A Flow callout without an `event_id`: only its content says which change it is.
fn unnamed_change(amount: u64) -> Value {
    json!({
        "org_id": support::ORG, "object": "Opportunity", "change_type": "UPDATE",
        "changed_fields": ["Amount"],
        "record": {"Id": "006Hs00000BkXyzIAF", "Name": "Acme", "Amount": amount,
                   "LastModifiedDate": "2025-09-30T16:00:00.000+0000"}
    })
}

#[tokio::test]
async fn without_an_event_id_a_different_change_with_the_same_timestamp_is_not_a_duplicate() {
    let redis = Redis::start();
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        routes: Some(Vec::new()),
        ..Options::default()
    })
    .await;
    let send = |body: Value| {
        let app = &app;
        async move {
            let response = app.post_events(body.to_string()).await;
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.expect("JSON answer")
        }
    };
    let first = send(unnamed_change(100)).await;
    assert_eq!(
        (first["accepted"].clone(), first["duplicates"].clone()),
        (json!(1), json!(0))
    );
    // Same record, timestamp and changed fields, other values: a change of its own.
    let other = send(unnamed_change(200)).await;
    assert_eq!(
        (other["accepted"].clone(), other["duplicates"].clone()),
        (json!(1), json!(0))
    );
    // The first one sent again, unchanged: a resend.
    let resend = send(unnamed_change(100)).await;
    assert_eq!(
        (resend["accepted"].clone(), resend["duplicates"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(resend["ids"], first["ids"]);
    // With no timestamp at all, values still tell changes apart and resends alike.
    let mut bare = unnamed_change(300);
    bare["record"]
        .as_object_mut()
        .unwrap()
        .remove("LastModifiedDate");
    assert_eq!(send(bare.clone()).await["accepted"], 1);
    bare["record"]["Amount"] = 301.into();
    assert_eq!(send(bare.clone()).await["accepted"], 1);
    assert_eq!(send(bare).await["duplicates"], 1);
}

/// Posts each Closed Won opportunity a gap event names, after fetching it.
const GAP_ROUTE: &str = r##"
object = "Opportunity"
on_gap = "fetch"
when = 'record.StageName == "Closed Won"'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "closed-won-briefing"
"##;

const FIRST: &str = "006000000000001AAA";
const SECOND: &str = "006000000000002AAA";

#[tokio::test]
async fn a_gap_fetch_that_runs_again_mints_the_same_event_ids_and_posts_once() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = support::Salesforce::start(&json!({"Opportunity": [
        {"Id": FIRST, "Name": "First deal", "StageName": "Closed Won", "Amount": 10,
         "LastModifiedDate": "2025-09-30T16:00:00.000+0000"},
        {"Id": SECOND, "Name": "Second deal", "StageName": "Closed Won", "Amount": 20,
         "LastModifiedDate": "2025-09-30T16:00:00.000+0000"}
    ]}));
    let namespace = support::fresh_namespace();
    // What reconciliation remembers of the second deal is unreadable (a key of the wrong
    // type), so routing it fails after the first deal was routed, and the gap job goes again.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let broken = format!(
        "sfrelay:{{{namespace}}}:seen:{}:Opportunity:{SECOND}",
        support::ORG
    );
    let _: () = redis::cmd("RPUSH")
        .arg(&broken)
        .arg("not a record")
        .query_async(&mut conn)
        .await
        .unwrap();
    let section = format!(
        "{}\n[[orgs.reconcile]]\nobject = \"Opportunity\"\nfields = [\"StageName\"]\nevery_seconds = 3600\n",
        salesforce.org_section()
    );
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("gap-fetch", GAP_ROUTE.to_string())]),
        salesforce_section: Some(section),
        namespace,
        ..Options::default()
    })
    .await;
    let gap = json!({
        "schema": "x",
        "payload": {"ChangeEventHeader": {
            "entityName": "Opportunity", "recordIds": [FIRST, SECOND], "changeType": "GAP_UPDATE",
            "changeOrigin": "", "transactionKey": "t-gap", "sequenceNumber": 1,
            "commitTimestamp": 1727712000000u64, "commitNumber": 1, "commitUser": "005Hs00000DnDefIAF",
            "changedFields": [], "nulledFields": [], "diffFields": []}},
        "event": {"replayId": 78}
    });
    let response = app
        .post("/v1/cdc", "application/json", gap.to_string())
        .await;
    assert_eq!(response.status(), 202);
    eventually(
        "the gap job to be retried",
        Duration::from_secs(20),
        || async { (app.metric("sfrelay_jobs_retried_total").await >= Some(2.0)).then_some(()) },
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&broken)
        .query_async(&mut conn)
        .await
        .unwrap();
    let messages = slack.wait_for_messages(2).await;
    settled(&app).await;
    let messages_now = slack.messages().await;
    assert_eq!(messages_now.len(), 2, "{messages_now:#?}");
    for name in ["First deal", "Second deal"] {
        assert_eq!(
            messages
                .iter()
                .filter(|m| all_text(m).contains(name))
                .count(),
            1,
            "{name}: {messages:#?}"
        );
    }
}

fn all_text(message: &Value) -> String {
    serde_json::to_string(message).unwrap()
}

/// Waits until the queue holds nothing ready, in flight or delayed.
async fn settled(app: &App) {
    eventually("the queue to settle", Duration::from_secs(15), || async {
        let mut total = 0.0;
        for state in ["ready", "in_flight", "delayed"] {
            total += app
                .metric(&format!("sfrelay_queue_depth{{state=\"{state}\"}}"))
                .await?;
        }
        (total == 0.0).then_some(())
    })
    .await;
}

/// Announces a deal once per record in a channel that may not exist yet.
const ONCE_ROUTE: &str = r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
dedupe = "once_per_record"
[[actions]]
type = "post"
channel = "C0LATEROOM"
template = "closed-won-briefing"
"##;

fn won(event_id: &str, record: &str, name: &str) -> Value {
    json!({
        "org_id": support::ORG, "object": "Opportunity", "event_id": event_id,
        "changed_fields": ["StageName"],
        "record": {"Id": record, "StageName": "Closed Won", "Name": name, "Amount": 10},
        "prior": {"StageName": "Negotiation/Review"}
    })
}

async fn once_stack(max_attempts: u32) -> (Redis, Slack, App) {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("announce-once", ONCE_ROUTE.to_string())]),
        max_attempts,
        ..Options::default()
    })
    .await;
    (redis, slack, app)
}

#[tokio::test]
async fn a_once_per_record_route_whose_first_delivery_never_landed_fires_for_the_next_event() {
    let (_redis, slack, app) = once_stack(50).await;
    // The channel does not exist yet: both deals' first deliveries fail for good.
    let batch =
        json!({"events": [won("won-1", FIRST, "First deal"), won("won-s", SECOND, "Second deal")]});
    assert_eq!(app.post_events(batch.to_string()).await.status(), 202);
    eventually("two dead letters", Duration::from_secs(20), || async {
        (app.metric("sfrelay_queue_depth{state=\"dead\"}").await == Some(2.0)).then_some(())
    })
    .await;
    let created = reqwest::Client::new()
        .post(format!("{}/_emulator/channels", slack.url))
        .json(&json!({"id": "C0LATEROOM", "name": "late-room"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    // The first deal is won again (reopened, won): nothing was ever posted for it, so now it is.
    let again = won("won-2", FIRST, "First deal");
    assert_eq!(app.post_events(again.to_string()).await.status(), 202);
    let messages = slack.wait_for_messages(1).await;
    assert!(
        all_text(&messages[0]).contains("First deal"),
        "{messages:#?}"
    );
    // The operator replays the dead letters: the second deal's posts; the first deal's is
    // skipped, its record being announced by now.
    let (ok, out) = app.cli(&["dlq", "replay", "--all"]);
    assert!(ok && out.contains("2 dead letter(s) replayed"), "{out}");
    let messages = slack.wait_for_messages(2).await;
    settled(&app).await;
    assert_eq!(slack.messages().await.len(), 2);
    for name in ["First deal", "Second deal"] {
        assert_eq!(
            messages
                .iter()
                .filter(|m| all_text(m).contains(name))
                .count(),
            1,
            "{name}: {messages:#?}"
        );
    }
}

#[tokio::test]
async fn a_once_per_record_route_posts_once_through_failed_attempts_and_concurrent_events() {
    let (_redis, slack, app) = once_stack(50).await;
    let created = reqwest::Client::new()
        .post(format!("{}/_emulator/channels", slack.url))
        .json(&json!({"id": "C0LATEROOM", "name": "late-room"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    // Slack fails for a while; two events of one deal arrive together.
    slack.set_faults(json!({"fail_rate": 1.0})).await;
    let batch =
        json!({"events": [won("won-a", FIRST, "First deal"), won("won-b", FIRST, "First deal")]});
    assert_eq!(app.post_events(batch.to_string()).await.status(), 202);
    eventually("failed attempts", Duration::from_secs(20), || async {
        (app.metric("sfrelay_jobs_retried_total").await >= Some(2.0)).then_some(())
    })
    .await;
    slack.set_faults(json!({"fail_rate": 0.0})).await;
    slack.wait_for_messages(1).await;
    // Its first post is stored by Slack but the answer is lost: the retry finds it.
    slack
        .set_faults(json!({"drop_response_after_effect_rate": 1.0}))
        .await;
    let batch = json!({"events": [won("won-c", SECOND, "Second deal"), won("won-d", SECOND, "Second deal")]});
    assert_eq!(app.post_events(batch.to_string()).await.status(), 202);
    slack.wait_for_messages(2).await;
    slack
        .set_faults(json!({"drop_response_after_effect_rate": 0.0}))
        .await;
    settled(&app).await;
    let messages = slack.messages().await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(
        app.metric("sfrelay_queue_depth{state=\"dead\"}").await,
        Some(0.0)
    );
}

#[tokio::test]
async fn an_accepted_event_still_queued_is_not_recovered_again_by_reconciliation() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let five_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let deal = |stage: &str| {
        json!({"Opportunity": [{"Id": FIRST, "Name": "Queued deal", "StageName": stage,
                                "Amount": 10, "LastModifiedDate": five_minutes_ago}]})
    };
    let salesforce = support::Salesforce::start(&deal("Negotiation/Review"));
    let section = format!(
        "{}\n[[orgs.reconcile]]\nobject = \"Opportunity\"\nfields = [\"StageName\"]\nevery_seconds = 1\nwindow_minutes = 30\ngrace_minutes = 2\n",
        salesforce.org_section()
    );
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        salesforce_section: Some(section),
        workers: 1,
        ..Options::default()
    })
    .await;
    // A first pass learns the deal as it stands (in negotiation).
    eventually(
        "a first reconciliation pass",
        Duration::from_secs(15),
        || async { (salesforce.requests().await.len() >= 2).then_some(()) },
    )
    .await;
    // Slack is slow: the one worker is held by another deal's post for seconds.
    slack.set_faults(json!({"latency_ms": 4000})).await;
    let other = won("won-other", SECOND, "Other deal");
    assert_eq!(app.post_events(other.to_string()).await.status(), 202);
    eventually(
        "the other deal's post to be under way",
        Duration::from_secs(15),
        || async { (!slack.requests().await.is_empty()).then_some(()) },
    )
    .await;
    // The deal is won in Salesforce and its callout accepted, but it waits behind that post
    // while reconciliation passes run.
    salesforce.control("records", deal("Closed Won")).await;
    let callout = won("won-queued", FIRST, "Queued deal");
    assert_eq!(app.post_events(callout.to_string()).await.status(), 202);
    let passes_before = salesforce.requests().await.len();
    eventually(
        "two more reconciliation passes",
        Duration::from_secs(15),
        || async { (salesforce.requests().await.len() >= passes_before + 2).then_some(()) },
    )
    .await;
    slack.set_faults(json!({"latency_ms": 0})).await;
    slack.wait_for_messages(2).await;
    settled(&app).await;
    let messages = slack.messages().await;
    assert_eq!(
        messages
            .iter()
            .filter(|m| all_text(m).contains("Queued deal"))
            .count(),
        1,
        "{messages:#?}"
    );
    assert_eq!(
        app.metric("sfrelay_events_recovered_total{object=\"Opportunity\"}")
            .await
            .unwrap_or(0.0),
        0.0
    );
}
