//! Salesforce writes against the Salesforce emulator: create and update, the headers they carry,
//! stale updates, every refusal read into its reason, retryable lock contention, a refreshed
//! session, cached picklist values and users by email.

use std::sync::Arc;

use chrono::{DateTime, Duration as Days, Utc};
use serde_json::{Map, Value, json};
use sfrelay::config::Secret;
use sfrelay::event::SalesforceId;
use sfrelay::salesforce::{
    Auth, ClientOptions, MASTER_RECORD_TYPE_ID, OrgCredentials, Picklists, Retry, SalesforceClient,
    UpdateOptions, UserDirectory, UserLookupError, WriteError,
};
use sfrelay_emulator::Running;

const CLIENT_ID: &str = "3MVG9test.client";
const PUBLIC_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keys/rsa-public.pem"
);
const PRIVATE_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keys/rsa-private.pem"
);
const CASE_ID: &str = "500000000000001AAA";
const CASE_MODIFIED: &str = "2024-05-01T10:00:00.000+0000";

/// A `sfrelay-emulator salesforce` in this process with one Case and three Users.
struct Emulator {
    url: String,
    _running: Running,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Emulator {
    fn start() -> Emulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data.json");
        let seed = json!({
            "Case": [{"Id": CASE_ID, "Subject": "Printer on fire", "Status": "New",
                      "OwnerId": "005000000000009", "LastModifiedDate": CASE_MODIFIED}],
            "User": [
                {"Id": "005000000000001", "Username": "ada@acme.example", "Name": "Ada",
                 "Email": "ada@acme.example", "IsActive": true},
                {"Id": "005000000000002", "Username": "bob@acme.example", "Name": "Bob",
                 "Email": "shared@acme.example", "IsActive": true},
                {"Id": "005000000000003", "Username": "bo2@acme.example", "Name": "Bob 2",
                 "Email": "shared@acme.example", "IsActive": true},
                {"Id": "005000000000004", "Username": "old@acme.example", "Name": "Old",
                 "Email": "old@acme.example", "IsActive": false},
            ],
        });
        std::fs::write(&data, seed.to_string()).expect("write seed data");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            CLIENT_ID,
            "--public-key",
            PUBLIC_KEY,
            "--data",
            data.to_str().expect("utf-8 temp path"),
        ];
        let running = sfrelay_emulator::spawn_salesforce(args).expect("start the emulator");
        Emulator {
            url: running.url(),
            _running: running,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    fn client(&self) -> Arc<SalesforceClient> {
        let creds = OrgCredentials {
            org_id: org(),
            login_url: self.url.clone(),
            client_id: CLIENT_ID.into(),
            auth: Auth::JwtBearer {
                username: "integration@acme.example".into(),
                private_key_pem: Secret::new(std::fs::read(PRIVATE_KEY).expect("key")),
            },
            budget: Default::default(),
        };
        Arc::new(SalesforceClient::new(vec![creds], ClientOptions::default()).expect("client"))
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.url)).send().await;
        response
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON")
    }

    async fn post(&self, path: &str, body: Value) {
        let url = format!("{}{path}", self.url);
        let status = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .expect("emulator answers");
        assert!(
            status.status().is_success(),
            "POST {path}: {}",
            status.status()
        );
    }

    /// REST API requests (not token requests) whose path contains `part`.
    async fn api_requests(&self, part: &str) -> Vec<Value> {
        let Value::Array(all) = self.get("/_emulator/requests").await else {
            panic!("requests is not an array");
        };
        all.into_iter()
            .filter(|r| {
                let path = r["path"].as_str().unwrap_or("");
                path.starts_with("/services/data/") && path.contains(part)
            })
            .collect()
    }

    async fn fail_next_write(&self, object: &str, status: u16, code: &str, message: &str) {
        let fault = json!([{"object": object, "status": status, "error_code": code,
                            "message": message, "fields": ["Status"]}]);
        self.post("/_emulator/write-faults", fault).await;
    }
}

/// Whether an error is the reason a case expects.
type IsReason = fn(&WriteError) -> bool;

fn org() -> SalesforceId {
    SalesforceId::parse("00D000000000001").expect("org Id")
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("fields must be an object"),
    }
}

fn case_modified() -> DateTime<Utc> {
    DateTime::parse_from_str(CASE_MODIFIED, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .expect("date")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_task_is_created_read_back_and_marked_as_sfrelays() {
    let emu = Emulator::start();
    let client = emu.client();
    let task = fields(json!({"Subject": "Call back", "Status": "Not Started",
                             "WhatId": CASE_ID, "ActivityDate": "2024-05-02"}));
    let id = client.create(&org(), "Task", &task).await.expect("create");
    assert!(id.as_str().starts_with("00T"), "{id}");
    let record = client
        .get_record(
            &org(),
            "Task",
            id.as_str(),
            &["Subject", "Status", "WhatId"],
        )
        .await
        .expect("read back");
    assert_eq!(record["Subject"], "Call back");
    assert_eq!(record["Status"], "Not Started");
    assert_eq!(record["WhatId"], CASE_ID);
    let writes = emu.api_requests("/sobjects/Task/").await;
    let create = writes
        .iter()
        .find(|r| r["method"] == "POST")
        .expect("the create");
    assert_eq!(create["status"], 201);
    assert_eq!(create["headers"]["sforce-call-options"], "client=sfrelay");
    assert!(create["headers"].get("sforce-auto-assign").is_none());
    // Writes feed the API usage gauges like queries do.
    assert!(client.api_usage(&org()).is_some_and(|u| u.used >= 2));
}

#[tokio::test]
async fn a_stale_update_is_refused_and_a_current_one_applies_with_its_headers() {
    let emu = Emulator::start();
    let client = emu.client();
    let take = fields(json!({"OwnerId": "005000000000001"}));
    let stale = UpdateOptions {
        if_unmodified_since: Some(case_modified() - Days::hours(1)),
        auto_assign: Some(false),
    };
    let err = client
        .update(&org(), "Case", CASE_ID, &take, stale)
        .await
        .expect_err("stale");
    assert!(matches!(err, WriteError::Stale { .. }), "{err}");
    assert!(err.human_message().contains("changed"));
    let unchanged = client
        .get_record(&org(), "Case", CASE_ID, &["OwnerId"])
        .await;
    assert_eq!(unchanged.expect("case")["OwnerId"], "005000000000009");

    let current = UpdateOptions {
        if_unmodified_since: Some(case_modified()),
        auto_assign: Some(false),
    };
    client
        .update(&org(), "Case", CASE_ID, &take, current)
        .await
        .expect("update");
    let record = client
        .get_record(&org(), "Case", CASE_ID, &["OwnerId", "LastModifiedDate"])
        .await
        .expect("case");
    assert_eq!(record["OwnerId"], "005000000000001");
    assert_ne!(record["LastModifiedDate"], CASE_MODIFIED);
    // The first click's card is now stale too.
    let again = client.update(&org(), "Case", CASE_ID, &take, current).await;
    assert!(matches!(again, Err(WriteError::Stale { .. })), "{again:?}");

    let patches: Vec<Value> = emu
        .api_requests("/sobjects/Case/")
        .await
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3);
    assert_eq!(patches[0]["status"], 412);
    assert_eq!(patches[1]["status"], 204);
    let headers = &patches[1]["headers"];
    assert_eq!(headers["sforce-call-options"], "client=sfrelay");
    assert_eq!(headers["sforce-auto-assign"], "FALSE");
    assert_eq!(
        headers["if-unmodified-since"],
        "Wed, 01 May 2024 10:00:00 GMT"
    );
}

#[tokio::test]
async fn every_refusal_reaches_its_reason_and_a_message_for_the_person() {
    let emu = Emulator::start();
    let client = emu.client();
    let change = fields(json!({"Status": "Working"}));
    let the_org = org();
    let update = || client.update(&the_org, "Case", CASE_ID, &change, UpdateOptions::default());

    let rule = "Cases can be closed only from the service console.";
    emu.post(
        "/_emulator/validation-rules",
        json!([{"object": "Case", "field": "Status", "value": "Closed", "message": rule}]),
    )
    .await;
    let closing = fields(json!({"Status": "Closed"}));
    let err = client
        .update(&org(), "Case", CASE_ID, &closing, UpdateOptions::default())
        .await
        .expect_err("validation rule");
    assert!(matches!(err, WriteError::Validation { .. }), "{err}");
    assert_eq!(err.human_message(), rule);

    emu.post(
        "/_emulator/picklists",
        json!({"Case": {"Status": {"master": ["New", "Working", "Closed"]}}}),
    )
    .await;
    let odd = fields(json!({"Status": "Secret-Value-7"}));
    let err = client
        .update(&org(), "Case", CASE_ID, &odd, UpdateOptions::default())
        .await
        .expect_err("restricted picklist");
    assert_eq!(
        err,
        WriteError::RestrictedPicklist {
            fields: vec!["Status".into()]
        }
    );
    assert!(!err.to_string().contains("Secret-Value-7"));
    assert!(err.human_message().contains("Status"));

    let cases: [(u16, &str, IsReason, &str); 7] = [
        (
            400,
            "REQUIRED_FIELD_MISSING",
            |e| matches!(e, WriteError::RequiredFieldMissing { fields } if fields == &["Status"]),
            "Status",
        ),
        (
            400,
            "ENTITY_IS_LOCKED",
            |e| matches!(e, WriteError::Locked),
            "locked",
        ),
        (
            404,
            "ENTITY_IS_DELETED",
            |e| matches!(e, WriteError::Deleted),
            "deleted",
        ),
        (
            400,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            |e| matches!(e, WriteError::NoAccess { .. }),
            "permission",
        ),
        (
            400,
            "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
            |e| matches!(e, WriteError::NoAccess { .. }),
            "permission",
        ),
        (
            403,
            "API_DISABLED_FOR_ORG",
            |e| matches!(e, WriteError::ApiDisabled { .. }),
            "API Enabled",
        ),
        (
            403,
            "API_CURRENTLY_DISABLED",
            |e| matches!(e, WriteError::ApiDisabled { .. }),
            "API Enabled",
        ),
    ];
    for (status, code, is_reason, says) in cases {
        emu.fail_next_write("Case", status, code, "refused").await;
        let err = update().await.expect_err(code);
        assert!(is_reason(&err), "{code}: {err:?}");
        assert_eq!(err.retry(), Retry::Never, "{code}");
        assert!(
            err.human_message().contains(says),
            "{code}: {}",
            err.human_message()
        );
    }

    let missing = client
        .update(
            &org(),
            "Case",
            "500000000000099",
            &change,
            UpdateOptions::default(),
        )
        .await;
    assert!(matches!(missing, Err(WriteError::Deleted)), "{missing:?}");
    update().await.expect("the faults are used up");
}

#[tokio::test]
async fn a_locked_row_is_retryable_and_the_retried_write_lands_once() {
    let emu = Emulator::start();
    let client = emu.client();
    let task = fields(json!({"Subject": "Follow up", "Status": "Not Started"}));
    emu.fail_next_write(
        "Task",
        400,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access",
    )
    .await;
    let err = client
        .create(&org(), "Task", &task)
        .await
        .expect_err("locked row");
    assert_eq!(err.retry(), Retry::Later, "{err}");
    assert!(err.human_message().contains("try again"));
    // The caller's retry.
    client
        .create(&org(), "Task", &task)
        .await
        .expect("retried create");
    let stats = emu.get("/_emulator/stats").await;
    assert_eq!(stats["records"]["Task"], 1, "{stats}");

    emu.post(
        "/_emulator/faults",
        json!({"fail_next": 1, "status": 503, "error_code": "SERVER_UNAVAILABLE"}),
    )
    .await;
    let err = client
        .create(&org(), "Task", &task)
        .await
        .expect_err("outage");
    assert_eq!(err.retry(), Retry::Later, "{err}");
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_for_a_write() {
    let emu = Emulator::start();
    let client = emu.client();
    let task = fields(json!({"Subject": "One", "Status": "Not Started"}));
    client
        .create(&org(), "Task", &task)
        .await
        .expect("first create");
    emu.post("/_emulator/expire-tokens", json!({})).await;
    let change = fields(json!({"Status": "Working"}));
    client
        .update(&org(), "Case", CASE_ID, &change, UpdateOptions::default())
        .await
        .expect("update after expiry");
    let statuses: Vec<Value> = emu
        .api_requests("/sobjects/")
        .await
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(201), json!(401), json!(204)]);
    assert_eq!(emu.get("/_emulator/stats").await["token_requests"], 2);
}

#[tokio::test]
async fn picklist_values_are_fetched_once_then_cached() {
    let emu = Emulator::start();
    let client = emu.client();
    emu.post(
        "/_emulator/picklists",
        json!({"Case": {"Status": {
            "master": ["New", {"label": "In progress", "value": "Working"}],
            "012000000000ABC": ["Escalated"],
        }}}),
    )
    .await;
    let picklists = Picklists::new(Arc::clone(&client));
    for _ in 0..3 {
        let values = picklists
            .values(&org(), "Case", None, "Status")
            .await
            .expect("values");
        let shown: Vec<(&str, &str)> = values
            .iter()
            .map(|v| (v.label.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(shown, [("New", "New"), ("In progress", "Working")]);
    }
    let typed = picklists
        .values(&org(), "Case", Some("012000000000ABC"), "Status")
        .await
        .expect("record type values");
    assert_eq!(typed[0].value, "Escalated");
    let fetched = emu.api_requests("/picklist-values/").await;
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    let master = format!("/picklist-values/{MASTER_RECORD_TYPE_ID}/Status");
    assert!(fetched[0]["path"].as_str().unwrap_or("").ends_with(&master));
    assert!(
        picklists
            .values(&org(), "Case", None, "Origin")
            .await
            .is_err()
    );
    assert!(
        picklists
            .values(&org(), "Case/..", None, "Status")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn users_are_found_by_email_missing_ones_remembered_and_ambiguous_ones_refused() {
    let emu = Emulator::start();
    let users = UserDirectory::new(emu.client());
    let ada = users
        .by_email(&org(), "Ada@Acme.example")
        .await
        .expect("Ada");
    assert_eq!(ada.id, SalesforceId::parse("005000000000001").expect("Id"));
    assert_eq!(
        (ada.username.as_str(), ada.name.as_str()),
        ("ada@acme.example", "Ada")
    );
    users
        .by_email(&org(), "ada@acme.example")
        .await
        .expect("cached");
    for _ in 0..2 {
        let none = users.by_email(&org(), "nobody@acme.example").await;
        assert_eq!(none, Err(UserLookupError::NotFound));
    }
    let inactive = users.by_email(&org(), "old@acme.example").await;
    assert_eq!(inactive, Err(UserLookupError::NotFound));
    let two = users.by_email(&org(), "shared@acme.example").await;
    assert_eq!(two, Err(UserLookupError::Ambiguous));
    let quote = users
        .by_email(&org(), "x' OR Name != 'y@acme.example")
        .await;
    assert_eq!(quote, Err(UserLookupError::NotFound));
    assert_eq!(
        users.by_email(&org(), "not-an-email").await,
        Err(UserLookupError::InvalidEmail)
    );
    // Ada once, the miss once, the inactive user, the ambiguous email, the quote attempt.
    let queries = emu.api_requests("/query").await;
    assert_eq!(queries.len(), 5, "{queries:?}");
    let q = queries[0]["q"].as_str().unwrap_or("");
    assert!(
        q.contains("FROM User WHERE Email = 'Ada@Acme.example' AND IsActive = true LIMIT 2"),
        "{q}"
    );
}

#[tokio::test]
async fn an_owner_set_on_purpose_survives_the_assignment_rules() {
    let emu = Emulator::start();
    let client = emu.client();
    let queue = "00G000000000001";
    emu.post("/_emulator/assignment-rules", json!({"Case": queue}))
        .await;
    let take = fields(json!({"OwnerId": "005000000000001"}));
    // Without the header the rules run, as Salesforce runs them by default on Case updates.
    client
        .update(&org(), "Case", CASE_ID, &take, UpdateOptions::default())
        .await
        .expect("update with the rules");
    let owner = |record: sfrelay::salesforce::Record| record["OwnerId"].clone();
    let read = client
        .get_record(&org(), "Case", CASE_ID, &["OwnerId"])
        .await;
    assert_eq!(owner(read.expect("case")), queue);
    let taken = UpdateOptions {
        auto_assign: Some(false),
        ..UpdateOptions::default()
    };
    client
        .update(&org(), "Case", CASE_ID, &take, taken)
        .await
        .expect("take the case");
    let read = client
        .get_record(&org(), "Case", CASE_ID, &["OwnerId"])
        .await;
    assert_eq!(owner(read.expect("case")), "005000000000001");
}
