//! The other ways Salesforce calls sfrelay: Change Data Capture, Outbound Messages (SOAP), and
//! the OpenAPI document an admin imports as an External Service.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::{App, OM_TOKEN, Options, Redis, Slack, eventually, fixture};

async fn stack() -> (Redis, Slack, App) {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;
    (redis, slack, app)
}

#[tokio::test]
async fn a_cdc_event_reaches_slack_and_gaps_are_counted() {
    let (_redis, slack, app) = stack().await;
    let response = app
        .post(
            "/v1/cdc",
            "application/json",
            fixture("cdc-opportunity-closed-won.json"),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1);
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0DEALDESK");
    assert!(messages[0]["text"].as_str().unwrap().contains("75,000"));

    // Salesforce may deliver the same event again: not posted twice.
    let again: Value = app
        .post(
            "/v1/cdc",
            "application/json",
            fixture("cdc-opportunity-closed-won.json"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicates"], 1);

    // Several records in one event become one event each; gap events are accepted and counted.
    let multi: Value = app
        .post(
            "/v1/cdc",
            "application/json",
            fixture("cdc-multi-record.json"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(multi["accepted"].as_u64().unwrap() >= 3, "{multi}");
    let gaps = app
        .post("/v1/cdc", "application/json", fixture("cdc-gap.json"))
        .await;
    assert_eq!(gaps.status(), 202);
    let gaps: Value = gaps.json().await.unwrap();
    assert!(gaps["gaps"].as_u64().unwrap() >= 1, "{gaps}");

    // A malformed CDC event is refused with the path of the problem.
    let mut bad: Value =
        serde_json::from_slice(&fixture("cdc-opportunity-closed-won.json")).unwrap();
    bad["payload"]["ChangeEventHeader"]["recordIds"] = serde_json::json!(["nope"]);
    let refused = app
        .post("/v1/cdc", "application/json", bad.to_string())
        .await;
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["errors"][0]["path"]
            .as_str()
            .unwrap()
            .contains("recordIds"),
        "{problem}"
    );
    assert_eq!(slack.messages().await.len(), 1);
}

fn soap(app: &App, token: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    app.http
        .post(format!("{}/v1/outbound-messages/{token}", app.url))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"\"")
        .body(body)
}

#[tokio::test]
async fn outbound_messages_are_acked_after_the_write_and_deduplicated() {
    let (mut redis, slack, app) = stack().await;
    let response = soap(&app, OM_TOKEN, fixture("outbound-message-opportunity.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ack = response.text().await.unwrap();
    assert!(ack.contains("<Ack>true</Ack>"), "{ack}");
    let messages = slack.wait_for_messages(1).await;
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("Acme Corp - Q3 Enterprise")
    );

    // Salesforce retries an Outbound Message it thinks failed: same notification Id, no repost.
    let again = soap(&app, OM_TOKEN, fixture("outbound-message-opportunity.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);

    // A wrong token is a SOAP fault.
    let denied = soap(
        &app,
        "wrong-token-wrong-token",
        fixture("outbound-message-opportunity.xml"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(denied.status(), 401);
    let fault = denied.text().await.unwrap();
    assert!(
        fault.contains("Fault") && fault.contains("faultstring"),
        "{fault}"
    );

    // Redis down: a SOAP fault, so Salesforce keeps the message and retries.
    redis.stop();
    let down = soap(&app, OM_TOKEN, fixture("outbound-message-three.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    assert!(down.text().await.unwrap().contains("Fault"));
    redis.restart();
    let accepted = eventually(
        "the retried message to be acked",
        Duration::from_secs(15),
        || async {
            let r = soap(&app, OM_TOKEN, fixture("outbound-message-three.xml"))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(r.text().await.ok()?)
        },
    )
    .await;
    assert!(accepted.contains("<Ack>true</Ack>"));
    // The three notifications: the fixture's Closed Won opportunity is a new record for the
    // deal-desk route only if its StageName is Closed Won; whatever fires, nothing is doubled.
    support::eventually("the queue to settle", Duration::from_secs(15), || async {
        let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
        let flight = app
            .metric("sfrelay_queue_depth{state=\"in_flight\"}")
            .await?;
        (ready == 0.0 && flight == 0.0).then_some(())
    })
    .await;
    let texts: Vec<String> = slack
        .messages()
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), texts.len(), "{texts:?}");
}

#[tokio::test]
async fn an_outbound_message_from_another_org_is_refused() {
    let (_redis, _slack, app) = stack().await;
    let xml = String::from_utf8(fixture("outbound-message-opportunity.xml"))
        .unwrap()
        .replace("00D5g000004ABCdEAO", "00D5g000009XYZaEAO");
    let response = soap(&app, OM_TOKEN, xml.into_bytes()).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let not_xml = app
        .http
        .post(format!("{}/v1/outbound-messages/{OM_TOKEN}", app.url))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_xml.status(), 415);
}

#[tokio::test]
async fn the_openapi_document_describes_the_ingest_api() {
    let (_redis, _slack, app) = stack().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "/healthz",
            "/v1/cdc",
            "/v1/events",
            "/v1/outbound-messages/{token}"
        ]
    );
    // External Services import `enum`; Flow's HTTP Callout shows such a field as a plain string.
    // Only string fields carry one, so that reading loses nothing.
    let text = doc.to_string();
    assert_eq!(text.matches("\"enum\"").count(), 1, "one enum: change_type");
    let envelope = &doc["components"]["schemas"]["Envelope"]["properties"]["change_type"];
    assert_eq!(envelope["type"], "string");
    assert!(envelope["enum"].as_array().is_some_and(|v| !v.is_empty()));
    assert_eq!(
        doc["paths"]["/v1/events"]["post"]["operationId"],
        "postEvents"
    );
}
