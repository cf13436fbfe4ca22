//! The in-process store of the embedded default: the same operations as Redis, one process.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{JITTER_MARGIN, Place, Store, StoreError};

type Entries = HashMap<String, (String, Option<Instant>)>;

/// The store in memory, for the in-process queue.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<Entries>,
    /// GCRA state per key.
    limits: Mutex<HashMap<String, Bucket>>,
    sets: Mutex<HashMap<String, BTreeSet<String>>>,
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
    /// Every live entry (key, value), for tests that look at what is kept in clear.
    #[cfg(test)]
    pub fn dump(&self) -> Vec<(String, String)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|(_, (_, until))| until.is_none_or(|u| u > Instant::now()))
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    fn limits(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Bucket>>, StoreError> {
        self.limits
            .lock()
            .map_err(|_| StoreError("memory store lock poisoned".into()))
    }

    fn sets(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, BTreeSet<String>>>, StoreError> {
        self.sets
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
        self.sets()?.remove(key);
        Ok(())
    }

    async fn add_member(&self, key: &str, member: &str) -> Result<usize, StoreError> {
        let mut sets = self.sets()?;
        let set = sets.entry(key.to_string()).or_default();
        set.insert(member.to_string());
        Ok(set.len())
    }

    async fn remove_member(&self, key: &str, member: &str) -> Result<bool, StoreError> {
        let mut sets = self.sets()?;
        let Some(set) = sets.get_mut(key) else {
            return Ok(false);
        };
        let was = set.remove(member);
        if set.is_empty() {
            sets.remove(key);
        }
        Ok(was)
    }

    async fn members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .sets()?
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn advance(
        &self,
        key: &str,
        version: i64,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        let held = map
            .get(key)
            .filter(|e| live(e, now))
            .and_then(|e| e.0.parse::<i64>().ok());
        if held.is_some_and(|held| held > version) {
            return Ok(false);
        }
        map.insert(key.to_string(), (version.to_string(), ttl.map(|t| now + t)));
        Ok(true)
    }

    async fn release(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        if map.get(key).is_some_and(|e| live(e, now) && e.0 == value) {
            map.remove(key);
        }
        Ok(())
    }

    async fn renew(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut map = self.lock()?;
        match map.get_mut(key) {
            Some(entry) if live(entry, now) && entry.0 == value => {
                entry.1 = Some(now + ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
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
    async fn memory_store_advances_only_forward_and_releases_only_its_own() {
        let store = MemoryStore::default();
        assert!(store.advance("v", 20, None).await.unwrap());
        assert!(!store.advance("v", 10, None).await.unwrap());
        assert!(store.advance("v", 20, None).await.unwrap());
        assert!(store.advance("v", 30, None).await.unwrap());
        assert_eq!(store.get("v").await.unwrap().as_deref(), Some("30"));
        store.claim("c", "mine", None).await.unwrap();
        store.release("c", "theirs").await.unwrap();
        assert_eq!(store.get("c").await.unwrap().as_deref(), Some("mine"));
        store.release("c", "mine").await.unwrap();
        assert_eq!(store.get("c").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_store_sets_count_members_and_forget_emptied_sets() {
        let store = MemoryStore::default();
        assert_eq!(store.add_member("s", "b").await.unwrap(), 1);
        assert_eq!(store.add_member("s", "a").await.unwrap(), 2);
        assert_eq!(store.add_member("s", "a").await.unwrap(), 2);
        assert_eq!(store.members("s").await.unwrap(), vec!["a", "b"]);
        assert!(store.remove_member("s", "a").await.unwrap());
        assert!(!store.remove_member("s", "a").await.unwrap());
        assert!(store.remove_member("s", "b").await.unwrap());
        assert!(store.members("s").await.unwrap().is_empty());
        assert!(store.sets().unwrap().is_empty());
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
