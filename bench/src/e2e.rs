//! Measurement 3, end to end: how long after sfrelay answers 202 the message reaches Slack,
//! when nothing is waiting — the latency a sales team sees on a quiet afternoon.
//!
//! Events go out at a low fixed rate (`--e2e-rate`, 20/s), each to the next bench channel in
//! turn, so with 100 channels a channel is used every 5 s and its rate limit never delays a
//! post. Per event: latency = the emulator's `received_at_ms` − the wall-clock time the 202
//! came back. (`received_at_ms` is whole milliseconds, so each figure is good to ±1 ms; a post
//! may even land before the 202 is read, which counts as 0.)
//!
//! A first event is posted and awaited before measuring ([`Stack::warm_up`](crate::procs::Stack::warm_up)).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Settings;
use crate::envelope::{Envelopes, seq_in};
use crate::http::Conn;
use crate::loadgen::unix_ms;
use crate::procs::{Paths, Stack, channel_id};
use crate::report::{Row, le, percentiles};
use crate::stats::{Latency, histogram, median, record};

const P50_TARGET_MS: f64 = 15.0;
const P99_TARGET_MS: f64 = 50.0;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub latency: Latency,
    /// Events answered 202 whose message never arrived (within the wait).
    pub missing: u64,
    /// Events not answered 202.
    pub failed: u64,
}

pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
) -> anyhow::Result<Run> {
    let stack = Stack::start(paths, settings.channels, 1, false).await?;
    let warm = stack.warm_up(envelopes).await?;
    let mut conn = Conn::open(stack.relays[0].addr).await?;

    let interval = Duration::from_secs_f64(1.0 / settings.e2e_rate);
    let start = Instant::now();
    let mut acked: HashMap<u64, f64> = HashMap::new();
    let mut failed = 0;
    for i in 0..settings.e2e_events as u64 {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let channel = channel_id((i as usize + 1) % settings.channels);
        match conn.post_events(envelopes.single(i, Some(&channel))).await {
            Ok(202) => {
                acked.insert(i, unix_ms());
            }
            _ => failed += 1,
        }
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    stack
        .slack
        .wait_posts(warm + acked.len() as u64, deadline)
        .await?;
    let mut latency = histogram();
    let mut seen = 0;
    for message in stack.slack.messages().await? {
        let text = message["text"].as_str().unwrap_or_default();
        let (Some(seq), Some(received)) = (seq_in(text), message["received_at_ms"].as_f64()) else {
            continue;
        };
        if let Some(ack) = acked.get(&seq) {
            seen += 1;
            record(
                &mut latency,
                Duration::from_secs_f64((received - ack).max(0.0) / 1000.0),
            );
        }
    }
    Ok(Run {
        latency: Latency::of(&latency),
        missing: acked.len() as u64 - seen.min(acked.len() as u64),
        failed,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rate: f64,
    pub events: usize,
    pub latency: Latency,
    pub missing: f64,
    pub failed: f64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    Summary {
        rate: settings.e2e_rate,
        events: settings.e2e_events,
        latency: Latency::median(&runs.iter().map(|r| r.latency).collect::<Vec<_>>()),
        missing: median(runs.iter().map(|r| r.missing as f64)),
        failed: median(runs.iter().map(|r| r.failed as f64)),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    let name = format!("3. end to end 202 → Slack, {}/s idle channels", s.rate);
    let lost = if s.missing + s.failed > 0.0 {
        format!("; {} missing, {} failed", s.missing, s.failed)
    } else {
        String::new()
    };
    vec![
        Row::new(name, format!("{}{lost}", percentiles(&s.latency))).target(
            format!("p50 ≤ {P50_TARGET_MS} ms"),
            le(s.latency.p50_ms, P50_TARGET_MS),
        ),
        Row::new("3. end to end, p99", "").target(
            format!("p99 ≤ {P99_TARGET_MS} ms"),
            le(s.latency.p99_ms, P99_TARGET_MS),
        ),
    ]
}
