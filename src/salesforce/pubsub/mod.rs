//! sfrelay's own Change Data Capture subscriber over Salesforce's Pub/Sub API.
//!
//! Per org and topic of `[[orgs.subscribe]]`, one replica (the holder of a lease in the store)
//! keeps one stream open; each change it receives is decoded, queued exactly as `/v1/cdc`
//! would queue it, and only then does the cursor move. A restart resumes after the cursor; a
//! cursor past retention restarts from the earliest retained event plus a sweep.

pub mod bitmap;
mod change;
mod connect;
pub mod cursor;
pub mod decode;
mod failure;
mod keep;
mod session;
mod status;
mod supervisor;
mod sweep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{OrgConfig, PubsubConfig, Start as StartAt};
use crate::event::SalesforceId;
use crate::jobs::reconcile::SeenAtIngest;
use crate::queue::Queue;
use crate::salesforce::SalesforceClient;
use crate::store::Store;

pub use change::RawChange;
#[cfg(test)]
use change::read as change_read;
pub use failure::Failure;
pub use status::Statuses;
pub use supervisor::spawn_all;

/// How far back Salesforce keeps change events (72 hours), and so how long an event id must
/// be remembered for a replay from the earliest event to post nothing twice. An hour more for
/// the time a replay takes.
pub const REPLAY_HORIZON: Duration = Duration::from_secs(73 * 3600);

/// One `(org, topic)` stream to keep.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub org: SalesforceId,
    pub topic: String,
    pub start: StartAt,
    pub endpoint: String,
}

/// What every stream shares.
pub struct Context {
    pub client: Arc<SalesforceClient>,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub seen: Arc<SeenAtIngest>,
    pub config: PubsubConfig,
    pub dedupe_window: Duration,
    pub orgs: Vec<OrgConfig>,
    pub status: Arc<Statuses>,
    schemas: Mutex<HashMap<String, Arc<decode::Schema>>>,
    /// Subscriptions that restarted from the earliest event and owe a sweep from this time
    /// once they have caught up (their first keepalive).
    owed_sweeps: Mutex<HashMap<(SalesforceId, String), sweep::Owed>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<SalesforceClient>,
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        seen: Arc<SeenAtIngest>,
        config: PubsubConfig,
        dedupe_window: Duration,
        orgs: Vec<OrgConfig>,
        status: Arc<Statuses>,
    ) -> Self {
        Context {
            client,
            store,
            queue,
            seen,
            config,
            dedupe_window,
            orgs,
            status,
            schemas: Mutex::new(HashMap::new()),
            owed_sweeps: Mutex::new(HashMap::new()),
        }
    }

    fn cached_schema(&self, id: &str) -> Option<Arc<decode::Schema>> {
        let schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.get(id).cloned()
    }

    fn cache_schema(&self, id: &str, schema: decode::Schema) -> Arc<decode::Schema> {
        let schema = Arc::new(schema);
        let mut schemas = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
        schemas.insert(id.to_owned(), schema.clone());
        schema
    }

    /// Notes that `sub` owes a sweep from `since` once it has caught up, in the store too, so
    /// the replica that carries on after this one still runs it.
    async fn owe_sweep(&self, sub: &Subscription, since: DateTime<Utc>) -> Result<(), String> {
        let owed = sweep::Owed {
            since,
            from: Utc::now(),
        };
        let key = crate::keys::Key::pubsub_sweep(&sub.org, &sub.topic);
        let value = serde_json::to_string(&owed).map_err(|e| e.to_string())?;
        self.store
            .set(key.as_str(), &value, key.ttl())
            .await
            .map_err(|e| e.to_string())?;
        self.remember_owed(sub, owed);
        Ok(())
    }

    /// Picks up a sweep `sub` owes from the store (a stream is opening, perhaps on the
    /// replica that took over).
    async fn load_owed_sweep(&self, sub: &Subscription) -> Result<(), String> {
        let key = crate::keys::Key::pubsub_sweep(&sub.org, &sub.topic);
        let stored = self
            .store
            .get(key.as_str())
            .await
            .map_err(|e| e.to_string())?;
        match stored.map(|v| serde_json::from_str::<sweep::Owed>(&v)) {
            Some(Ok(owed)) => self.remember_owed(sub, owed),
            Some(Err(e)) => {
                tracing::error!(org = %sub.org, topic = %sub.topic, error = %e, "an owed sweep cannot be read; sweeping from Salesforce's retention instead")
            }
            None => {}
        }
        Ok(())
    }

    fn remember_owed(&self, sub: &Subscription, owed: sweep::Owed) {
        let mut all = self.owed_sweeps.lock().unwrap_or_else(|e| e.into_inner());
        let entry = all
            .entry((sub.org.clone(), sub.topic.clone()))
            .or_insert(owed);
        entry.since = entry.since.min(owed.since);
    }

    /// Whether `sub` owes a sweep and these events show it has caught up: one was committed
    /// after the stream restarted from the earliest event (a busy topic may never send a
    /// keepalive). Runs the sweep then.
    fn caught_up_with(self: &Arc<Self>, sub: &Subscription, events: &[crate::event::Event]) {
        let from = {
            let owed = self.owed_sweeps.lock().unwrap_or_else(|e| e.into_inner());
            match owed.get(&(sub.org.clone(), sub.topic.clone())) {
                Some(o) => o.from,
                None => return,
            }
        };
        let margin = chrono::Duration::seconds(5);
        if events
            .iter()
            .filter_map(|e| e.occurred_at)
            .any(|at| at + margin >= from)
        {
            self.caught_up(sub);
        }
    }

    /// `sub` has caught up (a keepalive, or an event newer than its restart): an owed sweep
    /// runs now, and is forgotten once it has run.
    fn caught_up(self: &Arc<Self>, sub: &Subscription) {
        let owed = {
            let mut owed = self.owed_sweeps.lock().unwrap_or_else(|e| e.into_inner());
            owed.remove(&(sub.org.clone(), sub.topic.clone()))
        };
        if let Some(owed) = owed {
            let ctx = self.clone();
            let sub = sub.clone();
            tokio::spawn(async move { sweep::owed(&ctx, &sub, owed).await });
        }
    }

    /// A `GAP_OVERFLOW` transaction changed too many records to list: sweep its object.
    fn sweep_overflow(
        self: &Arc<Self>,
        org: &SalesforceId,
        object: &str,
        at: Option<DateTime<Utc>>,
    ) {
        metrics::counter!("sfrelay_cdc_gap_events_total", "object" => object.to_owned())
            .increment(1);
        let since = at.unwrap_or_else(Utc::now) - chrono::Duration::minutes(1);
        let ctx = self.clone();
        let org = org.clone();
        let object = object.to_owned();
        tokio::spawn(async move {
            sweep::run(&ctx, &org, Some(&object), since).await;
        });
    }
}

/// The subscriptions the configuration asks for.
pub fn subscriptions(orgs: &[OrgConfig]) -> Vec<Subscription> {
    orgs.iter()
        .flat_map(|org| {
            org.subscribe.iter().map(|s| Subscription {
                org: org.id.clone(),
                topic: s.topic.clone(),
                start: s.start,
                endpoint: org.pubsub_endpoint.clone(),
            })
        })
        .collect()
}
