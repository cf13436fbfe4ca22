//! A world for acting from Slack: real sfrelay and Redis, the Slack emulator playing the people
//! who click, and the Salesforce emulator holding the records, users and approvals they act on.

use std::time::Duration;

use serde_json::{Value, json};

use super::{App, ORG, Options, Redis, Salesforce, Slack, eventually};

pub const SECRET: &str = "actions-signing-secret-0123456789ab";
pub const CASE: &str = "500Hs00000EfGhiIAF";
pub const OPP: &str = "006Hs00000BkXyzIAF";
pub const QUEUE: &str = "00G000000000001AAA";
pub const MODIFIED: &str = "2025-10-02T09:12:00.000+0000";

/// People: Slack user, Salesforce user Id, username, email.
pub const RILEY: (&str, &str, &str, &str) = (
    "U0RILEY001",
    "005000000000011AAA",
    "riley@acme.example",
    "riley.support@example.com",
);
pub const DANA: (&str, &str, &str, &str) = (
    "U0DANA0001",
    "005000000000012AAA",
    "dana@acme.example",
    "dana.seller@example.com",
);
pub const MORGAN: (&str, &str, &str, &str) = (
    "U0MORGAN01",
    "005000000000013AAA",
    "morgan@acme.example",
    "morgan.manager@example.com",
);
/// In Slack, but with no Salesforce user.
pub const CASEY: &str = "U0CASEY001";

pub const STAGES: [&str; 4] = [
    "Prospecting",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
];

fn user(p: (&str, &str, &str, &str), name: &str) -> Value {
    json!({"Id": p.1, "Username": p.2, "Name": name, "Email": p.3, "IsActive": true})
}

/// The records every world starts with.
pub fn seed() -> Value {
    json!({
        "Case": [{"Id": CASE, "CaseNumber": "00001042", "Subject": "Checkout API returns 500",
                  "Status": "Escalated", "Priority": "Critical", "OwnerId": QUEUE,
                  "LastModifiedDate": MODIFIED}],
        "Opportunity": [{"Id": OPP, "Name": "Acme Corp - Q3 Enterprise",
                         "StageName": "Negotiation/Review", "Amount": 75000,
                         "OwnerId": DANA.1, "LastModifiedDate": MODIFIED}],
        "User": [user(RILEY, "Riley Support"), user(DANA, "Dana Seller"),
                 user(MORGAN, "Morgan Manager")],
    })
}

/// A route file of the shipped set, by name.
pub fn shipped_route(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("routes")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub struct World {
    pub redis: Redis,
    pub slack: Slack,
    pub sf: Salesforce,
    pub app: App,
    routes: Vec<(&'static str, String)>,
    section: String,
    namespace: String,
}

/// How long a killed process's jobs wait before another takes them.
const VISIBILITY_SECS: u64 = 2;

async fn spawn(
    redis: &Redis,
    slack: &Slack,
    routes: &[(&'static str, String)],
    section: &str,
    namespace: &str,
) -> App {
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            salesforce_section: Some(section.to_string()),
            routes: Some(routes.to_vec()),
            workers: 2,
            namespace: namespace.to_string(),
            visibility_timeout_secs: VISIBILITY_SECS,
            shutdown_grace_secs: 1,
            ..Options::default()
        },
        vec![("SLACK_SIGNING_SECRET".into(), SECRET.into())],
    )
    .await
}

impl World {
    /// sfrelay with `routes` (the shipped buttons are always there), acting `act_as`.
    pub async fn start(routes: Vec<(&'static str, String)>, act_as: &str) -> World {
        let redis = Redis::start();
        let slack = Slack::start(&[]);
        slack
            .add_user(json!({"id": MORGAN.0, "email": MORGAN.3}))
            .await;
        let sf = Salesforce::start(&seed());
        sf.control(
            "picklists",
            json!({"Opportunity": {"StageName": {"master": STAGES}}}),
        )
        .await;
        let mut routes = routes;
        routes.push(("buttons", shipped_route("buttons")));
        let section = format!("{}act_as = \"{act_as}\"\n", sf.org_section());
        let namespace = super::fresh_namespace();
        let app = spawn(&redis, &slack, &routes, &section, &namespace).await;
        World {
            redis,
            slack,
            sf,
            app,
            routes,
            section,
            namespace,
        }
    }

    /// kill -9, then a new process on the same queue (it takes the killed one's jobs).
    pub async fn kill_and_restart(&mut self) {
        self.app.kill();
        self.app = spawn(
            &self.redis,
            &self.slack,
            &self.routes,
            &self.section,
            &self.namespace,
        )
        .await;
    }

    /// Holds the Salesforce emulator's replies to `method` requests whose path has `part`.
    pub async fn hold(&self, method: &str, part: &str) {
        self.sf
            .control("hold", json!({"method": method, "path_contains": part}))
            .await;
    }

    /// How many replies the Salesforce emulator holds now.
    pub async fn held(&self) -> u64 {
        let state: Value = reqwest::get(format!("{}/_emulator/hold", self.sf.url))
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON");
        state["held"].as_u64().unwrap_or(0)
    }

    pub async fn release(&self) {
        self.sf.control("release", json!({})).await;
    }

    pub fn interactions(&self) -> String {
        format!("{}/slack/interactions", self.app.url)
    }

    /// Posts one Flow event and waits for sfrelay to take it.
    pub async fn event(&self, event: Value) {
        let response = self.app.post_events(event.to_string()).await;
        assert_eq!(
            response.status(),
            202,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    /// The message in `channel` once there is one, and its ts.
    pub async fn card_in(&self, channel: &str) -> (String, Value) {
        eventually(
            &format!("a card in {channel}"),
            Duration::from_secs(20),
            || async {
                let messages = self.slack.messages().await;
                let card = messages.into_iter().find(|m| m["channel"] == channel)?;
                Some((card["ts"].as_str()?.to_string(), card))
            },
        )
        .await
    }

    /// The message at `ts` once `check` holds for it.
    pub async fn card_when(&self, ts: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(what, Duration::from_secs(20), || async {
            let messages = self.slack.messages().await;
            messages.into_iter().find(|m| m["ts"] == ts && check(m))
        })
        .await
    }

    /// The Salesforce emulator's journal of writes.
    pub async fn writes(&self) -> Vec<Value> {
        let state: Value = reqwest::get(format!("{}/_emulator/writes", self.sf.url))
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON");
        state["journal"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the journal holds `n` writes (never more) and answers them.
    pub async fn wait_for_writes(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} Salesforce write(s)"),
            Duration::from_secs(20),
            || async {
                let writes = self.writes().await;
                assert!(writes.len() <= n, "more writes than expected: {writes:#?}");
                (writes.len() == n).then_some(writes)
            },
        )
        .await
    }

    /// The Salesforce API requests whose path contains `part` and whose method is `method`.
    pub async fn sf_requests(&self, method: &str, part: &str) -> Vec<Value> {
        self.sf
            .requests()
            .await
            .into_iter()
            .filter(|r| r["method"] == method && r["path"].as_str().unwrap_or("").contains(part))
            .collect()
    }

    /// `user` picks `stage` in the Move stage select of the deal card at `ts` in #deal-desk.
    pub async fn choose_stage(&self, user: &str, ts: &str, stage: &str) {
        let value = option("Opportunity", OPP, "move_stage", stage);
        let url = self.interactions();
        let answer = self
            .slack
            .choose(&url, SECRET, user, "C0DEALDESK", ts, "move_stage", &value)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }

    /// Waits for `user`'s `n`-th ephemeral message and answers its text.
    pub async fn told(&self, user: &str, n: usize) -> String {
        let told = self.slack.wait_for_ephemerals(user, n).await;
        told[n - 1]["text"].as_str().unwrap_or_default().to_string()
    }
}

/// The value of a select option choosing `choice` with button `action` on `object` `id`.
pub fn option(object: &str, id: &str, action: &str, choice: &str) -> String {
    format!("sfrelay:v1:{ORG}:{object}:{id}:{action}:{choice}")
}

/// Whether a card still offers the button (or select) `action_id`.
pub fn offers(card: &Value, action_id: &str) -> bool {
    card["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["elements"].as_array().into_iter().flatten())
        .any(|e| e["action_id"] == action_id)
}

/// The card's text, blocks included, for looking for a note.
pub fn shows(card: &Value, text: &str) -> bool {
    card["blocks"].to_string().contains(text)
}
