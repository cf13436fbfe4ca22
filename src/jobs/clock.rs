//! Scheduled routes: each fires at most once per tick across all replicas. Every process
//! watches the clock; the first to claim a tick in the store queues one job per org, so there
//! is no leader to elect and a replica that dies loses nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::lane_of;
use crate::event::SalesforceId;
use crate::keys::{DedupeKey, Key};
use crate::queue::{NewJob, Queue, now_ms};
use crate::routing::{Route, RouteSet};
use crate::store::Store;
use crate::task::Task;

/// The orgs a scheduled route runs for: those with API access, narrowed by the route's filter.
pub fn orgs_for<'a>(route: &Route, with_api: &'a [SalesforceId]) -> Vec<&'a SalesforceId> {
    with_api
        .iter()
        .filter(|org| route.orgs.is_empty() || route.orgs.contains(org))
        .collect()
}

/// The jobs one tick of `route` becomes: one per org, deduplicated by route, org and tick.
pub fn tick_jobs(
    route: &Route,
    orgs: &[&SalesforceId],
    tick: DateTime<Utc>,
) -> Result<Vec<NewJob>, crate::queue::QueueError> {
    let lane = lane_of(route.priority);
    let tick_ms = tick.timestamp_millis();
    orgs.iter()
        .map(|org| {
            let task = Task::Scheduled {
                route: route.name.clone(),
                org: (*org).clone(),
                tick_ms,
            };
            NewJob::with_lane(
                format!("{}:{org}:{tick_ms}", route.name),
                DedupeKey::scheduled(&route.name, org, tick_ms).into(),
                &task,
                now_ms(),
                lane,
            )
        })
        .collect()
}

/// Watches the clock for every scheduled route until `stop`.
pub async fn run(
    queue: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    routes: Arc<ArcSwap<RouteSet>>,
    orgs: Vec<SalesforceId>,
    dedupe_window: Duration,
    stop: CancellationToken,
) {
    let me = uuid::Uuid::now_v7().to_string();
    let mut next: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        let set = routes.load_full();
        for route in &set.routes {
            let Some(schedule) = &route.schedule else {
                continue;
            };
            let key = (route.name.clone(), schedule.cron_text.clone());
            let Some(due) = next.get(&key).copied().or_else(|| schedule.next_after(now)) else {
                continue;
            };
            next.insert(key.clone(), due);
            if now < due {
                continue;
            }
            let claim = Key::tick(&route.name, due.timestamp_millis());
            match store.claim(claim.as_str(), &me, claim.ttl()).await {
                Ok(None) => {
                    let targets = orgs_for(route, &orgs);
                    match tick_jobs(route, &targets, due) {
                        Ok(jobs) => match queue.enqueue_internal(&jobs, dedupe_window).await {
                            Ok(_) => {
                                tracing::info!(route = %route.name, tick = %due, orgs = targets.len(), "scheduled route fired");
                            }
                            Err(e) => {
                                // Release the claim so this or another replica tries again.
                                let _ = store.delete(claim.as_str()).await;
                                tracing::warn!(route = %route.name, error = %e, "cannot queue the scheduled route; will retry");
                                continue;
                            }
                        },
                        Err(e) => {
                            tracing::error!(route = %route.name, error = %e, "cannot build the scheduled jobs")
                        }
                    }
                }
                Ok(Some(_)) => {
                    tracing::debug!(route = %route.name, tick = %due, "tick already fired by another replica");
                }
                Err(e) => {
                    tracing::warn!(route = %route.name, error = %e, "cannot claim the tick; will retry");
                    continue;
                }
            }
            if let Some(after) = schedule.next_after(now) {
                next.insert(key, after);
            }
        }
    }
}
