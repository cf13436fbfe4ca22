//! What a queued job asks the workers to do. Ingest queues an `Event`; a worker routes it and
//! queues one `Route` job per fired route, so each route is its own unit of work, priority and
//! failure (one route's dead letter does not stop another's post).

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::queue::{NewJob, QueueError};

/// A job's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Decide which routes fire for this event.
    Event { event: Event },
    /// Carry out one fired route for this event.
    Route { route: String, event: Event },
    /// Fetch the records of a CDC gap event and route them (for routes with `on_gap = "fetch"`).
    Gap { gap: crate::event::GapEvent },
    /// Run a scheduled route for one org at one tick (Unix ms).
    Scheduled {
        route: String,
        org: crate::event::SalesforceId,
        tick_ms: i64,
    },
    /// Wait out an approval gate's timeout, then remind, escalate or reject.
    GateTimer {
        route: String,
        org: crate::event::SalesforceId,
        record: crate::event::SalesforceId,
    },
    /// Read again a change event from a subscription that could not be read when it arrived
    /// (queued only by replaying its dead letter), then route what it holds.
    ChangeEvent {
        change: Box<crate::salesforce::pubsub::RawChange>,
    },
    /// Answer one verified slash command.
    Command {
        command: Box<crate::slack::inbound::SlashCommand>,
    },
    /// Act on one verified Events API callback (a link shared, Home opened).
    SlackEvent {
        event: Box<crate::slack::inbound::SlackEvent>,
    },
    /// Answer one verified Slack interaction (a button click, a modal submitted or closed).
    Interaction {
        interaction: Box<crate::slack::inbound::Interaction>,
    },
}

/// The two event-carrying variants of [`Task`] by reference, serialised exactly like them, so
/// an event is queued without first being copied into an owned `Task`.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum TaskRef<'a> {
    /// As [`Task::Event`].
    Event { event: &'a Event },
    /// As [`Task::Route`].
    Route { route: &'a str, event: &'a Event },
}

/// The jobs that route `events`, one each, keyed for dedupe by the event's own key.
pub fn event_jobs(events: &[Event], now_ms: i64) -> Result<Vec<NewJob>, QueueError> {
    events
        .iter()
        .map(|event| {
            NewJob::new(
                event.id.clone(),
                event.dedupe_key(),
                &TaskRef::Event { event },
                now_ms,
            )
        })
        .collect()
}

/// The jobs that fetch and route the records of gap events, one per gap that names records
/// (an overflow names none: it is swept instead), keyed for dedupe by transaction, time and
/// records, so a gap delivered twice is fetched once.
pub fn gap_jobs(gaps: &[crate::event::GapEvent], now_ms: i64) -> Result<Vec<NewJob>, QueueError> {
    gaps.iter()
        .filter(|g| !g.record_ids.is_empty())
        .map(|gap| {
            let ids: Vec<&str> = gap.record_ids.iter().map(|id| id.as_str()).collect();
            let key = crate::keys::DedupeKey::gap(
                &gap.org_id,
                gap.transaction_key.as_deref(),
                gap.commit_timestamp
                    .map(|t| t.timestamp_millis())
                    .unwrap_or(0),
                &ids,
            );
            let task = Task::Gap { gap: gap.clone() };
            NewJob::new(uuid::Uuid::now_v7().to_string(), key.into(), &task, now_ms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ref_serialises_exactly_like_task() {
        let body =
            br#"{"org_id":"00D5g000004ABCdEAO","object":"Opportunity","change_type":"UPDATE",
            "record":{"Id":"006Hs00000BkXyzIAF","StageName":"Closed Won","Amount":125000}}"#;
        let mut events =
            crate::ingest::flow::parse_flow_request(body, chrono::Utc::now()).expect("valid");
        let event = events.remove(0);

        let owned = serde_json::to_string(&Task::Event {
            event: event.clone(),
        })
        .unwrap();
        let borrowed = serde_json::to_string(&TaskRef::Event { event: &event }).unwrap();
        assert_eq!(owned, borrowed);

        let owned = serde_json::to_string(&Task::Route {
            route: "deal-desk".into(),
            event: event.clone(),
        })
        .unwrap();
        let borrowed = serde_json::to_string(&TaskRef::Route {
            route: "deal-desk",
            event: &event,
        })
        .unwrap();
        assert_eq!(owned, borrowed);
        assert_eq!(
            serde_json::from_str::<Task>(&borrowed).unwrap(),
            Task::Route {
                route: "deal-desk".into(),
                event
            }
        );
    }
}
