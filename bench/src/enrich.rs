//! Measurement 10, enrichment: a burst of `--enrich-events` Flow callouts (1,000), each about
//! an Opportunity of its own seeded in the Salesforce emulator, through a route that enriches
//! every event with `SELECT Id, Name, Amount FROM Opportunity WHERE Id = :record.Id` before
//! posting it. How many Salesforce API calls does that spend per 1,000 events (sfrelay combines
//! such reads into `Id IN (…)` queries; target ≤ 20), and how long does the burst take?
//!
//! The callout carries a stale record name; the message shows the name the query returned
//! (`bench-<n>`), so a message proves its event was enriched and is traced back to it. Slack's
//! ceiling is lifted (emulator and sfrelay's limiter, as in measurement 6) and the events go to
//! `--channels` channels, so Slack is not what is measured. One warm-up event first pays for
//! the JWT bearer token; API calls are the emulator's `api_usage` (what Salesforce counts
//! against the org's daily allowance) after the warm-up, token requests beside them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::Settings;
use crate::clicks::timeline::rfc3339_unix_ms;
use crate::delivery::metrics;
use crate::envelope::{name, seq_in};
use crate::http::Conn;
use crate::loadgen::{self, Closed};
use crate::procs::{Emulator, ORG_ID, Paths, Redis, Sfrelay, SfrelaySpec, channel_id};
use crate::report::{Row, per_sec};
use crate::salesforce::Salesforce;
use crate::stats::median;

/// What a message says when the query returned nothing.
const NOT_ENRICHED: &str = "not enriched";
const TEMPLATE: &str = "bench-enriched";

/// The Opportunity of event `k`: an all-digit 15-character Id, whose checksum suffix is `AAA`.
pub fn opportunity_id(k: u64) -> String {
    format!("006{:012}AAA", k + 1)
}

/// The records the Salesforce emulator starts with: Opportunities `0..n`, named `bench-<k>`.
pub fn seed(n: u64) -> Value {
    let opportunities: Vec<Value> = (0..n)
        .map(|k| {
            json!({"Id": opportunity_id(k), "Name": name(k), "Amount": 1000 + k,
                   "StageName": "Closed Won"})
        })
        .collect();
    json!({ "Opportunity": opportunities })
}

/// The Flow callout of event `k`, to channel `k mod channels`, with a name only the query
/// can correct.
pub fn callout(nonce: &str, k: u64, channels: usize) -> Value {
    json!({
        "event_id": format!("bench-enrich-{nonce}-{k}"), "org_id": ORG_ID,
        "object": "Opportunity", "change_type": "UPDATE", "changed_fields": ["StageName"],
        "record": {"Id": opportunity_id(k), "Name": "stale name", "StageName": "Closed Won",
                   "Bench_Channel__c": channel_id(k as usize % channels.max(1))},
        "prior": {"StageName": "Negotiation/Review"},
    })
}

/// A route that enriches every Closed Won carrying `Bench_Channel__c`, then posts it there.
pub fn route(channels: usize) -> String {
    let mut route = String::from(
        "description = \"bench: each Closed Won enriched by its Id, then posted\"\n\
         object = \"Opportunity\"\n\
         when = 'became(\"StageName\", \"Closed Won\") and record.Bench_Channel__c'\n\n\
         [enrich]\n\
         query = \"SELECT Id, Name, Amount FROM Opportunity WHERE Id = :record.Id\"\n\
         name = \"opp\"\n",
    );
    for i in 0..channels {
        let id = channel_id(i);
        route.push_str(&format!(
            "\n[[actions]]\ntype = \"post\"\nchannel = \"{id}\"\ntemplate = \"{TEMPLATE}\"\n\
             when = 'record.Bench_Channel__c == \"{id}\"'\n"
        ));
    }
    route
}

fn template() -> String {
    json!({
        "text": format!("Enriched: {{{{ opp.Name | default('{NOT_ENRICHED}') }}}}"),
        "blocks": [],
    })
    .to_string()
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub events: u64,
    pub accepted: u64,
    /// First send → last message received, seconds (NaN when not all arrived).
    pub wall_secs: f64,
    /// How long ingesting all of them took.
    pub ingest_secs: f64,
    /// Messages showing the name the query returned.
    pub enriched: u64,
    /// Messages posted without the query's answer.
    pub not_enriched: u64,
    pub lost: u64,
    pub doubled: u64,
    /// Salesforce API calls after the warm-up (the emulator's `api_usage`).
    pub api_calls: u64,
    /// Token requests after the warm-up.
    pub token_requests: u64,
    /// `api_calls` per 1,000 enriched events.
    pub api_calls_per_1k: f64,
    /// The median time between two query answers in the emulator's journal during the burst:
    /// its time per query when the queries queue for it (it answers one at a time).
    pub emulator_query_gap_ms: f64,
    pub salesforce_stats: Value,
    pub slack_stats: Value,
    pub sfrelay_metrics: BTreeMap<String, f64>,
}

pub async fn measure(paths: &Paths, settings: &Settings) -> anyhow::Result<Run> {
    let events = settings.enrich_events as u64;
    let channels = settings.channels;
    // Opportunity `events` is the warm-up's.
    let salesforce = Salesforce::start(paths, &seed(events + 1), &[])?;
    let redis = Redis::start()?;
    let slack = Emulator::start(paths, channels, true)?;
    let dirs = Dirs::write(channels)?;
    let section = salesforce.org_section(&paths.repo);
    let api = slack.api_base();
    let relay = Sfrelay::start(&SfrelaySpec {
        paths,
        routes_dir: dirs.routes.path(),
        redis_url: &redis.url,
        slack_api: &api,
        unlimited: true,
        min_replicas_acked: None,
        salesforce_section: Some(&section),
        templates_dir: Some(dirs.templates.path()),
        env: &[],
    })
    .await?;
    let nonce = format!("{:x}", loadgen::unix_ms() as u64);

    let warm = Conn::open(relay.addr)
        .await?
        .post_events(callout(&nonce, events, channels).to_string().into())
        .await?;
    anyhow::ensure!(warm == 202, "the warm-up event was answered {warm}");
    let deadline = Instant::now() + Duration::from_secs(30);
    anyhow::ensure!(
        slack.wait_posts(1, deadline).await? >= 1,
        "the warm-up event was never posted"
    );
    let before = salesforce.stats().await?;

    let make_body = {
        let nonce = nonce.clone();
        Arc::new(move |seq: u64| callout(&nonce, seq, channels).to_string().into())
    };
    let out = loadgen::closed(
        Closed {
            targets: vec![relay.addr],
            connections: settings.connections.min(settings.enrich_events.max(1)),
            duration: Duration::from_secs(120),
            max_requests: events,
            keep_seqs: true,
        },
        make_body,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60 + events / 10);
    slack.wait_posts(1 + out.accepted, deadline).await?;
    // A little longer, so a late second post would be counted too.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut copies: HashMap<u64, u64> = HashMap::new();
    let (mut last_ms, mut not_enriched) = (f64::NAN, 0);
    for message in slack.messages().await? {
        let text = message["text"].as_str().unwrap_or_default();
        match seq_in(text) {
            Some(seq) if seq < events => {
                *copies.entry(seq).or_default() += 1;
                last_ms = last_ms.max(message["received_at_ms"].as_f64().unwrap_or(f64::NAN));
            }
            Some(_) => {} // the warm-up's
            None if text.contains(NOT_ENRICHED) => not_enriched += 1,
            None => {}
        }
    }
    let after = salesforce.stats().await?;
    let journal = salesforce.requests().await?;
    let diff = |key: &str| {
        after[key]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(before[key].as_u64().unwrap_or(0))
    };
    let lost = out
        .accepted_seqs
        .iter()
        .filter(|s| !copies.contains_key(s))
        .count() as u64;
    let enriched = copies.len() as u64;
    let api_calls = diff("api_usage");
    Ok(Run {
        events,
        accepted: out.accepted,
        wall_secs: if lost == 0 {
            (last_ms - out.started_unix_ms) / 1000.0
        } else {
            f64::NAN
        },
        ingest_secs: out.window.as_secs_f64(),
        enriched,
        not_enriched,
        lost,
        doubled: copies.values().map(|n| n - 1).sum(),
        api_calls,
        token_requests: diff("token_requests"),
        api_calls_per_1k: api_calls as f64 * 1000.0 / enriched as f64,
        emulator_query_gap_ms: query_gap_ms(&journal, out.started_unix_ms),
        salesforce_stats: after,
        slack_stats: slack.stats().await?,
        sfrelay_metrics: metrics(relay.addr).await.unwrap_or_default(),
    })
}

/// The median gap between consecutive query answers journalled after `since` (Unix ms).
fn query_gap_ms(journal: &[Value], since: f64) -> f64 {
    let mut at: Vec<f64> = journal
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("/query")))
        .filter_map(|r| r["at"].as_str().and_then(rfc3339_unix_ms))
        .filter(|at| *at >= since)
        .collect();
    at.sort_by(f64::total_cmp);
    median(at.windows(2).map(|w| w[1] - w[0]))
}

/// The route and the one template, in directories of their own.
struct Dirs {
    routes: TempDir,
    templates: TempDir,
}

impl Dirs {
    fn write(channels: usize) -> anyhow::Result<Dirs> {
        let routes = tempfile::tempdir()?;
        std::fs::write(routes.path().join("enrich.toml"), route(channels))?;
        let templates = tempfile::tempdir()?;
        std::fs::write(
            templates.path().join(format!("{TEMPLATE}.json")),
            template(),
        )?;
        Ok(Dirs { routes, templates })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: usize,
    pub wall_secs: f64,
    /// Enriched events per second of wall time.
    pub rate: f64,
    pub api_calls_per_1k: f64,
    pub token_requests: f64,
    pub emulator_query_gap_ms: f64,
    /// Over all runs.
    pub not_enriched: u64,
    pub lost: u64,
    pub doubled: u64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let wall = median(runs.iter().map(|r| r.wall_secs));
    Summary {
        events: settings.enrich_events,
        wall_secs: wall,
        rate: settings.enrich_events as f64 / wall,
        api_calls_per_1k: median(runs.iter().map(|r| r.api_calls_per_1k)),
        token_requests: median(runs.iter().map(|r| r.token_requests as f64)),
        emulator_query_gap_ms: median(runs.iter().map(|r| r.emulator_query_gap_ms)),
        not_enriched: runs.iter().map(|r| r.not_enriched).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
        doubled: runs.iter().map(|r| r.doubled).sum(),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    vec![
        Row::new(
            format!("10. enrich {} events (SOQL by record Id)", s.events),
            format!(
                "{:.2} s first send → last post ({} enriched; the emulator answered a query \
                 every {:.1} ms)",
                s.wall_secs,
                per_sec(s.rate),
                s.emulator_query_gap_ms
            ),
        ),
        Row::new(
            "10. Salesforce API calls per 1,000 enriched events",
            format!(
                "{:.0} (+ {} token requests per run)",
                s.api_calls_per_1k, s.token_requests
            ),
        )
        .target("≤ 20", crate::report::le(s.api_calls_per_1k, 20.0)),
        Row::new(
            "10. not enriched / lost / doubled (all runs)",
            format!("{} / {} / {}", s.not_enriched, s.lost, s.doubled),
        )
        .target(
            "0 / 0 / 0",
            Some(s.not_enriched == 0 && s.lost == 0 && s.doubled == 0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_names_its_own_seeded_opportunity_and_channel() {
        let seeded = seed(3);
        assert_eq!(seeded["Opportunity"].as_array().map(Vec::len), Some(3));
        assert_eq!(seeded["Opportunity"][2]["Name"], "bench-2");
        let event = callout("n", 2, 2);
        assert_eq!(event["record"]["Id"], seeded["Opportunity"][2]["Id"]);
        assert_eq!(event["record"]["Bench_Channel__c"], channel_id(0));
        assert_eq!(opportunity_id(0), "006000000000001AAA");
        assert_eq!(opportunity_id(0).len(), 18);
        assert!(route(2).contains(":record.Id"));
        let journal = [
            json!({"path": "/services/data/v62.0/query", "at": "1970-01-01T00:00:01.000Z"}),
            json!({"path": "/services/oauth2/token", "at": "1970-01-01T00:00:01.001Z"}),
            json!({"path": "/services/data/v62.0/query", "at": "1970-01-01T00:00:01.012Z"}),
            json!({"path": "/services/data/v62.0/query", "at": "1970-01-01T00:00:01.020Z"}),
            json!({"path": "/services/data/v62.0/query", "at": "1970-01-01T00:00:01.030Z"}),
        ];
        assert_eq!(query_gap_ms(&journal, 1000.0), 10.0, "gaps 12, 8, 10");
        assert_eq!(query_gap_ms(&journal, 1015.0), 10.0, "gap 10 only");
        assert!(query_gap_ms(&journal[..1], 0.0).is_nan());
        let template: Value = serde_json::from_str(&template()).unwrap();
        assert_eq!(
            template["text"],
            "Enriched: {{ opp.Name | default('not enriched') }}"
        );
    }
}
