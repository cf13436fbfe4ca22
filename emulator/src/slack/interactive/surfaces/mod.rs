//! The app's other Slack surfaces: slash commands, Events API callbacks (`url_verification`,
//! `link_shared`, `app_home_opened`, and their retries), link unfurls (`chat.unfurl`) and the
//! Home tab (`views.publish`). The emulator sends the commands and events, signed like Slack,
//! and keeps what the app answered and did for the control API:
//!
//! - `POST /_emulator/command` `{"url", "signing_secret", "user", "channel", "command"?: "/sf",
//!   "text"?, "timestamp"?, "tamper"?, "api_app_id"?}`: the answer's status, body, `elapsed_ms`
//!   and `within_3s`, the `trigger_id`, `response_url`/`response_id` (its answers at
//!   `GET /_emulator/response/{id}`), the form as sent and what Slack showed of the answer;
//!   `GET /_emulator/commands` lists them
//! - `POST /_emulator/event` `{"url", "signing_secret", "type": "url_verification" |
//!   "link_shared" | "app_home_opened", "user"?, "channel"?, "source"?: "conversations_history"
//!   | "composer", "links"?: [url | {"domain", "url"}], "message_ts"?, "thread_ts"?, "tab"?,
//!   "challenge"?}`, or `{"url", "signing_secret", "retry_of": "Ev…", "retry_num"?,
//!   "retry_reason"?}` to send one again as a retry; `GET /_emulator/events` lists each event
//!   with its deliveries
//! - `GET /_emulator/links`: the shares `link_shared` events told the app about;
//!   `GET /_emulator/unfurls`: every `chat.unfurl` that succeeded, with its share
//! - `GET /_emulator/home`: `{"enabled", "views", "publishes"}`; `GET /_emulator/home/{user}`:
//!   that person's current Home view (404 when none); `POST /_emulator/home {"enabled": false}`
//!   turns the Home tab off

mod commands;
mod control;
mod events;
#[cfg(test)]
mod flow_tests;
mod home;
mod send;
mod unfurl;

pub use control::routes;
pub use home::views_publish;
pub use unfurl::chat_unfurl;

use axum::http::StatusCode;

use super::super::workspace::Workspace;
use super::payload::{Refusal, refuse};
use commands::CommandRecord;
use events::SentEvent;
use home::Home;
use unfurl::{Share, Unfurl};

/// What the surfaces hold.
#[derive(Debug, Default)]
pub struct Surfaces {
    commands: Vec<CommandRecord>,
    events: Vec<SentEvent>,
    shares: Vec<Share>,
    unfurls: Vec<Unfurl>,
    home: Home,
}

impl Surfaces {
    /// Forgets commands, events, shares, unfurls and Home views; whether the Home tab is on
    /// is a setting and stays.
    pub fn clear(&mut self) {
        let enabled = self.home.enabled;
        *self = Surfaces::default();
        self.home.enabled = enabled;
    }
}

/// Where a person typed or posted something: a channel (its name, and whether the bot is in
/// it) or a DM, theirs with the app opened on the way if need be (`directmessage`, in).
fn conversation(
    workspace: &mut Workspace,
    channel: &str,
    user: &str,
) -> Result<(String, bool), Refusal> {
    if let Some(found) = workspace.channel(channel) {
        return Ok((found.name.clone(), found.is_member()));
    }
    if workspace.dm(channel).is_none() && workspace.dm_id_for(user) == channel {
        workspace.open_dm(user);
    }
    if workspace.dm(channel).is_some() {
        return Ok(("directmessage".to_owned(), true));
    }
    Err(refuse(
        StatusCode::NOT_FOUND,
        "channel_not_found",
        format!("{channel} is neither a channel nor a DM"),
    ))
}
