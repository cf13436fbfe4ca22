//! Slack effects: carries out one fired route's planned actions against one Slack workspace
//! (posts, DMs, thread replies, in-place updates, deal rooms), recording each in the ledger so
//! a retried or recovered job skips what is already done. What to send is decided before
//! (routing, rendering); Salesforce work (enrichment, schedules) happens in `jobs`.
//!
//! The window between Slack accepting a post and the ledger write is closed for top-level posts
//! by a pending note and Slack message metadata (see `post.rs`); thread replies, which the
//! channel history does not show, keep a window of one Redis round trip.

pub mod cards;
mod followers;
mod interactive;
mod orgs;
mod post;
mod room;
mod workspaces;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::keys::{Key, Workspace};
use crate::render::template::Rendered;
use crate::routing::{ChannelRef, PlannedAction, PlannedTarget, Route, RouteSet};
use crate::slack::{
    AppPause, CallError, Limiter, Message, Rate, Resolver, Retry, SlackError, SlackSink,
};
use crate::store::{Store, StoreError};

pub use orgs::OrgDirectory;
pub use workspaces::Workspaces;

/// Why a route could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// A transient Slack failure while Slack answers most calls: retried soon.
    #[error("{0} (Slack answers most calls: retried soon)")]
    Sporadic(SlackError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cannot succeed as things stand (unknown template, channel not found…).
    #[error("{0}")]
    Permanent(String),
    /// A rate limit has no room now: the job is put off (not a failed attempt).
    #[error("rate limited; try again in {} ms", wait.as_millis())]
    Busy { wait: Duration },
    /// The Slack app's token was refused: the job waits until it works (not an attempt).
    #[error("Slack app {app} is paused: {reason}")]
    Paused {
        app: String,
        reason: String,
        wait: Duration,
    },
    /// An earlier attempt may have posted, and whether it did is not known yet (its channel's
    /// history could not be read, or is read by another job): whatever else is true, the
    /// post may have landed.
    #[error("cannot tell yet whether an earlier attempt posted: {0}")]
    Unverified(Box<DeliverError>),
    /// A thread reply or update whose record's announcement (by route `route`) is on its way
    /// but not made yet: the job is put off until it is.
    #[error("waiting for the record's announcement by route {route:?}, not made yet")]
    NotYetAnnounced { route: String },
}

/// How often a job waiting for its record's announcement looks again.
const ANNOUNCEMENT_POLL: Duration = Duration::from_millis(500);

/// When a thread reply or update whose record has no announcement yet waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// The job was queued moments ago, so the announcing event's own routing may still be
    /// running beside it (two events of one record taken by two workers at once).
    pub just_queued: bool,
    /// The jobs' age limit: how long an announcing job's marker lives.
    pub max_age: Duration,
}

impl From<CallError> for DeliverError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Slack(e) => DeliverError::Slack(e),
            CallError::Sporadic(e) => DeliverError::Sporadic(e),
            CallError::Store(e) => DeliverError::Store(e),
            CallError::Busy { wait } => DeliverError::Busy { wait },
            CallError::NotFound(what) => DeliverError::Permanent(what),
            CallError::Paused { app, reason, wait } => DeliverError::Paused { app, reason, wait },
        }
    }
}

impl DeliverError {
    pub fn retry(&self) -> Retry {
        match self {
            DeliverError::Slack(e) => e.retry(),
            DeliverError::Sporadic(_) => Retry::Soon,
            DeliverError::Unverified(e) => e.retry(),
            DeliverError::Store(_) => Retry::Later,
            DeliverError::Permanent(_) => Retry::Never,
            DeliverError::Busy { .. }
            | DeliverError::Paused { .. }
            | DeliverError::NotYetAnnounced { .. } => Retry::Later,
        }
    }

    /// Whether the Slack app is paused: the job waits, however old it is.
    pub fn is_paused(&self) -> bool {
        match self {
            DeliverError::Unverified(e) => e.is_paused(),
            other => matches!(other, DeliverError::Paused { .. }),
        }
    }

    /// Whether Slack may have carried out the call despite the error (no answer, a 5xx): only
    /// then must a retry check before posting again.
    pub fn may_have_posted(&self) -> bool {
        match self {
            DeliverError::Slack(e) | DeliverError::Sporadic(e) => {
                crate::slack::health::is_outage_like(e)
            }
            DeliverError::Unverified(_) => true,
            _ => false,
        }
    }

    /// When the job may go again without counting as a failed attempt.
    pub fn postpone_for(&self) -> Option<Duration> {
        match self {
            DeliverError::Unverified(e) => e.postpone_for(),
            DeliverError::Busy { wait } | DeliverError::Paused { wait, .. } => Some(*wait),
            DeliverError::Slack(SlackError::RateLimited { retry_after }) => Some(*retry_after),
            DeliverError::NotYetAnnounced { .. } => Some(ANNOUNCEMENT_POLL),
            _ => None,
        }
    }
}

/// Where a message landed: what the ledger and announcements keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landed {
    pub channel: String,
    pub ts: String,
}

/// Carries out planned actions in one Slack workspace. Shared by all workers.
pub struct Deliverer {
    slack: SlackSink,
    store: Arc<dyn Store>,
    orgs: Arc<OrgDirectory>,
    resolver: Resolver,
    limiter: Limiter,
    /// Keeps this Slack workspace's state (names, limits, room names) apart in the store.
    workspace: Workspace,
    /// When this process last posted in each channel: a channel still busy posting lets its
    /// unverified posts wait for one shared history read (see `post.rs`).
    last_posts: post::LastPosts,
}

impl Deliverer {
    pub fn new(
        slack: SlackSink,
        store: Arc<dyn Store>,
        orgs: Arc<OrgDirectory>,
        channel_rate: Rate,
        workspace: Workspace,
        pause: Option<Arc<AppPause>>,
    ) -> Self {
        let limiter = Limiter::new(
            store.clone(),
            channel_rate,
            !slack.is_log(),
            workspace.clone(),
        )
        .with_pause(pause);
        let resolver = Resolver::new(
            slack.clone(),
            store.clone(),
            limiter.clone(),
            workspace.clone(),
        );
        Deliverer {
            slack,
            store,
            orgs,
            resolver,
            limiter,
            workspace,
            last_posts: post::LastPosts::default(),
        }
    }

    /// Runs the actions `route` plans for `event` (with `extra` template variables: enrichment
    /// results, a digest), skipping those the ledger says are done. A thread reply or update
    /// whose record's announcement is on its way answers [`DeliverError::NotYetAnnounced`]
    /// (see [`Wait`]).
    pub async fn deliver(
        &self,
        routes: &RouteSet,
        route: &Route,
        event: &Event,
        extra: &serde_json::Value,
        wait: Wait,
    ) -> Result<(), DeliverError> {
        let name = route.name.as_str();
        let empty = HashMap::new();
        let actions = routes
            .plan(route, &self.orgs.context(event, &empty, extra))
            .map_err(|e| DeliverError::Permanent(format!("route {name}: {e}")))?;
        self.deliver_planned(routes, name, event, extra, wait, &actions)
            .await
    }

    /// Runs `actions` (planned for `route`, or an approval gate's cards), skipping those the
    /// ledger says are done.
    pub async fn deliver_planned(
        &self,
        routes: &RouteSet,
        name: &str,
        event: &Event,
        extra: &serde_json::Value,
        wait: Wait,
        actions: &[PlannedAction],
    ) -> Result<(), DeliverError> {
        for action in actions {
            let ledger_key = Key::done(&event.id, name, action.index);
            if let Some(done) = self.store.get(ledger_key.as_str()).await? {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                tracing::info!(route = %name, action = action.index, %done, "action already done; skipped");
                continue;
            }
            let Some(landed) = self
                .run_action(routes, event, extra, name, action, &ledger_key, wait)
                .await?
            else {
                continue;
            };
            let value = serde_json::to_string(&landed).unwrap_or_default();
            self.store
                .set(ledger_key.as_str(), &value, ledger_key.ttl())
                .await?;
            let latency = (chrono::Utc::now() - event.received_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("sfrelay_delivery_latency_seconds").record(latency.as_secs_f64());
            tracing::info!(route = %name, action = action.index, channel = %landed.channel, ts = %landed.ts, latency_ms = latency.as_millis() as u64, "delivered to Slack");
        }
        Ok(())
    }

    /// One Slack call through this workspace's rate limiter.
    async fn call<T, F, Fut>(
        &self,
        method: &str,
        channel: Option<&str>,
        call: F,
    ) -> Result<T, DeliverError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, SlackError>>,
    {
        Ok(self.limiter.call(method, channel, call).await?)
    }

    /// Renders a template, resolving the people it mentions first.
    async fn render(
        &self,
        routes: &RouteSet,
        event: &Event,
        extra: &serde_json::Value,
        template: &str,
    ) -> Result<Rendered, DeliverError> {
        let mut users = HashMap::new();
        let render = |users: &HashMap<String, String>| {
            routes
                .templates
                .render(template, &self.orgs.context(event, users, extra))
                .map_err(|e| DeliverError::Permanent(e.to_string()))
        };
        let first = render(&users)?;
        if first.wanted_emails.is_empty() || self.slack.is_log() {
            return Ok(first);
        }
        for email in &first.wanted_emails {
            if let Some(id) = self.resolver.user(email).await? {
                users.insert(email.clone(), id);
            }
        }
        if users.is_empty() {
            Ok(first)
        } else {
            render(&users)
        }
    }

    /// One action; `None` when it had nothing to do (e.g. an update with no message to update).
    /// A card with sfrelay's buttons on it is remembered, for its clicks.
    #[allow(clippy::too_many_arguments)]
    async fn run_action(
        &self,
        routes: &RouteSet,
        event: &Event,
        extra: &serde_json::Value,
        route: &str,
        action: &PlannedAction,
        key: &Key,
        wait: Wait,
    ) -> Result<Option<Landed>, DeliverError> {
        let rendered = self.render(routes, event, extra, &action.template).await?;
        if action.target == PlannedTarget::Followers {
            // Each follower's DM is ledgered and remembered as a card on its own.
            return self
                .message_followers(route, &action.template, event, extra, key, rendered)
                .await;
        }
        let has_buttons = cards::has_buttons(&rendered.blocks);
        let landed = self
            .land(routes, event, route, action, key, wait, rendered)
            .await?;
        if let Some(landed) = &landed
            && has_buttons
        {
            self.remember_card(route, &action.template, event, extra, landed)
                .await?;
        }
        Ok(landed)
    }

    #[allow(clippy::too_many_arguments)]
    async fn land(
        &self,
        routes: &RouteSet,
        event: &Event,
        route: &str,
        action: &PlannedAction,
        key: &Key,
        wait: Wait,
        rendered: Rendered,
    ) -> Result<Option<Landed>, DeliverError> {
        let mut message = Message::new(String::new(), rendered.text, rendered.blocks);
        match &action.target {
            PlannedTarget::Room { name, invite } => {
                let room_key = Key::room(route, &event.org_id, &event.record_id);
                let channel = self.room(name, &room_key).await?;
                let missing = self.invite(&channel, invite).await?;
                if !missing.is_empty() {
                    room::note_missing_people(&mut message, &missing);
                }
                message.channel = channel;
                let landed = self.post(&mut message, key).await?;
                self.announce(route, event, &landed).await?;
                Ok(Some(landed))
            }
            // Sent one DM each by `run_action`, never as one message.
            PlannedTarget::Followers => Ok(None),
            PlannedTarget::Post { channel } => {
                message.channel = self.resolver.channel(channel).await?;
                let landed = self.post(&mut message, key).await?;
                self.announce(route, event, &landed).await?;
                Ok(Some(landed))
            }
            PlannedTarget::Dm { email, fallback } => {
                let user = match email {
                    Some(email) => self.resolver.user(email).await?,
                    None => None,
                };
                match user {
                    Some(user) => {
                        message.channel = self.resolver.dm(&user).await?;
                        Ok(Some(self.post(&mut message, key).await?))
                    }
                    None => {
                        let fallback = fallback.as_ref().ok_or_else(|| {
                            DeliverError::Permanent("no Slack user and no fallback_channel".into())
                        })?;
                        let who = email.as_deref().unwrap_or("(no email on the record)");
                        tracing::warn!(%route, email = %who, %fallback, "no Slack user for this email; posting to the fallback channel");
                        room::note_unknown_person(&mut message, who);
                        message.channel = self.resolver.channel(fallback).await?;
                        Ok(Some(self.post(&mut message, key).await?))
                    }
                }
            }
            PlannedTarget::Thread { on, channel } => match self.announcement(on, event).await? {
                Some(parent) => {
                    message.channel = parent.channel;
                    message.thread_ts = Some(parent.ts);
                    Ok(Some(self.post(&mut message, key).await?))
                }
                None => {
                    self.await_announcement(routes, route, on, event, wait)
                        .await?;
                    self.post_instead(route, event, channel.as_ref(), message, on, key)
                        .await
                }
            },
            PlannedTarget::Update { on, channel } => {
                match self.announcement(on, event).await? {
                    Some(parent) => {
                        if !self.card_may_show(route, &parent, event).await? {
                            return Ok(Some(parent));
                        }
                        message.channel = parent.channel.clone();
                        let updated = self
                            .call("chat.update", Some(&parent.channel), || {
                                self.slack.update_message(&parent.ts, &message)
                            })
                            .await;
                        match updated {
                            Ok(_) => Ok(Some(parent)),
                            // Too old or deleted: a new message says it instead.
                            Err(DeliverError::Slack(SlackError::Api { code }))
                                if matches!(
                                    code.as_str(),
                                    "message_not_found"
                                        | "cant_update_message"
                                        | "edit_window_closed"
                                ) =>
                            {
                                tracing::info!(%route, %code, "cannot update the announcement; posting a new one");
                                message.channel.clear();
                                let channel = Some(ChannelRef::Id(parent.channel));
                                self.post_instead(route, event, channel.as_ref(), message, on, key)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => {
                        self.await_announcement(routes, route, on, event, wait)
                            .await?;
                        self.post_instead(route, event, channel.as_ref(), message, on, key)
                            .await
                    }
                }
            }
        }
    }

    /// A thread or update with no announcement to attach to: post anew when the route names a
    /// channel (and make that the record's announcement), otherwise skip.
    async fn post_instead(
        &self,
        route: &str,
        event: &Event,
        channel: Option<&ChannelRef>,
        mut message: Message,
        on: &str,
        key: &Key,
    ) -> Result<Option<Landed>, DeliverError> {
        let Some(channel) = channel else {
            tracing::info!(%route, %on, "no message of that route for this record; nothing to do");
            return Ok(None);
        };
        message.channel = self.resolver.channel(channel).await?;
        let landed = self.post(&mut message, key).await?;
        self.announce(on, event, &landed).await?;
        Ok(Some(landed))
    }

    /// Remembers where a record was announced by `route`, for later threads and updates.
    async fn announce(
        &self,
        route: &str,
        event: &Event,
        landed: &Landed,
    ) -> Result<(), DeliverError> {
        let key = Key::announced(route, &event.org_id, &event.record_id);
        let value = serde_json::to_string(landed).unwrap_or_default();
        if let Some(version) = event.version() {
            let card = Key::card_version(&landed.channel, &landed.ts);
            self.store
                .advance(card.as_str(), version, card.ttl())
                .await?;
        }
        self.store.set(key.as_str(), &value, key.ttl()).await?;
        Ok(())
    }

    /// Whether `event` may be shown on the card `parent`: it may unless the card already
    /// shows a later version of the record. The version is moved forward before the update is
    /// made, atomically, so of two updates racing for one card the older cannot win; an older
    /// one is skipped (as done) and counted.
    async fn card_may_show(
        &self,
        route: &str,
        parent: &Landed,
        event: &Event,
    ) -> Result<bool, DeliverError> {
        let Some(version) = event.version() else {
            return Ok(true); // nothing says when this change was made: nothing to compare
        };
        let card = Key::card_version(&parent.channel, &parent.ts);
        if self
            .store
            .advance(card.as_str(), version, card.ttl())
            .await?
        {
            return Ok(true);
        }
        metrics::counter!("sfrelay_stale_updates_skipped_total").increment(1);
        tracing::info!(%route, channel = %parent.channel, ts = %parent.ts, version, "the card shows a later version of this record; this older update is skipped");
        Ok(false)
    }

    /// A thread reply or update found no announcement of its record by route `on`: put the
    /// job off while one is on its way (that route has a job queued for the record, or this
    /// job was queued just now); otherwise the caller does without.
    async fn await_announcement(
        &self,
        routes: &RouteSet,
        route: &str,
        on: &str,
        event: &Event,
        wait: Wait,
    ) -> Result<(), DeliverError> {
        let marker = Key::announcing(on, &event.org_id, &event.record_id, wait.max_age);
        let queued = self.store.get(marker.as_str()).await?.is_some();
        if routes.get(on).is_none() {
            if !queued {
                return Ok(());
            }
            return Err(DeliverError::Permanent(format!(
                "waited for the record's announcement by route {on:?}, which no longer exists (reloaded?)"
            )));
        }
        if !queued && !wait.just_queued {
            return Ok(());
        }
        tracing::info!(%route, %on, "the record's announcement is not made yet; waiting for it");
        Err(DeliverError::NotYetAnnounced {
            route: on.to_string(),
        })
    }

    async fn announcement(
        &self,
        route: &str,
        event: &Event,
    ) -> Result<Option<Landed>, DeliverError> {
        self.read_json(&Key::announced(route, &event.org_id, &event.record_id))
            .await
    }

    /// What the store keeps at `key` as JSON (announcements, ledger entries, cards); an
    /// unreadable value counts as none.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, DeliverError> {
        Ok(self
            .store
            .get(key.as_str())
            .await?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }
}
