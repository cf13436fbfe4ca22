//! Order for the same record: an update whose job runs before the card it updates exists waits
//! for it, and an older version of a record never replaces a newer one on its card. The real
//! binary, real Redis and the Slack emulator, with the shipped case routes (a card per
//! escalated case, later status changes update it in place).

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, eventually, fixture};

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

/// The escalated case's status changing to `status`, saved at `modified`.
fn status_change(n: u32, status: &str, modified: &str) -> Value {
    let mut change: Value = serde_json::from_slice(&fixture("flow-case-escalated.json")).unwrap();
    change["event_id"] = format!("case-500Hs00000EfGhiIAF-status-{n}").into();
    change["changed_fields"] = json!(["Status"]);
    change["record"]["Status"] = status.into();
    change["record"]["LastModifiedDate"] = modified.into();
    change["prior"] = json!({"Status": "Escalated"});
    change
}

fn all_text(message: &Value) -> String {
    serde_json::to_string(message).unwrap()
}

async fn dead_letters(app: &App) -> Option<f64> {
    app.metric("sfrelay_queue_depth{state=\"dead\"}").await
}

#[tokio::test]
async fn an_update_that_runs_before_its_card_exists_waits_and_lands_after_it() {
    let (_redis, slack, app) = stack().await;
    // Another case's card first, so the channel and the people the cards mention are known
    // (cached) before Slack starts failing.
    let mut other: Value = serde_json::from_slice(&fixture("flow-case-escalated.json")).unwrap();
    other["event_id"] = "case-500Hs00000EfGhjIAF-esc-1".into();
    other["record"]["Id"] = "500Hs00000EfGhjIAF".into();
    other["record"]["CaseNumber"] = "00001043".into();
    assert_eq!(app.post_events(other.to_string()).await.status(), 202);
    slack.wait_for_messages(1).await;
    // Slack fails every call for now: this case's card cannot be posted yet.
    slack.set_faults(json!({"fail_rate": 1.0})).await;
    assert_eq!(
        app.post_events(fixture("flow-case-escalated.json"))
            .await
            .status(),
        202
    );
    let update = status_change(2, "Working", "2025-10-02T09:20:00.000+0000");
    assert_eq!(app.post_events(update.to_string()).await.status(), 202);
    // The update's job has run while there is no card to update.
    eventually(
        "the update's job to have run",
        Duration::from_secs(20),
        || async {
            app.logs()
                .lines()
                .any(|l| l.contains(r#""route":"case-escalation-status""#))
                .then_some(())
        },
    )
    .await;
    assert_eq!(slack.messages().await.len(), 1);

    slack.set_faults(json!({"fail_rate": 0.0})).await;
    let card = eventually(
        "the card, updated with the new status",
        Duration::from_secs(20),
        || async {
            let cards: Vec<Value> = slack
                .messages()
                .await
                .into_iter()
                .filter(|m| all_text(m).contains("Case 00001042"))
                .collect();
            assert!(cards.len() <= 1, "one card only: {cards:#?}");
            cards.into_iter().next().filter(|m| m["updated"] == true)
        },
    )
    .await;
    let text = all_text(&card);
    assert!(text.contains("Case 00001042 escalated"), "{text}");
    assert!(text.contains("*Status*\\nWorking"), "{text}");
    assert_eq!(dead_letters(&app).await, Some(0.0));
}

#[tokio::test]
async fn two_updates_delivered_newest_first_leave_the_newest_on_the_card() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-case-escalated.json"))
            .await
            .status(),
        202
    );
    let card = slack.wait_for_messages(1).await.remove(0);
    // The later change (Closed at 09:30) arrives first…
    let newer = status_change(3, "Closed", "2025-10-02T09:30:00.000+0000");
    assert_eq!(app.post_events(newer.to_string()).await.status(), 202);
    eventually(
        "the card to show Closed",
        Duration::from_secs(20),
        || async {
            let messages = slack.messages().await;
            (messages.len() == 1 && all_text(&messages[0]).contains("*Status*\\nClosed"))
                .then_some(())
        },
    )
    .await;
    // …and the earlier one (Working at 09:20) after it.
    let older = status_change(2, "Working", "2025-10-02T09:20:00.000+0000");
    assert_eq!(app.post_events(older.to_string()).await.status(), 202);
    eventually(
        "the older update to be dealt with",
        Duration::from_secs(20),
        || async {
            let skipped = app
                .metric("sfrelay_stale_updates_skipped_total")
                .await
                .unwrap_or(0.0);
            let shown_older = slack
                .messages()
                .await
                .iter()
                .any(|m| all_text(m).contains("*Status*\\nWorking"));
            (skipped >= 1.0 || shown_older).then_some(())
        },
    )
    .await;
    let messages = slack.messages().await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["ts"], card["ts"]);
    let text = all_text(&messages[0]);
    assert!(
        text.contains("*Status*\\nClosed"),
        "the older state replaced the newer one: {text}"
    );
    assert_eq!(dead_letters(&app).await, Some(0.0));
}

#[tokio::test]
async fn the_card_version_only_moves_forward_in_redis_even_when_written_at_once() {
    use std::sync::Arc;

    use sfrelay::queue::redis::RedisQueue;
    use sfrelay::store::{RedisStore, Store};

    let redis = Redis::start();
    let queue = Arc::new(RedisQueue::new(&redis.url(), &support::fresh_namespace(), 100).unwrap());
    let store = Arc::new(RedisStore::new(queue));
    let ttl = Some(Duration::from_secs(60));
    assert!(store.advance("card:C1:1.1", 20, ttl).await.unwrap());
    assert!(!store.advance("card:C1:1.1", 10, ttl).await.unwrap());
    assert!(
        store.advance("card:C1:1.1", 20, ttl).await.unwrap(),
        "a retry of one version"
    );
    // Many writers at once: whatever the order, the latest version is what stays.
    let writers: Vec<_> = (0..50i64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.advance("card:C1:1.2", n, ttl).await.unwrap() })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        store.get("card:C1:1.2").await.unwrap().as_deref(),
        Some("49")
    );
    // A holder lets go of its own claim only.
    store.claim("expect-ann:r", "e1", ttl).await.unwrap();
    store.release("expect-ann:r", "e2").await.unwrap();
    assert_eq!(
        store.get("expect-ann:r").await.unwrap().as_deref(),
        Some("e1")
    );
    store.release("expect-ann:r", "e1").await.unwrap();
    assert_eq!(store.get("expect-ann:r").await.unwrap(), None);
}
