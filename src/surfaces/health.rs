//! Each org's health as an admin sees it on the Home tab: whether sfrelay's Salesforce token
//! works, when the org's last event was routed, the day's API use (from `Sforce-Limit-Info`)
//! and each subscription's cursor age; and, once for the workspace, the dead letters waiting.
//! Gathered from what every replica shares (the store, the queue), not from one process's
//! memory, except the token and the API use, which are what this replica last knew.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::event::SalesforceId;
use crate::jobs::Jobs;
use crate::keys::Key;
use crate::queue::now_ms;
use crate::store::Store;

/// How often one replica records an org's last event: often enough for "a minute ago", rare
/// enough to cost nothing under a burst.
const NOTE_EVERY: Duration = Duration::from_secs(30);
/// How long a refused token request is shown before opening Home asks Salesforce again, so
/// admins opening Home do not each cost a token request.
const TOKEN_RECHECK: Duration = Duration::from_secs(60);

/// Records when each org's last event was routed, at most once per [`NOTE_EVERY`] per replica.
#[derive(Debug, Default)]
pub struct LastEvents {
    noted: Mutex<HashMap<SalesforceId, Instant>>,
}

impl LastEvents {
    pub async fn note(&self, store: &dyn Store, org: &SalesforceId) {
        {
            let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
            match noted.get(org) {
                Some(at) if at.elapsed() < NOTE_EVERY => return,
                _ => noted.insert(org.clone(), Instant::now()),
            };
        }
        let key = Key::last_event(org);
        if let Err(e) = store
            .set(key.as_str(), &now_ms().to_string(), key.ttl())
            .await
        {
            tracing::debug!(%org, error = %e, "cannot note the org's last event");
        }
    }
}

/// One org's health.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgHealth {
    pub org: SalesforceId,
    pub name: String,
    /// `Ok` when sfrelay's own Salesforce token works; the reason otherwise; `None` without
    /// API credentials.
    pub token: Option<Result<(), String>>,
    pub last_event_ms: Option<i64>,
    pub api_used: Option<(u64, u64)>,
    /// Per subscribed topic: when its cursor last moved (Unix ms).
    pub cursors: Vec<(String, Option<i64>)>,
}

/// Gathers every org's health.
pub async fn gather(jobs: &Jobs, orgs: &[(SalesforceId, String, Vec<String>)]) -> Vec<OrgHealth> {
    let mut all = Vec::with_capacity(orgs.len());
    for (org, name, topics) in orgs {
        let client = jobs.salesforce.as_ref().filter(|sf| sf.has_org(org));
        let token = match client {
            Some(sf) => Some(
                sf.check_token(org, TOKEN_RECHECK)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            None => None,
        };
        let last_event_ms = jobs
            .store
            .get(Key::last_event(org).as_str())
            .await
            .ok()
            .flatten()
            .and_then(|v| v.parse().ok());
        let api_used = client
            .and_then(|sf| sf.api_usage(org))
            .map(|u| (u.used, u.limit));
        let mut cursors = Vec::new();
        for topic in topics {
            let at = crate::salesforce::pubsub::cursor::load(jobs.store.as_ref(), org, topic)
                .await
                .ok()
                .flatten()
                .map(|c| c.stored_at_ms);
            cursors.push((topic.clone(), at));
        }
        all.push(OrgHealth {
            org: org.clone(),
            name: name.clone(),
            token,
            last_event_ms,
            api_used,
            cursors,
        });
    }
    all
}

/// "3 min ago", "2 h ago", "5 d ago".
fn ago(at_ms: i64, now_ms: i64) -> String {
    let secs = ((now_ms - at_ms).max(0)) / 1000;
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86400),
    }
}

/// The blocks of one org's health.
pub fn blocks(health: &OrgHealth, now_ms: i64) -> Vec<Value> {
    let esc = |s: &str| crate::render::mrkdwn::escape(s).into_owned();
    let token = match &health.token {
        None => "no API credentials".to_owned(),
        Some(Ok(())) => ":white_check_mark: token valid".to_owned(),
        Some(Err(e)) => format!(":x: token refused: {}", esc(e)),
    };
    let last = health.last_event_ms.map_or_else(
        || "none for a week or more".to_owned(),
        |at| ago(at, now_ms),
    );
    let api = health.api_used.map_or_else(
        || "not read yet today".to_owned(),
        |(used, limit)| {
            let share = (used * 100).checked_div(limit).unwrap_or(0);
            format!("{used} of {limit} ({share} %)")
        },
    );
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Salesforce*\n{token}")}),
        json!({"type": "mrkdwn", "text": format!("*Last event*\n{last}")}),
        json!({"type": "mrkdwn", "text": format!("*API use today*\n{api}")}),
    ];
    for (topic, at) in &health.cursors {
        let age = at.map_or_else(|| "no cursor yet".to_owned(), |at| ago(at, now_ms));
        fields.push(json!({"type": "mrkdwn", "text": format!("*{}*\ncursor {age}", esc(topic))}));
    }
    fields.truncate(10);
    vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}* health", esc(&health.name))}, "fields": fields}),
    ]
}

/// The workspace's dead letters (one queue for every org); `None` when the queue did not say.
pub fn dead_letters(dead: Option<u64>) -> Value {
    let text = match dead {
        Some(0) => "*Dead letters*: 0".to_owned(),
        Some(n) => format!("*Dead letters*: {n} (`sfrelay dlq list` shows them)"),
        None => "*Dead letters*: unknown (the queue did not answer)".to_owned(),
    };
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reads_plainly() {
        let health = OrgHealth {
            org: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            name: "Acme <prod>".into(),
            token: Some(Err("invalid_grant".into())),
            last_event_ms: Some(1_000),
            api_used: Some((1_234, 100_000)),
            cursors: vec![("/data/OpportunityChangeEvent".into(), Some(61_000))],
        };
        let text = serde_json::to_string(&blocks(&health, 121_000)).unwrap();
        assert!(text.contains("token refused: invalid_grant"), "{text}");
        assert!(text.contains("2 min ago"), "{text}");
        assert!(text.contains("1234 of 100000 (1 %)"), "{text}");
        assert!(text.contains("cursor 1 min ago"), "{text}");
        assert!(!text.contains("Dead letters"), "{text}");
        assert!(!text.contains("<prod>"), "{text}");
    }

    #[test]
    fn dead_letters_are_counted_with_where_to_look() {
        let text = |dead| {
            dead_letters(dead)["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(text(Some(0)), "*Dead letters*: 0");
        assert_eq!(
            text(Some(3)),
            "*Dead letters*: 3 (`sfrelay dlq list` shows them)"
        );
        assert!(text(None).contains("unknown"));
    }
}
