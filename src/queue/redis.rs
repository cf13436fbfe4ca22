//! The production queue: Redis lists with the reliable-fetch pattern. Every key carries one hash
//! tag, `sfrelay:{namespace}:…`, so all of them live in one Redis Cluster slot and the Lua
//! scripts that touch several keys stay legal there. The keys are made in [`crate::keys`]:
//! `ready` and `low` (lists), `processing:<consumer>` (one list per consumer, filled by
//! `BLMOVE` so a job is always in exactly one place), `consumers` (heartbeats), `delayed:<lane>`
//! (sorted sets by due time: retries and put-off jobs, promoted back into their lane), `dead`
//! and `dedupe:<key>`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tokio::sync::Mutex;

use crate::config::{RedisMode, TAKE_REPLY_MARGIN};
use crate::keys::Namespace;

use super::connect::{Conn, Endpoint};
use super::redis_scripts::{DEPTH, ENQUEUE, HEARTBEAT, MOVE_HELD, PROMOTE, RECOVER};

use super::{
    ConsumerId, DeadLetter, EnqueueOutcome, Enqueued, Job, Lane, NewJob, Placement, Queue,
    QueueDepth, QueueError, Recovered, after_failure, buried_bytes, dead_letter_bytes, now_ms,
};

/// How long a consumer's registration counts as fresh for its next take: a quarter of the
/// shortest visibility timeout allowed.
const REGISTRATION_FRESH: Duration = Duration::from_millis(500);

/// How long any command but a blocking take may go unanswered before its link is taken for
/// dead and rebuilt.
const REPLY_DEADLINE: Duration = Duration::from_secs(2);

/// Replicas an ingest write must reach before it is answered (`WAIT`), and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaAck {
    pub replicas: u32,
    pub timeout: Duration,
}

/// The Redis-backed queue.
pub struct RedisQueue {
    endpoint: Endpoint,
    keys: Namespace,
    high_water_mark: u64,
    replica_ack: ReplicaAck,
    /// The self-healing connection every command but blocking takes shares.
    shared: Conn,
    /// Links for ingest pushes that `WAIT` for replicas (none when no replica is waited for):
    /// a `WAIT` holds up every later command of its connection until it answers, so it must
    /// not sit on the shared one (workers' acks would queue behind it), and several let
    /// concurrent requests wait side by side.
    replicated: Vec<Conn>,
    next_replicated: std::sync::atomic::AtomicUsize,
    /// One connection per consumer for blocking takes: a blocked `BLMOVE` would stall every
    /// other command sharing its connection.
    blocking: Mutex<HashMap<ConsumerId, Conn>>,
    /// When each consumer of this process was last registered in the consumers set (the time
    /// the registration was sent). Recovery takes a consumer for dead only after the visibility
    /// timeout (at least 2 s) without one, so within [`REGISTRATION_FRESH`] a take need not
    /// register again.
    registered: std::sync::Mutex<HashMap<ConsumerId, std::time::Instant>>,
    enqueue: Script,
    move_held: Script,
    promote: Script,
    depth: Script,
    recover: Script,
    heartbeat: Script,
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl RedisQueue {
    /// Prepares a queue on one Redis server; see [`RedisQueue::with_mode`].
    pub fn new(url: &str, namespace: &str, high_water_mark: u64) -> Result<Self, QueueError> {
        let no_wait = ReplicaAck {
            replicas: 0,
            timeout: Duration::ZERO,
        };
        Self::with_mode(
            url,
            &RedisMode::Standalone,
            namespace,
            high_water_mark,
            no_wait,
        )
    }

    /// Prepares the queue; no connection is made until first use, so the service can start
    /// (and report itself not ready) while Redis is still coming up.
    pub fn with_mode(
        url: &str,
        mode: &RedisMode,
        namespace: &str,
        high_water_mark: u64,
        replica_ack: ReplicaAck,
    ) -> Result<Self, QueueError> {
        let endpoint =
            Endpoint::parse(url, mode).map_err(|e| QueueError::Unavailable(e.to_string()))?;
        // A WAIT holds its reply for up to its timeout; that is not a dead link.
        let wait_deadline = REPLY_DEADLINE.max(replica_ack.timeout + Duration::from_secs(1));
        let replicated = match replica_ack.replicas {
            0 => Vec::new(),
            _ => (0..REPLICATED_LINKS)
                .map(|_| Conn::new(endpoint.clone(), wait_deadline))
                .collect(),
        };
        Ok(RedisQueue {
            shared: Conn::new(endpoint.clone(), REPLY_DEADLINE),
            replicated,
            next_replicated: std::sync::atomic::AtomicUsize::new(0),
            endpoint,
            keys: Namespace::new(namespace),
            high_water_mark,
            replica_ack,
            blocking: Mutex::new(HashMap::new()),
            registered: std::sync::Mutex::new(HashMap::new()),
            enqueue: Script::new(ENQUEUE),
            move_held: Script::new(MOVE_HELD),
            promote: Script::new(PROMOTE),
            depth: Script::new(DEPTH),
            recover: Script::new(RECOVER),
            heartbeat: Script::new(HEARTBEAT),
        })
    }

    /// The key builder, for other components that keep state in the same namespace.
    pub fn keys(&self) -> &Namespace {
        &self.keys
    }

    /// The shared, self-healing connection for everything but blocking takes: no request on
    /// it waits longer than its deadline, and a link that timed out is replaced.
    pub async fn connection(&self) -> Result<Conn, QueueError> {
        Ok(self.shared.clone())
    }

    /// This consumer's own connection, whose requests may wait `wait` plus the reply margin.
    async fn blocking_connection(&self, consumer: &ConsumerId, wait: Duration) -> Conn {
        let mut pool = self.blocking.lock().await;
        pool.entry(consumer.clone())
            .or_insert_with(|| Conn::new(self.endpoint.clone(), REPLY_DEADLINE))
            .with_deadline(wait + TAKE_REPLY_MARGIN)
    }

    async fn move_held(
        &self,
        consumer: &ConsumerId,
        held: &[u8],
        target: String,
        new_bytes: &[u8],
        mode: &str,
        delay_ms: u64,
    ) -> Result<(), QueueError> {
        let mut conn = self.connection().await?;
        let _moved: i64 = self
            .move_held
            .key(self.keys.processing(&consumer.0))
            .key(target)
            .arg(held)
            .arg(new_bytes)
            .arg(mode)
            .arg(delay_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn enqueue(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.push(jobs, dedupe_for, Some(self.high_water_mark), 0)
            .await
    }

    async fn enqueue_internal(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.push(jobs, dedupe_for, None, 0).await
    }

    async fn enqueue_replicated(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.push(
            jobs,
            dedupe_for,
            Some(self.high_water_mark),
            self.replica_ack.replicas,
        )
        .await
    }

    async fn take(&self, consumer: &ConsumerId, wait: Duration) -> Result<Option<Job>, QueueError> {
        // A reply lost to the deadline may hide a job already moved into this consumer's
        // in-flight list; the worker reclaims it before its next take.
        let mut conn = self.blocking_connection(consumer, wait).await;
        // Registering the consumer first means its in-flight list is always discoverable.
        if !self.registered_recently(consumer) {
            let sent = std::time::Instant::now();
            let _: i64 = self
                .heartbeat
                .key(self.keys.consumers())
                .arg(&consumer.0)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.forget(consumer, e))?;
            self.note_registered(std::slice::from_ref(consumer), sent);
        }
        let raw: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(self.keys.ready())
            .arg(self.keys.processing(&consumer.0))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(wait.as_secs_f64().max(0.01))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.forget(consumer, e))?;
        match raw {
            None => Ok(None),
            Some(raw) => match Job::from_raw(raw.clone()) {
                Ok(job) => Ok(Some(job)),
                Err(e) => {
                    // Unreadable bytes cannot be processed; park them rather than lose them.
                    let letter = serde_json::json!({
                        "reason": format!("unreadable job: {e}"),
                        "raw": String::from_utf8_lossy(&raw),
                        "dead_at_ms": now_ms(),
                    });
                    let bytes = serde_json::to_vec(&letter)
                        .map_err(|e| QueueError::Corrupt(e.to_string()))?;
                    self.move_held(consumer, &raw, self.keys.dead(), &bytes, "dead", 0)
                        .await?;
                    Ok(None)
                }
            },
        }
    }

    async fn ack(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError> {
        let mut conn = self.connection().await?;
        let _: i64 = redis::cmd("LREM")
            .arg(self.keys.processing(&consumer.0))
            .arg(1)
            .arg(&job.raw[..])
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry_later(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<(), QueueError> {
        let bytes = after_failure(job, error)?;
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.move_held(
            consumer,
            &job.raw,
            self.keys.delayed(job.envelope.lane.as_str()),
            &bytes,
            "delay",
            delay_ms,
        )
        .await
    }

    async fn dead_letter(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        reason: &str,
    ) -> Result<(), QueueError> {
        let bytes = dead_letter_bytes(job, reason, now_ms())?;
        self.move_held(consumer, &job.raw, self.keys.dead(), &bytes, "dead", 0)
            .await
    }

    async fn bury(&self, job: &NewJob, reason: &str) -> Result<(), QueueError> {
        let bytes = buried_bytes(job, reason, now_ms())?;
        let mut conn = self.connection().await?;
        let _: i64 = redis::cmd("LPUSH")
            .arg(self.keys.dead())
            .arg(bytes)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError> {
        self.move_held(
            consumer,
            &job.raw,
            self.keys.ready(),
            &job.raw,
            "release",
            0,
        )
        .await
    }

    async fn promote_due(&self) -> Result<u64, QueueError> {
        let mut conn = self.connection().await?;
        self.promote
            .key(self.keys.delayed(Lane::High.as_str()))
            .key(self.keys.delayed(Lane::Normal.as_str()))
            .key(self.keys.delayed(Lane::Low.as_str()))
            .key(self.keys.ready())
            .key(self.keys.low())
            .arg(500)
            .arg(super::LOW_LANE_THRESHOLD)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn heartbeat(&self, consumers: &[ConsumerId]) -> Result<(), QueueError> {
        if consumers.is_empty() {
            return Ok(());
        }
        let mut conn = self.connection().await?;
        let mut invocation = self.heartbeat.key(self.keys.consumers());
        for consumer in consumers {
            invocation.arg(&consumer.0);
        }
        let sent = std::time::Instant::now();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        self.note_registered(consumers, sent);
        Ok(())
    }

    async fn recover_orphans(
        &self,
        visibility: Duration,
        max_recoveries: u32,
    ) -> Result<Recovered, QueueError> {
        let visibility_ms = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
        self.recover(visibility_ms, max_recoveries, "").await
    }

    async fn recover_consumer(
        &self,
        consumer: &ConsumerId,
        max_recoveries: u32,
    ) -> Result<Recovered, QueueError> {
        self.recover(0, max_recoveries, &consumer.0).await
    }

    async fn reclaim(&self, consumer: &ConsumerId) -> Result<u64, QueueError> {
        let mut conn = self.connection().await?;
        let mut moved = 0;
        loop {
            let job: Option<Vec<u8>> = redis::cmd("LMOVE")
                .arg(self.keys.processing(&consumer.0))
                .arg(self.keys.ready())
                .arg("RIGHT")
                .arg("RIGHT")
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if job.is_none() {
                return Ok(moved);
            }
            moved += 1;
        }
    }

    async fn unregister(&self, consumer: &ConsumerId) -> Result<(), QueueError> {
        let mut conn = self.connection().await?;
        // Only a consumer holding nothing is forgotten; one still holding a job stays
        // visible so recovery returns that job.
        let held: u64 = redis::cmd("LLEN")
            .arg(self.keys.processing(&consumer.0))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if held == 0 {
            let _: i64 = redis::cmd("ZREM")
                .arg(self.keys.consumers())
                .arg(&consumer.0)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        self.blocking.lock().await.remove(consumer);
        self.forget_registration(consumer);
        Ok(())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let mut conn = self.connection().await?;
        let (ready, in_flight, delayed, dead): (u64, u64, u64, u64) = self
            .depth
            .key(self.keys.ready())
            .key(self.keys.dead())
            .key(self.keys.consumers())
            .key(self.keys.low())
            .key(self.keys.delayed(Lane::High.as_str()))
            .key(self.keys.delayed(Lane::Normal.as_str()))
            .key(self.keys.delayed(Lane::Low.as_str()))
            .arg(self.keys.processing_prefix())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(QueueDepth {
            ready,
            in_flight,
            delayed,
            dead,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut conn = self.connection().await?;
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.dead())
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(raw
            .iter()
            .filter_map(|bytes| serde_json::from_slice(bytes).ok())
            .collect())
    }

    async fn replay_dead(&self, id: Option<&str>) -> Result<u64, QueueError> {
        let mut replayed = 0;
        for (raw, letter) in self.matching_dead(id).await? {
            let fresh = super::replayed(&letter)?;
            let mut conn = self.connection().await?;
            // Moved only if still there, so two operators replaying at once cannot double it.
            let moved: i64 = self
                .move_held
                .key(self.keys.dead())
                .key(self.keys.ready())
                .arg(&raw[..])
                .arg(&fresh[..])
                .arg("release")
                .arg(0)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            replayed += moved as u64;
        }
        Ok(replayed)
    }

    async fn purge_dead(&self, id: Option<&str>) -> Result<u64, QueueError> {
        let mut conn = self.connection().await?;
        if id.is_none() {
            let n: u64 = redis::cmd("LLEN")
                .arg(self.keys.dead())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            let _: i64 = redis::cmd("DEL")
                .arg(self.keys.dead())
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            return Ok(n);
        }
        let mut purged = 0;
        for (raw, _) in self.matching_dead(id).await? {
            let n: u64 = redis::cmd("LREM")
                .arg(self.keys.dead())
                .arg(1)
                .arg(&raw[..])
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            purged += n;
        }
        Ok(purged)
    }

    fn is_durable(&self) -> bool {
        true
    }
}

/// Ingest pushes that wait for replicas at once, each on a link of its own.
const REPLICATED_LINKS: usize = 16;

impl RedisQueue {
    /// The next of the links for pushes that wait for replicas (the shared one if none).
    fn replicated_link(&self) -> &Conn {
        let n = self
            .next_replicated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.replicated
            .get(n % self.replicated.len().max(1))
            .unwrap_or(&self.shared)
    }

    /// The ENQUEUE script: all or nothing, refused when the ready jobs reach `mark` (ingest's
    /// high-water mark; `None` for work already accepted). With `replicas` > 0 a `WAIT` follows
    /// it in the same pipeline on the same link (WAIT counts the replicas that have every write
    /// this connection made) and a shortfall is refused.
    async fn push(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
        mark: Option<u64>,
        replicas: u32,
    ) -> Result<EnqueueOutcome, QueueError> {
        if jobs.is_empty() {
            return Ok(EnqueueOutcome { results: vec![] });
        }
        let mut invocation = self.enqueue.key(self.keys.ready());
        invocation.key(self.keys.low());
        for job in jobs {
            invocation.key(self.keys.dedupe(&job.dedupe_key));
        }
        match mark {
            Some(mark) => invocation.arg(mark),
            None => invocation.arg("none"),
        };
        invocation.arg(dedupe_for.as_secs().max(1));
        for job in jobs {
            invocation
                .arg(&job.id)
                .arg(&job.bytes[..])
                .arg(match job.placement() {
                    Placement::Head => "head",
                    Placement::Tail => "tail",
                    Placement::Low => "low",
                });
        }
        let conn = match replicas {
            0 => &self.shared,
            _ => self.replicated_link(),
        };
        let (generation, mut link) = conn.link().await.map_err(unavailable)?;
        if replicas == 0 {
            let reply: Vec<redis::Value> = conn
                .guarded(generation, invocation.invoke_async(&mut link))
                .await
                .map_err(unavailable)?;
            return parse_enqueue_reply(&reply);
        }
        // The script and the WAIT go out together, so a request costs one round trip.
        let timeout_ms = u64::try_from(self.replica_ack.timeout.as_millis()).unwrap_or(u64::MAX);
        let wait = || redis::cmd("WAIT").arg(replicas).arg(timeout_ms).clone();
        let mut both = redis::pipe();
        both.invoke_script(&invocation).add_command(wait());
        let together: redis::RedisResult<(Vec<redis::Value>, i64)> =
            conn.guarded(generation, both.query_async(&mut link)).await;
        let (reply, acked) = match together {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // A server that has not seen the script yet (new, or promoted): the
                // invocation loads it, then the WAIT follows on the same link.
                let reply: Vec<redis::Value> = conn
                    .guarded(generation, invocation.invoke_async(&mut link))
                    .await
                    .map_err(unavailable)?;
                let acked: i64 = conn
                    .guarded(generation, wait().query_async(&mut link))
                    .await
                    .map_err(unavailable)?;
                (reply, acked)
            }
            other => other.map_err(unavailable)?,
        };
        let outcome = parse_enqueue_reply(&reply)?;
        let acked = u32::try_from(acked).unwrap_or(0);
        if acked < replicas {
            return Err(QueueError::ReplicasShort {
                acked,
                wanted: replicas,
            });
        }
        Ok(outcome)
    }
}

impl RedisQueue {
    /// The RECOVER script, for the consumers silent longer than `visibility_ms` or for
    /// `consumer` alone.
    async fn recover(
        &self,
        visibility_ms: u64,
        max_recoveries: u32,
        consumer: &str,
    ) -> Result<Recovered, QueueError> {
        let mut conn = self.connection().await?;
        let (requeued, dead_lettered): (u64, u64) = self
            .recover
            .key(self.keys.consumers())
            .key(self.keys.ready())
            .key(self.keys.dead())
            .arg(visibility_ms)
            .arg(self.keys.processing_prefix())
            .arg(max_recoveries)
            .arg(consumer)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(Recovered {
            requeued,
            dead_lettered,
        })
    }

    /// Dead letters (exact stored bytes and decoded) whose job id is `id`, or all.
    async fn matching_dead(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<(Vec<u8>, DeadLetter)>, QueueError> {
        let mut conn = self.connection().await?;
        let raw: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(self.keys.dead())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(raw
            .into_iter()
            .filter_map(|bytes| {
                let letter: DeadLetter = serde_json::from_slice(&bytes).ok()?;
                id.is_none_or(|id| letter.job.id == id)
                    .then_some((bytes, letter))
            })
            .collect())
    }
}

impl RedisQueue {
    /// After a failed take (the connection drops a spent link itself).
    fn forget(&self, consumer: &ConsumerId, e: redis::RedisError) -> QueueError {
        // Redis may have restarted empty: register again before the next take.
        self.forget_registration(consumer);
        unavailable(e)
    }

    fn registered_recently(&self, consumer: &ConsumerId) -> bool {
        self.registered.lock().is_ok_and(|registered| {
            registered
                .get(consumer)
                .is_some_and(|sent| sent.elapsed() < REGISTRATION_FRESH)
        })
    }

    fn note_registered(&self, consumers: &[ConsumerId], sent: std::time::Instant) {
        if let Ok(mut registered) = self.registered.lock() {
            for consumer in consumers {
                registered.insert(consumer.clone(), sent);
            }
        }
    }

    fn forget_registration(&self, consumer: &ConsumerId) {
        if let Ok(mut registered) = self.registered.lock() {
            registered.remove(consumer);
        }
    }
}

fn parse_enqueue_reply(reply: &[redis::Value]) -> Result<EnqueueOutcome, QueueError> {
    use redis::Value;
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    };
    let bad = || QueueError::Corrupt(format!("unexpected enqueue reply {reply:?}"));
    if let [Value::Int(-1), depth] = reply {
        let depth = text(depth).and_then(|d| d.parse().ok()).unwrap_or(0);
        return Err(QueueError::Full { depth });
    }
    let mut results = Vec::with_capacity(reply.len() / 2);
    for pair in reply.chunks(2) {
        match pair {
            [Value::Int(1), id] => results.push(Enqueued::New(text(id).ok_or_else(bad)?)),
            [Value::Int(0), id] => results.push(Enqueued::Duplicate(text(id).ok_or_else(bad)?)),
            _ => return Err(bad()),
        }
    }
    Ok(EnqueueOutcome { results })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_one_hash_tag() {
        let k = Namespace::new("prod");
        let c = ConsumerId("host-1-w0".into());
        for key in [
            k.ready(),
            k.processing(&c.0),
            k.consumers(),
            k.delayed(Lane::High.as_str()),
            k.dead(),
            k.dedupe("e:x"),
            k.store("ledger:1"),
        ] {
            assert!(key.starts_with("sfrelay:{prod}:"), "{key}");
        }
    }

    #[test]
    fn enqueue_reply_is_parsed() {
        use redis::Value;
        let reply = vec![
            Value::Int(1),
            Value::BulkString(b"a".to_vec()),
            Value::Int(0),
            Value::BulkString(b"b".to_vec()),
        ];
        assert_eq!(
            parse_enqueue_reply(&reply).unwrap().results,
            vec![Enqueued::New("a".into()), Enqueued::Duplicate("b".into())]
        );
        let full = vec![Value::Int(-1), Value::BulkString(b"42".to_vec())];
        assert!(matches!(
            parse_enqueue_reply(&full),
            Err(QueueError::Full { depth: 42 })
        ));
    }
}
