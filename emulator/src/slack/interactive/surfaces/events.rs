//! `POST /_emulator/event`: the emulator sends what the Events API sends an app, signed like
//! every Slack request and as JSON: `url_verification` (answered right when the body or text
//! is the challenge), and `event_callback` envelopes for `link_shared` (posted in a channel,
//! or typed in the composer) and `app_home_opened`. `{"retry_of": "Ev…"}` sends an event
//! again as Slack's retries do: the same body, `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`.
//!
//! A `link_shared` is remembered as a share: `chat.unfurl` only unfurls the links of a share,
//! named by `channel`+`ts` or `unfurl_id`+`source`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::super::emulator::{Clock, lock};
use super::super::super::workspace::{BOT_USER_ID, TEAM_ID, Workspace};
use super::super::control::{Control, bad_request, refusal_response};
use super::super::interact::loopback_url;
use super::super::payload::{Refusal, person, refuse, ts_of};
use super::super::{APP_ID, Interactive};
use super::conversation;
use super::send::{Answer, Outgoing, send};
use super::unfurl::{COMPOSER, Share, Source};

/// Most retries Slack makes of one event.
pub const MAX_RETRIES: u32 = 3;

/// What the test asks the emulator to send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRequest {
    /// The app's Events API request URL (`…/slack/events`).
    url: String,
    signing_secret: String,
    /// `url_verification`, `link_shared` or `app_home_opened`; absent with `retry_of`.
    #[serde(rename = "type")]
    kind: Option<String>,
    user: Option<String>,
    /// Where the links were posted (`link_shared` from a message).
    channel: Option<String>,
    /// `conversations_history` (posted, the default) or `composer` (typed, not sent yet).
    source: Option<String>,
    /// The links: URLs, or `{"domain", "url"}` objects.
    #[serde(default)]
    links: Vec<Value>,
    /// The message holding the links; a fresh ts when absent.
    message_ts: Option<String>,
    thread_ts: Option<String>,
    /// `app_home_opened`: `home` (default) or `messages`.
    tab: Option<String>,
    /// `url_verification`: the challenge (a random one when absent).
    challenge: Option<String>,
    /// Sends the event with this `event_id` again, as a retry.
    retry_of: Option<String>,
    /// The retry's number (1 to 3; the next one when absent).
    retry_num: Option<u32>,
    /// `X-Slack-Retry-Reason` (default `http_timeout`).
    retry_reason: Option<String>,
    /// Another app's id, for an org with a Slack app of its own.
    api_app_id: Option<String>,
    timestamp: Option<i64>,
    #[serde(default)]
    tamper: bool,
}

/// One delivery of an event to the app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// 0 for the first, 1 to 3 for retries.
    pub retry_num: u32,
    pub retry_reason: Option<String>,
    /// `{status, body, elapsed_ms, within_3s}` of the app's answer.
    pub answer: Value,
    pub at_ms: i64,
}

/// An event the emulator sent, with every delivery of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentEvent {
    /// The envelope's `event_id` (for a `url_verification`, an id of the emulator's own).
    pub event_id: String,
    /// `url_verification`, `link_shared` or `app_home_opened`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The body as sent, byte for byte the same on every retry.
    #[serde(skip)]
    pub body: String,
    pub payload: Value,
    pub deliveries: Vec<Delivery>,
}

fn invalid(detail: impl Into<String>) -> Refusal {
    refuse(StatusCode::BAD_REQUEST, "invalid_arguments", detail)
}

fn random_hex(digits: usize) -> String {
    let mut out = String::with_capacity(digits + 32);
    while out.len() < digits {
        out.push_str(&format!("{:032x}", rand::random::<u128>()));
    }
    out.truncate(digits);
    out
}

/// `{"domain", "url"}` for each link, the domain read from the URL when not given.
fn links_json(links: &[Value]) -> Result<Vec<Value>, Refusal> {
    if links.is_empty() {
        return Err(invalid("a link_shared needs \"links\""));
    }
    links
        .iter()
        .map(|link| {
            let (url, domain) = match link {
                Value::String(url) => (url.as_str(), None),
                Value::Object(o) => (
                    o.get("url").and_then(Value::as_str).unwrap_or_default(),
                    o.get("domain").and_then(Value::as_str),
                ),
                _ => ("", None),
            };
            let parsed = Url::parse(url).map_err(|_| invalid(format!("{link} is not a URL")))?;
            let domain = match domain {
                Some(domain) => domain.to_owned(),
                None => parsed.host_str().unwrap_or_default().to_owned(),
            };
            Ok(json!({"domain": domain, "url": url}))
        })
        .collect()
}

/// The `event_callback` envelope around `event`.
fn envelope(event: Value, event_id: &str, app_id: &str, now_micros: i64) -> Value {
    json!({
        "token": "emulated-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": now_micros.div_euclid(1_000_000),
        "authorizations": [{
            "enterprise_id": null,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "is_bot": true,
            "is_enterprise_install": false,
        }],
        "is_ext_shared_channel": false,
        "event_context": format!("4-{}", random_hex(40)),
    })
}

/// A `link_shared` event, remembering the share for `chat.unfurl`.
fn link_shared(
    workspace: &mut Workspace,
    state: &mut Interactive,
    req: &EventRequest,
    user: &str,
    now_micros: i64,
) -> Result<Value, Refusal> {
    let links = links_json(&req.links)?;
    let source = match req.source.as_deref() {
        None => Source::ConversationsHistory,
        Some(raw) => Source::parse(raw).ok_or_else(|| {
            invalid(format!(
                "source {raw:?} is neither conversations_history nor composer"
            ))
        })?,
    };
    let event_ts = ts_of(now_micros);
    let mut event = json!({"type": "link_shared", "user": user, "source": source.name(),
                           "links": links, "event_ts": event_ts});
    let (channel, message_ts, unfurl_id) = match source {
        Source::Composer => {
            // Typed, not sent: no channel yet, and the unfurl id doubles as the message's ts.
            let unfurl_id = format!("{user}-{}", random_hex(32));
            (COMPOSER.to_owned(), unfurl_id.clone(), unfurl_id)
        }
        Source::ConversationsHistory => {
            let channel = req.channel.clone().ok_or_else(|| {
                invalid("a link_shared from a message needs \"channel\" (or source composer)")
            })?;
            let (_, member) = conversation(workspace, &channel, user)?;
            let ts = match &req.message_ts {
                Some(ts) => ts.clone(),
                None => workspace.next_ts(now_micros),
            };
            event["is_bot_user_member"] = member.into();
            if let Some(thread_ts) = &req.thread_ts {
                event["thread_ts"] = thread_ts.clone().into();
            }
            let unfurl_id = format!("{channel}.{ts}.{}", random_hex(64));
            (channel, ts, unfurl_id)
        }
    };
    event["channel"] = channel.clone().into();
    event["message_ts"] = message_ts.clone().into();
    event["unfurl_id"] = unfurl_id.clone().into();
    state.surfaces.shares.push(Share {
        channel,
        message_ts,
        unfurl_id,
        source,
        user: user.to_owned(),
        links: links
            .iter()
            .filter_map(|l| l["url"].as_str().map(str::to_owned))
            .collect(),
        at_ms: now_micros / 1000,
    });
    Ok(event)
}

/// An `app_home_opened` event; the home view published for the person rides along.
fn app_home_opened(
    workspace: &mut Workspace,
    state: &Interactive,
    req: &EventRequest,
    user: &str,
    now_micros: i64,
) -> Result<Value, Refusal> {
    let tab = req.tab.as_deref().unwrap_or("home");
    if !matches!(tab, "home" | "messages") {
        return Err(invalid(format!("tab {tab:?} is neither home nor messages")));
    }
    let (dm, _) = workspace.open_dm(user);
    let mut event = json!({"type": "app_home_opened", "user": user, "channel": dm.id,
                           "tab": tab, "event_ts": ts_of(now_micros)});
    if let Some(view) = state.surfaces.home.view_of(user) {
        event["view"] = view.api_json();
    }
    Ok(event)
}

/// A new event to send, built under the emulator's lock.
fn build_new(
    workspace: &mut Workspace,
    state: &mut Interactive,
    req: &EventRequest,
    now_micros: i64,
) -> Result<SentEvent, Refusal> {
    let kind = req
        .kind
        .clone()
        .ok_or_else(|| invalid("say which event: \"type\" (or \"retry_of\")"))?;
    let n = state.next_number();
    let event_id = format!("Ev0EMU{n:08}");
    let app_id = req.api_app_id.as_deref().unwrap_or(APP_ID);
    let payload = match kind.as_str() {
        "url_verification" => {
            let challenge = req.challenge.clone().unwrap_or_else(|| random_hex(48));
            json!({"token": "emulated-verification-token", "challenge": challenge,
                   "type": "url_verification"})
        }
        "link_shared" | "app_home_opened" => {
            let user = req
                .user
                .as_deref()
                .ok_or_else(|| invalid(format!("a {kind} needs \"user\"")))?;
            person(workspace, user)?;
            let event = if kind == "link_shared" {
                link_shared(workspace, state, req, user, now_micros)?
            } else {
                app_home_opened(workspace, state, req, user, now_micros)?
            };
            envelope(event, &event_id, app_id, now_micros)
        }
        other => {
            return Err(invalid(format!(
                "type {other:?} is not url_verification, link_shared or app_home_opened"
            )));
        }
    };
    Ok(SentEvent {
        event_id,
        kind,
        body: payload.to_string(),
        payload,
        deliveries: Vec::new(),
    })
}

/// The retry number to send for `event`, checked against Slack's three.
fn retry_number(event: &SentEvent, asked: Option<u32>) -> Result<u32, Refusal> {
    let next = u32::try_from(event.deliveries.len()).unwrap_or(u32::MAX);
    let n = asked.unwrap_or(next);
    if !(1..=MAX_RETRIES).contains(&n) {
        return Err(refuse(
            StatusCode::CONFLICT,
            "too_many_retries",
            format!("Slack retries an event 1 to {MAX_RETRIES} times; retry {n} asked"),
        ));
    }
    Ok(n)
}

/// Whether the app answered a `url_verification` with its challenge (JSON, text or form).
fn verified(payload: &Value, answer: &Answer) -> bool {
    let Some(challenge) = payload["challenge"].as_str() else {
        return false;
    };
    let echoed = match &answer.body {
        Value::Object(o) => o.get("challenge").and_then(Value::as_str) == Some(challenge),
        Value::String(text) => {
            text == challenge || text.strip_prefix("challenge=") == Some(challenge)
        }
        _ => false,
    };
    (200..300).contains(&answer.status) && echoed
}

/// `POST /_emulator/event`.
pub async fn event(State(control): State<Control>, body: Bytes) -> Response {
    let req: EventRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let target = match loopback_url(&req.url) {
        Ok(target) => target,
        Err(detail) => return bad_request("url_not_loopback", &detail),
    };
    let now = Clock::now();
    let prepared = {
        let mut guard = lock(&control.shared);
        let emu = &mut *guard;
        let events = &emu.interactive.surfaces.events;
        match &req.retry_of {
            Some(id) => match events.iter().find(|e| &e.event_id == id) {
                Some(sent) => retry_number(sent, req.retry_num).map(|n| (sent.clone(), n)),
                None => Err(refuse(
                    StatusCode::NOT_FOUND,
                    "event_not_found",
                    format!("no event {id} was sent"),
                )),
            },
            None => build_new(&mut emu.workspace, &mut emu.interactive, &req, now.micros)
                .map(|sent| (sent, 0)),
        }
    };
    let (sent, retry_num) = match prepared {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal_response(&refusal),
    };
    let retry_reason = (retry_num > 0).then(|| {
        req.retry_reason
            .clone()
            .unwrap_or_else(|| "http_timeout".into())
    });
    let mut headers = Vec::new();
    if let Some(reason) = &retry_reason {
        headers.push(("X-Slack-Retry-Num", retry_num.to_string()));
        headers.push(("X-Slack-Retry-Reason", reason.clone()));
    }
    let out = Outgoing {
        url: target,
        secret: &req.signing_secret,
        timestamp: req.timestamp.unwrap_or(now.micros.div_euclid(1_000_000)),
        content_type: "application/json",
        body: sent.body.clone(),
        headers,
        tamper: req.tamper,
    };
    let answer = match send(&control, out).await {
        Ok(answer) => answer,
        Err(unreachable) => return unreachable,
    };
    let delivery = Delivery {
        retry_num,
        retry_reason: retry_reason.clone(),
        answer: answer.to_json(),
        at_ms: now.micros / 1000,
    };
    let mut shown = answer.to_json();
    if let Some(out) = shown.as_object_mut() {
        out.insert("event_id".into(), sent.event_id.clone().into());
        out.insert("type".into(), sent.kind.clone().into());
        out.insert("retry_num".into(), retry_num.into());
        out.insert("payload".into(), sent.payload.clone());
        if sent.kind == "url_verification" {
            out.insert("verified".into(), verified(&sent.payload, &answer).into());
        }
    }
    let mut emu = lock(&control.shared);
    let events = &mut emu.interactive.surfaces.events;
    match events.iter_mut().find(|e| e.event_id == sent.event_id) {
        Some(known) => known.deliveries.push(delivery),
        None => {
            let mut sent = sent;
            sent.deliveries.push(delivery);
            events.push(sent);
        }
    }
    Json(shown).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::slack::workspace::{Channel, User};

    const NOW: i64 = 1_700_000_000_000_000;

    fn workspace() -> Workspace {
        let mut outside = Channel::new("C0OUTSIDE1", "outside", false);
        outside.members.clear();
        Workspace::new(
            vec![Channel::new("C0DEALDESK", "deal-desk", false), outside],
            vec![User::new("U0DANA0001", "dana.seller@example.com")],
        )
    }

    fn request(kind: &str, extra: Value) -> EventRequest {
        let mut req = json!({"url": "http://127.0.0.1:1/slack/events", "signing_secret": "s",
                             "type": kind, "user": "U0DANA0001"});
        if let (Some(req), Value::Object(extra)) = (req.as_object_mut(), extra) {
            req.extend(extra);
        }
        serde_json::from_value(req).unwrap()
    }

    #[test]
    fn link_shared_from_a_message_or_the_composer() {
        let (mut ws, mut state) = (workspace(), Interactive::default());
        let req = request(
            "link_shared",
            json!({"channel": "C0DEALDESK", "links": [
                "https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view",
                {"domain": "acme.lightning.force.com", "url": "https://acme.lightning.force.com/x"}
            ]}),
        );
        let sent = build_new(&mut ws, &mut state, &req, NOW).unwrap();
        let event = &sent.payload["event"];
        assert_eq!(sent.payload["type"], "event_callback");
        assert_eq!(sent.payload["event_id"], sent.event_id);
        assert_eq!(sent.payload["api_app_id"], APP_ID);
        assert_eq!(event["type"], "link_shared");
        assert_eq!(event["source"], "conversations_history");
        assert_eq!(event["channel"], "C0DEALDESK");
        assert_eq!(event["is_bot_user_member"], true);
        assert_eq!(event["links"][0]["domain"], "acme.my.salesforce.com");
        assert_eq!(event["links"][1]["domain"], "acme.lightning.force.com");
        let unfurl_id = event["unfurl_id"].as_str().unwrap();
        assert!(unfurl_id.starts_with("C0DEALDESK."), "{unfurl_id}");
        let share = &state.surfaces.shares[0];
        assert_eq!(share.message_ts, event["message_ts"].as_str().unwrap());
        assert_eq!(share.links.len(), 2);

        let typed = request(
            "link_shared",
            json!({"source": "composer", "links": ["https://acme.my.salesforce.com/x"]}),
        );
        let sent = build_new(&mut ws, &mut state, &typed, NOW).unwrap();
        let event = &sent.payload["event"];
        assert_eq!(event["channel"], COMPOSER);
        assert_eq!(event["message_ts"], event["unfurl_id"]);
        assert!(event.get("is_bot_user_member").is_none());

        let outside = request(
            "link_shared",
            json!({"channel": "C0OUTSIDE1", "message_ts": "1.000001", "links": ["https://a.b/c"]}),
        );
        let sent = build_new(&mut ws, &mut state, &outside, NOW).unwrap();
        assert_eq!(sent.payload["event"]["is_bot_user_member"], false);
        assert_eq!(sent.payload["event"]["message_ts"], "1.000001");

        for (extra, error) in [
            (json!({"channel": "C0DEALDESK"}), "invalid_arguments"),
            (json!({"links": ["https://a.b/c"]}), "invalid_arguments"),
            (
                json!({"channel": "C0NOPE", "links": ["https://a.b/c"]}),
                "channel_not_found",
            ),
            (
                json!({"channel": "C0DEALDESK", "links": ["not a url"]}),
                "invalid_arguments",
            ),
            (
                json!({"source": "conversations_composer", "links": ["https://a.b/c"]}),
                "invalid_arguments",
            ),
            (
                json!({"user": "U0GHOST001", "source": "composer", "links": ["https://a.b"]}),
                "user_not_found",
            ),
        ] {
            let refused = build_new(
                &mut ws,
                &mut state,
                &request("link_shared", extra.clone()),
                NOW,
            );
            assert_eq!(refused.err().map(|r| r.error), Some(error), "{extra}");
        }
        let other = build_new(&mut ws, &mut state, &request("message", json!({})), NOW);
        assert_eq!(other.err().map(|r| r.error), Some("invalid_arguments"));
        assert_eq!(state.surfaces.shares.len(), 3);
    }

    #[test]
    fn home_opened_carries_the_published_view() {
        let (mut ws, mut state) = (workspace(), Interactive::default());
        let sent = build_new(
            &mut ws,
            &mut state,
            &request("app_home_opened", json!({})),
            NOW,
        )
        .unwrap();
        let event = &sent.payload["event"];
        assert_eq!(
            (&event["tab"], &event["channel"]),
            (&json!("home"), &json!("D0DANA0001"))
        );
        assert!(event.get("view").is_none());
        assert_eq!(ws.dms().len(), 1, "the app's DM with the person");
        let bad = build_new(
            &mut ws,
            &mut state,
            &request("app_home_opened", json!({"tab": "about"})),
            NOW,
        );
        assert_eq!(bad.err().map(|r| r.error), Some("invalid_arguments"));
    }

    #[test]
    fn retries_count_to_three_and_verification_wants_the_challenge() {
        let (mut ws, mut state) = (workspace(), Interactive::default());
        let req = request("url_verification", json!({"challenge": "c-123"}));
        let mut sent = build_new(&mut ws, &mut state, &req, NOW).unwrap();
        assert_eq!(
            sent.payload,
            json!({"token": "emulated-verification-token",
                                        "challenge": "c-123", "type": "url_verification"})
        );
        let answer = |status, body: Value| Answer {
            status,
            body,
            elapsed: Duration::from_millis(1),
        };
        assert!(verified(
            &sent.payload,
            &answer(200, json!({"challenge": "c-123"}))
        ));
        assert!(verified(&sent.payload, &answer(200, json!("c-123"))));
        assert!(verified(
            &sent.payload,
            &answer(200, json!("challenge=c-123"))
        ));
        assert!(!verified(
            &sent.payload,
            &answer(200, json!({"challenge": "other"}))
        ));
        assert!(!verified(
            &sent.payload,
            &answer(401, json!({"challenge": "c-123"}))
        ));

        assert_eq!(
            retry_number(&sent, None).err().map(|r| r.error),
            Some("too_many_retries")
        );
        let delivery = Delivery {
            retry_num: 0,
            retry_reason: None,
            answer: Value::Null,
            at_ms: 0,
        };
        sent.deliveries.push(delivery.clone());
        assert_eq!(retry_number(&sent, None).ok(), Some(1));
        assert_eq!(retry_number(&sent, Some(3)).ok(), Some(3));
        assert!(retry_number(&sent, Some(4)).is_err());
        assert!(retry_number(&sent, Some(0)).is_err());
        sent.deliveries
            .extend([delivery.clone(), delivery.clone(), delivery]);
        assert!(retry_number(&sent, None).is_err(), "a fourth retry");
    }
}
