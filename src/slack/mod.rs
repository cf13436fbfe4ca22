//! Everything that talks to Slack: the typed Web API client (with the modal, ephemeral and
//! `users.info` calls of interactive cards in `interactive.rs`), the log sink used when no bot
//! token is set, the rate limiter every call goes through, and the name-to-Id resolution.
//!
//! Slack's *inbound* requests (signed interactivity payloads; later slash commands and the
//! Events API) live in `slack/inbound/`: verified before decoding, answered within Slack's
//! 3 s, and turned into jobs on the same queue.

pub mod client;
pub mod error;
pub mod health;
pub mod inbound;
pub mod interactive;
pub mod pause;
pub mod ratelimit;
pub mod resolve;
pub mod sink;
pub mod surfaces;

pub use client::{
    Channel, ChannelPage, HistoryMessage, HistoryPage, Identity, Message, Posted, ResponseMetadata,
    SlackClient,
};
pub use error::{CREDENTIAL_CODES, Retry, SlackError, classify_code};
pub use pause::{AppPause, Paused};
pub use ratelimit::{CallError, Limiter, Rate};
pub use resolve::Resolver;
pub use sink::SlackSink;
