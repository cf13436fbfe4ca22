//! Measurement 9, Change Data Capture over the Pub/Sub API into the queue: sfrelay subscribed
//! to `/data/OpportunityChangeEvent` of the Salesforce emulator (JWT bearer flow, the emulator's
//! Pub/Sub API on its own port, its defaults: batches of 25, credit 100).
//!
//! - **Backlog**: `--pubsub-backlog` changes (20,000) are published before sfrelay starts
//!   (`start = "earliest"`); timed from spawning sfrelay until its
//!   `sfrelay_pubsub_events_total{outcome="queued"}` counts every one.
//! - **Live**: then `--pubsub-rate` changes per second (500) for `--duration-secs`, published
//!   every 10 ms. Latency per change = the first scrape of `/metrics` (every 5 ms) that counts
//!   it as queued − the time its publish request was sent: an upper bound, up to one scrape
//!   interval and one scrape late.
//!
//! No route fires (the bench route needs `Bench_Channel__c`, which no change carries), so the
//! workers route and acknowledge each change but Slack is not involved. Lost = published but
//! never counted as queued; doubled = counted as queued more often than published (the queue's
//! dedupe would have to fail); redelivered = events the emulator sent more than once (caught
//! as duplicates). The emulator's stream report says whether credit ever ran out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::Settings;
use crate::delivery::{metrics, series_sum};
use crate::http::Conn;
use crate::procs::{Emulator, ORG_ID, Paths, Redis, Sfrelay, SfrelaySpec, bench_route};
use crate::report::{Row, per_sec, percentiles};
use crate::resources::Usage;
use crate::salesforce::Salesforce;
use crate::stats::{Latency, histogram, median, record};

pub const TOPIC: &str = "/data/OpportunityChangeEvent";
const EVENTS_TOTAL: &str = "sfrelay_pubsub_events_total";
/// Changes per publish request of the backlog.
const BACKLOG_BATCH: usize = 500;
/// How often the live phase publishes.
const TICK: Duration = Duration::from_millis(10);
/// How often `/metrics` is scraped while the live phase runs.
const SCRAPE: Duration = Duration::from_millis(5);

/// Change `i`: an Opportunity's stage and amount, in a transaction of its own (sfrelay's
/// event id is the transaction key, sequence number and record).
pub fn change(i: usize) -> Value {
    json!({
        "entity": "Opportunity", "change_type": "UPDATE",
        "record_ids": [format!("006{:012}AAA", i % 1_000_000 + 1)],
        "fields": {"StageName": format!("Stage {}", i % 7), "Amount": 1000 + i % 5000,
                   "LastModifiedDate": "2025-09-30T16:00:00.000Z"},
        "transaction_key": format!("bench-tx-{i}"),
    })
}

fn changes(from: usize, to: usize) -> Vec<Value> {
    (from..to).map(change).collect()
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    pub backlog: u64,
    /// Publishing the backlog into the emulator (before sfrelay starts).
    pub publish_secs: f64,
    /// Spawn → the first change counted as queued.
    pub first_queued_secs: f64,
    /// Spawn → the whole backlog counted as queued.
    pub backlog_secs: f64,
    /// Backlog / `backlog_secs`.
    pub backlog_rate: f64,
    /// From the first queued change to the last: the subscriber's own pace.
    pub drain_rate: f64,
    pub live_published: u64,
    /// Changes published per second in the live phase (the plan's rate, if the emulator kept up).
    pub live_publish_rate: f64,
    /// Live changes queued per second, first publish → last queued.
    pub live_rate: f64,
    pub live_latency: Latency,
    pub lost: u64,
    pub doubled: u64,
    /// Counted as duplicates by sfrelay (events sent again).
    pub duplicates: u64,
    pub rss_after_backlog_kib: u64,
    pub rss_end_kib: u64,
    pub hwm_kib: u64,
    /// sfrelay CPU per 1,000 changes, spawn to the end.
    pub cpu_ms_per_1k: f64,
    /// Streams the emulator opened (1 unless sfrelay resubscribed).
    pub streams_opened: u64,
    pub events_sent: u64,
    pub longest_starved_ms: u64,
    /// Times an event was ready while the stream's credit was 0.
    pub starved: u64,
    pub credit_requested_total: u64,
    pub keepalives_sent: u64,
    pub streams: Vec<Value>,
    pub salesforce_stats: Value,
    pub sfrelay_metrics: BTreeMap<String, f64>,
}

/// Redis, both emulators and the directory of the route that fires on nothing.
struct World {
    redis: Redis,
    slack: Emulator,
    salesforce: Salesforce,
    routes: TempDir,
}

pub async fn measure(paths: &Paths, settings: &Settings) -> anyhow::Result<Run> {
    let world = World {
        redis: Redis::start()?,
        slack: Emulator::start(paths, 1, false)?,
        salesforce: Salesforce::start(paths, &json!({}), &["--org-id", ORG_ID])?,
        routes: tempfile::tempdir()?,
    };
    std::fs::write(world.routes.path().join("bench.toml"), bench_route(1))?;
    let backlog = settings.pubsub_backlog;
    let mut run = Run {
        backlog: backlog as u64,
        ..Run::default()
    };

    let mut publisher = Conn::open(world.salesforce.addr).await?;
    let started = Instant::now();
    let mut published = 0;
    while published < backlog {
        let to = (published + BACKLOG_BATCH).min(backlog);
        published += Salesforce::publish(&mut publisher, &changes(published, to)).await?;
    }
    run.publish_secs = started.elapsed().as_secs_f64();

    let spawned = Instant::now();
    let relay = start_relay(paths, &world).await?;
    let pid = relay.proc.pid();
    let deadline = Instant::now() + Duration::from_secs(60 + backlog as u64 / 200);
    let mut first = None;
    let queued_at = loop {
        let queued = queued(relay.addr).await?;
        let now = Instant::now();
        if queued > 0 && first.is_none() {
            first = Some(now);
        }
        if queued >= backlog as u64 {
            break now;
        }
        anyhow::ensure!(
            now < deadline,
            "{queued} of {backlog} changes queued within {:?}",
            deadline - spawned
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first = first.unwrap_or(queued_at);
    run.first_queued_secs = (first - spawned).as_secs_f64();
    run.backlog_secs = (queued_at - spawned).as_secs_f64();
    run.backlog_rate = backlog as f64 / run.backlog_secs;
    run.drain_rate = (backlog.saturating_sub(1)) as f64 / (queued_at - first).as_secs_f64();
    run.rss_after_backlog_kib = Usage::of(pid)?.rss_kib;

    live(&mut run, &mut publisher, relay.addr, settings).await?;

    let usage = Usage::of(pid)?;
    run.rss_end_kib = usage.rss_kib;
    run.hwm_kib = usage.hwm_kib;
    let total = run.backlog + run.live_published;
    run.cpu_ms_per_1k = usage.cpu_secs * 1000.0 / total.max(1) as f64 * 1000.0;
    // A moment for a late redelivery to be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.sfrelay_metrics = metrics(relay.addr).await?;
    let queued = series_sum(&run.sfrelay_metrics, EVENTS_TOTAL, &[("outcome", "queued")]) as u64;
    run.duplicates = series_sum(
        &run.sfrelay_metrics,
        EVENTS_TOTAL,
        &[("outcome", "duplicate")],
    ) as u64;
    run.lost = total.saturating_sub(queued);
    run.doubled = queued.saturating_sub(total);
    run.streams = world.salesforce.streams().await?;
    tally_streams(&mut run);
    run.salesforce_stats = world.salesforce.stats().await?;
    Ok(run)
}

async fn start_relay(paths: &Paths, world: &World) -> anyhow::Result<Sfrelay> {
    let section = format!(
        "{}pubsub_endpoint = \"{}\"\n\n[[orgs.subscribe]]\ntopic = \"{TOPIC}\"\nstart = \"earliest\"\n",
        world.salesforce.org_section(&paths.repo),
        world.salesforce.url(),
    );
    let api = world.slack.api_base();
    Sfrelay::start(&SfrelaySpec {
        paths,
        routes_dir: world.routes.path(),
        redis_url: &world.redis.url,
        slack_api: &api,
        unlimited: false,
        min_replicas_acked: None,
        salesforce_section: Some(&section),
        templates_dir: None,
        env: &[],
    })
    .await
}

/// Changes counted as queued so far.
async fn queued(addr: SocketAddr) -> anyhow::Result<u64> {
    let metrics = metrics(addr).await?;
    Ok(series_sum(&metrics, EVENTS_TOTAL, &[("outcome", "queued")]) as u64)
}

/// The live phase: publishes at the planned rate while scraping `/metrics`, then times each
/// change from its publish to the first scrape counting it.
async fn live(
    run: &mut Run,
    publisher: &mut Conn,
    relay: SocketAddr,
    settings: &Settings,
) -> anyhow::Result<()> {
    let backlog = settings.pubsub_backlog;
    let total = (settings.pubsub_rate * settings.duration_secs)
        .round()
        .max(1.0) as usize;
    let target = (backlog + total) as u64;
    let start = Instant::now();
    let publish = async {
        let mut sent: Vec<Instant> = Vec::with_capacity(total);
        let mut tick = 1u32;
        while sent.len() < total {
            let due = start + TICK * tick;
            tokio::time::sleep_until(due.into()).await;
            let want =
                (((due - start).as_secs_f64() * settings.pubsub_rate).ceil() as usize).min(total);
            if want > sent.len() {
                let at = Instant::now();
                let batch = changes(backlog + sent.len(), backlog + want);
                Salesforce::publish(publisher, &batch).await?;
                sent.resize(want, at);
            }
            tick += 1;
        }
        anyhow::Ok(sent)
    };
    let scrape = async {
        let deadline = start + Duration::from_secs_f64(settings.duration_secs + 30.0);
        let mut samples: Vec<(Instant, u64)> = Vec::new();
        loop {
            let queued = queued(relay).await?;
            let now = Instant::now();
            samples.push((now, queued));
            if queued >= target || now >= deadline {
                return anyhow::Ok(samples);
            }
            tokio::time::sleep(SCRAPE).await;
        }
    };
    let (sent, samples) = tokio::try_join!(publish, scrape)?;
    let published_in = sent.last().map_or(Duration::ZERO, |l| *l - start);
    run.live_published = sent.len() as u64;
    run.live_publish_rate = sent.len() as f64 / published_in.as_secs_f64().max(TICK.as_secs_f64());
    let (latency, last) = latencies(&sent, &samples, backlog as u64);
    run.live_latency = latency;
    if let Some(last) = last {
        run.live_rate = sent.len() as f64 / (last - start).as_secs_f64();
    }
    Ok(())
}

/// Each change's time from its publish to the first sample counting it (changes are queued
/// in the order published, after the `before` counted already), and when the last was
/// counted (`None` if it never was).
fn latencies(
    sent: &[Instant],
    samples: &[(Instant, u64)],
    before: u64,
) -> (Latency, Option<Instant>) {
    let mut h = histogram();
    let mut last = None;
    for (j, published) in sent.iter().enumerate() {
        let n = before + j as u64 + 1;
        let i = samples.partition_point(|(_, queued)| *queued < n);
        if let Some((at, _)) = samples.get(i) {
            record(&mut h, at.saturating_duration_since(*published));
            last = Some(*at);
        }
    }
    (Latency::of(&h), last)
}

/// The emulator's stream report, summed over sfrelay's streams.
fn tally_streams(run: &mut Run) {
    let field = |s: &Value, key: &str| s[key].as_u64().unwrap_or(0);
    run.streams_opened = run.streams.len() as u64;
    for s in &run.streams {
        run.events_sent += field(s, "events_sent");
        run.starved += field(s, "starved");
        run.credit_requested_total += field(s, "credit_requested_total");
        run.keepalives_sent += field(s, "keepalives_sent");
        run.longest_starved_ms = run.longest_starved_ms.max(field(s, "longest_starved_ms"));
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub backlog: usize,
    pub live_rate_planned: f64,
    pub backlog_secs: f64,
    pub backlog_rate: f64,
    pub drain_rate: f64,
    pub first_queued_secs: f64,
    pub live_rate: f64,
    pub live_latency: Latency,
    pub rss_after_backlog_mib: f64,
    pub hwm_mib: f64,
    pub cpu_ms_per_1k: f64,
    /// Over all runs.
    pub lost: u64,
    pub doubled: u64,
    pub duplicates: u64,
    /// The worst over all runs.
    pub longest_starved_ms: u64,
    /// Median per run.
    pub starved: f64,
    pub streams_opened: u64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f));
    Summary {
        backlog: settings.pubsub_backlog,
        live_rate_planned: settings.pubsub_rate,
        backlog_secs: med(|r| r.backlog_secs),
        backlog_rate: med(|r| r.backlog_rate),
        drain_rate: med(|r| r.drain_rate),
        first_queued_secs: med(|r| r.first_queued_secs),
        live_rate: med(|r| r.live_rate),
        live_latency: Latency::median(&runs.iter().map(|r| r.live_latency).collect::<Vec<_>>()),
        rss_after_backlog_mib: med(|r| r.rss_after_backlog_kib as f64 / 1024.0),
        hwm_mib: med(|r| r.hwm_kib as f64 / 1024.0),
        cpu_ms_per_1k: med(|r| r.cpu_ms_per_1k),
        lost: runs.iter().map(|r| r.lost).sum(),
        doubled: runs.iter().map(|r| r.doubled).sum(),
        duplicates: runs.iter().map(|r| r.duplicates).sum(),
        longest_starved_ms: runs.iter().map(|r| r.longest_starved_ms).max().unwrap_or(0),
        starved: median(runs.iter().map(|r| r.starved as f64)),
        streams_opened: runs.iter().map(|r| r.streams_opened).max().unwrap_or(0),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    vec![
        Row::new(
            format!("9. Pub/Sub backlog of {} changes → queued", s.backlog),
            format!(
                "{:.2} s from spawn = {} (first queued at {:.2} s, then {})",
                s.backlog_secs,
                per_sec(s.backlog_rate),
                s.first_queued_secs,
                per_sec(s.drain_rate)
            ),
        ),
        Row::new(
            format!("9. Pub/Sub live at {}/s → queued", s.live_rate_planned),
            format!(
                "{}; {} (scraped every {} ms)",
                per_sec(s.live_rate),
                percentiles(&s.live_latency),
                SCRAPE.as_millis()
            ),
        ),
        Row::new(
            "9. Pub/Sub sfrelay RSS after backlog / VmHWM; CPU",
            format!(
                "{:.1} / {:.1} MiB; {:.0} ms per 1,000 changes",
                s.rss_after_backlog_mib, s.hwm_mib, s.cpu_ms_per_1k
            ),
        ),
        Row::new(
            "9. Pub/Sub streams / longest at 0 credit / times at 0",
            format!(
                "{} / {} ms / {}",
                s.streams_opened, s.longest_starved_ms, s.starved
            ),
        ),
        Row::new(
            "9. Pub/Sub lost / doubled (all runs)",
            format!(
                "{} / {} ({} redelivered, deduplicated)",
                s.lost, s.doubled, s.duplicates
            ),
        )
        .target("0 / 0", Some(s.lost == 0 && s.doubled == 0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_timed_to_the_first_sample_counting_it() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 10 changes counted before; three published at 0, 0 and 10 ms.
        let sent = [ms(0), ms(0), ms(10)];
        let samples = [(ms(3), 10), (ms(8), 11), (ms(14), 13)];
        let (latency, last) = latencies(&sent, &samples, 10);
        assert_eq!(latency.count, 3);
        assert!((latency.p50_ms - 8.0).abs() < 0.1, "{latency:?}");
        assert!((latency.max_ms - 14.0).abs() < 0.1, "{latency:?}");
        assert_eq!(last, Some(ms(14)));
        let (never, last) = latencies(&sent, &samples[..1], 10);
        assert_eq!((never.count, last), (0, None));
    }

    #[test]
    fn changes_have_transactions_of_their_own() {
        let (a, b) = (change(1), change(2));
        assert_ne!(a["transaction_key"], b["transaction_key"]);
        assert_eq!(a["record_ids"][0].as_str().map(str::len), Some(18));
    }
}
