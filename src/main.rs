//! The `sfrelay` command line: `serve` runs the service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sfrelay::config::{Config, ProcessEnv};
use sfrelay::deliver::OrgDirectory;
use sfrelay::ingest::flow::parse_flow_request;
use sfrelay::slack::SlackClient;
use sfrelay::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "sfrelay",
    version,
    about = "Salesforce record changes → Slack messages"
)]
struct Cli {
    /// Configuration file (default: ./sfrelay.toml when it exists, else built-in defaults).
    #[arg(long, global = true, env = "SFRELAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP ingest API and the worker pool.
    Serve,
    /// Check every route and template (renders each against the fixtures); exit 1 on problems.
    Check,
    /// Print, as JSON, the Slack calls an event would cause, with no side effect.
    Render {
        /// A Flow callout body (one envelope or {"events": [...]}).
        #[arg(long)]
        event: PathBuf,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
    },
    /// Fire a scheduled route now, for every org it runs for (also for a Kubernetes CronJob).
    Run {
        /// The route's name.
        route: String,
    },
    /// Inspect and replay the dead-letter list of a running deployment (needs REDIS_URL).
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// One line per dead letter, newest first: job id, when, attempts, reason.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The whole dead letter (job, payload, errors), as JSON.
    Show { id: String },
    /// Put dead letters back on the queue as fresh jobs.
    Replay {
        /// The job id (from `dlq list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Delete dead letters.
    Purge {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One-shot commands print their result; their log defaults to warnings only.
    let default_level = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("sfrelay: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(format, default_level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let path = cli.config.or_else(|| {
        let default = PathBuf::from("sfrelay.toml");
        default.exists().then_some(default)
    });
    let config = Config::load(path.as_deref(), &ProcessEnv).context("invalid configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve => {
            runtime.block_on(sfrelay::app::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let slack = match &config.slack.bot_token {
                Some(token) => Some(
                    SlackClient::new(&config.slack.api_base, token.clone(), config.slack.timeout)
                        .context("Slack client")?,
                ),
                None => None,
            };
            let (problems, summary) =
                runtime.block_on(sfrelay::check::check(&config, slack.as_ref()));
            for problem in &problems {
                println!("{problem}");
            }
            if problems.is_empty() {
                println!("ok: {summary}");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{} problem(s); {summary}", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Dlq { command } => runtime.block_on(dlq(&config, command)),
        Command::Run { route } => runtime.block_on(run_now(config, &route)),
        Command::Render { event, route } => {
            let routes = load_routes(&config)?;
            let body = std::fs::read(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            let events = parse_flow_request(&body, chrono::Utc::now()).map_err(|errors| {
                anyhow::anyhow!(
                    "{} is not a valid event:\n{}",
                    event.display(),
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.path, e.message))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?;
            let orgs = OrgDirectory::new(&config.orgs);
            let runs = sfrelay::check::render(&routes, &orgs, &events, route.as_deref())
                .map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&runs)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn dlq(config: &Config, command: DlqCommand) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        config.redis_url.is_some(),
        "set REDIS_URL (and the same queue namespace in the config) to reach the deployment's dead letters; \
         the in-process queue exists only inside a running sfrelay"
    );
    let (queue, store) = sfrelay::app::build_queue(config)?;
    match command {
        DlqCommand::List { limit } => {
            let letters = queue.dead_letters(limit).await?;
            for letter in &letters {
                let when = chrono::DateTime::from_timestamp_millis(letter.dead_at_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                println!(
                    "{}\t{when}\t{} attempt(s)\t{}",
                    letter.job.id, letter.job.attempts, letter.reason
                );
            }
            eprintln!("{} dead letter(s) shown", letters.len());
        }
        DlqCommand::Show { id } => {
            let letters = queue.dead_letters(usize::MAX).await?;
            let Some(letter) = letters.iter().find(|l| l.job.id == id) else {
                eprintln!("no dead letter with id {id}");
                return Ok(ExitCode::FAILURE);
            };
            println!("{}", serde_json::to_string_pretty(letter)?);
        }
        DlqCommand::Replay { id, all } => {
            // A letter is often replayed because its channel was just made: channels Slack
            // was found not to have are looked for again.
            let epoch = sfrelay::keys::Key::names_epoch();
            store
                .set(
                    epoch.as_str(),
                    &chrono::Utc::now().timestamp_millis().to_string(),
                    None,
                )
                .await?;
            let n = queue
                .replay_dead(if all { None } else { id.as_deref() })
                .await?;
            println!("{n} dead letter(s) replayed");
            if n == 0 && !all {
                return Ok(ExitCode::FAILURE);
            }
        }
        DlqCommand::Purge { id, all } => {
            let n = queue
                .purge_dead(if all { None } else { id.as_deref() })
                .await?;
            println!("{n} dead letter(s) purged");
            if n == 0 && !all {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a scheduled route at once, in this process: its query per org, then its deliveries.
async fn run_now(config: Config, name: &str) -> anyhow::Result<ExitCode> {
    use std::sync::Arc;
    let routes = load_routes(&config)?;
    let route = routes
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("no route named {name:?}"))?;
    anyhow::ensure!(route.schedule.is_some(), "route {name:?} has no schedule");
    let orgs: Vec<_> = config.salesforce.iter().map(|c| c.org_id.clone()).collect();
    let targets: Vec<_> = sfrelay::jobs::clock::orgs_for(route, &orgs)
        .into_iter()
        .cloned()
        .collect();
    anyhow::ensure!(
        !targets.is_empty(),
        "no org with [orgs.salesforce] API credentials matches route {name:?}"
    );
    let backends = sfrelay::app::build_queue(&config)?;
    config.refuse_silent_fallbacks()?;
    let slack = sfrelay::app::build_slack_sink(&config)?;
    let routes = Arc::new(arc_swap::ArcSwap::from_pointee(routes));
    let jobs = sfrelay::app::build_jobs(&config, backends, slack, routes)?;
    let tick = chrono::Utc::now().timestamp_millis();
    let mut failed = 0;
    for org in &targets {
        match sfrelay::jobs::scheduled::run_here(&jobs, name, org, tick).await {
            Ok(deliveries) => {
                for (event, outcome) in &deliveries {
                    if let Err(e) = outcome {
                        failed += 1;
                        eprintln!("{name} for {} in org {org}: {e}", event.record_id);
                    }
                }
                println!(
                    "{name}: org {org}: done ({} record deliveries)",
                    deliveries.len()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("{name}: org {org}: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The routes and templates, or every problem with them (as `sfrelay check` names them).
fn load_routes(config: &Config) -> anyhow::Result<sfrelay::routing::RouteSet> {
    sfrelay::app::load_routes(config).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "routes and templates have problems (run `sfrelay check`):\n{}",
            list.join("\n")
        )
    })
}
