//! Slack failures, classified once into what delivery does with them.

use std::time::Duration;

pub use crate::retry::Retry;

/// Why a Slack call failed, in the terms delivery decides on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SlackError {
    #[error("rate limited by Slack, retry after {}s", retry_after.as_secs_f64())]
    RateLimited { retry_after: Duration },
    #[error("Slack answered error {code:?}")]
    Api { code: String },
    /// The bot token does not work (revoked, expired, lacking a scope): the app pauses.
    #[error("Slack refused the bot token: {code}{}", needed.as_ref().map(|n| format!(" (needs the {n} scope)")).unwrap_or_default())]
    Credentials {
        code: String,
        /// The scope Slack said is missing (`missing_scope` answers carry it).
        needed: Option<String>,
    },
    #[error("Slack answered HTTP {status}")]
    Http { status: u16 },
    #[error("cannot reach Slack: {0}")]
    Transport(String),
    #[error("unexpected answer from Slack: {0}")]
    Decode(String),
}

impl SlackError {
    /// Classifies every failure: network trouble, timeouts, 5xx, 429 and Slack's transient
    /// codes are retried; everything else (auth, missing channel, bad blocks…) is permanent.
    pub fn retry(&self) -> Retry {
        match self {
            SlackError::RateLimited { .. } | SlackError::Transport(_) => Retry::Later,
            SlackError::Http { status } => {
                if *status >= 500 || *status == 408 || *status == 429 {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SlackError::Api { code } => classify_code(code),
            // Not a verdict on the job: it waits until the token works again.
            SlackError::Credentials { .. } => Retry::Later,
            // A garbled answer is most likely a proxy or outage page, not a verdict.
            SlackError::Decode(_) => Retry::Later,
        }
    }

    /// A short label for metrics (`result` label).
    pub fn label(&self) -> &str {
        match self {
            SlackError::RateLimited { .. } => "ratelimited",
            SlackError::Api { code } | SlackError::Credentials { code, .. } => code,
            SlackError::Http { .. } => "http_error",
            SlackError::Transport(_) => "transport_error",
            SlackError::Decode(_) => "decode_error",
        }
    }
}

/// Slack's answers that say the bot token itself does not work: delivery for that app pauses
/// until it does again (see `pause`).
pub const CREDENTIAL_CODES: [&str; 5] = [
    "invalid_auth",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
];

/// Slack's `error` codes that are worth repeating; any other code is permanent.
pub fn classify_code(code: &str) -> Retry {
    match code {
        "ratelimited"
        | "rate_limited"
        | "fatal_error"
        | "internal_error"
        | "request_timeout"
        | "service_unavailable"
        | "team_added_to_org" => Retry::Later,
        _ => Retry::Never,
    }
}
