//! `sfrelay-emulator slack`: a local Slack Web API with Slack's limits, errors and rate
//! limits, plus a control API, so the service can be tested without a real workspace. The
//! emulator also plays the people in it: clicks and modals, slash commands, Events API
//! callbacks (`interactive` and its `surfaces` document those control routes).

mod blocks;
mod emulator;
mod faults;
mod http;
mod interactive;
mod journal;
mod limits;
mod methods;
mod tokens;
mod workspace;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use crate::gcra::Rate;
use emulator::Emulator;
use faults::Faults;
use journal::Journal;
use limits::{DEFAULT_METHOD_BURST, DEFAULT_METHOD_PER_MINUTE, Limits};
use workspace::{Channel, User, Workspace, looks_like_id, validate_channel_name};

/// Command-line options of the `slack` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct SlackArgs {
    /// Address to listen on; must be loopback. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Bot token callers must send as `Authorization: Bearer <token>`.
    #[arg(long, default_value = "xoxb-test-token")]
    pub token: String,
    /// Channel to seed as ID:NAME or ID:NAME:private (repeatable; replaces the default set).
    #[arg(long = "channel", value_name = "ID:NAME", value_parser = parse_channel)]
    pub channels: Vec<Channel>,
    /// User to seed as ID:EMAIL (repeatable; replaces the default set).
    #[arg(long = "user", value_name = "ID:EMAIL", value_parser = parse_user)]
    pub users: Vec<User>,
    /// `chat.postMessage`/`chat.update` calls allowed per second per channel.
    #[arg(long, default_value_t = 1.0)]
    pub rate_per_channel: f64,
    /// Back-to-back `chat.*` calls allowed per channel after a quiet spell.
    #[arg(long, default_value_t = 3)]
    pub burst: u32,
    /// Calls per minute allowed for each other method.
    #[arg(long, default_value_t = DEFAULT_METHOD_PER_MINUTE)]
    pub method_rate_per_min: f64,
    /// Burst for each other method.
    #[arg(long, default_value_t = DEFAULT_METHOD_BURST)]
    pub method_burst: u32,
    /// Fraction (0..=1) of API calls answered with HTTP 500 and no effect.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub fail_rate: f64,
    /// Fraction (0..=1) of successful `chat.postMessage` calls whose message is stored but
    /// whose answer is HTTP 500, as if the caller died before hearing back.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub drop_response_after_effect_rate: f64,
    /// Delay added to every API answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of the RNG deciding injected failures.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Largest `conversations.list` page, whatever `limit` asks for.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
}

/// Runs the Slack emulator until SIGINT or SIGTERM.
pub async fn run(args: SlackArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    crate::serve::serve(listen, app(args)?).await
}

/// The Slack and control routes over the initial state `args` describe.
pub(crate) fn app(args: SlackArgs) -> anyhow::Result<Router> {
    let emulator = build(args)?;
    Ok(http::router(Arc::new(Mutex::new(emulator))))
}

/// The initial state described by the command line.
fn build(args: SlackArgs) -> anyhow::Result<Emulator> {
    let channel_rate = Rate::new(args.rate_per_channel, args.burst).context(
        "--rate-per-channel must be positive (at least one a day) and --burst at least 1",
    )?;
    let method_rate = Rate::new(args.method_rate_per_min / 60.0, args.method_burst).context(
        "--method-rate-per-min must be positive (at least one a day) and --method-burst at least 1",
    )?;
    let channels = if args.channels.is_empty() {
        default_channels()
    } else {
        args.channels
    };
    let users = if args.users.is_empty() {
        default_users()
    } else {
        args.users
    };
    Ok(Emulator {
        token: args.token,
        token_states: tokens::TokenStates::default(),
        page_size: usize::try_from(args.page_size).unwrap_or(usize::MAX),
        workspace: Workspace::new(channels, users),
        journal: Journal::default(),
        faults: Faults::new(
            args.fail_rate,
            args.drop_response_after_effect_rate,
            Duration::from_millis(args.latency_ms),
            args.seed,
        ),
        limits: Limits::new(channel_rate, method_rate),
        interactive: interactive::Interactive::default(),
    })
}

/// Channels the demo routes post to.
fn default_channels() -> Vec<Channel> {
    [
        ("C0DEALDESK", "deal-desk"),
        ("C0ENTWINS1", "enterprise-wins"),
        ("C0SMBWINS1", "smb-wins"),
        ("C0SUPESC01", "support-escalations"),
        ("C0SALESALR", "sales-alerts"),
    ]
    .into_iter()
    .map(|(id, name)| Channel::new(id, name, false))
    .collect()
}

/// Record owners the demo fixtures mention.
fn default_users() -> Vec<User> {
    [
        ("U0DANA0001", "dana.seller@example.com"),
        ("U0SAM00001", "sam.engineer@example.com"),
        ("U0CASEY001", "casey.success@example.com"),
        ("U0ONCALL01", "oncall.engineer@example.com"),
        ("U0RILEY001", "riley.support@example.com"),
    ]
    .into_iter()
    .map(|(id, email)| User::new(id, email))
    .collect()
}

/// Parses `--channel ID:NAME[:private]`.
fn parse_channel(s: &str) -> Result<Channel, String> {
    let mut parts = s.split(':');
    let (id, name) = match (parts.next(), parts.next()) {
        (Some(id), Some(name)) => (id, name),
        _ => return Err("expected ID:NAME, e.g. C0DEALDESK:deal-desk".into()),
    };
    let is_private = match parts.next() {
        None => false,
        Some("private") => true,
        Some(other) => return Err(format!("unknown channel flag `{other}`; only `private`")),
    };
    if parts.next().is_some() {
        return Err("expected ID:NAME or ID:NAME:private".into());
    }
    if !looks_like_id(id) {
        return Err(format!(
            "`{id}` is not a channel id (uppercase letters and digits)"
        ));
    }
    validate_channel_name(name).map_err(|code| format!("channel name `{name}`: {code}"))?;
    Ok(Channel::new(id, name, is_private))
}

/// Parses `--user ID:EMAIL`.
fn parse_user(s: &str) -> Result<User, String> {
    match s.split_once(':') {
        Some((id, email)) if looks_like_id(id) && email.contains('@') => Ok(User::new(id, email)),
        _ => Err("expected ID:EMAIL, e.g. U0DANA0001:dana.seller@example.com".into()),
    }
}

/// Parses a probability for `--fail-rate` and `--drop-response-after-effect-rate`.
fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a number between 0 and 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        slack: SlackArgs,
    }

    fn args(extra: &[&str]) -> Result<SlackArgs, clap::Error> {
        let argv = std::iter::once("slack").chain(extra.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.slack)
    }

    #[test]
    fn defaults_seed_a_demo_workspace() {
        let emu = build(args(&[]).unwrap()).unwrap();
        assert_eq!(emu.token, "xoxb-test-token");
        assert_eq!(emu.page_size, 100);
        assert!(emu.workspace.channel("C0DEALDESK").is_some());
        assert_eq!(emu.workspace.channels().len(), 5);
        assert_eq!(emu.workspace.users().len(), 5);
        assert!(
            emu.workspace
                .user_by_email("riley.support@example.com")
                .is_some()
        );
    }

    #[test]
    fn seeds_replace_defaults() {
        let a = args(&[
            "--channel",
            "C0DEALDESK:deal-desk",
            "--channel",
            "G0SECRET01:secret:private",
            "--user",
            "U0DANA00001:dana.seller@example.com",
            "--page-size",
            "2",
        ])
        .unwrap();
        let emu = build(a).unwrap();
        assert_eq!(emu.workspace.channels().len(), 2);
        assert!(
            emu.workspace
                .channel("G0SECRET01")
                .is_some_and(|c| c.is_private)
        );
        assert_eq!(emu.workspace.users().len(), 1);
        assert_eq!(emu.page_size, 2);
    }

    #[test]
    fn sets_the_drop_after_effect_rate() {
        let emu = build(args(&[]).unwrap()).unwrap();
        assert_eq!(
            emu.faults.to_json(&emu.limits)["drop_response_after_effect_rate"],
            0.0
        );
        let a = args(&["--drop-response-after-effect-rate", "0.5"]).unwrap();
        assert_eq!(a.drop_response_after_effect_rate, 0.5);
        let emu = build(a).unwrap();
        assert_eq!(
            emu.faults.to_json(&emu.limits)["drop_response_after_effect_rate"],
            0.5
        );
    }

    #[test]
    fn rejects_bad_options() {
        for bad in [
            &["--channel", "deal-desk"][..],
            &["--channel", "c0lower:deal-desk"],
            &["--channel", "C0DEALDESK:Deal Desk"],
            &["--channel", "C0DEALDESK:deal-desk:public"],
            &["--user", "U1"],
            &["--fail-rate", "1.5"],
            &["--drop-response-after-effect-rate", "1.5"],
            &["--drop-response-after-effect-rate", "-0.1"],
            &["--page-size", "0"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
        assert!(build(args(&["--rate-per-channel", "0"]).unwrap()).is_err());
        assert!(build(args(&["--burst", "0"]).unwrap()).is_err());
    }
}
