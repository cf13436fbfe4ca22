//! The worker pool: tokio tasks in the same process that take jobs, decide what to send, post
//! to Slack and settle each job (ack, retry later, or dead-letter). Nothing is dropped: a job
//! leaves a worker's in-flight list only by one of those moves.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use std::collections::HashMap;

use crate::config::QueueConfig;
use crate::deliver::Deliverers;
use crate::deliver::ratelimit;
use crate::deliver::store::Place;
use crate::event::Event;
use crate::queue::{ConsumerId, Job, Lane, NewJob, Queue, QueueError};
use crate::routing::Priority;
use crate::slack::Retry;
use crate::task::{Task, TaskRef};

/// What a worker needs, shared by all workers.
#[derive(Clone)]
pub struct WorkerContext {
    pub queue: Arc<dyn Queue>,
    pub deliverer: Arc<Deliverers>,
    pub queue_config: QueueConfig,
    pub dedupe_window: Duration,
    /// Fields reconciliation compares, per org and object.
    pub watched: Arc<crate::reconcile::Watched>,
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
        for consumer in &consumers {
            tasks.spawn(run_worker(
                ctx.clone(),
                consumer.clone(),
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
    consumer: ConsumerId,
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
        let job = match ctx.queue.take(&consumer, Duration::from_secs(1)).await {
            Ok(Some(job)) => job,
            Ok(None) => continue,
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
            settle(&ctx, &consumer, &job, outcome, &abandon).await;
        }
        .instrument(span)
        .await;
    }
    if let Err(e) = ctx.queue.unregister(&consumer).await {
        tracing::debug!(error = %e, "cannot unregister consumer");
    }
}

/// Performs one attempt of a job.
async fn process(ctx: &WorkerContext, job: &Job) -> Outcome {
    let task: Task = match serde_json::from_str(job.envelope.payload.get()) {
        Ok(task) => task,
        Err(e) => {
            return Outcome::Dead {
                reason: format!("payload is not a task: {e}"),
            };
        }
    };
    match task {
        Task::Event { event } => fan_out(ctx, job, &event, false).await,
        Task::Gap { gap } => match ctx.deliverer.for_org(&gap.org_id).fetch_gap(&gap).await {
            Ok(events) => {
                for event in &events {
                    let outcome = fan_out(ctx, job, event, true).await;
                    if outcome != Outcome::Done {
                        return outcome;
                    }
                }
                Outcome::Done
            }
            Err(e) => match e.postpone_for() {
                Some(delay) => Outcome::Postpone { delay },
                None => failure(ctx, job, &format!("CDC gap: {e}"), e.retry()),
            },
        },
        Task::Scheduled {
            route,
            org,
            tick_ms,
        } => match ctx.deliverer.run_scheduled(&route, &org, tick_ms).await {
            Ok(events) if events.is_empty() => Outcome::Done,
            Ok(events) => queue_route_jobs(ctx, job, &route, &events).await,
            Err(e) => match e.postpone_for() {
                Some(delay) => Outcome::Postpone { delay },
                None => failure(
                    ctx,
                    job,
                    &format!("scheduled route {route}: {e}"),
                    e.retry(),
                ),
            },
        },
        Task::Route { route, event } => match ratelimit::placed(
            place_in_line(job.envelope.lane),
            ctx.deliverer
                .for_org(&event.org_id)
                .deliver_route(&event, &route),
        )
        .await
        {
            Ok(()) => Outcome::Done,
            Err(e) => match e.postpone_for() {
                Some(_) if too_old(ctx, job) => Outcome::Dead {
                    reason: format!(
                        "route {route}: older than the {}s age limit and still rate limited: {e}",
                        ctx.queue_config.max_age.as_secs()
                    ),
                },
                Some(delay) => Outcome::Postpone { delay },
                None => failure(ctx, job, &format!("route {route}: {e}"), e.retry()),
            },
        },
    }
}

/// The lane a route's jobs wait in.
fn lane_of(priority: Priority) -> Lane {
    match priority {
        Priority::High => Lane::High,
        Priority::Normal => Lane::Normal,
        Priority::Low => Lane::Low,
    }
}

/// High priority work waits for a busy channel ahead of the rest.
fn place_in_line(lane: Lane) -> Place {
    match lane {
        Lane::High => Place::Front,
        Lane::Normal | Lane::Low => Place::Back,
    }
}

/// Routes an event and queues one job per fired route, in that route's lane. The jobs are
/// deduplicated by (event, route), so repeating this after a crash queues nothing twice.
async fn fan_out(ctx: &WorkerContext, job: &Job, event: &Event, from_gap: bool) -> Outcome {
    let routes = ctx.deliverer.routes.load_full();
    let users = HashMap::new();
    let mut fired = routes.fired(
        event,
        &ctx.deliverer
            .context(event, &users, &serde_json::Value::Null),
    );
    if from_gap {
        // A record fetched for a gap event is routed only where the route asked for it.
        fired.retain(|r| r.on_gap == crate::routing::OnGap::Fetch);
    }
    if let Err(e) =
        crate::reconcile::note_seen(ctx.deliverer.store.as_ref(), &ctx.watched, event).await
    {
        return failure(
            ctx,
            job,
            &format!("cannot note the record as seen: {e}"),
            Retry::Later,
        );
    }
    if fired.is_empty() {
        tracing::info!("no route fired");
        return Outcome::Done;
    }
    let now = crate::queue::now_ms();
    let mut jobs = Vec::with_capacity(fired.len());
    for route in &fired {
        let task = TaskRef::Route {
            route: &route.name,
            event,
        };
        let lane = lane_of(route.priority);
        match NewJob::with_lane(
            format!("{}/{}", event.id, route.name),
            format!("r:{}:{}", event.id, route.name),
            &task,
            now,
            lane,
        ) {
            Ok(new) => jobs.push(new.ahead()),
            Err(e) => {
                return Outcome::Dead {
                    reason: format!("cannot queue route {}: {e}", route.name),
                };
            }
        }
    }
    let names: Vec<&str> = fired.iter().map(|r| r.name.as_str()).collect();
    match ctx.queue.enqueue(&jobs, ctx.dedupe_window).await {
        Ok(_) => {
            tracing::info!(routes = ?names, "routes fired");
            Outcome::Done
        }
        Err(e) => failure(ctx, job, &format!("cannot queue routes: {e}"), Retry::Later),
    }
}

/// Queues one route job per record of a scheduled route (deduplicated, so a repeated run of
/// the same tick queues nothing twice).
async fn queue_route_jobs(
    ctx: &WorkerContext,
    job: &Job,
    route: &str,
    events: &[Event],
) -> Outcome {
    let routes = ctx.deliverer.routes.load_full();
    let lane = routes
        .get(route)
        .map_or(Lane::Normal, |r| lane_of(r.priority));
    let now = crate::queue::now_ms();
    let mut jobs = Vec::with_capacity(events.len());
    for event in events {
        let task = TaskRef::Route { route, event };
        match NewJob::with_lane(
            event.id.clone(),
            format!("r:{}:{route}", event.id),
            &task,
            now,
            lane,
        ) {
            Ok(new) => jobs.push(new),
            Err(e) => {
                return Outcome::Dead {
                    reason: format!("cannot queue {route}: {e}"),
                };
            }
        }
    }
    for chunk in jobs.chunks(200) {
        if let Err(e) = ctx.queue.enqueue(chunk, ctx.dedupe_window).await {
            return failure(
                ctx,
                job,
                &format!("cannot queue {route}: {e}"),
                Retry::Later,
            );
        }
    }
    tracing::info!(%route, records = events.len(), "scheduled route queued one delivery per record");
    Outcome::Done
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
    if too_old(ctx, job) {
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

/// Whether the job has outlived the age limit (counted from its first queueing).
fn too_old(ctx: &WorkerContext, job: &Job) -> bool {
    let age_ms = crate::queue::now_ms().saturating_sub(job.envelope.enqueued_at_ms);
    u128::try_from(age_ms).unwrap_or(0) > ctx.queue_config.max_age.as_millis()
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
