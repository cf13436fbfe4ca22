//! The credential pause of one Slack app (one bot token). When Slack answers `invalid_auth`,
//! `token_revoked`, `token_expired`, `account_inactive` or `missing_scope`, no retry can help
//! until someone fixes the token or reinstalls the app, and dead-lettering every job meanwhile
//! would lose them. So delivery for that app pauses: its jobs are put off (not counted as
//! attempts), the pause and its reason are written to the store so every replica holds too,
//! and a periodic `auth.test` lifts it once the token answers ok.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::client::SlackClient;
use super::error::SlackError;
use crate::keys::{Key, Workspace};
use crate::store::Store;

/// Why an app is paused: Slack's code, and the scope it asked for when it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<String>,
    /// When the pause began (Unix ms).
    pub since_ms: i64,
}

impl Paused {
    /// What an operator reads: the code, and what to do about it.
    pub fn reason(&self) -> String {
        match (self.code.as_str(), &self.needed) {
            ("missing_scope", Some(needed)) => {
                format!("missing_scope: the app needs the {needed} scope (reinstall it)")
            }
            ("missing_scope", None) => "missing_scope: the app lacks a scope (reinstall it)".into(),
            (code, _) => format!("{code}: the bot token does not work; replace it"),
        }
    }
}

/// One app's pause, shared by every job that posts as that app.
pub struct AppPause {
    /// The app's name in metrics and `/readyz`: `default`, or the org Id with its own app.
    app: String,
    key: Key,
    store: Arc<dyn Store>,
    /// What this process knows; the store's copy is read on every probe.
    state: Mutex<Option<Paused>>,
    probe_every: Duration,
}

impl AppPause {
    pub fn new(
        app: String,
        workspace: &Workspace,
        store: Arc<dyn Store>,
        probe_every: Duration,
    ) -> Self {
        AppPause {
            app,
            key: workspace.paused(),
            store,
            state: Mutex::new(None),
            probe_every,
        }
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    /// The pause in force, if any.
    pub fn current(&self) -> Option<Paused> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long a job put off by the pause waits before it looks again: one probe.
    pub fn wait(&self) -> Duration {
        self.probe_every
    }

    /// Pauses the app for `error` if it is a credential failure; answers whether it was.
    pub async fn pause_for(&self, error: &SlackError) -> bool {
        let SlackError::Credentials { code, needed } = error else {
            return false;
        };
        let paused = Paused {
            code: code.clone(),
            needed: needed.clone(),
            since_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.adopt(Some(paused.clone()));
        let value = serde_json::to_string(&paused).unwrap_or_default();
        if let Err(e) = self
            .store
            .set(self.key.as_str(), &value, self.key.ttl())
            .await
        {
            tracing::warn!(app = %self.app, error = %e, "cannot share the Slack app's pause with other replicas");
        }
        true
    }

    /// Takes `next` as the state, logging and setting the gauge when it changes.
    fn adopt(&self, next: Option<Paused>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let same = match (&*state, &next) {
            (Some(a), Some(b)) => a.code == b.code && a.needed == b.needed,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(old) = state.as_ref() {
            metrics::gauge!("sfrelay_slack_app_paused", "app" => self.app.clone(), "reason" => old.code.clone()).set(0.0);
        }
        match &next {
            Some(paused) => {
                metrics::gauge!("sfrelay_slack_app_paused", "app" => self.app.clone(), "reason" => paused.code.clone()).set(1.0);
                tracing::error!(app = %self.app, reason = %paused.reason(), "Slack refused the bot token: delivery for this app is PAUSED; jobs wait (nothing is dead-lettered) and go out once auth.test accepts the token");
            }
            None => {
                tracing::info!(app = %self.app, "the Slack bot token works again: delivery for this app resumes");
            }
        }
        *state = next;
    }

    /// Reads the pause other replicas may have set or lifted.
    async fn sync(&self) {
        match self.store.get(self.key.as_str()).await {
            Ok(Some(value)) => match serde_json::from_str::<Paused>(&value) {
                Ok(paused) => self.adopt(Some(paused)),
                Err(e) => {
                    tracing::warn!(app = %self.app, error = %e, "unreadable Slack pause in the store; ignoring it")
                }
            },
            Ok(None) => self.adopt(None),
            Err(e) => tracing::debug!(app = %self.app, error = %e, "cannot read the Slack pause"),
        }
    }

    /// Asks Slack whether the token works: ok (with the needed scope granted, when that was
    /// the reason) lifts the pause for every replica; a credential failure pauses.
    async fn probe(&self, client: &SlackClient) {
        match client.auth_test().await {
            Ok(identity) => {
                metrics::gauge!("sfrelay_slack_token_valid", "app" => self.app.clone()).set(1.0);
                let Some(paused) = self.current() else {
                    return;
                };
                if let (Some(needed), Some(granted)) = (&paused.needed, &identity.scopes)
                    && !granted.iter().any(|s| s == needed)
                {
                    tracing::warn!(app = %self.app, %needed, "the Slack token works but still lacks the needed scope; delivery stays paused");
                    return;
                }
                if let Err(e) = self.store.delete(self.key.as_str()).await {
                    tracing::warn!(app = %self.app, error = %e, "cannot lift the Slack pause for other replicas");
                }
                self.adopt(None);
            }
            Err(e) => {
                if self.pause_for(&e).await {
                    metrics::gauge!("sfrelay_slack_token_valid", "app" => self.app.clone())
                        .set(0.0);
                } else {
                    tracing::warn!(app = %self.app, error = %e, "cannot check the Slack token now; trying again later");
                }
            }
        }
    }

    /// Checks the token at start-up (without holding up ingest), then, every probe interval,
    /// follows the shared pause and probes while it lasts.
    pub async fn watch(self: Arc<Self>, client: SlackClient, stop: CancellationToken) {
        self.sync().await;
        match client.auth_test().await {
            Ok(identity) => {
                metrics::gauge!("sfrelay_slack_token_valid", "app" => self.app.clone()).set(1.0);
                tracing::info!(app = %self.app, team = %identity.team, bot = %identity.user, "Slack token accepted");
                if self.current().is_some() {
                    self.probe(&client).await;
                }
            }
            Err(e) => {
                metrics::gauge!("sfrelay_slack_token_valid", "app" => self.app.clone()).set(0.0);
                tracing::error!(app = %self.app, error = %e, "the Slack bot token was NOT accepted (auth.test failed); events are still queued and will be posted once the token works");
                self.pause_for(&e).await;
            }
        }
        let mut tick = tokio::time::interval(self.probe_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.sync().await;
            if self.current().is_some() {
                self.probe(&client).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slack::ratelimit::{CallError, Limiter, Rate};
    use crate::store::MemoryStore;

    const PROBE: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_refused_token_holds_every_call_of_its_app_and_every_replica_sees_why() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let workspace = Workspace::default_app();
        let pause = Arc::new(AppPause::new(
            "default".into(),
            &workspace,
            store.clone(),
            PROBE,
        ));
        let limiter = Limiter::new(
            store.clone(),
            Rate::per_minute(600, 10),
            true,
            workspace.clone(),
        )
        .with_pause(Some(pause.clone()));
        let refused = limiter
            .call("chat.postMessage", Some("C1"), || async {
                Err::<(), _>(SlackError::Credentials {
                    code: "missing_scope".into(),
                    needed: Some("chat:write".into()),
                })
            })
            .await;
        match refused {
            Err(CallError::Paused { app, reason, wait }) => {
                assert_eq!(app, "default");
                assert!(reason.contains("chat:write"), "{reason}");
                assert_eq!(wait, PROBE);
            }
            other => panic!("not paused: {other:?}"),
        }
        // While paused, nothing is sent at all.
        let mut sent = false;
        let held = limiter
            .call("chat.postMessage", Some("C2"), || {
                sent = true;
                async { Ok::<(), SlackError>(()) }
            })
            .await;
        assert!(matches!(held, Err(CallError::Paused { .. })), "{held:?}");
        assert!(!sent);
        assert_eq!(limiter.paused_for(), Some(PROBE));

        // Another replica reads the same pause and its reason from the store.
        let replica = AppPause::new("default".into(), &workspace, store.clone(), PROBE);
        assert!(replica.current().is_none());
        replica.sync().await;
        let seen = replica.current().expect("the shared pause");
        assert_eq!(
            (seen.code.as_str(), seen.needed.as_deref()),
            ("missing_scope", Some("chat:write"))
        );
        // Other apps and other errors are not paused.
        let other = AppPause::new(
            "00D5g000007OWNaEAO".into(),
            &Workspace::of_org("00D5g000007OWNaEAO"),
            store,
            PROBE,
        );
        other.sync().await;
        assert!(other.current().is_none());
        let not_credentials = SlackError::Api {
            code: "channel_not_found".into(),
        };
        assert!(!other.pause_for(&not_credentials).await);
        assert!(other.current().is_none());
    }
}
