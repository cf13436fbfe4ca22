//! The drain keeps this replica's consumers alive: its heartbeats go on after SIGTERM until the
//! last worker is done, so a job still finishing is not taken for orphaned by another replica
//! (which would run it a second time). The grace period is shorter than the visibility timeout
//! (the configuration insists), but a drain that stopped heartbeating at SIGTERM would still
//! leave its consumers silent for up to a heartbeat interval plus the whole grace period.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::{App, Options, Redis, Slack, eventually, fixture, fresh_namespace};

#[tokio::test]
async fn a_drain_longer_than_the_visibility_timeout_keeps_its_jobs() {
    let redis = Redis::start();
    // Every Slack call takes 1.5 s (a post makes several), so the job outlasts the grace period.
    let slack = Slack::start(&["--latency-ms", "1500"]);
    let namespace = fresh_namespace();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        namespace: namespace.clone(),
        workers: 1,
        visibility_timeout_secs: 5,
        shutdown_grace_secs: 4,
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

    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let consumers_key = format!("sfrelay:{{{namespace}}}:consumers");
    let own: Vec<String> = redis::cmd("ZRANGE")
        .arg(&consumers_key)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        !own.is_empty(),
        "the draining replica registered its consumers"
    );

    // A second replica on the same queue, recovering orphans meanwhile.
    let other = App::spawn(options()).await;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let signalled_ms = secs * 1000 + micros / 1000;
    draining.signal("TERM");
    // Heartbeats after SIGTERM (one every visibility / 4 = 1.25 s): the drain is alive.
    eventually(
        "a heartbeat of the draining replica after SIGTERM",
        Duration::from_secs(4),
        || {
            let mut conn = conn.clone();
            let (key, own) = (consumers_key.clone(), own.clone());
            async move {
                for consumer in &own {
                    let score: Option<f64> = redis::cmd("ZSCORE")
                        .arg(&key)
                        .arg(consumer)
                        .query_async(&mut conn)
                        .await
                        .ok()?;
                    if score.is_some_and(|s| s as u64 > signalled_ms + 1500) {
                        return Some(());
                    }
                }
                None
            }
        },
    )
    .await;
    let status = draining.wait_exit(Duration::from_secs(20)).await;
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
