//! Pub/Sub change events into the body `/v1/cdc` takes: one raw Avro datum, read with the
//! writer schema its event names, becomes `{"ChangeEventHeader": {…}, "<Field>": value, …}`
//! with the field bitmaps spelled out as names and epoch dates written the way CometD and
//! Flow write them (`2025-09-30T16:00:00.000Z`, `2025-09-30`).
//!
//! Pub/Sub sends every field; unchanged ones are null, so nulls are left out (a field set to
//! null is listed in `nulledFields`, which the CDC parser applies).

use std::collections::HashMap;

use apache_avro::Schema as Avro;
use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::types::Value as Datum;
use base64::Engine;
use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Number, Value};

use super::bitmap::{self, BitmapError, FieldTree};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the schema cannot be read: {0}")]
    Schema(String),
    #[error("the payload does not match its schema: {0}")]
    Datum(String),
    #[error("not a change event: {0}")]
    NotAChangeEvent(String),
    #[error("a field bitmap cannot be read: {0}")]
    Bitmap(#[from] BitmapError),
}

/// How a `long` or `int` field is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    DateTime,
    Date,
}

/// A change event's writer schema, with what decoding needs worked out once.
#[derive(Debug)]
pub struct Schema {
    /// The JSON it was read from, kept with an event that cannot be decoded.
    json: String,
    avro: Avro,
    name: String,
    tree: FieldTree,
    /// `Field` or `Parent.Child` → how its numbers are shown.
    kinds: HashMap<String, Kind>,
}

/// The kind a field's `doc` (`Data:DateTime`, `Audit:DateTime`, `Data:Date`) gives it.
fn kind_of(field: &RecordField) -> Kind {
    match field.doc.as_deref() {
        Some(doc) if doc.ends_with(":DateTime") => Kind::DateTime,
        Some(doc) if doc.ends_with(":Date") => Kind::Date,
        _ => Kind::Plain,
    }
}

/// The record inside a field's schema: unions such as `["null", X]`, `["string", X]` or
/// `["null", "string", X]` unwrapped, references resolved.
fn record_of<'a>(
    schema: &'a Avro,
    named: &HashMap<String, &'a RecordSchema>,
) -> Option<&'a RecordSchema> {
    match schema {
        Avro::Record(record) => Some(record),
        Avro::Union(union) => union.variants().iter().find_map(|v| record_of(v, named)),
        Avro::Ref { name } => named.get(&name.fullname(None)).copied(),
        _ => None,
    }
}

/// Every named record in `schema`, for resolving references.
fn collect<'a>(schema: &'a Avro, named: &mut HashMap<String, &'a RecordSchema>) {
    match schema {
        Avro::Record(record) => {
            named.insert(record.name.fullname(None), record);
            for field in &record.fields {
                collect(&field.schema, named);
            }
        }
        Avro::Union(union) => union.variants().iter().for_each(|v| collect(v, named)),
        Avro::Array(array) => collect(&array.items, named),
        Avro::Map(map) => collect(&map.types, named),
        _ => {}
    }
}

impl Schema {
    pub fn parse(schema_json: &str) -> Result<Schema, DecodeError> {
        let avro = Avro::parse_str(schema_json).map_err(|e| DecodeError::Schema(e.to_string()))?;
        let Avro::Record(record) = &avro else {
            return Err(DecodeError::NotAChangeEvent(
                "the schema is not a record".into(),
            ));
        };
        if record.fields.first().map(|f| f.name.as_str()) != Some("ChangeEventHeader") {
            return Err(DecodeError::NotAChangeEvent(format!(
                "{} has no ChangeEventHeader first",
                record.name.name()
            )));
        }
        let mut named = HashMap::new();
        collect(&avro, &mut named);
        let mut tree = FieldTree::default();
        let mut kinds = HashMap::new();
        for field in &record.fields {
            let nested = (field.name != "ChangeEventHeader")
                .then(|| record_of(&field.schema, &named))
                .flatten()
                .map(|inner| {
                    for child in &inner.fields {
                        kinds.insert(format!("{}.{}", field.name, child.name), kind_of(child));
                    }
                    inner.fields.iter().map(|c| c.name.clone()).collect()
                });
            kinds.insert(field.name.clone(), kind_of(field));
            tree.fields.push((field.name.clone(), nested));
        }
        let name = record.name.name().to_owned();
        Ok(Schema {
            json: schema_json.to_owned(),
            avro,
            name,
            tree,
            kinds,
        })
    }

    /// The schema's JSON, as `GetSchema` gave it.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The object the events are about: `Opportunity` for `OpportunityChangeEvent`,
    /// `Employee__c` for `Employee__ChangeEvent`.
    pub fn entity(&self) -> Option<&str> {
        self.name
            .strip_suffix("ChangeEvent")
            .filter(|e| !e.is_empty())
    }
}

/// Decodes one raw datum (no container header) written with `schema`.
pub fn decode(schema: &Schema, payload: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut reader = payload;
    let datum = apache_avro::reader::datum::GenericDatumReader::builder(&schema.avro)
        .build()
        .and_then(|r| r.read_value(&mut reader))
        .map_err(|e| DecodeError::Datum(e.to_string()))?;
    if !reader.is_empty() {
        return Err(DecodeError::Datum(format!(
            "{} bytes left after the datum: the wrong schema was used",
            reader.len()
        )));
    }
    let Datum::Record(fields) = datum else {
        return Err(DecodeError::Datum("the payload is not a record".into()));
    };
    let mut out = Map::new();
    for (name, value) in fields {
        if name == "ChangeEventHeader" {
            out.insert(name, header(value, &schema.tree)?);
            continue;
        }
        if let Some(value) = json(value, &name, schema) {
            out.insert(name, value);
        }
    }
    if !out.contains_key("ChangeEventHeader") {
        return Err(DecodeError::NotAChangeEvent("no ChangeEventHeader".into()));
    }
    Ok(out)
}

/// The header, bitmaps expanded; numbers kept as integers (`commitNumber` passes 2^53).
fn header(value: Datum, tree: &FieldTree) -> Result<Value, DecodeError> {
    let Datum::Record(fields) = unwrap(value) else {
        return Err(DecodeError::NotAChangeEvent(
            "ChangeEventHeader is not a record".into(),
        ));
    };
    let mut out = Map::new();
    for (name, value) in fields {
        let value = unwrap(value);
        let json = match (name.as_str(), value) {
            ("changedFields" | "nulledFields" | "diffFields", Datum::Array(items)) => {
                let elements: Vec<String> = items
                    .into_iter()
                    .filter_map(|i| match unwrap(i) {
                        Datum::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                Value::from(bitmap::expand(&elements, tree)?)
            }
            (_, Datum::Null) => continue,
            (_, Datum::Enum(_, symbol)) => Value::String(symbol),
            (_, value) => match plain(value) {
                Some(v) => v,
                None => continue,
            },
        };
        out.insert(name, json);
    }
    Ok(Value::Object(out))
}

/// A union's chosen branch.
fn unwrap(value: Datum) -> Datum {
    match value {
        Datum::Union(_, inner) => unwrap(*inner),
        other => other,
    }
}

fn iso_millis(ms: i64) -> Option<Value> {
    DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

fn iso_date(ms: i64) -> Option<Value> {
    DateTime::from_timestamp_millis(ms).map(|t| Value::String(t.format("%Y-%m-%d").to_string()))
}

/// A field's value as JSON (`None` for null), dates by the field's kind.
fn json(value: Datum, path: &str, schema: &Schema) -> Option<Value> {
    let kind = schema.kinds.get(path).copied().unwrap_or(Kind::Plain);
    match (unwrap(value), kind) {
        (Datum::Null, _) => None,
        (Datum::Long(ms), Kind::DateTime) => iso_millis(ms),
        (Datum::Long(ms), Kind::Date) => iso_date(ms),
        (Datum::Record(fields), _) => {
            let inner: Map<String, Value> = fields
                .into_iter()
                .filter_map(|(name, v)| {
                    let value = json(v, &format!("{path}.{name}"), schema)?;
                    Some((name, value))
                })
                .collect();
            (!inner.is_empty()).then_some(Value::Object(inner))
        }
        (other, _) => plain(other),
    }
}

/// A value with no field-specific meaning.
fn plain(value: Datum) -> Option<Value> {
    Some(match unwrap(value) {
        Datum::Null => return None,
        Datum::Boolean(b) => Value::Bool(b),
        Datum::Int(n) | Datum::TimeMillis(n) => Value::from(n),
        Datum::Long(n) | Datum::TimeMicros(n) => Value::from(n),
        Datum::Float(f) => Number::from_f64(f64::from(f)).map(Value::Number)?,
        Datum::Double(f) => Number::from_f64(f).map(Value::Number)?,
        Datum::String(s) | Datum::Enum(_, s) => Value::String(s),
        Datum::Bytes(b) | Datum::Fixed(_, b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Datum::Date(days) => {
            return iso_date(i64::from(days) * 86_400_000);
        }
        Datum::TimestampMillis(ms) | Datum::LocalTimestampMillis(ms) => return iso_millis(ms),
        Datum::TimestampMicros(us) | Datum::LocalTimestampMicros(us) => {
            return iso_millis(us.div_euclid(1000));
        }
        Datum::Array(items) => Value::Array(items.into_iter().filter_map(plain).collect()),
        Datum::Map(map) => Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| Some((k, plain(v)?)))
                .collect(),
        ),
        Datum::Record(fields) => Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k, plain(v)?)))
                .collect(),
        ),
        Datum::Uuid(u) => Value::String(u.to_string()),
        other => Value::String(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests;
