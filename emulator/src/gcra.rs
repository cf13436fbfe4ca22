//! Generic cell rate algorithm (GCRA): a steady rate with a burst allowance, per key.
//!
//! GCRA keeps one "theoretical arrival time" per key instead of a token count, which makes it
//! exact, cheap and easy to reason about in tests (time is passed in, never read here).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The slowest rate accepted: one request a day.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// A rate and burst that have been checked to make sense.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: u32,
}

impl Rate {
    /// `per_second` must be finite and allow at least one request a day (so instants never
    /// overflow), and `burst` must be at least 1.
    pub fn new(per_second: f64, burst: u32) -> Option<Self> {
        let interval = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
        let sane = per_second.is_finite() && !interval.is_zero() && interval <= MAX_INTERVAL;
        (sane && burst >= 1).then_some(Rate { per_second, burst })
    }

    /// Requests allowed per second on average.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Requests allowed back to back after a quiet spell.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// A GCRA limiter with one budget per key.
#[derive(Debug)]
pub struct Gcra<K> {
    rate: Rate,
    interval: Duration,
    tolerance: Duration,
    tat: HashMap<K, Instant>,
}

impl<K: Hash + Eq> Gcra<K> {
    /// A limiter where every key starts with a full burst.
    pub fn new(rate: Rate) -> Self {
        let interval = rate.interval();
        Gcra {
            rate,
            interval,
            tolerance: interval.saturating_mul(rate.burst - 1),
            tat: HashMap::new(),
        }
    }

    /// The rate this limiter enforces.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Admits one request for `key` at `now`, or says how long to wait before it would be.
    /// A refused request uses up nothing.
    pub fn check(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        let tat = self.tat.get(&key).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        if allowed_at > now {
            return Err(allowed_at - now);
        }
        self.tat.insert(key, tat + self.interval);
        Ok(())
    }

    /// Forgets all keys' history, giving every key a full burst again.
    pub fn clear(&mut self) {
        self.tat.clear();
    }
}

/// A wait as Slack's `Retry-After`: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rejects_nonsense_rates() {
        assert!(Rate::new(0.0, 1).is_none());
        assert!(Rate::new(-1.0, 1).is_none());
        assert!(Rate::new(f64::NAN, 1).is_none());
        assert!(Rate::new(f64::INFINITY, 1).is_none());
        assert!(Rate::new(1.0, 0).is_none());
        assert!(Rate::new(1e-30, 1).is_none());
        assert!(Rate::new(1e-6, 1).is_none());
        assert!(Rate::new(0.5, 1).is_some());
    }

    #[test]
    fn allows_burst_then_steady_rate() {
        let mut gcra = Gcra::new(Rate::new(1.0, 3).unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(gcra.check("C1", t0), Ok(()));
        }
        assert_eq!(gcra.check("C1", t0), Err(ms(1000)));
        assert_eq!(gcra.check("C1", t0 + ms(400)), Err(ms(600)));
        assert_eq!(gcra.check("C1", t0 + ms(1000)), Ok(()));
        assert_eq!(gcra.check("C1", t0 + ms(1000)), Err(ms(1000)));
        assert_eq!(gcra.check("C1", t0 + ms(2500)), Ok(()));
    }

    #[test]
    fn keys_are_independent_and_refusals_are_free() {
        let mut gcra = Gcra::new(Rate::new(2.0, 1).unwrap());
        let t0 = Instant::now();
        assert_eq!(gcra.check("a", t0), Ok(()));
        assert_eq!(gcra.check("b", t0), Ok(()));
        for _ in 0..10 {
            assert_eq!(gcra.check("a", t0 + ms(100)), Err(ms(400)));
        }
        assert_eq!(gcra.check("a", t0 + ms(500)), Ok(()));
    }

    #[test]
    fn refills_after_idle_and_clear() {
        let mut gcra = Gcra::new(Rate::new(10.0, 2).unwrap());
        let t0 = Instant::now();
        assert!(gcra.check(1, t0).is_ok());
        assert!(gcra.check(1, t0).is_ok());
        assert!(gcra.check(1, t0).is_err());
        let later = t0 + Duration::from_secs(5);
        assert!(gcra.check(1, later).is_ok());
        assert!(gcra.check(1, later).is_ok());
        assert!(gcra.check(1, later).is_err());
        gcra.clear();
        assert!(gcra.check(1, later).is_ok());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(ms(59_500)), 60);
    }
}
