//! The store on the queue's Redis, sharing its connection and namespace; the rate limit is
//! one Lua script with Redis's clock, so every replica shares one limit.

use std::time::Duration;

use async_trait::async_trait;

use super::{JITTER_MARGIN, Place, Store, StoreError};
use crate::keys::{Limit, Namespace};
use crate::queue::redis::RedisQueue;

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

/// Sets KEYS[1] to the version ARGV[1] unless it holds a later one; ARGV[2] is the lifetime in
/// ms (0: none). Answers 1 when ARGV[1] is now held, 0 when a later version was.
const ADVANCE: &str = r#"
local held = tonumber(redis.call('GET', KEYS[1]))
if held and held > tonumber(ARGV[1]) then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"#;

/// Deletes KEYS[1] only while it holds ARGV[1].
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// The store on the queue's Redis, sharing its connection and namespace.
pub struct RedisStore {
    queue: std::sync::Arc<RedisQueue>,
    keys: Namespace,
    gcra: redis::Script,
    advance: redis::Script,
    release: redis::Script,
    renew: redis::Script,
}

impl RedisStore {
    pub fn new(queue: std::sync::Arc<RedisQueue>) -> Self {
        let keys = queue.keys().clone();
        RedisStore {
            queue,
            keys,
            gcra: redis::Script::new(GCRA),
            advance: redis::Script::new(ADVANCE),
            release: redis::Script::new(RELEASE),
            renew: redis::Script::new(RENEW),
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
        let limit = Limit::named(key);
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        self.gcra
            .key(self.keys.store(&limit.arrival()))
            .key(self.keys.store(&limit.wake()))
            .key(self.keys.store(&limit.front()))
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
            .arg(self.keys.store(key))
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
            let cmd = pipe.cmd("SET").arg(self.keys.store(key)).arg(value);
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
        cmd.arg(self.keys.store(key))
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
            .arg(self.keys.store(key))
            .query_async::<i64>(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn add_member(&self, key: &str, member: &str) -> Result<usize, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let key = self.keys.store(key);
        let (_, size): (i64, usize) = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(&key)
            .arg(member)
            .cmd("SCARD")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(size)
    }

    async fn remove_member(&self, key: &str, member: &str) -> Result<bool, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let removed: i64 = redis::cmd("SREM")
            .arg(self.keys.store(key))
            .arg(member)
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(removed == 1)
    }

    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let mut members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.store(key))
            .query_async(&mut conn)
            .await
            .map_err(store_error)?;
        members.sort();
        Ok(members)
    }

    async fn advance(
        &self,
        key: &str,
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let held: i64 = self
            .advance
            .key(self.keys.store(key))
            .arg(version)
            .arg(ttl.map_or(0, |t| t.as_millis().max(1) as u64))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(held == 1)
    }

    async fn release(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        self.release
            .key(self.keys.store(key))
            .arg(value)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.queue.connection().await.map_err(store_error)?;
        let renewed: i64 = self
            .renew
            .key(self.keys.store(key))
            .arg(value)
            .arg(ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(renewed == 1)
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
