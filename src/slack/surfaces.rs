//! The Web API calls of the surfaces a person opens: link unfurls (`chat.unfurl`, Tier 3) and
//! the Home tab (`views.publish`, Tier 4). The log sink logs them instead.

use serde_json::{Value, json};

use super::client::SlackClient;
use super::error::SlackError;
use super::sink::SlackSink;

/// Where an unfurl goes: the message that holds the links, or the composer that holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnfurlTarget {
    Message { channel: String, ts: String },
    Composer { unfurl_id: String, source: String },
}

/// The body of `chat.unfurl`: `unfurls` maps each exact URL Slack sent to its attachment.
pub fn unfurl_body(target: &UnfurlTarget, unfurls: &Value, extra: &Value) -> Value {
    let mut body = match target {
        UnfurlTarget::Message { channel, ts } => json!({"channel": channel, "ts": ts}),
        UnfurlTarget::Composer { unfurl_id, source } => {
            json!({"unfurl_id": unfurl_id, "source": source})
        }
    };
    body["unfurls"] = Value::String(unfurls.to_string());
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v.clone();
        }
    }
    body
}

impl SlackClient {
    pub async fn unfurl(&self, body: &Value) -> Result<(), SlackError> {
        self.call::<Value>("chat.unfurl", body).await.map(|_| ())
    }

    pub async fn publish_view(&self, user: &str, view: &Value) -> Result<(), SlackError> {
        self.call::<Value>("views.publish", &json!({"user_id": user, "view": view}))
            .await
            .map(|_| ())
    }
}

impl SlackSink {
    /// `chat.unfurl`, or in the log: logged.
    pub async fn unfurl(&self, body: &Value) -> Result<(), SlackError> {
        match self {
            SlackSink::Api(client) => client.unfurl(body).await,
            SlackSink::Log => {
                tracing::info!(%body, "SLACK_BOT_TOKEN is not set: would unfurl");
                Ok(())
            }
        }
    }

    /// `views.publish`, or in the log: logged.
    pub async fn publish_view(&self, user: &str, view: &Value) -> Result<(), SlackError> {
        match self {
            SlackSink::Api(client) => client.publish_view(user, view).await,
            SlackSink::Log => {
                tracing::info!(%user, %view, "SLACK_BOT_TOKEN is not set: would publish this Home view");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfurl_names_its_target_and_sends_the_map_as_json_text() {
        let unfurls = json!({"https://acme.my.salesforce.com/006000000000001AAA": {"blocks": []}});
        let body = unfurl_body(
            &UnfurlTarget::Composer {
                unfurl_id: "Uf1".into(),
                source: "composer".into(),
            },
            &unfurls,
            &json!({"user_auth_required": true}),
        );
        assert_eq!(body["unfurl_id"], "Uf1");
        assert_eq!(body["user_auth_required"], true);
        let sent: Value = serde_json::from_str(body["unfurls"].as_str().unwrap()).unwrap();
        assert_eq!(sent, unfurls);
    }
}
