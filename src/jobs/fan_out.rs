//! An event's job: decide which routes fire and queue one job per fired route, in that
//! route's lane, so each route is its own unit of work, priority and failure.

use std::collections::HashMap;

use super::{JobError, Jobs, lane_of};
use crate::event::Event;
use crate::keys::DedupeKey;
use crate::queue::NewJob;
use crate::routing::OnGap;
use crate::task::TaskRef;

/// Routes `event` (a record fetched for a gap event only where the route asked for it) and
/// queues its route jobs. The jobs are deduplicated by (event, route), so repeating this after
/// a crash queues nothing twice.
pub(super) async fn run(jobs: &Jobs, event: &Event, from_gap: bool) -> Result<(), JobError> {
    let routes = jobs.routes.load_full();
    let users = HashMap::new();
    let mut fired = routes.fired(
        event,
        &jobs.orgs.context(event, &users, &serde_json::Value::Null),
    );
    if from_gap {
        fired.retain(|r| r.on_gap == OnGap::Fetch);
    }
    // A change made from a card, coming back: the card already shows it. Only looked for
    // when some route fired, so events no route wants cost no store read.
    let skip = if fired.is_empty() {
        Vec::new()
    } else {
        crate::actions::echo::routes_to_skip(jobs.store.as_ref(), event)
            .await
            .map_err(|e| JobError::later(format!("cannot look for sfrelay's own write: {e}")))?
    };
    if !skip.is_empty() {
        let skipped: Vec<&str> = fired
            .iter()
            .filter(|r| skip.contains(&r.name))
            .map(|r| r.name.as_str())
            .collect();
        if !skipped.is_empty() {
            tracing::info!(routes = ?skipped, "sfrelay's own write from their card; these routes skip it");
        }
        fired.retain(|r| !skip.contains(&r.name));
    }
    jobs.last_events
        .note(jobs.store.as_ref(), &event.org_id)
        .await;
    if let Err(e) = super::reconcile::note_seen(jobs.store.as_ref(), &jobs.watched, event).await {
        return Err(JobError::later(format!(
            "cannot note the record as seen: {e}"
        )));
    }
    if fired.is_empty() {
        tracing::info!("no route fired");
        return Ok(());
    }
    super::enrich::prefetch(jobs, &fired, event);
    if let Err(e) = super::route::expect_announcements(jobs, &fired, event).await {
        return Err(JobError::later(format!(
            "cannot note the announcements to come: {e}"
        )));
    }
    let now = crate::queue::now_ms();
    let mut new = Vec::with_capacity(fired.len());
    for route in &fired {
        let task = TaskRef::Route {
            route: &route.name,
            event,
        };
        let job = NewJob::with_lane(
            format!("{}/{}", event.id, route.name),
            DedupeKey::route(&event.id, &route.name).into(),
            &task,
            now,
            lane_of(route.priority),
        )
        .map_err(|e| JobError::dead(format!("cannot queue route {}: {e}", route.name)))?;
        new.push(job.ahead());
    }
    let names: Vec<&str> = fired.iter().map(|r| r.name.as_str()).collect();
    // Work already accepted: the high-water mark that refuses ingest does not apply.
    jobs.queue
        .enqueue_internal(&new, jobs.dedupe_window)
        .await
        .map_err(|e| JobError::queueing("cannot queue routes", e))?;
    tracing::info!(routes = ?names, "routes fired");
    Ok(())
}
