//! Small shared state kept where the queue is (Redis, or memory for the embedded default): name
//! caches, claims, where each record was announced, the ledger of actions already done, small sets
//! (who follows a record), and the GCRA rate limits every replica shares. Keys are relative (made
//! only by [`crate::keys`]); the backend adds the namespace.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// The store did not answer; the step is retried like any other failure.
#[derive(Debug, thiserror::Error)]
#[error("state store unavailable: {0}")]
pub struct StoreError(pub String);

/// Key/value operations delivery needs. Keys are relative (`chan:deal-desk`); the backend adds
/// the namespace.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Sets each entry, with an expiry when `ttl` is given.
    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// Sets `key` to `value` unless it is set; returns the value it already had, if any.
    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<String>, StoreError>;

    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Sets `key` to `version` unless it holds a later one, in one atomic step, so of two
    /// racing writers the older never wins; answers whether `version` is now the one held (an
    /// equal version counts, so a retry of the same write goes ahead).
    async fn advance(
        &self,
        key: &str,
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;

    /// Deletes `key` only while it holds `value`: a holder lets go of its own claim, never
    /// of one taken since by someone else.
    async fn release(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Extends `key`'s life to `ttl` only while it holds `value`: a lease holder renews its
    /// own lease, never one another holder took after it ran out. Answers whether it did.
    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// GCRA rate limit shared by every replica: `None` when a call may go now (it is counted),
    /// else how long to wait. Allows `burst` calls at once, then one per `interval`.
    ///
    /// Callers told to wait at [`Place::Back`] get wake-up times one `interval` apart, in the
    /// order they asked, so when they come back each finds room, instead of all coming back at
    /// once for the one free slot; [`Place::Front`] is told the next free time. A call that
    /// follows others closely is let through [`JITTER_MARGIN`] after its exact time.
    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
        place: Place,
    ) -> Result<Option<Duration>, StoreError>;

    /// Holds `key` shut for `pause` (Slack answered 429 with that `Retry-After`), for every
    /// replica; afterwards calls resume at one per `interval`, without a burst.
    async fn pause(
        &self,
        key: &str,
        pause: Duration,
        interval: Duration,
        burst: u32,
    ) -> Result<(), StoreError>;

    /// Adds `member` to the set at `key` (kept until removed); answers the set's size after,
    /// so a caller can hold a set to a bound.
    async fn add_member(&self, key: &str, member: &str) -> Result<usize, StoreError>;

    /// Takes `member` out of the set at `key`; answers whether it was there.
    async fn remove_member(&self, key: &str, member: &str) -> Result<bool, StoreError>;

    /// Every member of the set at `key`, sorted (none when there is no such set).
    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError>;

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.set_many(&[(key.to_string(), value.to_string())], ttl)
            .await
    }
}

/// Where a caller told to wait is placed among those already waiting for the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// After everyone already waiting: normal and low priority work.
    Back,
    /// At the next free time, ahead of those waiting: high priority work.
    Front,
}

impl Place {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Place::Back => "back",
            Place::Front => "front",
        }
    }
}

/// How much later than its exact time a call that follows others closely is let through. The
/// limit is counted here, but Slack counts arrivals: two calls whose trips to Slack differ by up
/// to this much still arrive no closer together than Slack allows.
pub const JITTER_MARGIN: Duration = Duration::from_millis(20);
