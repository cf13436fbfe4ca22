//! Credentials that go bad: a Slack bot token that is revoked or refused pauses delivery for
//! that Slack app (jobs wait, nothing is dead-lettered) until the token works again, while an
//! org with its own app keeps posting; a Salesforce refresh token rotated on use is kept in
//! Redis, encrypted, so a restart or a second replica presents the rotated one.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, SLACK_TOKEN, Salesforce, Slack, eventually};

/// An org that posts as a Slack app of its own.
const OWN_APP_ORG: &str = "00D5g000007OWNaEAO";
const OWN_APP_API_KEY: &str = "own-app-org-api-key-0123456789";
const OWN_APP_TOKEN: &str = "xoxb-own-app-token";

const ROUTE: &str = r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "name-only"
"##;

const TEMPLATE: &str = r#"{"text": "won {{ record.Name }}", "blocks": []}"#;

fn won(org: &str, id: &str, name: &str) -> String {
    json!({
        "org_id": org, "object": "Opportunity", "event_id": format!("ev-{name}"),
        "changed_fields": ["StageName"],
        "record": {"Id": id, "StageName": "Closed Won", "Name": name}
    })
    .to_string()
}

/// Makes the emulated Slack refuse `token` with `code`, or accept it again (`None`).
async fn set_token(slack: &Slack, token: &str, refuse: Option<&str>) {
    let status = reqwest::Client::new()
        .post(format!("{}/_emulator/tokens", slack.url))
        .json(&json!({"token": token, "refuse": refuse}))
        .send()
        .await
        .expect("emulator answers")
        .status();
    assert!(status.is_success(), "set token: {status}");
}

fn own_app_org_toml() -> String {
    format!(
        r#"
[[orgs]]
id = "{OWN_APP_ORG}"
name = "own-app"
api_key_env = "TEST_OWN_APP_API_KEY"
[orgs.slack]
bot_token_env = "TEST_OWN_APP_SLACK_TOKEN"

[slack]
token_check_interval_secs = 0.2
"#
    )
}

async fn spawn_with_own_app_org(redis: &Redis, slack: &Slack) -> App {
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            routes: Some(vec![("won", ROUTE.to_string())]),
            templates: vec![("name-only", TEMPLATE.to_string())],
            extra_toml: own_app_org_toml(),
            ..Options::default()
        },
        vec![
            ("TEST_OWN_APP_API_KEY".into(), OWN_APP_API_KEY.into()),
            ("TEST_OWN_APP_SLACK_TOKEN".into(), OWN_APP_TOKEN.into()),
        ],
    )
    .await
}

fn texts(messages: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = messages
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_string())
        .collect();
    texts.sort();
    texts
}

/// The paused apps `/readyz` names, as `(app, reason)`.
async fn paused_apps(app: &App) -> Vec<(String, String)> {
    let response = app.get("/readyz").await;
    assert_eq!(
        response.status(),
        200,
        "a paused Slack app does not fail readiness"
    );
    let body: Value = response.json().await.expect("readyz JSON");
    body["checks"]["slack_apps"]
        .as_array()
        .map(|apps| {
            apps.iter()
                .filter(|a| a["state"] == "paused")
                .map(|a| {
                    (
                        a["app"].as_str().unwrap_or_default().to_string(),
                        a["reason"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many `auth.test` calls the emulator has answered with `code`.
async fn auth_tests_refused(slack: &Slack, code: &str) -> usize {
    slack
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "auth.test" && r["error"] == code)
        .count()
}

#[tokio::test]
async fn a_revoked_token_pauses_its_app_until_it_works_again_while_another_app_keeps_posting() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    set_token(&slack, OWN_APP_TOKEN, None).await;
    let app = spawn_with_own_app_org(&redis, &slack).await;

    assert_eq!(
        app.post_events(won(support::ORG, "006000000000001AAA", "before"))
            .await
            .status(),
        202
    );
    slack.wait_for_messages(1).await;

    // The default app's token is revoked mid-run.
    set_token(&slack, SLACK_TOKEN, Some("token_revoked")).await;
    for (i, id) in [
        "006000000000002AAA",
        "006000000000003AAA",
        "006000000000004AAA",
    ]
    .iter()
    .enumerate()
    {
        let status = app
            .post_events(won(support::ORG, id, &format!("held-{i}")))
            .await
            .status();
        assert_eq!(status, 202);
    }
    let own = app
        .post_events_with(
            won(OWN_APP_ORG, "006000000000005AAA", "own-app"),
            &[("X-Api-Key", OWN_APP_API_KEY)],
        )
        .await;
    assert_eq!(own.status(), 202);

    // The org with its own app keeps posting; the default app is paused, and says why.
    let messages = slack.wait_for_messages(2).await;
    assert_eq!(texts(&messages), ["won before", "won own-app"]);
    let paused = eventually(
        "the default app to be paused",
        Duration::from_secs(20),
        || async {
            let paused = paused_apps(&app).await;
            (!paused.is_empty()).then_some(paused)
        },
    )
    .await;
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0].0, "default");
    assert!(paused[0].1.contains("token_revoked"), "{paused:?}");
    assert_eq!(
        app.metric(r#"sfrelay_slack_app_paused{app="default",reason="token_revoked"}"#)
            .await,
        Some(1.0)
    );

    // While the probe keeps being refused, the jobs wait: nothing is dead-lettered or posted.
    eventually(
        "several refused probes",
        Duration::from_secs(20),
        || async { (auth_tests_refused(&slack, "token_revoked").await >= 3).then_some(()) },
    )
    .await;
    assert_eq!(
        app.metric(r#"sfrelay_queue_depth{state="dead"}"#).await,
        Some(0.0)
    );
    assert_eq!(slack.messages().await.len(), 2);
    let (ok, dead) = app.cli(&["dlq", "list"]);
    assert!(ok, "{dead}");
    assert!(!dead.contains("held-"), "{dead}");

    // The token works again: the probe lifts the pause and everything goes out once.
    set_token(&slack, SLACK_TOKEN, None).await;
    let messages = slack.wait_for_messages(5).await;
    assert_eq!(
        texts(&messages),
        [
            "won before",
            "won held-0",
            "won held-1",
            "won held-2",
            "won own-app"
        ]
    );
    eventually(
        "the pause to be lifted",
        Duration::from_secs(20),
        || async { paused_apps(&app).await.is_empty().then_some(()) },
    )
    .await;
    assert_eq!(
        app.metric(r#"sfrelay_slack_app_paused{app="default",reason="token_revoked"}"#)
            .await,
        Some(0.0)
    );
    assert_eq!(
        app.metric(r#"sfrelay_queue_depth{state="dead"}"#).await,
        Some(0.0)
    );
    assert!(
        !app.logs().contains(SLACK_TOKEN),
        "the bot token reached the log"
    );
}

#[tokio::test]
async fn a_token_refused_at_start_up_holds_events_until_it_works_as_the_log_promises() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    set_token(&slack, OWN_APP_TOKEN, None).await;
    set_token(&slack, SLACK_TOKEN, Some("invalid_auth")).await;
    let app = spawn_with_own_app_org(&redis, &slack).await;

    eventually(
        "the start-up check to pause the app",
        Duration::from_secs(20),
        || async {
            let paused = paused_apps(&app).await;
            paused
                .iter()
                .any(|(app, reason)| app == "default" && reason.contains("invalid_auth"))
                .then_some(())
        },
    )
    .await;
    assert!(
        app.logs().contains("will be posted once the token works"),
        "{}",
        app.logs()
    );
    assert_eq!(
        app.post_events(won(support::ORG, "006000000000001AAA", "queued"))
            .await
            .status(),
        202
    );
    eventually(
        "probes refused after the event",
        Duration::from_secs(20),
        || async { (auth_tests_refused(&slack, "invalid_auth").await >= 4).then_some(()) },
    )
    .await;
    assert!(slack.messages().await.is_empty());
    assert_eq!(
        app.metric(r#"sfrelay_queue_depth{state="dead"}"#).await,
        Some(0.0)
    );

    set_token(&slack, SLACK_TOKEN, None).await;
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(texts(&messages), ["won queued"]);
}

/// A Salesforce emulator that accepts `refresh_token` and hands out a new one on every use,
/// revoking the old.
fn rotating_salesforce(refresh_token: &str) -> Salesforce {
    Salesforce::start_with(
        &json!({
            "Opportunity": [
                {"Id": "006Hs00000BkXyzIAF", "Name": "Acme Corp - Q3 Enterprise", "Amount": 75000,
                 "Account": {"Name": "Acme Corp"}, "Owner": {"Email": "dana.seller@example.com"}}
            ]
        }),
        &["--refresh-token", refresh_token, "--rotate-refresh-tokens"],
    )
}

const ENRICHED_ROUTE: &str = r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[enrich]
query = "SELECT Id, Name, Account.Name FROM Opportunity WHERE Id = :record.Id"
name = "opp"
[[actions]]
type = "post"
channel = "#deal-desk"
template = "enriched"
"##;

const ENRICHED_TEMPLATE: &str =
    r#"{"text": "{{ record.Name }}: {{ opp.Name | default('NOT ENRICHED') }}", "blocks": []}"#;

const ORIGINAL_REFRESH_TOKEN: &str = "5Aep861original.refresh.token";
/// 32 bytes, base64.
const ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn refresh_token_section(salesforce: &Salesforce) -> String {
    format!(
        "[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\nlogin_url = \"{}\"\nclient_id = \"{}\"\nrefresh_token_env = \"TEST_SF_REFRESH_TOKEN\"\n",
        salesforce.url,
        support::SF_CLIENT_ID
    )
}

async fn spawn_refreshing(redis: &Redis, slack: &Slack, salesforce: &Salesforce) -> App {
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            routes: Some(vec![("enriched", ENRICHED_ROUTE.to_string())]),
            templates: vec![("enriched", ENRICHED_TEMPLATE.to_string())],
            salesforce_section: Some(refresh_token_section(salesforce)),
            namespace: "rotation".into(),
            ..Options::default()
        },
        vec![
            (
                "TEST_SF_REFRESH_TOKEN".into(),
                ORIGINAL_REFRESH_TOKEN.into(),
            ),
            ("SFRELAY_ENCRYPTION_KEY".into(), ENCRYPTION_KEY.into()),
        ],
    )
    .await
}

fn enriched_event(event_id: &str) -> String {
    json!({
        "org_id": support::ORG, "object": "Opportunity", "event_id": event_id,
        "changed_fields": ["StageName"],
        "record": {"Id": "006Hs00000BkXyzIAF", "StageName": "Closed Won", "Name": event_id}
    })
    .to_string()
}

/// Every value stored under the namespace whose key contains `part`.
fn redis_values(redis: &Redis, part: &str) -> Vec<String> {
    let keys = redis_cli(redis, &["--scan", "--pattern", &format!("*{part}*")]);
    keys.lines()
        .filter(|k| !k.is_empty())
        .map(|k| redis_cli(redis, &["GET", k]).trim().to_string())
        .collect()
}

fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let output = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_restart_and_serves_a_second_replica() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let salesforce = rotating_salesforce(ORIGINAL_REFRESH_TOKEN);

    let mut first = spawn_refreshing(&redis, &slack, &salesforce).await;
    assert_eq!(
        first.post_events(enriched_event("rot-1")).await.status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["text"], "rot-1: Acme Corp - Q3 Enterprise");

    // The rotated token is in Redis, sealed: neither it nor the original is readable there.
    let stored = redis_values(&redis, "sf-refresh:");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        !stored[0].contains("5Aep"),
        "stored in the clear: {}",
        stored[0]
    );
    assert!(
        !first.logs().contains("5Aep"),
        "a refresh token reached the log"
    );

    // A restart: the original (now revoked) refresh token must not be presented again.
    first.kill();
    let second = spawn_refreshing(&redis, &slack, &salesforce).await;
    assert_eq!(
        second.post_events(enriched_event("rot-2")).await.status(),
        202
    );
    let messages = slack.wait_for_messages(2).await;
    assert_eq!(messages[1]["text"], "rot-2: Acme Corp - Q3 Enterprise");

    // A second replica beside it, after the first one's token rotated again.
    let third = spawn_refreshing(&redis, &slack, &salesforce).await;
    salesforce.control("expire-tokens", json!({})).await;
    assert_eq!(
        third.post_events(enriched_event("rot-3")).await.status(),
        202
    );
    assert_eq!(
        second.post_events(enriched_event("rot-4")).await.status(),
        202
    );
    let messages = slack.wait_for_messages(4).await;
    let mut texts: Vec<&str> = messages.iter().filter_map(|m| m["text"].as_str()).collect();
    texts.sort_unstable();
    assert_eq!(
        texts,
        [
            "rot-1: Acme Corp - Q3 Enterprise",
            "rot-2: Acme Corp - Q3 Enterprise",
            "rot-3: Acme Corp - Q3 Enterprise",
            "rot-4: Acme Corp - Q3 Enterprise",
        ]
    );
    let refused_refreshes = salesforce
        .requests()
        .await
        .iter()
        .filter(|r| r["path"] == "/services/oauth2/token" && r["status"] != 200)
        .count();
    assert_eq!(
        refused_refreshes, 0,
        "a revoked refresh token was presented"
    );
    for app in [&second, &third] {
        assert!(!app.logs().contains("invalid_grant"), "{}", app.logs());
        assert!(
            !app.logs().contains("5Aep"),
            "a refresh token reached the log"
        );
    }
    assert_eq!(
        second.metric(r#"sfrelay_queue_depth{state="dead"}"#).await,
        Some(0.0)
    );
}

#[test]
fn a_refresh_token_org_on_a_public_address_needs_the_encryption_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sfrelay.toml");
    std::fs::write(
        &config,
        format!(
            "[[orgs]]\nid = \"{}\"\napi_key_env = \"K\"\n[orgs.salesforce]\nclient_id = \"c\"\nrefresh_token_env = \"RT\"\n",
            support::ORG
        ),
    )
    .expect("config");
    let run = |key: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sfrelay"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("SFRELAY_LISTEN", "0.0.0.0:0")
            .env("K", "api-key-0123456789")
            .env("RT", "5Aep-refresh")
            .env("SFRELAY_LOG_FORMAT", "text")
            .env("SFRELAY_LOG", "warn");
        if let Some(key) = key {
            command.env("SFRELAY_ENCRYPTION_KEY", key);
        }
        let log = dir.path().join("stderr.log");
        let mut child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("run sfrelay");
        // A start that is refused exits at once; one still running after this has started.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let exited = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = exited.is_none_or(|status| status.success());
        (started, std::fs::read_to_string(&log).unwrap_or_default())
    };
    let (ok, stderr) = run(None);
    assert!(!ok);
    assert!(stderr.contains("SFRELAY_ENCRYPTION_KEY"), "{stderr}");
    let (ok, stderr) = run(Some("not-base64-and-too-short"));
    assert!(!ok);
    assert!(stderr.contains("SFRELAY_ENCRYPTION_KEY"), "{stderr}");
    assert!(!stderr.contains("not-base64-and-too-short"), "{stderr}");
}
