//! From callout to Slack: the real binary, real Redis and the Slack emulator.

mod support;

use serde_json::Value;
use support::{App, Options, Redis, Slack, fixture};

async fn stack() -> (Redis, Slack, App) {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        ..Options::default()
    })
    .await;
    (redis, slack, app)
}

#[tokio::test]
async fn a_closed_won_callout_becomes_one_well_formed_slack_message() {
    let (_redis, slack, app) = stack().await;
    let response = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 1);

    let messages = slack.wait_for_messages(1).await;
    let message = &messages[0];
    assert_eq!(message["channel"], "C0DEALDESK");
    assert_eq!(
        message["text"],
        "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) 75,000"
    );
    let blocks = message["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Closed Won: Acme Corp - Q3 Enterprise"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "*Account*\nAcme Corp",
            "*Amount*\n75,000",
            "*Close date*\n2025-09-30",
            "*Owner*\nDana Seller"
        ]
    );
    let stats = slack.stats().await;
    assert_eq!(stats["invalid_blocks"], 0, "{stats}");
    assert_eq!(stats["posts_by_name"], 0, "{stats}");
}

#[tokio::test]
async fn the_same_event_twice_is_posted_once() {
    let (_redis, slack, app) = stack().await;
    let first: Value = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["accepted"], 0);
    assert_eq!(second["duplicates"], 1);
    assert_eq!(first["ids"], second["ids"]);
    slack.wait_for_messages(1).await;

    // Without an event_id the same change (same record, fields and timestamp) is a duplicate too.
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body.as_object_mut().unwrap().remove("event_id");
    body["record"]["Id"] = "006000000000001AAA".into();
    for _ in 0..3 {
        assert_eq!(app.post_events(body.to_string()).await.status(), 202);
    }
    slack.wait_for_messages(2).await;
    // A settled queue: nothing more will come.
    support::eventually(
        "queue to settle",
        std::time::Duration::from_secs(10),
        || async {
            let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
            let in_flight = app
                .metric("sfrelay_queue_depth{state=\"in_flight\"}")
                .await?;
            (ready == 0.0 && in_flight == 0.0).then_some(())
        },
    )
    .await;
    assert_eq!(slack.messages().await.len(), 2);
}

#[tokio::test]
async fn a_batch_posts_each_event_and_hostile_values_render_inert() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-batch-opportunities.json"))
            .await
            .status(),
        202
    );
    // Same record, fields and (absent) timestamp as the batch's second event would make it a
    // duplicate of that change, so it names another record.
    let mut hostile: Value =
        serde_json::from_slice(&fixture("hostile/mrkdwn-injection.json")).unwrap();
    hostile["record"]["Id"] = "006000000000009AAA".into();
    assert_eq!(app.post_events(hostile.to_string()).await.status(), 202);
    let messages = slack.wait_for_messages(3).await;
    let all = serde_json::to_string(&messages).unwrap();
    assert!(all.contains("Small deal") && all.contains("Big deal"));
    for needle in ["<!channel>", "<@U00000001>", "<https://evil"] {
        assert!(!all.contains(needle), "{needle} reached Slack: {all}");
    }
    assert!(all.contains("&lt;!channel&gt;"));
}

#[tokio::test]
async fn events_no_route_wants_are_acked_without_posting() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-case-escalated.json"))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post_events(fixture("flow-lead-high-value.json"))
            .await
            .status(),
        202
    );
    support::eventually(
        "queue to drain",
        std::time::Duration::from_secs(10),
        || async {
            let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
            let in_flight = app
                .metric("sfrelay_queue_depth{state=\"in_flight\"}")
                .await?;
            (ready == 0.0 && in_flight == 0.0).then_some(())
        },
    )
    .await;
    assert!(slack.messages().await.is_empty());
}

#[tokio::test]
async fn a_permanent_slack_error_parks_the_job_in_the_dead_letter_list() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        closed_won_channel: Some("C0NOSUCHCH"),
        ..Options::default()
    })
    .await;
    assert_eq!(
        app.post_events(fixture("flow-opportunity-closed-won.json"))
            .await
            .status(),
        202
    );
    support::eventually(
        "a dead letter",
        std::time::Duration::from_secs(10),
        || async {
            let dead = app.metric("sfrelay_queue_depth{state=\"dead\"}").await?;
            (dead == 1.0).then_some(())
        },
    )
    .await;
    assert!(slack.messages().await.is_empty());
    assert!(app.logs().contains("channel_not_found"));
}
