//! The `/_emulator/pubsub/…` control endpoints (listed in the module doc), thin JSON wrappers
//! over [`PubSubControl`].

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Fault, PubSubControl, error};

pub fn router(control: PubSubControl) -> Router {
    Router::new()
        .route("/_emulator/pubsub/publish", post(publish))
        .route("/_emulator/pubsub/fields", post(add_field))
        .route("/_emulator/pubsub/channels", post(create_channel))
        .route("/_emulator/pubsub/purge", post(purge))
        .route("/_emulator/pubsub/faults", post(fault))
        .route("/_emulator/pubsub/timing", post(set_timing).get(timing))
        .route("/_emulator/pubsub/streams", get(streams))
        .route("/_emulator/pubsub/topics", get(topics))
        .route("/_emulator/pubsub/schemas/{id}", get(schema))
        .with_state(control)
}

fn answer(result: Result<Value, String>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(message) => (StatusCode::BAD_REQUEST, Json(error(&message))).into_response(),
    }
}

/// Reads a JSON body, answering 400 with the reason instead of axum's plain-text rejection.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("bad request body: {e}"))
}

async fn publish(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<Value>(&bytes).and_then(|v| c.publish(v)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewField {
    entity: String,
    name: String,
    kind: String,
    subfields: Option<Vec<String>>,
}

async fn add_field(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<NewField>(&bytes).and_then(|f| {
        c.add_field(&f.entity, &f.name, &f.kind, f.subfields)
            .map(|id| json!({ "schema_id": id }))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Channel {
    name: String,
    entities: Vec<String>,
}

async fn create_channel(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<Channel>(&bytes).and_then(|ch| {
        c.create_channel(&ch.name, ch.entities.clone())
            .map(|()| json!({ "name": ch.name, "entities": ch.entities }))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    topic: Option<String>,
    #[serde(default)]
    keep_last: usize,
    up_to: Option<String>,
}

async fn purge(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<Purge>(&bytes).and_then(|p| {
        c.purge(p.topic.as_deref(), p.keep_last, p.up_to.as_deref())
            .map(|n| json!({ "purged": n }))
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    topic: Option<String>,
    fault: Fault,
    times: Option<u32>,
    count: Option<usize>,
}

async fn fault(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<FaultBody>(&bytes).map(|f| {
        let n = c.fault(
            f.topic.as_deref(),
            f.fault,
            f.times.unwrap_or(1),
            f.count.unwrap_or(1),
        );
        json!({ "streams": n })
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingBody {
    keepalive_ms: Option<u64>,
    zero_credit_timeout_ms: Option<u64>,
    batch_max: Option<u32>,
}

async fn set_timing(State(c): State<PubSubControl>, bytes: axum::body::Bytes) -> Response {
    answer(body::<TimingBody>(&bytes).and_then(|t| {
        c.set_timing(
            t.keepalive_ms.map(Duration::from_millis),
            t.zero_credit_timeout_ms.map(Duration::from_millis),
            t.batch_max,
        )
    }))
}

async fn timing(State(c): State<PubSubControl>) -> Response {
    Json(c.timing()).into_response()
}

async fn streams(State(c): State<PubSubControl>) -> Response {
    Json(c.streams()).into_response()
}

async fn topics(State(c): State<PubSubControl>) -> Response {
    Json(c.topics()).into_response()
}

async fn schema(State(c): State<PubSubControl>, Path(id): Path<String>) -> Response {
    match c
        .schema(&id)
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
    {
        Some(schema) => Json(schema).into_response(),
        None => (StatusCode::NOT_FOUND, Json(error("no such schema"))).into_response(),
    }
}
