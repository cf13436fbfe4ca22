//! A fired route's job: claim the record for a once-per-record route, enrich from Salesforce
//! where the route asks, then the Slack effects in the org's own workspace.

use std::time::Duration;

use serde_json::Value;

use super::{JobError, Jobs, WorkError, enrich, too_old};
use crate::deliver::Wait;
use crate::event::Event;
use crate::keys::Key;
use crate::queue::{Job, Lane};
use crate::retry::Retry;
use crate::routing::{Dedupe, Route, Target};
use crate::slack::ratelimit;
use crate::store::{Place, StoreError};

/// How long after being queued a thread reply or update waits for an announcement that no
/// queued job promises: long enough for the announcing event's own routing, which may run on
/// another worker at the same moment, to say that it is coming.
const JUST_QUEUED: Duration = Duration::from_secs(2);

pub(super) async fn run(
    jobs: &Jobs,
    job: &Job,
    route: &str,
    event: &Event,
) -> Result<(), JobError> {
    let age_ms = crate::queue::now_ms().saturating_sub(job.envelope.enqueued_at_ms);
    let wait = Wait {
        just_queued: u128::try_from(age_ms).unwrap_or(0) < JUST_QUEUED.as_millis(),
        max_age: jobs.max_age,
    };
    let delivered = ratelimit::placed(
        place_in_line(job.envelope.lane),
        deliver_with(jobs, route, event, Value::Null, wait),
    )
    .await;
    let given_up = match &delivered {
        Ok(()) => true,
        Err(e) if e.postpone_for().is_some() => too_old(job, jobs.max_age),
        Err(e) => e.retry() == Retry::Never,
    };
    if given_up {
        // Done, or never to be: whatever waits for this job's announcement waits no more.
        if let Err(e) = announced_or_not(jobs, route, event).await {
            tracing::warn!(route = %route, error = %e, "cannot clear the note that an announcement is coming; it expires");
        }
    }
    match delivered {
        Err(e) if e.postpone_for().is_some() && !e.is_paused() && too_old(job, jobs.max_age) => {
            Err(JobError::dead(format!(
                "route {route}: older than the {}s age limit and still put off: {e}",
                jobs.max_age.as_secs()
            )))
        }
        other => other.map_err(|e| JobError::of(&format!("route {route}"), e)),
    }
}

/// High priority work waits for a busy channel ahead of the rest.
fn place_in_line(lane: Lane) -> Place {
    match lane {
        Lane::High => Place::Front,
        Lane::Normal | Lane::Low => Place::Back,
    }
}

/// Whether a route's own posts (or rooms) announce the record, for later threads and updates.
fn announces(route: &Route) -> bool {
    route
        .actions
        .iter()
        .any(|a| matches!(a.target, Target::Post { .. } | Target::Room { .. }))
}

/// Notes, for each fired route that announces `event`'s record, that an announcement is on its
/// way, before the route jobs are queued: a thread reply or update of the record that runs
/// first then waits for it instead of finding nothing. The first event to note it holds the
/// note until its job is done or given up.
pub(super) async fn expect_announcements(
    jobs: &Jobs,
    fired: &[&Route],
    event: &Event,
) -> Result<(), StoreError> {
    for route in fired.iter().filter(|r| announces(r)) {
        let key = Key::announcing(&route.name, &event.org_id, &event.record_id, jobs.max_age);
        jobs.store.claim(key.as_str(), &event.id, key.ttl()).await?;
    }
    Ok(())
}

/// Lets go of `event`'s note that route `name` will announce its record.
async fn announced_or_not(jobs: &Jobs, name: &str, event: &Event) -> Result<(), StoreError> {
    let key = Key::announcing(name, &event.org_id, &event.record_id, jobs.max_age);
    jobs.store.release(key.as_str(), &event.id).await
}

/// Carries out route `name` for `event` with `extra` template variables (a digest's
/// records); the ledger skips actions already done.
pub async fn deliver(
    jobs: &Jobs,
    name: &str,
    event: &Event,
    extra: Value,
) -> Result<(), WorkError> {
    let wait = Wait {
        just_queued: false,
        max_age: jobs.max_age,
    };
    deliver_with(jobs, name, event, extra, wait).await
}

async fn deliver_with(
    jobs: &Jobs,
    name: &str,
    event: &Event,
    extra: Value,
    wait: Wait,
) -> Result<(), WorkError> {
    let routes = jobs.routes.load_full();
    let route = super::route_named(&routes, name)?;
    let once = route.dedupe == Dedupe::OncePerRecord;
    if once && !first_for_record(jobs, route, event).await? {
        return Ok(());
    }
    let delivered = async {
        let mut extra = extra;
        if let Some(wanted) = &route.enrich {
            let need = enrich::need_of(route.priority);
            extra = enrich::merge(extra, enrich::query(jobs, wanted, need, event).await?);
        }
        extra = super::picklists::merge(jobs, &routes, route, event, extra).await;
        match &route.gate {
            Some(gate) => {
                crate::actions::gate::deliver_gated(
                    jobs, &routes, route, gate, event, &extra, wait,
                )
                .await?;
            }
            None => {
                jobs.slack
                    .for_org(&event.org_id)
                    .deliver(&routes, route, event, &extra, wait)
                    .await?;
            }
        }
        Ok::<(), WorkError>(())
    }
    .await;
    if once {
        settle_once(jobs, route, event, &delivered).await?;
    }
    delivered
}

/// For a once-per-record route: whether `event` is the one to deliver it for its record. Not
/// when another event's delivery has landed (the route fired for this record, for good); put
/// off ([`WorkError::Held`]) while another event's first delivery is under way; otherwise
/// this event holds the record until its own delivery lands or is given up.
async fn first_for_record(jobs: &Jobs, route: &Route, event: &Event) -> Result<bool, WorkError> {
    let name = route.name.as_str();
    let fired = Key::once(name, &event.org_id, &event.record_id, route.dedupe_days);
    if let Some(first) = jobs.store.get(fired.as_str()).await? {
        if first == event.id {
            return Ok(true); // this event's own retry: the ledger skips what is done
        }
        tracing::info!(route = %name, first_event = %first, "route already fired for this record; not again");
        return Ok(false);
    }
    let pending = Key::once_pending(name, &event.org_id, &event.record_id, jobs.max_age);
    match jobs
        .store
        .claim(pending.as_str(), &event.id, pending.ttl())
        .await?
    {
        Some(holder) if holder != event.id => {
            tracing::info!(route = %name, first_event = %holder, "another event's delivery for this record is under way; waiting for it");
            Err(WorkError::Held { by: holder })
        }
        _ => Ok(true),
    }
}

/// After an attempt of a once-per-record route: once any of its effects has landed (the
/// ledger says so, even when a later action failed), the route has fired for this record for
/// good; when nothing landed and Slack surely posted nothing, the record is let go, so the
/// next event (or this one, replayed) delivers it. A failure that may have posted keeps the
/// hold: this event's retry finds out, through the ledger and its pending post note.
async fn settle_once(
    jobs: &Jobs,
    route: &Route,
    event: &Event,
    delivered: &Result<(), WorkError>,
) -> Result<(), WorkError> {
    let name = route.name.as_str();
    let pending = Key::once_pending(name, &event.org_id, &event.record_id, jobs.max_age);
    let mut landed = false;
    for index in 0..route.actions.len() {
        let done = Key::done(&event.id, name, index);
        if jobs.store.get(done.as_str()).await?.is_some() {
            landed = true;
            break;
        }
    }
    if landed {
        let fired = Key::once(name, &event.org_id, &event.record_id, route.dedupe_days);
        jobs.store
            .set(fired.as_str(), &event.id, fired.ttl())
            .await?;
        jobs.store.release(pending.as_str(), &event.id).await?;
        return Ok(());
    }
    let may_have_posted = match delivered {
        Err(WorkError::Deliver(e)) => e.may_have_posted(),
        _ => false,
    };
    if !may_have_posted {
        jobs.store.release(pending.as_str(), &event.id).await?;
    }
    Ok(())
}
