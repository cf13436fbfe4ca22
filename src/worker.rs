//! The worker pool: tokio tasks in the same process that take jobs, decide what to send, post
//! to Slack and settle each job (ack, retry later, or dead-letter). Nothing is dropped: a job
//! leaves a worker's in-flight list only by one of those moves.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::QueueConfig;
use crate::event::Event;
use crate::queue::{ConsumerId, Job, Queue, QueueError};
use crate::routing::{Action, Routes};
use crate::slack::{Retry, SlackError, SlackSink};

/// What a worker needs, shared by all workers.
#[derive(Clone)]
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub routes: Arc<dyn Routes>,
    pub slack: SlackSink,
    pub queue_config: QueueConfig,
}

/// How one attempt at a job ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    RetryAfter { delay: Duration, error: String },
    Dead { reason: String },
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
        for n in 0..count {
            let consumer = ConsumerId(format!("{instance}-w{n}"));
            tasks.spawn(run_worker(
                ctx.clone(),
                consumer,
                stop.clone(),
                abandon.clone(),
            ));
        }
        tasks.spawn(promote_due(ctx.queue.clone(), stop));
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

async fn promote_due(queue: Arc<dyn Queue>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match queue.promote_due().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(promoted = n, "due retries back on the ready list"),
            Err(e) => tracing::debug!(error = %e, "cannot promote due retries"),
        }
    }
}

async fn run_worker(
    ctx: WorkerContext,
    consumer: ConsumerId,
    stop: CancellationToken,
    abandon: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        // A take is never cancelled half-way: the job could be moved and then forgotten.
        let job = match ctx.queue.take(&consumer, Duration::from_secs(1)).await {
            Ok(Some(job)) => job,
            Ok(None) => continue,
            Err(e) => {
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
            settle(&ctx, &consumer, &job, outcome, &abandon).await;
        }
        .instrument(span)
        .await;
    }
}

/// Performs one attempt: decode, plan, post.
async fn process(ctx: &WorkerContext, job: &Job) -> Outcome {
    let event: Event = match serde_json::from_str(job.envelope.payload.get()) {
        Ok(event) => event,
        Err(e) => {
            return Outcome::Dead {
                reason: format!("payload is not an event: {e}"),
            };
        }
    };
    let plan = ctx.routes.plan(&event);
    if plan.actions.is_empty() {
        tracing::info!("no route fired");
        return Outcome::Done;
    }
    for action in &plan.actions {
        match action {
            Action::PostMessage { route, message } => match ctx.slack.post_message(message).await {
                Ok(posted) => {
                    let latency = (chrono::Utc::now() - event.received_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics::histogram!("sfrelay_delivery_latency_seconds")
                        .record(latency.as_secs_f64());
                    tracing::info!(%route, channel = %posted.channel, ts = %posted.ts, latency_ms = latency.as_millis() as u64, "posted to Slack");
                }
                Err(e) => return failure(ctx, job, route, e),
            },
        }
    }
    Outcome::Done
}

/// Turns a Slack failure into a retry (with backoff, or exactly `Retry-After`) or a dead letter.
fn failure(ctx: &WorkerContext, job: &Job, route: &str, e: SlackError) -> Outcome {
    let error = format!("route {route}: {e}");
    if e.retry() == Retry::Never {
        return Outcome::Dead { reason: error };
    }
    let attempts = job.envelope.attempts + 1;
    if attempts >= ctx.queue_config.max_attempts {
        return Outcome::Dead {
            reason: format!("gave up after {attempts} attempts: {error}"),
        };
    }
    let delay = match &e {
        SlackError::RateLimited { retry_after } => {
            metrics::counter!("sfrelay_rate_limit_waits_total", "source" => "slack_429")
                .increment(1);
            *retry_after
        }
        _ => backoff(
            ctx.queue_config.backoff_base,
            ctx.queue_config.backoff_cap,
            attempts,
        ),
    };
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
                ctx.queue.retry_later(consumer, job, *delay, error).await
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
