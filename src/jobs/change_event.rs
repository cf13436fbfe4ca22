//! A change event the subscriber could not read, back from the dead-letter list: read again
//! (after a fix, it may now be read) and queued exactly as the keeper would have queued it.
//! Its events keep their ids, so one that was somehow posted already is not posted twice.

use super::{JobError, Jobs};
use crate::queue::{Enqueued, now_ms};
use crate::salesforce::pubsub::{REPLAY_HORIZON, RawChange};
use crate::task::{event_jobs, gap_jobs};

pub(super) async fn run(jobs: &Jobs, change: &RawChange) -> Result<(), JobError> {
    let batch = change.read(chrono::Utc::now()).map_err(|e| {
        JobError::dead(format!(
            "change event {} ({} on {}) still cannot be read: {e}",
            change.replay_id, change.event_id, change.topic
        ))
    })?;
    let now = now_ms();
    let mut queued = event_jobs(&batch.events, now)
        .map_err(|e| JobError::dead(format!("cannot queue its events: {e}")))?;
    queued.extend(
        gap_jobs(&batch.gaps, now)
            .map_err(|e| JobError::dead(format!("cannot queue its gaps: {e}")))?,
    );
    if queued.is_empty() {
        return Ok(());
    }
    let outcome = jobs
        .queue
        .enqueue_internal(&queued, jobs.dedupe_window.max(REPLAY_HORIZON))
        .await
        .map_err(|e| JobError::queueing("a change event read again", e))?;
    let new = outcome
        .results
        .iter()
        .filter(|r| matches!(r, Enqueued::New(_)))
        .count();
    tracing::info!(replay_id = %change.replay_id, topic = %change.topic, events = new, "a change event that could not be read before is queued");
    Ok(())
}
