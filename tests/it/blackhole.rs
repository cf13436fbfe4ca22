//! Workers never hang on a Redis connection that silently stopped forwarding: sfrelay reaches
//! Redis through a proxy that can blackhole every connection (open, no replies, no close).

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::blackhole::BlackholeProxy;
use support::{App, Options, Redis, Slack, eventually, fixture};

fn closed_won(record_id: &str) -> String {
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["event_id"] = format!("evt-{record_id}").into();
    body["record"]["Id"] = record_id.into();
    body["record"]["Name"] = format!("Deal {record_id}").into();
    body.to_string()
}

fn record(i: usize) -> String {
    format!("006{i:012}AAA")
}

/// How many times each deal was posted.
async fn posted(slack: &Slack) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in slack.messages().await {
        let title = message["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *counts.entry(title).or_insert(0) += 1;
    }
    counts
}

fn title(i: usize) -> String {
    format!("🏆 Closed Won: Deal {}", record(i))
}

async fn post_until_accepted(app: &App, i: usize) {
    eventually(
        &format!("event {i} to be accepted"),
        Duration::from_secs(15),
        || async { (app.post_events(closed_won(&record(i))).await.status() == 202).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_blackholed_redis_turns_readiness_red_and_nothing_accepted_is_lost_or_doubled() {
    let redis = Redis::start();
    let proxy = BlackholeProxy::start(redis.port).await;
    let slack = Slack::start(&["--rate-per-channel", "100", "--burst", "50"]);
    let app = App::spawn(Options {
        redis: Some(proxy.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        queue_toml: "take_stuck_secs = 5".into(),
        extra_toml: "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 50\n".into(),
        ..Options::default()
    })
    .await;
    eventually("readiness", Duration::from_secs(10), || async {
        (app.get("/readyz").await.status() == 200).then_some(())
    })
    .await;

    // Delivered before anything goes wrong.
    for i in 0..3 {
        assert_eq!(app.post_events(closed_won(&record(i))).await.status(), 202);
    }
    slack.wait_for_messages(3).await;
    // Accepted just before the blackhole: some may wait in Redis through it.
    for i in 3..6 {
        assert_eq!(app.post_events(closed_won(&record(i))).await.status(), 202);
    }
    proxy.blackhole();

    // Written to Redis (requests still get through) but never answered: sfrelay cannot know
    // they were stored, so it must not say 202. Workers blocked in a take may move these
    // into their in-flight list and never hear of it.
    for i in 6..9 {
        let status = app.post_events(closed_won(&record(i))).await.status();
        assert_eq!(
            status, 503,
            "event {i} answered {status} during the blackhole"
        );
    }
    let detail = eventually(
        "readiness to name the stuck workers",
        Duration::from_secs(20),
        || async {
            let response = app.get("/readyz").await;
            let status = response.status();
            let body: Value = response.json().await.ok()?;
            let workers = body["checks"]["workers"].as_str()?.to_string();
            (status == 503 && workers.contains("workers stuck on Redis")).then_some(workers)
        },
    )
    .await;
    assert!(detail.contains("w0") && detail.contains("w1"), "{detail}");

    let before_resume = posted(&slack).await.values().sum::<usize>();
    proxy.resume();
    let resumed = Instant::now();
    // Salesforce retries what was refused; the dedupe key absorbs any that were stored.
    for i in 6..9 {
        post_until_accepted(&app, i).await;
    }
    for i in 9..12 {
        post_until_accepted(&app, i).await;
    }
    let first = eventually(
        "a delivery after the resume",
        Duration::from_secs(20),
        || async {
            let total = posted(&slack).await.values().sum::<usize>();
            (total > before_resume).then_some(resumed.elapsed())
        },
    )
    .await;
    let all = eventually("every event delivered", Duration::from_secs(30), || async {
        (posted(&slack).await.len() == 12).then_some(resumed.elapsed())
    })
    .await;
    eventually("an empty queue", Duration::from_secs(20), || async {
        let ready = app.metric("sfrelay_queue_depth{state=\"ready\"}").await?;
        let in_flight = app
            .metric("sfrelay_queue_depth{state=\"in_flight\"}")
            .await?;
        let delayed = app.metric("sfrelay_queue_depth{state=\"delayed\"}").await?;
        (ready + in_flight + delayed == 0.0).then_some(())
    })
    .await;
    let counts = posted(&slack).await;
    for i in 0..12 {
        assert_eq!(counts.get(&title(i)), Some(&1), "deal {i}: {counts:#?}");
    }
    assert_eq!(counts.values().sum::<usize>(), 12, "{counts:#?}");
    eventually(
        "readiness after the resume",
        Duration::from_secs(10),
        || async { (app.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;
    println!(
        "blackhole: resume → first delivery {} ms, → all delivered {} ms",
        first.as_millis(),
        all.as_millis()
    );
}
