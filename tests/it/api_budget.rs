//! The API-budget guard against the real binary and the Salesforce emulator, whose daily API
//! usage the test sets as other integrations would spend it: above 80 % a low-priority route's
//! enrichment waits while normal and high ones run, above 95 % only high ones run, `/readyz`
//! and the metrics say so, and once usage falls everything held is delivered, once.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Salesforce, Slack, eventually};

const WAIT: Duration = Duration::from_secs(20);
const DEAL: &str = "006Hs00000BkXyzIAF";

/// A route of `priority` that enriches the deals whose `Tier__c` names it.
fn route(priority: &str) -> String {
    format!(
        r##"
object = "Opportunity"
priority = "{priority}"
when = 'record.Tier__c == "{priority}"'
[enrich]
query = "SELECT Id, Name FROM Opportunity WHERE Id = :record.Id"
name = "opp"
[[actions]]
type = "post"
channel = "#deal-desk"
template = "tiered"
"##
    )
}

const TEMPLATE: &str =
    r#"{"text": "{{ event_id }}: {{ opp.Name | default('not enriched') }}", "blocks": []}"#;

struct World {
    _redis: Redis,
    slack: Slack,
    sf: Salesforce,
    app: App,
}

impl World {
    async fn start() -> World {
        let redis = Redis::start();
        let slack = Slack::start(&["--rate-per-channel", "100", "--burst", "100"]);
        let sf = Salesforce::start(&json!({"Opportunity": [{"Id": DEAL, "Name": "Acme Corp"}]}));
        let app = App::spawn(Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            salesforce_section: Some(sf.org_section()),
            routes: Some(
                ["low", "normal", "high"]
                    .iter()
                    .map(|p| (*p, route(p)))
                    .collect(),
            ),
            templates: vec![("tiered", TEMPLATE.to_string())],
            extra_toml: "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 100\n".into(),
            ..Options::default()
        })
        .await;
        World {
            _redis: redis,
            slack,
            sf,
            app,
        }
    }

    /// Other integrations have spent `used` of the org's 1,000 daily requests.
    async fn usage(&self, used: u64) {
        self.sf
            .control("api-usage", json!({"used": used, "limit": 1000}))
            .await;
    }

    /// A change to the deal that fires the route of `tier`.
    async fn change(&self, event_id: &str, tier: &str) {
        let event = json!({
            "event_id": event_id, "org_id": support::ORG, "object": "Opportunity",
            "change_type": "UPDATE", "changed_fields": ["Tier__c"],
            "record": {"Id": DEAL, "Tier__c": tier}
        });
        assert_eq!(self.app.post_events(event.to_string()).await.status(), 202);
    }

    /// The event ids posted so far, in order.
    async fn posted(&self) -> Vec<String> {
        self.slack
            .messages()
            .await
            .iter()
            .filter_map(|m| m["text"].as_str()?.split(':').next().map(str::to_owned))
            .collect()
    }

    async fn wait_posted(&self, event_id: &str) {
        eventually(&format!("{event_id} posted"), WAIT, || async {
            self.posted()
                .await
                .iter()
                .any(|p| p == event_id)
                .then_some(())
        })
        .await;
    }

    async fn wait_held(&self, need: &str, at_least: f64) {
        let need = format!("need=\"{need}\"");
        eventually(&format!("{need} work held"), WAIT, || async {
            let text = self.app.get("/metrics").await.text().await.ok()?;
            text.lines()
                .filter(|l| l.starts_with("sfrelay_salesforce_budget_waits_total{"))
                .filter(|l| l.contains(&need))
                .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .filter(|n| *n >= at_least)
        })
        .await;
    }

    async fn readyz(&self) -> Value {
        self.app.get("/readyz").await.json().await.expect("JSON")
    }
}

/// The one org `/readyz` says holds work back.
fn first_held(ready: &Value) -> &Value {
    let held = ready["checks"]["salesforce_budget"]
        .as_object()
        .expect("an object");
    assert_eq!(held.len(), 1, "{ready}");
    held.values().next().expect("one org")
}

#[tokio::test]
async fn work_waits_by_priority_while_the_allowance_runs_short_and_none_is_lost() {
    let world = World::start().await;
    world.usage(900).await;
    // High-priority work runs and reads the usage: 90 % of the allowance.
    world.change("high-1", "high").await;
    world.wait_posted("high-1").await;

    // Above 80 %: the low-priority route's enrichment waits; the normal one runs.
    world.change("low-1", "low").await;
    world.wait_held("low", 1.0).await;
    world.change("normal-1", "normal").await;
    world.wait_posted("normal-1").await;
    let ready = world.readyz().await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(
        first_held(&ready)["holding"],
        "low-priority work waits",
        "{ready}"
    );

    // Above 95 %: only high-priority work runs.
    world.usage(960).await;
    world.change("high-2", "high").await;
    world.wait_posted("high-2").await;
    world.change("normal-2", "normal").await;
    world.wait_held("normal", 1.0).await;
    let ready = world.readyz().await;
    assert_eq!(
        first_held(&ready)["holding"],
        "only high-priority work runs",
        "{ready}"
    );
    let posted = world.posted().await;
    assert!(
        !posted.contains(&"low-1".to_string()) && !posted.contains(&"normal-2".to_string()),
        "{posted:?}"
    );
    let metrics = world.app.get("/metrics").await.text().await.unwrap();
    let holding: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("sfrelay_salesforce_budget_holding{"))
        .collect();
    assert_eq!(holding.len(), 1, "{holding:?}");
    assert!(holding[0].ends_with(" 2"), "{holding:?}");

    // Usage falls (the next answer says so): what waited is delivered, each event once.
    world.usage(100).await;
    world.change("high-3", "high").await;
    world.wait_posted("low-1").await;
    world.wait_posted("normal-2").await;
    let mut posted = world.posted().await;
    posted.sort();
    assert_eq!(
        posted,
        [
            "high-1", "high-2", "high-3", "low-1", "normal-1", "normal-2"
        ]
    );
    assert_eq!(
        world.readyz().await["checks"]["salesforce_budget"],
        json!({})
    );
}
