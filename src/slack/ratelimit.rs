//! Slack's rate limits, kept across all replicas through the store: about one message per
//! second per channel with a short burst, and a per-method tier for everything else. A call
//! that would exceed a limit is not made; the job is put off instead, so a busy channel never
//! holds a worker while other channels wait.

use std::sync::Arc;
use std::time::Duration;

use super::error::SlackError;
use super::pause::AppPause;
use crate::keys::Workspace;
use crate::store::{Place, Store, StoreError};

/// Why a call through the limiter did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rate limit has no room now: the job is put off (not a failed attempt).
    #[error("rate limited; try again in {} ms", wait.as_millis())]
    Busy { wait: Duration },
    /// A name no visible channel has: posting by name is never attempted.
    #[error("{0}")]
    NotFound(String),
    /// A transient failure (a 5xx, no answer) while Slack answers most of this app's calls:
    /// retried soon rather than after a growing backoff.
    #[error("{0} (Slack answers most calls: retried soon)")]
    Sporadic(SlackError),
    /// The app's bot token was refused: the job waits (not a failed attempt) until it works.
    #[error("Slack app {app} is paused: {reason}")]
    Paused {
        app: String,
        reason: String,
        wait: Duration,
    },
}

/// One limit: `burst` calls at once, then one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    pub const fn per_minute(calls: u64, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_millis(60_000 / calls),
            burst,
        }
    }
}

/// Slack's published tiers for the methods sfrelay calls (per method, workspace and app).
pub fn method_rate(method: &str) -> Rate {
    match method {
        // Tier 2: 20+ per minute.
        "conversations.list" | "conversations.create" => Rate::per_minute(20, 3),
        // Tier 4: 100+ per minute.
        "views.open" | "views.update" | "chat.postEphemeral" | "users.info" => {
            Rate::per_minute(100, 10)
        }
        // Tier 3: 50+ per minute.
        _ => Rate::per_minute(50, 5),
    }
}

tokio::task_local! {
    /// Where the job being carried out waits for a busy key: its lane's place in line.
    static PLACE: Place;
}

/// Runs `work` (one job) with every wait it meets for a busy key placed at `place`.
pub async fn placed<F: Future>(place: Place, work: F) -> F::Output {
    PLACE.scope(place, work).await
}

/// Waits up to this long are waited out in place: putting the job off would cost more.
const WAIT_IN_PLACE: Duration = Duration::from_millis(50);

/// The limiter every Slack call goes through.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn Store>,
    channel: Rate,
    /// Off for the log sink: nothing is sent, so nothing to limit.
    enabled: bool,
    /// Keeps each Slack workspace's limits apart in the store.
    workspace: Workspace,
    /// The app's credential pause (none for the log sink).
    pause: Option<Arc<AppPause>>,
    /// How many of this app's calls Slack has been answering lately.
    health: Arc<super::health::Health>,
}

impl Limiter {
    pub fn new(store: Arc<dyn Store>, channel: Rate, enabled: bool, workspace: Workspace) -> Self {
        Limiter {
            store,
            channel,
            enabled,
            workspace,
            pause: None,
            health: Arc::default(),
        }
    }

    /// Calls through this limiter hold while `pause` is in force, and start it when Slack
    /// refuses the token.
    pub fn with_pause(mut self, pause: Option<Arc<AppPause>>) -> Self {
        self.pause = pause;
        self
    }

    /// While the app is paused: how long a job waits before it looks again.
    pub fn paused_for(&self) -> Option<Duration> {
        let pause = self.pause.as_ref()?;
        pause.current().map(|_| pause.wait())
    }

    /// The error a call meets while the app is paused.
    fn paused(&self) -> Option<CallError> {
        let pause = self.pause.as_ref()?;
        let paused = pause.current()?;
        Some(CallError::Paused {
            app: pause.app().to_string(),
            reason: paused.reason(),
            wait: pause.wait(),
        })
    }

    /// Runs `call` if `method` (and, for messages, `channel`) has room; otherwise answers
    /// `Busy` with the wait. A 429 from Slack closes the key for every replica for exactly
    /// `Retry-After` and is also answered `Busy`.
    pub async fn call<T, F, Fut>(
        &self,
        method: &str,
        channel: Option<&str>,
        call: F,
    ) -> Result<T, CallError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, SlackError>>,
    {
        if let Some(paused) = self.paused() {
            return Err(paused);
        }
        if !self.enabled {
            return call().await.map_err(CallError::from);
        }
        let (limit, rate) = match channel {
            Some(channel) => (self.workspace.channel_limit(channel), self.channel),
            None => (self.workspace.method_limit(method), method_rate(method)),
        };
        let key = limit.as_str();
        let place = PLACE.try_with(|place| *place).unwrap_or(Place::Back);
        let mut wait = self
            .store
            .rate_limit(key, rate.interval, rate.burst, place)
            .await?;
        if let Some(short) = wait.filter(|w| *w <= WAIT_IN_PLACE) {
            tokio::time::sleep(short).await;
            wait = self
                .store
                .rate_limit(key, rate.interval, rate.burst, place)
                .await?;
        }
        if let Some(wait) = wait {
            metrics::counter!("sfrelay_rate_limit_waits_total", "source" => "limiter").increment(1);
            return Err(CallError::Busy { wait });
        }
        match call().await {
            Err(SlackError::RateLimited { retry_after }) => {
                metrics::counter!("sfrelay_rate_limit_waits_total", "source" => "slack_429")
                    .increment(1);
                tracing::warn!(%key, retry_after_ms = retry_after.as_millis() as u64, "Slack answered 429; pausing this key for every replica");
                self.store
                    .pause(key, retry_after, rate.interval, rate.burst)
                    .await?;
                Err(CallError::Busy { wait: retry_after })
            }
            Err(e @ SlackError::Credentials { .. }) => {
                if let Some(pause) = &self.pause
                    && pause.pause_for(&e).await
                    && let Some(paused) = self.paused()
                {
                    return Err(paused);
                }
                Err(CallError::Slack(e))
            }
            Err(e) if super::health::is_outage_like(&e) => {
                // Most calls answered: this one was unlucky, and is worth repeating soon.
                if self.health.failed() {
                    Err(CallError::Sporadic(e))
                } else {
                    Err(CallError::Slack(e))
                }
            }
            other => {
                self.health.answered();
                other.map_err(CallError::from)
            }
        }
    }
}
