//! Salesforce's Pub/Sub API (`eventbus.v1.PubSub`) for Change Data Capture, served as gRPC
//! (h2c, plaintext HTTP/2) on the emulator's own port: a client's `pubsub_endpoint` is the
//! emulator's URL. Tests drive it with the control API below, over HTTP or, in-process, with
//! [`PubSubControl`] (from `Running::pubsub`).
//!
//! Every call needs the metadata `accesstoken` (a token from `/services/oauth2/token`, not
//! expired), `instanceurl` (non-empty) and `tenantid` (`00D000000000001`, or its 18-character
//! form); otherwise UNAUTHENTICATED with `error-code: sfdc.platform.eventbus.grpc.service.auth.error`.
//!
//! Topics: `/data/<Entity>ChangeEvent` for Opportunity, Account, Case, Lead and Contact,
//! `/data/ChangeEvents` (every entity) and channels `/data/<Name>__chn`. Each is an append-only
//! log; replay ids are 10 opaque bytes, reported here in hex. Events are raw Avro datums of
//! `com.sforce.eventbus.<Entity>ChangeEvent`, with Salesforce's field bitmaps.
//!
//! Streams honour credit (capped at 100 owed), send batches of at most `batch_max` (25), an
//! empty keepalive batch after `keepalive` (270 s) of silence while credit is owed, and end with
//! DEADLINE_EXCEEDED after `zero_credit_timeout` (60 s) at zero credit. A keepalive's
//! `latest_replay_id` is the topic's newest id (kept across purges; empty while a topic has
//! never had an event). Later fetch requests only add credit; their replay fields are ignored. `--pubsub-keepalive-ms`,
//! `--pubsub-zero-credit-timeout-ms` and `--pubsub-batch-max` set them at start.
//!
//! Control endpoints (JSON):
//! - `POST /_emulator/pubsub/publish` `{"entity": "Opportunity", "change_type": "UPDATE",
//!   "record_ids": ["006…"], "fields": {"StageName": "Closed Won", "CloseDate": "2025-09-30",
//!   "LastModifiedDate": "2025-09-30T16:00:00.000Z", …}, "changed"?: [names; default the keys
//!   of `fields`, `Parent.Child` for compound subfields], "nulled"?: [default the fields given
//!   as null], "diff"?: [], "transaction_key"?, "sequence_number"?: 1, "commit_timestamp"?: now
//!   ms, "change_origin"?, "commit_user"?, "truncate_payload"?: bytes to keep of the datum (an
//!   undecodable event)}` → `{"replay_ids": {topic: hex}, "schema_id",
//!   "event_id"}`; an array publishes in order and answers an array. `GAP_*` events take no
//!   fields; `GAP_OVERFLOW` defaults its record ids to `["000000000000000AAA"]`. A field of the
//!   wrong type or unknown → 400 `{"error"}` naming it.
//! - `POST /_emulator/pubsub/fields` `{"entity", "name", "kind": "string"|"double"|"boolean"|
//!   "int"|"datetime"|"date"|"address"|"person_name"|"compound", "subfields"?: […]}`: appends a
//!   field, a new schema version (events already published keep theirs) → `{"schema_id"}`
//! - `POST /_emulator/pubsub/channels` `{"name": "/data/Sales__chn", "entities": ["Opportunity"]}`
//! - `POST /_emulator/pubsub/purge` `{"topic"?: all if absent, "keep_last"?: 0, "up_to"?: hex}`
//!   → `{"purged": n}`; a CUSTOM subscribe from a purged id fails `…replayid.corrupted`
//! - `POST /_emulator/pubsub/faults` `{"topic"?: all if absent, "fault": "stall"|"drop"|
//!   "unavailable"|"auth_error"|"duplicate", "times"?: 1, "count"?: 1}` → `{"streams": n}`:
//!   `stall` silences open streams (no keepalives either) until they close; `drop` ends them
//!   with UNAVAILABLE; `unavailable` refuses the next `times` Subscribe calls with UNAVAILABLE
//!   and `…service.unavailable`; `auth_error` ends open streams with UNAUTHENTICATED and
//!   `…auth.error` and invalidates every issued access token; `duplicate` sends the last `count`
//!   delivered events again (within credit)
//! - `POST /_emulator/pubsub/timing` `{"keepalive_ms"?, "zero_credit_timeout_ms"?,
//!   "batch_max"?}` → the timing now in force (`GET` shows it); applies to open streams too
//! - `GET /_emulator/pubsub/streams` → `[{"id", "topic", "preset", "replay_id", "open",
//!   "opened_at", "closed_at", "closed_because", "events_sent", "keepalives_sent", "starved",
//!   "longest_starved_ms", "credit_requested_total"}]`; `starved` counts the times an event was
//!   ready while credit was 0
//! - `GET /_emulator/pubsub/topics` → `{topic: {"retained", "first_replay_id",
//!   "last_replay_id", "newest_replay_id", "schema_ids", "schema_id", "source"}}`
//! - `GET /_emulator/pubsub/schemas/{id}` → the schema JSON

mod http;
mod publish;
mod schemas;
mod service;
mod state;
mod stream;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::http::Shared;
use schemas::{Field, Kind};
use state::{Refusals, Source, State, Timing, unhex};

/// The bus: its state behind one lock, and the signal that wakes every stream when it changes.
pub struct Hub {
    state: Mutex<State>,
    wake: watch::Sender<u64>,
    emulator: Shared,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every stream to look again.
    fn changed(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A fault the control API injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    Stall,
    Drop,
    Unavailable,
    AuthError,
    Duplicate,
}

/// The Rust control API of a running emulator's event bus; the HTTP endpoints call it.
#[derive(Clone)]
pub struct PubSubControl(Arc<Hub>);

impl std::fmt::Debug for PubSubControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PubSubControl")
    }
}

impl PubSubControl {
    /// A bus over the org `emulator` (whose tokens it accepts).
    pub(crate) fn new(emulator: Shared, timing: Timing) -> PubSubControl {
        PubSubControl(Arc::new(Hub {
            state: Mutex::new(State::new(timing)),
            wake: watch::channel(0).0,
            emulator,
        }))
    }

    /// The gRPC service and the control endpoints, for the emulator's router.
    pub(crate) fn router(&self) -> Router {
        let grpc = sfrelay_pubsub_wire::PubSubServer::new(service::Service(Arc::clone(&self.0)));
        http::router(self.clone()).route_service("/eventbus.v1.PubSub/{*method}", grpc)
    }

    /// Publishes one change event (a JSON object) or several (an array), as
    /// `POST /_emulator/pubsub/publish` does.
    pub fn publish(&self, body: Value) -> Result<Value, String> {
        let answer = publish::publish(&mut self.0.lock(), body)?;
        self.0.changed();
        Ok(answer)
    }

    /// Appends a field to an entity: a new schema version; answers its id.
    pub fn add_field(
        &self,
        entity: &str,
        name: &str,
        kind: &str,
        subfields: Option<Vec<String>>,
    ) -> Result<String, String> {
        let kind = Kind::parse(kind, subfields)?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad field name `{name}`"));
        }
        let mut state = self.0.lock();
        let entity = state
            .entities
            .get_mut(entity)
            .ok_or_else(|| format!("unknown entity {entity}"))?;
        entity.add_field(Field {
            name: name.to_owned(),
            kind,
        })?;
        let (id, json) = (entity.schema.id.clone(), entity.schema.json.clone());
        state.schemas.insert(id.clone(), json);
        Ok(id)
    }

    /// Creates (or re-points) a custom channel `/data/<Name>__chn` fed by `entities`.
    pub fn create_channel(&self, name: &str, entities: Vec<String>) -> Result<(), String> {
        let valid = name
            .strip_prefix("/data/")
            .and_then(|n| n.strip_suffix("__chn"))
            .is_some_and(|n| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !valid {
            return Err(format!("a channel is named /data/<Name>__chn, not {name}"));
        }
        let mut state = self.0.lock();
        if let Some(unknown) = entities.iter().find(|e| !state.entities.contains_key(*e)) {
            return Err(format!("unknown entity {unknown}"));
        }
        match state.topics.get_mut(name) {
            Some(topic) => topic.source = Source::Channel(entities),
            None => {
                state.topics.insert(
                    name.to_owned(),
                    state::Topic::new(Source::Channel(entities)),
                );
            }
        }
        Ok(())
    }

    /// Drops retained events: all but the newest `keep_last`, or (with `up_to`, a hex replay
    /// id) every event up to and including it; of one topic or of all. Answers how many went.
    pub fn purge(
        &self,
        topic: Option<&str>,
        keep_last: usize,
        up_to: Option<&str>,
    ) -> Result<usize, String> {
        let mut state = self.0.lock();
        let names: Vec<String> = match topic {
            Some(t) if state.topics.contains_key(t) => vec![t.to_owned()],
            Some(t) => return Err(format!("unknown topic {t}")),
            None => state.topics.keys().cloned().collect(),
        };
        let mut purged = 0;
        for name in names {
            let Some(topic) = state.topics.get_mut(&name) else {
                continue;
            };
            purged += match up_to {
                Some(hex) => {
                    let id = unhex(hex).ok_or_else(|| format!("up_to is not hex: {hex}"))?;
                    match topic.position_of(&id) {
                        Ok(position) => topic.purge_up_to(position),
                        Err(_) => return Err(format!("{hex} is not retained in {name}")),
                    }
                }
                None => topic.purge_keep_last(keep_last),
            };
        }
        drop(state);
        self.0.changed();
        Ok(purged)
    }

    /// Injects a fault on the streams of `topic` (all topics if `None`); answers how many open
    /// streams it reached (for `unavailable`, the refusals queued).
    pub fn fault(&self, topic: Option<&str>, fault: Fault, times: u32, count: usize) -> usize {
        let mut state = self.0.lock();
        let reached = match fault {
            Fault::Unavailable => {
                state.refusals.push(Refusals {
                    topic: topic.map(str::to_owned),
                    times,
                });
                times as usize
            }
            _ => {
                let mut n = 0;
                for record in state.streams.iter_mut().filter(|s| s.open) {
                    if topic.is_some_and(|t| t != record.topic) {
                        continue;
                    }
                    match fault {
                        Fault::Stall => record.stall = true,
                        Fault::Drop => record.drop = true,
                        Fault::AuthError => record.auth_error = true,
                        Fault::Duplicate => record.duplicate = count,
                        Fault::Unavailable => {}
                    }
                    n += 1;
                }
                n
            }
        };
        drop(state);
        if fault == Fault::AuthError {
            self.0
                .emulator
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .expire_tokens();
        }
        self.0.changed();
        reached
    }

    /// Changes the streams' pacing (open ones too); answers the timing now in force.
    pub fn set_timing(
        &self,
        keepalive: Option<Duration>,
        zero_credit_timeout: Option<Duration>,
        batch_max: Option<u32>,
    ) -> Result<Value, String> {
        if keepalive.is_some_and(|d| d.is_zero())
            || zero_credit_timeout.is_some_and(|d| d.is_zero())
        {
            return Err("durations must be at least 1 ms".into());
        }
        if batch_max.is_some_and(|b| b == 0 || b > state::MAX_CREDIT) {
            return Err("batch_max must be 1 to 100".into());
        }
        let mut state = self.0.lock();
        let timing = &mut state.timing;
        timing.keepalive = keepalive.unwrap_or(timing.keepalive);
        timing.zero_credit_timeout = zero_credit_timeout.unwrap_or(timing.zero_credit_timeout);
        timing.batch_max = batch_max.unwrap_or(timing.batch_max);
        let out = timing.describe();
        drop(state);
        self.0.changed();
        Ok(out)
    }

    pub fn timing(&self) -> Value {
        self.0.lock().timing.describe()
    }

    /// Every Subscribe call so far, open or closed.
    pub fn streams(&self) -> Value {
        Value::Array(self.0.lock().streams.iter().map(|s| s.describe()).collect())
    }

    /// Each topic's retained events, first and last replay ids and schema ids.
    pub fn topics(&self) -> Value {
        let state = self.0.lock();
        let mut out = serde_json::Map::new();
        for (name, topic) in &state.topics {
            out.insert(name.clone(), topic.describe(state.topic_schema(name)));
        }
        Value::Object(out)
    }

    /// The JSON of schema `id`.
    pub fn schema(&self, id: &str) -> Option<String> {
        self.0.lock().schemas.get(id).cloned()
    }

    /// The current schema id of an entity.
    pub fn schema_id(&self, entity: &str) -> Option<String> {
        self.0
            .lock()
            .entities
            .get(entity)
            .map(|e| e.schema.id.clone())
    }
}

/// The timing the command line asks for.
pub(crate) fn timing_from_args(
    keepalive_ms: u64,
    zero_credit_timeout_ms: u64,
    batch_max: u32,
) -> Timing {
    Timing {
        keepalive: Duration::from_millis(keepalive_ms),
        zero_credit_timeout: Duration::from_millis(zero_credit_timeout_ms),
        batch_max,
    }
}

/// A control answer for an error.
fn error(message: &str) -> Value {
    json!({ "error": message })
}
