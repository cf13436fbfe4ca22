//! The Slack Web API over one pooled HTTP client, and the types of its answers.

use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{CREDENTIAL_CODES, SlackError};
use crate::config::Secret;

/// A message to post: Block Kit plus the plain-text fallback Slack shows in notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub channel: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    #[serde(default)]
    pub unfurl_links: bool,
    /// Slack message metadata: sfrelay marks each post with its ledger key, so after a crash
    /// it can tell from the channel's history whether the post already happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl Message {
    /// A top-level message with no thread, unfurls or metadata (the post adds its own).
    pub fn new(channel: String, text: String, blocks: Vec<serde_json::Value>) -> Self {
        Message {
            channel,
            text,
            blocks,
            thread_ts: None,
            unfurl_links: false,
            metadata: None,
        }
    }
}

/// Where a posted message landed; `ts` is its id for threads and updates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

/// One page of `conversations.history`.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryPage {
    #[serde(default)]
    pub messages: Vec<HistoryMessage>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub response_metadata: Option<ResponseMetadata>,
}

/// A message as history shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryMessage {
    pub ts: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
}

/// One page of channels from `conversations.list`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelPage {
    #[serde(default)]
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub response_metadata: Option<ResponseMetadata>,
}

impl ChannelPage {
    /// The cursor of the next page, if there is one.
    pub fn next_cursor(&self) -> Option<&str> {
        self.response_metadata
            .as_ref()
            .map(|m| m.next_cursor.as_str())
            .filter(|c| !c.is_empty())
    }
}

/// A channel's Id and name.
#[derive(Debug, Clone, Deserialize)]
pub struct Channel {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// Slack's paging information.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponseMetadata {
    #[serde(default)]
    pub next_cursor: String,
}

/// The bot identity `auth.test` reports.
#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub user_id: String,
    /// The scopes the token holds, from Slack's `X-OAuth-Scopes` header, when sent.
    #[serde(skip)]
    pub scopes: Option<Vec<String>>,
}

/// The Slack Web API over one pooled HTTP client.
#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: Secret<String>,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl SlackClient {
    pub fn new(base: &str, token: Secret<String>, timeout: Duration) -> Result<Self, SlackError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("sfrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SlackError::Transport(e.to_string()))?;
        Ok(SlackClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// Calls `method` with a JSON body; `ok: false` and HTTP failures become `SlackError`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &impl Serialize,
    ) -> Result<T, SlackError> {
        let result = match self.send(method, body).await {
            Ok((_, bytes)) => decode(&bytes),
            Err(e) => Err(e),
        };
        count(method, result)
    }

    /// Sends one call; answers the headers and body of a 2xx answer.
    async fn send(
        &self,
        method: &str,
        body: &impl Serialize,
    ) -> Result<(reqwest::header::HeaderMap, bytes::Bytes), SlackError> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Transport(without_url(e)))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SlackError::RateLimited {
                retry_after: retry_after(response.headers()),
            });
        }
        if !status.is_success() {
            return Err(SlackError::Http {
                status: status.as_u16(),
            });
        }
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SlackError::Transport(without_url(e)))?;
        Ok((headers, bytes))
    }

    /// `chat.postMessage`.
    pub async fn post_message(&self, message: &Message) -> Result<Posted, SlackError> {
        self.call("chat.postMessage", message).await
    }

    /// `chat.update`: replaces a message's text and blocks (the blocks must be sent again).
    pub async fn update_message(&self, ts: &str, message: &Message) -> Result<Posted, SlackError> {
        let mut body =
            serde_json::to_value(message).map_err(|e| SlackError::Decode(e.to_string()))?;
        body["ts"] = ts.into();
        self.call("chat.update", &body).await
    }

    /// One page of `conversations.list` (public and private channels the bot can see).
    pub async fn list_channels(&self, cursor: Option<&str>) -> Result<ChannelPage, SlackError> {
        let mut body = serde_json::json!({
            "types": "public_channel,private_channel",
            "exclude_archived": true,
            "limit": 999,
        });
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            body["cursor"] = cursor.into();
        }
        self.call("conversations.list", &body).await
    }

    /// One page of a channel's messages since `oldest` (a Slack ts), newest first, with
    /// their metadata.
    pub async fn history(
        &self,
        channel: &str,
        oldest: &str,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, SlackError> {
        let mut body = serde_json::json!({
            "channel": channel,
            "oldest": oldest,
            "limit": 200,
            "include_all_metadata": true,
        });
        if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
            body["cursor"] = cursor.into();
        }
        self.call("conversations.history", &body).await
    }

    /// `conversations.create` of a private channel; returns its Id.
    pub async fn create_private_channel(&self, name: &str) -> Result<String, SlackError> {
        #[derive(Deserialize)]
        struct Created {
            channel: Channel,
        }
        let created: Created = self
            .call(
                "conversations.create",
                &serde_json::json!({ "name": name, "is_private": true }),
            )
            .await?;
        Ok(created.channel.id)
    }

    /// `conversations.invite` of up to 100 users (Slack's documented limits disagree; 100 is
    /// the safe side).
    pub async fn invite(&self, channel: &str, users: &[String]) -> Result<(), SlackError> {
        self.call::<serde_json::Value>(
            "conversations.invite",
            &serde_json::json!({ "channel": channel, "users": users.join(",") }),
        )
        .await
        .map(|_| ())
    }

    /// `users.lookupByEmail`; `Ok(None)` when Slack knows no such user.
    pub async fn lookup_user_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        #[derive(Deserialize)]
        struct Found {
            user: UserRef,
        }
        #[derive(Deserialize)]
        struct UserRef {
            id: String,
        }
        match self
            .call::<Found>(
                "users.lookupByEmail",
                &serde_json::json!({ "email": email }),
            )
            .await
        {
            Ok(found) => Ok(Some(found.user.id)),
            Err(SlackError::Api { code }) if code == "users_not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `conversations.open` for a 1:1 DM with `user`; returns the DM's channel Id.
    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        #[derive(Deserialize)]
        struct Opened {
            channel: ChannelRef,
        }
        #[derive(Deserialize)]
        struct ChannelRef {
            id: String,
        }
        let opened: Opened = self
            .call("conversations.open", &serde_json::json!({ "users": user }))
            .await?;
        Ok(opened.channel.id)
    }

    /// `auth.test`: checks the token (at start-up, and while its app is paused), with the
    /// scopes it holds when Slack says.
    pub async fn auth_test(&self) -> Result<Identity, SlackError> {
        let result = match self.send("auth.test", &serde_json::json!({})).await {
            Ok((headers, bytes)) => decode::<Identity>(&bytes).map(|mut identity| {
                identity.scopes = scopes(&headers);
                identity
            }),
            Err(e) => Err(e),
        };
        count("auth.test", result)
    }
}

/// Counts a call by method and result.
fn count<T>(method: &str, result: Result<T, SlackError>) -> Result<T, SlackError> {
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!("sfrelay_slack_calls_total", "method" => method.to_string(), "result" => label.to_string())
        .increment(1);
    result
}

/// The scopes listed in `X-OAuth-Scopes` (comma-separated), if the header is there.
fn scopes(headers: &reqwest::header::HeaderMap) -> Option<Vec<String>> {
    let value = headers.get("x-oauth-scopes")?.to_str().ok()?;
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// Turns Slack's `{"ok": …}` answer into the typed result.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SlackError> {
    #[derive(Deserialize)]
    struct Envelope {
        ok: bool,
        #[serde(default)]
        error: Option<String>,
        /// With `missing_scope`: the scope the call needs.
        #[serde(default)]
        needed: Option<String>,
    }
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| SlackError::Decode(e.to_string()))?;
    if !envelope.ok {
        let code = envelope.error.unwrap_or_else(|| "unknown_error".into());
        if code == "ratelimited" || code == "rate_limited" {
            return Err(SlackError::RateLimited {
                retry_after: Duration::from_secs(1),
            });
        }
        if CREDENTIAL_CODES.contains(&code.as_str()) {
            return Err(SlackError::Credentials {
                code,
                needed: envelope.needed.filter(|n| !n.is_empty()),
            });
        }
        return Err(SlackError::Api { code });
    }
    serde_json::from_slice(bytes).map_err(|e| SlackError::Decode(e.to_string()))
}

/// `Retry-After` in seconds (Slack sends whole seconds); 1 s when absent or unreadable.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)))
        .unwrap_or(Duration::from_secs(1))
}

/// reqwest errors print the URL; ours holds no secret, but the message is shorter without it.
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    format!("{kind} error: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::error::{Retry, classify_code};

    #[test]
    fn ok_false_becomes_a_typed_error() {
        let err = decode::<Posted>(br#"{"ok":false,"error":"channel_not_found"}"#).unwrap_err();
        assert_eq!(
            err,
            SlackError::Api {
                code: "channel_not_found".into()
            }
        );
        assert_eq!(err.retry(), Retry::Never);
        let posted: Posted = decode(br#"{"ok":true,"channel":"C1","ts":"1.000100"}"#).unwrap();
        assert_eq!(posted.ts, "1.000100");
        for code in ["ratelimited", "rate_limited"] {
            let body = format!(r#"{{"ok":false,"error":"{code}"}}"#);
            assert!(matches!(
                decode::<Posted>(body.as_bytes()),
                Err(SlackError::RateLimited { .. })
            ));
        }
    }

    #[test]
    fn every_class_of_failure_is_classified() {
        for code in [
            "not_authed",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
            "no_text",
            "invalid_blocks",
            "msg_blocks_too_long",
            "invalid_arguments",
        ] {
            assert_eq!(classify_code(code), Retry::Never, "{code}");
        }
        for code in [
            "fatal_error",
            "internal_error",
            "request_timeout",
            "service_unavailable",
        ] {
            assert_eq!(classify_code(code), Retry::Later, "{code}");
        }
        assert_eq!(SlackError::Http { status: 500 }.retry(), Retry::Later);
        assert_eq!(SlackError::Http { status: 503 }.retry(), Retry::Later);
        assert_eq!(SlackError::Http { status: 404 }.retry(), Retry::Never);
        assert_eq!(SlackError::Transport("x".into()).retry(), Retry::Later);
        assert_eq!(
            SlackError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
            .retry(),
            Retry::Later
        );
    }

    #[test]
    fn credential_failures_are_told_apart_with_the_needed_scope() {
        for code in CREDENTIAL_CODES {
            let body = format!(r#"{{"ok":false,"error":"{code}"}}"#);
            let err = decode::<Posted>(body.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                SlackError::Credentials {
                    code: code.into(),
                    needed: None
                },
                "{code}"
            );
            // Not a verdict on the job: it waits for the token, it is never dead-lettered.
            assert_eq!(err.retry(), Retry::Later, "{code}");
            assert_eq!(err.label(), code);
        }
        let err = decode::<Posted>(
            br#"{"ok":false,"error":"missing_scope","needed":"chat:write","provided":"channels:read"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SlackError::Credentials {
                code: "missing_scope".into(),
                needed: Some("chat:write".into())
            }
        );
        assert!(err.to_string().contains("chat:write"), "{err}");
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(scopes(&h), None);
        h.insert(
            "x-oauth-scopes",
            "chat:write, channels:read".parse().unwrap(),
        );
        assert_eq!(
            scopes(&h),
            Some(vec!["chat:write".to_string(), "channels:read".to_string()])
        );
    }

    #[test]
    fn retry_after_is_read_exactly() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(7));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(1));
    }

    #[test]
    fn client_debug_hides_the_token() {
        let c = SlackClient::new(
            "http://127.0.0.1:1/api",
            Secret::new("xoxb-secret".into()),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("xoxb"));
    }
}
