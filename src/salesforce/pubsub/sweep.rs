//! Sweeps: when Salesforce cannot say what changed (a `GAP_OVERFLOW` transaction, or a cursor
//! older than its retention), the records of the object modified since then are read back and
//! compared with what sfrelay last saw, exactly as reconciliation does. Differences become
//! events; the dedupe absorbs what was also replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, Subscription};
use crate::config::ReconcileConfig;
use crate::event::SalesforceId;
use crate::queue::{Enqueued, now_ms};
use crate::task::event_jobs;

/// A sweep a subscription owes (see `Key::pubsub_sweep`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Owed {
    /// Changes since then may be missing: the old cursor's time.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub since: DateTime<Utc>,
    /// When the stream restarted from the earliest event: an event committed after it shows
    /// the stream has caught up.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub from: DateTime<Utc>,
}

/// Runs an owed sweep of `sub`'s object(s), then forgets it; one that failed is owed again.
pub async fn owed(ctx: &Context, sub: &Subscription, owed: Owed) {
    let object = topic_object(&sub.topic);
    let key = crate::keys::Key::pubsub_sweep(&sub.org, &sub.topic);
    if run(ctx, &sub.org, object.as_deref(), owed.since).await {
        if let Err(e) = ctx.store.delete(key.as_str()).await {
            tracing::warn!(org = %sub.org, topic = %sub.topic, error = %e, "the sweep ran but cannot be marked done; it may run again (harmlessly)");
        }
    } else {
        ctx.remember_owed(sub, owed);
    }
}

/// The object a topic carries changes of, when it is one object's topic.
pub fn topic_object(topic: &str) -> Option<String> {
    let name = topic.strip_prefix("/data/")?;
    if let Some(custom) = name.strip_suffix("__ChangeEvent") {
        return Some(format!("{custom}__c"));
    }
    name.strip_suffix("ChangeEvent")
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
}

/// Says at start when a subscription's object could not be swept after its cursor expired:
/// a sweep compares the fields `[[orgs.reconcile]]` names.
pub fn warn_if_unsweepable(ctx: &Context, sub: &Subscription) {
    let object = topic_object(&sub.topic);
    if specs(ctx, &sub.org, object.as_deref()).is_empty() {
        tracing::warn!(org = %sub.org, topic = %sub.topic, "no [[orgs.reconcile]] covers this topic's object: if its cursor ever expires (sfrelay down for over 72 hours), changes from that time cannot be swept");
    }
}

/// The reconciliation specs of `org` that cover `object` (all of them for `None`).
fn specs(ctx: &Context, org: &SalesforceId, object: Option<&str>) -> Vec<ReconcileConfig> {
    ctx.orgs
        .iter()
        .filter(|o| &o.id == org)
        .flat_map(|o| o.reconcile.iter())
        .filter(|r| object.is_none_or(|o| r.object == o))
        .cloned()
        .collect()
}

/// Sweeps `object` (every reconciled object of the org for `None`) for changes since `since`;
/// answers whether it is done (`false`: a read failed and is worth trying again).
pub async fn run(
    ctx: &Context,
    org: &SalesforceId,
    object: Option<&str>,
    since: DateTime<Utc>,
) -> bool {
    let specs = specs(ctx, org, object);
    if specs.is_empty() {
        metrics::counter!("sfrelay_pubsub_sweeps_total", "org" => org.to_string(), "outcome" => "not_configured").increment(1);
        tracing::error!(%org, object = object.unwrap_or("*"), %since, "changes since this time may be missing and cannot be swept: add [[orgs.reconcile]] for the object with the fields its routes watch");
        return true;
    }
    let mut done = true;
    let now = Utc::now();
    let minutes = ((now - since).num_minutes().max(0) + 2) as u64;
    for mut spec in specs {
        spec.window_minutes = minutes.max(spec.window_minutes);
        spec.grace_minutes = 0;
        let outcome = match crate::jobs::reconcile::missed_changes(
            &ctx.client,
            ctx.store.as_ref(),
            org,
            &spec,
            now,
        )
        .await
        {
            Ok(events) if events.is_empty() => Ok(0),
            Ok(events) => match event_jobs(&events, now_ms()) {
                Ok(jobs) => ctx
                    .queue
                    .enqueue_internal(&jobs, ctx.dedupe_window)
                    .await
                    .map(|o| {
                        o.results
                            .iter()
                            .filter(|r| matches!(r, Enqueued::New(_)))
                            .count()
                    })
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(n) => {
                metrics::counter!("sfrelay_pubsub_sweeps_total", "org" => org.to_string(), "outcome" => "ok").increment(1);
                tracing::warn!(%org, object = %spec.object, recovered = n, minutes, "swept for changes the event stream could not carry");
            }
            Err(e) => {
                done = false;
                metrics::counter!("sfrelay_pubsub_sweeps_total", "org" => org.to_string(), "outcome" => "failed").increment(1);
                tracing::error!(%org, object = %spec.object, error = %e, "sweep failed; it runs again once the stream has caught up");
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_objects_topics_name_it() {
        assert_eq!(
            topic_object("/data/OpportunityChangeEvent").as_deref(),
            Some("Opportunity")
        );
        assert_eq!(
            topic_object("/data/Employee__ChangeEvent").as_deref(),
            Some("Employee__c")
        );
        assert_eq!(topic_object("/data/ChangeEvents"), None);
        assert_eq!(topic_object("/data/Sales__chn"), None);
    }
}
