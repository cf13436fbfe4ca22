//! Posting at most once per ledger key, even across crashes: a pending note before the post,
//! the key in the post's Slack message metadata, and a history search when a note is found.
//!
//! After a storm of failed posts many jobs of one channel hold such a note at once. One read of
//! the channel's recent history answers them all: it is kept (every sfrelay post in it, by
//! key) and only one job per channel reads at a time, the others waiting for its answer. A
//! kept read answers a note when it started after the note's attempt had ended and reaches
//! back before that attempt began. While the channel is still busy posting, a note waits (up
//! to 5 seconds) for it to go quiet, so the notes of a storm are answered together by one
//! read instead of one read each.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{DeliverError, Deliverer, Landed};
use crate::keys::Key;
use crate::slack::Message;

/// The metadata event type that marks sfrelay's posts.
const METADATA_EVENT_TYPE: &str = "sfrelay_delivery";

/// How far before an attempt a search reaches (clocks differ between replicas and Slack).
const LOOK_BACK_MS: i64 = 60_000;
/// How long an attempt not known to have ended may still land (beyond any Slack timeout).
const IN_FLIGHT_MS: i64 = 30_000;
/// How far back a read of a channel's history reaches, so it answers every recent note.
const PASS_SPAN_MS: i64 = 5 * 60_000;
/// How long a job waits while another reads its channel's history.
const READER_WAIT: Duration = Duration::from_millis(300);
/// A channel that posted within this long is still busy with its first attempts: its
/// unverified posts wait, so that one history read, once it is quiet, answers them all (reads
/// are a scarce tier, ~50 a minute, shared by every channel).
const BUSY_FOR: Duration = Duration::from_secs(2);
/// The longest an unverified post waits for its busy channel to go quiet: long enough for a
/// few more notes to gather, short enough that the last ones do not straggle.
const LONGEST_WAIT_MS: i64 = 5_000;

/// When this process last posted in each channel (bounded: old entries are dropped).
#[derive(Debug, Default)]
pub(super) struct LastPosts(std::sync::Mutex<HashMap<String, std::time::Instant>>);

impl LastPosts {
    fn posted(&self, channel: &str) {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.len() > 10_000 {
            last.retain(|_, at| now.duration_since(*at) < BUSY_FOR);
        }
        last.insert(channel.to_owned(), now);
    }

    fn busy(&self, channel: &str) -> bool {
        let last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.get(channel).is_some_and(|at| at.elapsed() < BUSY_FOR)
    }
}

/// A post that was about to be made: where, from when to search the history, and when its
/// attempt ended without knowing whether Slack posted.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    channel: String,
    started_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended_ms: Option<i64>,
}

/// One read of a channel's history: every sfrelay post since `oldest_ms` (ledger key → ts),
/// as a read that started at `started_ms` saw it.
#[derive(Debug, Serialize, Deserialize)]
struct Pass {
    started_ms: i64,
    oldest_ms: i64,
    posted: HashMap<String, String>,
}

impl Pass {
    /// Whether this read can tell if the attempt of `pending` landed.
    fn answers(&self, pending: &Pending) -> bool {
        let ended = pending
            .ended_ms
            .unwrap_or(pending.started_ms + IN_FLIGHT_MS);
        self.started_ms >= ended && self.oldest_ms <= pending.started_ms - LOOK_BACK_MS
    }
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
        let started_ms = crate::queue::now_ms();
        if !self.slack.is_log() {
            if let Some(pending) = self.store.get(pending_key.as_str()).await?
                && let Ok(pending) = serde_json::from_str::<Pending>(&pending)
                && message.thread_ts.is_none()
                && let Some(found) = self
                    .find_posted(&pending, key)
                    .await
                    .map_err(|e| DeliverError::Unverified(Box::new(e)))?
            {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                tracing::warn!(key = %key.as_str(), ts = %found.ts, "an earlier attempt had already posted this; not posting again");
                return Ok(found);
            }
            let pending = Pending {
                channel: message.channel.clone(),
                started_ms,
                ended_ms: None,
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
        // Any answer but "not now" means the channel is still at work (a failed post too).
        if !matches!(posted, Err(DeliverError::Busy { .. })) {
            self.last_posts.posted(&message.channel);
        }
        match posted {
            Ok(posted) => Ok(Landed {
                channel: posted.channel,
                ts: posted.ts,
            }),
            Err(e) => {
                if !e.may_have_posted() {
                    // Slack surely did not post: the next attempt need not search history.
                    self.store.delete(pending_key.as_str()).await?;
                } else if !self.slack.is_log() {
                    // The attempt is over: a history read from now on shows whether it landed.
                    let ended = Pending {
                        channel: message.channel.clone(),
                        started_ms,
                        ended_ms: Some(crate::queue::now_ms()),
                    };
                    let value = serde_json::to_string(&ended).unwrap_or_default();
                    self.store
                        .set(pending_key.as_str(), &value, pending_key.ttl())
                        .await?;
                }
                Err(e)
            }
        }
    }

    /// Whether the attempt of `pending` posted `key`: from a kept read of the channel's
    /// history when one answers it, else from a new read (one job per channel at a time; the
    /// others are put off until it is kept).
    async fn find_posted(
        &self,
        pending: &Pending,
        key: &Key,
    ) -> Result<Option<Landed>, DeliverError> {
        let landed = |pass: &Pass| {
            pass.posted.get(key.as_str()).map(|ts| Landed {
                channel: pending.channel.clone(),
                ts: ts.clone(),
            })
        };
        let kept = self.workspace.history_pass(&pending.channel);
        if let Some(pass) = self.store.get(kept.as_str()).await?
            && let Ok(pass) = serde_json::from_str::<Pass>(&pass)
            && pass.answers(pending)
        {
            metrics::counter!("sfrelay_history_reads_total", "outcome" => "shared").increment(1);
            return Ok(landed(&pass));
        }
        let waited = crate::queue::now_ms() - pending.ended_ms.unwrap_or(pending.started_ms);
        if waited < LONGEST_WAIT_MS && self.last_posts.busy(&pending.channel) {
            return Err(DeliverError::Busy { wait: BUSY_FOR });
        }
        let reader = self.workspace.history_reader(&pending.channel);
        let me = uuid::Uuid::now_v7().to_string();
        if let Some(other) = self.store.claim(reader.as_str(), &me, reader.ttl()).await?
            && other != me
        {
            return Err(DeliverError::Busy { wait: READER_WAIT });
        }
        let read = self.read_history(pending).await;
        self.store.release(reader.as_str(), &me).await?;
        let pass = read?;
        metrics::counter!("sfrelay_history_reads_total", "outcome" => "read").increment(1);
        let value = serde_json::to_string(&pass).unwrap_or_default();
        self.store.set(kept.as_str(), &value, kept.ttl()).await?;
        Ok(landed(&pass))
    }

    /// Reads the channel's history far enough back for `pending` and every other recent note.
    async fn read_history(&self, pending: &Pending) -> Result<Pass, DeliverError> {
        let started_ms = crate::queue::now_ms();
        let oldest_ms = (pending.started_ms - LOOK_BACK_MS)
            .min(started_ms - PASS_SPAN_MS)
            .max(0);
        let oldest = format!("{}.{:06}", oldest_ms / 1000, (oldest_ms % 1000) * 1000);
        let mut posted = HashMap::new();
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
                    && let Some(key) = metadata["event_payload"]["key"].as_str()
                {
                    posted.insert(key.to_owned(), message.ts.clone());
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
        Ok(Pass {
            started_ms,
            oldest_ms,
            posted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(started_ms: i64, oldest_ms: i64) -> Pass {
        Pass {
            started_ms,
            oldest_ms,
            posted: HashMap::new(),
        }
    }

    #[test]
    fn a_kept_read_answers_only_attempts_it_could_have_seen() {
        let ended = Pending {
            channel: "C1".into(),
            started_ms: 100_000,
            ended_ms: Some(101_000),
        };
        assert!(pass(101_000, 40_000).answers(&ended));
        // Read while the attempt was still going, or not reaching back before it.
        assert!(!pass(100_500, 40_000).answers(&ended));
        assert!(!pass(101_000, 41_000).answers(&ended));
        // An attempt whose end nobody saw (the process died) may land until it times out.
        let unknown = Pending {
            ended_ms: None,
            ..ended
        };
        assert!(!pass(101_000, 0).answers(&unknown));
        assert!(pass(130_000, 0).answers(&unknown));
    }
}
