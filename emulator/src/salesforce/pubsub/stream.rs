//! One Subscribe stream: credit in from the client's fetch requests, batches out in log
//! order, keepalives when idle, the zero-credit timeout, and the faults the control API set.
//!
//! Each turn of the loop takes the lock once and decides one [`Step`]; it then sends, ends, or
//! waits for the earliest of a fetch request, a change on the bus (publish, fault, timing) or
//! its own deadline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use sfrelay_pubsub_wire::{ConsumerEvent, FetchRequest, FetchResponse, error_codes};
use tokio::sync::mpsc;
use tonic::{Code, Status};

use super::Hub;
use super::service::status;
use super::state::{Entry, MAX_CREDIT, State};

/// Where a stream is, kept by its task.
pub struct Cursor {
    pub stream: u64,
    pub topic: String,
    /// The next log position to deliver.
    pub next: u64,
    pub credit: u32,
    pub last_sent: Instant,
    pub zero_since: Option<Instant>,
    pub stalled: bool,
    /// Already delivered events to send again (the `duplicate` fault), before new ones.
    pub redeliver: VecDeque<Entry>,
}

impl Cursor {
    pub fn new(stream: u64, topic: String, next: u64, credit: u32, now: Instant) -> Cursor {
        Cursor {
            stream,
            topic,
            next,
            credit,
            last_sent: now,
            zero_since: (credit == 0).then_some(now),
            stalled: false,
            redeliver: VecDeque::new(),
        }
    }

    /// Adds a fetch request's credit, capped at the most a stream may be owed.
    pub fn add_credit(&mut self, state: &mut State, requested: i32) {
        let n = u32::try_from(requested).unwrap_or(0);
        self.credit = self.credit.saturating_add(n).min(MAX_CREDIT);
        if self.credit > 0 {
            self.zero_since = None;
        }
        if let Some(record) = state.stream_mut(self.stream) {
            record.credit_requested_total += u64::from(n);
        }
    }
}

/// What a stream does next.
pub enum Step {
    Send(FetchResponse),
    End(Status),
    /// Nothing to do until something changes or the deadline (none: only a change).
    Wait(Option<Instant>),
}

/// Decides the stream's next step from the bus's state.
pub fn step(state: &mut State, cur: &mut Cursor, now: Instant) -> Step {
    let timing = state.timing;
    let Some(record) = state.streams.iter_mut().find(|s| s.id == cur.stream) else {
        return Step::End(Status::internal("stream record missing"));
    };
    if record.drop {
        record.drop = false;
        return Step::End(Status::unavailable("connection reset by the event bus"));
    }
    if record.auth_error {
        record.auth_error = false;
        return Step::End(status(
            Code::Unauthenticated,
            "the access token is no longer valid",
            Some(error_codes::AUTH_ERROR),
        ));
    }
    if record.stall {
        record.stall = false;
        cur.stalled = true;
    }
    if cur.stalled {
        return Step::Wait(None);
    }
    if record.duplicate > 0 {
        let n = record.duplicate.min(record.delivered.len());
        record.duplicate = 0;
        let from = record.delivered.len() - n;
        let again: Vec<Entry> = record.delivered.iter().skip(from).cloned().collect();
        for entry in again.into_iter().rev() {
            cur.redeliver.push_front(entry);
        }
    }
    let Some(topic) = state.topics.get(&cur.topic) else {
        return Step::End(Status::not_found("the topic is gone"));
    };
    cur.next = cur.next.max(topic.start());
    let waiting = !cur.redeliver.is_empty() || cur.next < topic.end();
    let record = match state.streams.iter_mut().find(|s| s.id == cur.stream) {
        Some(r) => r,
        None => return Step::End(Status::internal("stream record missing")),
    };

    if cur.credit > 0 && waiting {
        let max = cur.credit.min(timing.batch_max.max(1)) as usize;
        let mut batch: Vec<Entry> = Vec::with_capacity(max);
        while batch.len() < max {
            match cur.redeliver.pop_front() {
                Some(e) => batch.push(e),
                None => break,
            }
        }
        let fresh = topic.read(cur.next, max - batch.len());
        if let Some(last) = fresh.last() {
            cur.next = last.position + 1;
        }
        batch.extend(fresh);
        record.end_starving(now);
        let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
        cur.credit -= n.min(cur.credit);
        if cur.credit == 0 {
            cur.zero_since = Some(now);
        }
        cur.last_sent = now;
        record.events_sent += u64::from(n);
        for entry in &batch {
            record.remember(entry);
        }
        let latest = batch
            .last()
            .map(|e| e.replay_id.clone())
            .unwrap_or_default();
        let events = batch
            .into_iter()
            .map(|e| ConsumerEvent {
                event: Some(e.event),
                replay_id: e.replay_id,
            })
            .collect();
        return Step::Send(response(events, latest, cur.credit));
    }

    if cur.credit == 0 {
        if waiting && record.starving_since.is_none() {
            record.starved += 1;
            record.starving_since = Some(now);
        }
        let since = *cur.zero_since.get_or_insert(now);
        let deadline = since + timing.zero_credit_timeout;
        if now >= deadline {
            return Step::End(Status::deadline_exceeded(format!(
                "no fetch request within {} ms of the credit running out",
                timing.zero_credit_timeout.as_millis()
            )));
        }
        return Step::Wait(Some(deadline));
    }

    let deadline = cur.last_sent + timing.keepalive;
    if now >= deadline {
        cur.last_sent = now;
        record.keepalives_sent += 1;
        return Step::Send(response(Vec::new(), topic.newest_replay_id(), cur.credit));
    }
    Step::Wait(Some(deadline))
}

fn response(events: Vec<ConsumerEvent>, latest: Vec<u8>, credit: u32) -> FetchResponse {
    FetchResponse {
        events,
        latest_replay_id: latest,
        rpc_id: super::publish::uuid(),
        pending_num_requested: i32::try_from(credit).unwrap_or(i32::MAX),
    }
}

/// The stream's task: runs until the client goes, the stream ends, or the emulator stops.
pub async fn run(
    hub: Arc<Hub>,
    mut cur: Cursor,
    mut inbound: tonic::Streaming<FetchRequest>,
    tx: mpsc::Sender<Result<FetchResponse, Status>>,
) {
    let mut wake = hub.wake.subscribe();
    let why = loop {
        wake.borrow_and_update();
        let next = step(&mut hub.lock(), &mut cur, Instant::now());
        match next {
            Step::Send(batch) => {
                if tx.send(Ok(batch)).await.is_err() {
                    break "client went away".to_owned();
                }
            }
            Step::End(status) => {
                let why = format!("{:?}: {}", status.code(), status.message());
                let _ = tx.send(Err(status)).await;
                break why;
            }
            Step::Wait(deadline) => {
                let sleep = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    request = inbound.message() => match request {
                        Ok(Some(request)) => {
                            cur.add_credit(&mut hub.lock(), request.num_requested);
                        }
                        Ok(None) => break "client closed its side".to_owned(),
                        Err(_) => break "client stream failed".to_owned(),
                    },
                    _ = wake.changed() => {}
                    () = sleep => {}
                    () = tx.closed() => break "client went away".to_owned(),
                }
            }
        }
    };
    let mut state = hub.lock();
    if let Some(record) = state.stream_mut(cur.stream) {
        record.open = false;
        record.delivered.clear();
        record.end_starving(Instant::now());
        record.closed_at = Some(crate::salesforce::emulator::now_rfc3339());
        record.closed_because = Some(why);
    }
}
