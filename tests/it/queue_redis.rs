//! The Redis queue and delivery store against a real `redis-server`: lanes, retries, dead
//! letters, crash recovery, back-pressure and the shared rate limiter.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use sfrelay::queue::redis::RedisQueue;
use sfrelay::queue::{ConsumerId, Enqueued, Lane, NewJob, Queue, QueueError};
use sfrelay::store::{JITTER_MARGIN, Place, RedisStore, Store};
use support::{Redis, eventually, fresh_namespace};

fn job(id: &str) -> NewJob {
    NewJob::new(
        id.into(),
        format!("k-{id}"),
        &serde_json::json!({ "n": id }),
        0,
    )
    .unwrap()
}

fn queue(redis: &Redis, namespace: &str, high_water_mark: u64) -> Arc<RedisQueue> {
    Arc::new(RedisQueue::new(&redis.url(), namespace, high_water_mark).unwrap())
}

const WAIT: Duration = Duration::from_millis(50);
const DEDUPE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn lanes_dedupe_and_all_or_nothing_enqueue() {
    let redis = Redis::start();
    let q = queue(&redis, &fresh_namespace(), 5);
    let c = ConsumerId("c1".into());
    let out = q
        .enqueue(
            &[
                NewJob::with_lane(
                    "low".into(),
                    "k-low".into(),
                    &serde_json::json!({"n": "low"}),
                    0,
                    Lane::Low,
                )
                .unwrap(),
                job("n1"),
                NewJob::new(
                    "ahead".into(),
                    "k-ahead".into(),
                    &serde_json::json!({"n": "ahead"}),
                    0,
                )
                .unwrap()
                .ahead(),
                NewJob::with_lane(
                    "high".into(),
                    "k-high".into(),
                    &serde_json::json!({"n": "high"}),
                    0,
                    Lane::High,
                )
                .unwrap(),
                job("n1"),
            ],
            DEDUPE,
        )
        .await
        .unwrap();
    assert_eq!(out.results[4], Enqueued::Duplicate("n1".into()));
    let mut order = Vec::new();
    while let Some(j) = q.take(&c, WAIT).await.unwrap() {
        order.push(j.envelope.id.clone());
        q.ack(&c, &j).await.unwrap();
    }
    assert_eq!(order, vec!["high", "ahead", "n1"]);
    q.promote_due().await.unwrap();
    assert_eq!(q.take(&c, WAIT).await.unwrap().unwrap().envelope.id, "low");

    // Over the high-water mark nothing of the request is written.
    let q = queue(&redis, &fresh_namespace(), 2);
    q.enqueue(&[job("a"), job("b")], DEDUPE).await.unwrap();
    assert!(matches!(
        q.enqueue(&[job("c"), job("d")], DEDUPE).await,
        Err(QueueError::Full { depth: 2 })
    ));
    assert_eq!(q.depth().await.unwrap().ready, 2);
    // And the refused jobs were not marked as seen: they are accepted once there is room.
    let c = ConsumerId("c2".into());
    let a = q.take(&c, WAIT).await.unwrap().unwrap();
    q.ack(&c, &a).await.unwrap();
    let out = q.enqueue(&[job("c")], DEDUPE).await.unwrap();
    assert_eq!(out.results, vec![Enqueued::New("c".into())]);
}

#[tokio::test]
async fn retries_come_back_when_due_and_dead_letters_keep_the_reason() {
    let redis = Redis::start();
    let q = queue(&redis, &fresh_namespace(), 100);
    let c = ConsumerId("c".into());
    q.enqueue(&[job("a")], DEDUPE).await.unwrap();
    let a = q.take(&c, WAIT).await.unwrap().unwrap();
    q.retry_later(&c, &a, Duration::from_millis(100), Some("HTTP 500"))
        .await
        .unwrap();
    assert_eq!(q.depth().await.unwrap().delayed, 1);
    assert_eq!(q.depth().await.unwrap().in_flight, 0);
    let a = eventually("the retry to be due", Duration::from_secs(5), || async {
        q.promote_due().await.unwrap();
        q.take(&c, WAIT).await.unwrap()
    })
    .await;
    assert_eq!(a.envelope.attempts, 1);
    assert_eq!(a.envelope.last_error.as_deref(), Some("HTTP 500"));
    // A postponement (rate limit) does not count as an attempt.
    q.retry_later(&c, &a, Duration::ZERO, None).await.unwrap();
    let a = eventually("the postponed job", Duration::from_secs(5), || async {
        q.promote_due().await.unwrap();
        q.take(&c, WAIT).await.unwrap()
    })
    .await;
    assert_eq!(a.envelope.attempts, 1);
    q.dead_letter(&c, &a, "channel_not_found").await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "channel_not_found");
    assert_eq!(dead[0].job.id, "a");
    let depth = q.depth().await.unwrap();
    assert_eq!(
        (depth.ready, depth.in_flight, depth.delayed, depth.dead),
        (0, 0, 0, 1)
    );
}

#[tokio::test]
async fn a_dead_consumers_jobs_are_recovered_by_another_replica() {
    let redis = Redis::start();
    let namespace = fresh_namespace();
    let crashed = queue(&redis, &namespace, 100);
    let survivor = queue(&redis, &namespace, 100);
    let dead = ConsumerId("crashed-w0".into());
    let alive = ConsumerId("survivor-w0".into());
    crashed.enqueue(&[job("a")], DEDUPE).await.unwrap();
    let taken = crashed.take(&dead, WAIT).await.unwrap().unwrap();
    assert_eq!(taken.envelope.id, "a");
    drop(crashed); // the process dies holding the job

    // A live consumer that keeps heartbeating is never recovered from.
    survivor
        .heartbeat(std::slice::from_ref(&alive))
        .await
        .unwrap();
    let recovered = eventually("recovery", Duration::from_secs(10), || async {
        survivor
            .heartbeat(std::slice::from_ref(&alive))
            .await
            .unwrap();
        let n = survivor
            .recover_orphans(Duration::from_millis(300), 3)
            .await
            .unwrap()
            .requeued;
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(recovered, 1);
    let again = survivor.take(&alive, WAIT).await.unwrap().unwrap();
    assert_eq!(again.envelope.id, "a");
    assert_eq!(
        survivor
            .recover_orphans(Duration::from_millis(300), 3)
            .await
            .unwrap(),
        Default::default()
    );
    // The recovered job is held by the survivor now; acking it empties everything.
    survivor.ack(&alive, &again).await.unwrap();
    let depth = survivor.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight), (0, 0));
}

/// The wait `store` is told for `key` (one call a second, bursts of 3) at `place`.
async fn wait_for(store: &RedisStore, key: &str, place: Place) -> Option<Duration> {
    store
        .rate_limit(key, Duration::from_secs(1), 3, place)
        .await
        .unwrap()
}

/// Asserts a wait of about `seconds` (and the jitter margin) counted from the first call at
/// `since`: never more, and less only by the time the calls have taken since then (a loaded
/// machine makes them slower, which must not fail the test: when they took longer than the
/// wait itself, no wait is right too).
fn assert_about(wait: Option<Duration>, seconds: u32, since: std::time::Instant) {
    let wait = wait.unwrap_or_default();
    let exact = Duration::from_secs(seconds.into()) + JITTER_MARGIN;
    let slack = since.elapsed() + Duration::from_millis(20);
    assert!(
        wait <= exact && wait + slack > exact,
        "{wait:?}, expected about {exact:?} (calls took {slack:?})"
    );
}

#[tokio::test]
async fn the_rate_limit_is_shared_by_replicas_and_a_pause_holds_all() {
    let redis = Redis::start();
    let namespace = fresh_namespace();
    let one = RedisStore::new(queue(&redis, &namespace, 100));
    let two = RedisStore::new(queue(&redis, &namespace, 100));
    // Both links open before the clock starts.
    one.claim("warm:one", "x", None).await.unwrap();
    two.claim("warm:two", "x", None).await.unwrap();
    let since = std::time::Instant::now();
    // Burst 3 across both replicas (the third, at the edge, after the jitter margin)…
    assert_eq!(wait_for(&one, "chan:C1", Place::Back).await, None);
    assert_eq!(wait_for(&two, "chan:C1", Place::Back).await, None);
    assert_about(wait_for(&one, "chan:C1", Place::Back).await, 0, since);
    // …and callers told to wait are lined up a second apart, whichever replica asks.
    assert_about(wait_for(&two, "chan:C1", Place::Back).await, 1, since);
    assert_about(wait_for(&one, "chan:C1", Place::Back).await, 2, since);
    // High priority work is told the next free time, ahead of the line, and leaves it as is.
    assert_about(wait_for(&two, "chan:C1", Place::Front).await, 0, since);
    assert_about(wait_for(&two, "chan:C1", Place::Back).await, 3, since);
    // Another channel is not affected.
    assert_eq!(wait_for(&two, "chan:C2", Place::Back).await, None);
    // A 429 on C2 seen by one replica holds it for the other.
    let second = Duration::from_secs(1);
    one.pause("chan:C2", Duration::from_secs(5), second, 3)
        .await
        .unwrap();
    assert_about(wait_for(&two, "chan:C2", Place::Back).await, 5, since);
    // Claims are atomic: the first holder wins.
    assert_eq!(one.claim("once:r:x", "e1", None).await.unwrap(), None);
    assert_eq!(
        two.claim("once:r:x", "e2", None).await.unwrap(),
        Some("e1".into())
    );
}
