//! The durable job queue. It knows Redis (and an in-process fallback) and nothing of Slack or
//! Salesforce: push, take, ack, retry later, dead-letter, release. Jobs are opaque bytes with a
//! small header.

pub mod checks;
pub mod connect;
pub mod memory;
pub mod redis;
mod redis_scripts;
pub mod stall;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why a queue operation failed. Every variant means "the backend did not confirm": the caller
/// must not report success for the write it asked for.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
    #[error("queue is over its high-water mark ({depth} ready jobs)")]
    Full { depth: u64 },
    #[error("job is not valid JSON: {0}")]
    Corrupt(String),
    /// The write reached the primary but not enough replicas in time; it may survive or not.
    #[error("only {acked} of {wanted} replicas confirmed the write in time")]
    ReplicasShort { acked: u32, wanted: u32 },
}

/// What is stored for one job: a small header and the payload (an `Event`, as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// Times a worker died holding this job (process killed, task panicked). Written first, so
    /// the Redis recovery script counts it by rewriting the head of the bytes without decoding
    /// (and re-encoding, lossily) the payload.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recoveries: u32,
    /// The job id (the event id for ingest jobs).
    pub id: String,
    /// Delivery attempts made before this one.
    #[serde(default)]
    pub attempts: u32,
    /// The lane it waits in, kept so a retried job returns to its own lane.
    #[serde(default, skip_serializing_if = "Lane::is_normal")]
    pub lane: Lane,
    /// When the job was first queued, in Unix milliseconds: the age limit counts from here.
    pub enqueued_at_ms: i64,
    /// The first failure and when it happened, kept for the dead-letter list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at_ms: Option<i64>,
    /// The last failure and when it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at_ms: Option<i64>,
    /// Time spent held through no fault of its own (its Slack app paused, the queue unable to
    /// take the work it makes), in milliseconds: the age limit does not count it.
    #[serde(default, skip_serializing_if = "is_zero_ms")]
    pub held_ms: u64,
    pub payload: Box<RawValue>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_ms(n: &u64) -> bool {
    *n == 0
}

/// A job taken from the queue. `raw` is the exact stored bytes: Redis finds the job by them
/// when it is acked or moved, so they are never re-serialised in between.
#[derive(Debug, Clone)]
pub struct Job {
    pub envelope: JobEnvelope,
    pub raw: Vec<u8>,
}

impl Job {
    /// Decodes stored bytes.
    pub fn from_raw(raw: Vec<u8>) -> Result<Self, QueueError> {
        let envelope =
            serde_json::from_slice(&raw).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        Ok(Job { envelope, raw })
    }
}

/// Which lane a job waits in. High jobs are taken before normal ones; low jobs join the ready
/// list when it runs short, and a trickle of them always does, so they never starve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    High,
    #[default]
    Normal,
    Low,
}

/// Below this many ready jobs, low-lane jobs are moved in freely.
pub(crate) const LOW_LANE_THRESHOLD: u64 = 10;

impl Lane {
    fn is_normal(&self) -> bool {
        *self == Lane::Normal
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lane::High => "high",
            Lane::Normal => "normal",
            Lane::Low => "low",
        }
    }
}

/// A job to push, with the key that makes a repeat of it a no-op.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub dedupe_key: String,
    pub bytes: Vec<u8>,
    pub lane: Lane,
    /// Goes to the head of the ready list, like the high lane (see [`NewJob::ahead`]).
    pub ahead: bool,
}

/// Where a new job is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The head of the ready list: taken next.
    Head,
    /// The tail of the ready list.
    Tail,
    /// The low lane's list.
    Low,
}

impl NewJob {
    /// Wraps a payload in a fresh envelope, in the normal lane.
    pub fn new(
        id: String,
        dedupe_key: String,
        payload: &impl Serialize,
        now_ms: i64,
    ) -> Result<Self, QueueError> {
        Self::with_lane(id, dedupe_key, payload, now_ms, Lane::Normal)
    }

    /// Wraps a payload in a fresh envelope, in `lane`.
    pub fn with_lane(
        id: String,
        dedupe_key: String,
        payload: &impl Serialize,
        now_ms: i64,
        lane: Lane,
    ) -> Result<Self, QueueError> {
        // Written in one pass, straight from the borrowed payload: the same JSON as a
        // `JobEnvelope` with no failures yet.
        let envelope = NewEnvelope {
            id: &id,
            attempts: 0,
            lane,
            enqueued_at_ms: now_ms,
            payload,
        };
        let bytes =
            serde_json::to_vec(&envelope).map_err(|e| QueueError::Corrupt(e.to_string()))?;
        Ok(NewJob {
            id,
            dedupe_key,
            bytes,
            lane,
            ahead: false,
        })
    }

    /// Puts a normal-lane job at the head of the ready list instead of its tail: for a fired
    /// route of an event already being handled, so work already begun is finished before new
    /// events are started (after a burst of events, the first messages go out at once instead
    /// of after the whole burst has been routed). Its retries return to the normal lane.
    pub fn ahead(mut self) -> Self {
        self.ahead = true;
        self
    }

    pub(crate) fn placement(&self) -> Placement {
        match self.lane {
            Lane::High => Placement::Head,
            Lane::Normal if self.ahead => Placement::Head,
            Lane::Normal => Placement::Tail,
            Lane::Low => Placement::Low,
        }
    }
}

/// A fresh [`JobEnvelope`] as it is first written, borrowing its payload.
#[derive(Serialize)]
struct NewEnvelope<'a, P: Serialize + ?Sized> {
    id: &'a str,
    attempts: u32,
    #[serde(skip_serializing_if = "Lane::is_normal")]
    lane: Lane,
    enqueued_at_ms: i64,
    payload: &'a P,
}

/// The result of one atomic enqueue: for every job in order, whether it was new, and its id
/// (the original job's id for a duplicate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub results: Vec<Enqueued>,
}

/// One job's fate in an enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    New(String),
    Duplicate(String),
}

/// Jobs in each state, for metrics and back-pressure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub dead: u64,
}

/// A job parked in the dead-letter list, with why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    pub job: JobEnvelope,
    pub reason: String,
    pub dead_at_ms: i64,
}

/// What one recovery pass did with the jobs of workers that died holding them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Put back on the ready list, their recovery counted.
    pub requeued: u64,
    /// Dead-lettered: their worker had died `max_recoveries` times running them.
    pub dead_lettered: u64,
}

/// The dead-letter reason of a job whose workers kept dying while running it.
pub fn poison_reason(deaths: u32) -> String {
    format!("worker died {deaths} times while running it")
}

/// Identifies one worker's private in-flight list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerId(pub String);

/// The queue interface both backends implement.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Pushes all `jobs` or none, skipping those whose dedupe key was seen within `dedupe_for`.
    /// Returns only once the backend has acknowledged the write.
    async fn enqueue(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError>;

    /// Like [`Queue::enqueue`], for work that follows from something already accepted (an
    /// event's route jobs, a schedule's or a gap's records, reconciliation): the high-water mark
    /// is not applied, since it exists to refuse new ingest, not to fail work taken on.
    async fn enqueue_internal(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError>;
    /// Like [`Queue::enqueue`], for writes answered to a caller outside (ingest): also waits
    /// until the configured number of replicas has them.
    async fn enqueue_replicated(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.enqueue(jobs, dedupe_for).await
    }

    /// Moves the oldest ready job into `consumer`'s in-flight list, waiting up to `wait`.
    async fn take(&self, consumer: &ConsumerId, wait: Duration) -> Result<Option<Job>, QueueError>;

    /// Removes a finished job from `consumer`'s in-flight list.
    async fn ack(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError>;

    /// Moves a job to the delayed set, due after `delay`. A failed attempt (`error` is `Some`)
    /// is counted; a job merely put off (its channel is busy) is not.
    async fn retry_later(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<(), QueueError>;

    /// Moves a job that cannot succeed to the dead-letter list, with the reason.
    async fn dead_letter(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        reason: &str,
    ) -> Result<(), QueueError>;

    /// Puts a job that arrived but cannot be done (a change event that cannot be read) straight
    /// into the dead-letter list, with the reason: kept, never dropped, and replayable.
    async fn bury(&self, job: &NewJob, reason: &str) -> Result<(), QueueError>;

    /// Puts a job back at the head of the ready list untouched (shutdown before it finished).
    async fn release(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError>;

    /// Moves delayed jobs whose time has come, and low-lane jobs when the ready list runs
    /// short, to the ready list; returns how many.
    async fn promote_due(&self) -> Result<u64, QueueError>;

    /// Marks these consumers alive. A consumer not seen for the visibility timeout is taken
    /// for dead and its in-flight jobs are recovered.
    async fn heartbeat(&self, consumers: &[ConsumerId]) -> Result<(), QueueError>;

    /// Moves the in-flight jobs of consumers silent for longer than `visibility` back to the
    /// ready list, counting a recovery in each; a job whose worker has now died
    /// `max_recoveries` times is dead-lettered instead, so one job that kills the process cannot
    /// crash-loop every replica. Safe to run from every replica at once.
    async fn recover_orphans(
        &self,
        visibility: Duration,
        max_recoveries: u32,
    ) -> Result<Recovered, QueueError>;

    /// The same for one consumer of this process whose worker task died (panicked) holding
    /// its jobs; the consumer stays registered for the worker that replaces it.
    async fn recover_consumer(
        &self,
        consumer: &ConsumerId,
        max_recoveries: u32,
    ) -> Result<Recovered, QueueError>;

    /// Puts back on the ready list whatever `consumer`'s in-flight list holds. Called by a
    /// worker that holds nothing after a queue error: a take whose reply was lost (Redis went
    /// away mid-answer) leaves a job there that no one would otherwise see.
    async fn reclaim(&self, consumer: &ConsumerId) -> Result<u64, QueueError>;

    /// Forgets a consumer that stopped cleanly (its in-flight list is empty).
    async fn unregister(&self, consumer: &ConsumerId) -> Result<(), QueueError>;

    /// Answers when the backend is reachable (readiness).
    async fn ping(&self) -> Result<(), QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// The dead letters, newest first.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Puts dead letters (the one with job `id`, or all) back on the ready list as fresh jobs;
    /// returns how many.
    async fn replay_dead(&self, id: Option<&str>) -> Result<u64, QueueError>;

    /// Deletes dead letters (the one with job `id`, or all); returns how many.
    async fn purge_dead(&self, id: Option<&str>) -> Result<u64, QueueError>;

    /// Whether jobs survive a restart of this process (false for the in-process queue).
    fn is_durable(&self) -> bool;
}

/// The envelope after a failed attempt (attempts counted, error kept) or a postponement.
pub(crate) fn after_failure(job: &Job, error: Option<&str>) -> Result<Vec<u8>, QueueError> {
    let mut envelope = job.envelope.clone();
    if let Some(error) = error {
        record_failure(&mut envelope, error);
    }
    serde_json::to_vec(&envelope).map_err(|e| QueueError::Corrupt(e.to_string()))
}

/// A dead letter's stored bytes.
pub(crate) fn dead_letter_bytes(
    job: &Job,
    reason: &str,
    now_ms: i64,
) -> Result<Vec<u8>, QueueError> {
    let mut envelope = job.envelope.clone();
    record_failure(&mut envelope, reason);
    let letter = DeadLetter {
        job: envelope,
        reason: truncate_error(reason),
        dead_at_ms: now_ms,
    };
    serde_json::to_vec(&letter).map_err(|e| QueueError::Corrupt(e.to_string()))
}

/// The dead letter of a job that never ran (see [`Queue::bury`]).
pub(crate) fn buried_bytes(job: &NewJob, reason: &str, now_ms: i64) -> Result<Vec<u8>, QueueError> {
    dead_letter_bytes(&Job::from_raw(job.bytes.clone())?, reason, now_ms)
}

/// Counts a failed attempt and keeps its error (the first one too).
fn record_failure(envelope: &mut JobEnvelope, error: &str) {
    let now = now_ms();
    envelope.attempts += 1;
    if envelope.first_error.is_none() {
        envelope.first_error = Some(truncate_error(error));
        envelope.first_failed_at_ms = Some(now);
    }
    envelope.last_error = Some(truncate_error(error));
    envelope.last_failed_at_ms = Some(now);
}

/// A dead letter made into a fresh job again: attempts and errors cleared, same id and payload.
pub(crate) fn replayed(letter: &DeadLetter) -> Result<Vec<u8>, QueueError> {
    let envelope = JobEnvelope {
        recoveries: 0,
        id: letter.job.id.clone(),
        attempts: 0,
        lane: letter.job.lane,
        enqueued_at_ms: now_ms(),
        first_error: None,
        first_failed_at_ms: None,
        last_error: None,
        last_failed_at_ms: None,
        held_ms: 0,
        payload: letter.job.payload.clone(),
    };
    serde_json::to_vec(&envelope).map_err(|e| QueueError::Corrupt(e.to_string()))
}

/// `raw` after one more worker death: the job to run again, or (at `max_recoveries`) its dead
/// letter. `None` when `raw` is not a job (a take parks such bytes as unreadable).
pub(crate) fn after_death(raw: &[u8], max_recoveries: u32) -> Option<AfterDeath> {
    let mut job = Job::from_raw(raw.to_vec()).ok()?;
    job.envelope.recoveries = job.envelope.recoveries.saturating_add(1);
    let deaths = job.envelope.recoveries;
    if deaths >= max_recoveries {
        return dead_letter_bytes(&job, &poison_reason(deaths), now_ms())
            .ok()
            .map(AfterDeath::Dead);
    }
    serde_json::to_vec(&job.envelope)
        .ok()
        .map(AfterDeath::Again)
}

/// What becomes of a job whose worker died: see [`after_death`].
pub(crate) enum AfterDeath {
    Again(Vec<u8>),
    Dead(Vec<u8>),
}

fn truncate_error(error: &str) -> String {
    error.chars().take(1000).collect()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_job_is_read_back_as_its_envelope() {
        let payload = serde_json::json!({"task": "event", "n": [1, 2, 3]});
        for lane in [Lane::High, Lane::Normal, Lane::Low] {
            let job = NewJob::with_lane("j1".into(), "k1".into(), &payload, 1_700, lane).unwrap();
            let read = Job::from_raw(job.bytes).unwrap().envelope;
            assert_eq!(read.id, "j1");
            assert_eq!(read.attempts, 0);
            assert_eq!(read.lane, lane);
            assert_eq!(read.enqueued_at_ms, 1_700);
            assert!(read.first_error.is_none() && read.last_error.is_none());
            let back: serde_json::Value = serde_json::from_str(read.payload.get()).unwrap();
            assert_eq!(back, payload);
        }
    }
}
