//! How many of a Slack app's calls Slack has been answering lately, so a failed call can tell a
//! storm of sporadic errors (most calls still answered: retry soon) from an outage (back off
//! further each time). A moving average over the app's recent calls in this process.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::SlackError;

/// How much each call moves the average: about the last 20 calls count.
const WEIGHT: f64 = 0.05;

/// Above this share of answered calls, a failure counts as sporadic.
const MOSTLY_ANSWERED: f64 = 0.5;

/// The share of recent calls Slack answered (any answer, errors included, counts).
#[derive(Debug)]
pub struct Health {
    /// An `f64` in `[0, 1]`, as its bits.
    answered: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            answered: AtomicU64::new(1.0f64.to_bits()),
        }
    }
}

impl Health {
    fn moved(&self, toward: f64) -> f64 {
        let mut now = 0.0;
        let _ = self
            .answered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                now = f64::from_bits(bits) * (1.0 - WEIGHT) + toward * WEIGHT;
                Some(now.to_bits())
            });
        now
    }

    /// Slack answered a call.
    pub fn answered(&self) {
        self.moved(1.0);
    }

    /// A call got no answer (or a 5xx). Answers whether Slack still answers most calls.
    pub fn failed(&self) -> bool {
        self.moved(0.0) >= MOSTLY_ANSWERED
    }
}

/// The failures an outage is made of: a 5xx, no answer, a garbled one. They are also the ones
/// after which Slack may have carried out the call.
pub fn is_outage_like(e: &SlackError) -> bool {
    match e {
        SlackError::Transport(_) | SlackError::Decode(_) => true,
        SlackError::Http { status } => *status >= 500,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_are_sporadic_and_a_run_of_them_is_an_outage() {
        let health = Health::default();
        for _ in 0..10 {
            health.answered();
            health.answered();
            assert!(health.failed(), "one failure in three is sporadic");
        }
        let outage = (0..40).map(|_| health.failed()).last();
        assert_eq!(outage, Some(false), "forty in a row is an outage");
        for _ in 0..40 {
            health.answered();
        }
        assert!(health.failed());
    }
}
