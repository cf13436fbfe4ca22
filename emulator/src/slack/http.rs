//! HTTP routes: the Slack Web API under `/api/<method>` and the test control API under
//! `/_emulator/`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::emulator::{ApiRequest, Clock, Outcome, Shared, lock};
use super::faults::FaultsPatch;
use super::workspace::{Channel, User, looks_like_id, validate_channel_name};

/// All routes of the Slack emulator.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/{method}", get(api).post(api))
        .route("/_emulator/messages", get(messages))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/faults", get(faults).post(set_faults))
        .route("/_emulator/channels", get(channels).post(add_channel))
        .route("/_emulator/users", get(users).post(add_user))
        .route("/_emulator/dms", get(dms))
        .route("/_emulator/tokens", post(set_token))
        .route("/_emulator/reset", post(reset))
        .fallback(not_found)
        .with_state(shared.clone())
        .merge(super::interactive::router(shared))
}

/// One Slack Web API call.
async fn api(
    State(shared): State<Shared>,
    Path(method): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let request = ApiRequest {
        method: &method,
        is_get: http_method == Method::GET || http_method == Method::HEAD,
        authorization: authorization.as_deref(),
        content_type,
        query: query.as_deref(),
        body: &body,
    };
    let (outcome, latency) = lock(&shared).call(&request, Clock::now());
    tracing::debug!(method, status = outcome.status().as_u16(), "api call");
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    respond(outcome)
}

/// Turns an outcome into the HTTP answer real Slack would give.
fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Ok(body) => Json(body).into_response(),
        Outcome::Failed { status, error } => {
            let mut body = json!({"ok": false, "error": error.code});
            if !error.messages.is_empty() {
                body["response_metadata"] = json!({"messages": error.messages});
            }
            (status, Json(body)).into_response()
        }
        Outcome::RateLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, retry_after.to_string())],
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        // Deliberately the same answer whether or not the call took effect first.
        Outcome::Injected | Outcome::DroppedAfterEffect(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "emulated internal server error\n",
        )
            .into_response(),
    }
}

/// Unknown paths: Slack-shaped under `/api/`, plain JSON elsewhere.
async fn not_found(uri: Uri) -> Response {
    let error = if uri.path().starts_with("/api/") {
        "unknown_method"
    } else {
        "not_found"
    };
    (
        StatusCode::NOT_FOUND,
        Json(json!({"ok": false, "error": error})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct MessagesFilter {
    channel: Option<String>,
}

/// `GET /_emulator/messages[?channel=C…]`: stored messages in post order, each with its
/// `metadata` (null when none).
async fn messages(State(shared): State<Shared>, Query(filter): Query<MessagesFilter>) -> Response {
    let emu = lock(&shared);
    let list: Vec<_> = emu.workspace.messages(filter.channel.as_deref()).collect();
    Json(json!(list)).into_response()
}

/// `GET /_emulator/requests`: every API call in arrival order.
async fn requests(State(shared): State<Shared>) -> Response {
    Json(json!(lock(&shared).journal.requests())).into_response()
}

/// `GET /_emulator/stats`: counters since start or the last reset.
async fn stats(State(shared): State<Shared>) -> Response {
    Json(json!(lock(&shared).journal.stats())).into_response()
}

/// `GET /_emulator/faults`: the faults and limits in force.
async fn faults(State(shared): State<Shared>) -> Response {
    let emu = lock(&shared);
    Json(emu.faults.to_json(&emu.limits)).into_response()
}

/// `POST /_emulator/faults`: changes some faults or limits; answers the new settings.
async fn set_faults(State(shared): State<Shared>, body: Bytes) -> Response {
    let patch: FaultsPatch = match parse_json(&body) {
        Ok(patch) => patch,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let mut guard = lock(&shared);
    let emu = &mut *guard;
    match emu.faults.apply(&patch, &mut emu.limits) {
        Ok(()) => Json(emu.faults.to_json(&emu.limits)).into_response(),
        Err(detail) => bad_request("invalid_arguments", &detail),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenChange {
    token: String,
    /// A credential error to answer from now on; null accepts the token (again).
    refuse: Option<String>,
}

/// `POST /_emulator/tokens`: accepts another bot token, or makes one answer a credential
/// error (`{"token": "xoxb-…", "refuse": "token_revoked"}`), or restores it (`"refuse": null`).
async fn set_token(State(shared): State<Shared>, body: Bytes) -> Response {
    let change: TokenChange = match parse_json(&body) {
        Ok(change) => change,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    match lock(&shared)
        .token_states
        .set(&change.token, change.refuse.as_deref())
    {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(detail) => bad_request("invalid_arguments", &detail),
    }
}

/// `GET /_emulator/channels`: all channels with their members.
async fn channels(State(shared): State<Shared>) -> Response {
    let emu = lock(&shared);
    let list: Vec<Value> = emu
        .workspace
        .channels()
        .iter()
        .map(|c| {
            let mut out = c.to_json();
            out["members"] = json!(c.members);
            out
        })
        .collect();
    Json(json!(list)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelSeed {
    id: String,
    name: String,
    #[serde(default)]
    is_private: bool,
    #[serde(default)]
    is_archived: bool,
    #[serde(default = "yes")]
    is_member: bool,
}

fn yes() -> bool {
    true
}

/// `POST /_emulator/channels`: adds a channel, or replaces the one with the same id.
async fn add_channel(State(shared): State<Shared>, body: Bytes) -> Response {
    let seed: ChannelSeed = match parse_json(&body) {
        Ok(seed) => seed,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    if !looks_like_id(&seed.id) {
        return bad_request(
            "invalid_arguments",
            "id must be uppercase letters and digits",
        );
    }
    if let Err(code) = validate_channel_name(&seed.name) {
        return bad_request(code, "name breaks Slack's channel name rules");
    }
    let mut emu = lock(&shared);
    let clash = emu
        .workspace
        .channels()
        .iter()
        .any(|c| c.name == seed.name && c.id != seed.id);
    if clash {
        return conflict("name_taken");
    }
    if emu.workspace.dm(&seed.id).is_some() {
        return conflict("id_taken");
    }
    let mut channel = Channel::new(&seed.id, &seed.name, seed.is_private);
    channel.is_archived = seed.is_archived;
    if !seed.is_member {
        channel.members.clear();
    }
    emu.workspace.upsert_channel(channel);
    let shown = emu.workspace.channel(&seed.id).map(Channel::to_json);
    Json(json!({"ok": true, "channel": shown})).into_response()
}

/// `GET /_emulator/users`: all users.
async fn users(State(shared): State<Shared>) -> Response {
    let emu = lock(&shared);
    let list: Vec<Value> = emu
        .workspace
        .users()
        .iter()
        .map(|u| json!({"id": u.id, "name": u.name, "email": u.email}))
        .collect();
    Json(json!(list)).into_response()
}

/// `GET /_emulator/dms`: the bot's open DMs in the order they were opened, each with the user
/// at the other end and their e-mail, so tests can tell who a `D…` channel reaches.
async fn dms(State(shared): State<Shared>) -> Response {
    let emu = lock(&shared);
    let list: Vec<Value> = emu
        .workspace
        .dms()
        .iter()
        .map(|d| {
            let email = emu.workspace.user(&d.user).map(|u| u.email.as_str());
            json!({"user": d.user, "channel": d.id, "email": email})
        })
        .collect();
    Json(json!(list)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSeed {
    id: String,
    /// Absent for a user without an address (`users.info` then shows none).
    #[serde(default)]
    email: String,
    name: Option<String>,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    is_bot: bool,
}

/// `POST /_emulator/users`: adds a user, or replaces the one with the same id
/// (`{"id", "email"?, "name"?, "deleted"?, "is_bot"?}`).
async fn add_user(State(shared): State<Shared>, body: Bytes) -> Response {
    let seed: UserSeed = match parse_json(&body) {
        Ok(seed) => seed,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    if !looks_like_id(&seed.id) {
        return bad_request(
            "invalid_arguments",
            "id must be uppercase letters and digits",
        );
    }
    if !seed.email.is_empty() && !seed.email.contains('@') {
        return bad_request("invalid_arguments", "email must contain @");
    }
    let mut emu = lock(&shared);
    if !seed.email.is_empty()
        && emu
            .workspace
            .user_by_email(&seed.email)
            .is_some_and(|u| u.id != seed.id)
    {
        return conflict("email_taken");
    }
    let mut user = User::new(&seed.id, &seed.email);
    if let Some(name) = seed.name {
        user.name = name;
    }
    user.deleted = seed.deleted;
    user.is_bot = seed.is_bot;
    let shown = json!({"id": user.id, "name": user.name, "email": user.email,
                       "deleted": user.deleted, "is_bot": user.is_bot});
    emu.workspace.upsert_user(user);
    Json(json!({"ok": true, "user": shown})).into_response()
}

/// `POST /_emulator/reset`: clears messages, requests, counters and rate-limit history.
async fn reset(State(shared): State<Shared>) -> Response {
    lock(&shared).reset();
    Json(json!({"ok": true})).into_response()
}

/// Parses a control API body; an empty body counts as `{}`.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice(b"{}")
    } else {
        serde_json::from_slice(body)
    }
}

fn bad_request(error: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"ok": false, "error": error, "detail": detail})),
    )
        .into_response()
}

fn conflict(error: &str) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"ok": false, "error": error})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::gcra::Rate;
    use crate::slack::emulator::Emulator;
    use crate::slack::faults::Faults;
    use crate::slack::journal::Journal;
    use crate::slack::limits::Limits;
    use crate::slack::workspace::Workspace;

    /// Serves a small emulator on a free loopback port and returns its address.
    async fn start() -> std::net::SocketAddr {
        let emu = Emulator {
            token: "xoxb-t".into(),
            token_states: Default::default(),
            page_size: 100,
            workspace: Workspace::new(
                vec![Channel::new("C0DEALDESK", "deal-desk", false)],
                vec![User::new("U0DANA0001", "Dana.Seller@example.com")],
            ),
            journal: Journal::default(),
            faults: Faults::new(0.0, 0.0, Duration::ZERO, 1),
            limits: Limits::new(Rate::new(1.0, 1).unwrap(), Rate::new(1.0, 5).unwrap()),
            interactive: Default::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(Arc::new(Mutex::new(emu)));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Sends one raw HTTP/1.1 request and returns the whole answer.
    async fn send(addr: std::net::SocketAddr, head: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{head}\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn serves_slack_and_control_routes() {
        let addr = start().await;
        let post = "POST /api/chat.postMessage HTTP/1.1\r\nAuthorization: Bearer xoxb-t\r\n\
                    Content-Type: application/x-www-form-urlencoded";
        let ok = send(addr, post, "channel=C0DEALDESK&text=hi").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(r#""ok":true"#), "{ok}");

        let limited = send(addr, post, "channel=C0DEALDESK&text=again").await;
        assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");
        assert!(
            limited.to_ascii_lowercase().contains("retry-after: 1\r\n"),
            "{limited}"
        );
        assert!(limited.contains(r#""error":"ratelimited""#), "{limited}");

        let unknown = send(addr, "POST /api/chat.delete HTTP/1.1", "").await;
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
        assert!(unknown.contains("unknown_method"), "{unknown}");

        let messages = send(
            addr,
            "GET /_emulator/messages?channel=C0DEALDESK HTTP/1.1",
            "",
        )
        .await;
        assert!(
            messages.contains(r#""text":"hi""#) && !messages.contains("again"),
            "{messages}"
        );
        let stats = send(addr, "GET /_emulator/stats HTTP/1.1", "").await;
        assert!(
            stats.contains(r#""calls":3"#) && stats.contains(r#""rate_limited":1"#),
            "{stats}"
        );

        let faults = send(addr, "POST /_emulator/faults HTTP/1.1", r#"{"burst":0}"#).await;
        assert!(faults.starts_with("HTTP/1.1 400"), "{faults}");
        let reset = send(addr, "POST /_emulator/reset HTTP/1.1", "").await;
        assert!(reset.starts_with("HTTP/1.1 200"), "{reset}");
        let requests = send(addr, "GET /_emulator/requests HTTP/1.1", "").await;
        assert!(requests.ends_with("[]"), "{requests}");
    }

    /// The JSON body of a whole HTTP answer.
    fn json_body(answer: &str) -> Value {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {answer}"))
    }

    #[tokio::test]
    async fn serves_metadata_history_and_dropped_answers() {
        let addr = start().await;
        let post = "POST /api/chat.postMessage HTTP/1.1\r\nAuthorization: Bearer xoxb-t\r\n\
                    Content-Type: application/x-www-form-urlencoded";
        let faults = send(addr, "POST /_emulator/faults HTTP/1.1", r#"{"burst":10}"#).await;
        assert_eq!(json_body(&faults)["drop_response_after_effect_rate"], 0.0);

        let meta =
            "%7B%22event_type%22%3A%22deal_won%22%2C%22event_payload%22%3A%7B%22id%22%3A1%7D%7D";
        let first = send(
            addr,
            post,
            &format!("channel=C0DEALDESK&text=one&metadata={meta}"),
        )
        .await;
        assert_eq!(
            json_body(&first)["message"]["metadata"]["event_type"],
            "deal_won"
        );
        let bad = send(addr, post, "channel=C0DEALDESK&text=x&metadata=%7B%7D").await;
        assert_eq!(json_body(&bad)["error"], "invalid_metadata_schema");
        let bad = send(addr, post, "channel=C0DEALDESK&text=x&metadata=nope").await;
        assert_eq!(json_body(&bad)["error"], "invalid_metadata_format");
        send(addr, post, "channel=C0DEALDESK&text=two").await;

        let messages = send(addr, "GET /_emulator/messages HTTP/1.1", "").await;
        let messages = json_body(&messages);
        assert_eq!(
            messages[0]["metadata"],
            json!({"event_type": "deal_won", "event_payload": {"id": 1}})
        );
        assert_eq!(messages[1]["metadata"], Value::Null);

        let history = send(
            addr,
            "GET /api/conversations.history?channel=C0DEALDESK&limit=1&include_all_metadata=1 \
             HTTP/1.1\r\nAuthorization: Bearer xoxb-t",
            "",
        )
        .await;
        let history = json_body(&history);
        assert_eq!(history["messages"][0]["text"], "two");
        assert_eq!(history["has_more"], true);
        let cursor = history["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap();
        let older = send(
            addr,
            "POST /api/conversations.history HTTP/1.1\r\nAuthorization: Bearer xoxb-t\r\n\
             Content-Type: application/json",
            &json!({"channel": "C0DEALDESK", "cursor": cursor, "include_all_metadata": true})
                .to_string(),
        )
        .await;
        let older = json_body(&older);
        assert_eq!(older["messages"][0]["text"], "one");
        assert_eq!(older["messages"][0]["metadata"]["event_payload"]["id"], 1);
        assert_eq!(older["has_more"], false);

        let faults = send(
            addr,
            "POST /_emulator/faults HTTP/1.1",
            r#"{"drop_response_after_effect_rate":1.0}"#,
        )
        .await;
        assert_eq!(json_body(&faults)["drop_response_after_effect_rate"], 1.0);
        let dropped = send(addr, post, "channel=C0DEALDESK&text=three").await;
        assert!(dropped.starts_with("HTTP/1.1 500"), "{dropped}");
        assert!(
            dropped.ends_with("emulated internal server error\n"),
            "{dropped}"
        );
        let messages = send(addr, "GET /_emulator/messages HTTP/1.1", "").await;
        let messages = json_body(&messages);
        assert_eq!(messages[2]["text"], "three", "stored all the same");
        let stats = json_body(&send(addr, "GET /_emulator/stats HTTP/1.1", "").await);
        assert_eq!(
            (
                &stats["posts"],
                &stats["dropped_after_effect"],
                &stats["failed_injected"]
            ),
            (&json!(3), &json!(1), &json!(0))
        );
        let requests = json_body(&send(addr, "GET /_emulator/requests HTTP/1.1", "").await);
        let last = &requests[requests.as_array().unwrap().len() - 1];
        assert_eq!(
            last["dropped_after_effect"],
            json!({"channel": "C0DEALDESK", "ts": messages[2]["ts"]})
        );
        assert!(requests[0].get("dropped_after_effect").is_none());
        let bad = send(
            addr,
            "POST /_emulator/faults HTTP/1.1",
            r#"{"drop_response_after_effect_rate":2}"#,
        )
        .await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    }

    #[tokio::test]
    async fn serves_dms_and_maps_them_to_people() {
        let addr = start().await;
        let api = |method: &str| {
            format!(
                "POST /api/{method} HTTP/1.1\r\nAuthorization: Bearer xoxb-t\r\n\
                 Content-Type: application/x-www-form-urlencoded"
            )
        };
        let empty = send(addr, "GET /_emulator/dms HTTP/1.1", "").await;
        assert!(empty.ends_with("[]"), "{empty}");

        let lookup = send(
            addr,
            "GET /api/users.lookupByEmail?email=DANA.SELLER%40EXAMPLE.COM HTTP/1.1\r\n\
             Authorization: Bearer xoxb-t",
            "",
        )
        .await;
        assert!(lookup.contains(r#""id":"U0DANA0001""#), "{lookup}");

        let ghost = send(addr, &api("conversations.open"), "users=U0GHOST001").await;
        assert!(ghost.contains(r#""error":"user_not_found""#), "{ghost}");
        let opened = send(addr, &api("conversations.open"), "users=U0DANA0001").await;
        assert!(opened.starts_with("HTTP/1.1 200"), "{opened}");
        for part in [
            r#""id":"D0DANA0001""#,
            r#""is_im":true"#,
            r#""user":"U0DANA0001""#,
        ] {
            assert!(opened.contains(part), "{opened}");
        }
        let posted = send(addr, &api("chat.postMessage"), "channel=U0DANA0001&text=hi").await;
        assert!(posted.contains(r#""channel":"D0DANA0001""#), "{posted}");
        let limited = send(addr, &api("chat.postMessage"), "channel=D0DANA0001&text=2").await;
        assert!(limited.starts_with("HTTP/1.1 429"), "{limited}");

        let dms = send(addr, "GET /_emulator/dms HTTP/1.1", "").await;
        let body = dms.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert_eq!(
            serde_json::from_str::<Value>(body).ok(),
            Some(json!([{
                "user": "U0DANA0001",
                "channel": "D0DANA0001",
                "email": "Dana.Seller@example.com",
            }])),
            "{dms}"
        );
        let messages = send(
            addr,
            "GET /_emulator/messages?channel=D0DANA0001 HTTP/1.1",
            "",
        )
        .await;
        assert!(
            messages.contains(r#""channel":"D0DANA0001""#) && messages.contains(r#""text":"hi""#),
            "{messages}"
        );
        let clash = send(
            addr,
            "POST /_emulator/channels HTTP/1.1",
            r#"{"id":"D0DANA0001","name":"dana"}"#,
        )
        .await;
        assert!(clash.starts_with("HTTP/1.1 409"), "{clash}");
    }
}
