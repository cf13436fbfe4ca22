//! What each subscription is doing, for `/readyz` and the metrics: a stream that is down is
//! named there without failing readiness (its changes wait in Salesforce, up to 72 hours).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Subscription;

/// A subscription's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet, or between streams.
    Starting,
    /// Another replica holds the stream.
    Standby,
    Connected,
    /// Waiting before reconnecting after a transient error.
    Reconnecting,
    /// A configuration or allocation error: retried rarely, needs someone to look.
    Degraded,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Standby => "standby",
            Phase::Connected => "connected",
            Phase::Reconnecting => "reconnecting",
            Phase::Degraded => "degraded",
        }
    }
}

#[derive(Debug, Clone)]
struct State {
    phase: Phase,
    error: Option<String>,
    cursor_at_ms: Option<i64>,
    last_event_ms: Option<i64>,
    last_message_ms: Option<i64>,
    credit: i32,
}

/// Every subscription's state, by `org topic`.
#[derive(Debug, Default)]
pub struct Statuses {
    states: Mutex<BTreeMap<(String, String), State>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Statuses {
    fn update(&self, sub: &Subscription, change: impl FnOnce(&mut State)) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = states
            .entry((sub.org.to_string(), sub.topic.clone()))
            .or_insert(State {
                phase: Phase::Starting,
                error: None,
                cursor_at_ms: None,
                last_event_ms: None,
                last_message_ms: None,
                credit: 0,
            });
        change(state);
        let labels = [("org", sub.org.to_string()), ("topic", sub.topic.clone())];
        metrics::gauge!("sfrelay_pubsub_connected", &labels).set(
            if state.phase == Phase::Connected {
                1.0
            } else {
                0.0
            },
        );
        metrics::gauge!("sfrelay_pubsub_credit_outstanding", &labels).set(f64::from(state.credit));
        if let Some(at) = state.cursor_at_ms {
            metrics::gauge!("sfrelay_pubsub_cursor_age_seconds", &labels)
                .set((now_ms() - at).max(0) as f64 / 1000.0);
        }
    }

    pub fn set_phase(&self, sub: &Subscription, phase: Phase) {
        self.update(sub, |s| {
            s.phase = phase;
            if phase == Phase::Connected {
                s.error = None;
            }
        });
    }

    pub fn failed(&self, sub: &Subscription, phase: Phase, error: &str) {
        self.update(sub, |s| {
            s.phase = phase;
            s.error = Some(error.to_owned());
        });
    }

    pub fn received(&self, sub: &Subscription, events: usize) {
        let now = now_ms();
        self.update(sub, |s| {
            s.last_message_ms = Some(now);
            if events > 0 {
                s.last_event_ms = Some(now);
            }
        });
    }

    pub fn credit(&self, sub: &Subscription, credit: i32) {
        self.update(sub, |s| s.credit = credit);
    }

    pub fn cursor_saved(&self, sub: &Subscription, at_ms: i64) {
        self.update(sub, |s| s.cursor_at_ms = Some(at_ms));
    }

    /// The `/readyz` detail: one entry per subscription.
    pub fn json(&self) -> Value {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let age = |at: Option<i64>| at.map(|t| (now - t).max(0) / 1000);
        Value::Array(
            states
                .iter()
                .map(|((org, topic), s)| {
                    json!({
                        "org": org,
                        "topic": topic,
                        "state": s.phase.as_str(),
                        "error": s.error,
                        "cursor_age_secs": age(s.cursor_at_ms),
                        "last_event_secs_ago": age(s.last_event_ms),
                        "last_message_secs_ago": age(s.last_message_ms),
                        "credit": s.credit,
                    })
                })
                .collect(),
        )
    }
}
