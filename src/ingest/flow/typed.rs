//! The fast road for a valid body: serde reads the envelope straight into typed fields,
//! borrowing what it can from the request, so a callout costs one pass and no intermediate
//! `Value` tree. It never reports anything: whatever it refuses (a wrong type, an unknown or
//! repeated field, a rule broken) goes to the walk, which finds every problem and names each.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{MAX_BATCH, change_type, event_id, is_api_name, occurred_at, org_id};
use crate::event::{Event, SalesforceId};

/// One envelope, as the walk's `FIELDS` name them; `null` reads as absent, like the walk.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    org_id: Cow<'a, str>,
    #[serde(borrow)]
    object: Cow<'a, str>,
    record: Map<String, Value>,
    #[serde(default, borrow)]
    change_type: Option<Cow<'a, str>>,
    #[serde(default)]
    changed_fields: Option<Vec<String>>,
    #[serde(default)]
    prior: Option<Map<String, Value>>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default, borrow)]
    occurred_at: Option<Cow<'a, str>>,
}

/// `{"events": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch<'a> {
    #[serde(borrow)]
    events: Vec<Envelope<'a>>,
}

/// The events of a body that breaks no rule; `None` sends it to the walk.
pub(super) fn parse(body: &[u8], received_at: DateTime<Utc>) -> Option<Vec<Event>> {
    // A batch fails the single shape at its first key, so trying both costs a batch nothing.
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(body) {
        return envelope.into_event(received_at).map(|event| vec![event]);
    }
    let batch: Batch = serde_json::from_slice(body).ok()?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH {
        return None;
    }
    batch
        .events
        .into_iter()
        .map(|envelope| envelope.into_event(received_at))
        .collect()
}

impl Envelope<'_> {
    /// The event, when every value keeps the walk's rules.
    fn into_event(self, received_at: DateTime<Utc>) -> Option<Event> {
        let org_id = org_id(&self.org_id).ok()?;
        if !is_api_name(&self.object) {
            return None;
        }
        let mut record = self.record;
        let (record_id, as_sent) = match record.get("Id") {
            Some(Value::String(id)) => {
                let parsed = SalesforceId::parse(id).ok()?;
                let as_sent = parsed.as_str() == id;
                (parsed, as_sent)
            }
            _ => return None,
        };
        if !as_sent {
            // The 15-character form is written back as 18, as the walk does.
            record.insert("Id".into(), Value::String(record_id.as_str().into()));
        }
        let change_type = match &self.change_type {
            Some(spelling) => change_type(spelling).ok()?,
            None => Default::default(),
        };
        if let Some(id) = &self.event_id {
            event_id(id).ok()?;
        }
        let occurred_at = match &self.occurred_at {
            Some(at) => Some(occurred_at(at).ok()?),
            None => None,
        };
        Some(Event {
            id: uuid::Uuid::now_v7().to_string(),
            org_id,
            object: self.object.into_owned(),
            record_id,
            record,
            change_type,
            changed_fields: self.changed_fields,
            prior: self.prior,
            event_id: self.event_id,
            occurred_at,
            received_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::walk;
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2025-09-30T16:00:05Z".parse().unwrap()
    }

    /// Both roads' events, with the fresh ids blanked so they compare.
    fn both(body: &Value) -> (Option<Vec<Event>>, Option<Vec<Event>>) {
        let bytes = body.to_string().into_bytes();
        let blank = |mut events: Vec<Event>| {
            events.iter_mut().for_each(|e| e.id.clear());
            events
        };
        (
            parse(&bytes, now()).map(blank),
            walk(&bytes, now()).ok().map(blank),
        )
    }

    fn envelope() -> Value {
        json!({
            "event_id": "a0B5g000001XyZ1EAK-006Hs00000BkXyzIAF-1",
            "org_id": "00D5g000004ABCd",
            "object": "Opportunity",
            "change_type": "UPDATE",
            "changed_fields": ["StageName"],
            "occurred_at": "2025-09-30T16:00:00Z",
            "record": {
                "Id": "006Hs00000BkXyz",
                "Name": "Acme \"Corp\" \u{e9}",
                "Amount": 75000,
                "Account": { "Name": "Acme Corp" }
            },
            "prior": { "StageName": "Negotiation/Review" }
        })
    }

    #[test]
    fn a_valid_body_gives_the_walks_events() {
        let minimal = json!({
            "org_id": "00D5g000004ABCdEAO",
            "object": "Custom__c",
            "record": { "Id": "006Hs00000BkXyzIAF" },
            "change_type": null,
            "prior": null,
        });
        for body in [
            envelope(),
            minimal.clone(),
            json!({ "events": [envelope(), minimal] }),
        ] {
            let (fast, walked) = both(&body);
            assert!(fast.is_some(), "{body}");
            assert_eq!(fast, walked, "{body}");
        }
        let (fast, _) = both(&envelope());
        let event = &fast.unwrap()[0];
        assert_eq!(event.org_id.as_str(), "00D5g000004ABCdEAO");
        assert_eq!(event.record["Id"], "006Hs00000BkXyzIAF");
    }

    #[test]
    fn every_flow_fixture_reads_the_same_on_both_roads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut fast_ones = 0;
        for sub in ["", "hostile", "invalid"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.extension().is_none_or(|e| e != "json") || name.starts_with("cdc-") {
                    continue;
                }
                let body: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                let (fast, walked) = both(&body);
                assert_eq!(fast, walked, "{}", path.display());
                fast_ones += usize::from(fast.is_some());
            }
        }
        // The valid and hostile callouts took the fast road; the invalid ones the walk.
        assert_eq!(fast_ones, 6);
    }

    #[test]
    fn whatever_breaks_a_rule_is_left_to_the_walk() {
        let with = |field: &str, value: Value| {
            let mut body = envelope();
            body[field] = value;
            body
        };
        let refused = [
            with("org_id", json!("006Hs00000BkXyzIAF")),
            with("org_id", json!(null)),
            with("object", json!("Bad-Name")),
            with("record", json!({ "Name": "no id" })),
            with("record", json!({ "Id": 5 })),
            with("change_type", json!("update")),
            with("event_id", json!("")),
            with("occurred_at", json!("yesterday")),
            with("changed_fields", json!(["A", 3])),
            with("unknown", json!(1)),
            json!({ "events": [] }),
            json!({ "events": vec![envelope(); MAX_BATCH + 1] }),
            json!({ "events": [envelope()], "x": 1 }),
            json!([envelope()]),
        ];
        for body in refused {
            let (fast, walked) = both(&body);
            assert_eq!(fast, None, "{body}");
            assert_eq!(walked, None, "{body}");
        }
    }

    #[test]
    fn a_repeated_field_is_read_as_the_walk_reads_it() {
        let body = br#"{"org_id":"00D5g000004ABCdEAO","object":"Lead","object":"Opportunity","record":{"Id":"006Hs00000BkXyzIAF"}}"#;
        assert!(parse(body, now()).is_none());
        let events = walk(body, now()).unwrap();
        assert_eq!(events[0].object, "Opportunity");
    }
}
