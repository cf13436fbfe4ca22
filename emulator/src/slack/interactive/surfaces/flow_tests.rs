//! The emulator sending slash commands and events to a small loopback app, and the app
//! answering through `response_url`, `chat.unfurl` and `views.publish`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::super::signing::signature;
use crate::gcra::Rate;
use crate::slack::emulator::Emulator;
use crate::slack::faults::Faults;
use crate::slack::journal::Journal;
use crate::slack::limits::Limits;
use crate::slack::workspace::{Channel, User, Workspace};

const SECRET: &str = "app-signing-secret";
const TOKEN: &str = "xoxb-t";
const LINK: &str = "https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view";

/// One request as the app saw it.
#[derive(Debug, Clone)]
struct Seen {
    content_type: String,
    signature_ok: bool,
    retry_num: Option<String>,
    retry_reason: Option<String>,
    body: String,
}

#[derive(Default)]
struct App {
    seen: Vec<Seen>,
    /// Answers to give, in order (with a delay); an empty 200 once they run out.
    answers: VecDeque<(StatusCode, String, Duration)>,
}

type AppState = Arc<Mutex<App>>;

async fn app_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body = String::from_utf8_lossy(&body).into_owned();
    let timestamp = header("x-slack-request-timestamp").unwrap_or_default();
    let expected = signature(SECRET, timestamp.parse().unwrap_or_default(), &body);
    let signature_ok = header("x-slack-signature").as_deref() == Some(expected.as_str());
    let answer = {
        let mut app = app.lock().unwrap();
        app.seen.push(Seen {
            content_type: header("content-type").unwrap_or_default(),
            signature_ok,
            retry_num: header("x-slack-retry-num"),
            retry_reason: header("x-slack-retry-reason"),
            body,
        });
        if !signature_ok {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        app.answers
            .pop_front()
            .unwrap_or((StatusCode::OK, String::new(), Duration::ZERO))
    };
    if !answer.2.is_zero() {
        tokio::time::sleep(answer.2).await;
    }
    (answer.0, answer.1)
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

struct Setup {
    emulator: String,
    app_base: String,
    app: AppState,
    http: reqwest::Client,
}

impl Setup {
    async fn start() -> Setup {
        let emu = Emulator {
            token: TOKEN.into(),
            token_states: Default::default(),
            page_size: 100,
            workspace: Workspace::new(
                vec![Channel::new("C0DEALDESK", "deal-desk", false)],
                vec![User::new("U0DANA0001", "dana.seller@example.com")],
            ),
            journal: Journal::default(),
            faults: Faults::new(0.0, 0.0, Duration::ZERO, 1),
            limits: Limits::new(Rate::new(10.0, 10).unwrap(), Rate::new(10.0, 20).unwrap()),
            interactive: Default::default(),
        };
        let emulator = serve(crate::slack::http::router(Arc::new(Mutex::new(emu)))).await;
        let app = AppState::default();
        let app_addr = serve(
            Router::new()
                .route("/slack/commands", post(app_endpoint))
                .route("/slack/events", post(app_endpoint))
                .with_state(app.clone()),
        )
        .await;
        Setup {
            emulator: format!("http://{emulator}"),
            app_base: format!("http://{app_addr}"),
            app,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.emulator))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn api(&self, method: &str, args: Value) -> Value {
        self.http
            .post(format!("{}/api/{method}", self.emulator))
            .bearer_auth(TOKEN)
            .json(&args)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn command(&self, mut request: Value) -> (u16, Value) {
        request["url"] = format!("{}/slack/commands", self.app_base).into();
        request["signing_secret"] = SECRET.into();
        self.post("/_emulator/command", request).await
    }

    async fn event(&self, mut request: Value) -> (u16, Value) {
        request["url"] = format!("{}/slack/events", self.app_base).into();
        if request.get("signing_secret").is_none() {
            request["signing_secret"] = SECRET.into();
        }
        self.post("/_emulator/event", request).await
    }

    fn answer_next(&self, status: StatusCode, body: Value, delay: Duration) {
        let body = match body {
            Value::Null => String::new(),
            Value::String(s) => s,
            other => other.to_string(),
        };
        self.app
            .lock()
            .unwrap()
            .answers
            .push_back((status, body, delay));
    }

    fn seen(&self) -> Vec<Seen> {
        self.app.lock().unwrap().seen.clone()
    }
}

#[tokio::test]
async fn a_slash_command_is_signed_answered_and_followed_up() {
    let s = Setup::start().await;
    s.answer_next(StatusCode::OK, json!({"text": "Looking…"}), Duration::ZERO);
    let (status, sent) = s
        .command(json!({"user": "U0DANA0001", "channel": "C0DEALDESK", "text": "find Acme"}))
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        (sent["status"].clone(), sent["within_3s"].clone()),
        (json!(200), json!(true))
    );
    assert_eq!(sent["body"], json!({"text": "Looking…"}));
    assert_eq!(sent["applied"]["outcome"], "ephemeral");
    let seen = s.seen().pop().unwrap();
    assert!(seen.signature_ok);
    assert_eq!(seen.content_type, "application/x-www-form-urlencoded");
    assert!(
        seen.body.contains("command=%2Fsf&text=find+Acme"),
        "{}",
        seen.body
    );

    // The follow-up through the response_url, then it replaces what it posted in channel.
    let url = sent["response_url"].as_str().unwrap();
    let http = reqwest::Client::new();
    for body in [
        json!({"response_type": "in_channel", "text": "Acme: 3 deals"}),
        json!({"replace_original": true, "text": "Acme: 4 deals"}),
    ] {
        let answer = http.post(url).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    let id = sent["response_id"].as_str().unwrap();
    let (_, bodies) = s.get(&format!("/_emulator/response/{id}")).await;
    assert_eq!(bodies[0]["response_type"], "in_channel");
    assert_eq!(bodies[1]["replace_original"], true);
    let (_, messages) = s.get("/_emulator/messages?channel=C0DEALDESK").await;
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");
    assert_eq!(messages[0]["text"], "Acme: 4 deals");
    assert_eq!(messages[0]["updated"], true);
    let (_, ephemerals) = s.get("/_emulator/ephemerals?user=U0DANA0001").await;
    assert_eq!(ephemerals[0]["text"], "Looking…");
    assert_eq!(ephemerals[0]["via"], "command");

    // A slow answer is late for Slack; a forged signature is refused by the app.
    s.answer_next(
        StatusCode::OK,
        json!({"text": "slow"}),
        Duration::from_millis(3100),
    );
    let (_, late) = s
        .command(json!({"user": "U0DANA0001", "channel": "C0DEALDESK"}))
        .await;
    assert_eq!(late["within_3s"], false);
    assert!(late["elapsed_ms"].as_u64().unwrap() >= 3100);
    assert_eq!(late["applied"]["outcome"], "late");
    let (_, forged) = s
        .command(json!({"user": "U0DANA0001", "channel": "C0DEALDESK", "tamper": true}))
        .await;
    assert_eq!(forged["status"], 401);
    assert!(!s.seen().last().unwrap().signature_ok);

    let (_, listed) = s.get("/_emulator/commands").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert_eq!(listed[0]["text"], "find Acme");
    assert_eq!(listed[0]["answer"]["status"], 200);
    let (status, refused) = s
        .command(json!({"user": "U0DANA0001", "channel": "C0NOPE"}))
        .await;
    assert_eq!(
        (status, refused["error"].clone()),
        (404, json!("channel_not_found"))
    );
}

#[tokio::test]
async fn events_verify_unfurl_and_retry_like_slack() {
    let s = Setup::start().await;
    s.answer_next(StatusCode::OK, json!({"challenge": "c-1"}), Duration::ZERO);
    let (_, verified) = s
        .event(json!({"type": "url_verification", "challenge": "c-1"}))
        .await;
    assert_eq!(verified["verified"], true, "{verified}");
    let seen = s.seen().pop().unwrap();
    assert_eq!(seen.content_type, "application/json");
    assert!(seen.signature_ok);

    let (_, shared) = s
        .event(
            json!({"type": "link_shared", "user": "U0DANA0001", "channel": "C0DEALDESK",
                      "links": [LINK]}),
        )
        .await;
    assert_eq!(shared["status"], 200);
    let event = &shared["payload"]["event"];
    let first_body = s.seen().pop().unwrap().body;

    // The app unfurls through the API; only the shared link can be unfurled.
    let preview = json!({LINK: {"blocks": [{"type": "section",
                         "text": {"type": "mrkdwn", "text": "*Acme* — Negotiation"}}]}});
    let unfurled = s
        .api(
            "chat.unfurl",
            json!({"channel": event["channel"], "ts": event["message_ts"],
                                   "unfurls": preview.to_string()}),
        )
        .await;
    assert_eq!(unfurled, json!({"ok": true}));
    let other = json!({"https://other.example/": {"text": "x"}});
    let refused = s
        .api(
            "chat.unfurl",
            json!({"unfurl_id": event["unfurl_id"],
                                   "source": "conversations_history", "unfurls": other}),
        )
        .await;
    assert_eq!(refused["error"], "cannot_unfurl_url");
    let (_, unfurls) = s.get("/_emulator/unfurls").await;
    assert_eq!(unfurls[0]["unfurls"][LINK]["blocks"][0]["type"], "section");
    assert_eq!(unfurls[0]["user"], "U0DANA0001");
    let (_, links) = s.get("/_emulator/links").await;
    assert_eq!(links[0]["links"], json!([LINK]));

    // Slack sends it again: the same body, with the retry headers.
    let event_id = shared["event_id"].as_str().unwrap();
    let (_, retried) = s.event(json!({"retry_of": event_id})).await;
    assert_eq!(retried["retry_num"], 1);
    let seen = s.seen().pop().unwrap();
    assert_eq!(seen.body, first_body);
    assert_eq!(seen.retry_num.as_deref(), Some("1"));
    assert_eq!(seen.retry_reason.as_deref(), Some("http_timeout"));
    let (_, again) = s
        .event(json!({"retry_of": event_id, "retry_num": 3, "retry_reason": "http_error"}))
        .await;
    assert_eq!(again["retry_num"], 3);
    let (status, _) = s.event(json!({"retry_of": event_id, "retry_num": 4})).await;
    assert_eq!(status, 409);
    let (status, _) = s.event(json!({"retry_of": "Ev0NOPE"})).await;
    assert_eq!(status, 404);
    let (_, events) = s.get("/_emulator/events").await;
    assert_eq!(events[1]["deliveries"].as_array().map(Vec::len), Some(3));
    assert_eq!(events[1]["deliveries"][2]["retry_reason"], "http_error");
}

#[tokio::test]
async fn the_home_tab_is_published_and_shown_when_opened() {
    let s = Setup::start().await;
    let (status, _) = s.get("/_emulator/home/U0DANA0001").await;
    assert_eq!(status, 404);
    let view = json!({"type": "home", "blocks": [{"type": "section",
                      "text": {"type": "mrkdwn", "text": "Your open deals"}}]});
    let published = s
        .api(
            "views.publish",
            json!({"user_id": "U0DANA0001", "view": view}),
        )
        .await;
    assert_eq!(published["ok"], true, "{published}");
    let (_, current) = s.get("/_emulator/home/U0DANA0001").await;
    assert_eq!(current["view"]["id"], published["view"]["id"]);
    assert_eq!(current["publishes"], 1);

    let (_, opened) = s
        .event(json!({"type": "app_home_opened", "user": "U0DANA0001"}))
        .await;
    let event = &opened["payload"]["event"];
    assert_eq!(event["tab"], "home");
    assert_eq!(event["view"]["hash"], published["view"]["hash"]);

    s.post("/_emulator/home", json!({"enabled": false})).await;
    let off = s
        .api(
            "views.publish",
            json!({"user_id": "U0DANA0001", "view": view}),
        )
        .await;
    assert_eq!(off["error"], "not_enabled");
    s.post("/_emulator/reset", json!({})).await;
    let (_, home) = s.get("/_emulator/home").await;
    assert_eq!(
        (home["enabled"].clone(), home["views"].clone()),
        (json!(false), json!([])),
        "a reset forgets views, keeps the setting"
    );
}
