//! What an interactive Slack app needs beyond posting: modals (`views.open`, `views.update`),
//! ephemeral messages, `users.info`, the `response_url`s Slack hands out with each click, and
//! the emulator playing the person who clicks, submits or closes (`POST /_emulator/interact`),
//! signing what it sends with Slack's v0 scheme; and the app's other surfaces ([`surfaces`]):
//! slash commands, Events API callbacks, link unfurls and the Home tab.
//!
//! Triggers and `response_url`s are issued here, by the clicks the emulator sends, so the
//! service under test can only use the ones a click gave it, within Slack's limits.

mod answers;
mod control;
mod ephemeral;
#[cfg(test)]
mod flow_tests;
mod interact;
mod payload;
mod responses;
mod signing;
pub mod surfaces;
mod users;
mod views;

use std::collections::HashMap;

pub use control::router;
pub use ephemeral::{Ephemeral, post_ephemeral};
pub use surfaces::{chat_unfurl, views_publish};
pub use users::users_info;
pub use views::{OpenView, views_open, views_update};

/// The app id every payload names (the emulated app's).
pub const APP_ID: &str = "A0EMULATOR";
/// How long a `trigger_id` can open a modal: Slack's 3 seconds.
pub const TRIGGER_LIFETIME_MICROS: i64 = 3_000_000;

/// A `trigger_id` handed out with an interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trigger {
    /// Who interacted: the modal it opens is theirs.
    user: String,
    issued_at_micros: i64,
    /// Whether a `views.open` already exchanged it.
    used: bool,
}

/// Why a trigger cannot open a modal, in Slack's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerError {
    /// Never issued (or not a trigger at all).
    Invalid,
    /// Older than 3 seconds.
    Expired,
    /// Already used by a `views.open`.
    Exchanged,
}

impl TriggerError {
    /// Slack's `error` code.
    pub fn code(self) -> &'static str {
        match self {
            TriggerError::Invalid => "invalid_trigger_id",
            TriggerError::Expired => "expired_trigger_id",
            TriggerError::Exchanged => "exchanged_trigger_id",
        }
    }
}

/// The interactive side of the workspace.
#[derive(Debug, Default)]
pub struct Interactive {
    triggers: HashMap<String, Trigger>,
    views: Vec<OpenView>,
    ephemerals: Vec<Ephemeral>,
    responses: responses::ResponseUrls,
    /// Slash commands, events, link unfurls and Home views.
    surfaces: surfaces::Surfaces,
    /// Ids handed out so far (triggers, views, hashes, response URLs); never reset, so an id
    /// from before a reset is never handed out again.
    issued: u64,
}

impl Interactive {
    /// Forgets triggers, views, ephemeral messages, `response_url`s, commands, events,
    /// unfurls and Home views (ids keep counting, the Home tab setting stays).
    pub fn clear(&mut self) {
        let issued = self.issued;
        let mut surfaces = std::mem::take(&mut self.surfaces);
        surfaces.clear();
        *self = Interactive {
            issued,
            surfaces,
            ..Interactive::default()
        };
    }

    /// The next number for an id.
    fn next_number(&mut self) -> u64 {
        self.issued += 1;
        self.issued
    }

    /// Hands out a fresh `trigger_id` for `user`, shaped like Slack's
    /// (`<digits>.<digits>.<32 hex digits>`).
    pub fn issue_trigger(&mut self, user: &str, now_micros: i64) -> String {
        let n = self.next_number();
        let id = format!("{n}.7000000001.{:032x}", rand::random::<u128>());
        self.triggers.insert(
            id.clone(),
            Trigger {
                user: user.to_owned(),
                issued_at_micros: now_micros,
                used: false,
            },
        );
        id
    }

    /// Uses up a trigger to open a modal; answers whose modal it is.
    pub fn exchange_trigger(
        &mut self,
        trigger_id: &str,
        now_micros: i64,
    ) -> Result<String, TriggerError> {
        let trigger = self
            .triggers
            .get_mut(trigger_id)
            .ok_or(TriggerError::Invalid)?;
        if trigger.used {
            return Err(TriggerError::Exchanged);
        }
        if now_micros - trigger.issued_at_micros > TRIGGER_LIFETIME_MICROS {
            return Err(TriggerError::Expired);
        }
        trigger.used = true;
        Ok(trigger.user.clone())
    }

    /// All modals opened, in the order they were opened, closed ones included.
    pub fn views(&self) -> &[OpenView] {
        &self.views
    }

    /// The open (not closed) view with this id.
    pub fn open_view_mut(&mut self, id: &str) -> Option<&mut OpenView> {
        self.views.iter_mut().find(|v| v.id == id && !v.closed)
    }

    /// The view with this id, open or closed.
    pub fn view(&self, id: &str) -> Option<&OpenView> {
        self.views.iter().find(|v| v.id == id)
    }

    /// Every ephemeral message, in the order sent.
    pub fn ephemerals(&self) -> &[Ephemeral] {
        &self.ephemerals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_opens_one_modal_within_three_seconds() {
        let mut state = Interactive::default();
        let t0 = 1_700_000_000_000_000;
        let trigger = state.issue_trigger("U0DANA0001", t0);
        let parts: Vec<&str> = trigger.split('.').collect();
        assert_eq!(parts.len(), 3, "{trigger}");
        assert_eq!(parts[2].len(), 32, "{trigger}");

        assert_eq!(
            state.exchange_trigger("1.2.nope", t0),
            Err(TriggerError::Invalid)
        );
        assert_eq!(
            state.exchange_trigger(&trigger, t0 + TRIGGER_LIFETIME_MICROS),
            Ok("U0DANA0001".to_owned())
        );
        assert_eq!(
            state.exchange_trigger(&trigger, t0 + 1),
            Err(TriggerError::Exchanged)
        );
        let late = state.issue_trigger("U0DANA0001", t0);
        assert_eq!(
            state.exchange_trigger(&late, t0 + TRIGGER_LIFETIME_MICROS + 1),
            Err(TriggerError::Expired)
        );
        assert_eq!(TriggerError::Expired.code(), "expired_trigger_id");
        assert_eq!(TriggerError::Exchanged.code(), "exchanged_trigger_id");
        assert_eq!(TriggerError::Invalid.code(), "invalid_trigger_id");

        state.clear();
        assert_eq!(
            state.exchange_trigger(&late, t0),
            Err(TriggerError::Invalid),
            "a reset forgets triggers"
        );
        let after = state.issue_trigger("U0DANA0001", t0);
        assert_ne!(after.split('.').next(), trigger.split('.').next());
    }
}
