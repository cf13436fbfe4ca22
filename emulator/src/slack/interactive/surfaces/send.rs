//! Sending one signed request to the app, as Slack sends slash commands and Events API
//! callbacks: `X-Slack-Request-Timestamp` and the v0 `X-Slack-Signature` over the raw body,
//! and the answer timed, since Slack gives up after 3 seconds.

use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::response::{IntoResponse, Response};
use reqwest::Url;
use serde_json::{Value, json};

use super::super::control::Control;
use super::super::interact::answer_body;
use super::super::signing;

/// How long Slack waits for an app's answer before it gives up on it.
pub const SLACK_PATIENCE: Duration = Duration::from_secs(3);

/// How a signed request is sent.
pub struct Outgoing<'a> {
    pub url: Url,
    pub secret: &'a str,
    /// Unix seconds to sign with.
    pub timestamp: i64,
    pub content_type: &'static str,
    pub body: String,
    /// Headers beyond the signature (the Events API's retry headers).
    pub headers: Vec<(&'static str, String)>,
    /// Alters the body after signing, so the signature no longer matches.
    pub tamper: bool,
}

/// What the app answered and how long it took.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// JSON when it is JSON, else the text ("" when empty).
    pub body: Value,
    pub elapsed: Duration,
}

impl Answer {
    /// Whether Slack would have taken the answer: a 2xx within 3 seconds.
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status) && self.elapsed <= SLACK_PATIENCE
    }

    /// The fields every control answer reports of it.
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status,
            "body": self.body,
            "elapsed_ms": u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            "within_3s": self.elapsed <= SLACK_PATIENCE,
        })
    }
}

/// Signs and posts `out`; the error is the control API's 502 answer.
pub async fn send(control: &Control, out: Outgoing<'_>) -> Result<Answer, Response> {
    let signature = signing::signature(out.secret, out.timestamp, &out.body);
    let mut body = out.body;
    if out.tamper {
        // Readable still (a trailing space in a form value or after JSON), but not what was
        // signed.
        body.push_str(if out.content_type.contains("json") {
            " "
        } else {
            "%20"
        });
    }
    let mut request = control
        .http
        .post(out.url)
        .header(CONTENT_TYPE, out.content_type)
        .header(USER_AGENT, "Slackbot 1.0 (+https://api.slack.com/robots)")
        .header("X-Slack-Request-Timestamp", out.timestamp.to_string())
        .header("X-Slack-Signature", signature);
    for (name, value) in out.headers {
        request = request.header(name, value);
    }
    let started = Instant::now();
    let response = request.body(body).send().await.map_err(|err| {
        (
            StatusCode::BAD_GATEWAY,
            Json(json!({"ok": false, "error": "app_unreachable",
                        "detail": err.without_url().to_string()})),
        )
            .into_response()
    })?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    Ok(Answer {
        status,
        body: answer_body(&bytes),
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_takes_a_2xx_within_three_seconds() {
        let answer = |status, ms| Answer {
            status,
            body: Value::Null,
            elapsed: Duration::from_millis(ms),
        };
        assert!(answer(200, 10).acknowledged());
        assert!(answer(204, 3000).acknowledged());
        assert!(!answer(200, 3001).acknowledged());
        assert!(!answer(500, 10).acknowledged());
        assert_eq!(answer(200, 3001).to_json()["within_3s"], false);
        assert_eq!(answer(200, 12).to_json()["elapsed_ms"], 12);
    }
}
