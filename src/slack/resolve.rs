//! Names to Slack Ids: `#channel` through `conversations.list`, people through
//! `users.lookupByEmail`, DMs through `conversations.open`, each cached in the store so all
//! replicas share one answer and Slack is asked rarely. Only Ids are ever sent to Slack.

use std::sync::Arc;

use super::ratelimit::{CallError, Limiter};
use super::sink::SlackSink;
use crate::keys::{NO_USER_TTL, Workspace};
use crate::routing::ChannelRef;
use crate::store::Store;

/// Marks a cached negative answer.
const NOBODY: &str = "-";
/// Paging stops here (100 pages of 999 channels) so a broken cursor cannot loop forever.
const MAX_PAGES: usize = 100;

/// Resolves names with a shared cache.
#[derive(Clone)]
pub struct Resolver {
    slack: SlackSink,
    store: Arc<dyn Store>,
    limiter: Limiter,
    /// Keeps each Slack workspace's names apart in the store.
    workspace: Workspace,
}

impl Resolver {
    pub fn new(
        slack: SlackSink,
        store: Arc<dyn Store>,
        limiter: Limiter,
        workspace: Workspace,
    ) -> Self {
        Resolver {
            slack,
            store,
            limiter,
            workspace,
        }
    }

    /// A channel's Id. A name no visible channel has is a permanent error: posting by name is
    /// never attempted.
    pub async fn channel(&self, channel: &ChannelRef) -> Result<String, CallError> {
        let name = match channel {
            ChannelRef::Id(id) => return Ok(id.clone()),
            ChannelRef::Name(name) => name,
        };
        if self.slack.is_log() {
            return Ok(format!("#{name}"));
        }
        let key = self.workspace.channel_name(name);
        if let Some(id) = self.store.get(key.as_str()).await? {
            return Ok(id);
        }
        // The scan's position is shared, so a scan cut short by the rate limit (the job is put
        // off) resumes where it stopped instead of starting over, whichever job goes next.
        let mut found = None;
        for _ in 0..MAX_PAGES {
            let scan_cursor = self.workspace.channel_scan();
            let cursor = self
                .store
                .get(scan_cursor.as_str())
                .await?
                .unwrap_or_default();
            let page = self
                .limiter
                .call("conversations.list", None, || {
                    self.slack.list_channels(Some(&cursor))
                })
                .await?;
            let entries: Vec<(String, String)> = page
                .channels
                .iter()
                .map(|c| {
                    let key = self.workspace.channel_name(&c.name);
                    (key.as_str().to_string(), c.id.clone())
                })
                .collect();
            self.store.set_many(&entries, key.ttl()).await?;
            let next = page.next_cursor().unwrap_or_default().to_string();
            self.store
                .set(scan_cursor.as_str(), &next, scan_cursor.ttl())
                .await?;
            if let Some(c) = page.channels.iter().find(|c| &c.name == name) {
                found = Some(c.id.clone());
                break;
            }
            if next.is_empty() {
                break;
            }
        }
        found.ok_or_else(|| {
            CallError::NotFound(format!(
                "channel #{name} not found: it does not exist, is archived, or is private and the bot is not in it"
            ))
        })
    }

    /// The Slack user with this email, or `None` when Slack has none.
    pub async fn user(&self, email: &str) -> Result<Option<String>, CallError> {
        let email = email.trim().to_lowercase();
        if self.slack.is_log() || email.is_empty() {
            return Ok(None);
        }
        let key = self.workspace.user(&email);
        if let Some(cached) = self.store.get(key.as_str()).await? {
            return Ok((cached != NOBODY).then_some(cached));
        }
        let found = self
            .limiter
            .call("users.lookupByEmail", None, || {
                self.slack.lookup_user_by_email(&email)
            })
            .await?;
        let (value, ttl) = match &found {
            Some(id) => (id.as_str(), key.ttl()),
            None => (NOBODY, Some(NO_USER_TTL)),
        };
        self.store.set(key.as_str(), value, ttl).await?;
        Ok(found)
    }

    /// The email on a Slack user's profile (`users.info`), `None` when it shows none; cached,
    /// so a person clicking often costs one call an hour.
    pub async fn email_of(&self, user: &str) -> Result<Option<String>, CallError> {
        if self.slack.is_log() {
            return Ok(None);
        }
        let key = self.workspace.email_of(user);
        if let Some(cached) = self.store.get(key.as_str()).await? {
            return Ok((cached != NOBODY).then_some(cached));
        }
        let found = self
            .limiter
            .call("users.info", None, || self.slack.user_email(user))
            .await?;
        let (value, ttl) = match &found {
            Some(email) => (email.as_str(), key.ttl()),
            None => (NOBODY, Some(NO_USER_TTL)),
        };
        self.store.set(key.as_str(), value, ttl).await?;
        Ok(found)
    }

    /// The DM conversation with a user.
    pub async fn dm(&self, user: &str) -> Result<String, CallError> {
        let key = self.workspace.dm(user);
        if let Some(id) = self.store.get(key.as_str()).await? {
            return Ok(id);
        }
        let id = self
            .limiter
            .call("conversations.open", None, || self.slack.open_dm(user))
            .await?;
        self.store.set(key.as_str(), &id, key.ttl()).await?;
        Ok(id)
    }
}
