//! A CDC gap event's job: Salesforce sent no field values, so the records are read back (one
//! query per 200 of them) and routed — only when a route for that object asks for it
//! (`on_gap = "fetch"`).

use super::{JobError, Jobs, WorkError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{ChangeType, Event, GapEvent, SalesforceId};
use crate::routing::OnGap;

pub(super) async fn run(jobs: &Jobs, gap: &GapEvent) -> Result<(), JobError> {
    let events = fetch(jobs, gap)
        .await
        .map_err(|e| JobError::of("CDC gap", e))?;
    for event in &events {
        super::fan_out::run(jobs, event, true).await?;
    }
    Ok(())
}

/// The gap's records, fetched from Salesforce, as events to route; none when no route wants
/// them.
async fn fetch(jobs: &Jobs, gap: &GapEvent) -> Result<Vec<Event>, WorkError> {
    let routes = jobs.routes.load_full();
    let wanted = routes.routes.iter().any(|r| {
        r.on_gap == OnGap::Fetch
            && r.object == gap.object
            && (r.orgs.is_empty() || r.orgs.contains(&gap.org_id))
    });
    if !wanted {
        tracing::info!(object = %gap.object, "gap event: no route fetches on gaps; ignored");
        return Ok(Vec::new());
    }
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        WorkError::Permanent(format!(
            "a route fetches on gaps but org {} has no [orgs.salesforce] API credentials",
            gap.org_id
        ))
    })?;
    client.budget_allows(&gap.org_id, crate::salesforce::budget::Need::Normal)?;
    let change_type = match gap.change_type.as_str() {
        "GAP_CREATE" => ChangeType::Create,
        "GAP_DELETE" => ChangeType::Delete,
        "GAP_UNDELETE" => ChangeType::Undelete,
        _ => ChangeType::Update,
    };
    let mut events = Vec::with_capacity(gap.record_ids.len());
    for record in read_all(client, gap).await? {
        let Some(id) = crate::salesforce::record_id(&record) else {
            continue;
        };
        let (event_id, id_of_event) = fetched_ids(gap, &id, &record);
        events.push(Event {
            id: id_of_event,
            org_id: gap.org_id.clone(),
            object: gap.object.clone(),
            record_id: id,
            record,
            change_type,
            changed_fields: None,
            prior: None,
            event_id: Some(event_id),
            occurred_at: gap.commit_timestamp,
            received_at: chrono::Utc::now(),
        });
    }
    if events.len() < gap.record_ids.len() {
        tracing::info!(
            object = %gap.object,
            asked = gap.record_ids.len(),
            found = events.len(),
            "gap event: some records are gone (deleted, or not visible to sfrelay); routed the rest"
        );
    }
    Ok(events)
}

/// The gap's records, every field, read 200 at a time (`FIELDS(ALL)` allows no more), in the
/// order the gap names them.
async fn read_all(
    client: &crate::salesforce::SalesforceClient,
    gap: &GapEvent,
) -> Result<Vec<Map<String, Value>>, WorkError> {
    let object = &gap.object;
    if object.is_empty()
        || !object
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(WorkError::Permanent(format!(
            "gap fetch: {object:?} is not an sObject API name"
        )));
    }
    let mut records = Vec::with_capacity(gap.record_ids.len());
    for ids in gap.record_ids.chunks(200) {
        let mut params = Map::new();
        params.insert(
            "ids".into(),
            Value::Array(ids.iter().map(|id| Value::from(id.as_str())).collect()),
        );
        let text = format!(
            "SELECT FIELDS(ALL) FROM {} WHERE Id IN :ids LIMIT 200",
            gap.object
        );
        let soql = crate::salesforce::Soql::bind(&text, &params)
            .map_err(|e| WorkError::Permanent(format!("gap fetch: {e}")))?;
        let mut rows = client.query(&gap.org_id, &soql).await?;
        for row in &mut rows {
            row.remove("attributes");
        }
        // Salesforce answers in no set order: the gap's order is kept.
        for id in ids {
            if let Some(at) = rows
                .iter()
                .position(|r| crate::salesforce::record_id(r).as_ref() == Some(id))
            {
                records.push(rows.swap_remove(at));
            }
        }
    }
    Ok(records)
}

/// The ids of the event made from one fetched record: its `event_id` and sfrelay's own id,
/// both derived from the gap (org, transaction, commit time, change) and the record's version
/// as fetched (`SystemModstamp`, `LastModifiedDate`), never minted afresh. A retried or
/// recovered gap job therefore routes the same events again, and the route jobs' dedupe (by
/// event and route) and the ledger absorb them; a record changed in between is a new version
/// and so a new event.
fn fetched_ids(gap: &GapEvent, id: &SalesforceId, record: &Map<String, Value>) -> (String, String) {
    let version = ["SystemModstamp", "LastModifiedDate"]
        .iter()
        .find_map(|field| record.get(*field).filter(|v| !v.is_null()))
        .map(Value::to_string)
        .unwrap_or_default();
    let canonical = serde_json::json!([
        gap.org_id.as_str(),
        gap.object,
        gap.transaction_key,
        gap.commit_timestamp.map(|t| t.timestamp_millis()),
        gap.change_type,
        id.as_str(),
        version,
    ])
    .to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let uuid = uuid::Builder::from_custom_bytes(bytes).into_uuid();
    (format!("gap:{}", uuid.simple()), uuid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap() -> GapEvent {
        GapEvent {
            org_id: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            object: "Opportunity".into(),
            record_ids: vec![SalesforceId::parse("006000000000001AAA").unwrap()],
            change_type: "GAP_UPDATE".into(),
            commit_timestamp: Some("2024-09-30T16:00:00Z".parse().unwrap()),
            transaction_key: Some("t-1".into()),
        }
    }

    fn record(modified: &str) -> Map<String, Value> {
        let Value::Object(record) = serde_json::json!({
            "Id": "006000000000001AAA", "StageName": "Closed Won", "SystemModstamp": modified
        }) else {
            unreachable!()
        };
        record
    }

    #[test]
    fn a_fetched_record_gets_the_same_ids_every_time_and_new_ones_for_a_new_version() {
        let gap = gap();
        let id = &gap.record_ids[0];
        let first = fetched_ids(&gap, id, &record("2024-09-30T16:00:00.000+0000"));
        assert_eq!(
            first,
            fetched_ids(&gap, id, &record("2024-09-30T16:00:00.000+0000"))
        );
        assert!(uuid::Uuid::parse_str(&first.1).is_ok(), "{first:?}");
        assert!(first.0.starts_with("gap:"), "{first:?}");
        let changed_since = fetched_ids(&gap, id, &record("2024-09-30T16:05:00.000+0000"));
        assert_ne!(first.1, changed_since.1);
        let mut other_transaction = gap.clone();
        other_transaction.transaction_key = Some("t-2".into());
        let other = fetched_ids(
            &other_transaction,
            id,
            &record("2024-09-30T16:00:00.000+0000"),
        );
        assert_ne!(first.1, other.1);
    }
}
