//! Route enrichment: a route's SOQL query, its values bound from the event, never pasted in.

use serde_json::{Value, json};

use super::{Caps, Jobs, WorkError};
use crate::event::Event;
use crate::routing::route::Enrich;
use crate::salesforce::{Record, Soql};

/// Runs `enrich` for `event`: its first record becomes `name`, all records `<name>_records`.
pub(super) async fn query(jobs: &Jobs, enrich: &Enrich, event: &Event) -> Result<Value, WorkError> {
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        WorkError::Permanent(format!(
            "the route enriches from Salesforce but org {} has no [orgs.salesforce] API credentials",
            event.org_id
        ))
    })?;
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
    within_caps(&records, &jobs.caps).map_err(WorkError::Permanent)?;
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
