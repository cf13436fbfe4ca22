//! The Slack surfaces a person touches besides the cards sfrelay posts: the slash command
//! ([`ask`] reads what was typed, [`command`] answers it), record links (`links`: which org
//! and record a URL or Id names), record cards (`card`: the admin's fields of one record,
//! rendered from `templates/record-card.json`), link unfurls ([`unfurl`]), a person's orgs and
//! connection (`account`), searches (`find`), following records (`follow`) and the Home tab ([`home`], with each org's
//! [`health`] for admins).
//!
//! Requests arrive verified through `slack::inbound`; everything that calls Salesforce runs
//! here, as a queued job, and answers through the command's `response_url` or `chat.unfurl`.

mod account;
pub mod ask;
mod card;
pub mod command;
mod find;
mod follow;
pub mod health;
pub mod home;
pub mod links;
pub mod unfurl;

/// The template every record card is drawn from.
pub const CARD_TEMPLATE: &str = "record-card";

use crate::jobs::{JobError, Jobs};
use crate::slack::inbound::SlackEvent;
use crate::slack::inbound::events::EventKind;

/// Acts on one verified Events API callback.
pub async fn run_event(jobs: &Jobs, event: &SlackEvent) -> Result<(), JobError> {
    match &event.event {
        EventKind::LinkShared { .. } => unfurl::run(jobs, event).await,
        EventKind::AppHomeOpened { user, tab } if tab == "home" => {
            let who = crate::people::Person::new(event.team.clone(), user.clone());
            home::publish(jobs, event.app_org.as_ref(), &who).await
        }
        EventKind::AppHomeOpened { .. } => Ok(()),
    }
}
