//! Parsing of Salesforce Change Data Capture (CDC) events.
//!
//! A CDC event describes one change that may touch several records of one
//! object (`recordIds`), so it fans out into one [`Event`] per record. Gap
//! events carry no field values at all; they come back separately as
//! [`GapEvent`]s so the caller can fetch the records before anything is
//! routed, instead of posting a message built from an empty record.
//!
//! Like the Flow envelope, the body is walked as a `serde_json::Value` and
//! every problem is collected with a JSON Pointer, so a relay's owner fixes a
//! malformed body in one go.

use chrono::{DateTime, Utc};

use serde_json::{Map, Value};

use super::flow::{
    FieldError, MAX_BATCH, api_name, error, expected, id, object_value, optional, pointer,
    required, string, type_name,
};
use crate::event::{ChangeType, Event, GapEvent, SalesforceId};

/// What a CDC body became: events to route, plus gap events (header only)
/// that need the record fetched.
///
/// Kept apart because the two take different roads after ingest: events go
/// straight to routing, gaps first to a Salesforce read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CdcBatch {
    /// One event per record named by each data change event, in body order.
    pub events: Vec<Event>,
    /// Gap and overflow events, in body order.
    pub gaps: Vec<GapEvent>,
}

/// The gap change types, which carry a header but no field values.
const GAP_TYPES: [&str; 5] = [
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// Parses one CDC event object or a JSON array of up to [`MAX_BATCH`] of
/// them.
///
/// An event may come as Salesforce's message (`{"schema", "payload",
/// "event": {"replayId"}}`), as CometD delivers it (that message under
/// `"data"`), or as the bare payload (`{"ChangeEventHeader", fields…}`) that
/// some relays forward. The org comes from the credential because CDC
/// payloads do not name it.
///
/// Returns every error found; on any error, nothing, so a retry of the whole
/// body cannot half-repeat.
pub fn parse_cdc_request(
    body: &[u8],
    org_id: &SalesforceId,
    received_at: DateTime<Utc>,
) -> Result<CdcBatch, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![error(String::new(), format!("invalid JSON: {e}"))])?;
    parse_cdc_value(value, org_id, received_at)
}

/// [`parse_cdc_request`] of a body already parsed, e.g. a change event the Pub/Sub
/// subscriber decoded from Avro: the same checks and the same events.
pub fn parse_cdc_value(
    value: Value,
    org_id: &SalesforceId,
    received_at: DateTime<Utc>,
) -> Result<CdcBatch, Vec<FieldError>> {
    let context = Context {
        org_id,
        received_at,
    };
    let mut batch = CdcBatch::default();
    let mut errors = Vec::new();
    match value {
        Value::Object(message) => parse_message(message, "", &context, &mut batch, &mut errors),
        Value::Array(items) if items.is_empty() => {
            errors.push(error(String::new(), "must hold at least one change event"))
        }
        Value::Array(items) if items.len() > MAX_BATCH => errors.push(error(
            String::new(),
            format!(
                "holds {} change events; at most {MAX_BATCH} allowed",
                items.len()
            ),
        )),
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let base = format!("/{i}");
                match item {
                    Value::Object(message) => {
                        parse_message(message, &base, &context, &mut batch, &mut errors)
                    }
                    other => errors.push(expected(base, "an object", &other)),
                }
            }
        }
        other => errors.push(expected(
            String::new(),
            "a change event object or an array of them",
            &other,
        )),
    }
    if errors.is_empty() {
        Ok(batch)
    } else {
        Err(errors)
    }
}

/// What every event of one request shares.
struct Context<'a> {
    org_id: &'a SalesforceId,
    received_at: DateTime<Utc>,
}

/// Unwraps one message at `base` (full, CometD-wrapped or bare payload) and
/// hands its payload on.
fn parse_message(
    mut message: Map<String, Value>,
    base: &str,
    context: &Context<'_>,
    batch: &mut CdcBatch,
    errors: &mut Vec<FieldError>,
) {
    if !message.contains_key("payload") {
        // CometD puts the message under "data", next to "channel".
        if let Some(Value::Object(data)) = message.get_mut("data")
            && data.contains_key("payload")
        {
            let data = std::mem::take(data);
            return parse_message(data, &pointer(base, "data"), context, batch, errors);
        }
        return parse_payload(message, base, None, context, batch, errors);
    }
    let replay_id = replay_id(&mut message, base, errors);
    let payload_path = pointer(base, "payload");
    if let Some(payload) = required(&mut message, "payload", base, errors)
        .and_then(|v| object_value(v, payload_path.clone(), errors))
    {
        parse_payload(payload, &payload_path, replay_id, context, batch, errors);
    }
}

/// `event.replayId` as text, when present: a number from CometD, or a
/// string from relays that pass the Pub/Sub API's opaque replay id on.
fn replay_id(
    message: &mut Map<String, Value>,
    base: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let event_path = pointer(base, "event");
    let mut event =
        optional(message, "event").and_then(|v| object_value(v, event_path.clone(), errors))?;
    let path = pointer(&event_path, "replayId");
    match optional(&mut event, "replayId")? {
        // Printing the Number keeps every digit; no float round trip.
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Value::String(s) if !s.is_empty() && s.len() <= 200 => Some(s),
        Value::String(_) => {
            errors.push(error(path, "must be 1 to 200 characters"));
            None
        }
        other => {
            errors.push(expected(path, "an integer or a string", &other));
            None
        }
    }
}

/// A validated header: the part of a change event that says what changed.
struct Header {
    object: String,
    kind: Kind,
    record_ids: Vec<SalesforceId>,
    commit_timestamp: Option<DateTime<Utc>>,
    transaction_key: Option<String>,
    sequence_number: Option<u64>,
    changed_fields: Vec<String>,
    nulled_fields: Vec<String>,
}

/// The two roads a change event takes.
enum Kind {
    /// Field values are included: becomes events.
    Data(ChangeType),
    /// Field values are missing: becomes a [`GapEvent`] with this spelling.
    Gap(String),
}

/// Validates one payload at `base` and adds what it became to `batch`,
/// or its problems to `errors`.
fn parse_payload(
    mut payload: Map<String, Value>,
    base: &str,
    replay_id: Option<String>,
    context: &Context<'_>,
    batch: &mut CdcBatch,
    errors: &mut Vec<FieldError>,
) {
    let header_path = pointer(base, "ChangeEventHeader");
    let Some(header) = required(&mut payload, "ChangeEventHeader", base, errors)
        .and_then(|v| object_value(v, header_path.clone(), errors))
    else {
        return;
    };
    let Some(header) = parse_header(header, &header_path, replay_id.is_some(), errors) else {
        return;
    };

    let change_type = match header.kind {
        Kind::Gap(change_type) => {
            batch.gaps.push(GapEvent {
                org_id: context.org_id.clone(),
                object: header.object,
                record_ids: header.record_ids,
                change_type,
                commit_timestamp: header.commit_timestamp,
                transaction_key: header.transaction_key,
            });
            return;
        }
        Kind::Data(change_type) => change_type,
    };

    // What is left of the payload is the record's field values.
    let mut record = payload;
    for field in &header.nulled_fields {
        set_null(&mut record, field);
    }
    // Salesforce lists nothing for CREATE, DELETE and UNDELETE: that means
    // "not applicable", not "nothing changed", so it becomes None and
    // `changed(…)` conditions fall back to their no-list behaviour.
    let changed_fields = (!header.changed_fields.is_empty()).then_some(header.changed_fields);
    // One CDC event can name several records, so the record Id makes each
    // record's event its own dedupe key.
    let event_key = match (&replay_id, &header.transaction_key, header.sequence_number) {
        (Some(replay_id), _, _) => replay_id.clone(),
        (None, Some(key), Some(sequence)) => format!("{key}:{sequence}"),
        // parse_header requires both when there is no replay id.
        (None, _, _) => return,
    };
    for record_id in header.record_ids {
        let mut record = record.clone();
        record.insert("Id".into(), Value::String(record_id.as_str().into()));
        batch.events.push(Event {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: context.org_id.clone(),
            object: header.object.clone(),
            event_id: Some(format!("cdc:{event_key}:{record_id}")),
            record_id,
            record,
            change_type,
            changed_fields: changed_fields.clone(),
            prior: None,
            occurred_at: header.commit_timestamp,
            received_at: context.received_at,
        });
    }
}

/// Validates a `ChangeEventHeader` at `base`; returns it only when it had no
/// problem.
///
/// Data events need `commitTimestamp` and, when no replay id came along,
/// `transactionKey` with `sequenceNumber`, which then make the dedupe key;
/// Salesforce always sends all three. Gap events only need what locates the
/// records. Fields
/// sfrelay does not use are still type-checked when present, since a wrong
/// type there means the relay mangled the event.
fn parse_header(
    mut header: Map<String, Value>,
    base: &str,
    has_replay_id: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Header> {
    let errors_before = errors.len();
    let path = |field: &str| pointer(base, field);

    let object = required(&mut header, "entityName", base, errors)
        .and_then(|v| api_name(v, path("entityName"), errors));

    let kind = required(&mut header, "changeType", base, errors)
        .and_then(|v| string(v, path("changeType"), errors))
        .and_then(|s| match s.as_str() {
            "CREATE" => Some(Kind::Data(ChangeType::Create)),
            "UPDATE" => Some(Kind::Data(ChangeType::Update)),
            "DELETE" => Some(Kind::Data(ChangeType::Delete)),
            "UNDELETE" => Some(Kind::Data(ChangeType::Undelete)),
            gap if GAP_TYPES.contains(&gap) => Some(Kind::Gap(gap.to_owned())),
            _ => {
                errors.push(error(
                    path("changeType"),
                    format!(
                        "must be one of CREATE, UPDATE, DELETE, UNDELETE, {}",
                        GAP_TYPES.join(", ")
                    ),
                ));
                None
            }
        });
    let is_gap = matches!(kind, Some(Kind::Gap(_)));
    let is_overflow = matches!(&kind, Some(Kind::Gap(s)) if s == "GAP_OVERFLOW");

    let record_ids = if is_overflow {
        // Only Salesforce's empty Id (000000000000000AAA), when anything:
        // checked, then dropped, since an overflow names no record.
        if let Some(v) = optional(&mut header, "recordIds") {
            record_ids(v, &path("recordIds"), errors);
        }
        Some(Vec::new())
    } else {
        required(&mut header, "recordIds", base, errors)
            .and_then(|v| record_ids(v, &path("recordIds"), errors))
            .filter(|ids| {
                if ids.is_empty() {
                    errors.push(error(path("recordIds"), "must hold at least one record Id"));
                }
                !ids.is_empty()
            })
    };

    // Data events need these; gap events may come without.
    let mut take = |key: &str, errors: &mut Vec<FieldError>| {
        if is_gap {
            optional(&mut header, key)
        } else {
            required(&mut header, key, base, errors)
        }
    };
    let commit_timestamp = take("commitTimestamp", errors).and_then(|v| {
        let millis = match &v {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        let time = millis.and_then(DateTime::from_timestamp_millis);
        if time.is_none() {
            errors.push(error(
                path("commitTimestamp"),
                format!(
                    "expected milliseconds since the Unix epoch (an integer), got {}",
                    describe(&v)
                ),
            ));
        }
        time
    });
    let (transaction_key, sequence_number) = if has_replay_id || is_gap {
        (
            optional(&mut header, "transactionKey")
                .and_then(|v| string(v, path("transactionKey"), errors)),
            optional(&mut header, "sequenceNumber")
                .and_then(|v| unsigned(v, path("sequenceNumber"), errors)),
        )
    } else {
        (
            take("transactionKey", errors).and_then(|v| string(v, path("transactionKey"), errors)),
            take("sequenceNumber", errors)
                .and_then(|v| unsigned(v, path("sequenceNumber"), errors)),
        )
    };
    if transaction_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        errors.push(error(path("transactionKey"), "must be 1 to 200 characters"));
    }

    // Not used, but a wrong type means a mangled event. commitNumber can
    // exceed 2^53: it is only checked to be an integer, never converted.
    if let Some(v) = optional(&mut header, "commitNumber")
        && !matches!(&v, Value::Number(n) if n.is_u64() || n.is_i64())
    {
        errors.push(expected(path("commitNumber"), "an integer", &v));
    }
    for key in ["changeOrigin", "commitUser"] {
        if let Some(v) = optional(&mut header, key) {
            string(v, path(key), errors);
        }
    }

    let mut fields = |key: &str, errors: &mut Vec<FieldError>| {
        optional(&mut header, key)
            .and_then(|v| strings(v, &path(key), errors))
            .unwrap_or_default()
    };
    let changed = fields("changedFields", errors);
    let nulled = fields("nulledFields", errors);
    let diff = fields("diffFields", errors);

    if errors.len() > errors_before {
        return None;
    }
    // Nulled and diffed fields changed too; first mention wins the order.
    let mut changed_fields: Vec<String> = Vec::new();
    for field in changed.iter().chain(&nulled).chain(&diff) {
        if !changed_fields.contains(field) {
            changed_fields.push(field.clone());
        }
    }
    Some(Header {
        object: object?,
        kind: kind?,
        record_ids: record_ids?,
        commit_timestamp,
        transaction_key,
        sequence_number,
        changed_fields,
        nulled_fields: nulled,
    })
}

/// `recordIds` as validated, 18-character Ids, without repeats (a 15- and
/// an 18-character spelling of one record count once).
fn record_ids(value: Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Vec<SalesforceId>> {
    let Value::Array(items) = value else {
        errors.push(expected(path.into(), "an array of record Ids", &value));
        return None;
    };
    let errors_before = errors.len();
    let mut ids: Vec<SalesforceId> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let item_path = format!("{path}/{i}");
        if let Some(id) =
            string(item, item_path.clone(), errors).and_then(|s| id(&s, item_path, errors))
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    (errors.len() == errors_before).then_some(ids)
}

/// An array of strings at `path`, reporting every element that is not one.
fn strings(value: Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| string(item, format!("{path}/{i}"), errors))
            // Check every element before giving up, so all bad ones are reported.
            .collect::<Vec<_>>()
            .into_iter()
            .collect(),
        other => {
            errors.push(expected(path.into(), "an array of strings", &other));
            None
        }
    }
}

/// Sets a `nulledFields` entry to null in `record`. A compound sub-field
/// (`Name.FirstName`) is nulled inside its compound object, which is where
/// CDC puts compound values, creating the object when the payload left it
/// out.
fn set_null(record: &mut Map<String, Value>, field: &str) {
    let segments: Vec<&str> = field.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return;
    }
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut map = record;
    for parent in parents {
        let entry = map
            .entry(*parent)
            .or_insert_with(|| Value::Object(Map::new()));
        if entry.is_null() {
            *entry = Value::Object(Map::new());
        }
        map = match entry {
            Value::Object(inner) => inner,
            // A scalar where a compound was expected: leave the payload's
            // value rather than guess.
            _ => return,
        };
    }
    map.insert((*last).to_owned(), Value::Null);
}

/// The non-negative integer inside `value`, or an error at `path`.
fn unsigned(value: Value, path: String, errors: &mut Vec<FieldError>) -> Option<u64> {
    let n = match &value {
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    if n.is_none() {
        errors.push(error(
            path,
            format!("expected a non-negative integer, got {}", describe(&value)),
        ));
    }
    n
}

/// A number's text (so a float or negative value is visible in the
/// message), or the JSON type of anything else.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        other => type_name(other).into(),
    }
}

#[cfg(test)]
mod tests;
