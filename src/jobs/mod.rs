//! The work a queued job asks for, one handler per task kind behind one shape: each takes the
//! shared [`Jobs`] context and answers `Ok` or a [`JobError`] that says whether the attempt
//! failed (and may be retried) or was only put off. The worker takes, runs, settles and backs
//! off; it knows no task kind.
//!
//! - an event: decide which routes fire, queue one job per route (`fan_out`);
//! - a route: enrich from Salesforce where asked, then the Slack effects ([`route`]);
//! - a CDC gap: fetch the records, then route them (`gap`);
//! - a scheduled route: query, then one digest or one route job per record ([`scheduled`]).
//!
//! Also here, because they make such jobs: the clock that fires scheduled routes
//! ([`clock`]) and reconciliation ([`reconcile`]).

pub mod clock;
pub mod digest;
mod enrich;
mod fan_out;
mod gap;
pub mod reconcile;
pub mod route;
pub mod scheduled;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::deliver::{DeliverError, OrgDirectory, Workspaces};
use crate::queue::{Job, Lane, Queue};
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
}

/// Why a piece of work could not be done, before it is put in a job's terms.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cannot succeed as things stand (route gone, no API credentials, a bad query…).
    #[error("{0}")]
    Permanent(String),
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
            WorkError::Store(_) | WorkError::Held { .. } => Retry::Later,
            WorkError::Permanent(_) => Retry::Never,
        }
    }

    /// When the job may go again without counting as a failed attempt.
    pub fn postpone_for(&self) -> Option<Duration> {
        match self {
            WorkError::Deliver(e) => e.postpone_for(),
            WorkError::Salesforce(e) => e.retry_after(),
            WorkError::Held { .. } => Some(HELD_POLL),
            WorkError::Store(_) | WorkError::Permanent(_) => None,
        }
    }
}

/// How an attempt at a job fell short.
#[derive(Debug, PartialEq)]
pub enum JobError {
    /// A failed attempt: retried with backoff unless `retry` says never.
    Failed { error: String, retry: Retry },
    /// Not a failure: a limit has no room until `delay` (exactly Slack's `Retry-After` after
    /// a 429). The attempt is not counted.
    Postponed { delay: Duration },
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

    /// `e` while doing `what`: put off when only a limit stands in the way.
    fn of(what: &str, e: WorkError) -> Self {
        match e.postpone_for() {
            Some(delay) => JobError::Postponed { delay },
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
        Task::Scheduled {
            route,
            org,
            tick_ms,
        } => scheduled::run(jobs, &route, &org, tick_ms).await,
        Task::Route { route, event } => route::run(jobs, job, &route, &event).await,
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

/// Whether the job has outlived the age limit (counted from its first queueing).
pub fn too_old(job: &Job, max_age: Duration) -> bool {
    let age_ms = crate::queue::now_ms().saturating_sub(job.envelope.enqueued_at_ms);
    u128::try_from(age_ms).unwrap_or(0) > max_age.as_millis()
}
