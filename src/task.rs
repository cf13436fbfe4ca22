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
}

impl Task {
    pub fn event(&self) -> &Event {
        match self {
            Task::Event { event } | Task::Route { event, .. } => event,
        }
    }
}
