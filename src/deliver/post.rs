//! Posting at most once per ledger key, even across crashes: a pending note before the post,
//! the key in the post's Slack message metadata, and a history search when a note is found.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DeliverError, Deliverer, Landed};
use crate::keys::Key;
use crate::slack::Message;

/// The metadata event type that marks sfrelay's posts.
const METADATA_EVENT_TYPE: &str = "sfrelay_delivery";

/// A post that was about to be made: where, and from when to search the history.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    channel: String,
    started_ms: i64,
}

impl Deliverer {
    /// Posts at most once per ledger `key`, even across crashes. Before posting, a `pending`
    /// note records where and when; the post carries `key` in its metadata. If a note is
    /// found on a later attempt, the earlier attempt may have reached Slack without the ledger
    /// hearing of it, so the channel's history is searched for the key first. (Thread replies
    /// are not in the channel history; for them the window stays one Redis round trip.)
    pub(super) async fn post(
        &self,
        message: &mut Message,
        key: &Key,
    ) -> Result<Landed, DeliverError> {
        message.metadata = Some(json!({
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": { "key": key.as_str() },
        }));
        let pending_key = Key::pending(key);
        if !self.slack.is_log() {
            if let Some(pending) = self.store.get(pending_key.as_str()).await?
                && let Ok(pending) = serde_json::from_str::<Pending>(&pending)
                && message.thread_ts.is_none()
                && let Some(found) = self.find_posted(&pending, key).await?
            {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                tracing::warn!(key = %key.as_str(), ts = %found.ts, "an earlier attempt had already posted this; not posting again");
                return Ok(found);
            }
            let pending = Pending {
                channel: message.channel.clone(),
                started_ms: crate::queue::now_ms(),
            };
            let value = serde_json::to_string(&pending).unwrap_or_default();
            self.store
                .set(pending_key.as_str(), &value, pending_key.ttl())
                .await?;
        }
        let posted = self
            .call("chat.postMessage", Some(&message.channel), || {
                self.slack.post_message(message)
            })
            .await;
        match posted {
            Ok(posted) => Ok(Landed {
                channel: posted.channel,
                ts: posted.ts,
            }),
            Err(e) => {
                if !e.may_have_posted() {
                    // Slack surely did not post: the next attempt need not search history.
                    self.store.delete(pending_key.as_str()).await?;
                }
                Err(e)
            }
        }
    }

    /// Searches the channel's history since just before the pending attempt for a message
    /// carrying `key`.
    async fn find_posted(
        &self,
        pending: &Pending,
        key: &Key,
    ) -> Result<Option<Landed>, DeliverError> {
        let oldest_ms = pending.started_ms.saturating_sub(60_000).max(0);
        let oldest = format!("{}.{:06}", oldest_ms / 1000, (oldest_ms % 1000) * 1000);
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let page = self
                .call("conversations.history", None, || {
                    self.slack
                        .history(&pending.channel, &oldest, cursor.as_deref())
                })
                .await?;
            for message in &page.messages {
                let Some(metadata) = &message.metadata else {
                    continue;
                };
                if metadata["event_type"] == METADATA_EVENT_TYPE
                    && metadata["event_payload"]["key"] == key.as_str()
                {
                    return Ok(Some(Landed {
                        channel: pending.channel.clone(),
                        ts: message.ts.clone(),
                    }));
                }
            }
            match page
                .response_metadata
                .as_ref()
                .map(|m| m.next_cursor.as_str())
            {
                Some(next) if page.has_more && !next.is_empty() => cursor = Some(next.to_string()),
                _ => break,
            }
        }
        Ok(None)
    }
}
