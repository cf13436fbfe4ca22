//! What a queued job asks the workers to do. Ingest queues an `Event`; a worker routes it and
//! queues one `Route` job per fired route, so each route is its own unit of work, priority and
//! failure (one route's dead letter does not stop another's post).

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A job's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Decide which routes fire for this event.
    Event { event: Event },
    /// Carry out one fired route for this event.
    Route { route: String, event: Event },
    /// Fetch the records of a CDC gap event and route them (for routes with `on_gap = "fetch"`).
    Gap { gap: crate::ingest::cdc::GapEvent },
    /// Run a scheduled route for one org at one tick (Unix ms).
    Scheduled {
        route: String,
        org: crate::event::SalesforceId,
        tick_ms: i64,
    },
}
