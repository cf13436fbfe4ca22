//! Answering a verified Slack interaction. No button action is declared by any route or
//! template yet, so a click is answered, ephemerally through its `response_url`, with why
//! nothing happens: the button is not valid, or its action is not available. The person always
//! hears back.

use std::time::Duration;

use reqwest::Url;
use serde_json::json;

use super::{JobError, Jobs};
use crate::event::SalesforceId;
use crate::slack::inbound::{ButtonValue, Interaction};

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

    /// Whether `url` is on an allowed origin (scheme, host and port).
    fn permits(&self, url: &Url) -> bool {
        self.allowed.iter().any(|a| {
            a.scheme() == url.scheme()
                && a.host_str() == url.host_str()
                && a.port_or_known_default() == url.port_or_known_default()
        })
    }
}

/// What the person is told about a click.
fn answer_to(replies: &Replies, interaction: &Interaction) -> String {
    let Some(value) = interaction.value.as_deref() else {
        return "This button is not valid: it carries no value.".into();
    };
    match ButtonValue::parse(value) {
        Err(why) => format!("This button is not valid ({why})."),
        Ok(button) if !replies.orgs.contains(&button.org) => format!(
            "This button is not valid (org {} is not one sfrelay serves).",
            button.org
        ),
        Ok(button) => format!(
            "The action \"{}\" on {} {} is not available.",
            button.action, button.object, button.record
        ),
    }
}

pub(super) async fn run(jobs: &Jobs, interaction: &Interaction) -> Result<(), JobError> {
    if interaction.kind != "block_actions" {
        // sfrelay opens no modal yet, so a submission or close has nothing to act on.
        tracing::info!(kind = %interaction.kind, "Slack interaction needs no answer");
        return Ok(());
    }
    let replies = &jobs.replies;
    let text = answer_to(replies, interaction);
    let url = interaction
        .response_url
        .as_deref()
        .ok_or_else(|| JobError::dead("the click has no response_url to answer".into()))?;
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
    let body = json!({"response_type": "ephemeral", "replace_original": false, "text": text});
    let response = replies
        .http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| JobError::later(format!("response_url: {e}")))?;
    let status = response.status();
    if status.is_success() {
        tracing::info!(user = %interaction.user, "Slack interaction answered");
        Ok(())
    } else if status.is_server_error() || status.as_u16() == 429 {
        Err(JobError::later(format!("response_url answered {status}")))
    } else {
        // Expired (30 minutes, 5 uses) or refused: no retry can mend it.
        Err(JobError::dead(format!("response_url answered {status}")))
    }
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

    #[test]
    fn a_button_for_an_org_not_served_is_not_valid() {
        let interaction = Interaction {
            kind: "block_actions".into(),
            app_org: None,
            api_app_id: None,
            team: None,
            user: "U1".into(),
            action_id: Some("take".into()),
            value: Some("sfrelay:v1:00D5g000001EcDsEAK:Case:5005g00000AbCdEAAV:take".into()),
            response_url: None,
            trigger_id: None,
            channel: None,
            message_ts: None,
            callback_id: None,
        };
        assert!(answer_to(&replies(), &interaction).contains("not one sfrelay serves"));
    }
}
