//! Reconciliation: an outage between Salesforce and sfrelay must not silently lose a change.
//! For each configured org and object, sfrelay remembers the watched fields of every record it
//! routed; every few minutes it asks Salesforce which records changed recently, and routes the
//! differences it never heard of as ordinary events (dedupe keeps anything from firing twice).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{OrgConfig, ReconcileConfig};
use crate::event::{ChangeType, Event, SalesforceId};
use crate::keys::Key;
use crate::queue::{Queue, now_ms};
use crate::salesforce::{SalesforceClient, Soql};
use crate::store::{Store, StoreError};
use crate::task::event_jobs;

/// The fields watched per (org, object), from the configuration.
#[derive(Debug, Default)]
pub struct Watched {
    fields: HashMap<(SalesforceId, String), Vec<String>>,
}

impl Watched {
    pub fn new(orgs: &[OrgConfig]) -> Self {
        let mut fields = HashMap::new();
        for org in orgs {
            for r in &org.reconcile {
                fields.insert((org.id.clone(), r.object.clone()), r.fields.clone());
            }
        }
        Watched { fields }
    }

    fn of(&self, org: &SalesforceId, object: &str) -> Option<&[String]> {
        self.fields
            .get(&(org.clone(), object.to_string()))
            .map(Vec::as_slice)
    }
}

/// Remembers the watched fields of a routed event (merged into what was seen before).
pub async fn note_seen(
    store: &dyn Store,
    watched: &Watched,
    event: &Event,
) -> Result<(), StoreError> {
    let Some(fields) = watched.of(&event.org_id, &event.object) else {
        return Ok(());
    };
    let key = Key::seen(&event.org_id, &event.object, &event.record_id);
    let mut seen: Map<String, Value> = store
        .get(key.as_str())
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for field in fields {
        if let Some(value) = event.record.get(field) {
            seen.insert(field.clone(), value.clone());
        }
    }
    let value = Value::Object(seen).to_string();
    store.set(key.as_str(), &value, key.ttl()).await
}

/// Notes records seen as their events are accepted at ingest, so a reconciliation pass that
/// runs while those events still wait in the queue does not take them for changes it missed.
pub struct SeenAtIngest {
    store: Arc<dyn Store>,
    watched: Arc<Watched>,
}

impl SeenAtIngest {
    pub fn new(store: Arc<dyn Store>, watched: Arc<Watched>) -> Self {
        SeenAtIngest { store, watched }
    }

    /// Notes `events`, durably queued just now. A failure is only logged: the events are
    /// accepted already, and routing each notes it again.
    pub async fn accepted<'a>(&self, events: impl IntoIterator<Item = &'a Event>) {
        for event in events {
            if let Err(e) = note_seen(self.store.as_ref(), &self.watched, event).await {
                tracing::warn!(event_id = %event.id, error = %e, "cannot note the record as seen at ingest; its routing will");
            }
        }
    }
}

/// The watched fields whose current value differs from what was seen.
pub fn changed_fields(
    seen: &Map<String, Value>,
    current: &Map<String, Value>,
    fields: &[String],
) -> Vec<String> {
    fields
        .iter()
        .filter(|f| current.get(*f).unwrap_or(&Value::Null) != seen.get(*f).unwrap_or(&Value::Null))
        .cloned()
        .collect()
}

/// Salesforce's `2025-09-30T16:00:00.000+0000` (or RFC 3339).
fn parse_modified(value: Option<&Value>) -> Option<DateTime<Utc>> {
    crate::event::parse_salesforce_time(value?.as_str()?)
}

/// One pass for one org and object: the events of changes sfrelay never routed.
pub async fn missed_changes(
    client: &SalesforceClient,
    store: &dyn Store,
    org: &SalesforceId,
    spec: &ReconcileConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, String> {
    let mut select = vec!["Id".to_string(), "LastModifiedDate".to_string()];
    for f in spec.fields.iter().chain(&spec.also) {
        if !select.contains(f) {
            select.push(f.clone());
        }
    }
    let text = format!(
        "SELECT {} FROM {} WHERE LastModifiedDate >= LAST_N_MINUTES:{}",
        select.join(", "),
        spec.object,
        spec.window_minutes
    );
    let soql = Soql::bind(&text, &Map::new()).map_err(|e| e.to_string())?;
    let records = client.query(org, &soql).await.map_err(|e| e.to_string())?;
    let grace = chrono::Duration::minutes(i64::try_from(spec.grace_minutes).unwrap_or(0));
    let mut events = Vec::new();
    for mut record in records {
        record.remove("attributes");
        let Some(id) = crate::salesforce::record_id(&record) else {
            continue;
        };
        let modified = parse_modified(record.get("LastModifiedDate"));
        if modified.is_some_and(|m| m > now - grace) {
            continue; // its callout may still be on its way
        }
        let key = Key::seen(org, &spec.object, &id);
        let Some(seen) = store
            .get(key.as_str())
            .await
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_str::<Map<String, Value>>(&v).ok())
        else {
            // Never seen: nothing to compare with. Remember it as the baseline.
            let baseline: Map<String, Value> = spec
                .fields
                .iter()
                .filter_map(|f| Some((f.clone(), record.get(f)?.clone())))
                .collect();
            store
                .set(
                    key.as_str(),
                    &Value::Object(baseline).to_string(),
                    key.ttl(),
                )
                .await
                .map_err(|e| e.to_string())?;
            continue;
        };
        let changed = changed_fields(&seen, &record, &spec.fields);
        if changed.is_empty() {
            continue;
        }
        let prior: Map<String, Value> = changed
            .iter()
            .filter_map(|f| Some((f.clone(), seen.get(f)?.clone())))
            .collect();
        record.insert("Id".into(), id.to_string().into());
        let stamp = modified.map_or_else(|| now.timestamp_millis(), |m| m.timestamp_millis());
        events.push(Event {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: org.clone(),
            object: spec.object.clone(),
            record_id: id.clone(),
            record,
            change_type: ChangeType::Update,
            changed_fields: Some(changed),
            prior: Some(prior),
            event_id: Some(format!("recon:{id}:{stamp}")),
            occurred_at: modified,
            received_at: now,
        });
    }
    Ok(events)
}

/// Runs every configured reconciliation on its interval, once per interval across replicas.
pub async fn run(
    client: Arc<SalesforceClient>,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    orgs: Vec<OrgConfig>,
    dedupe_window: Duration,
    stop: CancellationToken,
) {
    let specs: Vec<(SalesforceId, ReconcileConfig)> = orgs
        .iter()
        .filter(|o| client.has_org(&o.id))
        .flat_map(|o| o.reconcile.iter().map(|r| (o.id.clone(), r.clone())))
        .collect();
    if specs.is_empty() {
        return;
    }
    let me = uuid::Uuid::now_v7().to_string();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_slot: HashMap<usize, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        for (i, (org, spec)) in specs.iter().enumerate() {
            let every = i64::try_from(spec.every_seconds.max(1)).unwrap_or(300);
            let slot = now.timestamp() / every;
            if last_slot.get(&i) == Some(&slot) {
                continue;
            }
            last_slot.insert(i, slot);
            if let Err(held) = client.budget_allows(org, crate::salesforce::budget::Need::Low) {
                tracing::info!(%org, object = %spec.object, reason = %held, "reconciliation waits for the next interval");
                continue;
            }
            let claim =
                Key::reconcile_slot(org, &spec.object, slot, Duration::from_secs(every as u64));
            match store.claim(claim.as_str(), &me, claim.ttl()).await {
                Ok(None) => {}
                Ok(Some(_)) => continue, // another replica runs this one
                Err(e) => {
                    tracing::debug!(error = %e, "cannot claim a reconciliation slot");
                    continue;
                }
            }
            match missed_changes(&client, store.as_ref(), org, spec, now).await {
                Ok(events) if events.is_empty() => {}
                Ok(events) => match event_jobs(&events, now_ms()) {
                    Ok(jobs) => match queue.enqueue_internal(&jobs, dedupe_window).await {
                        Ok(outcome) => {
                            let new = outcome
                                .results
                                .iter()
                                .filter(|r| matches!(r, crate::queue::Enqueued::New(_)))
                                .count();
                            metrics::counter!("sfrelay_events_recovered_total", "object" => spec.object.clone())
                                    .increment(new as u64);
                            tracing::warn!(%org, object = %spec.object, recovered = new, "reconciliation found changes whose callouts never came");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot queue reconciled events"),
                    },
                    Err(e) => tracing::error!(error = %e, "cannot build reconciled jobs"),
                },
                Err(e) => {
                    tracing::warn!(%org, object = %spec.object, error = %e, "reconciliation failed; next interval retries")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watched_fields_that_differ_count() {
        let seen: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"StageName": "Negotiation", "Amount": 5}))
                .unwrap();
        let now: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"StageName": "Closed Won", "Amount": 5, "Other": 1}),
        )
        .unwrap();
        let fields = vec![
            "StageName".to_string(),
            "Amount".to_string(),
            "CloseDate".to_string(),
        ];
        assert_eq!(changed_fields(&seen, &now, &fields), vec!["StageName"]);
        assert!(parse_modified(Some(&"2025-09-30T16:00:00.000+0000".into())).is_some());
        assert!(parse_modified(Some(&"2025-09-30T16:00:00Z".into())).is_some());
    }
}
