//! The drain keeps this replica's consumers alive: a job that takes longer than the
//! visibility timeout to finish after SIGTERM is not taken for orphaned by another replica
//! (which would run it a second time).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{App, Options, Redis, Slack, eventually, fixture, fresh_namespace};

#[tokio::test]
async fn a_drain_longer_than_the_visibility_timeout_keeps_its_jobs() {
    let redis = Redis::start();
    // Every Slack call takes 2.5 s (a post makes several); the visibility timeout is 2 s.
    let slack = Slack::start(&["--latency-ms", "2500"]);
    let namespace = fresh_namespace();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        namespace: namespace.clone(),
        workers: 1,
        visibility_timeout_secs: 2,
        shutdown_grace_secs: 30,
        ..Options::default()
    };
    let mut draining = App::spawn(options()).await;
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["event_id"] = "evt-drain".into();
    assert_eq!(draining.post_events(body.to_string()).await.status(), 202);
    eventually(
        "the route job to be in flight",
        Duration::from_secs(10),
        || async {
            let ready = draining
                .metric("sfrelay_queue_depth{state=\"ready\"}")
                .await?;
            let in_flight = draining
                .metric("sfrelay_queue_depth{state=\"in_flight\"}")
                .await?;
            // The event job has fanned out; what is in flight now is its route job's post.
            (draining.logs().contains("routes fired") && ready == 0.0 && in_flight == 1.0)
                .then_some(())
        },
    )
    .await;

    // A second replica on the same queue, recovering orphans every second.
    let other = App::spawn(options()).await;
    draining.signal("TERM");
    let status = draining.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status:?}");

    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0DEALDESK");
    // The other replica never took the draining one's job for orphaned.
    let recovered = other
        .metric("sfrelay_jobs_recovered_total")
        .await
        .unwrap_or(0.0);
    assert_eq!(recovered, 0.0, "{}", other.logs());
    assert!(!other.logs().contains("recovered jobs"), "{}", other.logs());
}
