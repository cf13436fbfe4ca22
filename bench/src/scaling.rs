//! Measurement 6, scaling: ingest-plus-delivery throughput with one and with two sfrelay
//! processes sharing one Redis queue. Slack's ceiling is lifted here (emulator at 1,000/s per
//! channel, sfrelay's limiter at its 100/s maximum with a burst of 1,000), so what is measured
//! is sfrelay's own pipeline: `--scaling-events` events, spread over the bench channels and
//! over the processes' listeners, from the first send to the last message received, after
//! one warm-up event per process.
//!
//! On a 2-core machine two processes share the same two cores with Redis, the emulator and
//! the load generator, so this shows contention more than capacity; on more cores it shows
//! how far replicas scale on one Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Settings;
use crate::envelope::{Envelopes, seq_in};
use crate::loadgen::{self, Closed};
use crate::procs::{Paths, Stack, WARM_UP_SEQ, channel_id};
use crate::report::{Row, per_sec};
use crate::stats::median;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The emulator's counters at the end (`/_emulator/stats`): calls per method, errors.
    pub slack_stats: serde_json::Value,
    pub processes: usize,
    /// Events accepted per second while ingesting.
    pub ingest_per_sec: f64,
    /// Events per second from the first send to the last message received.
    pub delivered_per_sec: f64,
    pub accepted: u64,
    /// Accepted but not posted within the wait.
    pub missing: u64,
}

pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    processes: usize,
) -> anyhow::Result<Run> {
    let stack = Stack::start(paths, settings.channels, processes, true).await?;
    let warm = stack.warm_up(envelopes).await?;
    let channels = settings.channels;
    let make_body = {
        let envelopes = Arc::clone(envelopes);
        Arc::new(move |seq: u64| envelopes.single(seq, Some(&channel_id(seq as usize % channels))))
    };
    let out = loadgen::closed(
        Closed {
            targets: stack.relay_addrs(),
            connections: settings.connections,
            duration: Duration::from_secs(120),
            max_requests: settings.scaling_events as u64,
            keep_seqs: false,
        },
        make_body,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let posted = (stack
        .slack
        .wait_posts(warm + out.accepted, deadline)
        .await?)
        .saturating_sub(warm);
    let last_ms = stack
        .slack
        .messages()
        .await?
        .iter()
        .filter(|m| seq_in(m["text"].as_str().unwrap_or_default()).is_some_and(|s| s < WARM_UP_SEQ))
        .filter_map(|m| m["received_at_ms"].as_f64())
        .fold(f64::NAN, f64::max);
    let missing = out.accepted.saturating_sub(posted);
    Ok(Run {
        slack_stats: stack.slack.stats().await?,
        processes,
        ingest_per_sec: out.rate(),
        delivered_per_sec: if missing == 0 {
            out.accepted as f64 * 1000.0 / (last_ms - out.started_unix_ms)
        } else {
            f64::NAN
        },
        accepted: out.accepted,
        missing,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub ingest_per_sec: f64,
    pub delivered_per_sec: f64,
    pub missing: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: usize,
    pub one: Side,
    pub two: Side,
    /// Two processes' delivered rate over one's.
    pub speedup: f64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let side = |n: usize| {
        let of = || runs.iter().filter(move |r| r.processes == n);
        Side {
            ingest_per_sec: median(of().map(|r| r.ingest_per_sec)),
            delivered_per_sec: median(of().map(|r| r.delivered_per_sec)),
            missing: median(of().map(|r| r.missing as f64)),
        }
    };
    let (one, two) = (side(1), side(2));
    Summary {
        events: settings.scaling_events,
        speedup: two.delivered_per_sec / one.delivered_per_sec,
        one,
        two,
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    let value = |side: &Side| {
        let missing = if side.missing > 0.0 {
            format!("; {} missing", side.missing)
        } else {
            String::new()
        };
        format!(
            "{} end to end (ingest {}){missing}",
            per_sec(side.delivered_per_sec),
            per_sec(side.ingest_per_sec)
        )
    };
    vec![
        Row::new(format!("6. {} events, 1 sfrelay", s.events), value(&s.one)),
        Row::new(
            format!("6. {} events, 2 sfrelay, 1 redis", s.events),
            value(&s.two),
        ),
        Row::new("6. speed-up 2 vs 1 process", format!("{:.2}×", s.speedup)),
    ]
}
