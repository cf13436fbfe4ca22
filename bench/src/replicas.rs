//! Measurement 7, replica acknowledgement: measurement 1's closed-loop single-event ingest
//! with `[queue] min_replicas_acked = 1` against `= 0`. With 1, every 202 waits for
//! `WAIT 1 replica_ack_timeout_ms` on the queue's link until the replica has the write: one
//! round trip from the primary to the replica per request, on the same shared link.
//!
//! Both settings run against a primary `redis-server` with one replica (`--replicaof`), so
//! the only difference is the `WAIT`: with 0 the replica still receives every write, it is
//! just not waited for. Each run starts a fresh pair (and emulator and sfrelay), like every
//! other measurement, so no run inherits another's queue or dedupe keys; the two settings
//! alternate so drift on a shared machine hits both alike.

use std::sync::Arc;

use serde::Serialize;

use crate::Settings;
use crate::envelope::Envelopes;
use crate::ingest::{self, Run, Server, Side, Target};
use crate::procs::{Paths, Redis, Stack};
use crate::report::Row;

/// One closed-loop run at one setting.
#[derive(Debug, Clone, Serialize)]
pub struct AckedRun {
    pub min_replicas_acked: u32,
    /// `redis_cores` and `redis_cpu_ms_per_1k` are the primary and the replica together;
    /// `statuses` shows any 503 (replica shortfall), which `rate` does not count.
    #[serde(flatten)]
    pub run: Run,
}

/// One run with sfrelay at `min_replicas_acked = acked`, on a fresh primary and replica.
pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    acked: u32,
) -> anyhow::Result<AckedRun> {
    let (primary, replica) = Redis::start_with_replica()?;
    let redis_pids = vec![primary.proc.pid(), replica.proc.pid()];
    let stack = Stack::start_on(primary, paths, settings.channels, 1, false, Some(acked)).await?;
    let relay = &stack.relays[0];
    let target = Target {
        server: Server::Sfrelay,
        addr: relay.addr,
        server_pid: relay.proc.pid(),
        redis_pids,
    };
    let run = ingest::closed_load(settings, envelopes, &target).await?;
    Ok(AckedRun {
        min_replicas_acked: acked,
        run,
    })
}

/// Medians per setting, and their ratio.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub acked_0: Side,
    pub acked_1: Side,
    /// Accepted/s at 1 over accepted/s at 0 (of the medians).
    pub ratio: f64,
    /// Median 503s per run at 1 (replica shortfalls).
    pub unavailable_1: f64,
    pub runs: Vec<AckedRun>,
}

pub fn summarize(runs: Vec<AckedRun>) -> Summary {
    let of = |acked: u32| {
        runs.iter()
            .filter(|r| r.min_replicas_acked == acked)
            .map(|r| r.run.clone())
            .collect::<Vec<_>>()
    };
    let (zero, one) = (of(0), of(1));
    let (acked_0, acked_1) = (Side::of(&zero), Side::of(&one));
    let unavailable_1 = crate::stats::median(
        one.iter()
            .map(|r| r.statuses.get("503").copied().unwrap_or(0) as f64),
    );
    Summary {
        ratio: acked_1.rate / acked_0.rate,
        acked_0,
        acked_1,
        unavailable_1,
        runs,
    }
}

pub fn rows(s: &Summary, connections: usize) -> Vec<Row> {
    vec![
        Row::new(
            format!("7. ingest min_replicas_acked = 0, {connections} conns"),
            ingest::side_value(&s.acked_0),
        ),
        Row::new(
            format!("7. ingest min_replicas_acked = 1, {connections} conns"),
            ingest::side_value(&s.acked_1),
        ),
        Row::new("7. ingest ratio acked 1 / 0", format!("{:.2}", s.ratio)),
        Row::new(
            "7. cores: server / redis ×2 / loadgen / irq / other",
            format!(
                "0: {} · 1: {}",
                ingest::cores(&s.acked_0),
                ingest::cores(&s.acked_1)
            ),
        ),
    ]
}
