//! The emulated org's records: per object, in insertion order, with lookups across objects.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::soql::looks_like_id;

pub type Record = Map<String, Value>;

/// Fields every object has, even when no seeded record sets them.
const SYSTEM_FIELDS: &[&str] = &[
    "Id",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
];

#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<String, Vec<Record>>,
}

/// A related record reached through a relationship field.
pub struct Related<'a> {
    /// The relationship's name as the record spells it (`Account`, `Owner`, `Parent__r`).
    pub name: String,
    pub type_name: String,
    pub record: &'a Record,
}

impl Store {
    /// Adds or replaces (by Id) the records of `{"Object": [records…], …}`; returns how many.
    pub fn upsert_all(&mut self, data: Value, now: &str) -> Result<usize, String> {
        let Value::Object(objects) = data else {
            return Err(r#"expected an object like {"Opportunity": [records…]}"#.into());
        };
        // Check everything first so a bad record changes nothing.
        let mut batches = Vec::with_capacity(objects.len());
        for (object, records) in objects {
            if !valid_object_name(&object) {
                return Err(format!("{object:?} is not an object API name"));
            }
            let Value::Array(records) = records else {
                return Err(format!("{object}: expected an array of records"));
            };
            let mut batch = Vec::with_capacity(records.len());
            for (i, record) in records.into_iter().enumerate() {
                batch.push(normalize(record, now).map_err(|e| format!("{object}[{i}]: {e}"))?);
            }
            batches.push((object, batch));
        }
        let mut count = 0;
        for (object, batch) in batches {
            let name = self.canonical(&object).unwrap_or(object);
            let records = self.objects.entry(name).or_default();
            for record in batch {
                let id = record_id(&record).to_owned();
                match records.iter_mut().find(|r| same_id(record_id(r), &id)) {
                    Some(existing) => *existing = record,
                    None => records.push(record),
                }
                count += 1;
            }
        }
        Ok(count)
    }

    /// The object's name as stored, matched without case.
    fn canonical(&self, object: &str) -> Option<String> {
        self.objects
            .keys()
            .find(|k| k.eq_ignore_ascii_case(object))
            .cloned()
    }

    /// The object's name as stored and its records.
    pub fn object(&self, object: &str) -> Option<(&str, &[Record])> {
        self.objects
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(object))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Finds a record of any object by Id.
    pub fn find_by_id(&self, id: &str) -> Option<(&str, &Record)> {
        self.objects.iter().find_map(|(object, records)| {
            records
                .iter()
                .find(|r| same_id(record_id(r), id))
                .map(|r| (object.as_str(), r))
        })
    }

    /// Removes the `object` record with Id `id`; whether there was one.
    pub fn remove(&mut self, object: &str, id: &str) -> bool {
        let Some(name) = self.canonical(object) else {
            return false;
        };
        let records = self.objects.entry(name).or_default();
        let before = records.len();
        records.retain(|r| !same_id(record_id(r), id));
        records.len() != before
    }

    /// Records per object.
    pub fn counts(&self) -> Map<String, Value> {
        self.objects
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.len())))
            .collect()
    }

    /// Checks that the first step of `path` exists on `object` (a field, or a relationship for
    /// a dotted path), judging by the fields its records have. An object without records
    /// accepts any field.
    pub fn check_path(
        &self,
        object: &str,
        records: &[Record],
        path: &[String],
    ) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let known: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.keys().map(|k| k.to_ascii_lowercase()))
            .chain(SYSTEM_FIELDS.iter().map(|f| f.to_ascii_lowercase()))
            .collect();
        let first = path[0].to_ascii_lowercase();
        if path.len() == 1 {
            if known.contains(&first) {
                return Ok(());
            }
            return Err(format!(
                "No such column '{}' on entity '{object}'.",
                path[0]
            ));
        }
        let id_field = relationship_id_field(&first);
        if known.contains(&first) || known.contains(&id_field) {
            Ok(())
        } else {
            Err(format!(
                "Didn't understand relationship '{}' in field path.",
                path[0]
            ))
        }
    }

    /// The value at `path` on `record` (through relationships for dotted paths); `null` when
    /// absent.
    pub fn resolve(&self, record: &Record, path: &[String]) -> Value {
        match path {
            [] => Value::Null,
            [field] => field_value(record, field)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null),
            [rel, rest @ ..] => match self.related(record, rel) {
                Some(related) => self.resolve(related.record, rest),
                None => Value::Null,
            },
        }
    }

    /// The record `rel` points at: a nested object in the record, or the record whose Id its
    /// lookup field (`AccountId`, `Parent__c`) holds.
    pub fn related<'a>(&'a self, record: &'a Record, rel: &str) -> Option<Related<'a>> {
        if let Some((key, value)) = field_value(record, rel) {
            return match value {
                Value::Object(nested) => Some(Related {
                    name: key.to_owned(),
                    type_name: nested
                        .get("attributes")
                        .and_then(|a| a.get("type"))
                        .and_then(Value::as_str)
                        .unwrap_or(key)
                        .to_owned(),
                    record: nested,
                }),
                _ => None,
            };
        }
        let (key, id) = field_value(record, &relationship_id_field(rel))?;
        let (object, related) = self.find_by_id(id.as_str()?)?;
        Some(Related {
            name: relationship_name(key),
            type_name: object.to_owned(),
            record: related,
        })
    }

    /// The relationship's name as the record spells it, even when it points nowhere.
    pub fn relationship_key(&self, record: &Record, rel: &str) -> String {
        if let Some((key, _)) = field_value(record, rel) {
            return key.to_owned();
        }
        match field_value(record, &relationship_id_field(rel)) {
            Some((key, _)) => relationship_name(key),
            None => rel.to_owned(),
        }
    }
}

/// `Account` → `accountid`; `Parent__r` → `parent__c` (lower case, for lookups).
fn relationship_id_field(rel: &str) -> String {
    let lower = rel.to_ascii_lowercase();
    match lower.strip_suffix("__r") {
        Some(base) => format!("{base}__c"),
        None => format!("{lower}id"),
    }
}

/// `AccountId` → `Account`; `Parent__c` → `Parent__r`.
fn relationship_name(id_field: &str) -> String {
    if let Some(base) = id_field.strip_suffix("__c") {
        format!("{base}__r")
    } else {
        id_field[..id_field.len().saturating_sub(2)].to_owned()
    }
}

/// A field of `record` matched without case, with its stored spelling.
pub fn field_value<'a>(record: &'a Record, field: &str) -> Option<(&'a str, &'a Value)> {
    record
        .get_key_value(field)
        .or_else(|| record.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)))
        .map(|(k, v)| (k.as_str(), v))
}

pub fn record_id(record: &Record) -> &str {
    record.get("Id").and_then(Value::as_str).unwrap_or_default()
}

/// Salesforce Ids compare on their first 15 characters (case-sensitive); other strings exactly.
pub fn same_id(a: &str, b: &str) -> bool {
    if looks_like_id(a) && looks_like_id(b) {
        a[..15] == b[..15]
    } else {
        a == b
    }
}

fn valid_object_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Checks a seeded record, drops its `attributes` and stamps the system dates it lacks.
fn normalize(record: Value, now: &str) -> Result<Record, String> {
    let Value::Object(mut record) = record else {
        return Err("a record must be a JSON object".into());
    };
    match record.get("Id") {
        Some(Value::String(id)) if looks_like_id(id) => {}
        _ => return Err("needs an \"Id\" of 15 or 18 letters and digits".into()),
    }
    record.remove("attributes");
    for field in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
        record
            .entry(field)
            .or_insert_with(|| Value::String(now.to_owned()));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2024-05-01T10:00:00.000+0000";

    fn store() -> Store {
        let mut s = Store::default();
        s.upsert_all(
            json!({
                "Account": [{"Id": "001000000000001AAA", "Name": "Acme"}],
                "Opportunity": [
                    {"Id": "006000000000001AAA", "Name": "Big", "AccountId": "001000000000001"},
                    {"Id": "006000000000002AAA", "Name": "Nested", "Account": {"Name": "Inline"}},
                    {"Id": "006000000000003AAA", "Name": "Orphan", "AccountId": null},
                ],
            }),
            NOW,
        )
        .unwrap();
        s
    }

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn upserts_by_id_and_stamps_dates() {
        let mut s = store();
        let n = s
            .upsert_all(
                json!({"opportunity": [{"Id": "006000000000001", "Name": "Bigger"}]}),
                NOW,
            )
            .unwrap();
        assert_eq!(n, 1);
        let (name, records) = s.object("OPPORTUNITY").unwrap();
        assert_eq!(name, "Opportunity");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0]["Name"], "Bigger");
        assert_eq!(records[0]["LastModifiedDate"], NOW);
        for bad in [
            json!([]),
            json!({"Opportunity": {}}),
            json!({"Opportunity": [{"Name": "no id"}]}),
            json!({"Opportunity": [{"Id": "bad id"}]}),
            json!({"Bad/Name": []}),
        ] {
            assert!(s.upsert_all(bad, NOW).is_err());
        }
    }

    #[test]
    fn resolves_relationships_both_ways() {
        let s = store();
        let (_, opps) = s.object("Opportunity").unwrap();
        assert_eq!(s.resolve(&opps[0], &path("Account.Name")), json!("Acme"));
        assert_eq!(s.resolve(&opps[1], &path("account.name")), json!("Inline"));
        assert_eq!(s.resolve(&opps[2], &path("Account.Name")), json!(null));
        assert_eq!(s.resolve(&opps[0], &path("name")), json!("Big"));
        assert_eq!(s.related(&opps[0], "Account").unwrap().type_name, "Account");
        assert_eq!(s.relationship_key(&opps[2], "account"), "Account");
        assert!(
            s.check_path("Opportunity", opps, &path("Account.Name"))
                .is_ok()
        );
        assert!(s.check_path("Opportunity", opps, &path("Nope")).is_err());
        assert!(
            s.check_path("Opportunity", opps, &path("Nope.Name"))
                .is_err()
        );
        assert!(
            s.check_path("Opportunity", opps, &path("lastmodifieddate"))
                .is_ok()
        );
        assert_eq!(relationship_name("Parent__c"), "Parent__r");
        assert_eq!(relationship_id_field("Parent__r"), "parent__c");
    }
}
