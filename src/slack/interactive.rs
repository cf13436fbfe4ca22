//! The Web API calls an interactive card needs: modals (`views.open` from a click's trigger,
//! `views.update` to fill it later), messages only the clicker sees (`chat.postEphemeral`), and
//! the clicker's verified e-mail (`users.info`), which is how a Slack user is matched to a
//! Salesforce user. The log sink answers them plausibly without calling Slack.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::SlackClient;
use super::error::SlackError;
use super::sink::SlackSink;

/// The view id the log sink answers `views.open` with.
pub const DRY_RUN_VIEW_ID: &str = "V0DRYRUN00";

#[derive(Deserialize)]
struct Opened {
    view: ViewRef,
}

#[derive(Deserialize)]
struct ViewRef {
    id: String,
}

#[derive(Deserialize)]
struct UserInfo {
    user: UserRecord,
}

#[derive(Deserialize)]
struct UserRecord {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    profile: Profile,
}

#[derive(Default, Deserialize)]
struct Profile {
    #[serde(default)]
    email: Option<String>,
}

impl UserRecord {
    /// The address to match on: none for deactivated accounts and bots, or when Slack shows
    /// none (no `users:read.email`, or the person has no address).
    fn email(self) -> Option<String> {
        if self.deleted || self.is_bot {
            return None;
        }
        self.profile
            .email
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
    }
}

/// The body of `chat.postEphemeral`; `blocks` only when there are some.
fn ephemeral_body(channel: &str, user: &str, text: &str, blocks: &[Value]) -> Value {
    let mut body = json!({"channel": channel, "user": user, "text": text});
    if !blocks.is_empty() {
        body["blocks"] = Value::Array(blocks.to_vec());
    }
    body
}

impl SlackClient {
    /// `views.open` with a click's `trigger_id` (good once, for about 3 s); the view's id.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<String, SlackError> {
        let opened: Opened = self
            .call(
                "views.open",
                &json!({"trigger_id": trigger_id, "view": view}),
            )
            .await?;
        Ok(opened.view.id)
    }

    /// `views.update`: replaces the modal `view_id` with `view`.
    pub async fn update_view(&self, view_id: &str, view: &Value) -> Result<(), SlackError> {
        self.call::<Value>("views.update", &json!({"view_id": view_id, "view": view}))
            .await
            .map(|_| ())
    }

    /// `chat.postEphemeral`: a message in `channel` that only `user` sees.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<(), SlackError> {
        self.call::<Value>(
            "chat.postEphemeral",
            &ephemeral_body(channel, user, text, blocks),
        )
        .await
        .map(|_| ())
    }

    /// `users.info`'s `profile.email`; `None` when there is none, or the account is
    /// deactivated or a bot.
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, SlackError> {
        let info: UserInfo = self.call("users.info", &json!({"user": user})).await?;
        Ok(info.user.email())
    }
}

impl SlackSink {
    /// `views.open`, or in the log: logged, answered with [`DRY_RUN_VIEW_ID`].
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<String, SlackError> {
        match self {
            SlackSink::Api(client) => client.open_view(trigger_id, view).await,
            SlackSink::Log => {
                tracing::info!(view = %view, "SLACK_BOT_TOKEN is not set: would open this modal");
                Ok(DRY_RUN_VIEW_ID.to_owned())
            }
        }
    }

    /// `views.update`, or in the log: logged.
    pub async fn update_view(&self, view_id: &str, view: &Value) -> Result<(), SlackError> {
        match self {
            SlackSink::Api(client) => client.update_view(view_id, view).await,
            SlackSink::Log => {
                tracing::info!(%view_id, view = %view, "SLACK_BOT_TOKEN is not set: would update this modal");
                Ok(())
            }
        }
    }

    /// `chat.postEphemeral`, or in the log: logged.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<(), SlackError> {
        match self {
            SlackSink::Api(client) => client.post_ephemeral(channel, user, text, blocks).await,
            SlackSink::Log => {
                let blocks = serde_json::to_string(blocks).unwrap_or_default();
                tracing::info!(
                    action = "ephemeral",
                    %channel,
                    %user,
                    %text,
                    %blocks,
                    "SLACK_BOT_TOKEN is not set: logging the message instead of posting it"
                );
                Ok(())
            }
        }
    }

    /// `users.info`'s e-mail, or in the log: nobody's (no Slack to ask).
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, SlackError> {
        match self {
            SlackSink::Api(client) => client.user_email(user).await,
            SlackSink::Log => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: Value) -> UserRecord {
        serde_json::from_value::<UserInfo>(json!({"user": json}))
            .unwrap()
            .user
    }

    #[test]
    fn only_a_live_persons_address_counts() {
        let email = |json| record(json).email();
        assert_eq!(
            email(json!({"id": "U1", "profile": {"email": " dana@example.com "}})),
            Some("dana@example.com".into())
        );
        assert_eq!(email(json!({"id": "U1", "profile": {}})), None);
        assert_eq!(email(json!({"id": "U1"})), None);
        assert_eq!(email(json!({"id": "U1", "profile": {"email": ""}})), None);
        assert_eq!(
            email(json!({"id": "U1", "deleted": true, "profile": {"email": "a@b.c"}})),
            None
        );
        assert_eq!(
            email(json!({"id": "B1", "is_bot": true, "profile": {"email": "a@b.c"}})),
            None
        );
    }

    #[test]
    fn an_ephemeral_sends_blocks_only_when_there_are_some() {
        let plain = ephemeral_body("C1", "U1", "hi", &[]);
        assert_eq!(plain, json!({"channel": "C1", "user": "U1", "text": "hi"}));
        let divider = [json!({"type": "divider"})];
        let with = ephemeral_body("C1", "U1", "hi", &divider);
        assert_eq!(with["blocks"], json!([{"type": "divider"}]));
    }

    #[tokio::test]
    async fn the_log_sink_answers_without_slack() {
        let sink = SlackSink::Log;
        let view = json!({"type": "modal"});
        assert_eq!(
            sink.open_view("1.2.3", &view).await.unwrap(),
            DRY_RUN_VIEW_ID
        );
        assert!(sink.update_view(DRY_RUN_VIEW_ID, &view).await.is_ok());
        assert!(sink.post_ephemeral("C1", "U1", "hi", &[]).await.is_ok());
        assert_eq!(sink.user_email("U1").await.unwrap(), None);
    }
}
