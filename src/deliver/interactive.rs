//! The Slack calls of interactive cards, through the workspace's rate limiter like every
//! other call: opening modals, ephemeral answers, and who a clicking user is.

use serde_json::Value;

use super::{DeliverError, Deliverer};

impl Deliverer {
    /// `views.open` with a click's `trigger_id`; answers the view's Id.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<String, DeliverError> {
        self.call("views.open", None, || {
            self.slack.open_view(trigger_id, view)
        })
        .await
    }

    /// `chat.postEphemeral`: `text` shown to `user` alone in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), DeliverError> {
        self.call("chat.postEphemeral", Some(channel), || {
            self.slack.post_ephemeral(channel, user, text, &[])
        })
        .await
    }

    /// `chat.unfurl` (see [`crate::slack::surfaces::unfurl_body`]).
    pub async fn unfurl(&self, body: &Value) -> Result<(), DeliverError> {
        self.call("chat.unfurl", None, || self.slack.unfurl(body))
            .await
    }

    /// `views.publish`: `user`'s Home tab.
    pub async fn publish_view(&self, user: &str, view: &Value) -> Result<(), DeliverError> {
        self.call("views.publish", None, || {
            self.slack.publish_view(user, view)
        })
        .await
    }

    /// The verified email of a Slack user (`users.info`, cached), when their profile shows one.
    pub async fn user_email(&self, user: &str) -> Result<Option<String>, DeliverError> {
        Ok(self.resolver.email_of(user).await?)
    }
}
