//! Small shared state for delivery, kept where the queue is (Redis, or memory for the embedded
//! default): name caches, once-per-record claims, where each record was announced, and the
//! ledger of actions already done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::queue::redis::{Keys, RedisQueue};

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

    /// GCRA rate limit shared by every replica: `None` when a call may go now (it is counted),
    /// else how long to wait. Allows `burst` calls at once, then one per `interval`.
    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
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

    async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.set_many(&[(key.to_string(), value.to_string())], ttl)
            .await
    }
}

/// GCRA in one atomic script with Redis's clock, so all replicas share one limit. The key holds
/// the theoretical arrival time (TAT, ms). KEYS: key; ARGV: interval ms, burst, mode
/// ('take' or 'pause'), pause ms. Answers the wait in ms (0 = go).
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if ARGV[3] == 'pause' then
  local held = now + tonumber(ARGV[4]) + tolerance
  if held > tat then tat = held end
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  return 0
end
local allow_at = tat - tolerance
if now < allow_at then
  return math.ceil(allow_at - now)
end
tat = tat + interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
return 0
"#;

/// The store on the queue's Redis, sharing its connection and namespace.
pub struct RedisStore {
    queue: std::sync::Arc<RedisQueue>,
    keys: Keys,
    gcra: redis::Script,
}

impl RedisStore {
    pub fn new(queue: std::sync::Arc<RedisQueue>) -> Self {
        let keys = queue.keys().clone();
        RedisStore {
            queue,
            keys,
            gcra: redis::Script::new(GCRA),
        }
    }

    async fn gcra(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
        pause: Option<Duration>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        self.gcra
            .key(self.keys.other(&format!("rl:{key}")))
            .arg(interval.as_millis() as u64)
            .arg(burst.max(1))
            .arg(if pause.is_some() { "pause" } else { "take" })
            .arg(pause.map_or(0, |p| p.as_millis() as u64))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)
    }
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        redis::cmd("GET")
            .arg(self.keys.other(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)
    }

    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, value) in entries {
            let cmd = pipe.cmd("SET").arg(self.keys.other(key)).arg(value);
            if let Some(ttl) = ttl {
                cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
            }
            cmd.ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(store_error)
    }

    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<String>, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        // SET … NX GET answers the old value (nil when this call set it) in one step.
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.keys.other(key))
            .arg(value)
            .arg("NX")
            .arg("GET");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        cmd.query_async(&mut conn).await.map_err(store_error)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        redis::cmd("DEL")
            .arg(self.keys.other(key))
            .query_async::<i64>(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, StoreError> {
        let wait = self.gcra(key, interval, burst, None).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn pause(
        &self,
        key: &str,
        pause: Duration,
        interval: Duration,
        burst: u32,
    ) -> Result<(), StoreError> {
        self.gcra(key, interval, burst, Some(pause))
            .await
            .map(|_| ())
    }
}

/// A value and when it expires.
type Entries = HashMap<String, (String, Option<Instant>)>;

/// The store in memory, for the in-process queue.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
    /// GCRA theoretical arrival times.
    limits: Mutex<HashMap<String, Instant>>,
}

/// The same GCRA as the Redis script, on this process's clock.
fn gcra_step(
    tat: Option<Instant>,
    now: Instant,
    interval: Duration,
    burst: u32,
    pause: Option<Duration>,
) -> (Instant, Option<Duration>) {
    let tolerance = interval * burst.max(1).saturating_sub(1);
    let tat = tat.filter(|t| *t > now).unwrap_or(now);
    if let Some(pause) = pause {
        return ((now + pause + tolerance).max(tat), None);
    }
    let allow_at = tat.checked_sub(tolerance).unwrap_or(now);
    if now < allow_at {
        return (tat, Some(allow_at - now));
    }
    (tat + interval, None)
}

impl MemoryStore {
    fn limits(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Instant>>, StoreError> {
        self.limits
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, StoreError> {
        self.entries
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))
    }
}

fn live(entry: &(String, Option<Instant>), now: Instant) -> bool {
    entry.1.is_none_or(|expires| expires > now)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()?
            .get(key)
            .filter(|e| live(e, now))
            .map(|e| e.0.clone()))
    }

    async fn set_many(
        &self,
        entries: &[(String, String)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let expires = ttl.map(|t| Instant::now() + t);
        let mut map = self.lock()?;
        for (key, value) in entries {
            map.insert(key.clone(), (value.clone(), expires));
        }
        Ok(())
    }

    async fn claim(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        if let Some(existing) = map.get(key).filter(|e| live(e, now)) {
            return Ok(Some(existing.0.clone()));
        }
        map.insert(key.to_string(), (value.to_string(), ttl.map(|t| now + t)));
        Ok(None)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock()?.remove(key);
        Ok(())
    }

    async fn rate_limit(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Result<Option<Duration>, StoreError> {
        let mut limits = self.limits()?;
        let now = Instant::now();
        let (tat, wait) = gcra_step(limits.get(key).copied(), now, interval, burst, None);
        limits.insert(key.to_string(), tat);
        Ok(wait)
    }

    async fn pause(
        &self,
        key: &str,
        pause: Duration,
        interval: Duration,
        burst: u32,
    ) -> Result<(), StoreError> {
        let mut limits = self.limits()?;
        let now = Instant::now();
        let (tat, _) = gcra_step(limits.get(key).copied(), now, interval, burst, Some(pause));
        limits.insert(key.to_string(), tat);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let second = Duration::from_secs(1);
        let start = Instant::now();
        let mut tat = None;
        // Three at once (burst 3), the fourth waits a whole interval.
        for _ in 0..3 {
            let (t, wait) = gcra_step(tat, start, second, 3, None);
            assert_eq!(wait, None);
            tat = Some(t);
        }
        let (_, wait) = gcra_step(tat, start, second, 3, None);
        assert_eq!(wait, Some(second));
        // One interval later, exactly one more.
        let later = start + second;
        let (t, wait) = gcra_step(tat, later, second, 3, None);
        assert_eq!(wait, None);
        let (_, wait) = gcra_step(Some(t), later, second, 3, None);
        assert_eq!(wait, Some(second));
        // Burst 1 is one per interval from the first call.
        let (t, wait) = gcra_step(None, start, second, 1, None);
        assert_eq!(wait, None);
        assert_eq!(gcra_step(Some(t), start, second, 1, None).1, Some(second));
    }

    #[test]
    fn a_pause_holds_everything_then_resumes_without_a_burst() {
        let second = Duration::from_secs(1);
        let start = Instant::now();
        let (tat, _) = gcra_step(None, start, second, 3, Some(Duration::from_secs(5)));
        let (_, wait) = gcra_step(Some(tat), start, second, 3, None);
        assert_eq!(wait, Some(Duration::from_secs(5)));
        let after = start + Duration::from_secs(5);
        let (tat, wait) = gcra_step(Some(tat), after, second, 3, None);
        assert_eq!(wait, None);
        assert_eq!(gcra_step(Some(tat), after, second, 3, None).1, Some(second));
    }

    #[tokio::test]
    async fn memory_store_claims_once_and_expires() {
        let store = MemoryStore::default();
        assert_eq!(store.claim("k", "a", None).await.unwrap(), None);
        assert_eq!(store.claim("k", "b", None).await.unwrap(), Some("a".into()));
        store
            .set("t", "v", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store.get("t").await.unwrap(), None);
        assert_eq!(store.claim("t", "w", None).await.unwrap(), None);
    }
}
