//! The API-budget guard. Salesforce gives each org one daily allowance of API requests, shared
//! by every integration; an admin removes the integration that eats it. Every answer says how
//! much of it is used (`Sforce-Limit-Info`), and the guard keeps sfrelay's own share in check:
//! above `api_budget_low_share` of the allowance (80 %), low-priority work (digests,
//! reconciliation, enrichment for low-priority routes) waits; above `api_budget_high_share`
//! (95 %) only high-priority work runs (high-priority routes, and what a person is waiting for:
//! clicks, commands, unfurls). Nothing is dropped: held jobs are put off and go again.
//!
//! The usage only moves when a call is made, so a reading older than [`STALE_AFTER`] lets one
//! call through to read it afresh (the allowance is a rolling 24 hours: usage falls as the
//! hours pass without anything else telling sfrelay).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::event::SalesforceId;

use super::ApiUsage;

/// A reading older than this lets one call through to read the usage again.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// How long held work waits before it asks again (a look at the last reading, no call).
pub const HELD_FOR: Duration = Duration::from_secs(5);

/// The shares of an org's daily allowance above which sfrelay holds back work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Above this, low-priority work waits.
    pub low_share: f64,
    /// Above this, only high-priority work runs.
    pub high_share: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            low_share: 0.80,
            high_share: 0.95,
        }
    }
}

/// How much a piece of Salesforce work matters when the allowance runs short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Digests, reconciliation, enrichment for low-priority routes.
    Low,
    /// Everything else that is not high.
    Normal,
    /// High-priority routes, and what a person waits for.
    High,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Low => "low",
            Need::Normal => "normal",
            Need::High => "high",
        }
    }
}

impl Budget {
    /// The most important kind of work `usage` holds back, if any.
    pub fn holds(&self, usage: ApiUsage) -> Option<Need> {
        if usage.limit == 0 {
            return None;
        }
        let share = usage.used as f64 / usage.limit as f64;
        if share >= self.high_share {
            Some(Need::Normal)
        } else if share >= self.low_share {
            Some(Need::Low)
        } else {
            None
        }
    }
}

/// Work held back because the org's allowance runs short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "org {org} has used {used} of its {limit} daily API requests: {held} priority Salesforce work waits until usage falls"
)]
pub struct OverBudget {
    pub org: SalesforceId,
    pub used: u64,
    pub limit: u64,
    /// `low` (low-priority work waits) or `normal` (only high-priority work runs).
    pub held: &'static str,
}

/// One org's usage as last read, and the guard over it.
#[derive(Debug)]
pub(crate) struct Usage {
    budget: Budget,
    reading: Mutex<Option<(ApiUsage, Instant)>>,
    /// When a call was last let through to read a stale usage afresh.
    probe: Mutex<Option<Instant>>,
}

impl Usage {
    pub(crate) fn new(budget: Budget) -> Self {
        Usage {
            budget,
            reading: Mutex::new(None),
            probe: Mutex::new(None),
        }
    }

    /// Keeps what an answer said, and shows it (and what it holds back) in the metrics.
    pub(crate) fn record(&self, usage: ApiUsage, org: &str) {
        *self.reading.lock().unwrap_or_else(|e| e.into_inner()) = Some((usage, Instant::now()));
        let org = org.to_owned();
        metrics::gauge!("sfrelay_salesforce_api_used", "org" => org.clone()).set(usage.used as f64);
        metrics::gauge!("sfrelay_salesforce_api_limit", "org" => org.clone())
            .set(usage.limit as f64);
        metrics::gauge!("sfrelay_salesforce_api_remaining", "org" => org.clone())
            .set(usage.remaining() as f64);
        let held = match self.budget.holds(usage) {
            None => 0.0,
            Some(Need::Low) => 1.0,
            Some(_) => 2.0,
        };
        metrics::gauge!("sfrelay_salesforce_budget_holding", "org" => org).set(held);
    }

    pub(crate) fn latest(&self) -> Option<ApiUsage> {
        self.reading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|(usage, _)| usage)
    }

    /// What the usage holds back now: `None` when nothing is held.
    pub(crate) fn holding(&self) -> Option<(ApiUsage, Need)> {
        let usage = self.latest()?;
        Some((usage, self.budget.holds(usage)?))
    }

    /// Whether work of `need` may call Salesforce for `org` now.
    pub(crate) fn allows(
        &self,
        org: &SalesforceId,
        need: Need,
        label: &str,
    ) -> Result<(), OverBudget> {
        let Some((usage, at)) = *self.reading.lock().unwrap_or_else(|e| e.into_inner()) else {
            return Ok(());
        };
        let Some(held) = self.budget.holds(usage) else {
            return Ok(());
        };
        if need > held {
            return Ok(());
        }
        if at.elapsed() >= STALE_AFTER {
            let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
            if probe.is_none_or(|p| p.elapsed() >= HELD_FOR) {
                *probe = Some(Instant::now());
                return Ok(());
            }
        }
        metrics::counter!("sfrelay_salesforce_budget_waits_total", "org" => label.to_owned(), "need" => need.as_str())
            .increment(1);
        Err(OverBudget {
            org: org.clone(),
            used: usage.used,
            limit: usage.limit,
            held: held.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> SalesforceId {
        SalesforceId::parse("00D5g000004ABCdEAO").unwrap()
    }

    #[test]
    fn low_work_waits_above_the_low_share_and_all_but_high_above_the_high_share() {
        let usage = Usage::new(Budget::default());
        let at = |used| ApiUsage { used, limit: 1000 };
        assert!(
            usage.allows(&org(), Need::Low, "o").is_ok(),
            "nothing read yet"
        );
        usage.record(at(799), "o");
        assert!(usage.allows(&org(), Need::Low, "o").is_ok());
        usage.record(at(800), "o");
        let held = usage.allows(&org(), Need::Low, "o").unwrap_err();
        assert_eq!(held.held, "low");
        assert!(held.to_string().contains("800 of its 1000"), "{held}");
        assert!(usage.allows(&org(), Need::Normal, "o").is_ok());
        usage.record(at(950), "o");
        assert!(usage.allows(&org(), Need::Normal, "o").is_err());
        assert!(usage.allows(&org(), Need::High, "o").is_ok());
        assert_eq!(usage.holding().map(|(_, n)| n), Some(Need::Normal));
        usage.record(at(10), "o");
        assert!(usage.allows(&org(), Need::Low, "o").is_ok());
        assert_eq!(usage.holding(), None);
    }

    #[test]
    fn a_stale_reading_lets_one_call_through_to_read_it_again() {
        let usage = Usage::new(Budget::default());
        usage.record(
            ApiUsage {
                used: 990,
                limit: 1000,
            },
            "o",
        );
        *usage.reading.lock().unwrap() = Some((
            ApiUsage {
                used: 990,
                limit: 1000,
            },
            Instant::now() - STALE_AFTER,
        ));
        assert!(usage.allows(&org(), Need::Low, "o").is_ok(), "the probe");
        assert!(
            usage.allows(&org(), Need::Low, "o").is_err(),
            "one probe at a time"
        );
    }
}
