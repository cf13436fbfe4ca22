//! Measurement 2, batches: events per second when Flow sends 200 envelopes per request
//! (`{"events": [...]}`, Salesforce's bulk-trigger size), closed loop on a few connections.
//! Like ingest, the events fire no route, and each run starts from a fresh Redis.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::Settings;
use crate::envelope::Envelopes;
use crate::loadgen::{self, Closed, MakeBody};
use crate::procs::{Paths, Stack};
use crate::report::{Row, per_sec, percentiles};
use crate::stats::{Latency, median};

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub events_per_sec: f64,
    pub requests_per_sec: f64,
    /// Per 200-event request.
    pub latency: Latency,
    pub failed: u64,
    pub loadgen_cores: f64,
}

pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
) -> anyhow::Result<Run> {
    let stack = Stack::start(paths, settings.channels, 1, false).await?;
    let size = settings.batch_size as u64;
    let bodies = |from: u64| -> MakeBody {
        let envelopes = Arc::clone(envelopes);
        Arc::new(move |seq| envelopes.batch(from + seq * size, size))
    };
    let plan = |duration: Duration| Closed {
        targets: stack.relay_addrs(),
        connections: settings.batch_connections,
        duration,
        max_requests: u64::MAX,
        keep_seqs: false,
    };
    loadgen::closed(plan(settings.warmup()), bodies(1 << 40)).await?;
    let out = loadgen::closed(plan(settings.duration()), bodies(0)).await?;
    Ok(Run {
        events_per_sec: out.rate() * size as f64,
        requests_per_sec: out.rate(),
        latency: Latency::of(&out.latency),
        failed: out.failed,
        loadgen_cores: out.loadgen_cores,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub batch_size: usize,
    pub connections: usize,
    pub events_per_sec: f64,
    pub latency: Latency,
    pub failed: f64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    Summary {
        batch_size: settings.batch_size,
        connections: settings.batch_connections,
        events_per_sec: median(runs.iter().map(|r| r.events_per_sec)),
        latency: Latency::median(&runs.iter().map(|r| r.latency).collect::<Vec<_>>()),
        failed: median(runs.iter().map(|r| r.failed as f64)),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    let failed = if s.failed > 0.0 {
        format!("; {} failed", s.failed)
    } else {
        String::new()
    };
    vec![Row::new(
        format!("2. batches of {}, {} conns", s.batch_size, s.connections),
        format!(
            "{} events; per request {}{failed}",
            per_sec(s.events_per_sec),
            percentiles(&s.latency)
        ),
    )]
}
