//! The choices a card's selects offer: the picklist values of the fields its templates name
//! (`picklists.StageName`), for the record's record type, read from Salesforce (cached) in the
//! route job, so rendering stays pure.

use serde_json::{Map, Value, json};

use super::Jobs;
use crate::event::Event;
use crate::routing::{Route, RouteSet};

/// `extra` with `picklists.<Field>` = `[{label, value}, …]` for every field the route's
/// templates offer; a field Salesforce cannot answer for is left out (its select is dropped),
/// and the card still goes.
pub(super) async fn merge(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    event: &Event,
    extra: Value,
) -> Value {
    let Some(picklists) = &jobs.picklists else {
        return extra;
    };
    let mut fields = std::collections::BTreeSet::new();
    for template in route
        .actions
        .iter()
        .map(|a| a.template.as_str())
        .chain(route.gate.as_ref().map(|g| g.template.as_str()))
    {
        fields.extend(routes.templates.picklist_fields(template));
    }
    if fields.is_empty() {
        return extra;
    }
    let record_type = event.record.get("RecordTypeId").and_then(Value::as_str);
    let mut lists = Map::new();
    for field in fields {
        match picklists
            .values(&event.org_id, &event.object, record_type, &field)
            .await
        {
            Ok(values) => {
                let values: Vec<Value> = values
                    .iter()
                    .map(|v| json!({"label": v.label, "value": v.value}))
                    .collect();
                lists.insert(field, Value::Array(values));
            }
            Err(e) => {
                tracing::warn!(object = %event.object, %field, error = %e, "no picklist values; the card goes without that choice");
            }
        }
    }
    let mut extra = match extra {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    extra.insert("picklists".into(), Value::Object(lists));
    Value::Object(extra)
}
