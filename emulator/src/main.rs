//! The `sfrelay-emulator` binary: one emulated service per process (`slack` or `salesforce`),
//! for `make demo`, `make emulator` and the benchmarks.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sfrelay_emulator::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.command.run().await {
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
