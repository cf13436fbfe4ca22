//! sfrelay's own writes coming back. A change made from a card returns as a Flow callout or a
//! change event like any other; the card already shows it, so the card's own route (and the
//! routes that redraw that card) skip it, and every other route still fires: a stage moved to
//! Closed Won from Slack still opens the deal room.
//!
//! Flow callouts carry no origin, so the write is recognised by what it wrote: the record, and
//! the fields with the values sent, seen within a short window.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::Event;
use crate::keys::Key;
use crate::routing::{RouteSet, Target};
use crate::store::{Store, StoreError};

/// How long after a write its echo is recognised.
pub const ECHO_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Fields Salesforce changes on every write: an echo may show them changed too.
const SYSTEM_FIELDS: [&str; 4] = [
    "LastModifiedDate",
    "SystemModstamp",
    "LastModifiedById",
    "LastReferencedDate",
];

/// One write from a card: what it set and which routes are the card's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnWrite {
    pub routes: Vec<String>,
    pub fields: Map<String, Value>,
}

/// The card's route and the routes that update that card in place.
pub fn card_routes(routes: &RouteSet, card_route: &str) -> Vec<String> {
    let mut names = vec![card_route.to_string()];
    for route in &routes.routes {
        let redraws = route
            .actions
            .iter()
            .any(|a| matches!(&a.target, Target::Update { on, .. } if on == card_route));
        if redraws && route.name != card_route {
            names.push(route.name.clone());
        }
    }
    names
}

/// Notes a write to `event`'s record, before it is made (so an echo never beats the note).
pub async fn note(
    store: &dyn Store,
    org: &crate::event::SalesforceId,
    record: &crate::event::SalesforceId,
    write: &OwnWrite,
) -> Result<(), StoreError> {
    let key = Key::own_write(org, record, ECHO_WINDOW);
    let value = serde_json::to_string(write).map_err(|e| StoreError(e.to_string()))?;
    store.set(key.as_str(), &value, key.ttl()).await
}

/// The routes that skip `event` because it is the echo of a write from one of their cards.
pub async fn routes_to_skip(store: &dyn Store, event: &Event) -> Result<Vec<String>, StoreError> {
    let key = Key::own_write(&event.org_id, &event.record_id, ECHO_WINDOW);
    let Some(text) = store.get(key.as_str()).await? else {
        return Ok(Vec::new());
    };
    let Ok(write) = serde_json::from_str::<OwnWrite>(&text) else {
        return Ok(Vec::new());
    };
    Ok(if is_echo(&write, event) {
        write.routes
    } else {
        Vec::new()
    })
}

/// Whether two field values are the same (numbers compared as numbers).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Whether `event` shows exactly what `write` wrote: every field with its value, and (when
/// the sender says what changed) nothing else but system fields.
pub fn is_echo(write: &OwnWrite, event: &Event) -> bool {
    let shows = write
        .fields
        .iter()
        .all(|(field, value)| event.record.get(field).is_some_and(|v| same(v, value)));
    let only = event.changed_fields.as_ref().is_none_or(|changed| {
        changed
            .iter()
            .all(|f| write.fields.contains_key(f) || SYSTEM_FIELDS.contains(&f.as_str()))
    });
    shows && only && !write.fields.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(record: Value, changed: Option<Vec<&str>>) -> Event {
        let mut body = json!({"org_id": "00D5g000004ABCdEAO", "object": "Opportunity",
            "change_type": "UPDATE", "record": record});
        if let Some(changed) = changed {
            body["changed_fields"] = json!(changed);
        }
        let body = serde_json::to_vec(&body).unwrap();
        crate::ingest::flow::parse_flow_request(&body, chrono::Utc::now())
            .unwrap()
            .remove(0)
    }

    fn write(fields: Value) -> OwnWrite {
        OwnWrite {
            routes: vec!["card".into()],
            fields: fields.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn the_write_coming_back_is_an_echo() {
        let w = write(json!({"StageName": "Closed Won"}));
        let back = event(
            json!({"Id": "006Hs00000BkXyzIAF", "StageName": "Closed Won", "Amount": 5}),
            None,
        );
        assert!(is_echo(&w, &back));
        let with_changed = event(
            json!({"Id": "006Hs00000BkXyzIAF", "StageName": "Closed Won"}),
            Some(vec!["StageName", "LastModifiedDate"]),
        );
        assert!(is_echo(&w, &with_changed));
    }

    #[test]
    fn another_change_is_not_an_echo() {
        let w = write(json!({"StageName": "Closed Won", "Amount": 100}));
        for (record, changed) in [
            (
                json!({"Id": "006Hs00000BkXyzIAF", "StageName": "Negotiation", "Amount": 100}),
                None,
            ),
            (
                json!({"Id": "006Hs00000BkXyzIAF", "StageName": "Closed Won", "Amount": 100.0}),
                Some(vec!["StageName", "CloseDate"]),
            ),
            (json!({"Id": "006Hs00000BkXyzIAF"}), None),
        ] {
            assert!(!is_echo(&w, &event(record.clone(), changed)), "{record}");
        }
        let numbers = event(
            json!({"Id": "006Hs00000BkXyzIAF", "StageName": "Closed Won", "Amount": 100.0}),
            None,
        );
        assert!(is_echo(&w, &numbers), "100 and 100.0 are the same amount");
    }
}
