//! Measurement 4, delivery under Slack's ceiling: `--messages` events (2,000) spread evenly
//! over `--channels` channels (100) are ingested as fast as possible; the emulator enforces
//! Slack's 1 message per second per channel after a burst of 3. How close does sfrelay come to
//! the fastest possible schedule, does it provoke 429s, and does every event land exactly once?
//!
//! The theoretical minimum: each channel takes its burst at once, then one per second, so
//! with k messages per channel the last lands (k − burst) / rate seconds after the first
//! send. sfrelay's own limiter (burst 3 by default, like Slack's here) allows
//! (k − burst) / rate; both are reported, the target is against Slack's.
//!
//! Slack calls per delivered message count every API call the emulator received after the
//! warm-up (posts, 429s, retries, lookups) over the events that reached a channel. The route
//! only posts (no deal rooms), so 1.00 is the floor. [`deliver`] is shared with the storm
//! (measurement 11), which runs the same load over fewer channels with injected 500s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::Settings;
use crate::envelope::{Envelopes, seq_in};
use crate::http;
use crate::loadgen::{self, Closed};
use crate::procs::{
    Paths, SFRELAY_BURST, SFRELAY_RATE, SLACK_BURST, SLACK_RATE, Stack, WARM_UP_SEQ, channel_id,
};
use crate::report::{Row, le};
use crate::resources::Usage;
use crate::stats::{median, quantile};

const RATIO_TARGET: f64 = 1.05;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The emulator's counters at the end (`/_emulator/stats`): calls per method, errors.
    pub slack_stats: serde_json::Value,
    /// First send → last message received, seconds (NaN when not all arrived).
    pub wall_secs: f64,
    /// First send → the time by which half (nine in ten) of the events had a message.
    pub landed_p50_secs: f64,
    pub landed_p90_secs: f64,
    /// How long ingesting all of them took.
    pub ingest_secs: f64,
    pub accepted: u64,
    /// Answered 202, not posted by the deadline and no longer in sfrelay's queue.
    pub lost: u64,
    /// Answered 202 and not posted by the deadline, but still queued for a retry.
    pub late: u64,
    /// Extra copies of an event's message.
    pub doubled: u64,
    /// Emulator answers 429 (Slack would have refused).
    pub rate_limited: u64,
    /// sfrelay CPU per 1,000 events, ingest through posting.
    pub cpu_ms_per_1k: f64,
    /// Slack API calls after the warm-up, whatever their answer.
    pub slack_calls: u64,
    /// The same per method.
    pub slack_calls_by_method: BTreeMap<String, u64>,
    /// Of them, the emulator's injected 500s.
    pub slack_failed_injected: u64,
    /// Jobs sfrelay still held at the end (ready, put off or being worked on).
    pub still_queued: u64,
    /// `slack_calls` per event that reached Slack.
    pub slack_calls_per_message: f64,
    /// sfrelay's own counters at the end (`/metrics`, histogram buckets left out): how
    /// often jobs were put off for the rate limit, retried, and so on.
    pub sfrelay_metrics: BTreeMap<String, f64>,
}

/// One delivery load: how many events over how many channels, and the share of Slack calls
/// the emulator answers 500 once the warm-up is done.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub messages: usize,
    pub channels: usize,
    pub connections: usize,
    pub fail_rate: f64,
    /// How long to wait for the last message beyond three times the minimum; what has not
    /// arrived by then counts as late while sfrelay still holds a job for it, else as lost.
    pub patience: Duration,
}

/// The fastest every message can land, given k per channel, a rate and a burst.
pub fn minimum_secs(messages: usize, channels: usize, rate: f64, burst: u32) -> f64 {
    let per_channel = messages.div_ceil(channels.max(1));
    per_channel.saturating_sub(burst as usize) as f64 / rate
}

pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
) -> anyhow::Result<Run> {
    let plan = Plan {
        messages: settings.messages,
        channels: settings.channels,
        connections: settings.connections,
        fail_rate: 0.0,
        patience: Duration::from_secs(60),
    };
    deliver(paths, envelopes, &plan).await
}

/// `plan.messages` events, event `n` to channel `n mod channels`, ingested as fast as
/// possible after one warm-up event; timed until every accepted event is in Slack.
pub async fn deliver(
    paths: &Paths,
    envelopes: &Arc<Envelopes>,
    plan: &Plan,
) -> anyhow::Result<Run> {
    let stack = Stack::start(paths, plan.channels, 1, false).await?;
    let pid = stack.relays[0].proc.pid();
    // Warm caches, then let channel 0's rate budget refill (it regains a message per second)
    // if the load needs its whole burst.
    let warm = stack.warm_up(envelopes).await?;
    if plan.messages.div_ceil(plan.channels.max(1)) >= SLACK_BURST as usize {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if plan.fail_rate > 0.0 {
        let body = serde_json::json!({ "fail_rate": plan.fail_rate }).to_string();
        let (status, answer) = http::Conn::open(stack.slack.addr)
            .await?
            .post_json("/_emulator/faults", body.into())
            .await?;
        anyhow::ensure!(
            status == 200,
            "faults: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let slack_before = stack.slack.stats().await?;
    let channels = plan.channels;
    let make_body = {
        let envelopes = Arc::clone(envelopes);
        Arc::new(move |seq: u64| envelopes.single(seq, Some(&channel_id(seq as usize % channels))))
    };
    let before = Usage::of(pid)?;
    let out = loadgen::closed(
        Closed {
            targets: stack.relay_addrs(),
            connections: plan.connections,
            duration: Duration::from_secs(120),
            max_requests: plan.messages as u64,
            keep_seqs: true,
        },
        make_body,
    )
    .await?;

    // Wait for every accepted event (bounded: three times the minimum plus the plan's
    // patience), then a little longer so a late duplicate would be counted too.
    let minimum = minimum_secs(plan.messages, channels, SLACK_RATE, SLACK_BURST);
    let deadline = Instant::now() + Duration::from_secs_f64(3.0 * minimum) + plan.patience;
    stack
        .slack
        .wait_posts(warm + out.accepted, deadline)
        .await?;
    let after = Usage::of(pid)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut copies: HashMap<u64, u64> = HashMap::new();
    let mut landed: HashMap<u64, f64> = HashMap::new();
    let mut last_ms = f64::NAN;
    for message in stack.slack.messages().await? {
        if let Some(seq) = seq_in(message["text"].as_str().unwrap_or_default()) {
            if seq >= WARM_UP_SEQ {
                continue;
            }
            *copies.entry(seq).or_default() += 1;
            let at = message["received_at_ms"].as_f64().unwrap_or(f64::NAN);
            last_ms = last_ms.max(at);
            let first = landed.entry(seq).or_insert(at);
            *first = first.min(at);
        }
    }
    let landed_secs: Vec<f64> = landed
        .values()
        .map(|at| (at - out.started_unix_ms) / 1000.0)
        .collect();
    let missing = out
        .accepted_seqs
        .iter()
        .filter(|s| !copies.contains_key(s))
        .count() as u64;
    let doubled = copies.values().map(|n| n - 1).sum();
    let stats = stack.slack.stats().await?;
    let (slack_calls, slack_calls_by_method) = calls_since(&slack_before, &stats);
    let sfrelay_metrics = metrics(stack.relays[0].addr).await.unwrap_or_default();
    let still_queued = ["ready", "delayed", "in_flight"]
        .iter()
        .map(|state| series_sum(&sfrelay_metrics, "sfrelay_queue_depth", &[("state", state)]))
        .sum::<f64>() as u64;
    // Each missing message has at most one job (its event's or its route's) left.
    let late = missing.min(still_queued);
    Ok(Run {
        still_queued,
        late,
        slack_calls,
        slack_calls_by_method,
        slack_failed_injected: stats["failed_injected"].as_u64().unwrap_or(0),
        slack_calls_per_message: slack_calls as f64 / copies.len() as f64,
        wall_secs: if missing == 0 {
            (last_ms - out.started_unix_ms) / 1000.0
        } else {
            f64::NAN
        },
        landed_p50_secs: quantile(&landed_secs, 0.5),
        landed_p90_secs: quantile(&landed_secs, 0.9),
        ingest_secs: out.window.as_secs_f64(),
        accepted: out.accepted,
        lost: missing - late,
        doubled,
        rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        slack_stats: stats,
        cpu_ms_per_1k: after.cpu_since(&before) * 1000.0 / out.accepted.max(1) as f64 * 1000.0,
        sfrelay_metrics,
    })
}

/// Slack calls between two readings of the emulator's counters: in all and per method.
fn calls_since(before: &Value, after: &Value) -> (u64, BTreeMap<String, u64>) {
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let by_method = after["by_method"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(method, n)| {
            let n = count(n).saturating_sub(count(&before["by_method"][method]));
            (method.clone(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let calls = count(&after["calls"]).saturating_sub(count(&before["calls"]));
    (calls, by_method)
}

/// sfrelay's `/metrics` series, without histogram buckets.
pub async fn metrics(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let (_, body) = http::get(addr, "/metrics").await?;
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("sfrelay_") && !l.contains("_bucket"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect())
}

/// The sum of every series `name` whose labels include all of `labels` (in whatever order the
/// exporter writes them); 0 when there is none.
pub fn series_sum(metrics: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .iter()
        .filter(|(series, _)| {
            let rest = series.strip_prefix(name);
            let labelled = rest.and_then(|r| r.strip_prefix('{'));
            match (rest, labelled) {
                (Some(_), Some(rest)) => labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))),
                (Some(""), None) => labels.is_empty(),
                _ => false,
            }
        })
        .map(|(_, value)| value)
        .sum()
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub messages: usize,
    pub channels: usize,
    pub wall_secs: f64,
    pub minimum_secs: f64,
    pub minimum_sfrelay_limiter_secs: f64,
    /// wall / minimum (Slack's).
    pub ratio: f64,
    pub lost: u64,
    pub late: u64,
    pub doubled: u64,
    pub rate_limited: f64,
    pub cpu_ms_per_1k: f64,
    pub slack_calls_per_message: f64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let (m, c) = (settings.messages, settings.channels);
    let minimum = minimum_secs(m, c, SLACK_RATE, SLACK_BURST);
    let wall = median(runs.iter().map(|r| r.wall_secs));
    Summary {
        messages: m,
        channels: c,
        wall_secs: wall,
        minimum_secs: minimum,
        minimum_sfrelay_limiter_secs: minimum_secs(m, c, SFRELAY_RATE, SFRELAY_BURST),
        ratio: wall / minimum,
        lost: runs.iter().map(|r| r.lost).sum(),
        late: runs.iter().map(|r| r.late).sum(),
        doubled: runs.iter().map(|r| r.doubled).sum(),
        rate_limited: median(runs.iter().map(|r| r.rate_limited as f64)),
        cpu_ms_per_1k: median(runs.iter().map(|r| r.cpu_ms_per_1k)),
        slack_calls_per_message: median(runs.iter().map(|r| r.slack_calls_per_message)),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    vec![
        Row::new(
            format!(
                "4. deliver {} msgs over {} channels",
                s.messages, s.channels
            ),
            format!(
                "{:.2} s = {:.3}× min {:.1} s (sfrelay limiter floor {:.1} s)",
                s.wall_secs, s.ratio, s.minimum_secs, s.minimum_sfrelay_limiter_secs
            ),
        )
        .target(format!("≤ {RATIO_TARGET}×"), le(s.ratio, RATIO_TARGET)),
        Row::new(
            "4. 429s from Slack (median per run)",
            format!("{}", s.rate_limited),
        ),
        Row::new(
            "4. lost / doubled (all runs)",
            if s.late > 0 {
                format!(
                    "{} / {} ({} late: still queued at the deadline)",
                    s.lost, s.doubled, s.late
                )
            } else {
                format!("{} / {}", s.lost, s.doubled)
            },
        )
        .target("0 / 0", Some(s.lost == 0 && s.doubled == 0)),
        Row::new(
            "4. Slack calls per delivered message",
            format!("{:.2}", s.slack_calls_per_message),
        )
        .target("≤ 1.05", crate::report::le(s.slack_calls_per_message, 1.05)),
    ]
}

/// CPU per 1,000 events delivered, for the resources section.
pub fn resource_rows(s: &Summary) -> Vec<Row> {
    vec![Row::new(
        "CPU per 1,000 events delivered",
        format!(
            "{:.0} ms sfrelay (ingest to post, incl. waiting out rate limits)",
            s.cpu_ms_per_1k
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_summed_by_name_and_labels() {
        let metrics: BTreeMap<String, f64> = [
            ("sfrelay_x_total{org=\"a\",outcome=\"queued\"}", 3.0),
            ("sfrelay_x_total{outcome=\"queued\",org=\"b\"}", 4.0),
            ("sfrelay_x_total{org=\"a\",outcome=\"duplicate\"}", 1.0),
            ("sfrelay_x_totals{outcome=\"queued\"}", 100.0),
            ("sfrelay_y", 2.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            series_sum(&metrics, "sfrelay_x_total", &[("outcome", "queued")]),
            7.0
        );
        assert_eq!(series_sum(&metrics, "sfrelay_x_total", &[]), 8.0);
        assert_eq!(series_sum(&metrics, "sfrelay_y", &[]), 2.0);
        assert_eq!(series_sum(&metrics, "sfrelay_z", &[]), 0.0);
    }

    #[test]
    fn calls_are_counted_from_the_first_reading() {
        let before =
            serde_json::json!({"calls": 4, "by_method": {"auth.test": 1, "chat.postMessage": 3}});
        let after = serde_json::json!({"calls": 9,
            "by_method": {"auth.test": 1, "chat.postMessage": 7, "conversations.history": 1}});
        let (calls, by_method) = calls_since(&before, &after);
        assert_eq!(calls, 5);
        assert_eq!(by_method.len(), 2, "{by_method:?}");
        assert_eq!(by_method["chat.postMessage"], 4);
        assert_eq!(by_method["conversations.history"], 1);
    }

    #[test]
    fn the_minimum_counts_what_each_channel_must_wait_for() {
        assert_eq!(minimum_secs(2000, 100, 1.0, 3), 17.0);
        assert_eq!(minimum_secs(140, 7, 1.0, 3), 17.0);
        assert_eq!(minimum_secs(14, 7, 1.0, 3), 0.0);
    }
}
