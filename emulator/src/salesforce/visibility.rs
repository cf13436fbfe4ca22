//! What a person may not see, in a deliberately simple form of Salesforce's sharing: per user,
//! record Ids and whole objects hidden from them (`POST /_emulator/visibility`). A call made
//! with that person's token finds hidden records nowhere: queries and searches leave them
//! out, a hidden object is an unknown type to SOQL, and reading or updating a hidden record,
//! or creating one of a hidden object, is `NOT_FOUND`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::emulator::Emulator;
use super::soql::looks_like_id;
use super::store::{Record, record_id};

/// Hidden record Ids (as 15-character Ids) and objects (lower case) per user Id (15
/// characters).
#[derive(Debug, Default)]
pub struct Visibility {
    hidden: BTreeMap<String, Hidden>,
}

#[derive(Debug, Default, Clone)]
struct Hidden {
    ids: BTreeSet<String>,
    objects: BTreeSet<String>,
}

/// An Id as its case-sensitive 15 characters, the form both spellings share.
fn id15(id: &str) -> String {
    id.get(..15).unwrap_or(id).to_owned()
}

impl Emulator {
    fn hidden_for_caller(&self) -> Option<&Hidden> {
        self.visibility
            .hidden
            .get(&id15(&self.acting.caller.user_id))
    }

    /// Whether the caller may not see `object` at all.
    pub fn hidden_object(&self, object: &str) -> bool {
        self.hidden_for_caller()
            .is_some_and(|h| h.objects.contains(&object.to_ascii_lowercase()))
    }

    /// Whether the caller may not see this record of `object`.
    pub fn hidden_record(&self, object: &str, record: &Record) -> bool {
        self.hidden_for_caller().is_some_and(|h| {
            h.objects.contains(&object.to_ascii_lowercase())
                || h.ids.contains(&id15(record_id(record)))
        })
    }

    /// The user Id a control request names: an Id as given, or the Id of the User with that
    /// username.
    fn user_id_of(&self, who: &str) -> Result<String, String> {
        if looks_like_id(who) && who.starts_with("005") {
            return Ok(id15(who));
        }
        if who.eq_ignore_ascii_case(&self.acting.integration_username) {
            return Ok(id15(&self.integration_caller().user_id));
        }
        self.person(who)
            .map(|c| id15(&c.user_id))
            .ok_or_else(|| format!("no active User is {who:?}"))
    }

    /// `POST /_emulator/visibility {"user", "hidden_ids"?: […], "hidden_objects"?: […]}`:
    /// replaces what that user may not see (empty lists: everything visible again).
    pub fn set_visibility(&mut self, data: &Value) -> Result<Value, String> {
        let Some(fields) = data.as_object() else {
            return Err("expected an object".into());
        };
        if let Some(key) = fields
            .keys()
            .find(|k| !["user", "hidden_ids", "hidden_objects"].contains(&k.as_str()))
        {
            return Err(format!("unknown field {key:?}"));
        }
        let who = fields
            .get("user")
            .and_then(Value::as_str)
            .ok_or(r#"expected {"user": "<username or Id>", "hidden_ids": […]}"#)?;
        let user_id = self.user_id_of(who.trim())?;
        let list = |key: &str| -> Result<Vec<String>, String> {
            match fields.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{key} must be a list of strings")),
                Some(_) => Err(format!("{key} must be a list of strings")),
            }
        };
        let ids = list("hidden_ids")?;
        if let Some(bad) = ids.iter().find(|id| !looks_like_id(id)) {
            return Err(format!("{bad:?} is not a record Id"));
        }
        let hidden = Hidden {
            ids: ids.iter().map(|id| id15(id)).collect(),
            objects: list("hidden_objects")?
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        };
        if hidden.ids.is_empty() && hidden.objects.is_empty() {
            self.visibility.hidden.remove(&user_id);
        } else {
            self.visibility.hidden.insert(user_id, hidden);
        }
        Ok(self.visibility_state())
    }

    /// `GET /_emulator/visibility`: `{"<user Id>": {"hidden_ids", "hidden_objects"}}`.
    pub fn visibility_state(&self) -> Value {
        let shown: serde_json::Map<String, Value> = self
            .visibility
            .hidden
            .iter()
            .map(|(user, h)| {
                (
                    user.clone(),
                    json!({"hidden_ids": h.ids, "hidden_objects": h.objects}),
                )
            })
            .collect();
        Value::Object(shown)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::salesforce::emulator::sf_now;
    use crate::salesforce::store::Store;

    fn emulator() -> Emulator {
        let mut store = Store::default();
        store
            .upsert_all(
                json!({
                    "User": [{"Id": "005000000000011AAA", "Username": "ada@acme.example"}],
                    "Opportunity": [{"Id": "006000000000001AAA", "Name": "Acme"},
                                    {"Id": "006000000000002AAA", "Name": "Globex"}],
                }),
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
    fn hides_records_and_objects_from_one_person() {
        let mut emu = emulator();
        emu.set_visibility(&json!({"user": "Ada@acme.example",
                                   "hidden_ids": ["006000000000002"],
                                   "hidden_objects": ["Case"]}))
            .unwrap();
        let (_, opps) = emu.store.object("Opportunity").unwrap();
        let (acme, globex) = (opps[0].clone(), opps[1].clone());
        assert!(
            !emu.hidden_record("Opportunity", &globex),
            "not as the integration user"
        );
        emu.acting.caller = emu.person("ada@acme.example").unwrap();
        assert!(emu.hidden_record("Opportunity", &globex));
        assert!(!emu.hidden_record("Opportunity", &acme));
        assert!(emu.hidden_object("case") && !emu.hidden_object("Opportunity"));
        assert_eq!(
            emu.visibility_state()["005000000000011"]["hidden_objects"],
            json!(["case"])
        );
        emu.set_visibility(&json!({"user": "005000000000011AAA"}))
            .unwrap();
        assert!(!emu.hidden_record("Opportunity", &globex));
        assert_eq!(emu.visibility_state(), json!({}));

        for bad in [
            json!({"user": "nobody@acme.example"}),
            json!({"hidden_ids": []}),
            json!({"user": "ada@acme.example", "hidden_ids": ["x"]}),
            json!({"user": "ada@acme.example", "hidden_ids": "006000000000001"}),
            json!({"user": "ada@acme.example", "other": 1}),
        ] {
            assert!(emu.set_visibility(&bad).is_err(), "{bad}");
        }
        assert!(
            emu.set_visibility(&json!({"user": "integration@acme.example",
                                       "hidden_objects": ["Lead"]}))
                .is_ok()
        );
    }
}
