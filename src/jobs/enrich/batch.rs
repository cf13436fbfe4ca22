//! Enrichment reads of many events combined into one query. A route's `[enrich]` query of the
//! common shape `SELECT … FROM Object WHERE Id = :record.Id` reads one row per event; events of one
//! org and one such query that are worked on at about the same time are read together with `WHERE
//! Id IN (…)` (up to [`MAX_IDS`] Ids), and each event takes its own row. A data load that closes a
//! thousand deals then costs a handful of API calls instead of a thousand.
//!
//! An event's Id joins a batch when the event is routed, ahead of its route job. The first Id opens
//! the batch; it is sent when it is full, when no Id joined it for a window (a few ms), or at the
//! latest ten windows after it opened. A few route jobs wait for it in place; the others are put
//! off for a window (their worker moves on, which is what lets the batch fill) and, when they come
//! back, find their row among the recent answers; one that comes back while its Id's query is still
//! on its way waits for that answer instead of reading the row again. An answer is only given to
//! events received before its query started, so no event sees a row older than itself. Batches
//! are per process: an event taken up by another replica joins that replica's batch.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, watch};

use crate::event::SalesforceId;
use crate::salesforce::{Record, SalesforceClient, SalesforceError, Soql};

/// The most Ids one combined query names (Salesforce's own batch size elsewhere; about 4 KB of
/// query text).
pub const MAX_IDS: usize = 200;

/// How long a combined query's answers are kept for the events that were put off.
const KEPT_FOR: Duration = Duration::from_secs(60);

/// The longest an event waits in place for its batch before it is put off instead.
const LONGEST_WAIT: Duration = Duration::from_secs(30);

/// A batch that keeps growing is sent at the latest this many windows after it opened.
const MOST_WINDOWS: u32 = 10;

/// What a read answered: the row (none when Salesforce has no such record, or the reader may
/// not see it), or why not.
pub type Answer = Result<Option<Record>, SalesforceError>;

/// What a request for a row gets.
#[derive(Debug)]
pub enum Lookup {
    Ready(Answer),
    /// Its batch is on its way: come back after this long.
    Later(Duration),
}

type Query = (SalesforceId, String);

/// An open batch: the Ids waiting for one query, and how to tell them it was sent.
struct Pending {
    /// Tells this batch from the next one of the same query, for the timer that sends it.
    generation: u64,
    opened: Instant,
    /// When the last Id joined: the batch is sent once none has joined for a window.
    joined: Instant,
    ids: HashSet<SalesforceId>,
    sent: watch::Sender<bool>,
}

/// One row as a combined query answered it, and when that query started.
struct Kept {
    started: DateTime<Utc>,
    at: Instant,
    answer: Answer,
}

/// A batch taken out of the open ones to be sent: its Ids, when its query started, and how
/// to tell its waiters it was answered.
struct Sending {
    ids: HashSet<SalesforceId>,
    started: DateTime<Utc>,
    sent: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    pending: HashMap<Query, Pending>,
    /// Ids whose query is on its way: an event asking for one waits for that answer rather than
    /// putting the Id in a new batch (which would read the same row twice).
    on_the_way: HashMap<(Query, SalesforceId), (DateTime<Utc>, watch::Receiver<bool>)>,
    kept: HashMap<(Query, SalesforceId), Kept>,
    generations: u64,
}

impl State {
    /// Takes the open batch of `query` out to be sent, noting its Ids as on their way.
    fn take_to_send(&mut self, query: &Query) -> Option<Sending> {
        let batch = self.pending.remove(query)?;
        let started = Utc::now();
        for id in &batch.ids {
            let waiting = (started, batch.sent.subscribe());
            self.on_the_way.insert((query.clone(), id.clone()), waiting);
        }
        Some(Sending {
            ids: batch.ids,
            started,
            sent: batch.sent,
        })
    }
}

/// Combines enrichment reads; shared by all workers of a process.
pub struct Batcher {
    window: Duration,
    /// How many events may wait in place at once; the rest are put off.
    in_place: Semaphore,
    state: Mutex<State>,
}

impl Batcher {
    /// `window`: how long a batch stays open; `in_place`: how many workers may wait in place.
    pub fn new(window: Duration, in_place: usize) -> Arc<Self> {
        Arc::new(Batcher {
            window,
            in_place: Semaphore::new(in_place.max(1)),
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The row of record `id` for `select_from` (see
    /// [`crate::salesforce::soql::select_by_record_id`]) in `org`, for an event received at
    /// `received`.
    pub async fn read(
        self: &Arc<Self>,
        client: &Arc<SalesforceClient>,
        org: &SalesforceId,
        select_from: &str,
        id: &SalesforceId,
        received: DateTime<Utc>,
    ) -> Lookup {
        let query: Query = (org.clone(), select_from.to_owned());
        let mut sent = {
            let mut state = self.state();
            if let Some(answer) = fresh(&state, &query, id, received) {
                return Lookup::Ready(answer);
            }
            match state.on_the_way.get(&(query.clone(), id.clone())) {
                // A query whose sender is gone (its task ended without answering) is not.
                Some((started, sent)) if *started >= received && sent.has_changed().is_ok() => {
                    sent.clone()
                }
                _ => self.join(&mut state, client, &query, id),
            }
        };
        let Ok(_permit) = self.in_place.try_acquire() else {
            return Lookup::Later(self.window + Duration::from_millis(5));
        };
        let waited = tokio::time::timeout(LONGEST_WAIT, sent.wait_for(|sent| *sent)).await;
        if !matches!(waited, Ok(Ok(_))) {
            return Lookup::Later(self.window);
        }
        match fresh(&self.state(), &query, id, received) {
            Some(answer) => Lookup::Ready(answer),
            None => Lookup::Later(self.window),
        }
    }

    /// Puts `id` in the open batch of `query`, opening one (and its timer) if none is open; a
    /// batch that is full is sent at once.
    fn join(
        self: &Arc<Self>,
        state: &mut State,
        client: &Arc<SalesforceClient>,
        query: &Query,
        id: &SalesforceId,
    ) -> watch::Receiver<bool> {
        let State {
            pending,
            generations,
            ..
        } = state;
        let pending = pending.entry(query.clone()).or_insert_with(|| {
            *generations += 1;
            let generation = *generations;
            let (batcher, client, query) = (self.clone(), client.clone(), query.clone());
            tokio::spawn(async move {
                if let Some(batch) = batcher.when_due(&query, generation).await {
                    batcher.send(&client, query, batch).await;
                }
            });
            let now = Instant::now();
            Pending {
                generation,
                opened: now,
                joined: now,
                ids: HashSet::new(),
                sent: watch::channel(false).0,
            }
        });
        if pending.ids.insert(id.clone()) {
            pending.joined = Instant::now();
        }
        let sent = pending.sent.subscribe();
        if pending.ids.len() >= MAX_IDS
            && let Some(full) = state.take_to_send(query)
        {
            let (batcher, client, query) = (self.clone(), client.clone(), query.clone());
            tokio::spawn(async move { batcher.send(&client, query, full).await });
        }
        sent
    }

    /// Waits until batch `generation` of `query` is due: no Id joined it for a window, or it
    /// has been open for [`MOST_WINDOWS`]; then takes it out of the open ones. `None` when it
    /// was sent already (it filled up).
    async fn when_due(&self, query: &Query, generation: u64) -> Option<Sending> {
        let mut wait = self.window;
        loop {
            tokio::time::sleep(wait).await;
            let mut state = self.state();
            let pending = state
                .pending
                .get(query)
                .filter(|p| p.generation == generation)?;
            let now = Instant::now();
            let quiet_at = pending.joined + self.window;
            let latest = pending.opened + self.window * MOST_WINDOWS;
            if now >= quiet_at.min(latest) {
                return state.take_to_send(query);
            }
            wait = quiet_at.min(latest) - now;
        }
    }

    /// Puts `id` in the open batch of `query` ahead of its event's route job, so the row is
    /// on its way (or there) when the job asks.
    pub fn prefetch(
        self: &Arc<Self>,
        client: &Arc<SalesforceClient>,
        org: &SalesforceId,
        select_from: &str,
        id: &SalesforceId,
    ) {
        let query: Query = (org.clone(), select_from.to_owned());
        let mut state = self.state();
        self.join(&mut state, client, &query, id);
    }

    /// Sends `batch` as one query and keeps each Id's answer.
    async fn send(&self, client: &SalesforceClient, query: Query, batch: Sending) {
        let started = batch.started;
        let ids: Vec<SalesforceId> = batch.ids.into_iter().collect();
        let answers = read_many(client, &query, &ids).await;
        metrics::counter!("sfrelay_enrich_batches_total").increment(1);
        metrics::histogram!("sfrelay_enrich_batch_size").record(ids.len() as f64);
        {
            let mut state = self.state();
            let now = Instant::now();
            state
                .kept
                .retain(|_, kept| now.duration_since(kept.at) < KEPT_FOR);
            state
                .on_the_way
                .retain(|_, (_, sent)| sent.has_changed().is_ok());
            for (id, answer) in ids.into_iter().zip(answers) {
                let key = (query.clone(), id.clone());
                if state
                    .on_the_way
                    .get(&key)
                    .is_some_and(|(at, _)| *at == started)
                {
                    state.on_the_way.remove(&key);
                }
                state.kept.insert(
                    (query.clone(), id),
                    Kept {
                        started,
                        at: now,
                        answer,
                    },
                );
            }
        }
        let _ = batch.sent.send(true);
    }
}

/// A kept answer for `id` from a query that started after the event was received.
fn fresh(
    state: &State,
    query: &Query,
    id: &SalesforceId,
    received: DateTime<Utc>,
) -> Option<Answer> {
    state
        .kept
        .get(&(query.clone(), id.clone()))
        .filter(|kept| kept.started >= received)
        .map(|kept| kept.answer.clone())
}

/// One query for `ids`; each Id's row, in the order of `ids`.
async fn read_many(
    client: &SalesforceClient,
    (org, select_from): &Query,
    ids: &[SalesforceId],
) -> Vec<Answer> {
    let mut params = Map::new();
    params.insert(
        "ids".into(),
        Value::Array(ids.iter().map(|id| Value::from(id.as_str())).collect()),
    );
    let soql = match Soql::bind(&format!("{select_from} WHERE Id IN :ids"), &params) {
        Ok(soql) => soql,
        Err(e) => {
            let refused =
                SalesforceError::InvalidArgument(format!("combined enrichment query: {e}"));
            return ids.iter().map(|_| Err(refused.clone())).collect();
        }
    };
    match super::super::read_capped(client, org, &soql, MAX_IDS).await {
        Ok((rows, _)) => {
            let mut by_id: HashMap<SalesforceId, Record> = rows
                .into_iter()
                .filter_map(|row| Some((crate::salesforce::record_id(&row)?, row)))
                .collect();
            ids.iter().map(|id| Ok(by_id.remove(id))).collect()
        }
        Err(e) => ids.iter().map(|_| Err(e.clone())).collect(),
    }
}
