//! Carries out one fired route against Slack: resolves channels and people, renders, posts,
//! and records what it did, so a retried or recovered job skips what is already done.
//!
//! The window between Slack accepting a post and the ledger write is closed for top-level posts
//! by a pending note and Slack message metadata (see `Deliverer::post`); thread replies, which
//! the channel history does not show, keep a window of one Redis round trip.

pub mod ratelimit;
pub mod resolve;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::OrgConfig;
use crate::event::{Event, SalesforceId};
use crate::render::template::{RenderContext, Rendered};
use crate::routing::route::Enrich;
use crate::routing::{ChannelRef, Dedupe, PlannedAction, PlannedTarget, RouteSet};
use crate::salesforce::{SalesforceClient, Soql};
use crate::slack::{Message, Retry, SlackError, SlackSink};
use ratelimit::{Limiter, Rate};
use resolve::Resolver;
use store::{Store, StoreError};

/// How long the ledger remembers a done action (longer than any job can live).
const LEDGER_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long a record's announcement can be threaded on or updated.
const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long a once-per-record route stays fired for a record.
const ONCE_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// Why a route could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Salesforce: {0}")]
    Salesforce(#[from] crate::salesforce::SalesforceError),
    /// Cannot succeed as things stand (unknown route or template, channel not found…).
    #[error("{0}")]
    Permanent(String),
    /// A rate limit has no room now: the job is put off (not a failed attempt).
    #[error("rate limited; try again in {} ms", wait.as_millis())]
    Busy { wait: Duration },
}

impl DeliverError {
    pub fn retry(&self) -> Retry {
        match self {
            DeliverError::Slack(e) => e.retry(),
            DeliverError::Store(_) => Retry::Later,
            DeliverError::Salesforce(e) => e.retry(),
            DeliverError::Permanent(_) => Retry::Never,
            DeliverError::Busy { .. } => Retry::Later,
        }
    }

    /// Whether Slack may have carried out the call despite the error (no answer, a 5xx): only
    /// then must a retry check before posting again.
    pub fn may_have_posted(&self) -> bool {
        match self {
            DeliverError::Slack(SlackError::Transport(_) | SlackError::Decode(_)) => true,
            DeliverError::Slack(SlackError::Http { status }) => *status >= 500,
            _ => false,
        }
    }

    /// When the job may go again without counting as a failed attempt.
    pub fn postpone_for(&self) -> Option<Duration> {
        match self {
            DeliverError::Busy { wait } => Some(*wait),
            DeliverError::Slack(SlackError::RateLimited { retry_after }) => Some(*retry_after),
            DeliverError::Salesforce(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// The metadata event type that marks sfrelay's posts.
const METADATA_EVENT_TYPE: &str = "sfrelay_delivery";

/// A post that was about to be made: where, and from when to search the history.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    channel: String,
    started_ms: i64,
}

/// Where a message landed: what the ledger and announcements keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landed {
    pub channel: String,
    pub ts: String,
}

/// One deliverer per Slack workspace: the default one, and one for each org with its own bot
/// token (`[orgs.slack]`). Everything else (store, routes, Salesforce) is shared.
pub struct Deliverers {
    default: Arc<Deliverer>,
    by_org: HashMap<SalesforceId, Arc<Deliverer>>,
}

impl Deliverers {
    pub fn new(default: Arc<Deliverer>, by_org: HashMap<SalesforceId, Arc<Deliverer>>) -> Self {
        Deliverers { default, by_org }
    }

    /// The deliverer that posts on behalf of `org`.
    pub fn for_org(&self, org: &SalesforceId) -> &Deliverer {
        self.by_org.get(org).unwrap_or(&self.default)
    }
}

impl std::ops::Deref for Deliverers {
    type Target = Deliverer;
    fn deref(&self) -> &Deliverer {
        &self.default
    }
}

/// The per-org facts templates need (record links).
#[derive(Debug, Default)]
pub struct OrgDirectory {
    instance_urls: HashMap<SalesforceId, String>,
}

impl OrgDirectory {
    pub fn new(orgs: &[OrgConfig]) -> Self {
        OrgDirectory {
            instance_urls: orgs
                .iter()
                .filter_map(|o| Some((o.id.clone(), o.instance_url.clone()?)))
                .collect(),
        }
    }

    pub fn instance_url(&self, org: &SalesforceId) -> Option<&str> {
        self.instance_urls.get(org).map(String::as_str)
    }
}

/// Executes routes. Shared by all workers.
pub struct Deliverer {
    pub slack: SlackSink,
    pub store: Arc<dyn Store>,
    pub routes: Arc<ArcSwap<RouteSet>>,
    pub orgs: Arc<OrgDirectory>,
    /// For route enrichment; `None` when no org has API credentials.
    pub salesforce: Option<Arc<SalesforceClient>>,
    resolver: Resolver,
    limiter: Limiter,
    /// Keeps this Slack workspace's state (names, limits, room names) apart in the store.
    prefix: String,
}

impl Deliverer {
    pub fn new(
        slack: SlackSink,
        store: Arc<dyn Store>,
        routes: Arc<ArcSwap<RouteSet>>,
        orgs: Arc<OrgDirectory>,
        channel_rate: Rate,
        salesforce: Option<Arc<SalesforceClient>>,
        prefix: String,
    ) -> Self {
        let limiter = Limiter::new(store.clone(), channel_rate, !slack.is_log(), prefix.clone());
        let resolver = Resolver::new(
            slack.clone(),
            store.clone(),
            limiter.clone(),
            prefix.clone(),
        );
        Deliverer {
            slack,
            store,
            routes,
            orgs,
            salesforce,
            resolver,
            limiter,
            prefix,
        }
    }

    /// A render context for `event` with the given resolved users and extra variables.
    pub fn context<'a>(
        &'a self,
        event: &'a Event,
        users: &'a HashMap<String, String>,
        extra: &'a serde_json::Value,
    ) -> RenderContext<'a> {
        RenderContext {
            event,
            instance_url: self.orgs.instance_url(&event.org_id),
            users,
            extra,
        }
    }

    /// Runs a route's enrichment query for this event: its first record becomes `name`, all
    /// records `<name>_records`. Values are bound, never pasted into the SOQL.
    async fn enrich(
        &self,
        enrich: &Enrich,
        event: &Event,
    ) -> Result<serde_json::Value, DeliverError> {
        let client = self.salesforce.as_ref().ok_or_else(|| {
            DeliverError::Permanent(format!(
                "the route enriches from Salesforce but org {} has no [orgs.salesforce] API credentials",
                event.org_id
            ))
        })?;
        let context = json!({
            "record": event.record,
            "prior": event.prior,
            "org_id": event.org_id,
            "object": event.object,
        });
        let soql = Soql::bind(
            &enrich.query,
            context.as_object().unwrap_or(&serde_json::Map::new()),
        )
        .map_err(|e| DeliverError::Permanent(format!("enrich.query: {e}")))?;
        let records = client.query(&event.org_id, &soql).await?;
        let first = records.first().cloned().map(serde_json::Value::Object);
        Ok(json!({
            enrich.name.clone(): first.unwrap_or(serde_json::Value::Null),
            format!("{}_records", enrich.name): records,
        }))
    }

    /// Carries out route `name` for `event`, skipping actions the ledger says are done.
    pub async fn deliver_route(&self, event: &Event, name: &str) -> Result<(), DeliverError> {
        self.deliver_route_with(event, name, serde_json::Value::Null)
            .await
    }

    /// Like `deliver_route`, with extra template variables (a digest's records).
    pub async fn deliver_route_with(
        &self,
        event: &Event,
        name: &str,
        base_extra: serde_json::Value,
    ) -> Result<(), DeliverError> {
        let routes = self.routes.load_full();
        let route = routes.get(name).ok_or_else(|| {
            DeliverError::Permanent(format!("route {name:?} no longer exists (reloaded?)"))
        })?;
        if route.dedupe == Dedupe::OncePerRecord {
            let key = format!("once:{name}:{}:{}", event.org_id, event.record_id);
            let ttl = route.dedupe_days.map_or(ONCE_TTL, |days| {
                Duration::from_secs(days.max(1) * 24 * 3600)
            });
            if let Some(holder) = self.store.claim(&key, &event.id, Some(ttl)).await?
                && holder != event.id
            {
                tracing::info!(route = %name, first_event = %holder, "route already fired for this record; not again");
                return Ok(());
            }
        }
        let mut extra = base_extra;
        if let Some(enrich) = &route.enrich {
            let enriched = self.enrich(enrich, event).await?;
            match (&mut extra, enriched) {
                (serde_json::Value::Object(base), serde_json::Value::Object(more)) => {
                    base.extend(more)
                }
                (slot, enriched) => *slot = enriched,
            }
        }
        let empty = HashMap::new();
        let actions = routes
            .plan(route, &self.context(event, &empty, &extra))
            .map_err(|e| DeliverError::Permanent(format!("route {name}: {e}")))?;
        for action in &actions {
            let ledger_key = format!("done:{}:{name}:{}", event.id, action.index);
            if let Some(done) = self.store.get(&ledger_key).await? {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                tracing::info!(route = %name, action = action.index, %done, "action already done; skipped");
                continue;
            }
            let Some(landed) = self
                .run_action(&routes, event, &extra, name, action, &ledger_key)
                .await?
            else {
                continue;
            };
            let value = serde_json::to_string(&landed).unwrap_or_default();
            self.store
                .set(&ledger_key, &value, Some(LEDGER_TTL))
                .await?;
            let latency = (chrono::Utc::now() - event.received_at)
                .to_std()
                .unwrap_or_default();
            metrics::histogram!("sfrelay_delivery_latency_seconds").record(latency.as_secs_f64());
            tracing::info!(route = %name, action = action.index, channel = %landed.channel, ts = %landed.ts, latency_ms = latency.as_millis() as u64, "delivered to Slack");
        }
        Ok(())
    }

    /// The records of a CDC gap event, fetched from Salesforce, as events to route — only when
    /// a route for that object asks for it (`on_gap = "fetch"`); otherwise none.
    pub async fn fetch_gap(
        &self,
        gap: &crate::ingest::cdc::GapEvent,
    ) -> Result<Vec<Event>, DeliverError> {
        let routes = self.routes.load_full();
        let wanted = routes.routes.iter().any(|r| {
            r.on_gap == crate::routing::OnGap::Fetch
                && r.object == gap.object
                && (r.orgs.is_empty() || r.orgs.contains(&gap.org_id))
        });
        if !wanted {
            tracing::info!(object = %gap.object, "gap event: no route fetches on gaps; ignored");
            return Ok(Vec::new());
        }
        let client = self.salesforce.as_ref().ok_or_else(|| {
            DeliverError::Permanent(format!(
                "a route fetches on gaps but org {} has no [orgs.salesforce] API credentials",
                gap.org_id
            ))
        })?;
        let change_type = match gap.change_type.as_str() {
            "GAP_CREATE" => crate::event::ChangeType::Create,
            "GAP_DELETE" => crate::event::ChangeType::Delete,
            "GAP_UNDELETE" => crate::event::ChangeType::Undelete,
            _ => crate::event::ChangeType::Update,
        };
        let mut events = Vec::with_capacity(gap.record_ids.len());
        for id in &gap.record_ids {
            let mut record = client
                .get_record(&gap.org_id, &gap.object, id.as_str(), &[])
                .await?;
            record.remove("attributes");
            record.insert("Id".into(), id.to_string().into());
            events.push(Event {
                id: uuid::Uuid::now_v7().to_string(),
                org_id: gap.org_id.clone(),
                object: gap.object.clone(),
                record_id: id.clone(),
                record,
                change_type,
                changed_fields: None,
                prior: None,
                event_id: None,
                occurred_at: gap.commit_timestamp,
                received_at: chrono::Utc::now(),
            });
        }
        Ok(events)
    }

    /// Runs a scheduled route for one org at one tick: queries Salesforce, then either
    /// delivers one digest now (its ledger keyed by the tick, so a retry never posts twice) or
    /// returns one event per record for the caller to deliver like any other.
    pub async fn run_scheduled(
        &self,
        name: &str,
        org: &SalesforceId,
        tick_ms: i64,
    ) -> Result<Vec<Event>, DeliverError> {
        let routes = self.routes.load_full();
        let route = routes.get(name).ok_or_else(|| {
            DeliverError::Permanent(format!("route {name:?} no longer exists (reloaded?)"))
        })?;
        let schedule = route
            .schedule
            .as_ref()
            .ok_or_else(|| DeliverError::Permanent(format!("route {name:?} is not scheduled")))?;
        let client = self.salesforce.as_ref().ok_or_else(|| {
            DeliverError::Permanent(format!(
                "org {org} has no [orgs.salesforce] API credentials"
            ))
        })?;
        let mut params = schedule.params.clone();
        params.insert("org_id".into(), org.to_string().into());
        let soql = Soql::bind(&schedule.query, &params)
            .map_err(|e| DeliverError::Permanent(format!("query: {e}")))?;
        let records = client.query(org, &soql).await?;
        let now = chrono::Utc::now();
        if schedule.each {
            let mut events = Vec::with_capacity(records.len());
            for mut record in records {
                record.remove("attributes");
                let Some(id) = record
                    .get("Id")
                    .and_then(|v| v.as_str())
                    .and_then(|id| SalesforceId::parse(id).ok())
                else {
                    tracing::warn!(route = %name, "a scheduled query returned a record without an Id; skipped");
                    continue;
                };
                record.insert("Id".into(), id.to_string().into());
                events.push(Event {
                    id: format!("{name}:{org}:{id}:{tick_ms}"),
                    org_id: org.clone(),
                    object: route.object.clone(),
                    record_id: id,
                    record,
                    change_type: crate::event::ChangeType::Update,
                    changed_fields: None,
                    prior: None,
                    event_id: None,
                    occurred_at: None,
                    received_at: now,
                });
            }
            return Ok(events);
        }
        let event = Event {
            id: format!("{name}:{org}:{tick_ms}"),
            org_id: org.clone(),
            object: route.object.clone(),
            record_id: org.clone(),
            record: serde_json::Map::new(),
            change_type: crate::event::ChangeType::Update,
            changed_fields: None,
            prior: None,
            event_id: None,
            occurred_at: chrono::DateTime::from_timestamp_millis(tick_ms),
            received_at: now,
        };
        self.deliver_route_with(&event, name, digest(records))
            .await?;
        Ok(Vec::new())
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
                .render(template, &self.context(event, users, extra))
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
    async fn run_action(
        &self,
        routes: &RouteSet,
        event: &Event,
        extra: &serde_json::Value,
        route: &str,
        action: &PlannedAction,
        key: &str,
    ) -> Result<Option<Landed>, DeliverError> {
        let rendered = self.render(routes, event, extra, &action.template).await?;
        let mut message = Message {
            channel: String::new(),
            text: rendered.text,
            blocks: rendered.blocks,
            thread_ts: None,
            unfurl_links: false,
            metadata: None,
        };
        match &action.target {
            PlannedTarget::Room { name, invite } => {
                let room_key = format!("room:{route}:{}:{}", event.org_id, event.record_id);
                let channel = self.room(name, &room_key).await?;
                let missing = self.invite(&channel, invite).await?;
                if !missing.is_empty() {
                    note_missing_people(&mut message, &missing);
                }
                message.channel = channel;
                let landed = self.post(&mut message, key).await?;
                self.announce(route, event, &landed).await?;
                Ok(Some(landed))
            }
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
                        note_unknown_person(&mut message, who);
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
                    self.post_instead(route, event, channel.as_ref(), message, on, key)
                        .await
                }
            },
            PlannedTarget::Update { on, channel } => {
                match self.announcement(on, event).await? {
                    Some(parent) => {
                        message.channel = parent.channel.clone();
                        let updated = self
                            .limiter
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
        key: &str,
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

    /// Posts at most once per ledger `key`, even across crashes. Before posting, a `pending`
    /// note records where and when; the post carries `key` in its metadata. If a note is
    /// found on a later attempt, the earlier attempt may have reached Slack without the ledger
    /// hearing of it, so the channel's history is searched for the key first. (Thread replies
    /// are not in the channel history; for them the window stays one Redis round trip.)
    async fn post(&self, message: &mut Message, key: &str) -> Result<Landed, DeliverError> {
        message.metadata = Some(json!({
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": { "key": key },
        }));
        let pending_key = format!("pending:{key}");
        if !self.slack.is_log() {
            if let Some(pending) = self.store.get(&pending_key).await?
                && let Ok(pending) = serde_json::from_str::<Pending>(&pending)
                && message.thread_ts.is_none()
                && let Some(found) = self.find_posted(&pending, key).await?
            {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                tracing::warn!(%key, ts = %found.ts, "an earlier attempt had already posted this; not posting again");
                return Ok(found);
            }
            let pending = Pending {
                channel: message.channel.clone(),
                started_ms: crate::queue::now_ms(),
            };
            let value = serde_json::to_string(&pending).unwrap_or_default();
            self.store
                .set(&pending_key, &value, Some(LEDGER_TTL))
                .await?;
        }
        let posted = self
            .limiter
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
                    self.store.delete(&pending_key).await?;
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
        key: &str,
    ) -> Result<Option<Landed>, DeliverError> {
        let oldest_ms = pending.started_ms.saturating_sub(60_000).max(0);
        let oldest = format!("{}.{:06}", oldest_ms / 1000, (oldest_ms % 1000) * 1000);
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let page = self
                .limiter
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
                    && metadata["event_payload"]["key"] == key
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

    /// The record's room: the one made before (by any attempt, on any replica), or a new
    /// private channel. Each name is claimed in the store before Slack is asked, so after a
    /// crash between Slack's answer and ours, `name_taken` is recognised as our own room and
    /// reused; a name taken by anything else gets a suffix (`-2`, `-3`, …).
    async fn room(&self, name: &str, room_key: &str) -> Result<String, DeliverError> {
        if let Some(id) = self.store.get(room_key).await? {
            return Ok(id);
        }
        for n in 1..=10 {
            let candidate = if n == 1 {
                name.to_string()
            } else {
                let suffix = format!("-{n}");
                let stem: String = name.chars().take(80 - suffix.len()).collect();
                format!("{}{suffix}", stem.trim_end_matches('-'))
            };
            let claim_key = format!("{}roomname:{candidate}", self.prefix);
            let holder = self.store.claim(&claim_key, room_key, None).await?;
            if holder.as_deref().is_some_and(|h| h != room_key) {
                continue; // another record's room, or known to be someone else's channel
            }
            let created = self
                .limiter
                .call("conversations.create", None, || {
                    self.slack.create_private_channel(&candidate)
                })
                .await;
            let id = match created {
                Ok(id) => id,
                Err(DeliverError::Slack(SlackError::Api { code })) if code == "name_taken" => {
                    if holder.is_none() {
                        // Claimed just now, so not made by us: someone else's channel.
                        self.store.set(&claim_key, "taken", None).await?;
                        continue;
                    }
                    // Claimed by an earlier attempt for this record: our room, made before
                    // that attempt could note its Id.
                    self.resolver
                        .channel(&ChannelRef::Name(candidate.clone()))
                        .await?
                }
                Err(e) => return Err(e),
            };
            self.store.set(room_key, &id, None).await?;
            tracing::info!(room = %candidate, channel = %id, "deal room ready");
            return Ok(id);
        }
        Err(DeliverError::Permanent(format!(
            "no free channel name for the room {name:?} (tried 10)"
        )))
    }

    /// Invites these people (by email) to `channel`, at most 100 per call; being in the channel
    /// already is success. Returns the emails that could not be invited, so the room says so
    /// instead of failing.
    async fn invite(&self, channel: &str, emails: &[String]) -> Result<Vec<String>, DeliverError> {
        let mut missing = Vec::new();
        let mut users = Vec::new();
        for email in emails {
            match self.resolver.user(email).await? {
                Some(id) => users.push((email.clone(), id)),
                None => missing.push(email.clone()),
            }
        }
        for batch in users.chunks(100) {
            let ids: Vec<String> = batch.iter().map(|(_, id)| id.clone()).collect();
            match self.invite_call(channel, &ids).await {
                Ok(()) => continue,
                // One refusal can sink the whole call: invite one by one to know who.
                Err(DeliverError::Slack(SlackError::Api { .. })) if batch.len() > 1 => {
                    for (email, id) in batch {
                        match self.invite_call(channel, std::slice::from_ref(id)).await {
                            Ok(()) => {}
                            Err(DeliverError::Slack(SlackError::Api { code })) => {
                                tracing::warn!(%email, %code, "cannot invite to the room");
                                missing.push(email.clone());
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(DeliverError::Slack(SlackError::Api { code })) => {
                    tracing::warn!(email = %batch[0].0, %code, "cannot invite to the room");
                    missing.push(batch[0].0.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(missing)
    }

    async fn invite_call(&self, channel: &str, users: &[String]) -> Result<(), DeliverError> {
        match self
            .limiter
            .call("conversations.invite", None, || {
                self.slack.invite(channel, users)
            })
            .await
        {
            Err(DeliverError::Slack(SlackError::Api { code }))
                if code == "already_in_channel" || code == "cant_invite_self" =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Remembers where a record was announced by `route`, for later threads and updates.
    async fn announce(
        &self,
        route: &str,
        event: &Event,
        landed: &Landed,
    ) -> Result<(), DeliverError> {
        let key = format!("ann:{route}:{}:{}", event.org_id, event.record_id);
        let value = serde_json::to_string(landed).unwrap_or_default();
        self.store.set(&key, &value, Some(ANNOUNCEMENT_TTL)).await?;
        Ok(())
    }

    async fn announcement(
        &self,
        route: &str,
        event: &Event,
    ) -> Result<Option<Landed>, DeliverError> {
        let key = format!("ann:{route}:{}:{}", event.org_id, event.record_id);
        Ok(self
            .store
            .get(&key)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }
}

/// What a digest template sees: every record, the count and total amount, totals by stage
/// (largest first) and the ten largest records. Templates show the summaries, so a digest stays
/// inside Slack's limits however many records there are.
pub fn digest(mut records: Vec<crate::salesforce::Record>) -> serde_json::Value {
    for record in &mut records {
        record.remove("attributes");
    }
    let amount =
        |r: &crate::salesforce::Record| r.get("Amount").and_then(|a| a.as_f64()).unwrap_or(0.0);
    let total: f64 = records.iter().map(amount).sum();
    let mut stages: Vec<(String, usize, f64)> = Vec::new();
    for record in &records {
        let stage = record
            .get("StageName")
            .and_then(|s| s.as_str())
            .unwrap_or("(none)")
            .to_string();
        match stages.iter_mut().find(|(s, _, _)| *s == stage) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += amount(record);
            }
            None => stages.push((stage, 1, amount(record))),
        }
    }
    stages.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut largest = records.clone();
    largest.sort_by(|a, b| amount(b).total_cmp(&amount(a)));
    largest.truncate(10);
    json!({
        "count": records.len(),
        "total_amount": total,
        "by_stage": stages
            .iter()
            .map(|(stage, count, amount)| json!({"stage": stage, "count": count, "amount": amount}))
            .collect::<Vec<_>>(),
        "largest": largest,
        "records": records,
    })
}

/// Lists, at the end of a room's briefing, the people who could not be invited.
fn note_missing_people(message: &mut Message, missing: &[String]) {
    let list = missing
        .iter()
        .map(|m| crate::render::mrkdwn::escape(m).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let note = format!("Not in Slack or could not be invited: {list}");
    if message.blocks.len() >= crate::render::limits::max::BLOCKS {
        message.blocks.pop();
    }
    let text: String = note
        .chars()
        .take(crate::render::limits::max::SECTION_TEXT)
        .collect();
    message
        .blocks
        .push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
}

/// Says, at the top of a message sent to a fallback channel, whom it was meant for.
fn note_unknown_person(message: &mut Message, who: &str) {
    let note = format!(
        "Meant as a direct message to {}, but Slack has no user with that email.",
        crate::render::mrkdwn::escape(who)
    );
    message.blocks.insert(
        0,
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}),
    );
    if message.blocks.len() > crate::render::limits::max::BLOCKS {
        message.blocks.pop();
    }
    message.text = format!("{note}\n{}", message.text);
}
