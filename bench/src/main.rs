//! `sfrelay-bench`: measures sfrelay (release build) on loopback against a private
//! `redis-server` and the Slack emulator, prints a table and writes `results.json`.
//!
//! One module per measurement: [`ingest`] (1), [`batches`] (2), [`e2e`] (3), [`delivery`]
//! (4), [`resources`] (5), [`scaling`] (6), [`replicas`] (7), [`clicks`] (8), [`pubsub`] (9),
//! [`enrich`] (10), [`storm`] (11). Each run of each measurement starts its own
//! processes, so runs are independent; every figure is the median over `--runs`. Targets are
//! reported as PASS/FAIL and never asserted: the exit status is non-zero only when the
//! harness itself could not measure something.

mod baseline;
mod batches;
mod clicks;
mod delivery;
mod e2e;
mod enrich;
mod envelope;
mod http;
mod ingest;
mod loadgen;
mod procs;
mod pubsub;
mod replicas;
mod report;
mod resources;
mod salesforce;
mod scaling;
mod stats;
mod storm;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use envelope::Envelopes;
use procs::Paths;
use report::Row;

#[derive(Debug, Parser)]
#[command(name = "sfrelay-bench", about = "Benchmarks sfrelay on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the measurements, print the table, write results.json.
    Run(Box<Settings>),
    /// Serve the baseline (started by `run`; not for direct use).
    Baseline(baseline::Args),
}

/// The names `--only` accepts, in the order they run.
const MEASUREMENTS: [&str; 11] = [
    "ingest",
    "batches",
    "e2e",
    "delivery",
    "resources",
    "scaling",
    "replicas",
    "clicks",
    "pubsub",
    "enrich",
    "storm",
];

/// What to measure and how hard. `--smoke` replaces the scale settings with a tiny one.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Settings {
    /// Tiny scale (1 run, 2 s phases, 100 messages over 10 channels, 5 clicks, a Pub/Sub
    /// backlog of 200, 20 enriched events, a storm of 14 posts): proves the harness works.
    #[arg(long)]
    pub smoke: bool,
    /// Repetitions of every measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Length of each measured load phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Unmeasured load before each measured phase.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Concurrent connections for single-event load.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Concurrent connections for batch load.
    #[arg(long, default_value_t = 8)]
    pub batch_connections: usize,
    /// Events per batch request (sfrelay accepts at most 200).
    #[arg(long, default_value_t = 200)]
    pub batch_size: usize,
    /// Events in the end-to-end measurement.
    #[arg(long, default_value_t = 200)]
    pub e2e_events: usize,
    /// Their rate, per second.
    #[arg(long, default_value_t = 20.0)]
    pub e2e_rate: f64,
    /// Messages in the delivery measurement.
    #[arg(long, default_value_t = 2000)]
    pub messages: usize,
    /// Slack channels they (and the end-to-end and scaling events) spread over.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Events in each scaling run.
    #[arg(long, default_value_t = 5000)]
    pub scaling_events: usize,
    /// Cards clicked ("Take it", once each) in the click measurement; below `--channels`,
    /// no two cards share a channel.
    #[arg(long, default_value_t = 60)]
    pub clicks: usize,
    /// Their rate, per second; above 1.6/s Slack's `users.info` tier, asked on every click,
    /// becomes what is measured.
    #[arg(long, default_value_t = 1.5)]
    pub click_rate: f64,
    /// Change events published before sfrelay subscribes (from the earliest).
    #[arg(long, default_value_t = 20_000)]
    pub pubsub_backlog: usize,
    /// Change events per second published once the backlog is queued, for `--duration-secs`.
    #[arg(long, default_value_t = 500.0)]
    pub pubsub_rate: f64,
    /// Events in the enrichment burst, each its own Opportunity queried by Id.
    #[arg(long, default_value_t = 1000)]
    pub enrich_events: usize,
    /// Posts in the storm…
    #[arg(long, default_value_t = 140)]
    pub storm_posts: usize,
    /// …spread over this many channels, at Slack's pace.
    #[arg(long, default_value_t = 7)]
    pub storm_channels: usize,
    /// Share of every Slack call answered HTTP 500 in the storm's faulty runs.
    #[arg(long, default_value_t = 0.3)]
    pub storm_fail_rate: f64,
    /// Repetitions of the storm (each with and without faults), in place of `--runs`: a
    /// faulty run takes minutes, most of it retries backing off.
    #[arg(long, default_value_t = 1)]
    pub storm_runs: usize,
    /// Only these measurements (comma-separated:
    /// ingest,batches,e2e,delivery,resources,scaling,replicas,clicks,pubsub,enrich,storm).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The sfrelay repository (binaries, templates, fixtures).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    pub repo: PathBuf,
    /// Where sfrelay's binaries are, relative to the repository [default: beside this binary,
    /// so a release harness measures the release build]. Figures mean something only for the
    /// release build; `make bench-smoke` uses the test build to prove the harness runs.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where to write the results [default: bench/results.json, or
    /// bench/out/results-smoke.json with --smoke].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Settings {
    fn apply_smoke(&mut self) {
        if self.smoke {
            self.runs = 1;
            self.duration_secs = 2.0;
            self.warmup_secs = 0.5;
            self.e2e_events = 20;
            self.messages = 100;
            self.channels = 10;
            self.scaling_events = 300;
            self.clicks = 5;
            self.click_rate = 5.0;
            self.pubsub_backlog = 200;
            self.pubsub_rate = 100.0;
            self.enrich_events = 20;
            self.storm_posts = 14;
            self.storm_runs = 1;
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }

    /// How long sfrelay sits idle before its idle memory is read.
    pub fn idle_secs(&self) -> f64 {
        if self.smoke { 0.5 } else { 2.0 }
    }

    /// Refuses an `--only` entry that names no measurement (it would silently run nothing).
    fn check_only(&self) -> anyhow::Result<()> {
        match self
            .only
            .iter()
            .find(|m| !MEASUREMENTS.contains(&m.as_str()))
        {
            Some(unknown) => anyhow::bail!(
                "--only: {unknown:?} is not a measurement (one of {})",
                MEASUREMENTS.join(", ")
            ),
            None => Ok(()),
        }
    }

    fn wants(&self, measurement: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|m| m == measurement)
    }

    fn out_path(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            if self.smoke {
                bench.join("out/results-smoke.json")
            } else {
                bench.join("results.json")
            }
        })
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Baseline(args) => baseline::run(args),
        Command::Run(mut settings) => {
            settings.apply_smoke();
            // One thread: the load generator must never take more than one of the cores it
            // shares with what it measures.
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run(*settings)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sfrelay-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `f` `runs` times, logging progress; the first error ends the measurement.
async fn repeat<T, F, Fut>(what: &str, runs: usize, mut f: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut out = Vec::new();
    for i in 1..=runs {
        eprintln!("[bench] {what}: run {i}/{runs}");
        out.push(
            f().await
                .map_err(|e| e.context(format!("{what}, run {i}")))?,
        );
    }
    Ok(out)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.runs >= 1 && settings.channels >= 1,
        "--runs and --channels must be ≥ 1"
    );
    anyhow::ensure!(
        settings.clicks >= 1 && settings.click_rate > 0.0,
        "--clicks must be ≥ 1 and --click-rate positive"
    );
    anyhow::ensure!(
        settings.pubsub_backlog >= 1 && settings.pubsub_rate > 0.0,
        "--pubsub-backlog must be ≥ 1 and --pubsub-rate positive"
    );
    anyhow::ensure!(
        settings.enrich_events >= 1
            && settings.storm_posts >= 1
            && settings.storm_channels >= 1
            && settings.storm_runs >= 1,
        "--enrich-events, --storm-posts, --storm-channels and --storm-runs must be ≥ 1"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&settings.storm_fail_rate),
        "--storm-fail-rate must be from 0 up to (not including) 1"
    );
    settings.check_only()?;
    let paths = Paths::new(&settings.repo, settings.bin_dir.as_deref())?;
    let envelopes = Arc::new(Envelopes::load(&paths.repo)?);
    let machine = report::machine();
    let (p, s, e) = (&paths, &settings, &envelopes);
    let runs = settings.runs;

    let mut measurements = serde_json::Map::new();
    let mut errors: Vec<String> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut resource_rows: Vec<Row> = Vec::new();
    let mut scaling_rows: Vec<Row> = Vec::new();
    let mut replica_rows: Vec<Row> = Vec::new();
    let mut click_rows: Vec<Row> = Vec::new();
    let mut later_rows: Vec<Row> = Vec::new();
    let mut record = |name: &str, result: anyhow::Result<Value>| match result {
        Ok(value) => {
            measurements.insert(name.into(), value);
        }
        Err(err) => {
            eprintln!("[bench] {name} failed: {err:#}");
            errors.push(format!("{name}: {err:#}"));
            measurements.insert(name.into(), json!({ "error": format!("{err:#}") }));
        }
    };

    if settings.wants("ingest") {
        let result = async {
            let mut closed = Vec::new();
            for i in 1..=runs {
                // Alternate so drift on a shared machine hits both sides alike.
                eprintln!("[bench] ingest closed loop: run {i}/{runs}");
                closed.push(ingest::closed(p, s, e, ingest::Server::Sfrelay).await?);
                closed.push(ingest::closed(p, s, e, ingest::Server::Baseline).await?);
            }
            let max = stats::median(
                closed
                    .iter()
                    .filter(|r| r.server == ingest::Server::Sfrelay)
                    .map(|r| r.rate),
            );
            let open = repeat("ingest open loop", runs, || {
                ingest::open(p, s, e, max / 2.0)
            })
            .await?;
            let summary = ingest::summarize(closed, open);
            rows.extend(ingest::rows(&summary, settings.connections));
            resource_rows.extend(ingest::resource_rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("ingest", result);
    }
    if settings.wants("batches") {
        let result = async {
            let summary = batches::summarize(
                repeat("batches", runs, || batches::measure(p, s, e)).await?,
                s,
            );
            rows.extend(batches::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("batches", result);
    }
    if settings.wants("e2e") {
        let result = async {
            let summary = e2e::summarize(
                repeat("end to end", runs, || e2e::measure(p, s, e)).await?,
                s,
            );
            rows.extend(e2e::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("e2e", result);
    }
    if settings.wants("delivery") {
        let result = async {
            let summary = delivery::summarize(
                repeat("delivery", runs, || delivery::measure(p, s, e)).await?,
                s,
            );
            rows.extend(delivery::rows(&summary));
            resource_rows.extend(delivery::resource_rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("delivery", result);
    }
    if settings.wants("resources") {
        let result = async {
            let summary =
                resources::summarize(repeat("resources", runs, || resources::measure(p, s)).await?);
            resource_rows.splice(0..0, resources::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("resources", result);
    }
    if settings.wants("scaling") {
        let result = async {
            let mut all = Vec::new();
            for n in [1, 2] {
                all.extend(
                    repeat(&format!("scaling, {n} process(es)"), runs, || {
                        scaling::measure(p, s, e, n)
                    })
                    .await?,
                );
            }
            let summary = scaling::summarize(all, s);
            scaling_rows.extend(scaling::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("scaling", result);
    }
    if settings.wants("replicas") {
        let result = async {
            let mut all = Vec::new();
            for i in 1..=runs {
                // Alternate so drift on a shared machine hits both settings alike.
                eprintln!("[bench] replicas: run {i}/{runs}");
                for acked in [0, 1] {
                    let run = replicas::measure(p, s, e, acked).await.map_err(|err| {
                        err.context(format!("min_replicas_acked = {acked}, run {i}"))
                    })?;
                    all.push(run);
                }
            }
            let summary = replicas::summarize(all);
            replica_rows.extend(replicas::rows(&summary, settings.connections));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("replicas", result);
    }
    if settings.wants("clicks") {
        let result = async {
            let summary =
                clicks::summarize(repeat("clicks", runs, || clicks::measure(p, s)).await?, s);
            click_rows.extend(clicks::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("clicks", result);
    }
    if settings.wants("pubsub") {
        let result = async {
            let summary =
                pubsub::summarize(repeat("pubsub", runs, || pubsub::measure(p, s)).await?, s);
            later_rows.extend(pubsub::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("pubsub", result);
    }
    if settings.wants("enrich") {
        let result = async {
            let summary =
                enrich::summarize(repeat("enrich", runs, || enrich::measure(p, s)).await?, s);
            later_rows.extend(enrich::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("enrich", result);
    }
    if settings.wants("storm") {
        let result = async {
            let mut all = Vec::new();
            let runs = settings.storm_runs;
            for i in 1..=runs {
                // Alternate so drift on a shared machine hits both variants alike.
                eprintln!("[bench] storm: run {i}/{runs}");
                for fail_rate in [0.0, settings.storm_fail_rate] {
                    let run = storm::measure(p, s, e, fail_rate).await.map_err(|err| {
                        err.context(format!("storm, fail rate {fail_rate}, run {i}"))
                    })?;
                    all.push(run);
                }
            }
            let summary = storm::summarize(all, s);
            later_rows.extend(storm::rows(&summary));
            Ok(serde_json::to_value(summary)?)
        }
        .await;
        record("storm", result);
    }
    for mut row in resource_rows {
        row.name = format!("5. {}", row.name);
        rows.push(row);
    }
    rows.extend(scaling_rows);
    rows.extend(replica_rows);
    rows.extend(click_rows);
    rows.extend(later_rows);

    let commit = report::git_commit(&paths.repo);
    let title = format!(
        "sfrelay bench — median of {runs} run(s); {} × {}; commit {}; load average at start {}",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        commit.as_deref().map_or("?", |c| &c[..c.len().min(12)]),
        machine["loadavg_at_start"]
            .as_str()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?"),
    );
    report::print(&title, &rows);

    let results = json!({
        "generated_at_unix": loadgen::unix_ms() / 1000.0,
        "machine": machine,
        "git_commit": commit,
        "settings": settings,
        "table": rows,
        "measurements": measurements,
        "errors": errors,
    });
    let out = settings.out_path();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("\nwrote {}", out.display());
    anyhow::ensure!(
        errors.is_empty(),
        "{} measurement(s) failed:\n{}",
        errors.len(),
        errors.join("\n")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let Cli {
            command: Command::Run(settings),
        } = Cli::parse_from([&["sfrelay-bench", "run"], args].concat())
        else {
            panic!("not a run");
        };
        *settings
    }

    #[test]
    fn only_refuses_a_name_that_is_no_measurement() {
        let err = settings(&["--only", "ingest,replica"])
            .check_only()
            .expect_err("replica is not a measurement");
        assert!(err.to_string().contains("\"replica\""), "{err}");
        assert!(
            settings(&["--only", "ingest,replicas"])
                .check_only()
                .is_ok()
        );
        assert!(settings(&["--only", "replicas"]).wants("replicas"));
        assert!(!settings(&["--only", "replicas"]).wants("ingest"));
        assert!(
            settings(&[]).wants("replicas"),
            "the default set includes it"
        );
        assert!(settings(&["--only", "clicks"]).wants("clicks"));
        assert!(settings(&[]).wants("clicks"));
        for name in ["pubsub", "enrich", "storm"] {
            assert!(settings(&["--only", name]).check_only().is_ok(), "{name}");
            assert!(settings(&[]).wants(name), "{name}");
        }
    }

    #[test]
    fn smoke_shrinks_the_new_measurements() {
        let mut smoke = settings(&["--smoke"]);
        smoke.apply_smoke();
        assert_eq!(
            (smoke.pubsub_backlog, smoke.enrich_events, smoke.storm_posts),
            (200, 20, 14)
        );
        assert_eq!(smoke.storm_channels, 7);
        let full = settings(&[]);
        assert_eq!(
            (full.pubsub_backlog, full.enrich_events, full.storm_posts),
            (20_000, 1000, 140)
        );
    }

    #[test]
    fn clicked_cards_get_channels_of_their_own_at_both_scales() {
        // Card 0 is the warm-up's; the clicked cards are 1..=clicks, one per channel.
        let full = settings(&[]);
        assert!(full.clicks < full.channels, "{full:?}");
        let mut smoke = settings(&["--smoke"]);
        smoke.apply_smoke();
        assert!(smoke.clicks < smoke.channels, "{smoke:?}");
        assert_eq!(smoke.clicks, 5);
    }
}
