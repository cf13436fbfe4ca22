//! `POST /slack/commands`: the slash command (`[slack] command`, `/sf` by default). The form
//! is decoded only after its signature verified. `help` (and anything not understood) is
//! answered in the acknowledgement itself; everything else is a queued job that answers
//! through the command's `response_url`, so the 3-second limit never waits on Salesforce.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{InboundError, InboundState, Verified, answer, queue_for_person, verify};
use crate::event::SalesforceId;
use crate::keys::DedupeKey;
use crate::surfaces::ask::Ask;
use crate::task::Task;

/// What a job needs of one verified slash command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlashCommand {
    /// Whose signing secret verified it: `None` for the default app, else that org's app.
    pub app_org: Option<SalesforceId>,
    pub api_app_id: Option<String>,
    pub team: String,
    pub user: String,
    pub channel: Option<String>,
    pub command: String,
    pub text: String,
    pub response_url: String,
    pub trigger_id: Option<String>,
}

impl SlashCommand {
    /// Reads Slack's form; a missing field is named.
    pub fn from_form(body: &[u8], app_org: Option<SalesforceId>) -> Result<Self, String> {
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
            format!("the body is not a form (application/x-www-form-urlencoded): {e}")
        })?;
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &str| get(name).ok_or_else(|| format!("the form has no {name}"));
        Ok(SlashCommand {
            app_org,
            api_app_id: get("api_app_id"),
            team: required("team_id")?,
            user: required("user_id")?,
            channel: get("channel_id"),
            command: required("command")?,
            text: get("text").unwrap_or_default(),
            response_url: required("response_url")?,
            trigger_id: get("trigger_id"),
        })
    }
}

/// `POST /slack/commands`.
pub async fn post_commands(
    State(state): State<InboundState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    answer("command", accept(&state, &headers, body).await)
}

async fn accept(
    state: &InboundState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<serde_json::Value>, InboundError> {
    let Some(Verified { body, app_org }) = verify(state, headers, body).await? else {
        return Ok(None);
    };
    let command = SlashCommand::from_form(&body, app_org).map_err(InboundError::Invalid)?;
    let name = &state.config.slack.command;
    if &command.command != name {
        metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "other_command").increment(1);
        return Ok(Some(crate::surfaces::ask::ephemeral(&format!(
            "sfrelay answers {name} here, not {}: check the app's slash command settings.",
            command.command
        ))));
    }
    let ask = Ask::parse(&command.text);
    if let Some(reply) = crate::surfaces::ask::immediate(&ask, name) {
        metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "answered").increment(1);
        return Ok(Some(reply));
    }
    // Slack never retries a command; the trigger id still keys it, so a replay of the same
    // request queues nothing twice.
    let key = command
        .trigger_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let acknowledgement = ask.acknowledgement();
    let task = Task::Command {
        command: Box::new(command),
    };
    queue_for_person(
        state,
        DedupeKey::command(&key),
        &task,
        state.config.dedupe_window,
    )
    .await?;
    metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "accepted").increment(1);
    Ok(Some(
        json!({"response_type": "ephemeral", "text": acknowledgement}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_read_and_a_missing_field_is_named() {
        let body = b"token=x&team_id=T1&user_id=U1&channel_id=C1&command=%2Fsf&text=find+acme&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=t.1&api_app_id=A1";
        let command = SlashCommand::from_form(body, None).unwrap();
        assert_eq!(command.text, "find acme");
        assert_eq!(command.command, "/sf");
        assert_eq!(command.trigger_id.as_deref(), Some("t.1"));
        let e = SlashCommand::from_form(b"team_id=T1&command=%2Fsf", None).unwrap_err();
        assert!(e.contains("user_id"), "{e}");
    }
}
