//! One live stream: subscribe, keep credit topped up from the receive loop, hand each batch to
//! the keeper in order, and end with the reason the stream stopped.
//!
//! Receiving and keeping run apart: a slow queue never delays the credit top-up, so Salesforce
//! always has credit to send with and never closes the stream for sitting at zero. The keeper
//! queues a batch's events durably and only then moves the cursor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sfrelay_pubsub_wire::{FetchRequest, FetchResponse, PubSubClient, ReplayPreset};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::connect::authed;
use super::failure::{Failure, classify};
use super::keep::Keeper;
use super::status::Phase;
use super::{Context, Subscription};
use crate::salesforce::AccessToken;

/// Batches received but not yet kept. Small: each holds at most `credit` events, and while
/// it is full the receive loop waits instead of reading further.
const BUFFERED_BATCHES: usize = 8;

/// Where the stream starts.
#[derive(Debug, Clone)]
pub struct Start {
    pub preset: ReplayPreset,
    pub replay_id: Vec<u8>,
}

/// Runs one stream until it fails, the lease is lost or `stop` fires.
pub async fn run(
    ctx: &Arc<Context>,
    sub: &Arc<Subscription>,
    channel: Channel,
    token: Arc<AccessToken>,
    start: Start,
    stop: CancellationToken,
) -> Failure {
    let credit = i32::try_from(ctx.config.credit).unwrap_or(100);
    let (requests, request_stream) = mpsc::channel::<FetchRequest>(16);
    let first = FetchRequest {
        topic_name: sub.topic.clone(),
        replay_preset: start.preset as i32,
        replay_id: start.replay_id.clone(),
        num_requested: credit,
        auth_refresh: String::new(),
    };
    if requests.send(first).await.is_err() {
        return Failure::Transient("request stream closed before subscribing".into());
    }
    let request = match authed(ReceiverStream::new(request_stream), &token, &sub.org) {
        Ok(request) => request,
        Err(e) => return Failure::Auth(e),
    };
    let mut client =
        PubSubClient::new(channel.clone()).max_decoding_message_size(ctx.config.max_message_bytes);
    let opened = tokio::select! {
        _ = stop.cancelled() => return Failure::Stopped,
        opened = client.subscribe(request) => opened,
    };
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => return classify(&status),
    };
    ctx.status.set_phase(sub, Phase::Connected);
    tracing::info!(org = %sub.org, topic = %sub.topic, preset = ?start.preset, "Pub/Sub stream open");

    let (batches, batch_stream) = mpsc::channel::<FetchResponse>(BUFFERED_BATCHES);
    let keeper = Keeper::new(ctx.clone(), sub.clone(), channel, token);
    let keeping = tokio::spawn(keeper.run(batch_stream));
    let mut keeping = std::pin::pin!(keeping);
    let failure = loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break Failure::Stopped,
            kept = &mut keeping => break match kept {
                Ok(failure) => failure,
                Err(e) => Failure::Local(format!("the keeper stopped: {e}")),
            },
            next = tokio::time::timeout(ctx.config.watchdog, stream.message()) => next,
        };
        let response = match next {
            Err(_) => break Failure::Stalled(ctx.config.watchdog),
            Ok(Err(status)) => break classify(&status),
            Ok(Ok(None)) => break Failure::Transient("the server ended the stream".into()),
            Ok(Ok(Some(response))) => response,
        };
        ctx.status.received(sub, response.events.len());
        // Top up at once, before the batch is kept, back to full: credit then runs out only
        // if a whole `credit` of events arrives within one round trip.
        let mut outstanding = response.pending_num_requested.clamp(0, credit);
        if outstanding < credit {
            let more = FetchRequest {
                topic_name: sub.topic.clone(),
                num_requested: credit - outstanding,
                ..FetchRequest::default()
            };
            if requests.send(more).await.is_err() {
                break Failure::Transient("request stream closed".into());
            }
            outstanding = credit;
        }
        ctx.status.credit(sub, outstanding);
        let sent = tokio::select! {
            _ = stop.cancelled() => break Failure::Stopped,
            sent = batches.send(response) => sent,
        };
        if sent.is_err() {
            // The keeper ended; its reason is read on the next turn.
            continue;
        }
    };
    drop(batches);
    // Let the keeper finish what it holds (it stops at the first batch it cannot keep), so
    // the cursor is as far as it can be before the stream is reopened.
    if !keeping.is_finished() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let _ = tokio::time::timeout_at(deadline.into(), &mut keeping).await;
        keeping.abort();
    }
    ctx.status.credit(sub, 0);
    failure
}
