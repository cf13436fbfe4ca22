//! Route enrichment: a route's SOQL query, its values bound from the event, never pasted in;
//! reads by the record's own Id are combined across events ([`batch`]).

pub mod batch;

use serde_json::{Value, json};

use super::{Caps, Jobs, WorkError};
use crate::event::Event;
use crate::routing::Priority;
use crate::routing::route::Enrich;
use crate::salesforce::budget::Need;
use crate::salesforce::{Record, Soql};

/// How much a route's enrichment matters when the org's API allowance runs short: as much as
/// the route.
pub(super) fn need_of(priority: Priority) -> Need {
    match priority {
        Priority::Low => Need::Low,
        Priority::Normal => Need::Normal,
        Priority::High => Need::High,
    }
}

/// Runs `enrich` for `event`: its first record becomes `name`, all records `<name>_records`.
/// Held back (put off) while the org's API usage is above what `need` may spend.
pub(super) async fn query(
    jobs: &Jobs,
    enrich: &Enrich,
    need: Need,
    event: &Event,
) -> Result<Value, WorkError> {
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        WorkError::Permanent(format!(
            "the route enriches from Salesforce but org {} has no [orgs.salesforce] API credentials",
            event.org_id
        ))
    })?;
    client.budget_allows(&event.org_id, need)?;
    if let Some(batcher) = &jobs.enrich_batches
        && let Some(select_from) = &enrich.select_by_id
    {
        let read = batcher
            .read(
                client,
                &event.org_id,
                select_from,
                &event.record_id,
                event.received_at,
            )
            .await;
        return match read {
            batch::Lookup::Ready(answer) => {
                shaped(enrich, answer?.into_iter().collect(), &jobs.caps)
            }
            batch::Lookup::Later(wait) => Err(WorkError::Batching { wait }),
        };
    }
    let context = json!({
        "record": event.record,
        "prior": event.prior,
        "org_id": event.org_id,
        "object": event.object,
    });
    let soql = Soql::bind(
        &enrich.query,
        context.as_object().unwrap_or(&serde_json::Map::new()),
    )
    .map_err(|e| WorkError::Permanent(format!("enrich.query: {e}")))?;
    let (records, _) =
        super::read_capped(client, &event.org_id, &soql, jobs.caps.enrich_max_rows).await?;
    shaped(enrich, records, &jobs.caps)
}

/// Puts the record of `event` in the batch of each fired route that reads it by its Id, so
/// the row is being read while the route jobs are queued.
pub(super) fn prefetch(jobs: &Jobs, fired: &[&crate::routing::Route], event: &Event) {
    let (Some(batcher), Some(client)) = (&jobs.enrich_batches, &jobs.salesforce) else {
        return;
    };
    for route in fired {
        let Some(enrich) = &route.enrich else {
            continue;
        };
        // Work the budget holds back reads nothing now, not even in a batch.
        if client
            .budget_allows(&event.org_id, need_of(route.priority))
            .is_err()
        {
            continue;
        }
        if let Some(select_from) = &enrich.select_by_id {
            batcher.prefetch(client, &event.org_id, select_from, &event.record_id);
        }
    }
}

/// What the templates see of an enrichment's records: the first as `name`, all of them as
/// `<name>_records`.
fn shaped(enrich: &Enrich, records: Vec<Record>, caps: &Caps) -> Result<Value, WorkError> {
    within_caps(&records, caps).map_err(WorkError::Permanent)?;
    let first = records.first().cloned().map(Value::Object);
    Ok(json!({
        enrich.name.clone(): first.unwrap_or(Value::Null),
        format!("{}_records", enrich.name): records,
    }))
}

/// Refuses an enrichment answer over its caps: a template shows a handful of related records,
/// so hundreds of rows or megabytes mean a query that needs narrowing, not a bigger message.
fn within_caps(records: &[Record], caps: &Caps) -> Result<(), String> {
    if records.len() > caps.enrich_max_rows {
        return Err(format!(
            "enrich.query returned more than the workers.enrich_max_rows cap of {} rows; \
             narrow the query (add a LIMIT) or raise the cap",
            caps.enrich_max_rows
        ));
    }
    let bytes: usize = records
        .iter()
        .map(|r| serde_json::to_vec(r).map_or(0, |b| b.len()))
        .sum();
    if bytes > caps.enrich_max_bytes {
        return Err(format!(
            "enrich.query returned {bytes} bytes in {} rows, over the \
             workers.enrich_max_bytes cap of {}; select fewer fields or raise the cap",
            records.len(),
            caps.enrich_max_bytes
        ));
    }
    Ok(())
}

/// Adds what enrichment found to the variables a template sees.
pub(super) fn merge(base: Value, enriched: Value) -> Value {
    match (base, enriched) {
        (Value::Object(mut base), Value::Object(more)) => {
            base.extend(more);
            Value::Object(base)
        }
        (_, enriched) => enriched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, text: &str) -> Vec<Record> {
        (0..n)
            .map(|_| {
                json!({"Subject": text})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn enrichment_over_its_row_or_byte_cap_is_refused_naming_the_cap() {
        let caps = Caps {
            enrich_max_rows: 5,
            enrich_max_bytes: 1_000,
            ..Caps::default()
        };
        assert_eq!(within_caps(&rows(5, "short"), &caps), Ok(()));
        let too_many = within_caps(&rows(6, "short"), &caps).unwrap_err();
        assert!(
            too_many.contains("workers.enrich_max_rows cap of 5"),
            "{too_many}"
        );
        let too_big = within_caps(&rows(2, &"x".repeat(600)), &caps).unwrap_err();
        assert!(
            too_big.contains("workers.enrich_max_bytes cap of 1000"),
            "{too_big}"
        );
    }
}
