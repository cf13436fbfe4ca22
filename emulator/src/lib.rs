//! `sfrelay-emulator`: local stand-ins for the third-party APIs sfrelay talks to, so tests,
//! benchmarks and `make demo` run entirely on loopback.
//!
//! Each emulated service is a subcommand of the binary: it prints one line,
//! `listening on http://ADDR`, to stdout once ready, logs to stderr, and serves until SIGINT or
//! SIGTERM. Tests start the same services in their own process with [`spawn_slack`] and
//! [`spawn_salesforce`], from the same command-line arguments, and may drive their control
//! APIs with [`SlackControl`] and [`SalesforceControl`].

pub mod client;
mod gcra;
mod params;
mod running;
mod salesforce;
mod serve;
mod slack;

use clap::{Parser, Subcommand};

pub use client::{
    Authorized, CommandAnswer, ControlError, EventAnswer, SalesforceControl, SlackControl,
    TokenAction, pkce_challenge,
};
pub use running::{Running, spawn_salesforce, spawn_slack};
pub use salesforce::{
    DEFAULT_CLIENT_ID, DEFAULT_INTEGRATION_USERNAME, Fault as PubSubFault, PubSubControl,
    SalesforceArgs,
};
pub use slack::SlackArgs;

/// Local emulators of the APIs sfrelay talks to; they listen on loopback only.
#[derive(Debug, Parser)]
#[command(
    name = "sfrelay-emulator",
    version,
    // The help text's first line, as it was when the emulators were part of the sfrelay package.
    about = "Turns Salesforce record changes into Slack messages people act on"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The emulated services.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Emulate the Slack Web API (chat, conversations, users) with a control API for tests.
    Slack(SlackArgs),
    /// Emulate Salesforce's OAuth token endpoint and a SOQL/REST subset over seeded records.
    Salesforce(SalesforceArgs),
}

impl Command {
    /// Serves the chosen emulator until SIGINT or SIGTERM.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Slack(args) => slack::run(args).await,
            Command::Salesforce(args) => salesforce::run(args).await,
        }
    }
}
