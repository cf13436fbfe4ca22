//! Injected faults: random 500s (before or after the call takes effect), added latency and
//! forced 429s, changeable at run time.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};

use super::limits::Limits;
use crate::gcra::Rate;

/// The faults in force. Random decisions come from a seeded RNG so runs are repeatable.
#[derive(Debug)]
pub struct Faults {
    fail_rate: f64,
    drop_after_effect_rate: f64,
    latency: Duration,
    forced_429s: u32,
    forced_retry_after: u64,
    rng: StdRng,
}

impl Faults {
    /// `fail_rate` and `drop_after_effect_rate` are clamped to 0..=1.
    pub fn new(fail_rate: f64, drop_after_effect_rate: f64, latency: Duration, seed: u64) -> Self {
        Faults {
            fail_rate: clamp_rate(fail_rate),
            drop_after_effect_rate: clamp_rate(drop_after_effect_rate),
            latency,
            forced_429s: 0,
            forced_retry_after: 1,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Delay added to every API answer.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// If a forced 429 is pending, uses it up and returns its `Retry-After` seconds.
    pub fn take_forced_429(&mut self) -> Option<u64> {
        if self.forced_429s == 0 {
            return None;
        }
        self.forced_429s -= 1;
        Some(self.forced_retry_after)
    }

    /// Decides whether this call fails with an injected 500.
    pub fn roll_failure(&mut self) -> bool {
        self.fail_rate > 0.0 && self.rng.random::<f64>() < self.fail_rate
    }

    /// Decides whether a `chat.postMessage` that just stored its message is answered with a
    /// 500 anyway, as if the caller died before hearing back. Draws nothing from the RNG when
    /// the rate is 0, so seeded runs without this fault roll as before.
    pub fn roll_drop_after_effect(&mut self) -> bool {
        self.drop_after_effect_rate > 0.0 && self.rng.random::<f64>() < self.drop_after_effect_rate
    }

    /// Applies a change from the control API; checks everything before changing anything.
    pub fn apply(&mut self, patch: &FaultsPatch, limits: &mut Limits) -> Result<(), String> {
        if let Some(rate) = patch.fail_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err("fail_rate must be between 0 and 1".into());
        }
        if let Some(rate) = patch.drop_response_after_effect_rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err("drop_response_after_effect_rate must be between 0 and 1".into());
        }
        let channel_rate = match (patch.rate_per_channel, patch.burst) {
            (None, None) => None,
            (rate, burst) => Some(
                Rate::new(
                    rate.unwrap_or(limits.channel_rate().per_second()),
                    burst.unwrap_or(limits.channel_rate().burst()),
                )
                .ok_or("rate_per_channel must be positive and burst at least 1")?,
            ),
        };
        let method_rate = match (patch.method_rate_per_min, patch.method_burst) {
            (None, None) => None,
            (per_min, burst) => Some(
                Rate::new(
                    per_min.map_or(limits.method_rate().per_second(), |m| m / 60.0),
                    burst.unwrap_or(limits.method_rate().burst()),
                )
                .ok_or("method_rate_per_min must be positive and method_burst at least 1")?,
            ),
        };

        if let Some(rate) = patch.fail_rate {
            self.fail_rate = rate;
        }
        if let Some(rate) = patch.drop_response_after_effect_rate {
            self.drop_after_effect_rate = rate;
        }
        if let Some(ms) = patch.latency_ms {
            self.latency = Duration::from_millis(ms);
        }
        if let Some(force) = &patch.force_429_for {
            self.forced_429s = force.count;
            self.forced_retry_after = force.retry_after.max(1);
        }
        if let Some(rate) = channel_rate {
            limits.set_channel_rate(rate);
        }
        if let Some(rate) = method_rate {
            limits.set_method_rate(rate);
        }
        Ok(())
    }

    /// The settings, as the faults endpoint shows them.
    pub fn to_json(&self, limits: &Limits) -> Value {
        let mut out = json!({
            "fail_rate": self.fail_rate,
            "drop_response_after_effect_rate": self.drop_after_effect_rate,
            "latency_ms": self.latency.as_millis(),
            "force_429_remaining": self.forced_429s,
            "force_429_retry_after": self.forced_retry_after,
        });
        if let (Some(out), Value::Object(limits)) = (out.as_object_mut(), limits.to_json()) {
            out.extend(limits);
        }
        out
    }
}

/// A change to the faults, as `POST /_emulator/faults` takes it; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    /// Fraction of API calls answered with HTTP 500.
    pub fail_rate: Option<f64>,
    /// Fraction of successful `chat.postMessage` calls whose message is stored but whose answer
    /// is replaced by HTTP 500.
    pub drop_response_after_effect_rate: Option<f64>,
    /// Delay added to every API answer.
    pub latency_ms: Option<u64>,
    /// `chat.*` messages per second per channel.
    pub rate_per_channel: Option<f64>,
    /// `chat.*` burst per channel.
    pub burst: Option<u32>,
    /// Calls per minute for each other method.
    pub method_rate_per_min: Option<f64>,
    /// Burst for each other method.
    pub method_burst: Option<u32>,
    /// Answer the next calls with 429 whatever the limits say.
    pub force_429_for: Option<Force429>,
}

/// "Answer the next `count` API calls with 429 and this `Retry-After`."
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Force429 {
    /// How many calls.
    pub count: u32,
    /// Seconds to put in `Retry-After` (at least 1).
    #[serde(default = "one")]
    pub retry_after: u64,
}

fn one() -> u64 {
    1
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(Rate::new(1.0, 3).unwrap(), Rate::new(1.0, 20).unwrap())
    }

    #[test]
    fn failure_rolls_are_seeded() {
        let rolls = |seed| {
            let mut f = Faults::new(0.3, 0.0, Duration::ZERO, seed);
            (0..200).map(|_| f.roll_failure()).collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        let failures = rolls(7).iter().filter(|f| **f).count();
        assert!((30..90).contains(&failures), "{failures}");
        let mut never = Faults::new(0.0, 0.0, Duration::ZERO, 1);
        assert!((0..100).all(|_| !never.roll_failure()));
        let mut always = Faults::new(5.0, 0.0, Duration::ZERO, 1);
        assert!((0..100).all(|_| always.roll_failure()));
    }

    #[test]
    fn drop_after_effect_rolls_are_seeded_and_separate() {
        let rolls = |seed| {
            let mut f = Faults::new(0.0, 0.3, Duration::ZERO, seed);
            (0..200)
                .map(|_| (f.roll_failure(), f.roll_drop_after_effect()))
                .collect::<Vec<_>>()
        };
        assert_eq!(rolls(7), rolls(7));
        assert!(rolls(7).iter().all(|(failed, _)| !failed));
        let drops = rolls(7).iter().filter(|(_, dropped)| *dropped).count();
        assert!((30..90).contains(&drops), "{drops}");
        let mut never = Faults::new(1.0, 0.0, Duration::ZERO, 1);
        assert!((0..100).all(|_| !never.roll_drop_after_effect()));
        let mut always = Faults::new(0.0, 7.0, Duration::ZERO, 1);
        assert!((0..100).all(|_| always.roll_drop_after_effect()));

        // With the rate at 0 the RNG is untouched: failure rolls match a run without it.
        let mut plain = Faults::new(0.5, 0.0, Duration::ZERO, 3);
        let mut with_off_drops = Faults::new(0.5, 0.0, Duration::ZERO, 3);
        for _ in 0..50 {
            assert!(!with_off_drops.roll_drop_after_effect());
            assert_eq!(plain.roll_failure(), with_off_drops.roll_failure());
        }
    }

    #[test]
    fn forced_429s_run_out() {
        let mut f = Faults::new(0.0, 0.0, Duration::ZERO, 1);
        let mut l = limits();
        let patch: FaultsPatch =
            serde_json::from_str(r#"{"force_429_for":{"count":2,"retry_after":0}}"#).unwrap();
        f.apply(&patch, &mut l).unwrap();
        assert_eq!(f.take_forced_429(), Some(1));
        assert_eq!(f.take_forced_429(), Some(1));
        assert_eq!(f.take_forced_429(), None);
    }

    #[test]
    fn patches_are_checked_before_anything_changes() {
        let mut f = Faults::new(0.0, 0.0, Duration::ZERO, 1);
        let mut l = limits();
        let bad = FaultsPatch {
            latency_ms: Some(5),
            burst: Some(0),
            ..FaultsPatch::default()
        };
        assert!(f.apply(&bad, &mut l).is_err());
        assert_eq!(f.latency(), Duration::ZERO);
        let bad = FaultsPatch {
            fail_rate: Some(1.5),
            ..FaultsPatch::default()
        };
        assert!(f.apply(&bad, &mut l).is_err());
        let bad = FaultsPatch {
            latency_ms: Some(5),
            drop_response_after_effect_rate: Some(-0.1),
            ..FaultsPatch::default()
        };
        assert!(f.apply(&bad, &mut l).is_err());
        assert_eq!(f.latency(), Duration::ZERO);
        assert_eq!(f.to_json(&l)["drop_response_after_effect_rate"], 0.0);

        let good = FaultsPatch {
            latency_ms: Some(5),
            burst: Some(7),
            method_rate_per_min: Some(120.0),
            drop_response_after_effect_rate: Some(0.25),
            ..FaultsPatch::default()
        };
        assert_eq!(f.apply(&good, &mut l), Ok(()));
        let shown = f.to_json(&l);
        assert_eq!(shown["latency_ms"], 5);
        assert_eq!(shown["burst"], 7);
        assert_eq!(shown["rate_per_channel"], 1.0);
        assert_eq!(shown["method_rate_per_min"], 120.0);
        assert_eq!(shown["drop_response_after_effect_rate"], 0.25);
        assert_eq!(shown["fail_rate"], 0.0);
        assert!(serde_json::from_str::<FaultsPatch>(r#"{"fail_rat":1}"#).is_err());
    }
}
