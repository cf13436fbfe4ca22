//! Routes that enrich events from the Salesforce API (the emulator), and many orgs feeding one
//! workspace.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Salesforce, Slack, eventually};

const ENRICHED_ROUTE: &str = r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[enrich]
query = "SELECT Id, Name, Amount, Account.Name, Owner.Email FROM Opportunity WHERE Id = :record.Id"
name = "opp"
[[actions]]
type = "post"
channel = "#deal-desk"
template = "enriched"
"##;

const ENRICHED_TEMPLATE: &str = r#"{
  "text": "Won: {{ opp.Name | default('unknown deal') }} for {{ opp.Account.Name | default('unknown account') }}, owner {{ slack_user(opp.Owner.Email) if opp.Owner.Email else 'unknown' }}",
  "blocks": []
}"#;

fn callout(id: &str, name: &str) -> String {
    json!({
        "org_id": "00D5g000004ABCdEAO", "object": "Opportunity", "event_id": format!("ev-{id}-{name}"),
        "changed_fields": ["StageName"],
        "record": {"Id": id, "StageName": "Closed Won", "Name": name}
    })
    .to_string()
}

#[tokio::test]
async fn callouts_with_only_ids_are_enriched_and_an_expired_token_refreshes_once() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&json!({
        "Opportunity": [
            {"Id": "006Hs00000BkXyzIAF", "Name": "Acme Corp - Q3 Enterprise", "Amount": 75000,
             "Account": {"Name": "Acme Corp"}, "Owner": {"Email": "dana.seller@example.com"}},
            {"Id": "006000000000001AAA", "Name": "x' OR Name != '", "Amount": 1,
             "Account": {"Name": "O'Brien \\ Sons"}, "Owner": {"Email": "sam.engineer@example.com"}}
        ]
    }));
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("enriched", ENRICHED_ROUTE.to_string())]),
        templates: vec![("enriched", ENRICHED_TEMPLATE.to_string())],
        salesforce_section: Some(salesforce.org_section()),
        ..Options::default()
    })
    .await;

    assert_eq!(
        app.post_events(callout("006Hs00000BkXyzIAF", "ignored"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(
        messages[0]["text"],
        "Won: Acme Corp - Q3 Enterprise for Acme Corp, owner <@U0DANA0001>"
    );

    // The session expires: the next enrichment refreshes the token once and succeeds.
    salesforce.control("expire-tokens", json!({})).await;
    assert_eq!(
        app.post_events(callout("006000000000001AAA", "x"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(2).await;
    assert_eq!(
        messages[1]["text"],
        "Won: x' OR Name != ' for O'Brien \\ Sons, owner <@U0SAM00001>"
    );
    let requests = salesforce.requests().await;
    let tokens = requests
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/oauth2/token")
        })
        .count();
    assert_eq!(
        tokens, 2,
        "one token at first, one refresh after expiry: {requests:#?}"
    );
}

const INJECTION_ROUTE: &str = r##"
object = "Opportunity"
[enrich]
query = "SELECT Id, Name FROM Opportunity WHERE Name = :record.Name"
name = "same"
[[actions]]
type = "post"
channel = "#deal-desk"
template = "same-name"
"##;

#[tokio::test]
async fn a_soql_injection_attempt_binds_harmlessly() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&json!({
        "Opportunity": [{"Id": "006Hs00000BkXyzIAF", "Name": "Acme Corp - Q3 Enterprise"}]
    }));
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("same-name", INJECTION_ROUTE.to_string())]),
        templates: vec![(
            "same-name",
            r#"{"text": "matches: {{ same_records | length }}", "blocks": []}"#.to_string(),
        )],
        salesforce_section: Some(salesforce.org_section()),
        ..Options::default()
    })
    .await;
    // `x' OR Name != '` would match every record if pasted into the query.
    assert_eq!(
        app.post_events(callout("006000000000002AAA", "x' OR Name != '"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["text"], "matches: 0");
    let queries: Vec<String> = salesforce
        .requests()
        .await
        .iter()
        .filter_map(|r| r["q"].as_str().map(str::to_string))
        .collect();
    assert!(
        queries.iter().any(|q| q.contains(r"'x\' OR Name != \''")),
        "{queries:?}"
    );
}

#[tokio::test]
async fn twenty_orgs_each_with_its_own_key_and_no_cross_org_posting() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    // Twenty more orgs, each with its own API key in its own header value.
    let mut extra = String::new();
    let mut orgs = Vec::new();
    for n in 0..20u32 {
        let id15 = format!("00D5g0000{n:06}");
        let org = sfrelay::event::SalesforceId::parse(&id15)
            .unwrap()
            .to_string();
        extra.push_str(&format!(
            "\n[[orgs]]\nid = \"{org}\"\nname = \"org-{n}\"\napi_key_env = \"ORG_{n}_KEY\"\n"
        ));
        orgs.push((org, format!("org-{n}-key-0123456789abcdef")));
    }
    let app = App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            routes: support::deal_desk_only(),
            extra_toml: extra,
            ..Options::default()
        },
        orgs.iter()
            .enumerate()
            .map(|(n, (_, key))| (format!("ORG_{n}_KEY"), key.clone()))
            .collect(),
    )
    .await;
    for (n, (org, key)) in orgs.iter().enumerate() {
        let mut body: Value = serde_json::from_str(&callout("006000000000001AAA", "x")).unwrap();
        body["org_id"] = org.as_str().into();
        body["event_id"] = format!("org-{n}").into();
        body["record"]["Name"] = format!("Deal of org {n}").into();
        let ok = app
            .post_events_with(body.to_string(), &[("X-Api-Key", key)])
            .await;
        assert_eq!(ok.status(), 202, "org {n}");
        // The next org's key cannot post this org's events.
        let (_, other_key) = &orgs[(n + 1) % orgs.len()];
        body["event_id"] = format!("cross-{n}").into();
        let cross = app
            .post_events_with(body.to_string(), &[("X-Api-Key", other_key)])
            .await;
        assert_eq!(cross.status(), 403, "org {n} via another org's key");
    }
    let messages = eventually("twenty messages", Duration::from_secs(60), || async {
        let m = slack.messages().await;
        (m.len() >= 20).then_some(m)
    })
    .await;
    assert_eq!(messages.len(), 20);
}

#[tokio::test]
async fn a_cdc_gap_event_is_fetched_and_routed_where_a_route_asks() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = Salesforce::start(&json!({
        "Opportunity": [{"Id": "006Hs00000BkXyzIAF", "Name": "Acme Corp - Q3 Enterprise",
                         "StageName": "Closed Won", "Amount": 75000, "Account": {"Name": "Acme Corp"}},
                        {"Id": "006000000000001AAA", "Name": "Globex renewal",
                         "StageName": "Closed Won", "Amount": 12000}]
    }));
    let fetching = r##"
object = "Opportunity"
on_gap = "fetch"
when = 'record.StageName == "Closed Won"'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "closed-won-briefing"
"##;
    let ignoring = r##"
object = "Opportunity"
[[actions]]
type = "post"
channel = "#smb-wins"
template = "closed-won-win"
"##;
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![
            ("fetching", fetching.to_string()),
            ("ignoring", ignoring.to_string()),
        ]),
        salesforce_section: Some(salesforce.org_section()),
        ..Options::default()
    })
    .await;
    let gap = json!({
        "schema": "x",
        "payload": {"ChangeEventHeader": {
            "entityName": "Opportunity", "changeType": "GAP_UPDATE",
            // Two records to read back, and one deleted since.
            "recordIds": ["006Hs00000BkXyzIAF", "006000000000001AAA", "006000000000002AAA"],
            "changeOrigin": "", "transactionKey": "t-1", "sequenceNumber": 1,
            "commitTimestamp": 1727712000000u64, "commitNumber": 1, "commitUser": "005Hs00000DnDefIAF",
            "changedFields": [], "nulledFields": [], "diffFields": []}},
        "event": {"replayId": 77}
    });
    let response = app
        .post("/v1/cdc", "application/json", gap.to_string())
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["gaps"], 1);
    let messages = slack.wait_for_messages(2).await;
    assert!(messages.iter().all(|m| m["channel"] == "C0DEALDESK"));
    let texts: Vec<&str> = messages.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Acme Corp - Q3 Enterprise"))
            && texts.iter().any(|t| t.contains("Globex renewal")),
        "{texts:?}"
    );
    // One query read the gap's records back, not one call per record.
    let reads: Vec<Value> = salesforce
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .contains("/services/data/")
        })
        .collect();
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert!(
        reads[0]["q"]
            .as_str()
            .unwrap_or_default()
            .starts_with("SELECT FIELDS(ALL) FROM Opportunity WHERE Id IN ("),
        "{reads:#?}"
    );
    let settled = eventually("the queue to settle", Duration::from_secs(10), || async {
        let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
        let flight = app
            .metric("sfrelay_queue_depth{state=\"in_flight\"}")
            .await?;
        (ready == 0.0 && flight == 0.0).then_some(())
    });
    settled.await;
    assert_eq!(
        slack.messages().await.len(),
        2,
        "the ignoring route must not fire"
    );
}

#[tokio::test]
async fn reconciliation_routes_a_change_whose_callout_never_came_and_nothing_twice() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let five_minutes_ago = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    // In Salesforce both deals are Closed Won now.
    let salesforce = Salesforce::start(&json!({"Opportunity": [
        {"Id": "006000000000001AAA", "Name": "Missed deal", "StageName": "Closed Won",
         "Amount": 10, "LastModifiedDate": five_minutes_ago},
        {"Id": "006000000000002AAA", "Name": "Announced deal", "StageName": "Closed Won",
         "Amount": 20, "LastModifiedDate": five_minutes_ago}
    ]}));
    let section = format!(
        "{}\n[[orgs.reconcile]]\nobject = \"Opportunity\"\nfields = [\"StageName\", \"Amount\"]\nalso = [\"Name\"]\nevery_seconds = 1\nwindow_minutes = 30\ngrace_minutes = 2\n",
        salesforce.org_section()
    );
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        salesforce_section: Some(section),
        ..Options::default()
    })
    .await;
    // sfrelay heard of the first deal only while it was in negotiation (its Closed Won callout
    // never came), and of the second one's Closed Won.
    let mut missed: Value =
        serde_json::from_str(&callout("006000000000001AAA", "Missed deal")).unwrap();
    missed["record"]["StageName"] = "Negotiation/Review".into();
    missed["record"]["Amount"] = 10.into();
    assert_eq!(app.post_events(missed.to_string()).await.status(), 202);
    let mut announced: Value =
        serde_json::from_str(&callout("006000000000002AAA", "Announced deal")).unwrap();
    announced["record"]["Amount"] = 20.into();
    announced["prior"] = json!({"StageName": "Negotiation/Review"});
    assert_eq!(app.post_events(announced.to_string()).await.status(), 202);

    let messages = slack.wait_for_messages(2).await;
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("Announced deal")),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t.contains("Missed deal")), "{texts:?}");
    // Several more passes find nothing new.
    let passes_before = salesforce.requests().await.len();
    eventually(
        "three more reconciliation passes",
        Duration::from_secs(15),
        || async { (salesforce.requests().await.len() >= passes_before + 3).then_some(()) },
    )
    .await;
    assert_eq!(slack.messages().await.len(), 2);
    assert!(
        app.metric("sfrelay_events_recovered_total{object=\"Opportunity\"}")
            .await
            >= Some(1.0)
    );
}

/// Opportunity `k` of the burst below: an all-digit 15-character Id (checksum suffix `AAA`).
fn burst_id(k: usize) -> String {
    format!("006{:012}AAA", k + 1)
}

#[tokio::test]
async fn a_burst_of_enriched_events_is_read_in_a_few_combined_queries_each_event_its_own_row() {
    const EVENTS: usize = 150;
    let redis = Redis::start();
    let slack = Slack::start(&["--rate-per-channel", "1000", "--burst", "1000"]);
    let deals: Vec<Value> = (0..EVENTS)
        .map(|k| {
            json!({"Id": burst_id(k), "Name": format!("Deal {k}"), "Amount": k,
                   "Account": {"Name": format!("Account {k}")},
                   "Owner": {"Email": "dana.seller@example.com"}})
        })
        .collect();
    let salesforce = Salesforce::start(&json!({ "Opportunity": deals }));
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("enriched", ENRICHED_ROUTE.to_string())]),
        templates: vec![("enriched", ENRICHED_TEMPLATE.to_string())],
        salesforce_section: Some(salesforce.org_section()),
        extra_toml: "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 1000\n".into(),
        // A window wider than the default, so that a loaded machine routing the burst slowly
        // still fills batches: what is tested is that reads are combined, not the default.
        workers_toml: "enrich_batch_window_ms = 50\n".into(),
        ..Options::default()
    })
    .await;

    // One event first (it buys the token), then the burst in callouts of 50.
    let one = app.post_events(callout(&burst_id(0), "stale")).await;
    assert_eq!(one.status(), 202);
    slack.wait_for_messages(1).await;
    let before = salesforce.requests().await.len();
    for chunk in (1..EVENTS).collect::<Vec<_>>().chunks(50) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|k| serde_json::from_str(&callout(&burst_id(*k), "stale")).unwrap())
            .collect();
        let response = app
            .post_events(json!({ "events": events }).to_string())
            .await;
        assert_eq!(response.status(), 202);
    }
    let messages = eventually("every event posted", Duration::from_secs(60), || async {
        let messages = slack.messages().await;
        (messages.len() >= EVENTS).then_some(messages)
    })
    .await;
    // Each message names its own deal and account, as its own row said.
    let mut shown: Vec<String> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    shown.sort();
    let mut wanted: Vec<String> = (0..EVENTS)
        .map(|k| format!("Won: Deal {k} for Account {k}, owner <@U0DANA0001>"))
        .collect();
    wanted.sort();
    assert_eq!(shown, wanted);
    // A few queries by `Id IN (…)` served the burst, far fewer than one per event.
    let queries: Vec<Value> = salesforce
        .requests()
        .await
        .into_iter()
        .skip(before)
        .filter(|r| r["path"].as_str().unwrap_or_default().contains("/query"))
        .collect();
    assert!(
        queries.len() <= EVENTS / 10,
        "{} queries for {} events: {queries:#?}",
        queries.len(),
        EVENTS - 1
    );
    assert!(
        queries.iter().all(|q| q["q"]
            .as_str()
            .unwrap_or_default()
            .contains("WHERE Id IN (")),
        "{queries:#?}"
    );
}
