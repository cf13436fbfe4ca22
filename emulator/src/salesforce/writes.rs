//! sObject create and update, and the UI API's picklist values, with Salesforce's refusals on
//! demand: queued write faults, validation rules on a field's value, restricted picklists,
//! `If-Unmodified-Since` against `LastModifiedDate`, and deleted records.

use std::collections::{BTreeMap, VecDeque};

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::emulator::{Emulator, Reply, sf_now};
use super::soql::{looks_like_id, parse_datetime};
use super::store::{field_value, same_id};

/// The record type of records that have none.
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// One injected refusal: the next `times` writes to `object` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteFault {
    pub object: String,
    pub error_code: String,
    #[serde(default = "default_write_status")]
    pub status: u16,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default = "one")]
    pub times: u32,
}

fn default_write_status() -> u16 {
    400
}

fn one() -> u32 {
    1
}

/// A validation rule: a write setting `object.field` to `value` fails with the admin's
/// `message` (`FIELD_CUSTOM_VALIDATION_EXCEPTION`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationRule {
    pub object: String,
    pub field: String,
    pub value: Value,
    pub message: String,
}

/// A picklist choice as the UI API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub label: String,
    pub value: String,
}

/// Write-side state of the emulated org.
#[derive(Debug, Default)]
pub struct Writes {
    pub faults: VecDeque<WriteFault>,
    pub rules: Vec<ValidationRule>,
    /// object → field → record type Id (15 characters) → choices, names lower-cased.
    pub picklists: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<Choice>>>>,
    /// object (lower case) → the owner its assignment rule gives every updated record unless
    /// the update says `Sforce-Auto-Assign: FALSE`.
    pub assignment_rules: BTreeMap<String, String>,
    next_id: u64,
}

impl Writes {
    /// `POST /_emulator/picklists` `{"Task": {"Status": {"012…": ["A", {"label", "value"}]}}}`
    /// (record type keys may also be `"master"`); adds to or replaces what was set.
    pub fn set_picklists(&mut self, data: Value) -> Result<usize, String> {
        let shape = r#"expected {"Object": {"Field": {"<recordTypeId>": [values…]}}}"#;
        let Value::Object(objects) = data else {
            return Err(shape.into());
        };
        let mut parsed = Vec::new();
        for (object, fields) in objects {
            let Value::Object(fields) = fields else {
                return Err(format!("{object}: {shape}"));
            };
            for (field, types) in fields {
                let Value::Object(types) = types else {
                    return Err(format!("{object}.{field}: {shape}"));
                };
                for (record_type, values) in types {
                    let Value::Array(values) = values else {
                        return Err(format!("{object}.{field}.{record_type}: expected an array"));
                    };
                    let choices = values
                        .iter()
                        .map(choice)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("{object}.{field}.{record_type}: {e}"))?;
                    let record_type = if record_type.eq_ignore_ascii_case("master") {
                        MASTER_RECORD_TYPE_ID.to_owned()
                    } else {
                        record_type
                    };
                    parsed.push((object.clone(), field.clone(), rt_key(&record_type), choices));
                }
            }
        }
        let n = parsed.len();
        for (object, field, record_type, choices) in parsed {
            self.picklists
                .entry(object.to_ascii_lowercase())
                .or_default()
                .entry(field.to_ascii_lowercase())
                .or_default()
                .insert(record_type, choices);
        }
        Ok(n)
    }

    fn choices(&self, object: &str, field: &str, record_type: &str) -> Option<&Vec<Choice>> {
        self.picklists
            .get(&object.to_ascii_lowercase())?
            .get(&field.to_ascii_lowercase())?
            .get(&rt_key(record_type))
    }

    /// `POST /_emulator/assignment-rules` `{"Case": "<owner Id>"}`; adds to or replaces.
    pub fn set_assignment_rules(&mut self, data: Value) -> Result<usize, String> {
        let Value::Object(rules) = data else {
            return Err(r#"expected {"Object": "<owner Id>"}"#.into());
        };
        let mut parsed = Vec::with_capacity(rules.len());
        for (object, owner) in rules {
            match owner {
                Value::String(owner) if valid_name(&object) && looks_like_id(&owner) => {
                    parsed.push((object.to_ascii_lowercase(), owner));
                }
                _ => return Err(format!("{object}: expected an object name and an owner Id")),
            }
        }
        let n = parsed.len();
        self.assignment_rules.extend(parsed);
        Ok(n)
    }

    /// The first queued fault for `object`, used once.
    fn take_fault(&mut self, object: &str) -> Option<Reply> {
        let index = self
            .faults
            .iter()
            .position(|f| f.object.eq_ignore_ascii_case(object))?;
        let fault = &mut self.faults[index];
        let message = fault
            .message
            .clone()
            .unwrap_or_else(|| format!("injected failure: {}", fault.error_code));
        let reply = error_reply(fault.status, &fault.error_code, &message, &fault.fields);
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(reply)
    }

    /// The refusal the rules and restricted picklists give `fields` on `object`, if any.
    fn check(&self, object: &str, record_type: &str, fields: &Map<String, Value>) -> Option<Reply> {
        for (field, value) in fields {
            if let Some(rule) = self.rules.iter().find(|r| {
                r.object.eq_ignore_ascii_case(object)
                    && r.field.eq_ignore_ascii_case(field)
                    && &r.value == value
            }) {
                return Some(error_reply(
                    400,
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    &rule.message,
                    std::slice::from_ref(field),
                ));
            }
            if let Some(choices) = self.choices(object, field, record_type) {
                let allowed = value
                    .as_str()
                    .is_some_and(|v| choices.iter().any(|c| c.value == v));
                if !allowed {
                    let shown = value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned);
                    return Some(error_reply(
                        400,
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        &format!("{field}: bad value for restricted picklist field: {shown}"),
                        std::slice::from_ref(field),
                    ));
                }
            }
        }
        None
    }
}

fn choice(value: &Value) -> Result<Choice, String> {
    match value {
        Value::String(s) => Ok(Choice {
            label: s.clone(),
            value: s.clone(),
        }),
        Value::Object(o) => {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            let value = text("value").ok_or("a choice object needs a \"value\"")?;
            Ok(Choice {
                label: text("label").unwrap_or_else(|| value.clone()),
                value,
            })
        }
        _ => Err("a choice is a string or {\"label\", \"value\"}".into()),
    }
}

/// Record type Ids compare on 15 characters.
fn rt_key(record_type: &str) -> String {
    record_type.chars().take(15).collect()
}

/// Salesforce's error shape with the fields it names.
fn error_reply(status: u16, code: &str, message: &str, fields: &[String]) -> Reply {
    Reply {
        status,
        body: json!([{ "message": message, "errorCode": code, "fields": fields }]),
    }
}

fn valid_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The key prefix of a new record's Id.
fn key_prefix(object: &str) -> &'static str {
    match object.to_ascii_lowercase().as_str() {
        "task" => "00T",
        "event" => "00U",
        "case" => "500",
        "account" => "001",
        "contact" => "003",
        "lead" => "00Q",
        "opportunity" => "006",
        "user" => "005",
        _ => "a00",
    }
}

/// A 15-character Id with Salesforce's 3-character suffix (which spells the case of the
/// letters in each group of five), as the API answers.
pub(super) fn with_checksum(base: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut id = base.to_owned();
    for chunk in base.as_bytes().chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        id.push(char::from(ALPHABET[bits]));
    }
    id
}

/// The fields of a write body, checked: a JSON object of field names, no system fields.
fn write_fields(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    let fields: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        Reply::api_error(
            400,
            "JSON_PARSER_ERROR",
            &format!("cannot read the body: {e}"),
        )
    })?;
    for name in fields.keys() {
        if !valid_name(name) {
            return Err(Reply::api_error(
                400,
                "INVALID_FIELD",
                &format!("No such column '{name}'"),
            ));
        }
        // Audit fields are Salesforce's to set (without the "Set Audit Fields" permission).
        let audit = [
            "id",
            "createddate",
            "createdbyid",
            "lastmodifieddate",
            "lastmodifiedbyid",
            "systemmodstamp",
        ];
        if audit.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(error_reply(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                &format!("Unable to create/update fields: {name}."),
                std::slice::from_ref(name),
            ));
        }
    }
    Ok(fields)
}

fn record_type_of(fields: &Map<String, Value>, existing: Option<&Map<String, Value>>) -> String {
    field_value(fields, "RecordTypeId")
        .or_else(|| existing.and_then(|r| field_value(r, "RecordTypeId")))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or(MASTER_RECORD_TYPE_ID)
        .to_owned()
}

impl Emulator {
    /// `POST /services/data/<version>/sobjects/<object>/`: 201 `{"id", "success", "errors"}`.
    pub fn create(&mut self, object: &str, body: &[u8]) -> Reply {
        if !valid_name(object) || self.hidden_object(object) {
            return Reply::api_error(404, "NOT_FOUND", "The requested resource does not exist");
        }
        let fields = match write_fields(body) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        if let Some(reply) = self.writes.take_fault(object) {
            return reply;
        }
        let record_type = record_type_of(&fields, None);
        if let Some(reply) = self.writes.check(object, &record_type, &fields) {
            return reply;
        }
        self.writes.next_id += 1;
        let id = with_checksum(&format!(
            "{}EMU{:09}",
            key_prefix(object),
            self.writes.next_id
        ));
        let mut record = fields;
        record.insert("Id".into(), Value::String(id.clone()));
        self.stamp_create(&mut record);
        let name = self
            .store
            .object(object)
            .map_or_else(|| object.to_owned(), |(name, _)| name.to_owned());
        let written = Value::Object(record.clone());
        if let Err(message) = self
            .store
            .upsert_all(json!({ name.clone(): [record] }), &sf_now())
        {
            return Reply::api_error(400, "INVALID_FIELD", &message);
        }
        self.journal_write("create", &name, &id, written);
        Reply {
            status: 201,
            body: json!({ "id": id, "success": true, "errors": [] }),
        }
    }

    /// `PATCH /services/data/<version>/sobjects/<object>/<id>`: 204, with
    /// `If-Unmodified-Since` (an HTTP date) checked against `LastModifiedDate`; the object's
    /// assignment rule runs unless `auto_assign` is false (`Sforce-Auto-Assign: FALSE`).
    pub fn update(
        &mut self,
        object: &str,
        id: &str,
        if_unmodified_since: Option<&str>,
        auto_assign: bool,
        body: &[u8],
    ) -> Reply {
        let not_found =
            || Reply::api_error(404, "NOT_FOUND", "The requested resource does not exist");
        let Some((name, records)) = self.store.object(object) else {
            return not_found();
        };
        let Some(existing) = records
            .iter()
            .find(|r| same_id(r.get("Id").and_then(Value::as_str).unwrap_or_default(), id))
            .filter(|r| !self.hidden_record(name, r))
        else {
            return not_found();
        };
        let (name, mut record) = (name.to_owned(), existing.clone());
        let fields = match write_fields(body) {
            Ok(f) => f,
            Err(reply) => return reply,
        };
        if record.get("IsDeleted") == Some(&Value::Bool(true)) {
            return Reply::api_error(404, "ENTITY_IS_DELETED", "entity is deleted");
        }
        if let Some(locked) = self
            .approvals
            .lock_refusal(super::store::record_id(&record))
        {
            return locked;
        }
        if let Some(since) = if_unmodified_since {
            let Ok(since) = DateTime::parse_from_rfc2822(since) else {
                return Reply::api_error(
                    400,
                    "INVALID_HEADER_TYPE",
                    "If-Unmodified-Since is not an HTTP date",
                );
            };
            let modified = record
                .get("LastModifiedDate")
                .and_then(Value::as_str)
                .and_then(parse_datetime);
            // HTTP dates have whole seconds.
            if modified.is_some_and(|m| m.timestamp() > since.timestamp()) {
                return Reply {
                    status: 412,
                    body: json!([{
                        "message": "The requested resource has been modified since the If-Unmodified-Since date",
                        "errorCode": "PRECONDITION_FAILED",
                    }]),
                };
            }
        }
        if let Some(reply) = self.writes.take_fault(&name) {
            return reply;
        }
        let record_type = record_type_of(&fields, Some(&record));
        if let Some(reply) = self.writes.check(&name, &record_type, &fields) {
            return reply;
        }
        let now = sf_now();
        record.extend(fields);
        if auto_assign
            && let Some(owner) = self.writes.assignment_rules.get(&name.to_ascii_lowercase())
        {
            record.insert("OwnerId".into(), Value::String(owner.clone()));
        }
        for stamp in ["LastModifiedDate", "SystemModstamp"] {
            record.insert(stamp.into(), Value::String(now.clone()));
        }
        self.stamp_update(&mut record);
        let id = super::store::record_id(&record).to_owned();
        let written = Value::Object(record.clone());
        if let Err(message) = self
            .store
            .upsert_all(json!({ name.clone(): [record] }), &now)
        {
            return Reply::api_error(400, "INVALID_FIELD", &message);
        }
        self.journal_write("update", &name, &id, written);
        Reply {
            status: 204,
            body: Value::Null,
        }
    }

    /// `GET /services/data/<version>/ui-api/object-info/<object>/picklist-values/<rt>/<field>`.
    pub fn picklist_values(&self, object: &str, record_type: &str, field: &str) -> Reply {
        match self.writes.choices(object, field, record_type) {
            Some(choices) => Reply::ok(json!({
                "controllerValues": {},
                "defaultValue": null,
                "url": format!(
                    "/services/data/v62.0/ui-api/object-info/{object}/picklist-values/{record_type}/{field}"
                ),
                "values": choices.iter().map(|c| json!({
                    "attributes": null,
                    "label": c.label,
                    "validFor": [],
                    "value": c.value,
                })).collect::<Vec<_>>(),
            })),
            None => Reply::api_error(
                404,
                "NOT_FOUND",
                &format!("{object}.{field} has no picklist values for record type {record_type}"),
            ),
        }
    }

    /// The write-side state as the control API shows it, with the journal of writes made.
    pub fn write_state(&self) -> Value {
        json!({
            "journal": self.acting.journal,
            "faults": self.writes.faults,
            "validation_rules": self.writes.rules,
            "assignment_rules": self.writes.assignment_rules,
            "picklists": self.writes.picklists,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::store::Store;
    use std::time::Duration;

    fn emulator() -> Emulator {
        let mut store = Store::default();
        store
            .upsert_all(
                json!({"Case": [
                    {"Id": "500000000000001AAA", "Status": "New",
                     "LastModifiedDate": "2024-05-01T10:00:00.000+0000"},
                    {"Id": "500000000000002AAA", "IsDeleted": true},
                ]}),
                &sf_now(),
            )
            .unwrap();
        Emulator::new(
            "c".into(),
            vec![],
            None,
            false,
            Duration::from_secs(60),
            10,
            100,
            store,
        )
    }

    #[test]
    fn creates_and_updates_records() {
        let mut emu = emulator();
        let created = emu.create("Task", br#"{"Subject": "Call", "Status": "Open"}"#);
        assert_eq!(created.status, 201);
        let id = created.body["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("00TEMU") && id.len() == 18, "{id}");
        assert_eq!(with_checksum("001000000000001"), "001000000000001AAA");
        assert_eq!(with_checksum("00TEMU000000001"), "00TEMU0000000012BA");
        let (_, tasks) = emu.store.object("Task").unwrap();
        assert_eq!(tasks[0]["Subject"], "Call");

        let stale = emu.update(
            "Case",
            "500000000000001",
            Some("Wed, 01 May 2024 09:59:59 GMT"),
            true,
            br#"{"Status": "Working"}"#,
        );
        assert_eq!(stale.status, 412);
        let fresh = emu.update(
            "case",
            "500000000000001",
            Some("Wed, 01 May 2024 10:00:00 GMT"),
            true,
            br#"{"Status": "Working"}"#,
        );
        assert_eq!(fresh.status, 204, "{:?}", fresh.body);
        let (_, cases) = emu.store.object("Case").unwrap();
        assert_eq!(cases[0]["Status"], "Working");
        assert_ne!(cases[0]["LastModifiedDate"], "2024-05-01T10:00:00.000+0000");
        assert_eq!(cases[0]["LastModifiedDate"], cases[0]["SystemModstamp"]);

        assert_eq!(
            emu.update("Case", "500000000000002", None, true, b"{}")
                .body[0]["errorCode"],
            "ENTITY_IS_DELETED"
        );
        assert_eq!(
            emu.update("Case", "500000000000009", None, true, b"{}")
                .status,
            404
        );
        assert_eq!(emu.create("Task", br#"{"Id": "x"}"#).status, 400);
        assert_eq!(emu.create("Task", b"[1]").status, 400);
    }

    #[test]
    fn refuses_on_demand() {
        let mut emu = emulator();
        emu.writes.faults.push_back(WriteFault {
            object: "task".into(),
            error_code: "REQUIRED_FIELD_MISSING".into(),
            status: 400,
            message: None,
            fields: vec!["Status".into()],
            times: 1,
        });
        let refused = emu.create("Task", br#"{"Subject": "x"}"#);
        assert_eq!(refused.body[0]["fields"], json!(["Status"]));
        assert_eq!(emu.create("Task", br#"{"Subject": "x"}"#).status, 201);

        emu.writes.rules.push(ValidationRule {
            object: "Case".into(),
            field: "Status".into(),
            value: json!("Closed"),
            message: "Close cases from the console.".into(),
        });
        let rule = emu.update(
            "Case",
            "500000000000001",
            None,
            true,
            br#"{"Status": "Closed"}"#,
        );
        assert_eq!(
            rule.body[0]["errorCode"],
            "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        );
        assert_eq!(rule.body[0]["message"], "Close cases from the console.");

        emu.writes
            .set_picklists(json!({"Case": {"Status": {"master": ["New", {"label": "Working!", "value": "Working"}]}}}))
            .unwrap();
        let bad = emu.update(
            "Case",
            "500000000000001",
            None,
            true,
            br#"{"Status": "Nope"}"#,
        );
        assert_eq!(
            bad.body[0]["errorCode"],
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        );
        let values = emu.picklist_values("Case", MASTER_RECORD_TYPE_ID, "Status");
        assert_eq!(values.body["values"][1]["label"], "Working!");
        assert_eq!(
            emu.picklist_values("Case", MASTER_RECORD_TYPE_ID, "Origin")
                .status,
            404
        );
        assert!(emu.writes.set_picklists(json!({"Case": []})).is_err());
        assert!(
            emu.writes
                .set_picklists(json!({"Case": {"Status": {"master": [1]}}}))
                .is_err()
        );
    }
}
