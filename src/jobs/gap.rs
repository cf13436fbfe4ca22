//! A CDC gap event's job: Salesforce sent no field values, so the records are read back and
//! routed — only when a route for that object asks for it (`on_gap = "fetch"`).

use super::{JobError, Jobs, WorkError};
use crate::event::{ChangeType, Event, GapEvent};
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
    let change_type = match gap.change_type.as_str() {
        "GAP_CREATE" => ChangeType::Create,
        "GAP_DELETE" => ChangeType::Delete,
        "GAP_UNDELETE" => ChangeType::Undelete,
        _ => ChangeType::Update,
    };
    let mut events = Vec::with_capacity(gap.record_ids.len());
    for id in &gap.record_ids {
        let mut record = client
            .get_record(&gap.org_id, &gap.object, id.as_str(), &[])
            .await?;
        record.remove("attributes");
        record.insert("Id".into(), id.to_string().into());
        events.push(Event {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: gap.org_id.clone(),
            object: gap.object.clone(),
            record_id: id.clone(),
            record,
            change_type,
            changed_fields: None,
            prior: None,
            event_id: None,
            occurred_at: gap.commit_timestamp,
            received_at: chrono::Utc::now(),
        });
    }
    Ok(events)
}
