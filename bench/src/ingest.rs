//! Measurement 1, ingest: how many single-event `POST /v1/events` sfrelay accepts per second
//! at 64 concurrent connections (closed loop, fixed duration), against the bare
//! [`baseline`](crate::baseline) under the same load; then sfrelay's latency at half its
//! measured maximum, in open loop, where queueing shows up honestly.
//!
//! sfrelay runs as deployed: its workers drain the queue meanwhile. The events carry no bench
//! channel, so no route fires and a worker only takes the event, decides nothing applies and
//! acknowledges it; Slack is not involved.
//!
//! Each run starts a fresh Redis (and emulator and sfrelay), warms up for `--warmup-secs`
//! and then measures, reading every process's CPU and memory from `/proc` around the
//! measured phase.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::Settings;
use crate::envelope::Envelopes;
use crate::loadgen::{self, Closed, MakeBody, Open};
use crate::procs::{Baseline, Paths, Redis, Stack};
use crate::report::{Row, ge, le, per_sec, percentiles};
use crate::resources::{MachineCpu, Usage};
use crate::stats::{Latency, median};

/// sfrelay should accept at least this share of the baseline's rate.
const RATIO_TARGET: f64 = 0.8;
/// p99 at half the maximum rate.
const OPEN_P99_TARGET_MS: f64 = 5.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    Sfrelay,
    Baseline,
}

/// One closed-loop run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub server: Server,
    /// Accepted requests (= events) per second.
    pub rate: f64,
    pub latency: Latency,
    pub accepted: u64,
    pub failed: u64,
    pub statuses: BTreeMap<String, u64>,
    /// CPU in cores over the measured phase: the server, its Redis (primary and replica
    /// together when there is one), the load generator.
    pub server_cores: f64,
    pub redis_cores: f64,
    pub loadgen_cores: f64,
    /// The whole machine's busy cores (of `nproc`), and of those stolen by the hypervisor.
    pub machine_cores: f64,
    pub softirq_cores: f64,
    pub steal_cores: f64,
    /// Server CPU milliseconds per 1,000 accepted events.
    pub cpu_ms_per_1k: f64,
    pub redis_cpu_ms_per_1k: f64,
    /// Server VmRSS at the end and VmHWM (peak since start).
    pub rss_end_kib: u64,
    pub hwm_kib: u64,
}

/// Bodies numbered from `from` (so a warm-up and its measured phase never share an id).
fn bodies(envelopes: &Arc<Envelopes>, from: u64) -> MakeBody {
    let envelopes = Arc::clone(envelopes);
    Arc::new(move |seq| envelopes.single(from + seq, None))
}

/// What a closed-loop run loads and whose CPU it reads.
pub struct Target {
    pub server: Server,
    pub addr: SocketAddr,
    pub server_pid: u32,
    /// Every Redis process behind the server (a primary and its replica count together).
    pub redis_pids: Vec<u32>,
}

/// One closed-loop run against sfrelay or the baseline.
pub async fn closed(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    server: Server,
) -> anyhow::Result<Run> {
    // Declared here, set in one branch: whatever was started lives to the end of the run.
    let (stack, redis, baseline);
    let target = match server {
        Server::Sfrelay => {
            stack = Stack::start(paths, settings.channels, 1, false).await?;
            let relay = &stack.relays[0];
            Target {
                server,
                addr: relay.addr,
                server_pid: relay.proc.pid(),
                redis_pids: vec![stack.redis.proc.pid()],
            }
        }
        Server::Baseline => {
            redis = Redis::start()?;
            baseline = Baseline::start(paths, &redis.url).await?;
            Target {
                server,
                addr: baseline.addr,
                server_pid: baseline.proc.pid(),
                redis_pids: vec![redis.proc.pid()],
            }
        }
    };
    closed_load(settings, envelopes, &target).await
}

/// The closed-loop load of measurement 1 against a server already running: `--warmup-secs`
/// unmeasured, then `--duration-secs` measured, each process's CPU and memory read around it.
pub async fn closed_load(
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    target: &Target,
) -> anyhow::Result<Run> {
    let plan = |duration: Duration| Closed {
        targets: vec![target.addr],
        connections: settings.connections,
        duration,
        max_requests: u64::MAX,
        keep_seqs: false,
    };
    let redis_usage = || -> anyhow::Result<Vec<Usage>> {
        target
            .redis_pids
            .iter()
            .map(|&pid| Usage::of(pid))
            .collect()
    };
    loadgen::closed(plan(settings.warmup()), bodies(envelopes, 1 << 40)).await?;

    let (server_before, redis_before) = (Usage::of(target.server_pid)?, redis_usage()?);
    let machine_before = MachineCpu::read()?;
    let out = loadgen::closed(plan(settings.duration()), bodies(envelopes, 0)).await?;
    let (server_after, redis_after) = (Usage::of(target.server_pid)?, redis_usage()?);
    let machine_after = MachineCpu::read()?;
    let wall = out.window.as_secs_f64();
    let server_cpu = server_after.cpu_since(&server_before);
    let redis_cpu: f64 = redis_after
        .iter()
        .zip(&redis_before)
        .map(|(after, before)| after.cpu_since(before))
        .sum();
    let per_1k = |cpu: f64| cpu * 1000.0 / out.accepted.max(1) as f64 * 1000.0;
    Ok(Run {
        server: target.server,
        rate: out.rate(),
        latency: Latency::of(&out.latency),
        accepted: out.accepted,
        failed: out.failed,
        statuses: out.statuses,
        server_cores: server_cpu / wall,
        redis_cores: redis_cpu / wall,
        loadgen_cores: out.loadgen_cores,
        machine_cores: (machine_after.busy_secs - machine_before.busy_secs) / wall,
        softirq_cores: (machine_after.softirq_secs - machine_before.softirq_secs) / wall,
        steal_cores: (machine_after.steal_secs - machine_before.steal_secs) / wall,
        cpu_ms_per_1k: per_1k(server_cpu),
        redis_cpu_ms_per_1k: per_1k(redis_cpu),
        rss_end_kib: server_after.rss_kib,
        hwm_kib: server_after.hwm_kib,
    })
}

/// One open-loop run against sfrelay.
#[derive(Debug, Clone, Serialize)]
pub struct OpenRun {
    /// Requests per second scheduled.
    pub scheduled_rate: f64,
    /// Accepted per second.
    pub rate: f64,
    /// Scheduled time → answer.
    pub latency: Latency,
    /// Scheduled time → sent: waiting for a free connection (all busy) or for the load
    /// generator itself; included in `latency`.
    pub lateness: Latency,
    pub failed: u64,
    pub loadgen_cores: f64,
}

pub async fn open(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    rate: f64,
) -> anyhow::Result<OpenRun> {
    let stack = Stack::start(paths, settings.channels, 1, false).await?;
    let plan = |duration: Duration| Open {
        target: stack.relays[0].addr,
        connections: settings.connections,
        rate,
        duration,
    };
    loadgen::open(plan(settings.warmup()), bodies(envelopes, 1 << 40)).await?;
    let out = loadgen::open(plan(settings.duration()), bodies(envelopes, 0)).await?;
    Ok(OpenRun {
        scheduled_rate: rate,
        rate: out.rate(),
        latency: Latency::of(&out.latency),
        lateness: Latency::of(&out.lateness),
        failed: out.failed,
        loadgen_cores: out.loadgen_cores,
    })
}

/// Medians of one server's closed-loop runs.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub rate: f64,
    pub latency: Latency,
    pub failed: f64,
    pub server_cores: f64,
    pub redis_cores: f64,
    pub loadgen_cores: f64,
    pub machine_cores: f64,
    pub softirq_cores: f64,
    pub steal_cores: f64,
    pub cpu_ms_per_1k: f64,
    pub redis_cpu_ms_per_1k: f64,
    pub peak_rss_mib: f64,
}

impl Side {
    pub fn of(runs: &[Run]) -> Side {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f));
        Side {
            rate: m(|r| r.rate),
            latency: Latency::median(&runs.iter().map(|r| r.latency).collect::<Vec<_>>()),
            failed: m(|r| r.failed as f64),
            server_cores: m(|r| r.server_cores),
            redis_cores: m(|r| r.redis_cores),
            loadgen_cores: m(|r| r.loadgen_cores),
            machine_cores: m(|r| r.machine_cores),
            softirq_cores: m(|r| r.softirq_cores),
            steal_cores: m(|r| r.steal_cores),
            cpu_ms_per_1k: m(|r| r.cpu_ms_per_1k),
            redis_cpu_ms_per_1k: m(|r| r.redis_cpu_ms_per_1k),
            peak_rss_mib: m(|r| r.hwm_kib as f64 / 1024.0),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub sfrelay: Side,
    pub baseline: Side,
    /// sfrelay rate / baseline rate (of the medians).
    pub ratio: f64,
    pub open: Option<OpenSummary>,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenSummary {
    pub scheduled_rate: f64,
    pub rate: f64,
    pub latency: Latency,
    pub lateness: Latency,
    pub failed: f64,
    pub loadgen_cores: f64,
    pub runs: Vec<OpenRun>,
}

pub fn summarize(runs: Vec<Run>, open: Vec<OpenRun>) -> Summary {
    let of = |s: Server| {
        Side::of(
            &runs
                .iter()
                .filter(|r| r.server == s)
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    let (sfrelay, baseline) = (of(Server::Sfrelay), of(Server::Baseline));
    let open = (!open.is_empty()).then(|| OpenSummary {
        scheduled_rate: median(open.iter().map(|r| r.scheduled_rate)),
        rate: median(open.iter().map(|r| r.rate)),
        latency: Latency::median(&open.iter().map(|r| r.latency).collect::<Vec<_>>()),
        lateness: Latency::median(&open.iter().map(|r| r.lateness).collect::<Vec<_>>()),
        failed: median(open.iter().map(|r| r.failed as f64)),
        loadgen_cores: median(open.iter().map(|r| r.loadgen_cores)),
        runs: open,
    });
    Summary {
        ratio: sfrelay.rate / baseline.rate,
        sfrelay,
        baseline,
        open,
        runs,
    }
}

/// Where the machine's busy time went; "other" is everything not charged to the server,
/// Redis, the load generator or interrupts: other processes on a shared machine. Interrupt
/// time may be charged to the interrupted process too, so "other" is a lower bound.
pub fn cores(s: &Side) -> String {
    let known = s.server_cores + s.redis_cores + s.loadgen_cores + s.softirq_cores;
    let steal = if s.steal_cores >= 0.01 {
        format!(", steal {:.2}", s.steal_cores)
    } else {
        String::new()
    };
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} of {:.2}{steal}",
        s.server_cores,
        s.redis_cores,
        s.loadgen_cores,
        s.softirq_cores,
        (s.machine_cores - known).max(0.0),
        s.machine_cores
    )
}

pub fn side_value(s: &Side) -> String {
    let failed = if s.failed > 0.0 {
        format!("; {} failed", s.failed)
    } else {
        String::new()
    };
    format!("{}; {}{failed}", per_sec(s.rate), percentiles(&s.latency))
}

pub fn rows(s: &Summary, connections: usize) -> Vec<Row> {
    let mut rows = vec![
        Row::new(
            format!("1. ingest sfrelay, {connections} conns closed loop"),
            side_value(&s.sfrelay),
        ),
        Row::new("1. ingest baseline (axum + LPUSH)", side_value(&s.baseline)),
        Row::new(
            "1. ingest ratio sfrelay/baseline",
            format!("{:.2}", s.ratio),
        )
        .target(format!("≥ {RATIO_TARGET}"), ge(s.ratio, RATIO_TARGET)),
        Row::new(
            "1. cores: server / redis / loadgen / irq / other",
            format!(
                "sfrelay {} · baseline {}",
                cores(&s.sfrelay),
                cores(&s.baseline)
            ),
        ),
    ];
    if let Some(open) = &s.open {
        let failed = if open.failed > 0.0 {
            format!("; {} failed", open.failed)
        } else {
            String::new()
        };
        rows.push(
            Row::new(
                format!(
                    "1. ingest open loop at {} (½ max)",
                    per_sec(open.scheduled_rate)
                ),
                format!(
                    "{}; wait to send p99 {:.2} ms{failed}",
                    percentiles(&open.latency),
                    open.lateness.p99_ms
                ),
            )
            .target(
                format!("p99 ≤ {OPEN_P99_TARGET_MS} ms"),
                le(open.latency.p99_ms, OPEN_P99_TARGET_MS),
            ),
        );
    }
    rows
}

/// The resource figures that come from the ingest runs.
pub fn resource_rows(s: &Summary) -> Vec<Row> {
    vec![
        Row::new(
            "RSS at peak ingest (VmHWM)",
            format!("{:.1} MiB", s.sfrelay.peak_rss_mib),
        ),
        Row::new(
            "CPU per 1,000 events ingested",
            format!(
                "{:.0} ms sfrelay + {:.0} ms redis (baseline {:.0} + {:.0})",
                s.sfrelay.cpu_ms_per_1k,
                s.sfrelay.redis_cpu_ms_per_1k,
                s.baseline.cpu_ms_per_1k,
                s.baseline.redis_cpu_ms_per_1k
            ),
        ),
    ]
}
