//! The work a queued job asks for, one handler per task kind behind one shape: each takes the
//! shared [`Jobs`] context and answers `Ok` or a [`JobError`] that says whether the attempt
//! failed (and may be retried) or was only put off. The worker takes, runs, settles and backs
//! off; it knows no task kind.
//!
//! - an event: decide which routes fire, queue one job per route (`fan_out`);
//! - a route: enrich from Salesforce where asked, then the Slack effects ([`route`]);
//! - a CDC gap: fetch the records, then route them (`gap`);
//! - a scheduled route: query, then one digest or one route job per record ([`scheduled`]);
//! - a change event the subscriber could not read, replayed from its dead letter
//!   (`change_event`).
//!
//! Also here, because they make such jobs: the clock that fires scheduled routes
//! ([`clock`]) and reconciliation ([`reconcile`]).

mod change_event;
pub mod clock;
pub mod digest;
pub mod enrich;
mod fan_out;
mod gap;
mod picklists;
pub mod reconcile;
pub mod route;
pub mod scheduled;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::deliver::{DeliverError, OrgDirectory, Workspaces};
use crate::queue::{Job, Lane, Queue, QueueError};
use crate::retry::Retry;
use crate::routing::{Priority, Route, RouteSet};
use crate::salesforce::{SalesforceClient, SalesforceError};
use crate::store::{Store, StoreError};
use crate::task::Task;

/// What every handler may use, shared by all workers.
pub struct Jobs {
    pub queue: Arc<dyn Queue>,
    pub store: Arc<dyn Store>,
    pub routes: Arc<ArcSwap<RouteSet>>,
    pub orgs: Arc<OrgDirectory>,
    /// For enrichment, gap fetches and schedules; `None` when no org has API credentials.
    pub salesforce: Option<Arc<SalesforceClient>>,
    /// Slack, per workspace.
    pub slack: Arc<Workspaces>,
    /// Fields reconciliation compares, per org and object.
    pub watched: Arc<reconcile::Watched>,
    pub dedupe_window: Duration,
    /// A job older than this is not put off again for a rate limit.
    pub max_age: Duration,
    /// What one job may hold of Salesforce's answers.
    pub caps: Caps,
    /// Combines enrichment reads by record Id across events (`None`: each reads alone).
    pub enrich_batches: Option<Arc<enrich::batch::Batcher>>,
    /// The Pub/Sub topics each org subscribes to (for its health on the Home tab).
    pub topics: Arc<std::collections::HashMap<crate::event::SalesforceId, Vec<String>>>,
    /// When each org's last event was routed (for its health on the Home tab).
    pub last_events: Arc<crate::surfaces::health::LastEvents>,
    /// The fields record cards may show, per object.
    pub cards: Arc<crate::config::CardsConfig>,
    /// Answers to Slack interactions, through their `response_url`.
    pub replies: Arc<crate::actions::replies::Replies>,
    /// Salesforce Users by email, for who clicked (`None` without API credentials).
    pub users: Option<Arc<crate::salesforce::UserDirectory>>,
    /// Picklist values for the selects on cards (`None` without API credentials).
    pub picklists: Option<Arc<crate::salesforce::Picklists>>,
    /// People's own connections, Preferred and Default orgs.
    pub people: Arc<crate::people::People>,
}

impl Jobs {
    /// The Pub/Sub topics `org` subscribes to.
    pub fn topics_of(&self, org: &crate::event::SalesforceId) -> Vec<String> {
        self.topics.get(org).cloned().unwrap_or_default()
    }
}

/// What one job may hold of Salesforce's answers, so that one large answer is cut or refused
/// with a reason naming the cap long before it could exhaust the process's memory (every
/// worker may hold its cap at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Records a digest reads per run; beyond it the digest says "showing the first N of M".
    pub digest_max_records: usize,
    /// Bytes of a digest's template variables; beyond it the run is dead-lettered.
    pub digest_max_bytes: usize,
    /// Rows an enrichment query may return; beyond it the route job is dead-lettered.
    pub enrich_max_rows: usize,
    /// Bytes of an enrichment query's rows; beyond it the route job is dead-lettered.
    pub enrich_max_bytes: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            digest_max_records: 2_000,
            digest_max_bytes: 2 * 1024 * 1024,
            enrich_max_rows: 200,
            enrich_max_bytes: 512 * 1024,
        }
    }
}

/// Reads `soql`'s records page by page and stops as soon as more than `cap` are read, so a
/// query matching millions of rows costs at most one page beyond the cap. Answers the records
/// read (more than `cap` only when there were more) and how many the query matched.
async fn read_capped(
    client: &SalesforceClient,
    org: &crate::event::SalesforceId,
    soql: &crate::salesforce::Soql,
    cap: usize,
) -> Result<(Vec<crate::salesforce::Record>, u64), SalesforceError> {
    let mut page = client.query_page(org, soql).await?;
    let total = page.total_size;
    let mut records = std::mem::take(&mut page.records);
    while records.len() <= cap && !page.done {
        let Some(next) = page.next_records_url.take() else {
            break;
        };
        page = client.query_more(org, &next).await?;
        records.append(&mut page.records);
    }
    let total = total.max(records.len() as u64);
    Ok((records, total))
}

/// Why a piece of work could not be done, before it is put in a job's terms.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    #[error("Salesforce write: {0}")]
    Write(crate::salesforce::WriteError),
    /// The queue did not take work that follows (a gate's timer, approved actions).
    #[error("queue: {0}")]
    Queue(QueueError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cannot succeed as things stand (route gone, no API credentials, a bad query…).
    #[error("{0}")]
    Permanent(String),
    /// The org's API allowance runs short: this work waits (not counted as an attempt, and
    /// not aged: it is not the job's own doing).
    #[error(transparent)]
    OverBudget(#[from] crate::salesforce::budget::OverBudget),
    /// The event's enrichment is being read together with other events': the job is put off
    /// until that query has answered.
    #[error("the enrichment is being read with other events' (back in {} ms)", wait.as_millis())]
    Batching { wait: Duration },
    /// A once-per-record route's first delivery for this record is under way for another
    /// event: put off until it lands (then this one is not needed) or is given up.
    #[error("the route's first delivery for this record is under way (event {by})")]
    Held { by: String },
}

/// How often a job held back by another event's first delivery looks again.
const HELD_POLL: Duration = Duration::from_millis(500);

impl WorkError {
    pub fn retry(&self) -> Retry {
        match self {
            WorkError::Deliver(e) => e.retry(),
            WorkError::Salesforce(e) => e.retry(),
            WorkError::Write(e) => e.retry(),
            WorkError::Store(_)
            | WorkError::Held { .. }
            | WorkError::Batching { .. }
            | WorkError::OverBudget(_)
            | WorkError::Queue(_) => Retry::Later,
            WorkError::Permanent(_) => Retry::Never,
        }
    }

    /// Whether the job waits on something that is not its own doing (its Slack app is paused,
    /// the org's API allowance runs short): it waits, whatever the age limit says.
    pub fn is_paused(&self) -> bool {
        matches!(self, WorkError::Deliver(e) if e.is_paused())
            || matches!(self, WorkError::OverBudget(_))
    }

    /// When the job may go again without counting as a failed attempt.
    pub fn postpone_for(&self) -> Option<Duration> {
        match self {
            WorkError::Deliver(e) => e.postpone_for(),
            WorkError::Salesforce(e) => e.retry_after(),
            WorkError::Write(crate::salesforce::WriteError::Salesforce(e)) => e.retry_after(),
            WorkError::Write(_) => None,
            WorkError::Held { .. } => Some(HELD_POLL),
            WorkError::Batching { wait } => Some(*wait),
            WorkError::OverBudget(_) => Some(crate::salesforce::budget::HELD_FOR),
            WorkError::Store(_) | WorkError::Permanent(_) | WorkError::Queue(_) => None,
        }
    }
}

/// How long a job waits when the queue could not take the work it leads to.
const QUEUE_BUSY_WAIT: Duration = Duration::from_secs(1);

/// How an attempt at a job fell short.
#[derive(Debug, PartialEq)]
pub enum JobError {
    /// A failed attempt: retried with backoff unless `retry` says never.
    Failed { error: String, retry: Retry },
    /// Not a failure: a limit has no room until `delay` (exactly Slack's `Retry-After` after
    /// a 429). The attempt is not counted. `held`: the wait is not the job's own doing (its
    /// Slack app is paused, the queue cannot take its work), so it does not age the job either.
    Postponed { delay: Duration, held: bool },
}

impl JobError {
    /// A failure that no retry can mend.
    pub fn dead(reason: String) -> Self {
        JobError::Failed {
            error: reason,
            retry: Retry::Never,
        }
    }

    /// A failure worth repeating (the queue or the store did not answer).
    pub fn later(error: String) -> Self {
        JobError::Failed {
            error,
            retry: Retry::Later,
        }
    }

    /// The queue did not take work that follows from a job already accepted (its route jobs, a
    /// schedule's records): the job waits and goes again, not counted as an attempt and never
    /// dead-lettered for it, however old it grows — back-pressure and a Redis outage are not
    /// the job's fault. Only bytes that cannot be queued at all are a failure.
    fn queueing(what: &str, e: QueueError) -> Self {
        match e {
            QueueError::Corrupt(_) => JobError::dead(format!("{what}: {e}")),
            QueueError::Full { .. }
            | QueueError::Unavailable(_)
            | QueueError::ReplicasShort { .. } => {
                tracing::warn!(error = %e, "{what}: the queue cannot take it yet; put off");
                JobError::Postponed {
                    delay: QUEUE_BUSY_WAIT,
                    held: true,
                }
            }
        }
    }

    /// `e` while doing `what`: put off when only a limit stands in the way.
    pub(crate) fn of(what: &str, e: WorkError) -> Self {
        match e.postpone_for() {
            Some(delay) => JobError::Postponed {
                delay,
                held: e.is_paused(),
            },
            None => JobError::Failed {
                error: format!("{what}: {e}"),
                retry: e.retry(),
            },
        }
    }
}

/// Performs one attempt of a job.
pub async fn run(jobs: &Jobs, job: &Job) -> Result<(), JobError> {
    let task: Task = serde_json::from_str(job.envelope.payload.get())
        .map_err(|e| JobError::dead(format!("payload is not a task: {e}")))?;
    match task {
        Task::Event { event } => fan_out::run(jobs, &event, false).await,
        Task::Gap { gap } => gap::run(jobs, &gap).await,
        Task::ChangeEvent { change } => change_event::run(jobs, &change).await,
        Task::Command { command } => crate::surfaces::command::run(jobs, &command).await,
        Task::SlackEvent { event } => crate::surfaces::run_event(jobs, &event).await,
        Task::GateTimer { route, org, record } => {
            crate::actions::gate::timer(jobs, &route, &org, &record).await
        }
        Task::Interaction { interaction } => {
            crate::actions::run(jobs, &job.envelope.id, &interaction).await
        }
        Task::Scheduled {
            route,
            org,
            tick_ms,
        } => {
            unless_paused(jobs, &org)?;
            scheduled::run(jobs, &route, &org, tick_ms).await
        }
        Task::Route { route, event } => {
            unless_paused(jobs, &event.org_id)?;
            route::run(jobs, job, &route, &event).await
        }
    }
}

/// Puts off work that would post as a paused Slack app before it spends a Salesforce query.
fn unless_paused(jobs: &Jobs, org: &crate::event::SalesforceId) -> Result<(), JobError> {
    match jobs.slack.paused_for(org) {
        Some(delay) => Err(JobError::Postponed { delay, held: true }),
        None => Ok(()),
    }
}

/// The route called `name` in the running set; gone after a reload is permanent.
fn route_named<'a>(routes: &'a RouteSet, name: &str) -> Result<&'a Route, WorkError> {
    routes
        .get(name)
        .ok_or_else(|| WorkError::Permanent(format!("route {name:?} no longer exists (reloaded?)")))
}

/// The lane a route's jobs wait in.
pub fn lane_of(priority: Priority) -> Lane {
    match priority {
        Priority::High => Lane::High,
        Priority::Normal => Lane::Normal,
        Priority::Low => Lane::Low,
    }
}

/// Whether the job has outlived the age limit (counted from its first queueing, less the time
/// it was held through no fault of its own).
pub fn too_old(job: &Job, max_age: Duration) -> bool {
    let age_ms = crate::queue::now_ms().saturating_sub(job.envelope.enqueued_at_ms);
    let age_ms = u64::try_from(age_ms)
        .unwrap_or(0)
        .saturating_sub(job.envelope.held_ms);
    u128::from(age_ms) > max_age.as_millis()
}
