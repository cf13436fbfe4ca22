//! Slack's rate limits: `chat.*` writes per channel, everything else per method, with the
//! Tier 4 methods (modals, the Home tab, ephemeral messages, `users.info`) allowed twice the
//! budget.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::methods::SlackMethod;
use crate::gcra::{Gcra, Rate};

/// Default budget for non-`chat` methods: roughly Slack's "Tier 3" (50 per minute).
pub const DEFAULT_METHOD_PER_MINUTE: f64 = 50.0;
/// Default burst for non-`chat` methods.
pub const DEFAULT_METHOD_BURST: u32 = 20;
/// How many times the per-method budget a Tier 4 method gets (Slack: 100+ a minute against
/// Tier 3's 50+).
pub const TIER4_FACTOR: u32 = 2;

/// Both limiters; each keeps a separate budget per channel or per method.
#[derive(Debug)]
pub struct Limits {
    per_channel: Gcra<String>,
    per_method: Gcra<SlackMethod>,
    tier4: Gcra<SlackMethod>,
}

/// Slack's Tier 4 methods among the emulated ones.
fn is_tier4(method: SlackMethod) -> bool {
    matches!(
        method,
        SlackMethod::ViewsOpen
            | SlackMethod::ViewsUpdate
            | SlackMethod::ViewsPublish
            | SlackMethod::PostEphemeral
            | SlackMethod::UsersInfo
    )
}

/// The Tier 4 rate for a per-method rate: `TIER4_FACTOR` times the calls and the burst.
fn tier4_rate(method: Rate) -> Rate {
    let factor = f64::from(TIER4_FACTOR);
    Rate::new(
        method.per_second() * factor,
        method.burst().saturating_mul(TIER4_FACTOR),
    )
    .unwrap_or(method)
}

impl Limits {
    /// Limiters with every budget full.
    pub fn new(channel: Rate, method: Rate) -> Self {
        Limits {
            per_channel: Gcra::new(channel),
            per_method: Gcra::new(method),
            tier4: Gcra::new(tier4_rate(method)),
        }
    }

    /// Admits one call, or says how long to wait. `chat.postMessage` and `chat.update` spend
    /// their conversation's budget, channel or DM alike (keyed by the argument as sent, except
    /// that a user id counts as the bot's DM with that user, see
    /// [`Workspace::conversation_key`](super::workspace::Workspace::conversation_key)); calls
    /// without a channel are let through so the method can answer `channel_not_found`.
    pub fn check(
        &mut self,
        method: SlackMethod,
        channel: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        if method.is_chat_write() {
            match channel {
                Some(channel) => self.per_channel.check(channel.to_owned(), now),
                None => Ok(()),
            }
        } else if is_tier4(method) {
            self.tier4.check(method, now)
        } else {
            self.per_method.check(method, now)
        }
    }

    /// Switches the per-channel rate; budgets start full again.
    pub fn set_channel_rate(&mut self, rate: Rate) {
        self.per_channel = Gcra::new(rate);
    }

    /// Switches the per-method rate; budgets start full again.
    pub fn set_method_rate(&mut self, rate: Rate) {
        self.per_method = Gcra::new(rate);
        self.tier4 = Gcra::new(tier4_rate(rate));
    }

    /// The per-channel rate in force.
    pub fn channel_rate(&self) -> Rate {
        self.per_channel.rate()
    }

    /// The per-method rate in force.
    pub fn method_rate(&self) -> Rate {
        self.per_method.rate()
    }

    /// Refills every budget, e.g. between tests.
    pub fn clear(&mut self) {
        self.per_channel.clear();
        self.per_method.clear();
        self.tier4.clear();
    }

    /// The settings, as the faults endpoint shows them.
    pub fn to_json(&self) -> Value {
        json!({
            "rate_per_channel": self.channel_rate().per_second(),
            "burst": self.channel_rate().burst(),
            "method_rate_per_min": self.method_rate().per_second() * 60.0,
            "method_burst": self.method_rate().burst(),
            "tier4_rate_per_min": self.tier4.rate().per_second() * 60.0,
            "tier4_burst": self.tier4.rate().burst(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(
            Rate::new(1.0, 2).unwrap(),
            Rate::new(DEFAULT_METHOD_PER_MINUTE / 60.0, DEFAULT_METHOD_BURST).unwrap(),
        )
    }

    #[test]
    fn chat_writes_share_a_per_channel_budget() {
        let mut l = limits();
        let t = Instant::now();
        assert!(l.check(SlackMethod::PostMessage, Some("C1"), t).is_ok());
        assert!(l.check(SlackMethod::Update, Some("C1"), t).is_ok());
        assert_eq!(
            l.check(SlackMethod::PostMessage, Some("C1"), t),
            Err(Duration::from_secs(1))
        );
        assert!(l.check(SlackMethod::PostMessage, Some("C2"), t).is_ok());
        assert!(l.check(SlackMethod::PostMessage, None, t).is_ok());
        l.clear();
        assert!(l.check(SlackMethod::PostMessage, Some("C1"), t).is_ok());
    }

    #[test]
    fn other_methods_have_a_looser_per_method_budget() {
        let mut l = limits();
        let t = Instant::now();
        for _ in 0..DEFAULT_METHOD_BURST {
            assert!(l.check(SlackMethod::ConversationsList, None, t).is_ok());
        }
        assert_eq!(
            l.check(SlackMethod::ConversationsList, None, t),
            Err(Duration::from_millis(1200))
        );
        assert!(l.check(SlackMethod::AuthTest, None, t).is_ok());
        l.set_method_rate(Rate::new(100.0, 1).unwrap());
        assert!(l.check(SlackMethod::ConversationsList, None, t).is_ok());
        assert_eq!(l.to_json()["method_rate_per_min"], 6000.0);
    }

    #[test]
    fn tier4_methods_get_twice_the_budget_of_their_own() {
        let mut l = limits();
        let t = Instant::now();
        let tier4_burst = DEFAULT_METHOD_BURST * TIER4_FACTOR;
        for _ in 0..tier4_burst {
            assert!(l.check(SlackMethod::ViewsOpen, None, t).is_ok());
        }
        assert_eq!(
            l.check(SlackMethod::ViewsOpen, None, t),
            Err(Duration::from_millis(600))
        );
        assert!(
            l.check(SlackMethod::ViewsUpdate, None, t).is_ok(),
            "each method keeps its own budget"
        );
        assert!(
            l.check(SlackMethod::PostEphemeral, Some("C1"), t).is_ok(),
            "not limited per channel"
        );
        assert_eq!(l.to_json()["tier4_rate_per_min"], 100.0);
        assert_eq!(l.to_json()["tier4_burst"], tier4_burst);
        l.set_method_rate(Rate::new(1.0, 1).unwrap());
        assert!(l.check(SlackMethod::UsersInfo, None, t).is_ok());
        assert!(l.check(SlackMethod::UsersInfo, None, t).is_ok());
        assert!(l.check(SlackMethod::UsersInfo, None, t).is_err());
    }
}
