//! The worker pool: tokio tasks in the same process that take jobs, run each through
//! [`crate::jobs`], and settle it (ack, retry later with backoff, or dead-letter). Nothing is
//! dropped: a job leaves a worker's in-flight list only by one of those moves.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{QueueConfig, TAKE_WAIT};
use crate::jobs::{self, JobError, Jobs};
use crate::queue::stall::TakeWatch;
use crate::queue::{ConsumerId, Job, Queue, QueueError, Recovered};
use crate::retry::Retry;

/// What a worker needs, shared by all workers.
#[derive(Clone)]
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub jobs: Arc<dyn RunJob>,
    pub queue_config: QueueConfig,
    /// When each worker last finished a take, for readiness.
    pub takes: Arc<TakeWatch>,
}

/// Performs one attempt of a job: [`Jobs`] in the service; the pool's own tests give it
/// runners that fail, stall or panic on purpose.
#[async_trait::async_trait]
pub trait RunJob: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

#[async_trait::async_trait]
impl RunJob for Jobs {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        jobs::run(self, job).await
    }
}

/// How one attempt at a job ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    RetryAfter {
        delay: Duration,
        error: String,
    },
    /// Not a failure: a rate limit has no room until `delay` (exactly Slack's `Retry-After`
    /// after a 429). The attempt is not counted.
    Postpone {
        delay: Duration,
        /// Held through no fault of its own: the wait is credited against the age limit.
        held: bool,
    },
    Dead {
        reason: String,
    },
}

/// The running pool.
pub struct WorkerPool {
    supervisor: tokio::task::JoinHandle<()>,
}

impl WorkerPool {
    /// Starts `count` workers, the task that keeps them alive (a worker whose task panics is
    /// replaced and its job returned to the queue) and the queue's housekeeping. `stop` ends
    /// taking new jobs; `abandon` makes workers put unfinished jobs back on the queue at once.
    pub fn spawn(
        ctx: WorkerContext,
        count: usize,
        stop: CancellationToken,
        abandon: CancellationToken,
    ) -> Self {
        let instance = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let consumers: Vec<ConsumerId> = (0..count)
            .map(|n| ConsumerId(format!("{instance}-w{n}")))
            .collect();
        // Heartbeats go on until the last worker is done, through a drain however long: a
        // draining replica's jobs must not look orphaned to the others.
        let workers_done = CancellationToken::new();
        let maintenance = tokio::spawn(maintain(
            ctx.queue.clone(),
            consumers.clone(),
            ctx.queue_config.visibility_timeout,
            ctx.queue_config.max_recoveries,
            workers_done.clone(),
        ));
        let supervisor = tokio::spawn(async move {
            supervise(ctx, consumers, stop, abandon).await;
            workers_done.cancel();
            if let Err(e) = maintenance.await {
                tracing::error!(error = %e, "queue housekeeping task failed");
            }
        });
        WorkerPool { supervisor }
    }

    /// Waits until every worker has stopped.
    pub async fn join(self) {
        if let Err(e) = self.supervisor.await {
            tracing::error!(error = %e, "worker supervisor failed");
        }
    }
}

/// Runs one worker per consumer until all have stopped. A worker whose task panicked is
/// counted, logged and started again on the same consumer, first returning the job it held
/// (one more recovery counted in it), so the pool keeps its size and nothing is lost.
async fn supervise(
    ctx: WorkerContext,
    consumers: Vec<ConsumerId>,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    let mut by_task = std::collections::HashMap::new();
    for (n, consumer) in consumers.into_iter().enumerate() {
        let worker = run_worker(
            ctx.clone(),
            (n, consumer.clone()),
            stop.clone(),
            abandon.clone(),
            false,
        );
        by_task.insert(tasks.spawn(worker).id(), (n, consumer));
    }
    while let Some(ended) = tasks.join_next_with_id().await {
        let (id, failure) = match ended {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        let Some((n, consumer)) = by_task.remove(&id) else {
            continue;
        };
        let Some(failure) = failure.filter(tokio::task::JoinError::is_panic) else {
            continue;
        };
        let why = panic_message(failure.into_panic());
        metrics::counter!("sfrelay_worker_panics_total").increment(1);
        tracing::error!(consumer = %consumer.0, panic = %why, "a worker panicked; its job goes back to the queue and the worker is started again");
        let worker = run_worker(
            ctx.clone(),
            (n, consumer.clone()),
            stop.clone(),
            abandon.clone(),
            true,
        );
        by_task.insert(tasks.spawn(worker).id(), (n, consumer));
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sfrelay".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

/// How often due retries and put-off jobs are moved back to the ready list: a job put off until
/// its channel's next free second is sent at most this much after it.
const PROMOTE_EVERY: Duration = Duration::from_millis(50);

/// The queue's housekeeping until `workers_done`: promote due retries (every
/// [`PROMOTE_EVERY`]), heartbeat this process's consumers, and recover jobs of consumers that
/// died (any replica may; the script is atomic).
async fn maintain(
    queue: Arc<dyn Queue>,
    consumers: Vec<ConsumerId>,
    visibility: Duration,
    max_recoveries: u32,
    workers_done: CancellationToken,
) {
    let mut tick = tokio::time::interval(PROMOTE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let heartbeat_every = (visibility / 4).max(Duration::from_millis(200));
    let recover_every = (visibility / 2).max(Duration::from_millis(500));
    let mut last_heartbeat = tokio::time::Instant::now();
    let mut last_recovery = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = workers_done.cancelled() => break,
            _ = tick.tick() => {}
        }
        match queue.promote_due().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(promoted = n, "jobs moved to the ready list"),
            Err(e) => tracing::debug!(error = %e, "cannot promote due jobs"),
        }
        if last_heartbeat.elapsed() >= heartbeat_every {
            last_heartbeat = tokio::time::Instant::now();
            if let Err(e) = queue.heartbeat(&consumers).await {
                tracing::warn!(error = %e, "cannot heartbeat");
            }
        }
        if last_recovery.elapsed() >= recover_every {
            last_recovery = tokio::time::Instant::now();
            match queue.recover_orphans(visibility, max_recoveries).await {
                Ok(recovered) => note_recovered(recovered, "stopped heartbeating"),
                Err(e) => tracing::debug!(error = %e, "cannot recover orphaned jobs"),
            }
        }
    }
}

/// Counts and logs what a recovery did with the jobs of workers that died.
fn note_recovered(recovered: Recovered, how: &str) {
    if recovered.requeued > 0 {
        metrics::counter!("sfrelay_jobs_recovered_total").increment(recovered.requeued);
        tracing::warn!(
            jobs = recovered.requeued,
            "recovered jobs of a worker that {how}"
        );
    }
    if recovered.dead_lettered > 0 {
        metrics::counter!("sfrelay_jobs_dead_lettered_total").increment(recovered.dead_lettered);
        tracing::error!(
            jobs = recovered.dead_lettered,
            "dead-lettered jobs whose worker {how} too many times while running them"
        );
    }
}

async fn run_worker(
    ctx: WorkerContext,
    (n, consumer): (usize, ConsumerId),
    stop: CancellationToken,
    abandon: CancellationToken,
    after_panic: bool,
) {
    if after_panic {
        give_back_after_panic(&ctx, &consumer, &abandon).await;
    }
    let mut backoff = Duration::from_millis(100);
    let mut reclaim = false;
    while !stop.is_cancelled() {
        if reclaim {
            match ctx.queue.reclaim(&consumer).await {
                Ok(n) => {
                    reclaim = false;
                    if n > 0 {
                        metrics::counter!("sfrelay_jobs_recovered_total").increment(n);
                        tracing::warn!(jobs = n, "reclaimed jobs a lost reply had left in flight");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot reclaim yet"),
            }
        }
        // A take is never cancelled half-way: the job could be moved and then forgotten.
        let job = match ctx.queue.take(&consumer, TAKE_WAIT).await {
            Ok(Some(job)) => {
                ctx.takes.running(n);
                job
            }
            Ok(None) => {
                ctx.takes.waiting(n);
                continue;
            }
            Err(e) => {
                reclaim = true;
                tracing::warn!(error = %e, consumer = %consumer.0, "cannot take jobs; retrying");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let span = tracing::info_span!("job", event_id = %job.envelope.id, attempt = job.envelope.attempts + 1);
        async {
            let outcome = tokio::select! {
                outcome = process(&ctx, &job) => Some(outcome),
                _ = abandon.cancelled() => None,
            };
            // Settling is a queue write: time spent on it counts as time on the queue.
            ctx.takes.waiting(n);
            settle(&ctx, &consumer, &job, outcome, &abandon).await;
        }
        .instrument(span)
        .await;
        ctx.takes.waiting(n);
    }
    if let Err(e) = ctx.queue.unregister(&consumer).await {
        tracing::debug!(error = %e, "cannot unregister consumer");
    }
}

/// Returns what a panicked worker held, one more recovery counted in each job (dead-lettered at
/// `max_recoveries`), repeating until the queue answers or work is abandoned (then the jobs
/// stay in flight and recovery returns them once this process is gone).
async fn give_back_after_panic(
    ctx: &WorkerContext,
    consumer: &ConsumerId,
    abandon: &CancellationToken,
) {
    let mut wait = Duration::from_millis(50);
    loop {
        match ctx
            .queue
            .recover_consumer(consumer, ctx.queue_config.max_recoveries)
            .await
        {
            Ok(recovered) => return note_recovered(recovered, "panicked"),
            Err(e) => tracing::warn!(error = %e, "cannot return a panicked worker's job yet"),
        }
        tokio::select! {
            _ = abandon.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Performs one attempt of a job and says how it ended.
async fn process(ctx: &WorkerContext, job: &Job) -> Outcome {
    match ctx.jobs.run(job).await {
        Ok(()) => Outcome::Done,
        Err(JobError::Postponed { delay, held }) => Outcome::Postpone { delay, held },
        Err(JobError::Failed { error, retry }) => failure(ctx, job, &error, retry),
    }
}

/// Turns a failure into a retry with backoff, or a dead letter.
fn failure(ctx: &WorkerContext, job: &Job, error: &str, retry: Retry) -> Outcome {
    let error = error.to_string();
    if retry == Retry::Never {
        return Outcome::Dead { reason: error };
    }
    let attempts = job.envelope.attempts + 1;
    if attempts >= attempt_limit(ctx.queue_config.max_attempts, retry) {
        return Outcome::Dead {
            reason: format!("gave up after {attempts} attempts: {error}"),
        };
    }
    if jobs::too_old(job, ctx.queue_config.max_age) {
        return Outcome::Dead {
            reason: format!(
                "gave up: older than the {}s age limit: {error}",
                ctx.queue_config.max_age.as_secs()
            ),
        };
    }
    // A sporadic failure does not compound: the retry comes within two base delays whatever
    // the attempt, so a storm's stragglers are paced by the channel, not by their own backoff.
    let exponent = if retry == Retry::Soon { 1 } else { attempts };
    let delay = backoff(
        ctx.queue_config.backoff_base,
        ctx.queue_config.backoff_cap,
        exponent,
    );
    Outcome::RetryAfter { delay, error }
}

/// How many attempts a job may make when its latest failure was of kind `retry`. While the
/// remote side answers most calls (a storm of sporadic 500s), a job keeps its place for three
/// times `max_attempts`: a run of unlucky answers in a storm Slack recovers from is no reason to
/// give up on it. `max_age` bounds it either way.
fn attempt_limit(max_attempts: u32, retry: Retry) -> u32 {
    match retry {
        Retry::Soon => max_attempts.saturating_mul(SPORADIC_ATTEMPTS),
        Retry::Later | Retry::Never => max_attempts,
    }
}

/// How many times `max_attempts` a job whose failures are sporadic may make.
const SPORADIC_ATTEMPTS: u32 = 3;

/// `job` with `delay` added to the time it was held (its stored bytes unchanged, so the queue
/// still finds it by them).
fn credited(job: &Job, delay: Duration) -> Job {
    let mut job = job.clone();
    let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    job.envelope.held_ms = job.envelope.held_ms.saturating_add(delay_ms);
    job
}

/// Exponential backoff with full jitter: a random delay in [0, min(cap, base × 2^attempts)].
pub fn backoff(base: Duration, cap: Duration, attempts: u32) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempts.min(30)))
        .min(cap);
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

/// Records the outcome in the queue. A queue write that fails is repeated (Redis may be
/// restarting) until it lands or the process is told to abandon work, in which case the job
/// stays in this consumer's in-flight list for recovery.
async fn settle(
    ctx: &WorkerContext,
    consumer: &ConsumerId,
    job: &Job,
    outcome: Option<Outcome>,
    abandon: &CancellationToken,
) {
    let mut wait = Duration::from_millis(50);
    loop {
        let result: Result<(), QueueError> = match &outcome {
            None => {
                tracing::info!("shutting down: job returned to the queue");
                ctx.queue.release(consumer, job).await
            }
            Some(Outcome::Done) => ctx.queue.ack(consumer, job).await,
            Some(Outcome::RetryAfter { delay, error }) => {
                metrics::counter!("sfrelay_jobs_retried_total").increment(1);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
                ctx.queue
                    .retry_later(consumer, job, *delay, Some(error))
                    .await
            }
            Some(Outcome::Postpone { delay, held }) => {
                tracing::debug!(wait_ms = delay.as_millis() as u64, held, "put off");
                if *held {
                    ctx.queue
                        .retry_later(consumer, &credited(job, *delay), *delay, None)
                        .await
                } else {
                    ctx.queue.retry_later(consumer, job, *delay, None).await
                }
            }
            Some(Outcome::Dead { reason }) => {
                metrics::counter!("sfrelay_jobs_dead_lettered_total").increment(1);
                tracing::error!(%reason, "delivery failed permanently; job moved to the dead-letter list");
                ctx.queue.dead_letter(consumer, job, reason).await
            }
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the job's outcome; retrying");
                tokio::select! {
                    _ = abandon.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::memory::MemoryQueue;
    use crate::queue::{NewJob, QueueDepth};
    use std::sync::Mutex;

    /// Panics on the first run of the jobs in `panic_once` and on every run of those in
    /// `panic_always`; records every run, and each job it completed with the recoveries its
    /// envelope carried.
    #[derive(Default)]
    struct Faulty {
        panic_once: Vec<&'static str>,
        panic_always: Vec<&'static str>,
        runs: Mutex<Vec<String>>,
        completed: Mutex<Vec<(String, u32)>>,
    }

    #[async_trait::async_trait]
    impl RunJob for Faulty {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let id = job.envelope.id.as_str();
            let runs = {
                let mut runs = self.runs.lock().unwrap();
                runs.push(id.to_string());
                runs.iter().filter(|r| *r == id).count()
            };
            if self.panic_always.contains(&id) || (runs == 1 && self.panic_once.contains(&id)) {
                panic!("job {id} panics on purpose");
            }
            self.completed
                .lock()
                .unwrap()
                .push((id.to_string(), job.envelope.recoveries));
            Ok(())
        }
    }

    fn queue_config() -> QueueConfig {
        QueueConfig {
            namespace: "test".into(),
            high_water_mark: 100,
            retry_after: Duration::from_secs(1),
            max_attempts: 5,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(50),
            visibility_timeout: Duration::from_secs(2),
            max_age: Duration::from_secs(3600),
            max_recoveries: 3,
            backend: crate::config::QueueBackend::Memory,
            backend_explicit: true,
            redis: crate::config::RedisMode::Standalone,
            min_replicas_acked: 0,
            replica_ack_timeout: Duration::from_millis(500),
            take_stuck_after: Duration::from_secs(30),
        }
    }

    async fn push(queue: &MemoryQueue, id: &str) {
        let job = NewJob::new(id.into(), id.into(), &serde_json::json!({}), 0).unwrap();
        queue
            .enqueue(&[job], Duration::from_secs(60))
            .await
            .unwrap();
    }

    /// The dead-letter list once it holds something (polled, with a deadline).
    async fn dead_letters(queue: &MemoryQueue) -> Vec<crate::queue::DeadLetter> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let dead = queue.dead_letters(10).await.unwrap();
            if !dead.is_empty() {
                return dead;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for a dead letter"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn until<F: Fn() -> bool>(what: &str, check: F) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn start<R: RunJob>(
        queue: &Arc<MemoryQueue>,
        runner: &Arc<R>,
    ) -> (WorkerPool, CancellationToken) {
        let stop = CancellationToken::new();
        let ctx = WorkerContext {
            queue: queue.clone(),
            jobs: runner.clone(),
            queue_config: queue_config(),
            takes: Arc::new(TakeWatch::new(1, Duration::from_secs(30))),
        };
        let pool = WorkerPool::spawn(ctx, 1, stop.clone(), CancellationToken::new());
        (pool, stop)
    }

    /// Held twice (its app paused), then run: records the held time its envelope carried.
    #[derive(Default)]
    struct HeldTwice {
        runs: Mutex<u32>,
        held_ms: Mutex<Option<u64>>,
    }

    #[async_trait::async_trait]
    impl RunJob for HeldTwice {
        async fn run(&self, job: &Job) -> Result<(), JobError> {
            let runs = {
                let mut runs = self.runs.lock().unwrap();
                *runs += 1;
                *runs
            };
            if runs <= 2 {
                return Err(JobError::Postponed {
                    delay: Duration::from_millis(30),
                    held: true,
                });
            }
            *self.held_ms.lock().unwrap() = Some(job.envelope.held_ms);
            Ok(())
        }
    }

    #[tokio::test]
    async fn time_held_through_no_fault_of_the_job_is_carried_and_not_counted_as_age() {
        let queue = Arc::new(MemoryQueue::new(100));
        let runner = Arc::new(HeldTwice::default());
        push(&queue, "held").await;
        let (pool, stop) = start(&queue, &runner);
        until("the held job to run", || {
            runner.held_ms.lock().unwrap().is_some()
        })
        .await;
        assert_eq!(*runner.held_ms.lock().unwrap(), Some(60));
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.join())
            .await
            .expect("the pool stops");

        // Two hours old, one and a half of them held: within a one-hour age limit.
        let mut job = Job::from_raw(
            NewJob::new("old".into(), "old".into(), &serde_json::json!({}), 0)
                .unwrap()
                .bytes,
        )
        .unwrap();
        job.envelope.enqueued_at_ms = crate::queue::now_ms() - 2 * 3600 * 1000;
        let hour = Duration::from_secs(3600);
        assert!(jobs::too_old(&job, hour));
        job.envelope.held_ms = 90 * 60 * 1000;
        assert!(!jobs::too_old(&job, hour));
    }

    #[tokio::test]
    async fn a_panicking_job_is_returned_and_the_worker_keeps_serving() {
        let queue = Arc::new(MemoryQueue::new(100));
        let runner = Arc::new(Faulty {
            panic_once: vec!["boom"],
            ..Faulty::default()
        });
        push(&queue, "boom").await;
        let (pool, stop) = start(&queue, &runner);
        let done = |id: &str| {
            runner
                .completed
                .lock()
                .unwrap()
                .iter()
                .any(|(c, _)| c == id)
        };
        until("the panicked job to run again", || done("boom")).await;
        // The one worker there is still serves.
        push(&queue, "after").await;
        until("the next job", || done("after")).await;
        let completed = runner.completed.lock().unwrap().clone();
        assert_eq!(
            completed,
            vec![("boom".to_string(), 1), ("after".to_string(), 0)]
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.join())
            .await
            .expect("the pool stops");
        assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
    }

    #[tokio::test]
    async fn a_job_that_always_panics_is_dead_lettered_after_max_recoveries() {
        let queue = Arc::new(MemoryQueue::new(100));
        let runner = Arc::new(Faulty {
            panic_always: vec!["poison"],
            ..Faulty::default()
        });
        push(&queue, "poison").await;
        let (pool, stop) = start(&queue, &runner);
        let dead = dead_letters(&queue).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].job.id, "poison");
        assert_eq!(dead[0].reason, "worker died 3 times while running it");
        assert_eq!(runner.runs.lock().unwrap().len(), 3);
        push(&queue, "after").await;
        until("the next job", || {
            runner
                .completed
                .lock()
                .unwrap()
                .iter()
                .any(|(c, _)| c == "after")
        })
        .await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.join())
            .await
            .expect("the pool stops");
    }

    /// Fails every run with `retry`, counting the runs.
    struct AlwaysFails {
        retry: Retry,
        runs: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl RunJob for AlwaysFails {
        async fn run(&self, _job: &Job) -> Result<(), JobError> {
            *self.runs.lock().unwrap() += 1;
            Err(JobError::Failed {
                error: "HTTP 500".into(),
                retry: self.retry,
            })
        }
    }

    /// Runs a job that always fails with `retry` until it is dead-lettered: its runs and why.
    async fn runs_until_dead(retry: Retry) -> (u32, String) {
        let queue = Arc::new(MemoryQueue::new(100));
        let runner = Arc::new(AlwaysFails {
            retry,
            runs: Mutex::new(0),
        });
        // Queued now, so the age limit is not what ends it.
        let job = NewJob::new(
            "unlucky".into(),
            "unlucky".into(),
            &serde_json::json!({}),
            crate::queue::now_ms(),
        )
        .unwrap();
        queue
            .enqueue(&[job], Duration::from_secs(60))
            .await
            .unwrap();
        let (pool, stop) = start(&queue, &runner);
        let dead = dead_letters(&queue).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), pool.join())
            .await
            .expect("the pool stops");
        let runs = *runner.runs.lock().unwrap();
        (runs, dead[0].reason.clone())
    }

    #[tokio::test]
    async fn sporadic_failures_get_three_times_the_attempts_of_plain_ones() {
        // queue_config() allows 5 attempts.
        let (runs, reason) = runs_until_dead(Retry::Later).await;
        assert_eq!(
            (runs, reason.as_str()),
            (5, "gave up after 5 attempts: HTTP 500")
        );
        let (runs, reason) = runs_until_dead(Retry::Soon).await;
        assert_eq!(
            (runs, reason.as_str()),
            (15, "gave up after 15 attempts: HTTP 500")
        );
    }

    #[test]
    fn backoff_stays_within_its_ceiling() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(300);
        for attempts in 0..40 {
            let ceiling = (base * 2u32.saturating_pow(attempts.min(30))).min(cap);
            for _ in 0..50 {
                assert!(backoff(base, cap, attempts) <= ceiling);
            }
        }
        assert!(backoff(base, cap, 100) <= cap);
    }
}
