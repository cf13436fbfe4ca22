//! Answering the person who clicked through the click's `response_url` — only ever on Slack's
//! own host (or the configured Slack API base's, for the emulator): a URL from a payload is
//! never called anywhere else.

use std::time::Duration;

use reqwest::Url;
use serde_json::json;

use crate::event::SalesforceId;
use crate::jobs::JobError;

/// Posts to interactions' `response_url`s, but only on Slack's own host (or the configured
/// Slack API base's, for the emulator): a URL from a payload is never called anywhere else.
pub struct Replies {
    http: reqwest::Client,
    allowed: Vec<Url>,
    orgs: Vec<SalesforceId>,
}

/// Where Slack's real `response_url`s live.
const SLACK_HOOKS: &str = "https://hooks.slack.com/";

impl Replies {
    pub fn new(api_base: &str, orgs: Vec<SalesforceId>, timeout: Duration) -> Self {
        let allowed = [SLACK_HOOKS, api_base]
            .iter()
            .filter_map(|u| Url::parse(u).ok())
            .collect();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Replies {
            http,
            allowed,
            orgs,
        }
    }

    /// The orgs whose buttons are served.
    pub fn orgs(&self) -> &[SalesforceId] {
        &self.orgs
    }

    /// Whether `url` is on an allowed origin (scheme, host and port).
    fn permits(&self, url: &Url) -> bool {
        self.allowed.iter().any(|a| {
            a.scheme() == url.scheme()
                && a.host_str() == url.host_str()
                && a.port_or_known_default() == url.port_or_known_default()
        })
    }
}

/// Posts `body` to an interaction's `response_url`, if it is on Slack's host.
pub async fn respond(
    replies: &Replies,
    url: Option<&str>,
    body: &serde_json::Value,
) -> Result<(), JobError> {
    let url =
        url.ok_or_else(|| JobError::dead("the click has no response_url to answer".into()))?;
    let url =
        Url::parse(url).map_err(|e| JobError::dead(format!("response_url is not a URL: {e}")))?;
    if !replies.permits(&url) {
        tracing::warn!(
            host = url.host_str().unwrap_or(""),
            "response_url refused: not a Slack host"
        );
        return Err(JobError::dead(format!(
            "response_url host {:?} is not Slack's",
            url.host_str().unwrap_or("")
        )));
    }
    let response = replies
        .http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| JobError::later(format!("response_url: {e}")))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status.as_u16() == 429 {
        Err(JobError::later(format!("response_url answered {status}")))
    } else {
        // Expired (30 minutes, 5 uses) or refused: no retry can mend it.
        Err(JobError::dead(format!("response_url answered {status}")))
    }
}

/// An ephemeral answer that leaves the message clicked as it is.
pub fn ephemeral(text: &str) -> serde_json::Value {
    json!({"response_type": "ephemeral", "replace_original": false, "text": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies() -> Replies {
        Replies::new(
            "http://127.0.0.1:4000/api",
            vec![SalesforceId::parse("00D5g000004ABCdEAO").unwrap()],
            Duration::from_secs(1),
        )
    }

    #[test]
    fn only_slack_hosts_and_the_api_base_are_called() {
        let replies = replies();
        for ok in [
            "https://hooks.slack.com/actions/T1/1/x",
            "http://127.0.0.1:4000/_emulator/response/a",
        ] {
            assert!(replies.permits(&Url::parse(ok).unwrap()), "{ok}");
        }
        for refused in [
            "http://hooks.slack.com/actions/T1/1/x",
            "https://hooks.slack.com.evil.test/x",
            "http://127.0.0.1:4001/_emulator/response/a",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(!replies.permits(&Url::parse(refused).unwrap()), "{refused}");
        }
    }
}
