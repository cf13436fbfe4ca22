//! Measurement 11, a storm on a few channels: `--storm-posts` events (140) over
//! `--storm-channels` channels (7), ingested at once, so every channel runs at Slack's pace
//! (1 message per second after a burst of 3, the emulator's default) for the whole run. Each
//! run is made twice, alternating: once without faults, and once with `--storm-fail-rate`
//! (30 %) of every Slack call answered HTTP 500 with no effect (the emulator's `fail_rate`,
//! set after the warm-up, so the template's three user lookups are cached without faults).
//!
//! What is measured is what recovery costs: wall time first send → last message received
//! against the minimum of (k − burst) / rate, lost and doubled messages, and Slack calls per
//! delivered message (every call after the warm-up, from the emulator's counters). A failed
//! call spends the channel's budget like a good one (Slack counts it), so faults cost time as
//! well as calls. The load is measurement 4's ([`delivery::deliver`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::Settings;
use crate::delivery::{self, Plan, minimum_secs};
use crate::envelope::Envelopes;
use crate::procs::{Paths, SLACK_BURST, SLACK_RATE};
use crate::report::Row;
use crate::stats::median;

/// One run of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub fail_rate: f64,
    #[serde(flatten)]
    pub delivery: delivery::Run,
}

pub async fn measure(
    paths: &Paths,
    settings: &Settings,
    envelopes: &Arc<Envelopes>,
    fail_rate: f64,
) -> anyhow::Result<Run> {
    let plan = Plan {
        messages: settings.storm_posts,
        channels: settings.storm_channels,
        connections: settings.connections.min(settings.storm_posts.max(1)),
        fail_rate,
        patience: patience(settings, fail_rate),
    };
    Ok(Run {
        fail_rate,
        delivery: delivery::deliver(paths, envelopes, &plan).await?,
    })
}

/// How long beyond three times the minimum to wait for the last message. Retries back off at
/// random up to 0.5 s × 2^attempts, and with faults a retry needs two good answers (the
/// history search for the failed post, then the post), so a few messages take minutes; the
/// smoke run (in CI) waits 10 s and counts the rest as late.
fn patience(settings: &Settings, fail_rate: f64) -> Duration {
    match (fail_rate > 0.0, settings.smoke) {
        (false, _) => Duration::from_secs(60),
        (true, true) => Duration::from_secs(10),
        (true, false) => Duration::from_secs(600),
    }
}

/// Medians over the runs of one variant.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    pub fail_rate: f64,
    pub wall_secs: f64,
    pub landed_p50_secs: f64,
    pub landed_p90_secs: f64,
    pub slack_calls_per_message: f64,
    pub slack_calls: f64,
    pub failed_injected: f64,
    pub rate_limited: f64,
    pub post_calls: f64,
    /// The searches for a post whose answer was lost.
    pub history_calls: f64,
    /// Over all runs.
    pub lost: u64,
    pub doubled: u64,
    /// Not in Slack by the deadline but still queued for a retry.
    pub late: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub posts: usize,
    pub channels: usize,
    pub minimum_secs: f64,
    pub variants: Vec<Variant>,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let mut rates: Vec<f64> = Vec::new();
    for run in &runs {
        if !rates.contains(&run.fail_rate) {
            rates.push(run.fail_rate);
        }
    }
    let variants = rates
        .into_iter()
        .map(|rate| {
            let of: Vec<&delivery::Run> = runs
                .iter()
                .filter(|r| r.fail_rate == rate)
                .map(|r| &r.delivery)
                .collect();
            let med = |f: &dyn Fn(&delivery::Run) -> f64| median(of.iter().map(|r| f(r)));
            let method = |name: &'static str| {
                move |r: &delivery::Run| {
                    r.slack_calls_by_method.get(name).copied().unwrap_or(0) as f64
                }
            };
            Variant {
                fail_rate: rate,
                wall_secs: med(&|r| r.wall_secs),
                landed_p50_secs: med(&|r| r.landed_p50_secs),
                landed_p90_secs: med(&|r| r.landed_p90_secs),
                slack_calls_per_message: med(&|r| r.slack_calls_per_message),
                slack_calls: med(&|r| r.slack_calls as f64),
                failed_injected: med(&|r| r.slack_failed_injected as f64),
                rate_limited: med(&|r| r.rate_limited as f64),
                post_calls: med(&method("chat.postMessage")),
                history_calls: med(&method("conversations.history")),
                lost: of.iter().map(|r| r.lost).sum(),
                doubled: of.iter().map(|r| r.doubled).sum(),
                late: of.iter().map(|r| r.late).sum(),
            }
        })
        .collect();
    Summary {
        posts: settings.storm_posts,
        channels: settings.storm_channels,
        minimum_secs: minimum_secs(
            settings.storm_posts,
            settings.storm_channels,
            SLACK_RATE,
            SLACK_BURST,
        ),
        variants,
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    let mut rows = Vec::new();
    // Recovery's target: the storm within 1.2 × the time without faults, plus 30 s.
    let limit = s
        .variants
        .iter()
        .find(|v| v.fail_rate == 0.0)
        .map(|v| v.wall_secs * 1.2 + 30.0)
        .filter(|l| !l.is_nan());
    for v in &s.variants {
        let faults = if v.fail_rate > 0.0 {
            format!("{:.0} % of Slack calls answered 500", v.fail_rate * 100.0)
        } else {
            "no faults".to_string()
        };
        let row = Row::new(
            format!(
                "11. storm: {} posts over {} channels, {faults}",
                s.posts, s.channels
            ),
            format!(
                "{} (min {:.1} s; half in by {:.1} s, 90 % by {:.1} s); {:.2} Slack calls \
                 per message ({} posts + {} history searches; {} 500s, {} 429s)",
                if v.wall_secs.is_nan() {
                    "not all in by the deadline".to_string()
                } else {
                    format!("{:.2} s", v.wall_secs)
                },
                s.minimum_secs,
                v.landed_p50_secs,
                v.landed_p90_secs,
                v.slack_calls_per_message,
                v.post_calls,
                v.history_calls,
                v.failed_injected,
                v.rate_limited
            ),
        );
        rows.push(match limit {
            Some(limit) if v.fail_rate > 0.0 => row.target(
                format!("≤ {limit:.1} s"),
                Some(!v.wall_secs.is_nan() && v.wall_secs <= limit),
            ),
            _ => row,
        });
    }
    let lost: u64 = s.variants.iter().map(|v| v.lost).sum();
    let doubled: u64 = s.variants.iter().map(|v| v.doubled).sum();
    let late: u64 = s.variants.iter().map(|v| v.late).sum();
    let retrying = if late > 0 {
        format!(" ({late} late: still queued for a retry at the deadline)")
    } else {
        String::new()
    };
    rows.push(
        Row::new(
            "11. storm lost / doubled (all runs)",
            format!("{lost} / {doubled}{retrying}"),
        )
        .target("0 / 0", Some(lost == 0 && doubled == 0)),
    );
    rows
}
