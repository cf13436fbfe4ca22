//! `POST /slack/interactions`: Slack's signed interactivity requests. Real binary, real Redis,
//! emulated Slack (its `response_url` sink).

use crate::support;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{App, ORG, Options, Redis, Slack, eventually};

const SECRET: &str = "test-signing-secret-0123456789abcdef";
const ORG_APP_SECRET: &str = "org-app-signing-secret-fedcba987654";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// A `block_actions` click on a button whose value is `value`, answered at `response_url`.
fn click(value: &str, response_url: &str, action_ts: &str) -> String {
    let payload = json!({
        "type": "block_actions",
        "api_app_id": "A0TEST",
        "team": {"id": "T0TEST"},
        "user": {"id": "U0CLICKER", "team_id": "T0TEST"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0DEALS"},
        "response_url": response_url,
        "trigger_id": format!("trigger.{action_ts}"),
        "actions": [{"type": "button", "action_id": "take", "block_id": "b1",
                     "action_ts": action_ts, "value": value}]
    });
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form")
}

const TAKE: &str = "sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:take";

async fn post(app: &App, body: &str, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = app
        .http
        .post(format!("{}/slack/interactions", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("sfrelay answers")
}

/// Request headers, name and value.
type Headers = Vec<(&'static str, String)>;

fn signed_with(secret: &str, timestamp: i64, body: &str) -> Headers {
    vec![
        ("X-Slack-Request-Timestamp", timestamp.to_string()),
        ("X-Slack-Signature", sign(secret, timestamp, body)),
    ]
}

async fn spawn(redis: &Redis, slack: Option<&Slack>, env: Vec<(String, String)>) -> App {
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: slack.map(Slack::api_base),
            workers: 1,
            // No scheduled route: nothing else writes to Redis while a test compares its keys.
            routes: support::deal_desk_only(),
            extra_toml: "[orgs.slack]\nsigning_secret_env = \"TEST_ORG_SIGNING_SECRET\"\n".into(),
            ..Options::default()
        },
        env,
    )
    .await
}

fn secrets() -> Vec<(String, String)> {
    vec![
        ("SLACK_SIGNING_SECRET".into(), SECRET.into()),
        ("TEST_ORG_SIGNING_SECRET".into(), ORG_APP_SECRET.into()),
    ]
}

/// Every key of the app's namespace.
fn keys(redis: &Redis) -> Vec<String> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut connection = client.get_connection().expect("redis connection");
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("sfrelay:*")
        .query(&mut connection)
        .expect("KEYS");
    keys.retain(|k| !k.contains("consumer"));
    keys.sort();
    keys
}

async fn sink(slack: &Slack, id: &str) -> Vec<Value> {
    slack.get_json(&format!("/_emulator/response/{id}")).await
}

async fn wait_for_answers(slack: &Slack, id: &str, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} answer(s) at response_url {id}"),
        Duration::from_secs(20),
        || async {
            let bodies = sink(slack, id).await;
            (bodies.len() >= n).then_some(bodies)
        },
    )
    .await
}

#[tokio::test]
async fn unsigned_tampered_stale_or_foreign_requests_are_401_and_queue_nothing() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;
    let sink_url = format!("{}/_emulator/response/refused", slack.url);
    let body = click(TAKE, &sink_url, "1.1");
    let before = keys(&redis);

    let t = now();
    let good = signed_with(SECRET, t, &body);
    let tampered = body.replace("U0CLICKER", "U0MALLORY");
    let cases: Vec<(&str, String, Headers)> = vec![
        ("tampered body", tampered, good.clone()),
        (
            "wrong secret",
            body.clone(),
            signed_with("not-the-secret", t, &body),
        ),
        (
            "stale timestamp",
            body.clone(),
            signed_with(SECRET, t - 301, &body),
        ),
        (
            "future timestamp",
            body.clone(),
            signed_with(SECRET, t + 301, &body),
        ),
        ("no timestamp", body.clone(), vec![good[1].clone()]),
        ("no signature", body.clone(), vec![good[0].clone()]),
        ("no headers", body.clone(), vec![]),
        (
            "garbled signature",
            body.clone(),
            vec![good[0].clone(), ("X-Slack-Signature", "v0=zz".into())],
        ),
    ];
    for (what, body, headers) in cases {
        let response = post(&app, &body, &headers).await;
        assert_eq!(response.status().as_u16(), 401, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let problem: Value = response.json().await.expect("problem JSON");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(!detail.is_empty(), "{what}: {problem}");
        assert!(
            !detail.contains(&good[1].1[3..]),
            "{what} leaks the signature"
        );
    }
    assert_eq!(keys(&redis), before, "nothing is queued");
    assert!(sink(&slack, "refused").await.is_empty());
}

#[tokio::test]
async fn ssl_check_is_an_empty_200_and_a_smuggled_payload_is_not_queued() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;
    let sink_url = format!("{}/_emulator/response/smuggled", slack.url);
    let body = format!("ssl_check=1&{}", click(TAKE, &sink_url, "2.1"));
    let before = keys(&redis);

    let response = post(&app, &body, &[]).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.bytes().await.expect("body").is_empty());
    assert_eq!(keys(&redis), before, "nothing is queued");

    // Signed, it is still only a certificate check.
    let response = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(keys(&redis), before, "nothing is queued");
    assert!(sink(&slack, "smuggled").await.is_empty());
}

#[tokio::test]
async fn without_a_signing_secret_slack_inbound_is_404_and_says_it_is_off() {
    let redis = Redis::start();
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let body = click(TAKE, "https://hooks.slack.com/actions/T/1/x", "3.1");
    let response = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(
        app.logs()
            .contains("Slack inbound is off (no signing secret)")
    );

    // An empty secret is off too, even on a public address's rules.
    let app = App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            ..Options::default()
        },
        vec![("SLACK_SIGNING_SECRET".into(), String::new())],
    )
    .await;
    let response = post(&app, &body, &signed_with("", now(), &body)).await;
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn a_click_is_answered_at_once_and_the_person_hears_back_ephemerally() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;

    let body = click(
        TAKE,
        &format!("{}/_emulator/response/take", slack.url),
        "4.1",
    );
    let started = Instant::now();
    let response = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(3), "Slack's 3 s");
    let answers = wait_for_answers(&slack, "take", 1).await;
    assert_eq!(answers[0]["response_type"], "ephemeral");
    assert_eq!(answers[0]["replace_original"], false);
    let text = answers[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("\"take\"") && text.contains("not available"),
        "{text}"
    );

    // A button whose value sfrelay did not write: the person is told it is not valid. Signed
    // by the org's own Slack app.
    let body = click(
        "approve-everything",
        &format!("{}/_emulator/response/bad", slack.url),
        "4.2",
    );
    let response = post(&app, &body, &signed_with(ORG_APP_SECRET, now(), &body)).await;
    assert_eq!(response.status().as_u16(), 200);
    let answers = wait_for_answers(&slack, "bad", 1).await;
    let text = answers[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("not valid"), "{text}");

    // An org that is not configured is not valid either.
    let other = TAKE.replace(ORG, "00D5g000007ZZZzEAO");
    let body = click(
        &other,
        &format!("{}/_emulator/response/org", slack.url),
        "4.3",
    );
    post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    let answers = wait_for_answers(&slack, "org", 1).await;
    let text = answers[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("not one sfrelay serves"), "{text}");
}

#[tokio::test]
async fn a_retried_delivery_is_one_job() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;

    let body = click(
        TAKE,
        &format!("{}/_emulator/response/once", slack.url),
        "5.1",
    );
    let first = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    assert_eq!(first.status().as_u16(), 200);
    let mut retry = signed_with(SECRET, now(), &body);
    retry.push(("X-Slack-Retry-Num", "1".into()));
    retry.push(("X-Slack-Retry-Reason", "http_timeout".into()));
    let again = post(&app, &body, &retry).await;
    assert_eq!(again.status().as_u16(), 200);

    // One worker takes jobs in order: once a later click is answered, both are done.
    let later = click(
        TAKE,
        &format!("{}/_emulator/response/later", slack.url),
        "5.2",
    );
    post(&app, &later, &signed_with(SECRET, now(), &later)).await;
    wait_for_answers(&slack, "later", 1).await;
    assert_eq!(sink(&slack, "once").await.len(), 1, "one job, one answer");
}

#[tokio::test]
async fn a_response_url_on_a_foreign_host_is_not_called() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let foreign = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;

    let body = click(
        TAKE,
        &format!("{}/_emulator/response/ssrf", foreign.url),
        "6.1",
    );
    let response = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
    assert_eq!(response.status().as_u16(), 200);
    eventually(
        "the foreign response_url refused",
        Duration::from_secs(20),
        || async { app.logs().contains("response_url refused").then_some(()) },
    )
    .await;
    assert!(sink(&foreign, "ssrf").await.is_empty());
}

#[tokio::test]
async fn a_signed_but_bad_payload_is_400_naming_it_and_modal_payloads_are_taken() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, Some(&slack), secrets()).await;

    let before = keys(&redis);
    for (body, says) in [
        ("payload=%7Bnot-json", "payload is not JSON"),
        ("text=hello", "no payload"),
        (
            "payload=%7B%22type%22%3A%22shortcut%22%2C%22user%22%3A%7B%22id%22%3A%22U1%22%7D%7D",
            "shortcut",
        ),
    ] {
        let response = post(&app, body, &signed_with(SECRET, now(), body)).await;
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let problem: Value = response.json().await.expect("problem JSON");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    assert_eq!(keys(&redis), before, "nothing is queued");

    for kind in ["view_submission", "view_closed"] {
        let payload = json!({"type": kind, "user": {"id": "U0CLICKER", "team_id": "T0TEST"},
                             "view": {"id": "V1", "callback_id": "sfrelay-take"}});
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
        let response = post(&app, &body, &signed_with(SECRET, now(), &body)).await;
        assert_eq!(response.status().as_u16(), 200, "{kind}");
    }
    // Forms sfrelay did not open: both are taken off the queue with nothing to say.
    eventually("both modal jobs done", Duration::from_secs(20), || async {
        (app.logs()
            .matches("Slack interaction needs no answer")
            .count()
            == 2)
            .then_some(())
    })
    .await;
}
