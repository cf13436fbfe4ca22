//! A fired route's job: claim the record for a once-per-record route, enrich from Salesforce
//! where the route asks, then the Slack effects in the org's own workspace.

use serde_json::Value;

use super::{JobError, Jobs, WorkError, enrich, too_old};
use crate::event::Event;
use crate::keys::Key;
use crate::queue::{Job, Lane};
use crate::routing::Dedupe;
use crate::slack::ratelimit;
use crate::store::Place;

pub(super) async fn run(
    jobs: &Jobs,
    job: &Job,
    route: &str,
    event: &Event,
) -> Result<(), JobError> {
    let delivered = ratelimit::placed(
        place_in_line(job.envelope.lane),
        deliver(jobs, route, event, Value::Null),
    )
    .await;
    match delivered {
        Err(e) if e.postpone_for().is_some() && !e.is_paused() && too_old(job, jobs.max_age) => {
            Err(JobError::dead(format!(
                "route {route}: older than the {}s age limit and still rate limited: {e}",
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

/// Carries out route `name` for `event` with `extra` template variables (a digest's
/// records); the ledger skips actions already done.
pub async fn deliver(
    jobs: &Jobs,
    name: &str,
    event: &Event,
    extra: Value,
) -> Result<(), WorkError> {
    let routes = jobs.routes.load_full();
    let route = super::route_named(&routes, name)?;
    if route.dedupe == Dedupe::OncePerRecord {
        let key = Key::once(name, &event.org_id, &event.record_id, route.dedupe_days);
        if let Some(holder) = jobs.store.claim(key.as_str(), &event.id, key.ttl()).await?
            && holder != event.id
        {
            tracing::info!(route = %name, first_event = %holder, "route already fired for this record; not again");
            return Ok(());
        }
    }
    let mut extra = extra;
    if let Some(wanted) = &route.enrich {
        extra = enrich::merge(extra, enrich::query(jobs, wanted, event).await?);
    }
    jobs.slack
        .for_org(&event.org_id)
        .deliver(&routes, route, event, &extra)
        .await?;
    Ok(())
}
