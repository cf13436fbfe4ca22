//! Who a call runs as. A token is bound to the user its grant named: the integration user
//! (the refresh-token flow, or a JWT `sub` equal to `--integration-user`), or a person whose
//! active User record the JWT `sub` names and who is pre-authorised on the connected app
//! (`POST /_emulator/jwt-users`). Writes are stamped with that user's Id and journalled with
//! it; a user without "API Enabled" (`UserPermissionsApiEnabled = false`) is refused every call.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::emulator::{Emulator, Reply, USER_ID, now_rfc3339};
use super::store::{Record, field_value, record_id, same_id};

/// The username the integration user has unless `--integration-user` says otherwise.
pub const DEFAULT_INTEGRATION_USERNAME: &str = "integration@acme.example";
/// Writes kept for `/_emulator/writes`.
const MAX_WRITE_JOURNAL: usize = 10_000;
/// What Salesforce answers a JWT `sub` that may not use the connected app.
pub const NOT_APPROVED: &str = "user hasn't approved this consumer";

/// The user a call runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub username: String,
}

/// An access token and the user it was issued to.
#[derive(Debug, Clone)]
pub struct Issued {
    pub at: Instant,
    pub caller: Caller,
    /// The refresh token it was bought with, if any: revoking that ends it too.
    pub refresh: Option<String>,
}

/// The emulated connected app's users.
#[derive(Debug)]
pub struct Acting {
    /// The integration user's username: always authorised, even without a User record.
    pub integration_username: String,
    /// Pre-authorised usernames, lower case; `None` (never set) authorises every active user.
    pub authorised: Option<BTreeSet<String>>,
    /// Who the call being served runs as.
    pub caller: Caller,
    /// Successful writes with who made them.
    pub journal: VecDeque<Value>,
}

impl Default for Acting {
    fn default() -> Self {
        Acting {
            integration_username: DEFAULT_INTEGRATION_USERNAME.into(),
            authorised: None,
            caller: Caller {
                user_id: USER_ID.into(),
                username: DEFAULT_INTEGRATION_USERNAME.into(),
            },
            journal: VecDeque::new(),
        }
    }
}

fn text<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    field_value(record, field).and_then(|(_, v)| v.as_str())
}

/// `IsActive` unless seeded `false`.
fn is_active(user: &Record) -> bool {
    field_value(user, "IsActive").is_none_or(|(_, v)| v != &Value::Bool(false))
}

impl Emulator {
    fn user_by_username(&self, username: &str) -> Option<&Record> {
        let (_, users) = self.store.object("User")?;
        users
            .iter()
            .find(|u| text(u, "Username").is_some_and(|name| name.eq_ignore_ascii_case(username)))
    }

    /// The integration user: its User record's Id when one has its username, else [`USER_ID`].
    pub fn integration_caller(&self) -> Caller {
        let username = self.acting.integration_username.clone();
        let user_id = self
            .user_by_username(&username)
            .map_or(USER_ID, record_id)
            .to_owned();
        Caller { user_id, username }
    }

    /// The user a JWT bearer assertion's `sub` names, when it may have a token: the integration
    /// user, or an active User that is pre-authorised.
    pub fn authorise_sub(&self, sub: &str) -> Result<Caller, Reply> {
        if sub.eq_ignore_ascii_case(&self.acting.integration_username) {
            return Ok(self.integration_caller());
        }
        let refused = || Reply::oauth_error("invalid_grant", NOT_APPROVED);
        let user = self
            .user_by_username(sub)
            .filter(|u| is_active(u))
            .ok_or_else(refused)?;
        let username = text(user, "Username").unwrap_or(sub).to_owned();
        if let Some(authorised) = &self.acting.authorised
            && !authorised.contains(&username.to_lowercase())
        {
            return Err(refused());
        }
        Ok(Caller {
            user_id: record_id(user).to_owned(),
            username,
        })
    }

    /// `API_DISABLED_FOR_ORG` when the caller's User record lacks "API Enabled".
    pub fn api_disabled(&self, caller: &Caller) -> Option<Reply> {
        let (_, users) = self.store.object("User")?;
        let user = users
            .iter()
            .find(|u| same_id(record_id(u), &caller.user_id))?;
        let enabled = field_value(user, "UserPermissionsApiEnabled")
            .is_none_or(|(_, v)| v != &Value::Bool(false));
        (!enabled).then(|| {
            Reply::api_error(
                403,
                "API_DISABLED_FOR_ORG",
                "The REST API is not enabled for this Organization.",
            )
        })
    }

    /// `POST /_emulator/jwt-users` `{"usernames": [...]}`: replaces the pre-authorised users.
    pub fn set_jwt_users(&mut self, data: Value) -> Result<Value, String> {
        let usernames = data
            .get("usernames")
            .and_then(Value::as_array)
            .filter(|_| data.as_object().is_some_and(|o| o.len() == 1))
            .ok_or(r#"expected {"usernames": ["user@example.com", …]}"#)?;
        let mut authorised = BTreeSet::new();
        for name in usernames {
            match name.as_str().map(str::trim) {
                Some(name) if !name.is_empty() => authorised.insert(name.to_lowercase()),
                _ => return Err("usernames must be non-empty strings".into()),
            };
        }
        self.acting.authorised = Some(authorised);
        Ok(self.jwt_users())
    }

    /// `GET /_emulator/jwt-users`: `{"usernames": [...]}`, or `null` when every active user is
    /// authorised.
    pub fn jwt_users(&self) -> Value {
        json!({
            "integration_user": self.acting.integration_username,
            "usernames": self.acting.authorised,
        })
    }

    /// A new record's audit fields: created, modified and (unless given) owned by the caller.
    pub fn stamp_create(&self, record: &mut Map<String, Value>) {
        let id = Value::String(self.acting.caller.user_id.clone());
        record.insert("CreatedById".into(), id.clone());
        record.insert("LastModifiedById".into(), id.clone());
        if field_value(record, "OwnerId").is_none() {
            record.insert("OwnerId".into(), id);
        }
    }

    /// An updated record's `LastModifiedById`.
    pub fn stamp_update(&self, record: &mut Map<String, Value>) {
        let id = Value::String(self.acting.caller.user_id.clone());
        record.insert("LastModifiedById".into(), id);
    }

    /// Journals a successful write with the user who made it.
    /// Journals a write: what, by whom, and the record as it was written.
    pub fn journal_write(&mut self, operation: &str, object: &str, id: &str, record: Value) {
        if self.acting.journal.len() >= MAX_WRITE_JOURNAL {
            self.acting.journal.pop_front();
        }
        let caller = &self.acting.caller;
        let entry = json!({
            "at": now_rfc3339(),
            "operation": operation,
            "object": object,
            "id": id,
            "user_id": caller.user_id,
            "username": caller.username,
            "record": record,
        });
        self.acting.journal.push_back(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::emulator::sf_now;
    use crate::salesforce::store::Store;
    use std::time::Duration;

    const ADA: &str = "005000000000011AAA";

    fn emulator() -> Emulator {
        let mut store = Store::default();
        store
            .upsert_all(
                json!({
                    "User": [
                        {"Id": ADA, "Username": "ada@acme.example", "IsActive": true},
                        {"Id": "005000000000012AAA", "Username": "bob@acme.example"},
                        {"Id": "005000000000013AAA", "Username": "old@acme.example",
                         "IsActive": false},
                        {"Id": "005000000000014AAA", "Username": "cy@acme.example",
                         "IsActive": true, "UserPermissionsApiEnabled": false},
                    ],
                    "Case": [{"Id": "500000000000001AAA", "Status": "New"}],
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

    fn error_of(reply: Result<Caller, Reply>) -> Value {
        let reply = reply.expect_err("refused");
        assert_eq!(reply.status, 400);
        reply.body
    }

    #[test]
    fn jwt_subjects_are_active_pre_authorised_users_or_the_integration_user() {
        let mut emu = emulator();
        let ada = emu.authorise_sub("Ada@Acme.example").unwrap();
        assert_eq!(
            (ada.user_id.as_str(), ada.username.as_str()),
            (ADA, "ada@acme.example")
        );
        assert!(emu.authorise_sub("bob@acme.example").is_ok());
        let integration = emu.authorise_sub(DEFAULT_INTEGRATION_USERNAME).unwrap();
        assert_eq!(integration.user_id, USER_ID);
        for sub in ["old@acme.example", "nobody@acme.example"] {
            let body = error_of(emu.authorise_sub(sub));
            assert_eq!(body["error"], "invalid_grant", "{sub}");
            assert_eq!(body["error_description"], NOT_APPROVED, "{sub}");
        }

        emu.set_jwt_users(json!({"usernames": ["ADA@acme.example"]}))
            .unwrap();
        assert!(emu.authorise_sub("ada@acme.example").is_ok());
        assert_eq!(
            error_of(emu.authorise_sub("bob@acme.example"))["error_description"],
            NOT_APPROVED
        );
        assert!(emu.authorise_sub(DEFAULT_INTEGRATION_USERNAME).is_ok());
        assert_eq!(emu.jwt_users()["usernames"], json!(["ada@acme.example"]));
        for bad in [
            json!(["x"]),
            json!({"usernames": [""]}),
            json!({"names": []}),
        ] {
            assert!(emu.set_jwt_users(bad.clone()).is_err(), "{bad}");
        }

        // The integration user's own User record gives it its Id.
        emu.acting.integration_username = "bob@acme.example".into();
        assert_eq!(emu.integration_caller().user_id, "005000000000012AAA");
    }

    fn jwt_token(emu: &mut Emulator, sub: &str) -> Reply {
        const PRIVATE: &[u8] = include_bytes!("../../../tests/fixtures/keys/rsa-private.pem");
        const PUBLIC: &[u8] = include_bytes!("../../../tests/fixtures/keys/rsa-public.pem");
        if emu.keys.is_empty() {
            emu.keys
                .push(jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC).unwrap());
        }
        let claims = json!({"iss": "c", "sub": sub, "aud": "https://login.salesforce.com",
                            "exp": chrono::Utc::now().timestamp() + 60});
        let assertion = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE).unwrap(),
        )
        .unwrap();
        let form = std::collections::HashMap::from([
            (
                "grant_type".to_string(),
                super::super::emulator::JWT_BEARER_GRANT.to_string(),
            ),
            ("assertion".to_string(), assertion),
        ]);
        emu.token(&form, "http://127.0.0.1:1")
    }

    #[test]
    fn tokens_are_bound_to_the_user_the_assertion_named() {
        let mut emu = emulator();
        let reply = jwt_token(&mut emu, "ada@acme.example");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body["id"].as_str().unwrap().ends_with(ADA));
        let auth = format!("Bearer {}", reply.body["access_token"].as_str().unwrap());
        let created = emu.api(Some(&auth), |e| e.create("Task", br#"{"Subject": "x"}"#));
        assert_eq!(created.status, 201);
        let (_, tasks) = emu.store.object("Task").unwrap();
        assert_eq!(tasks[0]["CreatedById"], ADA);
        assert_eq!(
            emu.acting.caller,
            emu.integration_caller(),
            "reset after the call"
        );

        let refused = jwt_token(&mut emu, "nobody@acme.example");
        assert_eq!(refused.body["error_description"], NOT_APPROVED);
        assert_eq!(emu.stats.token_errors, 1);

        let cy = jwt_token(&mut emu, "cy@acme.example");
        let auth = format!("Bearer {}", cy.body["access_token"].as_str().unwrap());
        let disabled = emu.api(Some(&auth), |e| e.create("Task", br#"{"Subject": "y"}"#));
        assert_eq!(disabled.body[0]["errorCode"], "API_DISABLED_FOR_ORG");
        assert_eq!(emu.store.object("Task").unwrap().1.len(), 1);
    }

    #[test]
    fn api_access_follows_the_users_permission() {
        let emu = emulator();
        let cy = emu.authorise_sub("cy@acme.example").unwrap();
        let reply = emu.api_disabled(&cy).expect("refused");
        assert_eq!(
            (reply.status, reply.body[0]["errorCode"].clone()),
            (403, json!("API_DISABLED_FOR_ORG"))
        );
        let ada = emu.authorise_sub("ada@acme.example").unwrap();
        assert!(emu.api_disabled(&ada).is_none());
        assert!(emu.api_disabled(&emu.integration_caller()).is_none());
    }

    #[test]
    fn writes_are_stamped_and_journalled_with_the_acting_user() {
        let mut emu = emulator();
        let created = emu.create("Task", br#"{"Subject": "Call"}"#);
        assert_eq!(created.status, 201);
        emu.acting.caller = emu.authorise_sub("ada@acme.example").unwrap();
        let owned = emu.create(
            "Task",
            br#"{"Subject": "Mine", "OwnerId": "005000000000012"}"#,
        );
        let updated = emu.update(
            "Case",
            "500000000000001",
            None,
            true,
            br#"{"Status": "Working"}"#,
        );
        assert_eq!(updated.status, 204);
        let refused = emu.create("Task", br#"{"CreatedById": "005000000000012"}"#);
        assert_eq!(
            refused.body[0]["errorCode"],
            "INVALID_FIELD_FOR_INSERT_UPDATE"
        );

        let (_, tasks) = emu.store.object("Task").unwrap();
        assert_eq!(tasks[0]["CreatedById"], USER_ID);
        assert_eq!(tasks[0]["OwnerId"], USER_ID);
        assert_eq!(tasks[1]["CreatedById"], ADA);
        assert_eq!(tasks[1]["LastModifiedById"], ADA);
        assert_eq!(tasks[1]["OwnerId"], "005000000000012");
        let (_, cases) = emu.store.object("Case").unwrap();
        assert_eq!(cases[0]["LastModifiedById"], ADA);

        let journal = &emu.write_state()["journal"];
        let who: Vec<(&str, &str, &str)> = journal
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["operation"].as_str().unwrap(),
                    w["user_id"].as_str().unwrap(),
                    w["username"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            who,
            [
                ("create", USER_ID, DEFAULT_INTEGRATION_USERNAME),
                ("create", ADA, "ada@acme.example"),
                ("update", ADA, "ada@acme.example"),
            ]
        );
        assert_eq!(journal[2]["id"], "500000000000001AAA");
        assert_eq!(owned.body["id"], journal[1]["id"]);
    }
}
