//! Turning a control-API publish (JSON naming an entity, its change and field values) into a
//! change event: values checked against the entity's fields, dates converted to epoch ms, the
//! bitmaps written, the Avro datum encoded, and the event appended to every topic it feeds.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sfrelay_pubsub_wire::ProducerEvent;

use super::schemas::{self, CHANGE_TYPES, Entity, FieldValue, Header, Kind};
use super::state::{State, hex};
use crate::salesforce::emulator::USER_ID;

/// The record id Salesforce gives a GAP_OVERFLOW event.
pub const OVERFLOW_RECORD_ID: &str = "000000000000000AAA";
const DEFAULT_ORIGIN: &str = "com/salesforce/api/rest/62.0;client=SfdcInternalAPI/";

/// One publish as the control API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    pub entity: String,
    #[serde(default = "default_change_type")]
    pub change_type: String,
    #[serde(default)]
    pub record_ids: Vec<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    pub changed: Option<Vec<String>>,
    pub nulled: Option<Vec<String>>,
    #[serde(default)]
    pub diff: Vec<String>,
    pub transaction_key: Option<String>,
    pub sequence_number: Option<i32>,
    pub commit_timestamp: Option<i64>,
    pub change_origin: Option<String>,
    pub commit_user: Option<String>,
    /// Cuts the encoded datum to this many bytes: an event no reader can decode.
    pub truncate_payload: Option<usize>,
}

fn default_change_type() -> String {
    "UPDATE".into()
}

/// A fresh random UUID (version 4 layout), for transaction keys and event ids.
pub fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Checks one value against its field's kind; `name` is for the error.
fn value(name: &str, kind: &Kind, v: &Value) -> Result<Option<FieldValue>, String> {
    let wrong = |what: &str| Err(format!("field {name}: expected {what}, got {v}"));
    if v.is_null() {
        return Ok(None);
    }
    let out = match kind {
        Kind::String => match v {
            Value::String(s) => FieldValue::String(s.clone()),
            _ => return wrong("a string"),
        },
        Kind::Double => match v.as_f64() {
            Some(d) => FieldValue::Double(d),
            None => return wrong("a number"),
        },
        Kind::Int => match v.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => FieldValue::Int(i),
            None => return wrong("a 32-bit integer"),
        },
        Kind::Boolean => match v {
            Value::Bool(b) => FieldValue::Boolean(*b),
            _ => return wrong("a boolean"),
        },
        Kind::DateTime => match v {
            Value::Number(n) => match n.as_i64() {
                Some(ms) => FieldValue::Long(ms),
                None => return wrong("epoch milliseconds"),
            },
            Value::String(s) => match parse_datetime(s) {
                Some(ms) => FieldValue::Long(ms),
                None => return wrong("an ISO 8601 date-time"),
            },
            _ => return wrong("an ISO 8601 date-time"),
        },
        Kind::Date => match v {
            Value::Number(n) => match n.as_i64() {
                Some(ms) => FieldValue::Long(ms),
                None => return wrong("epoch milliseconds"),
            },
            Value::String(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) => match d.and_hms_opt(0, 0, 0) {
                    Some(t) => FieldValue::Long(t.and_utc().timestamp_millis()),
                    None => return wrong("a date YYYY-MM-DD"),
                },
                Err(_) => return wrong("a date YYYY-MM-DD"),
            },
            _ => return wrong("a date YYYY-MM-DD"),
        },
        Kind::Compound { subfields, .. } => {
            let Value::Object(given) = v else {
                return wrong("an object of subfields");
            };
            let mut out = Vec::new();
            for (sub, sv) in given {
                if !subfields.contains(sub) {
                    return Err(format!("unknown field {name}.{sub}"));
                }
                match sv {
                    Value::String(s) => out.push((sub.clone(), s.clone())),
                    Value::Null => {}
                    _ => return Err(format!("field {name}.{sub}: expected a string, got {sv}")),
                }
            }
            FieldValue::Compound(out)
        }
    };
    Ok(Some(out))
}

/// `2025-09-30T16:00:00.000Z`, `…+00:00` or Salesforce's `…+0000`, as epoch ms.
fn parse_datetime(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// A checked publish, ready to append.
pub struct Built {
    entity: String,
    event: ProducerEvent,
}

/// Checks a publish against the entity and encodes its event.
pub fn build(state: &mut State, p: &Publish) -> Result<Built, String> {
    let entity: &Entity = state
        .entities
        .get(&p.entity)
        .ok_or_else(|| format!("unknown entity {}", p.entity))?;
    let change_type = CHANGE_TYPES
        .iter()
        .position(|t| *t == p.change_type)
        .ok_or_else(|| format!("unknown change_type {}", p.change_type))?;
    let gap = p.change_type.starts_with("GAP_");
    if gap && !p.fields.is_empty() {
        return Err(format!("{} events carry only the header", p.change_type));
    }
    let record_ids = if p.record_ids.is_empty() && p.change_type == "GAP_OVERFLOW" {
        vec![OVERFLOW_RECORD_ID.to_owned()]
    } else {
        p.record_ids.clone()
    };
    if record_ids.is_empty() {
        return Err("record_ids must not be empty".into());
    }
    let mut values = Vec::new();
    let mut named = Vec::new();
    let mut nulls = Vec::new();
    for (name, v) in &p.fields {
        let Some((_, field)) = entity.field(name) else {
            return Err(format!("unknown field {name}"));
        };
        if let Kind::Compound { .. } = field.kind
            && let Value::Object(subs) = v
        {
            for (sub, sv) in subs {
                named.push(format!("{name}.{sub}"));
                if sv.is_null() {
                    nulls.push(format!("{name}.{sub}"));
                }
            }
        } else {
            named.push(name.clone());
            if v.is_null() {
                nulls.push(name.clone());
            }
        }
        if let Some(checked) = value(name, &field.kind, v)? {
            values.push((name.clone(), checked));
        }
    }
    let changed = p.changed.clone().unwrap_or(named);
    let nulled = p.nulled.clone().unwrap_or(nulls);
    let (mut changed_bits, mut nulled_bits, mut diff_bits) = (vec![], vec![], vec![]);
    if !gap {
        changed_bits = schemas::bitmap_list(entity, &changed, true)?;
        nulled_bits = schemas::bitmap_list(entity, &nulled, false)?;
        diff_bits = schemas::bitmap_list(entity, &p.diff, true)?;
    }
    let header = Header {
        change_type,
        record_ids,
        change_origin: p
            .change_origin
            .clone()
            .unwrap_or_else(|| DEFAULT_ORIGIN.into()),
        transaction_key: p.transaction_key.clone().unwrap_or_else(uuid),
        sequence_number: p.sequence_number.unwrap_or(1),
        commit_timestamp: p
            .commit_timestamp
            .unwrap_or_else(|| Utc::now().timestamp_millis()),
        commit_number: state.commit_number,
        commit_user: p
            .commit_user
            .clone()
            .unwrap_or_else(|| format!("{USER_ID}AAA")),
        nulled: nulled_bits,
        diff: diff_bits,
        changed: changed_bits,
    };
    let mut payload = schemas::encode(entity, &header, &values)?;
    if let Some(keep) = p.truncate_payload {
        payload.truncate(keep);
    }
    let event = ProducerEvent {
        id: uuid(),
        schema_id: entity.schema.id.clone(),
        payload,
        headers: vec![],
    };
    let entity = entity.name.clone();
    state.commit_number += 1;
    Ok(Built { entity, event })
}

/// Appends a built event to every topic it feeds; the control API's answer.
pub fn append(state: &mut State, built: Built) -> Value {
    let mut replay_ids = Map::new();
    for name in state.topics_of(&built.entity) {
        if let Some(topic) = state.topics.get_mut(&name) {
            let id = topic.append(built.event.clone());
            replay_ids.insert(name, hex(&id).into());
        }
    }
    json!({
        "replay_ids": replay_ids,
        "schema_id": built.event.schema_id,
        "event_id": built.event.id,
    })
}

/// One publish or an array of them, all checked before any is appended.
pub fn publish(state: &mut State, body: Value) -> Result<Value, String> {
    let batch = body.is_array();
    let items: Vec<Publish> = match body {
        Value::Array(items) => items
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>(),
        one => serde_json::from_value(one).map(|p| vec![p]),
    }
    .map_err(|e| format!("bad publish: {e}"))?;
    let commit = state.commit_number;
    let mut built = Vec::with_capacity(items.len());
    for p in &items {
        match build(state, p) {
            Ok(b) => built.push(b),
            Err(e) => {
                state.commit_number = commit;
                return Err(e);
            }
        }
    }
    let mut answers: Vec<Value> = built.into_iter().map(|b| append(state, b)).collect();
    Ok(if batch {
        Value::Array(answers)
    } else {
        answers.pop().unwrap_or(Value::Null)
    })
}
