//! The surfaces' control routes (the module docs list them).

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::super::super::emulator::lock;
use super::super::control::{Control, bad_request};
use super::commands::command;
use super::events::event;

/// The routes, for the interactive router to serve with its state.
pub fn routes() -> Router<Control> {
    Router::new()
        .route("/_emulator/command", post(command))
        .route("/_emulator/commands", get(commands))
        .route("/_emulator/event", post(event))
        .route("/_emulator/events", get(events))
        .route("/_emulator/links", get(links))
        .route("/_emulator/unfurls", get(unfurls))
        .route("/_emulator/home", get(home).post(set_home))
        .route("/_emulator/home/{user}", get(home_of))
}

/// `GET /_emulator/commands`: every command sent, in order.
async fn commands(State(control): State<Control>) -> Response {
    Json(json!(lock(&control.shared).interactive.surfaces.commands)).into_response()
}

/// `GET /_emulator/events`: every event sent, in order, each with its deliveries.
async fn events(State(control): State<Control>) -> Response {
    Json(json!(lock(&control.shared).interactive.surfaces.events)).into_response()
}

/// `GET /_emulator/links`: the links `link_shared` events shared, in order.
async fn links(State(control): State<Control>) -> Response {
    Json(json!(lock(&control.shared).interactive.surfaces.shares)).into_response()
}

/// `GET /_emulator/unfurls`: every `chat.unfurl` that succeeded, in order.
async fn unfurls(State(control): State<Control>) -> Response {
    Json(json!(lock(&control.shared).interactive.surfaces.unfurls)).into_response()
}

/// `GET /_emulator/home`.
async fn home(State(control): State<Control>) -> Response {
    Json(lock(&control.shared).interactive.surfaces.home.to_json()).into_response()
}

/// `GET /_emulator/home/{user}`: the person's current Home view, as the API shows it.
async fn home_of(State(control): State<Control>, Path(user): Path<String>) -> Response {
    let emu = lock(&control.shared);
    match emu.interactive.surfaces.home.view_of(&user) {
        Some(view) => Json(
            json!({"user": user, "published_at_ms": view.published_at_ms,
                                  "publishes": view.publishes, "view": view.api_json()}),
        )
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "error": "not_published"})),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HomeSetting {
    enabled: bool,
}

/// `POST /_emulator/home {"enabled": bool}`: turns the app's Home tab on or off.
async fn set_home(State(control): State<Control>, body: Bytes) -> Response {
    let setting: HomeSetting = match serde_json::from_slice(&body) {
        Ok(setting) => setting,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let mut emu = lock(&control.shared);
    emu.interactive.surfaces.home.enabled = setting.enabled;
    Json(emu.interactive.surfaces.home.to_json()).into_response()
}
