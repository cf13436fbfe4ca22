//! Where messages go: the Slack API, or the log when no bot token is set (the embedded
//! default, so a newcomer sees what would be posted without a workspace).

use super::client::{ChannelPage, HistoryPage, Message, Posted, SlackClient};
use super::error::SlackError;
use crate::config::SlackConfig;

/// Where messages go: the Slack API, or the log when no token is configured.
#[derive(Debug, Clone)]
pub enum SlackSink {
    Api(SlackClient),
    Log,
}

impl SlackSink {
    /// Builds the sink the configuration asks for.
    pub fn from_config(config: &SlackConfig) -> Result<Self, SlackError> {
        match &config.bot_token {
            Some(token) => Ok(SlackSink::Api(SlackClient::new(
                &config.api_base,
                token.clone(),
                config.timeout,
            )?)),
            None => Ok(SlackSink::Log),
        }
    }

    /// Whether messages only go to the log.
    pub fn is_log(&self) -> bool {
        matches!(self, SlackSink::Log)
    }

    pub async fn update_message(&self, ts: &str, message: &Message) -> Result<Posted, SlackError> {
        match self {
            SlackSink::Api(client) => client.update_message(ts, message).await,
            SlackSink::Log => {
                log_message("update", message);
                Ok(Posted {
                    channel: message.channel.clone(),
                    ts: ts.to_string(),
                })
            }
        }
    }

    pub async fn list_channels(&self, cursor: Option<&str>) -> Result<ChannelPage, SlackError> {
        match self {
            SlackSink::Api(client) => client.list_channels(cursor).await,
            SlackSink::Log => Ok(ChannelPage {
                channels: Vec::new(),
                response_metadata: None,
            }),
        }
    }

    pub async fn history(
        &self,
        channel: &str,
        oldest: &str,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, SlackError> {
        match self {
            SlackSink::Api(client) => client.history(channel, oldest, cursor).await,
            SlackSink::Log => Ok(HistoryPage {
                messages: Vec::new(),
                has_more: false,
                response_metadata: None,
            }),
        }
    }

    pub async fn create_private_channel(&self, name: &str) -> Result<String, SlackError> {
        match self {
            SlackSink::Api(client) => client.create_private_channel(name).await,
            SlackSink::Log => {
                tracing::info!(%name, "SLACK_BOT_TOKEN is not set: would create this private channel");
                Ok(format!("#{name}"))
            }
        }
    }

    pub async fn invite(&self, channel: &str, users: &[String]) -> Result<(), SlackError> {
        match self {
            SlackSink::Api(client) => client.invite(channel, users).await,
            SlackSink::Log => {
                tracing::info!(%channel, ?users, "SLACK_BOT_TOKEN is not set: would invite");
                Ok(())
            }
        }
    }

    pub async fn lookup_user_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        match self {
            SlackSink::Api(client) => client.lookup_user_by_email(email).await,
            SlackSink::Log => Ok(None),
        }
    }

    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        match self {
            SlackSink::Api(client) => client.open_dm(user).await,
            SlackSink::Log => Ok(format!("DM:{user}")),
        }
    }

    pub async fn post_message(&self, message: &Message) -> Result<Posted, SlackError> {
        match self {
            SlackSink::Api(client) => client.post_message(message).await,
            SlackSink::Log => {
                log_message("post", message);
                Ok(Posted {
                    channel: message.channel.clone(),
                    ts: format!("{:.6}", chrono::Utc::now().timestamp_micros() as f64 / 1e6),
                })
            }
        }
    }
}

/// What the log sink prints instead of calling Slack.
fn log_message(what: &str, message: &Message) {
    let blocks = serde_json::to_string(&message.blocks).unwrap_or_default();
    tracing::info!(
        action = what,
        channel = %message.channel,
        thread_ts = message.thread_ts.as_deref().unwrap_or(""),
        text = %message.text,
        blocks = %blocks,
        "SLACK_BOT_TOKEN is not set: logging the message instead of posting it"
    );
}
