//! What the emulator saw: every API call and the counters tests assert on.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// One API call as the control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// Slack method name, e.g. `chat.postMessage`.
    pub method: String,
    /// HTTP status answered.
    pub status: u16,
    /// Slack error code, if the call failed.
    pub error: Option<String>,
    /// The `channel` argument, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// When it arrived (Unix epoch milliseconds).
    pub at_ms: i64,
    /// The arguments as parsed, never including a token; null when unreadable.
    pub body: Value,
    /// Where the message went when the call took effect but was answered with an injected 500
    /// (`drop_response_after_effect_rate`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_after_effect: Option<PostedMessage>,
}

/// Where a posted message was stored: enough to find it in `/_emulator/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostedMessage {
    /// The conversation id it is stored under (a `D…` id for a post to a user id).
    pub channel: String,
    /// Its Slack timestamp.
    pub ts: String,
}

/// Counters over all calls since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// API calls received, whatever their outcome.
    pub calls: u64,
    /// Messages successfully posted.
    pub posts: u64,
    /// Of `posts`, those that landed in a DM (by `D…` id or by user id).
    pub dm_posts: u64,
    /// Of `dm_posts`, those addressed to a user id (`U…`) rather than the DM's id.
    pub posts_to_user_id: u64,
    /// Messages successfully updated.
    pub updates: u64,
    /// Ephemeral messages sent with `chat.postEphemeral`.
    pub ephemerals: u64,
    /// Calls answered 429 (rate limit or forced).
    pub rate_limited: u64,
    /// Calls answered 500 by fault injection before taking any effect.
    pub failed_injected: u64,
    /// Of `posts`, those answered 500 by fault injection after the message was stored.
    pub dropped_after_effect: u64,
    /// `chat.*` calls that named a channel by name instead of id.
    pub posts_by_name: u64,
    /// Calls refused with `invalid_blocks`.
    pub invalid_blocks: u64,
    /// User ids sent to `conversations.invite`, over all calls.
    pub invited_users: u64,
    /// Largest number of user ids sent in one `conversations.invite` call.
    pub max_invite_batch: u64,
    /// Calls per method name.
    pub by_method: BTreeMap<String, u64>,
    /// Failed calls per Slack error code.
    pub by_error: BTreeMap<String, u64>,
}

/// The request log and counters.
#[derive(Debug, Default)]
pub struct Journal {
    requests: Vec<RequestRecord>,
    stats: Stats,
}

impl Journal {
    /// Logs a finished call and counts it.
    pub fn record(&mut self, record: RequestRecord) {
        self.stats.calls += 1;
        *self
            .stats
            .by_method
            .entry(record.method.clone())
            .or_default() += 1;
        if let Some(error) = &record.error {
            *self.stats.by_error.entry(error.clone()).or_default() += 1;
            if error == "invalid_blocks" {
                self.stats.invalid_blocks += 1;
            }
        }
        match record.status {
            429 => self.stats.rate_limited += 1,
            500 if record.dropped_after_effect.is_some() => self.stats.dropped_after_effect += 1,
            500 => self.stats.failed_injected += 1,
            _ => {}
        }
        self.requests.push(record);
    }

    /// The counters, for methods that count more than outcomes.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Every call in arrival order.
    pub fn requests(&self) -> &[RequestRecord] {
        &self.requests
    }

    /// Forgets all calls and zeroes the counters.
    pub fn clear(&mut self) {
        *self = Journal::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str, status: u16, error: Option<&str>) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            status,
            error: error.map(Into::into),
            channel: None,
            at_ms: 0,
            body: Value::Null,
            dropped_after_effect: None,
        }
    }

    #[test]
    fn counts_outcomes() {
        let mut j = Journal::default();
        j.record(record("chat.postMessage", 200, None));
        j.record(record("chat.postMessage", 429, Some("ratelimited")));
        j.record(record("chat.update", 500, None));
        j.record(record("chat.update", 200, Some("invalid_blocks")));
        j.record(RequestRecord {
            dropped_after_effect: Some(PostedMessage {
                channel: "C1".into(),
                ts: "1.000001".into(),
            }),
            ..record("chat.postMessage", 500, None)
        });
        let s = j.stats();
        assert_eq!(
            (s.calls, s.rate_limited, s.failed_injected, s.invalid_blocks),
            (5, 1, 1, 1)
        );
        assert_eq!(s.dropped_after_effect, 1);
        assert_eq!(s.by_error.len(), 2, "a dropped answer is no Slack error");
        let shown = serde_json::to_value(j.requests()).unwrap();
        assert!(shown[0].get("dropped_after_effect").is_none());
        assert_eq!(shown[4]["dropped_after_effect"]["ts"], "1.000001");
        assert_eq!(s.by_method.get("chat.postMessage"), Some(&3));
        assert_eq!(s.by_error.get("ratelimited"), Some(&1));
        assert_eq!(j.requests().len(), 5);
        j.clear();
        assert_eq!((j.stats(), j.requests().len()), (&Stats::default(), 0));
    }
}
