//! Sweeps: when Salesforce cannot say what changed (a `GAP_OVERFLOW` transaction, or a cursor
//! older than its retention), the records of the object modified since then are read back and
//! compared with what sfrelay last saw, exactly as reconciliation does. Differences become
//! events; the dedupe absorbs what was also replayed.

use chrono::{DateTime, Utc};

use super::Context;
use crate::config::ReconcileConfig;
use crate::event::SalesforceId;
use crate::queue::{Enqueued, now_ms};
use crate::task::event_jobs;

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

/// Sweeps `object` (every reconciled object of the org for `None`) for changes since `since`.
pub async fn run(ctx: &Context, org: &SalesforceId, object: Option<&str>, since: DateTime<Utc>) {
    let specs = specs(ctx, org, object);
    if specs.is_empty() {
        metrics::counter!("sfrelay_pubsub_sweeps_total", "org" => org.to_string(), "outcome" => "not_configured").increment(1);
        tracing::error!(%org, object = object.unwrap_or("*"), %since, "changes since this time may be missing and cannot be swept: add [[orgs.reconcile]] for the object with the fields its routes watch");
        return;
    }
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
                metrics::counter!("sfrelay_pubsub_sweeps_total", "org" => org.to_string(), "outcome" => "failed").increment(1);
                tracing::error!(%org, object = %spec.object, error = %e, "sweep failed; reconciliation's next pass covers its window");
            }
        }
    }
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
