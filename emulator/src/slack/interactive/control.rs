//! The interactive control routes: the signed interactions the emulator sends
//! (`/_emulator/interact`), what it holds (`/_emulator/views`, `/_emulator/ephemerals`),
//! triggers on demand (`/_emulator/triggers`) and the `response_url` sink
//! (`/_emulator/response/{id}`); with them, the surfaces' routes ([`super::surfaces`]).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::emulator::{Clock, Shared, lock};
use super::interact::interact;
use super::payload::Refusal;
use super::responses::refusal_json;

/// How long the emulator waits for the app it posts an interaction to.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the interactive routes share: the emulator, and the client that posts interactions.
#[derive(Clone)]
pub struct Control {
    pub shared: Shared,
    pub http: reqwest::Client,
}

/// The interactive control routes over the emulator's state.
pub fn router(shared: Shared) -> Router {
    let http = reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    Router::new()
        .route("/_emulator/interact", post(interact))
        .route("/_emulator/views", get(views))
        .route("/_emulator/ephemerals", get(ephemerals))
        .route("/_emulator/triggers", post(issue_trigger))
        .route("/_emulator/response/{id}", get(responses).post(respond))
        .merge(super::surfaces::routes())
        .with_state(Control { shared, http })
}

pub fn bad_request(error: &str, detail: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"ok": false, "error": error, "detail": detail})),
    )
        .into_response()
}

pub fn refusal_response(refusal: &Refusal) -> Response {
    (
        refusal.status,
        Json(json!({"ok": false, "error": refusal.error, "detail": refusal.detail})),
    )
        .into_response()
}

/// `GET /_emulator/views`: every modal opened, in order, closed ones too.
async fn views(State(control): State<Control>) -> Response {
    let emu = lock(&control.shared);
    let list: Vec<Value> = emu
        .interactive
        .views()
        .iter()
        .map(super::OpenView::control_json)
        .collect();
    Json(json!(list)).into_response()
}

#[derive(Debug, Deserialize)]
struct EphemeralFilter {
    user: Option<String>,
    channel: Option<String>,
}

/// `GET /_emulator/ephemerals[?user=U…][&channel=C…]`: ephemeral messages in the order sent.
async fn ephemerals(
    State(control): State<Control>,
    Query(filter): Query<EphemeralFilter>,
) -> Response {
    let emu = lock(&control.shared);
    let list: Vec<_> = emu
        .interactive
        .ephemerals()
        .iter()
        .filter(|e| filter.user.as_ref().is_none_or(|u| *u == e.user))
        .filter(|e| filter.channel.as_ref().is_none_or(|c| *c == e.channel))
        .collect();
    Json(json!(list)).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    user: String,
}

/// `POST /_emulator/triggers {"user": "U…"}`: a fresh `trigger_id` for that person, as if
/// they had just interacted (it opens one modal within 3 s).
async fn issue_trigger(State(control): State<Control>, body: Bytes) -> Response {
    let req: TriggerRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let mut guard = lock(&control.shared);
    let emu = &mut *guard;
    if emu.workspace.user(&req.user).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "error": "user_not_found"})),
        )
            .into_response();
    }
    let trigger_id = emu
        .interactive
        .issue_trigger(&req.user, Clock::now().micros);
    Json(json!({"ok": true, "trigger_id": trigger_id})).into_response()
}

/// `POST /_emulator/response/{id}`: an answer posted to a `response_url`.
async fn respond(State(control): State<Control>, Path(id): Path<String>, body: Bytes) -> Response {
    let mut guard = lock(&control.shared);
    let emu = &mut *guard;
    match emu
        .interactive
        .respond(&mut emu.workspace, &id, &body, Clock::now().micros)
    {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(refused) => (refused.status, Json(refusal_json(refused))).into_response(),
    }
}

/// `GET /_emulator/response/{id}`: what that id received, in order.
async fn responses(State(control): State<Control>, Path(id): Path<String>) -> Response {
    Json(json!(lock(&control.shared).interactive.responses_to(&id))).into_response()
}
