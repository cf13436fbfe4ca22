//! Parsing and validation of the Flow callout envelope.
//!
//! A valid body is read by a typed parse ([`typed`]), straight into the event's own fields.
//! Only when that refuses it is the body walked as a `serde_json::Value`, so that every problem
//! in the request is reported at once, each located by a JSON Pointer: a Flow admin fixes the
//! whole callout in one go instead of one error per attempt. Both apply the same value rules
//! (the functions below), so they accept the same bodies.

mod typed;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::event::{ChangeType, Event, SalesforceId};

/// One validation problem, located by a JSON Pointer into the request body
/// so the caller can find it in their Flow's JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the offending value; `""` is the body.
    pub path: String,
    /// What is wrong, in words a Flow admin understands.
    pub message: String,
}

/// Most envelopes one batch may hold, Salesforce's own bulk-trigger size, so
/// one Flow interview batch fits one request.
pub const MAX_BATCH: usize = 200;

/// Top-level envelope fields, in the order the error message lists them.
const FIELDS: [&str; 8] = [
    "org_id",
    "object",
    "record",
    "change_type",
    "changed_fields",
    "prior",
    "event_id",
    "occurred_at",
];

/// Parses a request body: one envelope object, or `{"events": [...]}` with
/// 1..=[`MAX_BATCH`] envelopes.
///
/// Returns every error found (not just the first); on any error, no events,
/// so a batch is accepted or rejected whole and a retry cannot half-repeat.
pub fn parse_flow_request(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, Vec<FieldError>> {
    match typed::parse(body, received_at) {
        Some(events) => Ok(events),
        None => walk(body, received_at),
    }
}

/// The generic walk: every problem of `body`, or its events when it has none.
fn walk(body: &[u8], received_at: DateTime<Utc>) -> Result<Vec<Event>, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![error(String::new(), format!("invalid JSON: {e}"))])?;
    let Value::Object(body) = value else {
        return Err(vec![error(
            String::new(),
            format!(
                "expected a JSON object (one envelope or {{\"events\": [...]}}), got {}",
                type_name(&value)
            ),
        )]);
    };

    let mut errors = Vec::new();
    let mut events = Vec::new();
    if body.contains_key("events") {
        for (key, value) in body {
            if key != "events" {
                errors.push(error(
                    pointer("", &key),
                    "unknown field; a batch body holds only \"events\"",
                ));
                continue;
            }
            match value {
                Value::Array(items) if items.is_empty() => {
                    errors.push(error("/events".into(), "must hold at least one event"))
                }
                Value::Array(items) if items.len() > MAX_BATCH => errors.push(error(
                    "/events".into(),
                    format!("holds {} events; at most {MAX_BATCH} allowed", items.len()),
                )),
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let base = format!("/events/{i}");
                        match item {
                            Value::Object(envelope) => events.extend(parse_envelope(
                                envelope,
                                &base,
                                received_at,
                                &mut errors,
                            )),
                            other => errors.push(expected(base, "an object", &other)),
                        }
                    }
                }
                other => errors.push(expected("/events".into(), "an array", &other)),
            }
        }
    } else {
        events.extend(parse_envelope(body, "", received_at, &mut errors));
    }

    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// Validates one envelope whose JSON Pointer is `base`, pushing every
/// problem onto `errors`; returns the event only when there were none.
fn parse_envelope(
    mut envelope: Map<String, Value>,
    base: &str,
    received_at: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> Option<Event> {
    let errors_before = errors.len();
    for key in envelope.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.push(error(
                pointer(base, key),
                format!("unknown field; expected one of {}", FIELDS.join(", ")),
            ));
        }
    }
    let path = |field: &str| pointer(base, field);

    let org_id = required(&mut envelope, "org_id", base, errors)
        .and_then(|v| string(v, path("org_id"), errors))
        .and_then(|s| checked(org_id(&s), path("org_id"), errors));

    let object = required(&mut envelope, "object", base, errors)
        .and_then(|v| api_name(v, path("object"), errors));

    let record = required(&mut envelope, "record", base, errors)
        .and_then(|v| object_value(v, path("record"), errors))
        .and_then(|mut record| {
            let record_base = path("record");
            let id = required(&mut record, "Id", &record_base, errors)
                .and_then(|v| string(v, pointer(&record_base, "Id"), errors))
                .and_then(|s| id(&s, pointer(&record_base, "Id"), errors))?;
            record.insert("Id".into(), Value::String(id.as_str().into()));
            Some((id, record))
        });

    let change_type = optional(&mut envelope, "change_type")
        .and_then(|v| string(v, path("change_type"), errors))
        .and_then(|s| checked(change_type(&s), path("change_type"), errors))
        .unwrap_or_default();

    let changed_fields = optional(&mut envelope, "changed_fields").and_then(|v| match v {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| string(item, format!("{}/{i}", path("changed_fields")), errors))
            // Check every element before giving up, so all bad ones are reported.
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Option<Vec<_>>>(),
        other => {
            errors.push(expected(
                path("changed_fields"),
                "an array of strings",
                &other,
            ));
            None
        }
    });

    let prior =
        optional(&mut envelope, "prior").and_then(|v| object_value(v, path("prior"), errors));

    let event_id = optional(&mut envelope, "event_id")
        .and_then(|v| string(v, path("event_id"), errors))
        .and_then(|s| checked(event_id(&s).map(|()| s), path("event_id"), errors));

    let occurred_at = optional(&mut envelope, "occurred_at")
        .and_then(|v| string(v, path("occurred_at"), errors))
        .and_then(|s| checked(occurred_at(&s), path("occurred_at"), errors));

    if errors.len() > errors_before {
        return None;
    }
    let (record_id, record) = record?;
    Some(Event {
        id: uuid::Uuid::now_v7().to_string(),
        org_id: org_id?,
        object: object?,
        record_id,
        record,
        change_type,
        changed_fields,
        prior,
        event_id,
        occurred_at,
        received_at,
    })
}

/// The org Id an envelope names: a Salesforce Id of an Organization.
fn org_id(s: &str) -> Result<SalesforceId, String> {
    let id = SalesforceId::parse(s).map_err(|e| format!("invalid Salesforce Id: {e}"))?;
    if id.key_prefix() == "00D" {
        Ok(id)
    } else {
        Err("not an org Id (must start with 00D)".into())
    }
}

/// The change type's wire spelling.
fn change_type(s: &str) -> Result<ChangeType, String> {
    match s {
        "CREATE" => Ok(ChangeType::Create),
        "UPDATE" => Ok(ChangeType::Update),
        "DELETE" => Ok(ChangeType::Delete),
        "UNDELETE" => Ok(ChangeType::Undelete),
        _ => Err("must be one of CREATE, UPDATE, DELETE, UNDELETE".into()),
    }
}

/// The sender's event id: 1 to 255 characters, so it can key the dedupe window.
fn event_id(s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if (1..=255).contains(&len) {
        Ok(())
    } else {
        Err(format!("must be 1 to 255 characters, got {len}"))
    }
}

/// When the change happened, as RFC 3339.
fn occurred_at(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("must be an RFC 3339 timestamp such as 2025-09-30T16:00:00Z ({e})"))
}

/// The value a rule let through, or its refusal recorded at `path`.
fn checked<T>(rule: Result<T, String>, path: String, errors: &mut Vec<FieldError>) -> Option<T> {
    rule.map_err(|message| errors.push(error(path, message)))
        .ok()
}

/// Takes a required field out of `map`, reporting it when missing or null.
pub(super) fn required(
    map: &mut Map<String, Value>,
    key: &str,
    base: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Value> {
    match map.remove(key) {
        None => {
            errors.push(error(pointer(base, key), "required field is missing"));
            None
        }
        Some(Value::Null) => {
            errors.push(error(pointer(base, key), "required field is null"));
            None
        }
        Some(v) => Some(v),
    }
}

/// Takes an optional field out of `map`; `null` counts as absent because
/// Flow sends unset variables as null.
pub(super) fn optional(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.remove(key).filter(|v| !v.is_null())
}

/// The string inside `value`, or an error at `path` naming the type.
pub(super) fn string(value: Value, path: String, errors: &mut Vec<FieldError>) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        other => {
            errors.push(expected(path, "a string", &other));
            None
        }
    }
}

/// The object inside `value`, or an error at `path` naming the type.
pub(super) fn object_value(
    value: Value,
    path: String,
    errors: &mut Vec<FieldError>,
) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => {
            errors.push(expected(path, "an object", &other));
            None
        }
    }
}

/// Parses a Salesforce Id, or records why it is not one.
pub(super) fn id(s: &str, path: String, errors: &mut Vec<FieldError>) -> Option<SalesforceId> {
    SalesforceId::parse(s)
        .map_err(|e| errors.push(error(path, format!("invalid Salesforce Id: {e}"))))
        .ok()
}

/// The sObject API name inside `value`, or an error at `path` saying what one looks like.
pub(super) fn api_name(value: Value, path: String, errors: &mut Vec<FieldError>) -> Option<String> {
    let name = string(value, path.clone(), errors)?;
    if is_api_name(&name) {
        Some(name)
    } else {
        errors.push(error(
            path,
            "must be an sObject API name: letters, digits and underscores, \
             starting with a letter, at most 80 characters",
        ));
        None
    }
}

/// Letters, digits and underscores, starting with a letter, at most 80
/// characters: the shape of every sObject API name.
pub(super) fn is_api_name(name: &str) -> bool {
    name.len() <= 80
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Joins `base` and one key into a JSON Pointer, escaping `~` and `/`.
pub(super) fn pointer(base: &str, key: &str) -> String {
    let mut path = String::with_capacity(base.len() + 1 + key.len());
    path.push_str(base);
    path.push('/');
    if key.contains(['~', '/']) {
        path.push_str(&key.replace('~', "~0").replace('/', "~1"));
    } else {
        path.push_str(key);
    }
    path
}

/// Builds a [`FieldError`].
pub(super) fn error(path: String, message: impl Into<String>) -> FieldError {
    FieldError {
        path,
        message: message.into(),
    }
}

/// A wrong-type error that names both the expected and the actual type.
pub(super) fn expected(path: String, what: &str, got: &Value) -> FieldError {
    error(path, format!("expected {what}, got {}", type_name(got)))
}

/// The JSON type of `value`, as named in error messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLOSED_WON: &str = r#"{"event_id":"a0B5g000001XyZ1EAK-006Hs00000BkXyzIAF-1","org_id":"00D5g000004ABCdEAO","object":"Opportunity","change_type":"UPDATE","changed_fields":["StageName"],"occurred_at":"2025-09-30T16:00:00Z","record":{"Id":"006Hs00000BkXyzIAF","Name":"Acme Corp - Q3 Enterprise","StageName":"Closed Won","Amount":75000,"Account":{"Name":"Acme Corp"},"Owner":{"Name":"Dana Seller","Email":"dana.seller@example.com"}},"prior":{"StageName":"Negotiation/Review"}}"#;

    fn now() -> DateTime<Utc> {
        "2025-09-30T16:00:05Z".parse().unwrap()
    }

    fn parse(body: &Value) -> Result<Vec<Event>, Vec<FieldError>> {
        parse_flow_request(body.to_string().as_bytes(), now())
    }

    /// The paths of the errors `body` must produce.
    fn error_paths(body: &Value) -> Vec<String> {
        parse(body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    fn minimal() -> Value {
        json!({
            "org_id": "00D5g000004ABCdEAO",
            "object": "Opportunity",
            "record": { "Id": "006Hs00000BkXyzIAF" },
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut body = minimal();
        body[field] = value;
        body
    }

    #[test]
    fn closed_won_parses() {
        let events = parse_flow_request(CLOSED_WON.as_bytes(), now()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
        assert_eq!(e.org_id.as_str(), "00D5g000004ABCdEAO");
        assert_eq!(e.object, "Opportunity");
        assert_eq!(e.record_id.as_str(), "006Hs00000BkXyzIAF");
        assert_eq!(e.record["Id"], "006Hs00000BkXyzIAF");
        assert_eq!(e.record["StageName"], "Closed Won");
        assert_eq!(e.record["Amount"], 75000);
        assert_eq!(e.record["Account"]["Name"], "Acme Corp");
        assert_eq!(e.record["Owner"]["Email"], "dana.seller@example.com");
        assert_eq!(e.change_type, ChangeType::Update);
        assert_eq!(e.changed_fields, Some(vec!["StageName".to_owned()]));
        assert_eq!(e.prior.as_ref().unwrap()["StageName"], "Negotiation/Review");
        assert_eq!(
            e.event_id.as_deref(),
            Some("a0B5g000001XyZ1EAK-006Hs00000BkXyzIAF-1")
        );
        assert_eq!(e.occurred_at, Some("2025-09-30T16:00:00Z".parse().unwrap()));
        assert_eq!(e.received_at, now());
    }

    #[test]
    fn minimal_envelope_uses_defaults() {
        let events = parse(&minimal()).unwrap();
        let e = &events[0];
        assert_eq!(e.change_type, ChangeType::Update);
        assert_eq!(
            (&e.changed_fields, &e.prior, &e.event_id, &e.occurred_at),
            (&None, &None, &None, &None)
        );
    }

    #[test]
    fn nulls_count_as_absent() {
        let mut body = minimal();
        for field in [
            "change_type",
            "changed_fields",
            "prior",
            "event_id",
            "occurred_at",
        ] {
            body[field] = Value::Null;
        }
        assert!(parse(&body).is_ok());
    }

    #[test]
    fn bad_record_id_checksum() {
        let body = json!({ "org_id": "00D5g000004ABCdEAO", "object": "Opportunity", "record": { "Id": "006Hs00000BkXyzIAA", "StageName": "Closed Won" } });
        let errors = parse(&body).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/record/Id");
        assert!(errors[0].message.contains("checksum"), "{:?}", errors[0]);
    }

    #[test]
    fn missing_org_id() {
        let body = json!({ "object": "Opportunity", "record": { "Id": "006Hs00000BkXyzIAF" } });
        let errors = parse(&body).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/org_id");
        assert!(errors[0].message.contains("required"));
    }

    #[test]
    fn reports_every_wrong_type() {
        let body = json!({ "org_id": "00D5g000004ABCdEAO", "object": 42, "changed_fields": "StageName", "record": [] });
        let errors = parse(&body).unwrap_err();
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/object", "/record", "/changed_fields"]);
        assert_eq!(errors[0].message, "expected a string, got number");
        assert_eq!(errors[1].message, "expected an object, got array");
    }

    #[test]
    fn batch_paths() {
        let mut second = minimal();
        second["record"] = json!({ "Name": "no id" });
        let body = json!({ "events": [minimal(), second] });
        assert_eq!(error_paths(&body), ["/events/1/record/Id"]);

        let body = json!({ "events": [minimal(), 7] });
        assert_eq!(error_paths(&body), ["/events/1"]);
    }

    #[test]
    fn batch_size_limits() {
        let ok = json!({ "events": vec![minimal(); MAX_BATCH] });
        let events = parse(&ok).unwrap();
        assert_eq!(events.len(), MAX_BATCH);
        assert_ne!(events[0].id, events[1].id);

        let too_many = json!({ "events": vec![minimal(); MAX_BATCH + 1] });
        assert_eq!(error_paths(&too_many), ["/events"]);
        assert_eq!(error_paths(&json!({ "events": [] })), ["/events"]);
        assert_eq!(error_paths(&json!({ "events": {} })), ["/events"]);
        assert_eq!(
            error_paths(&json!({ "events": [minimal()], "x": 1 })),
            ["/x"]
        );
    }

    #[test]
    fn org_id_15_is_normalised() {
        let events = parse(&with("org_id", json!("00D5g000004ABCd"))).unwrap();
        assert_eq!(events[0].org_id.as_str(), "00D5g000004ABCdEAO");
    }

    #[test]
    fn record_id_15_is_written_back() {
        let events = parse(&with("record", json!({ "Id": "006Hs00000BkXyz" }))).unwrap();
        assert_eq!(events[0].record_id.as_str(), "006Hs00000BkXyzIAF");
        assert_eq!(events[0].record["Id"], "006Hs00000BkXyzIAF");
    }

    #[test]
    fn field_rules() {
        let cases = [
            ("changed_fields", json!(["A", 3]), "/changed_fields/1"),
            ("occurred_at", json!("yesterday"), "/occurred_at"),
            ("event_id", json!("x".repeat(256)), "/event_id"),
            ("event_id", json!(""), "/event_id"),
            ("org_id", json!("006Hs00000BkXyzIAF"), "/org_id"),
            ("change_type", json!("update"), "/change_type"),
            ("prior", json!("x"), "/prior"),
            ("object", json!("1Opportunity"), "/object"),
            ("object", json!("Bad-Name"), "/object"),
            ("object", json!("A".repeat(81)), "/object"),
            ("record", json!({ "Id": null }), "/record/Id"),
            ("record", json!({ "Id": 5 }), "/record/Id"),
        ];
        for (field, value, path) in cases {
            assert_eq!(error_paths(&with(field, value)), [path], "{field}");
        }
        let errors = parse(&with("org_id", json!("006Hs00000BkXyzIAF"))).unwrap_err();
        assert_eq!(errors[0].message, "not an org Id (must start with 00D)");
        assert!(parse(&with("event_id", json!("x".repeat(255)))).is_ok());
        assert!(parse(&with("object", json!("Custom__c"))).is_ok());
        assert!(parse(&with("change_type", json!("UNDELETE"))).is_ok());
    }

    #[test]
    fn unknown_fields_rejected_with_escaped_pointer() {
        let errors = parse(&with("a/b~c", json!(1))).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "/a~1b~0c");
        assert_eq!(
            errors[0].message,
            "unknown field; expected one of org_id, object, record, change_type, \
             changed_fields, prior, event_id, occurred_at"
        );
        // Unknown record fields are kept, not rejected.
        let events = parse(&with(
            "record",
            json!({ "Id": "006Hs00000BkXyzIAF", "Zz__c": [1] }),
        ))
        .unwrap();
        assert_eq!(events[0].record["Zz__c"], json!([1]));
    }

    #[test]
    fn body_must_be_a_json_object() {
        let errors = parse_flow_request(b"{\"org_id\": ", now()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
        assert!(
            errors[0].message.contains("line 1 column"),
            "{:?}",
            errors[0]
        );

        let errors = parse_flow_request(b"[1]", now()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
        assert!(errors[0].message.contains("got array"), "{:?}", errors[0]);
    }
}
