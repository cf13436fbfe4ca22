//! `POST /slack/events`: the Events API. `url_verification` is answered with its challenge;
//! an `event_callback` of a kind sfrelay acts on (`link_shared`, `app_home_opened`) becomes
//! one queued job, keyed by its `event_id` so Slack's retries (sent after 3 s even while the
//! first delivery is still being answered) queue nothing more. Every body is verified first.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{InboundError, InboundState, Verified, answer, queue_for_person, verify};
use crate::event::SalesforceId;
use crate::keys::DedupeKey;
use crate::queue::Enqueued;
use crate::task::Task;

/// How long an `event_id` is remembered: Slack retries for minutes, not hours.
const EVENT_DEDUPE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One link a person shared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLink {
    pub domain: String,
    pub url: String,
}

/// What happened, of the kinds sfrelay acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// Links on the app's unfurl domains were posted (or typed in the composer).
    LinkShared {
        channel: String,
        user: String,
        message_ts: Option<String>,
        unfurl_id: Option<String>,
        source: Option<String>,
        links: Vec<SharedLink>,
    },
    /// Someone opened the app's Home tab (or its Messages tab: `tab`).
    AppHomeOpened { user: String, tab: String },
}

/// What a job needs of one verified event callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackEvent {
    pub app_org: Option<SalesforceId>,
    pub api_app_id: Option<String>,
    pub team: String,
    pub event_id: String,
    pub event: EventKind,
}

/// What a verified body asks for.
#[derive(Debug, PartialEq)]
enum Callback {
    Challenge(String),
    Event(Box<SlackEvent>),
    /// An event kind sfrelay does not act on (answered 200, nothing queued).
    Ignored(String),
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn required(value: &Value, pointer: &str) -> Result<String, String> {
    text(value, pointer).ok_or_else(|| format!("the event has no {pointer}"))
}

fn read(body: &[u8], app_org: Option<SalesforceId>) -> Result<Callback, String> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match envelope.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            return Ok(Callback::Challenge(required(&envelope, "/challenge")?));
        }
        Some("event_callback") => {}
        Some(other) => return Ok(Callback::Ignored(other.to_owned())),
        None => return Err("the body has no type".into()),
    }
    let kind = required(&envelope, "/event/type")?;
    let event = match kind.as_str() {
        "link_shared" => {
            let links = envelope
                .pointer("/event/links")
                .and_then(Value::as_array)
                .ok_or("the event has no /event/links")?
                .iter()
                .filter_map(|l| {
                    Some(SharedLink {
                        domain: text(l, "/domain")?,
                        url: text(l, "/url")?,
                    })
                })
                .collect();
            EventKind::LinkShared {
                channel: required(&envelope, "/event/channel")?,
                user: required(&envelope, "/event/user")?,
                message_ts: text(&envelope, "/event/message_ts"),
                unfurl_id: text(&envelope, "/event/unfurl_id"),
                source: text(&envelope, "/event/source"),
                links,
            }
        }
        "app_home_opened" => EventKind::AppHomeOpened {
            user: required(&envelope, "/event/user")?,
            tab: text(&envelope, "/event/tab").unwrap_or_else(|| "home".into()),
        },
        _ => return Ok(Callback::Ignored(kind)),
    };
    Ok(Callback::Event(Box::new(SlackEvent {
        app_org,
        api_app_id: text(&envelope, "/api_app_id"),
        team: required(&envelope, "/team_id")?,
        event_id: required(&envelope, "/event_id")?,
        event,
    })))
}

/// `POST /slack/events`.
pub async fn post_events(
    State(state): State<InboundState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer("event", accept(&state, &headers, body).await)
}

async fn accept(
    state: &InboundState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<Value>, InboundError> {
    let Some(Verified { body, app_org }) = verify(state, headers, body).await? else {
        return Ok(None);
    };
    match read(&body, app_org).map_err(InboundError::Invalid)? {
        Callback::Challenge(challenge) => Ok(Some(json!({ "challenge": challenge }))),
        Callback::Ignored(kind) => {
            tracing::debug!(kind, "Slack event not acted on");
            Ok(None)
        }
        Callback::Event(event) => {
            let key = DedupeKey::slack_event(&event.team, &event.event_id);
            let retry = headers
                .get("x-slack-retry-num")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let task = Task::SlackEvent { event };
            let outcome = queue_for_person(state, key, &task, EVENT_DEDUPE).await?;
            let outcome = match outcome {
                Enqueued::New(_) => "accepted",
                _ => "duplicate",
            };
            if let Some(retry) = retry {
                tracing::info!(retry, outcome, "Slack retried an event");
            }
            metrics::counter!("sfrelay_slack_inbound_total", "outcome" => outcome).increment(1);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_read() {
        let body = br#"{"type":"url_verification","token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#;
        assert_eq!(
            read(body, None).unwrap(),
            Callback::Challenge("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into())
        );
    }

    #[test]
    fn a_link_shared_event_is_read_and_a_missing_field_named() {
        let body = br#"{"type":"event_callback","team_id":"T1","api_app_id":"A1","event_id":"Ev1",
            "event":{"type":"link_shared","channel":"C1","user":"U1","message_ts":"1.2",
            "links":[{"domain":"acme.my.salesforce.com","url":"https://acme.my.salesforce.com/006000000000001AAA"}]}}"#;
        let Callback::Event(event) = read(body, None).unwrap() else {
            panic!("an event")
        };
        assert_eq!(event.event_id, "Ev1");
        let EventKind::LinkShared { links, .. } = &event.event else {
            panic!("link_shared")
        };
        assert_eq!(links[0].domain, "acme.my.salesforce.com");
        let e = read(
            br#"{"type":"event_callback","team_id":"T1","event":{"type":"app_home_opened","user":"U1"}}"#,
            None,
        )
        .unwrap_err();
        assert!(e.contains("event_id"), "{e}");
        assert_eq!(
            read(
                br#"{"type":"event_callback","team_id":"T1","event_id":"Ev2","event":{"type":"message"}}"#,
                None
            )
            .unwrap(),
            Callback::Ignored("message".into())
        );
    }
}
