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
    fn as_str(self) -> &'static str {
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

/// GCRA in one atomic script with Redis's clock, so all replicas share one limit. KEYS[1] holds
/// the theoretical arrival time (TAT, ms), KEYS[2] the last wake-up time handed to a caller told
/// to wait, KEYS[3] (while it lives) a front caller's claim on the next free time, which callers
/// at the back leave to it. ARGV: interval ms, burst, mode ('take' or 'pause'), pause ms, jitter margin ms,
/// place ('back' or 'front').
/// Answers the wait in ms (0 = go). Mirrors `gcra_step`.
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
if tat > now then allow_at = allow_at + tonumber(ARGV[5]) end
local front = ARGV[6] == 'front'
local claimed = (not front) and redis.call('EXISTS', KEYS[3]) == 1
if now >= allow_at and not (claimed and now < allow_at + interval) then
  if front then redis.call('DEL', KEYS[3]) end
  tat = tat + interval
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  return 0
end
if front then
  redis.call('SET', KEYS[3], '1', 'PX', math.ceil(allow_at - now + 2 * interval))
  return math.ceil(allow_at - now)
end
local wake = allow_at
if claimed then wake = allow_at + interval end
local last = tonumber(redis.call('GET', KEYS[2]))
if last and last + interval > wake then wake = last + interval end
redis.call('SET', KEYS[2], tostring(wake), 'PX', math.ceil(wake - now) + 1000)
return math.ceil(wake - now)
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
        place: Place,
    ) -> Result<u64, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        self.gcra
            .key(self.keys.other(&format!("rl:{key}")))
            .key(self.keys.other(&format!("rl-wake:{key}")))
            .key(self.keys.other(&format!("rl-front:{key}")))
            .arg(interval.as_millis() as u64)
            .arg(burst.max(1))
            .arg(if pause.is_some() { "pause" } else { "take" })
            .arg(pause.map_or(0, |p| p.as_millis() as u64))
            .arg(JITTER_MARGIN.as_millis() as u64)
            .arg(place.as_str())
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
        place: Place,
    ) -> Result<Option<Duration>, StoreError> {
        let wait = self.gcra(key, interval, burst, None, place).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn pause(
        &self,
        key: &str,
        pause: Duration,
        interval: Duration,
        burst: u32,
    ) -> Result<(), StoreError> {
        self.gcra(key, interval, burst, Some(pause), Place::Back)
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
    /// GCRA state per key.
    limits: Mutex<HashMap<String, Bucket>>,
}

/// One key's GCRA state: the theoretical arrival time, the last wake-up time handed out, and
/// until when a front caller's claim on the next free time holds.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tat: Instant,
    wake: Option<Instant>,
    claim: Option<Instant>,
}

/// The same GCRA as the Redis script, on this process's clock: the new state and the wait.
fn gcra_step(
    bucket: Option<Bucket>,
    now: Instant,
    interval: Duration,
    burst: u32,
    pause: Option<Duration>,
    place: Place,
) -> (Bucket, Option<Duration>) {
    let tolerance = interval * burst.max(1).saturating_sub(1);
    let tat = bucket.map(|b| b.tat).filter(|t| *t > now).unwrap_or(now);
    let wake = bucket.and_then(|b| b.wake);
    let claim = bucket.and_then(|b| b.claim).filter(|until| *until > now);
    if let Some(pause) = pause {
        let tat = (now + pause + tolerance).max(tat);
        return (Bucket { tat, wake, claim }, None);
    }
    let mut allow_at = tat.checked_sub(tolerance).unwrap_or(now);
    if tat > now {
        allow_at += JITTER_MARGIN;
    }
    let front = place == Place::Front;
    let claimed = !front && claim.is_some();
    if now >= allow_at && !(claimed && now < allow_at + interval) {
        let claim = if front { None } else { claim };
        let tat = tat + interval;
        return (Bucket { tat, wake, claim }, None);
    }
    if front {
        let claim = Some(allow_at + 2 * interval);
        return (Bucket { tat, wake, claim }, Some(allow_at - now));
    }
    let first_free = if claimed {
        allow_at + interval
    } else {
        allow_at
    };
    let next = wake
        .map(|last| last + interval)
        .filter(|next| *next > first_free)
        .unwrap_or(first_free);
    let bucket = Bucket {
        tat,
        wake: Some(next),
        claim,
    };
    (bucket, Some(next - now))
}

impl MemoryStore {
    fn limits(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Bucket>>, StoreError> {
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
        place: Place,
    ) -> Result<Option<Duration>, StoreError> {
        let mut limits = self.limits()?;
        let now = Instant::now();
        let (bucket, wait) = gcra_step(limits.get(key).copied(), now, interval, burst, None, place);
        limits.insert(key.to_string(), bucket);
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
        let pause = Some(pause);
        let (bucket, _) = gcra_step(
            limits.get(key).copied(),
            now,
            interval,
            burst,
            pause,
            Place::Back,
        );
        limits.insert(key.to_string(), bucket);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `calls` times at `now` from `bucket`, answering the last state and every wait.
    fn steps(
        mut bucket: Option<Bucket>,
        now: Instant,
        calls: usize,
        burst: u32,
    ) -> (Option<Bucket>, Vec<Option<Duration>>) {
        let mut waits = Vec::new();
        for _ in 0..calls {
            let (next, wait) = gcra_step(
                bucket,
                now,
                Duration::from_secs(1),
                burst,
                None,
                Place::Back,
            );
            bucket = Some(next);
            waits.push(wait);
        }
        (bucket, waits)
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let second = Duration::from_secs(1);
        let margin = JITTER_MARGIN;
        let start = Instant::now();
        // Three at once (burst 3; the last, at the edge, after the margin), then the fourth
        // waits a whole interval.
        let (bucket, waits) = steps(None, start, 3, 3);
        assert_eq!(waits, vec![None, None, Some(margin)]);
        let (bucket, waits) = steps(bucket, start + margin, 2, 3);
        assert_eq!(waits, vec![None, Some(second)]);
        // At its time, exactly one more.
        let (after, waits) = steps(bucket, start + second + margin, 2, 3);
        assert_eq!(waits[0], None);
        assert_eq!(waits[1], Some(second));
        // The margin does not add up: one interval later, the next one goes.
        assert_eq!(
            steps(after, start + 2 * second + margin, 1, 3).1,
            vec![None]
        );
        // Burst 1 is one per interval from the first call.
        let (_, waits) = steps(None, start, 2, 1);
        assert_eq!(waits, vec![None, Some(second + margin)]);
        // After a quiet spell, the whole burst again.
        let (_, waits) = steps(after, start + 10 * second, 3, 3);
        assert_eq!(waits, vec![None, None, Some(margin)]);
    }

    #[test]
    fn callers_told_to_wait_are_given_wake_up_times_one_interval_apart() {
        let second = Duration::from_secs(1);
        let margin = JITTER_MARGIN;
        let start = Instant::now();
        // Burst 2 used, then five callers at once: five different times, in order.
        let (bucket, waits) = steps(None, start, 2, 2);
        assert_eq!(waits, vec![None, Some(margin)]);
        let (bucket, waits) = steps(bucket, start + margin, 6, 2);
        assert_eq!(waits[0], None);
        let expected: Vec<_> = (1..=5u32).map(|k| Some(k * second)).collect();
        assert_eq!(&waits[1..], &expected[..]);
        // Each, coming back at its time, finds room; the next one still waits its turn.
        let mut bucket = bucket;
        for k in 1..=5u32 {
            let (next, waits) = steps(bucket, start + k * second + margin, 1, 2);
            assert_eq!(waits, vec![None], "caller {k}");
            bucket = next;
        }
        // A newcomer after them waits for the next free time, not behind stale wake-ups.
        let (_, waits) = steps(bucket, start + 5 * second + margin, 1, 2);
        assert_eq!(waits, vec![Some(second)]);
    }

    #[test]
    fn a_caller_at_the_front_is_told_the_next_free_time_ahead_of_those_waiting() {
        let second = Duration::from_secs(1);
        let start = Instant::now();
        let (bucket, _) = steps(None, start, 1, 1);
        // Three wait in line: 1, 2 and 3 seconds (and the margin).
        let (bucket, waits) = steps(bucket, start, 3, 1);
        assert_eq!(waits[2], Some(3 * second + JITTER_MARGIN));
        // High priority work is told the next free time; newcomers still join the line's end.
        let (bucket, wait) = gcra_step(bucket, start, second, 1, None, Place::Front);
        assert_eq!(wait, Some(second + JITTER_MARGIN));
        let (bucket, waits) = steps(Some(bucket), start, 1, 1);
        assert_eq!(waits, vec![Some(4 * second + JITTER_MARGIN)]);
        // At that time, whoever else comes first leaves it to the high priority caller…
        let then = start + second + JITTER_MARGIN;
        let (bucket, waits) = steps(bucket, then, 1, 1);
        assert_eq!(waits, vec![Some(4 * second)]);
        let (bucket, wait) = gcra_step(bucket, then, second, 1, None, Place::Front);
        assert_eq!(wait, None);
        // …and once it has gone, the line moves on as before.
        let (_, waits) = steps(Some(bucket), then + second, 1, 1);
        assert_eq!(waits, vec![None]);
    }

    #[test]
    fn a_pause_holds_everything_then_resumes_without_a_burst() {
        let second = Duration::from_secs(1);
        let start = Instant::now();
        let pause = Some(Duration::from_secs(5));
        let (bucket, _) = gcra_step(None, start, second, 3, pause, Place::Back);
        let (_, wait) = gcra_step(Some(bucket), start, second, 3, None, Place::Back);
        assert_eq!(wait, Some(Duration::from_secs(5) + JITTER_MARGIN));
        let after = start + Duration::from_secs(5) + JITTER_MARGIN;
        let (bucket, wait) = gcra_step(Some(bucket), after, second, 3, None, Place::Back);
        assert_eq!(wait, None);
        let (_, wait) = gcra_step(Some(bucket), after, second, 3, None, Place::Back);
        assert_eq!(wait, Some(second));
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
