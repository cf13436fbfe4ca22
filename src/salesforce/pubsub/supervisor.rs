//! One task per subscription: hold the lease, open streams, and decide after each ends what
//! comes next — a new token, the earliest event, a short backoff or a long one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sfrelay_pubsub_wire::ReplayPreset;
use tokio_util::sync::CancellationToken;

use super::failure::Failure;
use super::session::{self, Start};
use super::status::Phase;
use super::{Context, Subscription, cursor};
use crate::config::Start as StartAt;
use crate::keys::Key;

/// Starts one supervisor per subscription; each ends when `stop` fires, letting go of its
/// lease so another replica takes over at once.
pub fn spawn_all(ctx: Arc<Context>, subs: Vec<Subscription>, stop: CancellationToken) {
    let holder = uuid::Uuid::now_v7().to_string();
    for sub in subs {
        super::sweep::warn_if_unsweepable(&ctx, &sub);
        ctx.status.set_phase(&sub, Phase::Starting);
        let ctx = ctx.clone();
        let stop = stop.clone();
        let holder = holder.clone();
        tokio::spawn(async move { supervise(ctx, Arc::new(sub), holder, stop).await });
    }
}

/// Sleeps `wait` unless `stop` fires first; answers whether it slept the whole time.
async fn pause(wait: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// `wait` with up to a fifth of it added at random, so replicas do not reconnect in step.
fn jitter(wait: Duration) -> Duration {
    let extra = rand::rng().random_range(0.0..0.2);
    wait + wait.mul_f64(extra)
}

async fn supervise(
    ctx: Arc<Context>,
    sub: Arc<Subscription>,
    holder: String,
    stop: CancellationToken,
) {
    let lease = Key::pubsub_lease(&sub.org, &sub.topic, ctx.config.lease);
    let channel = match super::connect::channel(&sub.endpoint) {
        Ok(channel) => channel,
        Err(e) => {
            ctx.status.failed(&sub, Phase::Degraded, &e);
            tracing::error!(org = %sub.org, topic = %sub.topic, error = %e, "cannot subscribe");
            return;
        }
    };
    let mut backoff = ctx.config.backoff_min;
    let mut earliest = false;
    let mut token = None;
    while !stop.is_cancelled() {
        // Only the lease holder streams; the others wait to take over.
        match ctx.store.claim(lease.as_str(), &holder, lease.ttl()).await {
            Ok(None) => {}
            Ok(Some(other)) if other == holder => {}
            Ok(Some(_)) => {
                ctx.status.set_phase(&sub, Phase::Standby);
                if !pause(ctx.config.lease / 3, &stop).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                ctx.status.failed(&sub, Phase::Reconnecting, &e.to_string());
                if !pause(jitter(backoff), &stop).await {
                    break;
                }
                continue;
            }
        }
        let stream_stop = stop.child_token();
        let renewing = tokio::spawn(keep_lease(
            ctx.clone(),
            lease.clone(),
            holder.clone(),
            stream_stop.clone(),
        ));
        let failure = stream_once(
            &ctx,
            &sub,
            channel.clone(),
            &mut token,
            &mut earliest,
            &stream_stop,
        )
        .await;
        stream_stop.cancel();
        let lost = renewing.await.unwrap_or(true);
        let failure = if lost && failure == Failure::Stopped && !stop.is_cancelled() {
            Failure::LeaseLost
        } else {
            failure
        };
        if failure == Failure::Stopped {
            break;
        }
        metrics::counter!(
            "sfrelay_pubsub_resubscribes_total",
            "org" => sub.org.to_string(),
            "topic" => sub.topic.clone(),
            "reason" => failure.reason()
        )
        .increment(1);
        let wait = match &failure {
            Failure::Auth(_) | Failure::LeaseLost => Duration::ZERO,
            Failure::ReplayIdCorrupted(_) => Duration::ZERO,
            Failure::Config { .. } => {
                ctx.status
                    .failed(&sub, Phase::Degraded, &failure.to_string());
                tracing::error!(org = %sub.org, topic = %sub.topic, error = %failure, "the subscription cannot work as configured; retrying rarely");
                ctx.config.config_backoff
            }
            Failure::Stalled(_) | Failure::Transient(_) | Failure::Local(_) => {
                ctx.status
                    .failed(&sub, Phase::Reconnecting, &failure.to_string());
                tracing::warn!(org = %sub.org, topic = %sub.topic, error = %failure, "Pub/Sub stream ended; resuming after the cursor");
                let wait = jitter(backoff);
                backoff = (backoff * 2).min(ctx.config.backoff_max);
                wait
            }
            Failure::Stopped => Duration::ZERO,
        };
        if matches!(failure, Failure::Auth(_)) {
            tracing::info!(org = %sub.org, topic = %sub.topic, "Pub/Sub refused the token; getting a new one");
            if let Some(stale) = token.take() {
                token = ctx.client.renew_access_token(&sub.org, &stale).await.ok();
            }
        }
        if wait > Duration::ZERO && !pause(wait, &stop).await {
            break;
        }
        if matches!(
            failure,
            Failure::Stalled(_) | Failure::Transient(_) | Failure::Local(_)
        ) {
            continue;
        }
        backoff = ctx.config.backoff_min;
    }
    let _ = ctx.store.release(lease.as_str(), &holder).await;
}

/// Renews the lease at a third of its life until `stop`; cancels `stop` and answers `true`
/// when the lease was lost (another replica holds it, or the store failed for too long).
async fn keep_lease(
    ctx: Arc<Context>,
    lease: Key,
    holder: String,
    stop: CancellationToken,
) -> bool {
    let ttl = ctx.config.lease;
    let mut last_renewed = Instant::now();
    loop {
        if !pause(ttl / 3, &stop).await {
            return false;
        }
        match ctx.store.renew(lease.as_str(), &holder, ttl).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                stop.cancel();
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the Pub/Sub lease");
                if last_renewed.elapsed() >= ttl {
                    stop.cancel();
                    return true;
                }
            }
        }
    }
}

/// Gets a token, works out where to start, and runs one stream.
async fn stream_once(
    ctx: &Arc<Context>,
    sub: &Arc<Subscription>,
    channel: tonic::transport::Channel,
    token: &mut Option<Arc<crate::salesforce::AccessToken>>,
    earliest: &mut bool,
    stop: &CancellationToken,
) -> Failure {
    let current = match token {
        Some(t) => t.clone(),
        None => match ctx.client.access_token(&sub.org).await {
            Ok(t) => {
                *token = Some(t.clone());
                t
            }
            Err(e) => return Failure::Transient(format!("no Salesforce token: {e}")),
        },
    };
    let stored = match cursor::load(ctx.store.as_ref(), &sub.org, &sub.topic).await {
        Ok(stored) => stored,
        Err(e) => return Failure::Local(e.to_string()),
    };
    // A stored cursor always wins; without one, the earliest event after a cursor expired,
    // else the configured start.
    let start = match (&stored, *earliest, sub.start) {
        (Some(c), _, _) => Start {
            preset: ReplayPreset::Custom,
            replay_id: c.replay_id.clone(),
        },
        (None, true, _) | (None, _, StartAt::Earliest) => Start {
            preset: ReplayPreset::Earliest,
            replay_id: Vec::new(),
        },
        (None, false, StartAt::Latest) => Start {
            preset: ReplayPreset::Latest,
            replay_id: Vec::new(),
        },
    };
    if let Err(e) = ctx.load_owed_sweep(sub).await {
        return Failure::Local(e);
    }
    let failure = session::run(ctx, sub, channel, current, start, stop.clone()).await;
    if let Failure::ReplayIdCorrupted(detail) = &failure {
        // Past retention: what came after it may be gone. Start over from the earliest event
        // (the dedupe absorbs what was already posted) and sweep from the cursor's time.
        let since = stored
            .as_ref()
            .and_then(|c| chrono::DateTime::from_timestamp_millis(c.stored_at_ms))
            .unwrap_or_else(|| chrono::Utc::now() - chrono::Duration::hours(72));
        metrics::counter!("sfrelay_pubsub_cursor_expired_total", "org" => sub.org.to_string(), "topic" => sub.topic.clone()).increment(1);
        tracing::error!(org = %sub.org, topic = %sub.topic, %since, error = %detail, "the stored cursor is past Salesforce's retention: restarting from the earliest retained event and sweeping for changes since the cursor");
        if let Err(e) = ctx.owe_sweep(sub, since).await {
            return Failure::Local(e);
        }
        if let Err(e) = cursor::clear(ctx.store.as_ref(), &sub.org, &sub.topic).await {
            return Failure::Local(e.to_string());
        }
        *earliest = true;
    }
    failure
}
