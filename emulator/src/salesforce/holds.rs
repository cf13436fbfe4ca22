//! Held replies: a test asks the emulator to hold its answers to some requests under
//! `/services/` (REST API, search, token and revoke; the write itself is made at once, as
//! Salesforce would) until it lets them go, or to delay them. It shows that a service answers
//! its own callers without waiting for Salesforce, and lets a test stop the service while a
//! write it made is still unanswered.
//!
//! - `POST /_emulator/hold` `{"method": "PATCH", "path_contains": "/sobjects/Case/",
//!   "delay_ms"?: 4000}`: hold the replies of matching requests (`method` optional) until the
//!   release, or for `delay_ms` at most (a slow Salesforce rather than a stuck one)
//! - `GET /_emulator/hold`: `{"rules": […], "held": <requests waiting now>, "total": <ever held>}`
//! - `POST /_emulator/release`: drop every rule and send every held reply

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

/// Which replies to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRule {
    pub method: Option<String>,
    pub path_contains: String,
    /// Lets each matching reply go after this long, if no release came first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

/// The rules, and the signal that lets held replies go.
pub struct Holds {
    rules: Mutex<Vec<HoldRule>>,
    released: watch::Sender<u64>,
    held: AtomicU64,
    total: AtomicU64,
}

impl Default for Holds {
    fn default() -> Self {
        Holds {
            rules: Mutex::new(Vec::new()),
            released: watch::channel(0).0,
            held: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }
}

impl Holds {
    fn rules(&self) -> std::sync::MutexGuard<'_, Vec<HoldRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first rule matching the request: `Some(delay)`, where no delay holds until the
    /// release.
    fn matching(&self, method: &str, path: &str) -> Option<Option<u64>> {
        self.rules()
            .iter()
            .find(|r| {
                r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                    && path.contains(&r.path_contains)
            })
            .map(|r| r.delay_ms)
    }

    #[cfg(test)]
    fn matches(&self, method: &str, path: &str) -> bool {
        self.matching(method, path).is_some()
    }

    pub fn release(&self) {
        self.rules().clear();
        self.released.send_modify(|generation| *generation += 1);
    }
}

/// The layer: runs the request, then, when a rule matches, waits for the release.
pub async fn hold_layer(
    State(holds): State<std::sync::Arc<Holds>>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let held = if path.starts_with("/services/") {
        holds.matching(request.method().as_str(), &path)
    } else {
        None
    };
    let mut released = holds.released.subscribe();
    let response = next.run(request).await;
    if let Some(delay) = held {
        holds.held.fetch_add(1, Ordering::SeqCst);
        holds.total.fetch_add(1, Ordering::SeqCst);
        // Waits for the next release (a closed channel lets it go too), or the delay.
        match delay {
            Some(ms) => {
                let _ = tokio::time::timeout(Duration::from_millis(ms), released.changed()).await;
            }
            None => {
                let _ = released.changed().await;
            }
        }
        holds.held.fetch_sub(1, Ordering::SeqCst);
    }
    response
}

pub async fn set_hold(
    State(holds): State<std::sync::Arc<Holds>>,
    Json(rule): Json<HoldRule>,
) -> Response {
    if rule.path_contains.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "path_contains must not be empty"})),
        )
            .into_response();
    }
    holds.rules().push(rule);
    get_hold(State(holds)).await
}

pub async fn get_hold(State(holds): State<std::sync::Arc<Holds>>) -> Response {
    let rules = holds.rules().clone();
    Json(json!({
        "rules": rules,
        "held": holds.held.load(Ordering::SeqCst),
        "total": holds.total.load(Ordering::SeqCst),
    }))
    .into_response()
}

pub async fn release(State(holds): State<std::sync::Arc<Holds>>) -> Response {
    holds.release();
    get_hold(State(holds)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_by_method_and_path() {
        let holds = Holds::default();
        holds.rules().push(HoldRule {
            method: Some("PATCH".into()),
            path_contains: "/sobjects/Case/".into(),
            delay_ms: None,
        });
        assert!(holds.matches("patch", "/services/data/v62.0/sobjects/Case/500"));
        assert!(!holds.matches("GET", "/services/data/v62.0/sobjects/Case/500"));
        assert!(!holds.matches("PATCH", "/services/data/v62.0/sobjects/Task/00T"));
        holds.release();
        assert!(!holds.matches("PATCH", "/services/data/v62.0/sobjects/Case/500"));
    }
}
