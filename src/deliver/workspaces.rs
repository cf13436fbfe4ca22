//! One deliverer per Slack workspace (Slack app): the default one, and one for each org with
//! its own bot token (`[orgs.slack]`). Callers say which org they act for; nothing picks the
//! default silently. Each app posting through the Web API has a credential pause, watched here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::Deliverer;
use crate::event::SalesforceId;
use crate::slack::{AppPause, SlackClient};

pub struct Workspaces {
    default: Arc<Deliverer>,
    by_org: HashMap<SalesforceId, Arc<Deliverer>>,
    /// Each app's pause and the client its probe uses.
    pauses: Vec<(Arc<AppPause>, SlackClient)>,
}

impl Workspaces {
    pub fn new(default: Arc<Deliverer>, by_org: HashMap<SalesforceId, Arc<Deliverer>>) -> Self {
        Workspaces {
            default,
            by_org,
            pauses: Vec::new(),
        }
    }

    /// The apps' pauses, to be watched by [`Workspaces::watch`] and shown by `/readyz`.
    pub fn with_pauses(mut self, pauses: Vec<(Arc<AppPause>, SlackClient)>) -> Self {
        self.pauses = pauses;
        self
    }

    /// The default Slack app's deliverer.
    pub fn default_app(&self) -> &Deliverer {
        &self.default
    }

    /// The deliverer that posts on behalf of `org`: its own app's, else the default one.
    pub fn for_org(&self, org: &SalesforceId) -> &Deliverer {
        self.by_org.get(org).unwrap_or(&self.default)
    }

    /// While the app that posts for `org` is paused: how long its jobs wait before looking again.
    pub fn paused_for(&self, org: &SalesforceId) -> Option<Duration> {
        self.for_org(org).limiter.paused_for()
    }

    /// Checks every app's token now, then follows and probes each pause until `stop`.
    pub fn watch(&self, stop: &CancellationToken) {
        for (pause, client) in &self.pauses {
            tokio::spawn(pause.clone().watch(client.clone(), stop.clone()));
        }
    }

    /// Each app's state for `/readyz`: `ok`, or `paused` with the reason and since when.
    pub fn status(&self) -> Value {
        let apps: Vec<Value> = self
            .pauses
            .iter()
            .map(|(pause, _)| match pause.current() {
                None => json!({"app": pause.app(), "state": "ok"}),
                Some(paused) => json!({
                    "app": pause.app(),
                    "state": "paused",
                    "reason": paused.reason(),
                    "since": chrono::DateTime::from_timestamp_millis(paused.since_ms)
                        .map(|t| t.to_rfc3339()),
                }),
            })
            .collect();
        Value::Array(apps)
    }
}
