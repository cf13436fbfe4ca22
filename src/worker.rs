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
use crate::queue::{ConsumerId, Job, Queue, QueueError};
use crate::retry::Retry;

/// What a worker needs, shared by all workers.
#[derive(Clone)]
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub jobs: Arc<Jobs>,
    pub queue_config: QueueConfig,
    /// When each worker last finished a take, for readiness.
    pub takes: Arc<TakeWatch>,
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
    },
    Dead {
        reason: String,
    },
}

/// The running pool.
pub struct WorkerPool {
    tasks: JoinSet<()>,
}

impl WorkerPool {
    /// Starts `count` workers and the task that promotes due retries. `stop` ends taking new
    /// jobs; `abandon` makes workers put unfinished jobs back on the queue at once.
    pub fn spawn(
        ctx: WorkerContext,
        count: usize,
        stop: CancellationToken,
        abandon: CancellationToken,
    ) -> Self {
        let mut tasks = JoinSet::new();
        let instance = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let consumers: Vec<ConsumerId> = (0..count)
            .map(|n| ConsumerId(format!("{instance}-w{n}")))
            .collect();
        for (n, consumer) in consumers.iter().enumerate() {
            tasks.spawn(run_worker(
                ctx.clone(),
                (n, consumer.clone()),
                stop.clone(),
                abandon.clone(),
            ));
        }
        tasks.spawn(maintain(
            ctx.queue.clone(),
            consumers,
            ctx.queue_config.visibility_timeout,
            stop,
        ));
        WorkerPool { tasks }
    }

    /// Waits until every worker has stopped.
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
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

/// The queue's housekeeping: promote due retries (every [`PROMOTE_EVERY`]), heartbeat this
/// process's consumers, and recover jobs of consumers that died (any replica may; the script is
/// atomic).
async fn maintain(
    queue: Arc<dyn Queue>,
    consumers: Vec<ConsumerId>,
    visibility: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(PROMOTE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let heartbeat_every = (visibility / 4).max(Duration::from_millis(200));
    let recover_every = (visibility / 2).max(Duration::from_millis(500));
    let mut last_heartbeat = tokio::time::Instant::now();
    let mut last_recovery = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
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
            match queue.recover_orphans(visibility).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("sfrelay_jobs_recovered_total").increment(n);
                    tracing::warn!(
                        jobs = n,
                        "recovered jobs of a consumer that stopped heartbeating"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "cannot recover orphaned jobs"),
            }
        }
    }
    // Keep the consumers alive while the workers drain; they unregister themselves.
    let _ = queue.heartbeat(&consumers).await;
}

async fn run_worker(
    ctx: WorkerContext,
    (n, consumer): (usize, ConsumerId),
    stop: CancellationToken,
    abandon: CancellationToken,
) {
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

/// Performs one attempt of a job and says how it ended.
async fn process(ctx: &WorkerContext, job: &Job) -> Outcome {
    match jobs::run(&ctx.jobs, job).await {
        Ok(()) => Outcome::Done,
        Err(JobError::Postponed { delay }) => Outcome::Postpone { delay },
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
    if attempts >= ctx.queue_config.max_attempts {
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
    let delay = backoff(
        ctx.queue_config.backoff_base,
        ctx.queue_config.backoff_cap,
        attempts,
    );
    Outcome::RetryAfter { delay, error }
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
            Some(Outcome::Postpone { delay }) => {
                tracing::debug!(wait_ms = delay.as_millis() as u64, "rate limited; put off");
                ctx.queue.retry_later(consumer, job, *delay, None).await
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
