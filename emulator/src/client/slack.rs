//! [`SlackControl`]: the Slack emulator's slash commands, events, unfurls and Home tab.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ControlError, json_of};

/// What `POST /_emulator/command` reports of a command it sent.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandAnswer {
    /// The app's HTTP status.
    pub status: u16,
    /// The app's body: JSON when it is JSON, else the text ("" when empty).
    pub body: Value,
    pub elapsed_ms: u64,
    /// Whether the app answered within Slack's 3 seconds.
    pub within_3s: bool,
    pub trigger_id: String,
    /// The command's `response_url`, served by the emulator.
    pub response_url: String,
    /// Its id, for [`SlackControl::responses`].
    pub response_id: String,
    /// The form fields as sent.
    pub payload: Value,
    /// What Slack showed of the answer (`{"outcome": "ephemeral"|"in_channel"|"none"|…}`).
    pub applied: Value,
}

/// What `POST /_emulator/event` reports of one delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct EventAnswer {
    pub status: u16,
    pub body: Value,
    pub elapsed_ms: u64,
    pub within_3s: bool,
    /// The envelope's `event_id` (retries carry the same).
    pub event_id: String,
    /// 0 for the first delivery.
    pub retry_num: u32,
    /// The body as sent.
    pub payload: Value,
    /// For a `url_verification`: whether the app answered the challenge.
    #[serde(default)]
    pub verified: Option<bool>,
}

/// A client of the Slack emulator's control API.
#[derive(Debug, Clone)]
pub struct SlackControl {
    base: String,
    http: reqwest::Client,
}

impl SlackControl {
    /// A client of the emulator at `base_url` (`http://127.0.0.1:PORT`).
    pub fn new(base_url: impl Into<String>) -> Self {
        SlackControl {
            base: base_url.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ControlError> {
        let sent = self.http.get(format!("{}{path}", self.base)).send().await;
        json_of(path, sent).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ControlError> {
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        json_of(path, sent).await
    }

    /// Sends a slash command as `/_emulator/command` takes it (any of its fields).
    pub async fn send_command(&self, request: Value) -> Result<CommandAnswer, ControlError> {
        self.post("/_emulator/command", &request).await
    }

    /// `user` types `command text` in `channel`; signed with `secret` and sent to `url`
    /// (sfrelay's `/slack/commands`).
    pub async fn command(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        channel: &str,
        command: &str,
        text: &str,
    ) -> Result<CommandAnswer, ControlError> {
        self.send_command(json!({
            "url": url, "signing_secret": secret, "user": user, "channel": channel,
            "command": command, "text": text,
        }))
        .await
    }

    /// Sends an Events API callback as `/_emulator/event` takes it (any of its fields).
    pub async fn send_event(&self, request: Value) -> Result<EventAnswer, ControlError> {
        self.post("/_emulator/event", &request).await
    }

    /// The `url_verification` Slack sends when the request URL is set.
    pub async fn url_verification(
        &self,
        url: &str,
        secret: &str,
        challenge: &str,
    ) -> Result<EventAnswer, ControlError> {
        self.send_event(json!({"url": url, "signing_secret": secret,
                               "type": "url_verification", "challenge": challenge}))
            .await
    }

    /// `user` posts a message holding `links` in `channel` (`link_shared`, source
    /// `conversations_history`).
    pub async fn link_shared(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        channel: &str,
        links: &[&str],
    ) -> Result<EventAnswer, ControlError> {
        self.send_event(
            json!({"url": url, "signing_secret": secret, "type": "link_shared",
                               "user": user, "channel": channel, "links": links}),
        )
        .await
    }

    /// `user` types `links` in the message composer (`link_shared`, source `composer`).
    pub async fn link_typed(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        links: &[&str],
    ) -> Result<EventAnswer, ControlError> {
        self.send_event(
            json!({"url": url, "signing_secret": secret, "type": "link_shared",
                               "user": user, "source": "composer", "links": links}),
        )
        .await
    }

    /// `user` opens the app's Home tab (`app_home_opened`).
    pub async fn app_home_opened(
        &self,
        url: &str,
        secret: &str,
        user: &str,
    ) -> Result<EventAnswer, ControlError> {
        self.send_event(json!({"url": url, "signing_secret": secret,
                               "type": "app_home_opened", "user": user}))
            .await
    }

    /// Sends event `event_id` again as Slack's retry number `retry_num` (1 to 3).
    pub async fn retry_event(
        &self,
        url: &str,
        secret: &str,
        event_id: &str,
        retry_num: u32,
        reason: &str,
    ) -> Result<EventAnswer, ControlError> {
        self.send_event(
            json!({"url": url, "signing_secret": secret, "retry_of": event_id,
                               "retry_num": retry_num, "retry_reason": reason}),
        )
        .await
    }

    /// What the `response_url` with this id received, in order.
    pub async fn responses(&self, response_id: &str) -> Result<Vec<Value>, ControlError> {
        self.get(&format!("/_emulator/response/{response_id}"))
            .await
    }

    /// Every command sent, with the app's answers.
    pub async fn commands(&self) -> Result<Vec<Value>, ControlError> {
        self.get("/_emulator/commands").await
    }

    /// Every event sent, each with its deliveries.
    pub async fn events(&self) -> Result<Vec<Value>, ControlError> {
        self.get("/_emulator/events").await
    }

    /// Every `chat.unfurl` that succeeded, in order.
    pub async fn unfurls(&self) -> Result<Vec<Value>, ControlError> {
        self.get("/_emulator/unfurls").await
    }

    /// `user`'s current Home view as the API shows it; `None` when none was published.
    pub async fn home_view(&self, user: &str) -> Result<Option<Value>, ControlError> {
        match self.get::<Value>(&format!("/_emulator/home/{user}")).await {
            Ok(current) => Ok(Some(current["view"].clone())),
            Err(ControlError::Refused { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Every Home tab publish, in order.
    pub async fn home_publishes(&self) -> Result<Vec<Value>, ControlError> {
        let home: Value = self.get("/_emulator/home").await?;
        Ok(home["publishes"].as_array().cloned().unwrap_or_default())
    }

    /// Turns the app's Home tab on or off (`views.publish` answers `not_enabled` when off).
    pub async fn set_home_tab(&self, enabled: bool) -> Result<(), ControlError> {
        self.post::<Value>("/_emulator/home", &json!({"enabled": enabled}))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[path = "slack_tests.rs"]
mod tests;
