//! The `sfrelay` command line: `serve` runs the service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use sfrelay::config::{Config, ProcessEnv};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(e) => {
            eprintln!("sfrelay: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sfrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let path = cli.config.or_else(|| {
        let default = PathBuf::from("sfrelay.toml");
        default.exists().then_some(default)
    });
    let config = Config::load(path.as_deref(), &ProcessEnv).context("invalid configuration")?;
    match cli.command {
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(sfrelay::app::serve(config))?;
        }
    }
    Ok(())
}
