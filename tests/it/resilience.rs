//! Nothing lost when Redis or Slack misbehave, and a clean drain on SIGTERM.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, eventually, fixture};

fn closed_won(record_id: &str) -> String {
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["event_id"] = format!("evt-{record_id}").into();
    body["record"]["Id"] = record_id.into();
    body["record"]["Name"] = format!("Deal {record_id}").into();
    body.to_string()
}

fn names(messages: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = messages
        .iter()
        .map(|m| {
            m["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn redis_down_means_503_and_nothing_accepted_is_lost() {
    let mut redis = Redis::start();
    let slack = Slack::start(&[]);
    // Slack fails everything at first, so accepted events wait in Redis.
    slack.set_faults(json!({"fail_rate": 1.0})).await;
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;

    assert_eq!(
        app.post_events(closed_won("006000000000001AAA"))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post_events(closed_won("006000000000002AAA"))
            .await
            .status(),
        202
    );

    redis.stop();
    let refused = app.post_events(closed_won("006000000000003AAA")).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(app.get("/readyz").await.status(), 503);

    redis.restart();
    eventually(
        "readiness after Redis returns",
        Duration::from_secs(15),
        || async { (app.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;
    slack.set_faults(json!({"fail_rate": 0.0})).await;
    // The refused event is sent again, as Salesforce would.
    eventually(
        "the retried callout to be accepted",
        Duration::from_secs(10),
        || async {
            (app.post_events(closed_won("006000000000003AAA"))
                .await
                .status()
                == 202)
                .then_some(())
        },
    )
    .await;

    let messages = slack.wait_for_messages(3).await;
    assert_eq!(
        names(&messages),
        vec![
            "🏆 Closed Won: Deal 006000000000001AAA",
            "🏆 Closed Won: Deal 006000000000002AAA",
            "🏆 Closed Won: Deal 006000000000003AAA"
        ]
    );
}

#[tokio::test]
async fn slack_errors_and_rate_limits_are_retried_until_delivered_once() {
    let redis = Redis::start();
    let slack = Slack::start(&["--seed", "7"]);
    slack
        .set_faults(json!({"fail_rate": 0.3, "force_429_for": {"count": 3, "retry_after": 1}}))
        .await;
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;
    let ids: Vec<String> = (1..=6).map(|i| format!("00600000000000{i}AAA")).collect();
    for id in &ids {
        assert_eq!(app.post_events(closed_won(id)).await.status(), 202);
    }
    let messages = eventually("all six messages", Duration::from_secs(60), || async {
        let m = slack.messages().await;
        (m.len() >= 6).then_some(m)
    })
    .await;
    assert_eq!(messages.len(), 6, "a message was posted twice");
    let stats = slack.stats().await;
    assert!(stats["rate_limited"].as_u64().unwrap_or(0) >= 3, "{stats}");
    assert_eq!(stats["invalid_blocks"], 0);
    assert!(app.logs().contains("will retry"));
}

/// Sends one Closed Won and waits until a worker holds it (Slack is slow in these tests).
async fn post_one_and_wait_until_in_flight(app: &App) {
    assert_eq!(
        app.post_events(closed_won("006000000000001AAA"))
            .await
            .status(),
        202
    );
    eventually(
        "the job to be in flight",
        Duration::from_secs(10),
        || async {
            let in_flight = app
                .metric("sfrelay_queue_depth{state=\"in_flight\"}")
                .await?;
            (in_flight == 1.0).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn sigterm_drains_in_flight_work_and_exits_zero() {
    let redis = Redis::start();
    let slack = Slack::start(&["--latency-ms", "1500"]);
    let mut app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;
    post_one_and_wait_until_in_flight(&app).await;

    app.signal("TERM");
    // Readiness turns 503 at once while the job finishes.
    eventually(
        "readiness 503 while draining",
        Duration::from_secs(5),
        || async {
            let response = app
                .http
                .get(format!("{}/readyz", app.url))
                .send()
                .await
                .ok()?;
            (response.status() == 503).then_some(())
        },
    )
    .await;
    let status = app.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0DEALDESK");
}

#[tokio::test]
async fn a_job_past_the_grace_period_goes_back_to_the_queue() {
    let redis = Redis::start();
    let slack = Slack::start(&["--latency-ms", "8000"]);
    let namespace = support::fresh_namespace();
    let mut app = App::spawn(Options {
        namespace: namespace.clone(),
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        shutdown_grace_secs: 1,
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;
    post_one_and_wait_until_in_flight(&app).await;
    app.signal("TERM");
    let status = app.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(
        app.logs().contains("returned to the queue"),
        "{}",
        app.logs()
    );

    // A new process on the same Redis finds the job ready and delivers it.
    slack.set_faults(json!({"latency_ms": 0})).await;
    let next = App::spawn(Options {
        namespace,
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        ..Options::default()
    })
    .await;
    let _ = &next;
    eventually(
        "the released job to be posted",
        Duration::from_secs(20),
        || async {
            let m = slack.messages().await;
            (!m.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn embedded_defaults_run_without_redis_or_slack() {
    let app = App::spawn(Options::default()).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["checks"]["queue_durable"], false);
    assert_eq!(
        app.post_events(fixture("flow-opportunity-closed-won.json"))
            .await
            .status(),
        202
    );
    eventually(
        "the log sink to print the message",
        Duration::from_secs(10),
        || async {
            app.logs()
                .contains("logging the message instead of posting it")
                .then_some(())
        },
    )
    .await;
    assert!(app.logs().contains("NOT durable"));
}
