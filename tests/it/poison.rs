//! Poison jobs against a real `redis-server`: a job whose worker keeps dying while running it
//! is counted on every recovery and dead-lettered at `max_recoveries`, so it cannot crash-loop
//! every replica in turn.

use crate::support;

use std::time::Duration;

use sfrelay::queue::redis::RedisQueue;
use sfrelay::queue::{ConsumerId, NewJob, Queue, Recovered};
use support::{Redis, eventually, fresh_namespace};

const WAIT: Duration = Duration::from_millis(50);
const VISIBILITY: Duration = Duration::from_millis(300);

/// Recovers the jobs of every consumer silent for [`VISIBILITY`], once some are due.
async fn recover_when_due(queue: &RedisQueue) -> Recovered {
    eventually(
        "a silent consumer to be recovered",
        Duration::from_secs(10),
        || async {
            let recovered = queue.recover_orphans(VISIBILITY, 3).await.unwrap();
            (recovered != Recovered::default()).then_some(recovered)
        },
    )
    .await
}

#[tokio::test]
async fn a_job_whose_workers_keep_dying_is_dead_lettered_on_the_third_death() {
    let redis = Redis::start();
    let namespace = fresh_namespace();
    let queue = RedisQueue::new(&redis.url(), &namespace, 100).unwrap();
    // Digits past f64's precision: the payload must come back byte for byte.
    let payload = serde_json::json!({"task": "event", "amount": 12345678901234567890u64, "name": "a \"quoted\" {brace}"});
    let job = NewJob::new("poison".into(), "k-poison".into(), &payload, 1_000).unwrap();
    queue
        .enqueue(&[job], Duration::from_secs(60))
        .await
        .unwrap();

    for deaths in 1..=2u32 {
        // A worker takes the job and its process dies: it never heartbeats again.
        let consumer = ConsumerId(format!("replica-{deaths}-w0"));
        let held = queue.take(&consumer, WAIT).await.unwrap().unwrap();
        assert_eq!(held.envelope.recoveries, deaths - 1);
        assert_eq!(
            recover_when_due(&queue).await,
            Recovered {
                requeued: 1,
                dead_lettered: 0
            }
        );
    }
    let consumer = ConsumerId("replica-3-w0".into());
    let held = queue.take(&consumer, WAIT).await.unwrap().unwrap();
    assert_eq!(held.envelope.recoveries, 2);
    assert_eq!(held.envelope.payload.get(), payload.to_string());
    assert_eq!(
        recover_when_due(&queue).await,
        Recovered {
            requeued: 0,
            dead_lettered: 1
        }
    );

    let depth = queue.depth().await.unwrap();
    assert_eq!((depth.ready, depth.in_flight, depth.dead), (0, 0, 1));
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead[0].reason, "worker died 3 times while running it");
    assert_eq!(dead[0].job.id, "poison");
    assert_eq!(dead[0].job.recoveries, 3);
    assert_eq!(dead[0].job.enqueued_at_ms, 1_000);
    assert!(dead[0].dead_at_ms > 1_000);
    assert_eq!(dead[0].job.payload.get(), payload.to_string());

    // Replayed, it starts counting afresh.
    assert_eq!(queue.replay_dead(Some("poison")).await.unwrap(), 1);
    let again = queue.take(&consumer, WAIT).await.unwrap().unwrap();
    assert_eq!(again.envelope.recoveries, 0);
}

#[tokio::test]
async fn a_worker_that_panicked_gives_its_job_back_counted() {
    let redis = Redis::start();
    let queue = RedisQueue::new(&redis.url(), &fresh_namespace(), 100).unwrap();
    let job = NewJob::new("p".into(), "k-p".into(), &serde_json::json!({"n": 1}), 0).unwrap();
    queue
        .enqueue(&[job], Duration::from_secs(60))
        .await
        .unwrap();
    let consumer = ConsumerId("replica-w0".into());
    for deaths in 1..=3u32 {
        let held = queue.take(&consumer, WAIT).await.unwrap().unwrap();
        assert_eq!(held.envelope.recoveries, deaths - 1);
        let recovered = queue.recover_consumer(&consumer, 3).await.unwrap();
        let expected = if deaths < 3 {
            Recovered {
                requeued: 1,
                dead_lettered: 0,
            }
        } else {
            Recovered {
                requeued: 0,
                dead_lettered: 1,
            }
        };
        assert_eq!(recovered, expected);
    }
    let dead = queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "worker died 3 times while running it");
}
