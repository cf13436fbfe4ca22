//! `sfrelay-emulator`: local stand-ins for the third-party APIs sfrelay talks to, so tests,
//! benchmarks and `make demo` run entirely on loopback.
//!
//! Each emulated service is a subcommand. It prints one line, `listening on http://ADDR`, to
//! stdout once ready, logs to stderr, and serves until SIGINT or SIGTERM.

mod gcra;
mod params;
mod salesforce;
mod serve;
mod slack;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Local emulators of the APIs sfrelay talks to; they listen on loopback only.
#[derive(Debug, Parser)]
#[command(name = "sfrelay-emulator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The emulated services.
#[derive(Debug, Subcommand)]
enum Command {
    /// Emulate the Slack Web API (chat, conversations, users) with a control API for tests.
    Slack(slack::SlackArgs),
    /// Emulate Salesforce's OAuth token endpoint and a SOQL/REST subset over seeded records.
    Salesforce(salesforce::SalesforceArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Slack(args) => slack::run(args).await,
        Command::Salesforce(args) => salesforce::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries only the "listening on" line); `RUST_LOG` overrides the
/// default `info`, and `debug` shows every API call.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
