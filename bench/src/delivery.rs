//! Measurement 4, delivery under Slack's ceiling: `--messages` events (2,000) spread evenly
//! over `--channels` channels (100) are ingested as fast as possible; the emulator enforces
//! Slack's 1 message per second per channel after a burst of 3. How close does sfrelay come to
//! the fastest possible schedule, does it provoke 429s, and does every event land exactly once?
//!
//! The theoretical minimum: each channel takes its burst at once, then one per second, so
//! with k messages per channel the last lands (k − burst) / rate seconds after the first
//! send. sfrelay's own limiter (burst 3 by default, like Slack's here) allows
//! (k − burst) / rate; both are reported, the target is against Slack's.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Settings;
use crate::envelope::{Envelopes, seq_in};
use crate::http;
use crate::loadgen::{self, Closed};
use crate::procs::{
    Paths, SFRELAY_BURST, SFRELAY_RATE, SLACK_BURST, SLACK_RATE, Stack, WARM_UP_SEQ, channel_id,
};
use crate::report::{Row, le};
use crate::resources::Usage;
use crate::stats::median;

const RATIO_TARGET: f64 = 1.05;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The emulator's counters at the end (`/_emulator/stats`): calls per method, errors.
    pub slack_stats: serde_json::Value,
    /// First send → last message received, seconds (NaN when not all arrived).
    pub wall_secs: f64,
    /// How long ingesting all of them took.
    pub ingest_secs: f64,
    pub accepted: u64,
    /// Answered 202 but never posted.
    pub lost: u64,
    /// Extra copies of an event's message.
    pub doubled: u64,
    /// Emulator answers 429 (Slack would have refused).
    pub rate_limited: u64,
    /// sfrelay CPU per 1,000 events, ingest through posting.
    pub cpu_ms_per_1k: f64,
    /// sfrelay's own counters at the end (`/metrics`, histogram buckets left out): how
    /// often jobs were put off for the rate limit, retried, and so on.
    pub sfrelay_metrics: BTreeMap<String, f64>,
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
    let stack = Stack::start(paths, settings.channels, 1, false).await?;
    let pid = stack.relays[0].proc.pid();
    // Warm caches, then let channel 0's rate budget refill (it regains a message per second).
    let warm = stack.warm_up(envelopes).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let channels = settings.channels;
    let make_body = {
        let envelopes = Arc::clone(envelopes);
        Arc::new(move |seq: u64| envelopes.single(seq, Some(&channel_id(seq as usize % channels))))
    };
    let before = Usage::of(pid)?;
    let out = loadgen::closed(
        Closed {
            targets: stack.relay_addrs(),
            connections: settings.connections,
            duration: Duration::from_secs(120),
            max_requests: settings.messages as u64,
            keep_seqs: true,
        },
        make_body,
    )
    .await?;

    // Wait for every accepted event (bounded: three times the minimum plus a minute), then a
    // little longer so a late duplicate would be counted too.
    let minimum = minimum_secs(settings.messages, channels, SLACK_RATE, SLACK_BURST);
    let deadline = Instant::now() + Duration::from_secs_f64(3.0 * minimum + 60.0);
    stack
        .slack
        .wait_posts(warm + out.accepted, deadline)
        .await?;
    let after = Usage::of(pid)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut copies: HashMap<u64, u64> = HashMap::new();
    let mut last_ms = f64::NAN;
    for message in stack.slack.messages().await? {
        if let Some(seq) = seq_in(message["text"].as_str().unwrap_or_default()) {
            if seq >= WARM_UP_SEQ {
                continue;
            }
            *copies.entry(seq).or_default() += 1;
            last_ms = last_ms.max(message["received_at_ms"].as_f64().unwrap_or(f64::NAN));
        }
    }
    let lost = out
        .accepted_seqs
        .iter()
        .filter(|s| !copies.contains_key(s))
        .count() as u64;
    let doubled = copies.values().map(|n| n - 1).sum();
    let stats = stack.slack.stats().await?;
    let sfrelay_metrics = metrics(stack.relays[0].addr).await.unwrap_or_default();
    Ok(Run {
        wall_secs: if lost == 0 {
            (last_ms - out.started_unix_ms) / 1000.0
        } else {
            f64::NAN
        },
        ingest_secs: out.window.as_secs_f64(),
        accepted: out.accepted,
        lost,
        doubled,
        rate_limited: stats["rate_limited"].as_u64().unwrap_or(0),
        slack_stats: stats,
        cpu_ms_per_1k: after.cpu_since(&before) * 1000.0 / out.accepted.max(1) as f64 * 1000.0,
        sfrelay_metrics,
    })
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
    pub doubled: u64,
    pub rate_limited: f64,
    pub cpu_ms_per_1k: f64,
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
        doubled: runs.iter().map(|r| r.doubled).sum(),
        rate_limited: median(runs.iter().map(|r| r.rate_limited as f64)),
        cpu_ms_per_1k: median(runs.iter().map(|r| r.cpu_ms_per_1k)),
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
            format!("{} / {}", s.lost, s.doubled),
        )
        .target("0 / 0", Some(s.lost == 0 && s.doubled == 0)),
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
