//! A scheduled route's job, for one org at one tick: the route's query, then either one
//! digest (delivered here, its ledger keyed by the tick so a retry never posts twice) or one
//! route job per record (queued, deduplicated, so a repeated run queues nothing twice).

use serde_json::Value;

use super::{JobError, Jobs, WorkError, digest, lane_of, route};
use crate::event::{ChangeType, Event, SalesforceId};
use crate::keys::DedupeKey;
use crate::queue::{Lane, NewJob};
use crate::salesforce::Soql;
use crate::task::TaskRef;

/// What one run of a scheduled route comes to.
pub enum Run {
    /// One message summing up every record (`schedule.each = false`).
    Digest { event: Box<Event>, extra: Value },
    /// One delivery per record (`schedule.each = true`), each a job in the route's lane.
    Records { events: Vec<Event>, lane: Lane },
}

pub(super) async fn run(
    jobs: &Jobs,
    name: &str,
    org: &SalesforceId,
    tick_ms: i64,
) -> Result<(), JobError> {
    let what = format!("scheduled route {name}");
    match query(jobs, name, org, tick_ms)
        .await
        .map_err(|e| JobError::of(&what, e))?
    {
        Run::Digest { event, extra } => route::deliver(jobs, name, &event, extra)
            .await
            .map_err(|e| JobError::of(&what, e)),
        Run::Records { events, .. } if events.is_empty() => Ok(()),
        Run::Records { events, lane } => queue_records(jobs, name, &events, lane).await,
    }
}

/// Runs a scheduled route for one org now, in this process (`sfrelay run`): the digest, or
/// each record's delivery one after the other. Answers how each record's delivery went.
pub async fn run_here(
    jobs: &Jobs,
    name: &str,
    org: &SalesforceId,
    tick_ms: i64,
) -> Result<Vec<(Event, Result<(), WorkError>)>, WorkError> {
    match query(jobs, name, org, tick_ms).await? {
        Run::Digest { event, extra } => {
            route::deliver(jobs, name, &event, extra).await?;
            Ok(Vec::new())
        }
        Run::Records { events, .. } => {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in events {
                let outcome = route::deliver(jobs, name, &event, Value::Null).await;
                outcomes.push((event, outcome));
            }
            Ok(outcomes)
        }
    }
}

/// Queries Salesforce for the route's records and shapes what is delivered.
pub async fn query(
    jobs: &Jobs,
    name: &str,
    org: &SalesforceId,
    tick_ms: i64,
) -> Result<Run, WorkError> {
    let routes = jobs.routes.load_full();
    let route = super::route_named(&routes, name)?;
    let schedule = route
        .schedule
        .as_ref()
        .ok_or_else(|| WorkError::Permanent(format!("route {name:?} is not scheduled")))?;
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        WorkError::Permanent(format!(
            "org {org} has no [orgs.salesforce] API credentials"
        ))
    })?;
    // Digests and scheduled sweeps are the first to wait when the org's allowance runs short.
    client.budget_allows(org, crate::salesforce::budget::Need::Low)?;
    let mut params = schedule.params.clone();
    params.insert("org_id".into(), org.to_string().into());
    let soql = Soql::bind(&schedule.query, &params)
        .map_err(|e| WorkError::Permanent(format!("query: {e}")))?;
    let now = chrono::Utc::now();
    if schedule.each {
        let records = client.query(org, &soql).await?;
        let mut events = Vec::with_capacity(records.len());
        for mut record in records {
            record.remove("attributes");
            let Some(id) = crate::salesforce::record_id(&record) else {
                tracing::warn!(route = %name, "a scheduled query returned a record without an Id; skipped");
                continue;
            };
            record.insert("Id".into(), id.to_string().into());
            events.push(Event {
                id: format!("{name}:{org}:{id}:{tick_ms}"),
                org_id: org.clone(),
                object: route.object.clone(),
                record_id: id,
                record,
                change_type: ChangeType::Update,
                changed_fields: None,
                prior: None,
                event_id: None,
                occurred_at: None,
                received_at: now,
            });
        }
        return Ok(Run::Records {
            events,
            lane: lane_of(route.priority),
        });
    }
    let (records, total) =
        super::read_capped(client, org, &soql, jobs.caps.digest_max_records).await?;
    let extra = digest::capped_summary(records, total, &jobs.caps)
        .map_err(|e| WorkError::Permanent(format!("route {name:?}: {e}")))?;
    let event = Event {
        id: format!("{name}:{org}:{tick_ms}"),
        org_id: org.clone(),
        object: route.object.clone(),
        record_id: org.clone(),
        record: serde_json::Map::new(),
        change_type: ChangeType::Update,
        changed_fields: None,
        prior: None,
        event_id: None,
        occurred_at: chrono::DateTime::from_timestamp_millis(tick_ms),
        received_at: now,
    };
    Ok(Run::Digest {
        event: Box::new(event),
        extra,
    })
}

/// Queues one route job per record, in the route's lane, 200 at a time.
async fn queue_records(
    jobs: &Jobs,
    route: &str,
    events: &[Event],
    lane: Lane,
) -> Result<(), JobError> {
    let now = crate::queue::now_ms();
    let mut new = Vec::with_capacity(events.len());
    for event in events {
        let task = TaskRef::Route { route, event };
        let job = NewJob::with_lane(
            event.id.clone(),
            DedupeKey::route(&event.id, route).into(),
            &task,
            now,
            lane,
        )
        .map_err(|e| JobError::dead(format!("cannot queue {route}: {e}")))?;
        new.push(job);
    }
    for chunk in new.chunks(200) {
        jobs.queue
            .enqueue_internal(chunk, jobs.dedupe_window)
            .await
            .map_err(|e| JobError::queueing(&format!("cannot queue {route}"), e))?;
    }
    tracing::info!(%route, records = events.len(), "scheduled route queued one delivery per record");
    Ok(())
}
