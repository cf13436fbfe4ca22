//! Route enrichment: a route's SOQL query, its values bound from the event, never pasted in.

use serde_json::{Value, json};

use super::{Jobs, WorkError};
use crate::event::Event;
use crate::routing::route::Enrich;
use crate::salesforce::Soql;

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
    let records = client.query(&event.org_id, &soql).await?;
    let first = records.first().cloned().map(Value::Object);
    Ok(json!({
        enrich.name.clone(): first.unwrap_or(Value::Null),
        format!("{}_records", enrich.name): records,
    }))
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
