//! Playing the Slack user against sfrelay: the emulator sends the clicks, picks, submissions
//! and closes, signed with the app's secret (`/_emulator/interact`); and what it holds of
//! modals, ephemeral messages and `response_url` answers.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{SLACK_TOKEN, Slack, eventually};

/// What `/_emulator/interact` reports of one interaction it sent.
#[derive(Debug, Clone, Deserialize)]
pub struct InteractAnswer {
    /// sfrelay's HTTP status.
    pub status: u16,
    /// sfrelay's body: JSON when it is JSON, else the text ("" when empty).
    pub body: Value,
    pub elapsed_ms: u64,
    /// The trigger the interaction carried (none for a close).
    pub trigger_id: Option<String>,
    /// The click's `response_url` (clicks only).
    pub response_url: Option<String>,
    /// The payload as sent.
    pub payload: Value,
    /// For a submission: what became of the modal (`{"outcome": "closed"}` …).
    #[serde(default)]
    pub applied: Value,
}

impl InteractAnswer {
    /// The id of the click's `response_url`, for [`Slack::responses`].
    pub fn response_id(&self) -> String {
        self.response_url
            .as_deref()
            .and_then(|url| url.rsplit('/').next())
            .expect("a click's response_url")
            .to_owned()
    }
}

impl Slack {
    /// Sends one interaction as the emulated person; panics when the emulator refuses to
    /// build it (unknown message, action, view…), naming why.
    pub async fn interact(&self, request: Value) -> InteractAnswer {
        let response = self
            .http
            .post(format!("{}/_emulator/interact", self.url))
            .json(&request)
            .send()
            .await
            .expect("emulator answers");
        let status = response.status();
        let body: Value = response.json().await.expect("emulator JSON");
        assert!(status.is_success(), "interact {request}: {status} {body}");
        serde_json::from_value(body).expect("an interact answer")
    }

    /// `user` clicks the button `action_id` on the message `ts` in `channel`; signed with
    /// `secret` and sent to `url` (sfrelay's `/slack/interactions`).
    pub async fn click(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        channel: &str,
        ts: &str,
        action_id: &str,
    ) -> InteractAnswer {
        self.interact(json!({
            "url": url, "signing_secret": secret, "type": "block_actions",
            "user": user, "channel": channel, "ts": ts, "action_id": action_id,
        }))
        .await
    }

    /// `user` picks the option whose value is `option` in the select `action_id`.
    #[allow(clippy::too_many_arguments)]
    pub async fn choose(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        channel: &str,
        ts: &str,
        action_id: &str,
        option: &str,
    ) -> InteractAnswer {
        self.interact(json!({
            "url": url, "signing_secret": secret, "type": "block_actions",
            "user": user, "channel": channel, "ts": ts, "action_id": action_id, "option": option,
        }))
        .await
    }

    /// `user` submits their open modal `view_id` with `values`
    /// (`{block_id: {action_id: "text, date or option value"}}`).
    pub async fn submit(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        view_id: &str,
        values: Value,
    ) -> InteractAnswer {
        self.interact(json!({
            "url": url, "signing_secret": secret, "type": "view_submission",
            "user": user, "view_id": view_id, "values": values,
        }))
        .await
    }

    /// `user` closes their open modal `view_id`.
    pub async fn close_view(
        &self,
        url: &str,
        secret: &str,
        user: &str,
        view_id: &str,
    ) -> InteractAnswer {
        self.interact(json!({
            "url": url, "signing_secret": secret, "type": "view_closed",
            "user": user, "view_id": view_id,
        }))
        .await
    }

    /// A fresh `trigger_id` for `user`, as if they had just clicked.
    pub async fn trigger(&self, user: &str) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/_emulator/triggers", self.url))
            .json(&json!({"user": user}))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("emulator JSON");
        answer["trigger_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no trigger for {user}: {answer}"))
            .to_owned()
    }

    /// Posts a message as the bot (as sfrelay would) and returns its ts.
    pub async fn post_card(&self, channel: &str, text: &str, blocks: Value) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/api/chat.postMessage", self.url))
            .bearer_auth(SLACK_TOKEN)
            .json(&json!({"channel": channel, "text": text, "blocks": blocks}))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("emulator JSON");
        answer["ts"]
            .as_str()
            .unwrap_or_else(|| panic!("post to {channel}: {answer}"))
            .to_owned()
    }

    /// Adds (or replaces) a workspace user: `{"id", "email"?, "name"?, "deleted"?, "is_bot"?}`.
    pub async fn add_user(&self, user: Value) {
        let status = self
            .http
            .post(format!("{}/_emulator/users", self.url))
            .json(&user)
            .send()
            .await
            .expect("emulator answers")
            .status();
        assert!(status.is_success(), "add user {user}: {status}");
    }

    fn list(value: Value, what: &str) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            other => panic!("{what}: {other}"),
        }
    }

    /// Every modal opened, in order, closed ones too.
    pub async fn views(&self) -> Vec<Value> {
        Slack::list(self.get("/_emulator/views").await, "views")
    }

    /// Every ephemeral message, in order (by `chat.postEphemeral` or through a `response_url`).
    pub async fn ephemerals(&self) -> Vec<Value> {
        Slack::list(self.get("/_emulator/ephemerals").await, "ephemerals")
    }

    /// What the `response_url` with this id received, in order.
    pub async fn responses(&self, id: &str) -> Vec<Value> {
        Slack::list(
            self.get(&format!("/_emulator/response/{id}")).await,
            "responses",
        )
    }

    /// Waits until the `response_url` `id` has received at least `n` answers.
    pub async fn wait_for_responses(&self, id: &str, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} answer(s) at response_url {id}"),
            Duration::from_secs(20),
            || async {
                let bodies = self.responses(id).await;
                (bodies.len() >= n).then_some(bodies)
            },
        )
        .await
    }

    /// Waits until `user` has been shown at least `n` ephemeral messages.
    pub async fn wait_for_ephemerals(&self, user: &str, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} ephemeral message(s) for {user}"),
            Duration::from_secs(20),
            || async {
                let mine: Vec<Value> = self
                    .ephemerals()
                    .await
                    .into_iter()
                    .filter(|e| e["user"] == user)
                    .collect();
                (mine.len() >= n).then_some(mine)
            },
        )
        .await
    }
}
