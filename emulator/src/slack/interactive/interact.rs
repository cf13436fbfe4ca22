//! `POST /_emulator/interact`: the emulator plays the person in Slack. It builds the payload
//! Slack would send for a click, a submission or a close, signs it with the app's signing
//! secret, posts it to the app's interactivity URL (loopback only), and for a submission
//! applies the app's answer to the modal as Slack would.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::emulator::{Clock, lock};
use super::answers::apply_submission_answer;
use super::control::{Control, bad_request, refusal_response};
use super::payload::{self, Click, Refusal};
use super::signing;

/// What the test asks the emulated person to do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InteractRequest {
    /// The app's interactivity URL (`…/slack/interactions`).
    url: String,
    /// The app's signing secret.
    signing_secret: String,
    /// `block_actions`, `view_submission` or `view_closed`.
    #[serde(rename = "type")]
    kind: String,
    user: String,
    channel: Option<String>,
    /// The clicked message; absent, the newest one in `channel` with that `action_id`.
    ts: Option<String>,
    action_id: Option<String>,
    option: Option<String>,
    view_id: Option<String>,
    /// For submissions: `{block_id: {action_id: "text, date or option value"}}`.
    #[serde(default)]
    values: Value,
    /// Signs with this Unix time instead of now (for stale-signature tests).
    timestamp: Option<i64>,
    /// Alters the body after signing, so the signature no longer matches.
    #[serde(default)]
    tamper: bool,
}

/// The app's URL, refused unless its host is loopback (`127.0.0.1`, `localhost`, `::1`).
pub(super) fn loopback_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} is not http(s)"));
    }
    // The parsed host is normalised: `127.1` reads as `127.0.0.1`, IPv6 is compressed.
    let loopback = url
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("localhost") || h == "127.0.0.1" || h == "[::1]");
    if loopback {
        Ok(url)
    } else {
        Err(format!(
            "{raw:?} is not on loopback; the emulator only calls loopback"
        ))
    }
}

/// The emulator's own base URL as the caller reached it, for the `response_url`s it issues.
pub(super) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn required<'a>(value: &'a Option<String>, name: &str, kind: &str) -> Result<&'a str, Refusal> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refusal {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_arguments",
            detail: format!("a {kind} needs {name:?}"),
        })
}

/// Builds the payload for the request, under the emulator's lock.
fn build(
    control: &Control,
    req: &InteractRequest,
    base: &str,
    now_micros: i64,
) -> Result<payload::Built, Refusal> {
    let mut guard = lock(&control.shared);
    let emu = &mut *guard;
    match req.kind.as_str() {
        "block_actions" => {
            let channel = required(&req.channel, "channel", "click")?;
            let action_id = required(&req.action_id, "action_id", "click")?;
            // Without a ts: the newest message in the channel that has that element (handy
            // from a shell, where the ts is not known).
            let newest = match &req.ts {
                Some(_) => None,
                None => emu
                    .workspace
                    .messages(Some(channel))
                    .filter(|m| {
                        m.blocks.as_ref().is_some_and(|b| {
                            b.to_string()
                                .contains(&format!("\"action_id\":\"{action_id}\""))
                        })
                    })
                    .last()
                    .map(|m| m.ts.clone()),
            };
            let ts = match (&req.ts, &newest) {
                (Some(ts), _) => ts.as_str(),
                (None, Some(ts)) => ts.as_str(),
                (None, None) => required(&req.ts, "ts", "click")?,
            };
            let click = Click {
                user: &req.user,
                channel,
                ts,
                action_id,
                option: req.option.as_deref(),
            };
            payload::block_actions(
                &emu.workspace,
                &mut emu.interactive,
                &click,
                base,
                now_micros,
            )
        }
        "view_submission" => payload::view_submission(
            &emu.workspace,
            &mut emu.interactive,
            &req.user,
            required(&req.view_id, "view_id", "submission")?,
            &req.values,
            now_micros,
        ),
        "view_closed" => payload::view_closed(
            &emu.workspace,
            &mut emu.interactive,
            &req.user,
            required(&req.view_id, "view_id", "close")?,
        ),
        other => Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_arguments",
            detail: format!("type {other:?} is not block_actions, view_submission or view_closed"),
        }),
    }
}

/// The app's answer body: JSON when it is JSON, else the text ("" when empty).
pub(super) fn answer_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// `POST /_emulator/interact`.
pub async fn interact(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> Response {
    let req: InteractRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let target = match loopback_url(&req.url) {
        Ok(target) => target,
        Err(detail) => return bad_request("url_not_loopback", &detail),
    };
    let now = Clock::now();
    let built = match build(&control, &req, &base_url(&headers), now.micros) {
        Ok(built) => built,
        Err(refusal) => return refusal_response(&refusal),
    };
    let mut form = signing::form_body(&built.payload.to_string());
    let timestamp = req.timestamp.unwrap_or(now.micros.div_euclid(1_000_000));
    let signature = signing::signature(&req.signing_secret, timestamp, &form);
    if req.tamper {
        // A trailing space in the payload: still readable JSON, but not what was signed.
        form.push_str("%20");
    }
    let started = Instant::now();
    let sent = control
        .http
        .post(target)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(USER_AGENT, "Slackbot 1.0 (+https://api.slack.com/robots)")
        .header("X-Slack-Request-Timestamp", timestamp.to_string())
        .header("X-Slack-Signature", signature)
        .body(form)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            return (
                StatusCode::BAD_GATEWAY,
                Json(json!({"ok": false, "error": "app_unreachable",
                            "detail": err.without_url().to_string(), "payload": built.payload})),
            )
                .into_response();
        }
    };
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    let elapsed = started.elapsed();
    let applied = match (req.kind.as_str(), req.view_id.as_deref()) {
        ("view_submission", Some(view_id)) => {
            let mut emu = lock(&control.shared);
            apply_submission_answer(
                &mut emu.interactive,
                view_id,
                status,
                &bytes,
                elapsed,
                Clock::now().micros,
            )
        }
        _ => Value::Null,
    };
    Json(json!({
        "status": status,
        "body": answer_body(&bytes),
        "elapsed_ms": elapsed.as_millis(),
        "trigger_id": built.trigger_id,
        "response_url": built.response_url,
        "payload": built.payload,
        "applied": applied,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_called() {
        for ok in [
            "http://127.0.0.1:8080/slack/interactions",
            "http://localhost/slack/interactions",
            "https://LOCALHOST:1/x",
            "http://[::1]:9/x",
        ] {
            assert!(loopback_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1/slack/interactions",
            "http://127.0.0.2/x",
            "https://hooks.slack.com/x",
            "http://localhost.evil.test/x",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            assert!(loopback_url(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_base_url_is_the_host_the_caller_used() {
        let mut headers = HeaderMap::new();
        assert_eq!(base_url(&headers), "http://127.0.0.1");
        headers.insert(HOST, "127.0.0.1:4567".parse().unwrap());
        assert_eq!(base_url(&headers), "http://127.0.0.1:4567");
        headers.insert(HOST, "evil/path".parse().unwrap());
        assert_eq!(base_url(&headers), "http://127.0.0.1");
    }

    #[test]
    fn an_answer_body_is_json_or_text() {
        assert_eq!(answer_body(b""), json!(""));
        assert_eq!(answer_body(b"{\"a\":1}"), json!({"a": 1}));
        assert_eq!(answer_body(b"nope"), json!("nope"));
    }
}
