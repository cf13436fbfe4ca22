//! The keeper: turns each received batch into queued events and only then moves the cursor.
//!
//! Each event is decoded with its own schema (fetched once per schema id), becomes the same
//! body `/v1/cdc` takes, and goes through the same parser, so Pub/Sub and relayed CDC make the
//! same events with the same ids: `cdc:<transactionKey>:<sequenceNumber>:<record>`. Those ids
//! do not depend on the replay id, so a replay from the earliest retained event is recognised.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sfrelay_pubsub_wire::{FetchResponse, PubSubClient, SchemaRequest};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::change::{self, RawChange};
use super::connect::authed;
use super::decode::Schema;
use super::failure::{Failure, classify};
use super::{Context, Subscription, cursor};
use crate::event::{Event, GapEvent};
use crate::queue::{NewJob, now_ms};
use crate::salesforce::AccessToken;
use crate::task::{Task, event_jobs, gap_jobs};

/// How often a queue write is tried before the stream is reopened from the cursor (nothing is
/// lost either way: the cursor has not moved).
const QUEUE_TRIES: u32 = 8;

pub struct Keeper {
    ctx: Arc<Context>,
    sub: Arc<Subscription>,
    channel: Channel,
    token: Arc<AccessToken>,
}

impl Keeper {
    pub fn new(
        ctx: Arc<Context>,
        sub: Arc<Subscription>,
        channel: Channel,
        token: Arc<AccessToken>,
    ) -> Self {
        Keeper {
            ctx,
            sub,
            channel,
            token,
        }
    }

    /// Keeps batches in order until the stream closes or one cannot be kept.
    pub async fn run(self, mut batches: mpsc::Receiver<FetchResponse>) -> Failure {
        while let Some(batch) = batches.recv().await {
            if let Err(failure) = self.keep(batch).await {
                return failure;
            }
        }
        Failure::Stopped
    }

    async fn keep(&self, batch: FetchResponse) -> Result<(), Failure> {
        let org = &self.sub.org;
        let topic = &self.sub.topic;
        let Some(last) = batch.events.last().map(|e| e.replay_id.clone()) else {
            // A keepalive: nothing to queue, but its replay id keeps a quiet cursor fresh.
            if !batch.latest_replay_id.is_empty() {
                self.save_cursor(&batch.latest_replay_id).await?;
            }
            self.ctx.caught_up(&self.sub);
            return Ok(());
        };
        let received_at = chrono::Utc::now();
        let mut events: Vec<Event> = Vec::new();
        let mut gaps: Vec<GapEvent> = Vec::new();
        for consumer_event in batch.events {
            let Some(event) = consumer_event.event else {
                continue;
            };
            let schema = self.schema(&event.schema_id).await?;
            match change::read(&schema, &event.payload, org, received_at) {
                Ok(parsed) => {
                    events.extend(parsed.events);
                    gaps.extend(parsed.gaps);
                }
                Err(why) => {
                    let raw = RawChange {
                        org: org.clone(),
                        topic: topic.clone(),
                        replay_id: cursor::to_hex(&consumer_event.replay_id),
                        event_id: event.id.clone(),
                        schema_id: event.schema_id.clone(),
                        schema: schema.json().to_owned(),
                        payload: base64::engine::general_purpose::STANDARD.encode(&event.payload),
                    };
                    self.undecodable(raw, &why).await?;
                }
            }
        }
        for gap in gaps.iter().filter(|g| g.record_ids.is_empty()) {
            self.ctx
                .sweep_overflow(org, &gap.object, gap.commit_timestamp);
        }
        let now = now_ms();
        let mut jobs = event_jobs(&events, now).map_err(|e| Failure::Local(e.to_string()))?;
        jobs.extend(gap_jobs(&gaps, now).map_err(|e| Failure::Local(e.to_string()))?);
        if !jobs.is_empty() {
            let outcome = self.enqueue(&jobs).await?;
            let new = outcome
                .results
                .iter()
                .filter(|r| matches!(r, crate::queue::Enqueued::New(_)))
                .count();
            let duplicate = outcome.results.len() - new;
            for (outcome, n) in [("queued", new), ("duplicate", duplicate)] {
                metrics::counter!("sfrelay_pubsub_events_total", "org" => org.to_string(), "topic" => topic.clone(), "outcome" => outcome)
                    .increment(n as u64);
            }
            self.ctx.seen.accepted(&events).await;
        }
        self.save_cursor(&last).await?;
        self.ctx.caught_up_with(&self.sub, &events);
        Ok(())
    }

    /// Queues `jobs`, retrying a queue that is full or unreachable for a while.
    async fn enqueue(
        &self,
        jobs: &[crate::queue::NewJob],
    ) -> Result<crate::queue::EnqueueOutcome, Failure> {
        // Long enough that a replay from the earliest retained event (72 h) is still
        // recognised, whatever the ingest dedupe window.
        let dedupe_for = self.ctx.dedupe_window.max(super::REPLAY_HORIZON);
        self.retrying("queue change events", || {
            self.ctx.queue.enqueue_replicated(jobs, dedupe_for)
        })
        .await
    }

    /// Runs a queue write up to [`QUEUE_TRIES`] times, waiting longer after each failure; the
    /// cursor does not move meanwhile, so giving up loses nothing (the stream is reopened).
    async fn retrying<T, F, Fut>(&self, what: &str, mut write: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::queue::QueueError>>,
    {
        let mut wait = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            match write().await {
                Ok(done) => return Ok(done),
                Err(e) if tries >= QUEUE_TRIES => return Err(Failure::Local(e.to_string())),
                Err(e) => {
                    tracing::warn!(org = %self.sub.org, topic = %self.sub.topic, error = %e, "cannot {what} yet; the cursor waits");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn save_cursor(&self, replay_id: &[u8]) -> Result<(), Failure> {
        let now = now_ms();
        cursor::save(
            self.ctx.store.as_ref(),
            &self.sub.org,
            &self.sub.topic,
            replay_id,
            now,
        )
        .await
        .map_err(|e| Failure::Local(e.to_string()))?;
        self.ctx.status.cursor_saved(&self.sub, now);
        Ok(())
    }

    /// The schema `id` names, from the cache or `GetSchema`.
    async fn schema(&self, id: &str) -> Result<Arc<Schema>, Failure> {
        if let Some(schema) = self.ctx.cached_schema(id) {
            return Ok(schema);
        }
        let request = authed(
            SchemaRequest {
                schema_id: id.to_owned(),
            },
            &self.token,
            &self.sub.org,
        )
        .map_err(Failure::Auth)?;
        let mut client = PubSubClient::new(self.channel.clone())
            .max_decoding_message_size(self.ctx.config.max_message_bytes);
        let info = client
            .get_schema(request)
            .await
            .map_err(|s| classify(&s))?
            .into_inner();
        let schema = Schema::parse(&info.schema_json).map_err(|e| Failure::Config {
            code: "schema".into(),
            message: format!("schema {id} cannot be read: {e}"),
        })?;
        Ok(self.ctx.cache_schema(id, schema))
    }

    /// An event that cannot become a change: said loudly, counted, and kept whole in the
    /// dead-letter list before the cursor passes it (it can never read better on a second try
    /// of the same code, and holding the cursor would stop every later change). Replaying the
    /// letter reads it again.
    async fn undecodable(&self, raw: RawChange, why: &str) -> Result<(), Failure> {
        metrics::counter!(
            "sfrelay_pubsub_events_total",
            "org" => self.sub.org.to_string(),
            "topic" => self.sub.topic.clone(),
            "outcome" => "undecodable"
        )
        .increment(1);
        tracing::error!(
            org = %self.sub.org,
            topic = %self.sub.topic,
            replay_id = %raw.replay_id,
            event_id = %raw.event_id,
            error = why,
            "a Pub/Sub event cannot be read as a change; it is kept in the dead-letter list"
        );
        let reason = format!("change event cannot be read: {why}");
        let id = format!("pubsub:{}:{}", raw.topic, raw.replay_id);
        let task = Task::ChangeEvent {
            change: Box::new(raw),
        };
        let job = NewJob::new(id.clone(), id, &task, now_ms())
            .map_err(|e| Failure::Local(e.to_string()))?;
        self.retrying("keep the change event", || {
            self.ctx.queue.bury(&job, &reason)
        })
        .await
    }
}
