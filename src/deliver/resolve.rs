//! Names to Slack Ids: `#channel` through `conversations.list`, people through
//! `users.lookupByEmail`, DMs through `conversations.open`, each cached in the store so all
//! replicas share one answer and Slack is asked rarely. Only Ids are ever sent to Slack.

use std::sync::Arc;
use std::time::Duration;

use super::DeliverError;
use super::ratelimit::Limiter;
use super::store::Store;
use crate::routing::ChannelRef;
use crate::slack::SlackSink;

/// How long a channel's Id is trusted (channels are renamed rarely; a miss lists again).
const CHANNEL_TTL: Duration = Duration::from_secs(3600);
/// How long a person's user Id is trusted.
const USER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long "no such user" is trusted: shorter, so a new hire is found soon.
const NO_USER_TTL: Duration = Duration::from_secs(600);
const DM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Marks a cached negative answer.
const NOBODY: &str = "-";
/// Where the channel scan stands (a `conversations.list` cursor; empty = from the start).
const SCAN_CURSOR: &str = "chan-scan-cursor";
const SCAN_TTL: Duration = Duration::from_secs(300);
/// Paging stops here (100 pages of 999 channels) so a broken cursor cannot loop forever.
const MAX_PAGES: usize = 100;

/// Resolves names with a shared cache.
#[derive(Clone)]
pub struct Resolver {
    slack: SlackSink,
    store: Arc<dyn Store>,
    limiter: Limiter,
    /// Keeps each Slack workspace's names apart in the store.
    prefix: String,
}

impl Resolver {
    pub fn new(slack: SlackSink, store: Arc<dyn Store>, limiter: Limiter, prefix: String) -> Self {
        Resolver {
            slack,
            store,
            limiter,
            prefix,
        }
    }

    /// A channel's Id. A name no visible channel has is a permanent error: posting by name is
    /// never attempted.
    pub async fn channel(&self, channel: &ChannelRef) -> Result<String, DeliverError> {
        let name = match channel {
            ChannelRef::Id(id) => return Ok(id.clone()),
            ChannelRef::Name(name) => name,
        };
        if self.slack.is_log() {
            return Ok(format!("#{name}"));
        }
        let key = format!("{}chan:{name}", self.prefix);
        if let Some(id) = self.store.get(&key).await? {
            return Ok(id);
        }
        // The scan's position is shared, so a scan cut short by the rate limit (the job is put
        // off) resumes where it stopped instead of starting over, whichever job goes next.
        let mut found = None;
        for _ in 0..MAX_PAGES {
            let scan_cursor = format!("{}{SCAN_CURSOR}", self.prefix);
            let cursor = self.store.get(&scan_cursor).await?.unwrap_or_default();
            let page = self
                .limiter
                .call("conversations.list", None, || {
                    self.slack.list_channels(Some(&cursor))
                })
                .await?;
            let entries: Vec<(String, String)> = page
                .channels
                .iter()
                .map(|c| (format!("{}chan:{}", self.prefix, c.name), c.id.clone()))
                .collect();
            self.store.set_many(&entries, Some(CHANNEL_TTL)).await?;
            let next = page.next_cursor().unwrap_or_default().to_string();
            self.store.set(&scan_cursor, &next, Some(SCAN_TTL)).await?;
            if let Some(c) = page.channels.iter().find(|c| &c.name == name) {
                found = Some(c.id.clone());
                break;
            }
            if next.is_empty() {
                break;
            }
        }
        found.ok_or_else(|| {
            DeliverError::Permanent(format!(
                "channel #{name} not found: it does not exist, is archived, or is private and the bot is not in it"
            ))
        })
    }

    /// The Slack user with this email, or `None` when Slack has none.
    pub async fn user(&self, email: &str) -> Result<Option<String>, DeliverError> {
        let email = email.trim().to_lowercase();
        if self.slack.is_log() || email.is_empty() {
            return Ok(None);
        }
        let key = format!("{}user:{email}", self.prefix);
        if let Some(cached) = self.store.get(&key).await? {
            return Ok((cached != NOBODY).then_some(cached));
        }
        let found = self
            .limiter
            .call("users.lookupByEmail", None, || {
                self.slack.lookup_user_by_email(&email)
            })
            .await?;
        let (value, ttl) = match &found {
            Some(id) => (id.as_str(), USER_TTL),
            None => (NOBODY, NO_USER_TTL),
        };
        self.store.set(&key, value, Some(ttl)).await?;
        Ok(found)
    }

    /// The DM conversation with a user.
    pub async fn dm(&self, user: &str) -> Result<String, DeliverError> {
        let key = format!("{}dm:{user}", self.prefix);
        if let Some(id) = self.store.get(&key).await? {
            return Ok(id);
        }
        let id = self
            .limiter
            .call("conversations.open", None, || self.slack.open_dm(user))
            .await?;
        self.store.set(&key, &id, Some(DM_TTL)).await?;
        Ok(id)
    }
}
