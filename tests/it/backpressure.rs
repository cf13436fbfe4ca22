//! Back-pressure refuses new ingest and nothing else: work already accepted still fans out
//! when the queue is over its high-water mark, and none of it reaches the dead-letter list.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, fixture};

fn closed_won(record_id: &str) -> Value {
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["event_id"] = format!("evt-{record_id}").into();
    body["record"]["Id"] = record_id.into();
    body["record"]["Name"] = format!("Deal {record_id}").into();
    body
}

#[tokio::test]
async fn accepted_events_fan_out_past_the_high_water_mark_while_ingest_gets_503() {
    let redis = Redis::start();
    // Slow posts keep the one worker busy, so the ready list stays over the mark.
    let slack = Slack::start(&["--latency-ms", "400"]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        workers: 1,
        high_water_mark: 3,
        // A fan-out refused for back-pressure would be dead-lettered on its first attempt.
        max_attempts: 1,
        ..Options::default()
    })
    .await;

    // Five events in one request: accepted together while the queue is empty, they leave it
    // over the mark (3), so each one's fan-out meets a full queue.
    let ids: Vec<String> = (1..=5).map(|n| format!("00600000000000{n}AAA")).collect();
    let batch = json!({"events": ids.iter().map(|id| closed_won(id)).collect::<Vec<_>>()});
    assert_eq!(app.post_events(batch.to_string()).await.status(), 202);

    // New ingest is refused meanwhile.
    let refused = app
        .post_events(closed_won("006000000000009AAA").to_string())
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    // Every accepted event still reaches Slack, and nothing is dead-lettered.
    let messages = slack.wait_for_messages(5).await;
    assert_eq!(messages.len(), 5);
    let (ok, listing) = app.cli(&["dlq", "list"]);
    assert!(ok, "{listing}");
    let depth = support::eventually("the queue to drain", Duration::from_secs(10), || async {
        let dead = app.metric("sfrelay_queue_depth{state=\"dead\"}").await?;
        let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
        (ready == 0.0).then_some(dead)
    })
    .await;
    assert_eq!(depth, 0.0, "dead letters: {listing}\n{}", app.logs());
}
