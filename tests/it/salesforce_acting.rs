//! Acting as a person against the Salesforce emulator: writes as the integration user or as the
//! person's own user (who shows in the record and the emulator's journal), people the
//! connected app does not let in, people without API access, a person's token reused and
//! renewed once after a 401; and approvals: pending work items, approve, reject with comments,
//! a second decision, multi-step processes and the lock on a record in approval.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use sfrelay::config::Secret;
use sfrelay::event::SalesforceId;
use sfrelay::salesforce::{
    Actor, ApprovalAction, Auth, ClientOptions, OrgCredentials, Retry, SalesforceClient,
    UpdateOptions, WriteError,
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
const INTEGRATION: &str = "integration@acme.example";
/// The emulator's integration user has no User record, so it has the emulator's own Id.
const INTEGRATION_ID: &str = "005000000000001";
const CASE_ID: &str = "500000000000001AAA";
const ADA_ID: &str = "005000000000011AAA";
const BOB_ID: &str = "005000000000012AAA";

/// A `sfrelay-emulator salesforce` in this process with one Case and a few Users.
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
            "Case": [{"Id": CASE_ID, "Subject": "Refund request", "Status": "New",
                      "OwnerId": "005000000000009"}],
            "User": [
                {"Id": ADA_ID, "Username": "ada@acme.example", "IsActive": true},
                {"Id": BOB_ID, "Username": "bob@acme.example", "IsActive": true},
                {"Id": "005000000000013AAA", "Username": "cy@acme.example", "IsActive": true,
                 "UserPermissionsApiEnabled": false},
                {"Id": "005000000000014AAA", "Username": "old@acme.example", "IsActive": false},
            ],
        });
        std::fs::write(&data, seed.to_string()).expect("write seed data");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            CLIENT_ID,
            "--integration-user",
            INTEGRATION,
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
                username: INTEGRATION.into(),
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

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("emulator answers");
        assert!(
            response.status().is_success(),
            "POST {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }

    /// The statuses of REST API requests whose path contains `part`.
    async fn api_statuses(&self, part: &str) -> Vec<Value> {
        let Value::Array(all) = self.get("/_emulator/requests").await else {
            panic!("requests is not an array");
        };
        all.into_iter()
            .filter(|r| {
                let path = r["path"].as_str().unwrap_or("");
                path.starts_with("/services/data/") && path.contains(part)
            })
            .map(|r| r["status"].clone())
            .collect()
    }

    async fn token_requests(&self) -> u64 {
        let stats = self.get("/_emulator/stats").await;
        stats["token_requests"].as_u64().expect("a count")
    }

    /// Who made each journalled write, in order.
    async fn writers(&self) -> Vec<(String, String)> {
        let writes = self.get("/_emulator/writes").await;
        let Value::Array(journal) = &writes["journal"] else {
            panic!("no journal: {writes}");
        };
        journal
            .iter()
            .map(|w| {
                let text = |k: &str| w[k].as_str().unwrap_or_default().to_owned();
                (text("operation"), text("username"))
            })
            .collect()
    }

    /// Puts the Case into approval assigned to Ada; the first work item's Id.
    async fn submit_case(&self, steps: u32) -> SalesforceId {
        let body = json!({"record": CASE_ID, "approver": ADA_ID, "steps": steps});
        let answer = self.post("/_emulator/approvals", body).await;
        id(answer["workitem"].as_str().expect("a work item"))
    }
}

fn org() -> SalesforceId {
    SalesforceId::parse("00D000000000001").expect("org Id")
}

fn id(text: &str) -> SalesforceId {
    SalesforceId::parse(text).expect("an Id")
}

fn person(username: &str) -> Actor {
    Actor::User {
        username: username.into(),
    }
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("fields must be an object"),
    }
}

/// The first 15 characters of an Id field, as Salesforce compares them.
fn id15(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(15)
        .collect()
}

async fn case_field(client: &SalesforceClient, field: &str) -> Value {
    let record = client
        .get_record(&org(), "Case", CASE_ID, &[field])
        .await
        .expect("the case");
    record[field].clone()
}

#[tokio::test]
async fn the_record_and_the_journal_show_who_wrote() {
    let emu = Emulator::start();
    let client = emu.client();
    let ada = person("ada@acme.example");
    let task = fields(json!({"Subject": "Call back", "Status": "Not Started"}));

    let by_integration = client.create(&org(), "Task", &task).await.expect("create");
    let by_ada = client
        .create_as(&org(), &ada, "Task", &task)
        .await
        .expect("create as Ada");
    let working = fields(json!({"Status": "Working"}));
    client
        .update_as(
            &org(),
            &ada,
            "Case",
            CASE_ID,
            &working,
            UpdateOptions::default(),
        )
        .await
        .expect("update as Ada");

    let audit = ["CreatedById", "LastModifiedById", "OwnerId"];
    let record = client
        .get_record(&org(), "Task", by_integration.as_str(), &audit)
        .await
        .expect("task");
    for field in audit {
        assert_eq!(id15(&record[field]), INTEGRATION_ID, "{field}");
    }
    let record = client
        .get_record(&org(), "Task", by_ada.as_str(), &audit)
        .await
        .expect("task");
    for field in audit {
        assert_eq!(id15(&record[field]), ADA_ID[..15], "{field}");
    }
    assert_eq!(
        id15(&case_field(&client, "LastModifiedById").await),
        ADA_ID[..15]
    );
    assert_eq!(
        id15(&case_field(&client, "OwnerId").await),
        "005000000000009",
        "an update does not take the record"
    );

    client
        .update(&org(), "Case", CASE_ID, &working, UpdateOptions::default())
        .await
        .expect("update as the integration user");
    assert_eq!(
        id15(&case_field(&client, "LastModifiedById").await),
        INTEGRATION_ID
    );
    let who = |op: &str, user: &str| (op.to_owned(), user.to_owned());
    assert_eq!(
        emu.writers().await,
        [
            who("create", INTEGRATION),
            who("create", "ada@acme.example"),
            who("update", "ada@acme.example"),
            who("update", INTEGRATION),
        ]
    );
}

#[tokio::test]
async fn a_person_the_connected_app_does_not_let_in_is_told_so_and_nothing_is_written() {
    let emu = Emulator::start();
    let client = emu.client();
    emu.post(
        "/_emulator/jwt-users",
        json!({"usernames": ["ada@acme.example"]}),
    )
    .await;
    let closing = fields(json!({"Status": "Closed"}));
    let update = |actor: Actor| {
        let client = Arc::clone(&client);
        let closing = closing.clone();
        async move {
            client
                .update_as(
                    &org(),
                    &actor,
                    "Case",
                    CASE_ID,
                    &closing,
                    UpdateOptions::default(),
                )
                .await
        }
    };

    for username in [
        "bob@acme.example",
        "old@acme.example",
        "nobody@acme.example",
    ] {
        let err = update(person(username)).await.expect_err(username);
        assert_eq!(
            err,
            WriteError::NotAuthorised {
                username: username.into(),
                code: "invalid_grant".into()
            }
        );
        assert_eq!(err.retry(), Retry::Never);
        let message = err.human_message();
        assert!(
            message.contains("not allowed to use sfrelay") && message.contains("admin"),
            "{message}"
        );
        assert!(!err.to_string().contains(username), "{err}");
    }
    let created = client
        .create_as(&org(), &person("bob@acme.example"), "Task", &closing)
        .await;
    assert!(
        matches!(created, Err(WriteError::NotAuthorised { .. })),
        "{created:?}"
    );

    // The connected app may also refuse a pre-authorised person (e.g. a policy on the app).
    emu.post(
        "/_emulator/faults",
        json!({"fail_next": 1, "status": 400, "error_code": "invalid_app_access",
               "message": "user is not admin approved to access this app", "endpoint": "token"}),
    )
    .await;
    let err = update(person("ada@acme.example"))
        .await
        .expect_err("app access");
    assert!(
        matches!(&err, WriteError::NotAuthorised { code, .. } if code == "invalid_app_access"),
        "{err:?}"
    );

    // Nothing reached the REST API: no write, no journal, the Case as it was.
    assert!(emu.api_statuses("/sobjects/").await.is_empty());
    assert!(emu.writers().await.is_empty());
    assert_eq!(case_field(&client, "Status").await, "New");

    // Ada is pre-authorised, and the integration user always is.
    update(person("ada@acme.example"))
        .await
        .expect("Ada closes");
    update(Actor::Integration)
        .await
        .expect("the integration user writes");
    assert_eq!(emu.writers().await.len(), 2);
}

#[tokio::test]
async fn a_person_without_api_access_is_refused_by_the_api() {
    let emu = Emulator::start();
    let client = emu.client();
    let working = fields(json!({"Status": "Working"}));
    let err = client
        .update_as(
            &org(),
            &person("cy@acme.example"),
            "Case",
            CASE_ID,
            &working,
            UpdateOptions::default(),
        )
        .await
        .expect_err("no API access");
    assert!(
        matches!(&err, WriteError::ApiDisabled { code } if code == "API_DISABLED_FOR_ORG"),
        "{err:?}"
    );
    assert!(err.human_message().contains("API Enabled"));
    assert_eq!(emu.api_statuses("/sobjects/").await, [json!(403)]);
    assert_eq!(case_field(&client, "Status").await, "New");
    assert!(emu.writers().await.is_empty());
}

#[tokio::test]
async fn a_persons_token_is_reused_and_renewed_once_after_a_401() {
    let emu = Emulator::start();
    let client = emu.client();
    let ada = person("ada@acme.example");
    let task = fields(json!({"Subject": "Follow up", "Status": "Not Started"}));
    for _ in 0..2 {
        client
            .create_as(&org(), &ada, "Task", &task)
            .await
            .expect("create as Ada");
    }
    assert_eq!(emu.token_requests().await, 1, "one token for two writes");

    emu.post("/_emulator/expire-tokens", json!({})).await;
    let working = fields(json!({"Status": "Working"}));
    client
        .update_as(
            &org(),
            &ada,
            "Case",
            CASE_ID,
            &working,
            UpdateOptions::default(),
        )
        .await
        .expect("update after the session expired");
    assert_eq!(
        emu.api_statuses("/sobjects/").await,
        [json!(201), json!(201), json!(401), json!(204)]
    );
    assert_eq!(emu.token_requests().await, 2, "renewed once");

    // Each person, and the integration user, has a token of their own.
    client
        .create_as(&org(), &person("bob@acme.example"), "Task", &task)
        .await
        .expect("create as Bob");
    client.create(&org(), "Task", &task).await.expect("create");
    client
        .create_as(&org(), &ada, "Task", &task)
        .await
        .expect("Ada again");
    assert_eq!(emu.token_requests().await, 4);
    let users: Vec<String> = emu.writers().await.into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        users,
        [
            "ada@acme.example",
            "ada@acme.example",
            "ada@acme.example",
            "bob@acme.example",
            INTEGRATION,
            "ada@acme.example"
        ]
    );
}

#[tokio::test]
async fn a_record_in_approval_is_locked_listed_and_approved_by_its_approver() {
    let emu = Emulator::start();
    let client = emu.client();
    let case = id(CASE_ID);
    assert!(
        client
            .pending_workitems(&org(), &case)
            .await
            .expect("none")
            .is_empty()
    );

    let workitem = emu.submit_case(1).await;
    let pending = client
        .pending_workitems(&org(), &case)
        .await
        .expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, workitem);
    assert_eq!(pending[0].actor_id, Some(id(ADA_ID)));

    let working = fields(json!({"Status": "Working"}));
    let err = client
        .update(&org(), "Case", CASE_ID, &working, UpdateOptions::default())
        .await
        .expect_err("locked");
    assert_eq!(err, WriteError::Locked);
    assert!(err.human_message().contains("approval"));

    let outcome = client
        .decide_workitem(
            &org(),
            &person("ada@acme.example"),
            &workitem,
            ApprovalAction::Approve,
            Some("Within policy"),
        )
        .await
        .expect("approve");
    assert_eq!(outcome.instance_status, "Approved");
    assert!(outcome.new_workitems.is_empty());
    assert!(
        client
            .pending_workitems(&org(), &case)
            .await
            .expect("none")
            .is_empty()
    );
    client
        .update(&org(), "Case", CASE_ID, &working, UpdateOptions::default())
        .await
        .expect("unlocked");

    let journal = emu.get("/_emulator/approvals").await;
    let decision = &journal["decisions"][0];
    assert_eq!(decision["action"], "Approve");
    assert_eq!(decision["comments"], "Within policy");
    assert_eq!(decision["actor_username"], "ada@acme.example");
    assert_eq!(id15(&decision["actor_id"]), ADA_ID[..15]);
    assert_eq!(journal["instances"][0]["status"], "Approved");

    let queries = emu.get("/_emulator/requests").await;
    let soql: Vec<&str> = queries
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["q"].as_str())
        .collect();
    assert!(
        soql.contains(
            &"SELECT Id, ActorId, ProcessInstance.TargetObjectId FROM ProcessInstanceWorkitem \
              WHERE ProcessInstance.TargetObjectId = '500000000000001AAA'"
        ),
        "{soql:?}"
    );
}

#[tokio::test]
async fn a_rejection_keeps_its_comments_and_a_second_decision_is_refused() {
    let emu = Emulator::start();
    let client = emu.client();
    let workitem = emu.submit_case(1).await;
    let ada = person("ada@acme.example");
    let outcome = client
        .decide_workitem(
            &org(),
            &ada,
            &workitem,
            ApprovalAction::Reject,
            Some("Discount too deep"),
        )
        .await
        .expect("reject");
    assert_eq!(outcome.instance_status, "Rejected");

    for action in [ApprovalAction::Approve, ApprovalAction::Reject] {
        let err = client
            .decide_workitem(&org(), &ada, &workitem, action, None)
            .await
            .expect_err("decided already");
        assert_eq!(err, WriteError::AlreadyDecided);
        assert_eq!(err.retry(), Retry::Never);
        assert!(err.human_message().contains("already decided"));
    }
    let journal = emu.get("/_emulator/approvals").await;
    let decisions = journal["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["action"], "Reject");
    assert_eq!(decisions[0]["comments"], "Discount too deep");
    assert_eq!(journal["instances"][0]["status"], "Rejected");

    let working = fields(json!({"Status": "Working"}));
    client
        .update_as(
            &org(),
            &ada,
            "Case",
            CASE_ID,
            &working,
            UpdateOptions::default(),
        )
        .await
        .expect("a rejected record is unlocked");
}

#[tokio::test]
async fn a_multi_step_approval_stays_pending_until_its_last_step() {
    let emu = Emulator::start();
    let client = emu.client();
    let case = id(CASE_ID);
    let first = emu.submit_case(2).await;
    let ada = person("ada@acme.example");

    let err = client
        .decide_workitem(
            &org(),
            &person("bob@acme.example"),
            &first,
            ApprovalAction::Approve,
            None,
        )
        .await
        .expect_err("Bob is not the approver");
    assert!(matches!(err, WriteError::NoAccess { .. }), "{err:?}");

    let step1 = client
        .decide_workitem(
            &org(),
            &ada,
            &first,
            ApprovalAction::Approve,
            Some("step one"),
        )
        .await
        .expect("first step");
    assert_eq!(step1.instance_status, "Pending");
    assert_eq!(step1.new_workitems.len(), 1);
    let second = step1.new_workitems[0].clone();
    assert_ne!(second, first);
    let pending = client
        .pending_workitems(&org(), &case)
        .await
        .expect("pending");
    assert_eq!(pending.iter().map(|w| &w.id).collect::<Vec<_>>(), [&second]);
    let touch = fields(json!({"Subject": "Refund request (urgent)"}));
    let still_locked = client
        .update(&org(), "Case", CASE_ID, &touch, UpdateOptions::default())
        .await;
    assert_eq!(still_locked, Err(WriteError::Locked));

    let step2 = client
        .decide_workitem(&org(), &ada, &second, ApprovalAction::Approve, None)
        .await
        .expect("last step");
    assert_eq!(step2.instance_status, "Approved");
    assert!(step2.new_workitems.is_empty());
    client
        .update(&org(), "Case", CASE_ID, &touch, UpdateOptions::default())
        .await
        .expect("unlocked");
}
