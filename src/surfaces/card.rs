//! A record's card: the fields the admin listed for its object (`[cards.<Object>]`), read from
//! Salesforce in one query and drawn from `templates/record-card.json`, with the same action
//! buttons notifications carry. A field not listed is never read, so it can never show.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::links::RecordRef;
use crate::event::{ChangeType, Event, SalesforceId};
use crate::jobs::{Jobs, WorkError};
use crate::render::Rendered;
use crate::salesforce::{Actor, Soql};

/// The field that names a record of `object` on its card.
pub fn title_field(object: &str) -> &'static str {
    match object {
        "Case" => "CaseNumber",
        "Task" | "Event" => "Subject",
        "Contract" => "ContractNumber",
        _ => "Name",
    }
}

/// A dotted path's value in a record (`Account.Name`).
fn value_at<'a>(record: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = record.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// How a value reads on a card.
fn shown(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Reads `record`'s allowed fields as `actor`; `None` when Salesforce has no such record (or
/// the reader may not see it).
pub async fn read(
    jobs: &Jobs,
    org: &SalesforceId,
    actor: &Actor,
    record: &RecordRef,
    fields: &[String],
) -> Result<Option<Map<String, Value>>, WorkError> {
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        WorkError::Permanent(format!(
            "org {org} has no [orgs.salesforce] API credentials"
        ))
    })?;
    let title = title_field(&record.object);
    let mut select = vec!["Id".to_owned(), title.to_owned()];
    for f in fields {
        if !select.contains(f) {
            select.push(f.clone());
        }
    }
    let text = format!(
        "SELECT {} FROM {} WHERE Id = :id LIMIT 1",
        select.join(", "),
        record.object
    );
    let mut params = Map::new();
    params.insert("id".into(), record.id.to_string().into());
    let soql = Soql::bind(&text, &params).map_err(|e| WorkError::Permanent(e.to_string()))?;
    let mut rows = client.query_as(org, actor, &soql).await?;
    Ok(rows.pop().map(|mut row| {
        row.remove("attributes");
        row
    }))
}

/// The card of a record read with [`read`].
pub fn render(
    jobs: &Jobs,
    org: &SalesforceId,
    record: &RecordRef,
    row: Map<String, Value>,
    fields: &[String],
) -> Result<Rendered, WorkError> {
    let title = shown(row.get(title_field(&record.object)));
    let shown_fields: Vec<Value> = fields
        .iter()
        .filter(|f| f.as_str() != title_field(&record.object))
        .map(|f| json!({"label": label(f), "value": shown(value_at(&row, f))}))
        .collect();
    let extra = json!({"card": {"object": record.object, "title": title, "fields": shown_fields}});
    let event = Event {
        id: uuid::Uuid::now_v7().to_string(),
        org_id: org.clone(),
        object: record.object.clone(),
        record_id: record.id.clone(),
        record: row,
        change_type: ChangeType::Update,
        changed_fields: None,
        prior: None,
        event_id: None,
        occurred_at: None,
        received_at: chrono::Utc::now(),
    };
    let users = HashMap::new();
    let routes = jobs.routes.load_full();
    routes
        .templates
        .render(
            super::CARD_TEMPLATE,
            &jobs.orgs.context(&event, &users, &extra),
        )
        .map_err(|e| WorkError::Permanent(format!("the record card cannot be drawn: {e}")))
}

/// `Account.Name` → `Account Name`, `Close_Date__c` → `Close Date`.
fn label(field: &str) -> String {
    field
        .trim_end_matches("__c")
        .replace(['.', '_'], " ")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_by_path_and_labelled() {
        let row: Map<String, Value> = serde_json::from_value(json!({
            "Name": "Acme", "Amount": 5, "Account": {"Name": "Acme Corp"}, "CloseDate": null
        }))
        .unwrap();
        assert_eq!(shown(value_at(&row, "Account.Name")), "Acme Corp");
        assert_eq!(shown(value_at(&row, "Amount")), "5");
        assert_eq!(shown(value_at(&row, "CloseDate")), "—");
        assert_eq!(shown(value_at(&row, "Missing.Path")), "—");
        assert_eq!(label("Account.Name"), "Account Name");
        assert_eq!(label("Renewal_Date__c"), "Renewal Date");
    }
}
