//! The Salesforce client against the Salesforce emulator (`sfrelay-emulator salesforce`):
//! tokens, caching, refresh on an expired session, paging, error classification, API usage,
//! and bound SOQL that an injection attempt cannot break.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use sfrelay::config::Secret;
use sfrelay::event::SalesforceId;
use sfrelay::salesforce::{
    ApiUsage, Auth, ClientOptions, OrgCredentials, Retry, SalesforceClient, SalesforceError, Soql,
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

/// A `sfrelay-emulator salesforce` running in this process, stopped when dropped.
struct Emulator {
    url: String,
    /// Stops the emulator when dropped.
    _running: Running,
    http: reqwest::Client,
}

impl Emulator {
    fn start(extra: &[&str]) -> Emulator {
        let args = ["--listen", "127.0.0.1:0", "--client-id", CLIENT_ID];
        let running = sfrelay_emulator::spawn_salesforce(args.iter().chain(extra))
            .expect("start the Salesforce emulator");
        Emulator {
            url: running.url(),
            _running: running,
            http: reqwest::Client::new(),
        }
    }

    /// With the test key and `records` Opportunities (`006…01` up to `006…N`).
    fn with_opportunities(records: usize, extra: &[&str]) -> (Emulator, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data.json");
        let opps: Vec<Value> = (1..=records)
            .map(|i| {
                json!({
                    "Id": format!("006{i:012}"),
                    "Name": format!("Deal {i:02}"),
                    "Amount": i * 1000,
                    "StageName": if i % 2 == 0 { "Closed Won" } else { "Prospecting" },
                    "AccountId": "001000000000001",
                })
            })
            .collect();
        let seed = json!({
            "Opportunity": opps,
            "Account": [{"Id": "001000000000001", "Name": "O'Brien \\ Sons"}],
        });
        std::fs::write(&data, seed.to_string()).expect("write seed data");
        let mut args = vec!["--public-key", PUBLIC_KEY, "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        (Emulator::start(&args), dir)
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("emulator JSON")
    }

    async fn post(&self, path: &str, body: Value) {
        let status = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("emulator answers")
            .status();
        assert!(status.is_success(), "POST {path}: {status}");
    }

    async fn stats(&self) -> Value {
        self.get("/_emulator/stats").await
    }

    /// REST API requests (not token requests), in order.
    async fn api_requests(&self) -> Vec<Value> {
        let Value::Array(all) = self.get("/_emulator/requests").await else {
            panic!("requests is not an array");
        };
        all.into_iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("/services/data/")
            })
            .collect()
    }
}

fn org() -> SalesforceId {
    SalesforceId::parse("00D000000000001").unwrap()
}

fn jwt_client(emu: &Emulator, options: ClientOptions) -> SalesforceClient {
    let creds = OrgCredentials {
        org_id: org(),
        login_url: emu.url.clone(),
        client_id: CLIENT_ID.into(),
        auth: Auth::JwtBearer {
            username: "integration@acme.example".into(),
            private_key_pem: Secret::new(std::fs::read(PRIVATE_KEY).unwrap()),
        },
        budget: Default::default(),
    };
    SalesforceClient::new(vec![creds], options).expect("client")
}

fn refresh_client(emu: &Emulator, refresh_token: &str) -> SalesforceClient {
    let creds = OrgCredentials {
        org_id: org(),
        login_url: emu.url.clone(),
        client_id: CLIENT_ID.into(),
        auth: Auth::RefreshToken {
            refresh_token: Secret::new(refresh_token.into()),
            client_secret: Some(Secret::new("not-checked".into())),
        },
        budget: Default::default(),
    };
    SalesforceClient::new(vec![creds], ClientOptions::default()).expect("client")
}

fn soql(template: &str, params: Value) -> Soql {
    let Value::Object(map) = params else {
        panic!("params must be an object");
    };
    Soql::bind(template, &map).expect("bind")
}

fn all_opportunities() -> Soql {
    Soql::bind(
        "SELECT Id, Name FROM Opportunity ORDER BY Name",
        &Map::new(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_jwt_bearer_token_is_obtained_once_and_reused() {
    let (emu, _dir) = Emulator::with_opportunities(4, &[]);
    let client = Arc::new(jwt_client(&emu, ClientOptions::default()));

    // Concurrent first calls share one token request.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = Arc::clone(&client);
        tasks.spawn(async move { client.query(&org(), &all_opportunities()).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().expect("query").len(), 4);
    }
    for _ in 0..5 {
        let records = client.query(&org(), &all_opportunities()).await.unwrap();
        assert_eq!(records[0]["Name"], "Deal 01");
        assert_eq!(records[0]["attributes"]["type"], "Opportunity");
    }
    let stats = emu.stats().await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["tokens_issued"], 1, "{stats}");
    assert_eq!(stats["api_requests"], 13, "{stats}");
    assert_eq!(stats["api_errors"], 0, "{stats}");
}

#[tokio::test]
async fn an_expired_session_is_refreshed_exactly_once() {
    let (emu, _dir) = Emulator::with_opportunities(2, &[]);
    let client = Arc::new(jwt_client(&emu, ClientOptions::default()));
    client.query(&org(), &all_opportunities()).await.unwrap();

    emu.post("/_emulator/expire-tokens", json!({})).await;
    let records = client.query(&org(), &all_opportunities()).await.unwrap();
    assert_eq!(records.len(), 2);
    let statuses: Vec<Value> = emu
        .api_requests()
        .await
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(200), json!(401), json!(200)]);
    assert_eq!(emu.stats().await["token_requests"], 2);

    // Many callers hitting the expired session at once still refresh only once.
    emu.post("/_emulator/expire-tokens", json!({})).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = Arc::clone(&client);
        tasks.spawn(async move { client.query(&org(), &all_opportunities()).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().expect("query after expiry").len(), 2);
    }
    assert_eq!(emu.stats().await["token_requests"], 3);
}

#[tokio::test]
async fn a_session_refused_after_the_refresh_is_permanent() {
    // Tokens die at once: the one retry after the refresh fails too, and the client stops.
    let (emu, _dir) = Emulator::with_opportunities(1, &[]);
    let client = jwt_client(&emu, ClientOptions::default());
    client.authenticate(&org()).await.unwrap();
    emu.post("/_emulator/expire-tokens", json!({})).await;
    emu.post(
        "/_emulator/faults",
        json!({"fail_next": 1, "status": 401, "error_code": "INVALID_SESSION_ID"}),
    )
    .await;
    let err = client
        .query(&org(), &all_opportunities())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Api { status: 401, code, .. } if code == "INVALID_SESSION_ID"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);
    assert_eq!(emu.stats().await["token_requests"], 2);
    assert_eq!(emu.api_requests().await.len(), 2);
}

#[tokio::test]
async fn a_refused_grant_is_a_permanent_error_naming_the_org() {
    // No certificate configured: every assertion is refused.
    let emu = Emulator::start(&[]);
    let client = jwt_client(&emu, ClientOptions::default());
    let err = client
        .query(&org(), &all_opportunities())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Auth { error, .. } if error == "invalid_grant"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);
    let text = err.to_string();
    assert!(text.contains(org().as_str()), "{text}");
    assert!(text.contains("invalid assertion"), "{text}");

    // A wrong refresh token.
    let emu = Emulator::start(&["--refresh-token", "5Aep-right"]);
    let client = refresh_client(&emu, "5Aep-wrong");
    let err = client.authenticate(&org()).await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Auth { error, description, .. }
            if error == "invalid_grant" && description == "expired access/refresh token"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);
    assert!(!format!("{err:?}").contains("5Aep"), "{err:?}");
    assert!(emu.api_requests().await.is_empty());
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retriable() {
    let (emu, _dir) = Emulator::with_opportunities(1, &[]);
    emu.post(
        "/_emulator/faults",
        json!({"fail_next": 1, "status": 503, "error_code": "server_unavailable", "endpoint": "token"}),
    )
    .await;
    let client = jwt_client(&emu, ClientOptions::default());
    let err = client.authenticate(&org()).await.unwrap_err();
    assert_eq!(err.retry(), Retry::Later, "{err}");
    client
        .authenticate(&org())
        .await
        .expect("the next attempt works");
}

#[tokio::test]
async fn refresh_token_rotation_is_followed() {
    let (emu, _dir) = Emulator::with_opportunities(
        1,
        &["--refresh-token", "5Aep-first", "--rotate-refresh-tokens"],
    );
    let client = refresh_client(&emu, "5Aep-first");
    client.query(&org(), &all_opportunities()).await.unwrap();
    emu.post("/_emulator/expire-tokens", json!({})).await;
    // The configured token no longer works; the rotated one must be used.
    client.query(&org(), &all_opportunities()).await.unwrap();
    let stats = emu.stats().await;
    assert_eq!(stats["tokens_issued"], 2, "{stats}");
    assert_eq!(stats["token_errors"], 0, "{stats}");
}

#[tokio::test]
async fn queries_follow_next_records_url_through_every_page() {
    let (emu, _dir) = Emulator::with_opportunities(5, &["--page-size", "2"]);
    let client = jwt_client(&emu, ClientOptions::default());
    let records = client.query(&org(), &all_opportunities()).await.unwrap();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Deal 01", "Deal 02", "Deal 03", "Deal 04", "Deal 05"]
    );
    let paths: Vec<String> = emu
        .api_requests()
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths[0].ends_with("/query"));
    assert!(paths[1].contains("/query/") && paths[2].contains("/query/"));

    // One page by hand, then the rest.
    let page = client
        .query_page(&org(), &all_opportunities())
        .await
        .unwrap();
    assert_eq!(
        (page.total_size, page.done, page.records.len()),
        (5, false, 2)
    );
    let next = client
        .query_more(&org(), page.next_records_url.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(next.records[0]["Name"], "Deal 03");

    // The record cap stops a query that would collect too much.
    let capped = jwt_client(
        &emu,
        ClientOptions {
            max_records: 4,
            ..ClientOptions::default()
        },
    );
    let err = capped
        .query(&org(), &all_opportunities())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SalesforceError::TooManyRecords {
                total: 5,
                limit: 4,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);
}

#[tokio::test]
async fn bound_values_cannot_break_out_of_their_literal() {
    let (emu, _dir) = Emulator::with_opportunities(3, &[]);
    let client = jwt_client(&emu, ClientOptions::default());

    let injected = soql(
        "SELECT Id, Name FROM Opportunity WHERE Name = :name",
        json!({"name": "x' OR Name != '"}),
    );
    let records = client.query(&org(), &injected).await.expect("no error");
    assert!(records.is_empty(), "{records:?}");
    let requests = emu.api_requests().await;
    assert_eq!(
        requests[0]["q"],
        r"SELECT Id, Name FROM Opportunity WHERE Name = 'x\' OR Name != \''"
    );

    // What the same text would do pasted in raw: a loud, permanent failure.
    let pasted = Soql::bind(
        "SELECT Id, Name FROM Opportunity WHERE Name = 'x' OR Name != ''",
        &Map::new(),
    )
    .unwrap();
    let err = client.query(&org(), &pasted).await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Api { code, status: 400, .. } if code == "MALFORMED_QUERY"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);

    // Quotes, backslashes and relationship fields round-trip.
    let by_account = soql(
        "SELECT Id, Name, Account.Name FROM Opportunity \
         WHERE Account.Name = :record.Account.Name AND StageName IN :stages ORDER BY Name",
        json!({
            "record": {"Account": {"Name": "O'Brien \\ Sons"}},
            "stages": ["Closed Won", "Prospecting"],
        }),
    );
    let records = client.query(&org(), &by_account).await.unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["Account"]["Name"], "O'Brien \\ Sons");
    let won = soql(
        "SELECT Id FROM Opportunity WHERE StageName = :stage AND Amount >= :min",
        json!({"stage": "Closed Won", "min": 1000}),
    );
    assert_eq!(client.query(&org(), &won).await.unwrap().len(), 1);
}

#[tokio::test]
async fn records_by_id_and_error_classes() {
    let (emu, _dir) = Emulator::with_opportunities(2, &[]);
    let client = jwt_client(&emu, ClientOptions::default());
    let record = client
        .get_record(
            &org(),
            "Opportunity",
            "006000000000002",
            &["Name", "Amount"],
        )
        .await
        .unwrap();
    assert_eq!(record["Name"], "Deal 02");
    assert_eq!(record["Amount"], 2000);

    let err = client
        .get_record(&org(), "Opportunity", "006000000000009", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Api { code, .. } if code == "NOT_FOUND"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);

    let bad_field = Soql::bind("SELECT Nope__c FROM Opportunity", &Map::new()).unwrap();
    let err = client.query(&org(), &bad_field).await.unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Api { code, .. } if code == "INVALID_FIELD"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Never);

    // The next query answered with `fault`: the error the client makes of it.
    let query_failing_with = async |fault: Value| {
        emu.post("/_emulator/faults", fault).await;
        client
            .query(&org(), &all_opportunities())
            .await
            .unwrap_err()
    };

    let err = query_failing_with(
        json!({"fail_next": 1, "status": 400, "error_code": "UNABLE_TO_LOCK_ROW"}),
    )
    .await;
    assert_eq!(err.retry(), Retry::Later, "{err}");

    let err = query_failing_with(
        json!({"fail_next": 1, "status": 403, "error_code": "REQUEST_LIMIT_EXCEEDED"}),
    )
    .await;
    assert_eq!(err.retry(), Retry::Later, "{err}");
    assert!(
        err.retry_after().is_some_and(|d| d.as_secs() >= 60),
        "{err}"
    );

    let err = query_failing_with(json!({"fail_next": 1, "status": 503})).await;
    assert_eq!(err.retry(), Retry::Later, "{err}");

    // Records added later are found.
    emu.post(
        "/_emulator/records",
        json!({"Opportunity": [{"Id": "006000000000009", "Name": "Late"}]}),
    )
    .await;
    let late = client
        .get_record(&org(), "Opportunity", "006000000000009", &["Name"])
        .await
        .unwrap();
    assert_eq!(late["Name"], "Late");
}

#[tokio::test]
async fn api_usage_is_read_from_every_answer() {
    let (emu, _dir) = Emulator::with_opportunities(1, &["--api-limit", "3"]);
    let client = jwt_client(&emu, ClientOptions::default());
    assert_eq!(client.api_usage(&org()), None);
    client.query(&org(), &all_opportunities()).await.unwrap();
    assert_eq!(
        client.api_usage(&org()),
        Some(ApiUsage { used: 1, limit: 3 })
    );
    client.query(&org(), &all_opportunities()).await.unwrap();
    client.query(&org(), &all_opportunities()).await.unwrap();
    let usage = client.api_usage(&org()).unwrap();
    assert_eq!((usage.used, usage.remaining()), (3, 0));
    let err = client
        .query(&org(), &all_opportunities())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SalesforceError::Api { code, .. } if code == "REQUEST_LIMIT_EXCEEDED"),
        "{err}"
    );
    assert_eq!(err.retry(), Retry::Later);
}
