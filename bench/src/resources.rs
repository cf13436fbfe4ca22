//! Measurement 5, resources: how long sfrelay takes from process start to `/readyz` 200, and
//! its resident memory when idle. (Peak memory and CPU per 1,000 events are read around the
//! ingest and delivery runs, with [`Usage`].)
//!
//! Everything comes from `/proc`, so what is measured is what the kernel charged the process,
//! not what it says about itself.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::Settings;
use crate::procs::{Paths, Stack};
use crate::report::{Row, le, ms};
use crate::stats::median;

/// How many times each run starts sfrelay to time its start-up.
const STARTS_PER_RUN: usize = 5;
/// Start-up target: spawn to `/readyz` 200.
const STARTUP_TARGET_MS: f64 = 200.0;

/// CPU time and memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// utime + stime.
    pub cpu_secs: f64,
    /// VmRSS.
    pub rss_kib: u64,
    /// VmHWM: the peak resident set since the process started.
    pub hwm_kib: u64,
}

impl Usage {
    pub fn of(pid: u32) -> anyhow::Result<Usage> {
        Usage::read(&format!("/proc/{pid}"))
    }

    pub fn of_self() -> anyhow::Result<Usage> {
        Usage::read("/proc/self")
    }

    fn read(dir: &str) -> anyhow::Result<Usage> {
        let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
        // The command name may hold spaces; fields are counted after its closing parenthesis,
        // where field 3 (state) comes first: utime is field 14, stime field 15.
        let after = &stat[stat.rfind(')').context("malformed stat")? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| -> anyhow::Result<f64> {
            Ok(fields.get(i).context("short stat")?.parse::<u64>()? as f64)
        };
        let cpu_secs = (ticks(11)? + ticks(12)?) / clock_ticks_per_sec();
        let status = std::fs::read_to_string(format!("{dir}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Usage {
            cpu_secs,
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
        })
    }

    /// CPU seconds used between two readings.
    pub fn cpu_since(&self, before: &Usage) -> f64 {
        self.cpu_secs - before.cpu_secs
    }
}

/// CPU time the whole machine spent busy (all processes, the kernel, interrupts) and the time
/// the hypervisor stole, in seconds summed over cores, from the first line of `/proc/stat`.
/// Tells whether the cores were saturated, whoever used them.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy_secs: f64,
    /// Of `busy_secs`: interrupt handling (on loopback, mostly the TCP receive path), which
    /// the kernel charges to no process.
    pub softirq_secs: f64,
    pub steal_secs: f64,
}

impl MachineCpu {
    pub fn read() -> anyhow::Result<MachineCpu> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let fields: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .context("malformed /proc/stat")?
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        // user nice system idle iowait irq softirq steal …
        let get = |i: usize| fields.get(i).copied().unwrap_or(0.0) / clock_ticks_per_sec();
        Ok(MachineCpu {
            busy_secs: get(0) + get(1) + get(2) + get(5) + get(6) + get(7),
            softirq_secs: get(5) + get(6),
            steal_secs: get(7),
        })
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// One resources run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Spawn to first `/readyz` 200, for each start.
    pub startup_ms: Vec<f64>,
    /// VmRSS after sitting idle (ready, no traffic).
    pub idle_rss_kib: u64,
}

/// Starts sfrelay [`STARTS_PER_RUN`] times on one Redis and emulator, timing each start-up,
/// then lets the last one idle and reads its memory.
pub async fn measure(paths: &Paths, settings: &Settings) -> anyhow::Result<Run> {
    let stack = Stack::start(paths, settings.channels, 0, false).await?;
    let mut startup_ms = Vec::new();
    let mut last = None;
    for _ in 0..STARTS_PER_RUN {
        drop(last.take()); // the previous process is killed before the next starts
        let relay = stack.start_relay(paths, false).await?;
        startup_ms.push(relay.startup.as_secs_f64() * 1000.0);
        last = Some(relay);
    }
    let relay = last.context("no sfrelay started")?;
    tokio::time::sleep(Duration::from_secs_f64(settings.idle_secs())).await;
    let idle = Usage::of(relay.proc.pid())?;
    Ok(Run {
        startup_ms,
        idle_rss_kib: idle.rss_kib,
    })
}

/// Medians over runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub startup_ms: f64,
    pub startup_max_ms: f64,
    pub idle_rss_mib: f64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>) -> Summary {
    let all = || runs.iter().flat_map(|r| r.startup_ms.iter().copied());
    Summary {
        startup_ms: median(all()),
        startup_max_ms: all().fold(f64::NAN, f64::max),
        idle_rss_mib: median(runs.iter().map(|r| r.idle_rss_kib as f64 / 1024.0)),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    vec![
        Row::new(
            "start-up: spawn → /readyz 200",
            format!("{} (max {})", ms(s.startup_ms), ms(s.startup_max_ms)),
        )
        .target(
            format!("≤ {STARTUP_TARGET_MS} ms"),
            le(s.startup_ms, STARTUP_TARGET_MS),
        ),
        Row::new("RSS idle", format!("{:.1} MiB", s.idle_rss_mib)),
    ]
}
