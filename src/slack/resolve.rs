//! Names to Slack Ids: `#channel` through `conversations.list`, people through
//! `users.lookupByEmail`, DMs through `conversations.open`, each cached in the store so all
//! replicas share one answer and Slack is asked rarely. Only Ids are ever sent to Slack.
//!
//! What is kept, and for how long: a channel's Id 1 hour, "no such channel" 5 minutes (once a
//! scan reached the last page; `sfrelay dlq replay` forgets it at once), a person's user Id 24
//! hours, "no such person" 10 minutes, their profile email 1 hour, a DM conversation 7 days.

use std::sync::Arc;

use super::ratelimit::{CallError, Limiter};
use super::sink::SlackSink;
use crate::keys::{Key, NO_CHANNEL_TTL, NO_USER_TTL, Workspace};
use crate::routing::ChannelRef;
use crate::store::Store;

/// Marks a cached negative answer (for a channel, followed by the names epoch it was found in).
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
        let missing = || {
            CallError::NotFound(format!(
                "channel #{name} not found: it does not exist, is archived, or is private and the bot is not in it"
            ))
        };
        match self.store.get(key.as_str()).await? {
            Some(missing_since) if missing_since.starts_with(NOBODY) => {
                // An answer from before the last replay is asked again (the scan below).
                let epoch = self.names_epoch().await?;
                if missing_since[NOBODY.len()..] == epoch {
                    metrics::counter!("sfrelay_slack_lookups_total", "kind" => "channel", "outcome" => "cached_missing").increment(1);
                    return Err(missing());
                }
            }
            Some(id) => {
                metrics::counter!("sfrelay_slack_lookups_total", "kind" => "channel", "outcome" => "cached").increment(1);
                return Ok(id);
            }
            None => {}
        }
        // The scan's position is shared, so a scan cut short by the rate limit (the job is put
        // off) resumes where it stopped instead of starting over, whichever job goes next.
        let mut found = None;
        // Only a scan that reached the last page may say the channel is not there. One that
        // began part way (where another lookup left the shared cursor) counts too: the pages
        // before were listed minutes ago at most, and every channel on them is cached.
        let mut reached_the_end = false;
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
                reached_the_end = true;
                break;
            }
        }
        metrics::counter!("sfrelay_slack_lookups_total", "kind" => "channel", "outcome" => if found.is_some() { "listed" } else { "missing" }).increment(1);
        if found.is_none() && reached_the_end {
            let epoch = self.names_epoch().await?;
            self.store
                .set(
                    key.as_str(),
                    &format!("{NOBODY}{epoch}"),
                    Some(NO_CHANNEL_TTL),
                )
                .await?;
        }
        found.ok_or_else(missing)
    }

    /// Since when "no such channel" answers hold (`sfrelay dlq replay` moves it on).
    async fn names_epoch(&self) -> Result<String, CallError> {
        let epoch = self.store.get(Key::names_epoch().as_str()).await?;
        Ok(epoch.unwrap_or_default())
    }

    /// The Slack user with this email, or `None` when Slack has none.
    pub async fn user(&self, email: &str) -> Result<Option<String>, CallError> {
        let email = email.trim().to_lowercase();
        if self.slack.is_log() || email.is_empty() {
            return Ok(None);
        }
        let key = self.workspace.user(&email);
        if let Some(cached) = self.store.get(key.as_str()).await? {
            let outcome = if cached == NOBODY {
                "cached_missing"
            } else {
                "cached"
            };
            metrics::counter!("sfrelay_slack_lookups_total", "kind" => "user", "outcome" => outcome).increment(1);
            return Ok((cached != NOBODY).then_some(cached));
        }
        let found = self
            .limiter
            .call("users.lookupByEmail", None, || {
                self.slack.lookup_user_by_email(&email)
            })
            .await?;
        let outcome = if found.is_some() { "asked" } else { "missing" };
        metrics::counter!("sfrelay_slack_lookups_total", "kind" => "user", "outcome" => outcome)
            .increment(1);
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
