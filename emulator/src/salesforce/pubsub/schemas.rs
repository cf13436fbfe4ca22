//! Entities, their Avro change-event schemas shaped like Salesforce's, the field bitmaps of
//! `changedFields`/`nulledFields`/`diffFields`, and the Avro datum of one change event.

use std::collections::BTreeSet;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The `ChangeType` enum's symbols, in Salesforce's order (the index is the wire value).
pub const CHANGE_TYPES: &[&str] = &[
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// The type of one field, as the change event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    String,
    Double,
    Boolean,
    Int,
    /// Epoch milliseconds (`"doc": "Data:DateTime"`).
    DateTime,
    /// Epoch milliseconds of UTC midnight (`"doc": "Data:Date"`).
    Date,
    /// A nested record of string subfields (addresses, person names).
    Compound {
        record: String,
        subfields: Vec<String>,
    },
}

impl Kind {
    /// Reads a kind name as the control API gives it; `address` and `person_name` are the two
    /// compound shapes Salesforce uses.
    pub fn parse(name: &str, subfields: Option<Vec<String>>) -> Result<Kind, String> {
        Ok(match name {
            "string" => Kind::String,
            "double" => Kind::Double,
            "boolean" => Kind::Boolean,
            "int" => Kind::Int,
            "datetime" => Kind::DateTime,
            "date" => Kind::Date,
            "address" => address(),
            "person_name" => person_name(),
            "compound" => match subfields {
                Some(subfields) if !subfields.is_empty() => Kind::Compound {
                    record: "Compound".into(),
                    subfields,
                },
                _ => return Err("a compound field needs `subfields`".into()),
            },
            other => return Err(format!("unknown kind `{other}`")),
        })
    }
}

fn address() -> Kind {
    Kind::Compound {
        record: "Address".into(),
        subfields: ["Street", "City", "State", "PostalCode", "Country"]
            .map(String::from)
            .to_vec(),
    }
}

fn person_name() -> Kind {
    Kind::Compound {
        record: "Switchable_PersonName".into(),
        subfields: ["Salutation", "FirstName", "LastName"]
            .map(String::from)
            .to_vec(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
}

/// One entity's current field list and the schema version it makes.
#[derive(Debug, Clone)]
pub struct Entity {
    pub name: String,
    /// In schema order; position 0 of the schema is the header, so field i is position i + 1.
    pub fields: Vec<Field>,
    pub schema: Compiled,
}

/// A schema version: its JSON, id and parsed form.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub id: String,
    pub json: String,
    pub parsed: Schema,
}

impl Entity {
    pub fn new(name: &str, fields: Vec<Field>) -> Result<Entity, String> {
        let schema = compile(name, &fields)?;
        Ok(Entity {
            name: name.to_owned(),
            fields,
            schema,
        })
    }

    /// Adds a field at the end: a new schema version with a new id.
    pub fn add_field(&mut self, field: Field) -> Result<(), String> {
        if self.field(&field.name).is_some() {
            return Err(format!("{} already has a field {}", self.name, field.name));
        }
        let mut fields = self.fields.clone();
        fields.push(field);
        self.schema = compile(&self.name, &fields)?;
        self.fields = fields;
        Ok(())
    }

    /// The field named `name` and its top-level schema position.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
            .map(|(i, f)| (i + 1, f))
    }
}

/// The entities every emulated org starts with.
pub fn builtin_entities() -> Vec<Entity> {
    use Kind::*;
    let f = |name: &str, kind: Kind| Field {
        name: name.into(),
        kind,
    };
    let entities = vec![
        (
            "Opportunity",
            vec![
                f("Name", String),
                f("AccountId", String),
                f("Amount", Double),
                f("StageName", String),
                f("CloseDate", Date),
                f("OwnerId", String),
                f("Probability", Double),
                f("LastModifiedDate", DateTime),
                f("Description", String),
            ],
        ),
        (
            "Account",
            vec![
                f("Name", String),
                f("Industry", String),
                f("BillingAddress", address()),
                f("OwnerId", String),
                f("LastModifiedDate", DateTime),
            ],
        ),
        (
            "Case",
            vec![
                f("Subject", String),
                f("Status", String),
                f("Priority", String),
                f("OwnerId", String),
                f("AccountId", String),
                f("LastModifiedDate", DateTime),
            ],
        ),
        (
            "Lead",
            vec![
                f("Name", person_name()),
                f("Company", String),
                f("Status", String),
                f("Rating", String),
                f("OwnerId", String),
                f("LastModifiedDate", DateTime),
            ],
        ),
        (
            "Contact",
            vec![
                f("Name", person_name()),
                f("Email", String),
                f("AccountId", String),
                f("LastModifiedDate", DateTime),
            ],
        ),
    ];
    entities
        .into_iter()
        .filter_map(|(name, fields)| Entity::new(name, fields).ok())
        .collect()
}

fn string_array() -> Value {
    json!({"type": "array", "items": "string"})
}

/// The schema JSON of `<entity>ChangeEvent` over `fields`.
pub fn schema_json(entity: &str, fields: &[Field]) -> Value {
    let header = json!({
        "type": "record",
        "name": "ChangeEventHeader",
        "namespace": "com.salesforce.eventbus",
        "fields": [
            {"name": "entityName", "type": "string"},
            {"name": "recordIds", "type": string_array()},
            {"name": "changeType", "type": {
                "type": "enum", "name": "ChangeType", "namespace": "com.salesforce.eventbus",
                "symbols": CHANGE_TYPES,
            }},
            {"name": "changeOrigin", "type": "string"},
            {"name": "transactionKey", "type": "string"},
            {"name": "sequenceNumber", "type": "int"},
            {"name": "commitTimestamp", "type": "long"},
            {"name": "commitNumber", "type": "long"},
            {"name": "commitUser", "type": "string"},
            {"name": "nulledFields", "type": string_array()},
            {"name": "diffFields", "type": string_array()},
            {"name": "changedFields", "type": string_array()},
        ],
    });
    let mut out =
        vec![json!({"name": "ChangeEventHeader", "type": header, "doc": "Data:ChangeEventHeader"})];
    // A record type may be defined once per schema; later fields of the same shape name it.
    let mut defined = BTreeSet::new();
    for field in fields {
        let (ty, doc) = match &field.kind {
            Kind::String => (json!("string"), None),
            Kind::Double => (json!("double"), None),
            Kind::Boolean => (json!("boolean"), None),
            Kind::Int => (json!("int"), None),
            Kind::DateTime => (json!("long"), Some("Data:DateTime")),
            Kind::Date => (json!("long"), Some("Data:Date")),
            Kind::Compound { record, subfields } => {
                if defined.insert(record.clone()) {
                    let subs: Vec<Value> = subfields
                        .iter()
                        .map(|s| json!({"name": s, "type": ["null", "string"], "default": null}))
                        .collect();
                    (
                        json!({"type": "record", "name": record, "fields": subs}),
                        None,
                    )
                } else {
                    (json!(record), None)
                }
            }
        };
        let mut entry = json!({"name": field.name, "type": ["null", ty], "default": null});
        if let Some(doc) = doc {
            entry["doc"] = json!(doc);
        }
        out.push(entry);
    }
    json!({
        "type": "record",
        "name": format!("{entity}ChangeEvent"),
        "namespace": "com.sforce.eventbus",
        "fields": out,
    })
}

fn compile(entity: &str, fields: &[Field]) -> Result<Compiled, String> {
    let json = schema_json(entity, fields).to_string();
    let parsed = Schema::parse_str(&json).map_err(|e| format!("schema of {entity}: {e}"))?;
    let digest = Sha256::digest(json.as_bytes());
    let id = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Compiled { id, json, parsed })
}

/// Salesforce's bitmap of `positions`: hex digit j (from the right) holds positions 4j..4j+3,
/// upper case, padded to whole bytes.
pub fn bitmap(positions: &BTreeSet<usize>) -> String {
    let Some(&max) = positions.iter().next_back() else {
        return "0x00".into();
    };
    let mut digits = vec![0u8; max / 4 + 1];
    for p in positions {
        digits[p / 4] |= 1 << (p % 4);
    }
    if !digits.len().is_multiple_of(2) {
        digits.push(0);
    }
    let hex: String = digits
        .iter()
        .rev()
        .map(|d| char::from(b"0123456789ABCDEF"[usize::from(*d)]))
        .collect();
    format!("0x{hex}")
}

/// The bitmap list of a set of field names (`Name` or `Parent.Child`): the top-level element,
/// then `p-0x…` for each compound at position p with named subfields. `mark_parent` sets a
/// compound's own bit when any of its subfields is named (changed and diff lists do; a partly
/// nulled address is not itself null).
pub fn bitmap_list(
    entity: &Entity,
    names: &[String],
    mark_parent: bool,
) -> Result<Vec<String>, String> {
    let mut top = BTreeSet::new();
    let mut nested: std::collections::BTreeMap<usize, BTreeSet<usize>> = Default::default();
    for name in names {
        let (parent, child) = match name.split_once('.') {
            Some((p, c)) => (p, Some(c)),
            None => (name.as_str(), None),
        };
        let Some((position, field)) = entity.field(parent) else {
            return Err(format!("{} has no field {name}", entity.name));
        };
        match (child, &field.kind) {
            (None, _) => {
                top.insert(position);
            }
            (Some(child), Kind::Compound { subfields, .. }) => {
                let Some(sub) = subfields.iter().position(|s| s == child) else {
                    return Err(format!("{} has no field {name}", entity.name));
                };
                nested.entry(position).or_default().insert(sub);
                if mark_parent {
                    top.insert(position);
                }
            }
            (Some(_), _) => return Err(format!("{} has no field {name}", entity.name)),
        }
    }
    let mut out = Vec::new();
    if !top.is_empty() {
        out.push(bitmap(&top));
    }
    for (position, subs) in nested {
        out.push(format!("{position}-{}", bitmap(&subs)));
    }
    Ok(out)
}

/// The header of one change event.
#[derive(Debug, Clone)]
pub struct Header {
    pub change_type: usize,
    pub record_ids: Vec<String>,
    pub change_origin: String,
    pub transaction_key: String,
    pub sequence_number: i32,
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
    pub nulled: Vec<String>,
    pub diff: Vec<String>,
    pub changed: Vec<String>,
}

/// A field's value as the datum carries it (already checked against the field's kind).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    String(String),
    Double(f64),
    Boolean(bool),
    Int(i32),
    Long(i64),
    /// Subfield name → value; absent subfields are null.
    Compound(Vec<(String, String)>),
}

fn strings(items: &[String]) -> Avro {
    Avro::Array(items.iter().cloned().map(Avro::String).collect())
}

/// Writes the raw Avro datum of one event (no container header), as Pub/Sub sends it.
pub fn encode(
    entity: &Entity,
    header: &Header,
    values: &[(String, FieldValue)],
) -> Result<Vec<u8>, String> {
    let symbol = CHANGE_TYPES
        .get(header.change_type)
        .ok_or("unknown change type")?;
    let header_value = Avro::Record(vec![
        ("entityName".into(), Avro::String(entity.name.clone())),
        ("recordIds".into(), strings(&header.record_ids)),
        (
            "changeType".into(),
            Avro::Enum(
                u32::try_from(header.change_type).map_err(|e| e.to_string())?,
                (*symbol).to_owned(),
            ),
        ),
        (
            "changeOrigin".into(),
            Avro::String(header.change_origin.clone()),
        ),
        (
            "transactionKey".into(),
            Avro::String(header.transaction_key.clone()),
        ),
        ("sequenceNumber".into(), Avro::Int(header.sequence_number)),
        (
            "commitTimestamp".into(),
            Avro::Long(header.commit_timestamp),
        ),
        ("commitNumber".into(), Avro::Long(header.commit_number)),
        (
            "commitUser".into(),
            Avro::String(header.commit_user.clone()),
        ),
        ("nulledFields".into(), strings(&header.nulled)),
        ("diffFields".into(), strings(&header.diff)),
        ("changedFields".into(), strings(&header.changed)),
    ]);
    let mut record = vec![("ChangeEventHeader".to_owned(), header_value)];
    for field in &entity.fields {
        let value = values
            .iter()
            .find(|(n, _)| *n == field.name)
            .map(|(_, v)| v);
        let avro = match (value, &field.kind) {
            (None, _) => Avro::Union(0, Box::new(Avro::Null)),
            (Some(v), kind) => Avro::Union(1, Box::new(avro_value(v, kind))),
        };
        record.push((field.name.clone(), avro));
    }
    apache_avro::writer::datum::GenericDatumWriter::builder(&entity.schema.parsed)
        .build()
        .and_then(|w| w.write_value_to_vec(Avro::Record(record)))
        .map_err(|e| format!("encoding the {} event: {e}", entity.name))
}

fn avro_value(value: &FieldValue, kind: &Kind) -> Avro {
    match value {
        FieldValue::String(s) => Avro::String(s.clone()),
        FieldValue::Double(d) => Avro::Double(*d),
        FieldValue::Boolean(b) => Avro::Boolean(*b),
        FieldValue::Int(i) => Avro::Int(*i),
        FieldValue::Long(l) => Avro::Long(*l),
        FieldValue::Compound(given) => {
            let subfields = match kind {
                Kind::Compound { subfields, .. } => subfields.as_slice(),
                _ => &[],
            };
            Avro::Record(
                subfields
                    .iter()
                    .map(|sub| {
                        let v = given.iter().find(|(n, _)| n == sub).map(|(_, v)| v);
                        let v = match v {
                            Some(s) => Avro::Union(1, Box::new(Avro::String(s.clone()))),
                            None => Avro::Union(0, Box::new(Avro::Null)),
                        };
                        (sub.clone(), v)
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_matches_salesforces_example() {
        let positions: BTreeSet<usize> = [5, 6, 7, 10, 24, 26, 29, 30].into();
        assert_eq!(bitmap(&positions), "0x650004E0");
        assert_eq!(bitmap(&[4].into()), "0x10");
        assert_eq!(bitmap(&[1, 2].into()), "0x06");
        assert_eq!(bitmap(&[1, 6].into()), "0x42");
    }

    #[test]
    fn nested_bitmaps_name_their_parent() {
        let account = builtin_entities()
            .into_iter()
            .find(|e| e.name == "Account")
            .unwrap();
        // Name 1, Industry 2, BillingAddress 3 {Street 0, City 1, …}, OwnerId 4, LMD 5.
        let changed = bitmap_list(
            &account,
            &[
                "Name".into(),
                "LastModifiedDate".into(),
                "BillingAddress.City".into(),
            ],
            true,
        )
        .unwrap();
        assert_eq!(changed, vec!["0x2A", "3-0x02"]);
        let nulled = bitmap_list(&account, &["BillingAddress.Street".into()], false).unwrap();
        assert_eq!(nulled, vec!["3-0x01"]);
        assert!(bitmap_list(&account, &["Nope".into()], true).is_err());
        assert!(bitmap_list(&account, &["Name.First".into()], true).is_err());
    }

    #[test]
    fn adding_a_field_makes_a_new_version() {
        let mut opp = builtin_entities()
            .into_iter()
            .find(|e| e.name == "Opportunity")
            .unwrap();
        let before = opp.schema.id.clone();
        opp.add_field(Field {
            name: "NextStep".into(),
            kind: Kind::String,
        })
        .unwrap();
        assert_ne!(before, opp.schema.id);
        assert_eq!(opp.field("NextStep").unwrap().0, 10);
        assert!(
            opp.add_field(Field {
                name: "NextStep".into(),
                kind: Kind::String
            })
            .is_err()
        );
    }
}
