//! What a click needs around sfrelay: the Salesforce emulator holding one escalated Case per
//! card and the person who clicks, a route posting each Case's card to a bench channel of its
//! own, the shipped buttons (`routes/buttons.toml`), and sfrelay with API access to the org and
//! Slack's signing secret. Mirrors `tests/it/support/actions.rs`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::envelope::{name, seq_in};
use crate::http::Conn;
use crate::loadgen::unix_ms;
use crate::procs::{Emulator, ORG_ID, Paths, Redis, Sfrelay, SfrelaySpec, channel_id};
use crate::salesforce::Salesforce;

/// The app's signing secret: sfrelay verifies with it what the emulator signs with it.
pub const SIGNING_SECRET: &str = "bench-signing-secret-0123456789abcdef";
/// The queue every Case belongs to before it is taken.
const QUEUE: &str = "00G000000000001AAA";
const MODIFIED: &str = "2025-10-02T09:12:00.000+0000";
/// The button measured: "Take it" on the case-escalation card.
pub const ACTION: &str = "take_case";

/// The person who clicks: a default user of the Slack emulator, with a Salesforce user of the
/// same email (looked up once, then cached by sfrelay).
pub struct Person {
    pub slack: &'static str,
    pub salesforce_id: &'static str,
    username: &'static str,
    email: &'static str,
}

pub const CLICKER: Person = Person {
    slack: "U0RILEY001",
    salesforce_id: "005000000000001AAA",
    username: "riley@acme.example",
    email: "riley.support@example.com",
};

/// The Case on card `k`: an all-digit 15-character Id, whose checksum suffix is `AAA`.
pub fn case_id(k: usize) -> String {
    format!("500{:012}AAA", k + 1)
}

/// Card `k`'s channel; card 0 is the warm-up's.
pub fn card_channel(k: usize, channels: usize) -> String {
    channel_id(k % channels.max(1))
}

/// Case `k` as both Salesforce and the Flow event have it; its subject (`bench-<k>`) appears in
/// the card's text, so a card is traced back to its Case.
fn case_record(k: usize, channels: usize) -> Value {
    json!({
        "Id": case_id(k), "CaseNumber": format!("{:08}", k + 1), "Subject": name(k as u64),
        "Priority": "Critical", "IsEscalated": true, "Status": "Escalated", "OwnerId": QUEUE,
        "LastModifiedDate": MODIFIED, "Bench_Channel__c": card_channel(k, channels),
    })
}

/// The records the Salesforce emulator starts with: `cards` Cases and the clicker's User.
pub fn seed(cards: usize, channels: usize) -> Value {
    let cases: Vec<Value> = (0..cards).map(|k| case_record(k, channels)).collect();
    json!({
        "Case": cases,
        "User": [{"Id": CLICKER.salesforce_id, "Username": CLICKER.username,
                  "Name": "Riley Support", "Email": CLICKER.email, "IsActive": true}],
    })
}

/// The Flow callout escalating Case `k`.
pub fn escalation(k: usize, channels: usize) -> Bytes {
    let mut record = case_record(k, channels);
    record["Owner"] = json!({"Name": "Tier 2 queue"});
    json!({
        "event_id": format!("bench-case-{k}"), "org_id": ORG_ID, "object": "Case",
        "change_type": "UPDATE", "changed_fields": ["IsEscalated", "Priority"],
        "record": record, "prior": {"IsEscalated": false, "Priority": "High"},
    })
    .to_string()
    .into()
}

/// The shipped case-escalation route, but to the channel `Bench_Channel__c` names (one action
/// per channel, like the bench's Closed Won route), so no two cards share a channel's budget.
pub fn case_route(channels: usize) -> String {
    let mut route = String::from(
        "description = \"bench: escalated Case to the channel named by record.Bench_Channel__c\"\n\
         object = \"Case\"\n\
         change_types = [\"CREATE\", \"UPDATE\"]\n\
         when = 'became(\"IsEscalated\", true) and record.Bench_Channel__c'\n\
         priority = \"high\"\n",
    );
    for i in 0..channels {
        let id = channel_id(i);
        route.push_str(&format!(
            "\n[[actions]]\ntype = \"post\"\nchannel = \"{id}\"\ntemplate = \"case-escalation\"\n\
             when = 'record.Bench_Channel__c == \"{id}\"'\n"
        ));
    }
    route
}

/// A card sfrelay posted: which Case, where.
#[derive(Debug, Clone)]
pub struct Card {
    pub k: usize,
    pub channel: String,
    pub ts: String,
}

/// What one click came to, as the emulator that sent it reports it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Wall clock when the bench asked the emulator to click (Unix ms).
    pub sent_unix_ms: f64,
    /// Bench → emulator → sfrelay and back: an upper bound of sfrelay's answer time.
    pub round_trip: Duration,
    /// sfrelay's HTTP status.
    pub status: u16,
    /// sfrelay's answer time as the emulator measured it, whole milliseconds.
    pub emulator_elapsed_ms: u64,
}

/// Redis, both emulators and one sfrelay, all fresh.
pub struct World {
    _redis: Redis,
    pub slack: Emulator,
    pub salesforce: Salesforce,
    pub relay: Sfrelay,
    _routes: TempDir,
}

impl World {
    /// Everything a run of `cards` cards over `channels` channels needs.
    pub async fn start(paths: &Paths, cards: usize, channels: usize) -> anyhow::Result<World> {
        let redis = Redis::start()?;
        let slack = Emulator::start(paths, channels, false)?;
        let salesforce = Salesforce::start(paths, &seed(cards, channels), &[])?;
        let routes = tempfile::tempdir()?;
        std::fs::write(routes.path().join("cases.toml"), case_route(channels))?;
        let buttons = paths.repo.join("routes/buttons.toml");
        std::fs::copy(&buttons, routes.path().join("buttons.toml"))
            .with_context(|| buttons.display().to_string())?;
        // Writes on the clicker's behalf, as the integration user.
        let section = salesforce.org_section(&paths.repo) + "act_as = \"integration\"\n";
        let api = slack.api_base();
        let relay = Sfrelay::start(&SfrelaySpec {
            paths,
            routes_dir: routes.path(),
            redis_url: &redis.url,
            slack_api: &api,
            unlimited: false,
            min_replicas_acked: None,
            salesforce_section: Some(&section),
            templates_dir: None,
            env: &[("SLACK_SIGNING_SECRET", SIGNING_SECRET)],
        })
        .await?;
        Ok(World {
            _redis: redis,
            slack,
            salesforce,
            relay,
            _routes: routes,
        })
    }

    /// Escalates Cases 0..`cards` and waits for every card; answers them by Case.
    pub async fn post_cards(&self, cards: usize, channels: usize) -> anyhow::Result<Vec<Card>> {
        let mut conn = Conn::open(self.relay.addr).await?;
        for k in 0..cards {
            let status = conn.post_events(escalation(k, channels)).await?;
            anyhow::ensure!(
                status == 202,
                "the escalation of Case {k} was answered {status}"
            );
        }
        // Cards sharing a channel (more cards than channels) wait for its 1 message/s.
        let wait = Duration::from_secs(30 + cards.div_ceil(channels.max(1)) as u64);
        let posted = self
            .slack
            .wait_posts(cards as u64, Instant::now() + wait)
            .await?;
        anyhow::ensure!(
            posted >= cards as u64,
            "{posted} of {cards} cards were posted within {wait:?}"
        );
        let mut found: Vec<Option<Card>> = vec![None; cards];
        for message in self.slack.messages().await? {
            let text = message["text"].as_str().unwrap_or_default();
            let (Some(k), Some(channel), Some(ts)) = (
                seq_in(text).map(|k| k as usize),
                message["channel"].as_str(),
                message["ts"].as_str(),
            ) else {
                continue;
            };
            if k < cards && message["blocks"].to_string().contains(ACTION) {
                found[k] = Some(Card {
                    k,
                    channel: channel.to_string(),
                    ts: ts.to_string(),
                });
            }
        }
        found
            .into_iter()
            .enumerate()
            .map(|(k, card)| {
                card.with_context(|| format!("no card offering {ACTION} for Case {k}"))
            })
            .collect()
    }

    /// The clicker presses "Take it" on `card`: the emulator signs the click and posts it to
    /// sfrelay's `/slack/interactions`, and answers once sfrelay has.
    pub async fn click(&self, conn: &mut Conn, card: &Card) -> anyhow::Result<Answer> {
        let request = json!({
            "url": format!("http://{}/slack/interactions", self.relay.addr),
            "signing_secret": SIGNING_SECRET, "type": "block_actions", "user": CLICKER.slack,
            "channel": card.channel, "ts": card.ts, "action_id": ACTION,
        });
        let sent_unix_ms = unix_ms();
        let started = Instant::now();
        let (status, body) = conn
            .post_json("/_emulator/interact", request.to_string().into())
            .await?;
        let round_trip = started.elapsed();
        let answer: Value = serde_json::from_slice(&body)
            .with_context(|| format!("interact: HTTP {status}, not JSON"))?;
        anyhow::ensure!(status == 200, "interact: HTTP {status}: {answer}");
        Ok(Answer {
            sent_unix_ms,
            round_trip,
            status: answer["status"].as_u64().unwrap_or(0) as u16,
            emulator_elapsed_ms: answer["elapsed_ms"].as_u64().unwrap_or(0),
        })
    }

    /// Waits until `card` shows who took it.
    pub async fn wait_taken(&self, card: &Card, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let shown = self.slack.messages().await?.iter().any(|m| {
                m["channel"] == card.channel.as_str()
                    && m["ts"] == card.ts.as_str()
                    && m["blocks"].to_string().contains(super::timeline::TAKEN)
            });
            if shown {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("card {} never showed who took it", card.ts);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
