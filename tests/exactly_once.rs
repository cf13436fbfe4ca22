//! Exactly-once keys: what makes two deliveries "the same change", a CDC gap fetch that runs
//! again, reconciliation meeting a backlog, and once-per-record routes whose first attempt does
//! not land. The real binary, real Redis and the emulators.

mod support;

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
