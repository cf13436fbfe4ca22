//! A `response_url` sink: `POST /_emulator/response/{id}` records a body as Slack would take an
//! interaction's answer, and `GET` lists what each id received, in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

type Bodies = Arc<Mutex<HashMap<String, Vec<Value>>>>;

pub fn router() -> Router {
    Router::new()
        .route("/_emulator/response/{id}", get(list).post(record))
        .with_state(Bodies::default())
}

async fn record(State(bodies): State<Bodies>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": "invalid_json"})),
        )
            .into_response();
    };
    match bodies.lock() {
        Ok(mut bodies) => bodies.entry(id).or_default().push(value),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    Json(json!({"ok": true})).into_response()
}

async fn list(State(bodies): State<Bodies>, Path(id): Path<String>) -> Response {
    match bodies.lock() {
        Ok(bodies) => Json(bodies.get(&id).cloned().unwrap_or_default()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
