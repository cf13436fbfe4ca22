//! Scheduled routes: digests of any size, one firing per tick across replicas, and a weekly
//! DM per record — against the Salesforce and Slack emulators.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Salesforce, Slack, eventually};

const DIGEST_ROUTE: &str = r##"
object = "Opportunity"
schedule = "0 8 * * 1-5"
query = "SELECT Id, Name, Amount, StageName, CloseDate, Account.Name FROM Opportunity WHERE IsClosed = false AND StageName IN :stages"
params = { stages = ["Proposal/Price Quote", "Negotiation/Review"] }
[[actions]]
type = "post"
channel = "#deal-desk"
template = "pipeline-digest"
"##;

fn deals(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let id15 = format!("006{:012}", i + 1);
            json!({
                "Id": sfrelay::event::SalesforceId::parse(&id15).unwrap().to_string(),
                "Name": format!("Deal {i}"), "Amount": 1000 * (i + 1), "IsClosed": false,
                "StageName": if i % 2 == 0 { "Proposal/Price Quote" } else { "Negotiation/Review" },
                "CloseDate": "2026-12-15", "Account": {"Name": format!("Account {i}")}
            })
        })
        .collect();
    json!({ "Opportunity": records })
}

async fn digest_of(n: usize) -> Value {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&deals(n));
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("pipeline", DIGEST_ROUTE.to_string())]),
        salesforce_section: Some(salesforce.org_section()),
        ..Options::default()
    })
    .await;
    let (ok, out) = app.cli(&["run", "pipeline"]);
    assert!(ok, "{out}");
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(slack.stats().await["invalid_blocks"], 0);
    messages[0].clone()
}

#[tokio::test]
async fn a_digest_stays_within_slacks_limits_with_0_1_and_500_deals() {
    let none = digest_of(0).await;
    assert!(
        serde_json::to_string(&none)
            .unwrap()
            .contains("No open deals"),
        "{none}"
    );
    let one = digest_of(1).await;
    assert_eq!(one["text"], "Pipeline forecast: 1 deals, 1,000");
    let many = digest_of(500).await;
    let text = serde_json::to_string(&many).unwrap();
    assert_eq!(many["text"], "Pipeline forecast: 500 deals, 125,250,000");
    assert!(
        text.contains("Deal 499") && text.contains("…and 490 more"),
        "{text}"
    );
    assert!(text.contains("Negotiation/Review: 250"), "{text}");
}

#[tokio::test]
async fn a_schedule_fires_once_per_tick_with_two_replicas() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&deals(2));
    let route = r##"
object = "Opportunity"
schedule = "*/2 * * * * *"
query = "SELECT Id, Name, Amount FROM Opportunity WHERE IsClosed = false"
[[actions]]
type = "post"
channel = "#deal-desk"
template = "tick"
"##;
    let namespace = support::fresh_namespace();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("ticker", route.to_string())]),
        templates: vec![(
            "tick",
            r#"{"text": "tick {{ occurred_at }}: {{ count }} deals", "blocks": []}"#.to_string(),
        )],
        salesforce_section: Some(salesforce.org_section()),
        namespace: namespace.clone(),
        ..Options::default()
    };
    let _one = App::spawn(options()).await;
    let _two = App::spawn(options()).await;
    let messages = eventually("three ticks", Duration::from_secs(30), || async {
        let m = slack.messages().await;
        (m.len() >= 3).then_some(m)
    })
    .await;
    let texts: Vec<String> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "a tick fired twice: {texts:#?}");
    assert!(texts.iter().all(|t| t.ends_with(": 2 deals")), "{texts:?}");
}

#[tokio::test]
async fn a_quiet_renewal_is_sent_to_its_csm_once_a_week() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&json!({"Opportunity": [
        {"Id": "006000000000001AAA", "Name": "Renewal A", "Type": "Renewal", "IsClosed": false,
         "Amount": 50000, "CloseDate": "2027-01-15", "LastActivityDate": null, "CSM_Email__c": "casey.success@example.com"},
        {"Id": "006000000000002AAA", "Name": "Renewal B", "Type": "Renewal", "IsClosed": false,
         "Amount": 20000, "CloseDate": "2027-02-01", "LastActivityDate": "2026-09-01", "CSM_Email__c": "sam.engineer@example.com"},
        {"Id": "006000000000003AAA", "Name": "New business", "Type": "New", "IsClosed": false,
         "Amount": 1, "CloseDate": "2027-02-01", "LastActivityDate": null, "CSM_Email__c": "casey.success@example.com"}
    ]}));
    let route = r##"
object = "Opportunity"
schedule = "0 9 * * 1"
query = "SELECT Id, Name, Amount, CloseDate, LastActivityDate, CSM_Email__c FROM Opportunity WHERE Type = 'Renewal' AND IsClosed = false"
each = true
dedupe = "once_per_record"
dedupe_days = 7
fallback_channel = "#deal-desk"
[[actions]]
type = "dm"
email = "record.CSM_Email__c"
template = "renewal-risk-dm"
"##;
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("renewal-risk", route.to_string())]),
        salesforce_section: Some(salesforce.org_section()),
        ..Options::default()
    })
    .await;
    for _ in 0..2 {
        let (ok, out) = app.cli(&["run", "renewal-risk"]);
        assert!(ok, "{out}");
        assert!(out.contains("2 record deliveries"), "{out}");
    }
    let messages = slack.wait_for_messages(2).await;
    let dms: Vec<Value> = slack.get_json("/_emulator/dms").await;
    for (user, renewal) in [("U0CASEY001", "Renewal A"), ("U0SAM00001", "Renewal B")] {
        let channel = dms.iter().find(|d| d["user"] == user).expect("a DM")["channel"].clone();
        let theirs: Vec<&Value> = messages
            .iter()
            .filter(|m| m["channel"] == channel)
            .collect();
        assert_eq!(theirs.len(), 1, "{user}");
        assert!(theirs[0]["text"].as_str().unwrap().contains(renewal));
    }
}
