//! The Slack Web API methods the service uses, each answering like real Slack would: the
//! method table and the types every method shares here, the methods themselves by concern.

mod chat;
mod conversations;
mod history;
#[cfg(test)]
mod testing;
mod users;

use serde_json::{Value, json};

use super::interactive::{self, Interactive};
use super::journal::Stats;
use super::workspace::{BOT_ID, BOT_USER_ID, Workspace};
use crate::params::{ParamError, Params};

pub(super) use chat::content;

/// The emulated methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlackMethod {
    /// `auth.test`
    AuthTest,
    /// `chat.postMessage`
    PostMessage,
    /// `chat.update`
    Update,
    /// `conversations.list`
    ConversationsList,
    /// `conversations.history`
    ConversationsHistory,
    /// `conversations.create`
    ConversationsCreate,
    /// `conversations.invite`
    ConversationsInvite,
    /// `conversations.open`
    ConversationsOpen,
    /// `users.lookupByEmail`
    UsersLookupByEmail,
    /// `users.info`
    UsersInfo,
    /// `views.open`
    ViewsOpen,
    /// `views.update`
    ViewsUpdate,
    /// `chat.postEphemeral`
    PostEphemeral,
    /// `chat.unfurl`
    ChatUnfurl,
    /// `views.publish`
    ViewsPublish,
}

impl SlackMethod {
    const ALL: [SlackMethod; 15] = [
        SlackMethod::AuthTest,
        SlackMethod::PostMessage,
        SlackMethod::Update,
        SlackMethod::ConversationsList,
        SlackMethod::ConversationsHistory,
        SlackMethod::ConversationsCreate,
        SlackMethod::ConversationsInvite,
        SlackMethod::ConversationsOpen,
        SlackMethod::UsersLookupByEmail,
        SlackMethod::UsersInfo,
        SlackMethod::ViewsOpen,
        SlackMethod::ViewsUpdate,
        SlackMethod::PostEphemeral,
        SlackMethod::ChatUnfurl,
        SlackMethod::ViewsPublish,
    ];

    /// The method for a URL segment such as `chat.postMessage`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Slack's name for the method.
    pub fn name(self) -> &'static str {
        match self {
            SlackMethod::AuthTest => "auth.test",
            SlackMethod::PostMessage => "chat.postMessage",
            SlackMethod::Update => "chat.update",
            SlackMethod::ConversationsList => "conversations.list",
            SlackMethod::ConversationsHistory => "conversations.history",
            SlackMethod::ConversationsCreate => "conversations.create",
            SlackMethod::ConversationsInvite => "conversations.invite",
            SlackMethod::ConversationsOpen => "conversations.open",
            SlackMethod::UsersLookupByEmail => "users.lookupByEmail",
            SlackMethod::UsersInfo => "users.info",
            SlackMethod::ViewsOpen => "views.open",
            SlackMethod::ViewsUpdate => "views.update",
            SlackMethod::PostEphemeral => "chat.postEphemeral",
            SlackMethod::ChatUnfurl => "chat.unfurl",
            SlackMethod::ViewsPublish => "views.publish",
        }
    }

    /// Methods that change nothing, which may also be called with GET.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            SlackMethod::AuthTest
                | SlackMethod::ConversationsList
                | SlackMethod::ConversationsHistory
                | SlackMethod::UsersLookupByEmail
                | SlackMethod::UsersInfo
        )
    }

    /// Methods limited per channel.
    pub fn is_chat_write(self) -> bool {
        matches!(self, SlackMethod::PostMessage | SlackMethod::Update)
    }
}

/// A Slack `{"ok":false}` answer: the error code and, for `invalid_blocks`, the details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Slack's `error` code.
    pub code: &'static str,
    /// Lines for `response_metadata.messages`.
    pub messages: Vec<String>,
}

impl ApiError {
    pub(super) fn new(code: &'static str) -> Self {
        ApiError {
            code,
            messages: Vec::new(),
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(err: ParamError) -> Self {
        ApiError {
            code: err.code(),
            messages: vec![format!("[ERROR] {err}")],
        }
    }
}

/// What a method answers: the success body (with `ok: true`) or an error.
pub type MethodResult = Result<Value, ApiError>;

/// What a method may read and change.
pub struct Ctx<'a> {
    /// Channels, users, messages.
    pub workspace: &'a mut Workspace,
    /// Counters beyond plain outcomes (posts, DM posts, updates, posts by name, invites).
    pub stats: &'a mut Stats,
    /// Largest `conversations.list` page (`--page-size`).
    pub page_size: usize,
    /// Current time, Unix epoch microseconds.
    pub now_micros: i64,
    /// Triggers, open modals, ephemeral messages.
    pub interactive: &'a mut Interactive,
}

/// Runs one method whose call already passed auth, limits and fault injection.
pub fn run(method: SlackMethod, p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    match method {
        SlackMethod::AuthTest => Ok(auth_test()),
        SlackMethod::PostMessage => chat::post_message(p, ctx),
        SlackMethod::Update => chat::update(p, ctx),
        SlackMethod::ConversationsList => conversations::conversations_list(p, ctx),
        SlackMethod::ConversationsHistory => history::conversations_history(p, ctx),
        SlackMethod::ConversationsCreate => conversations::conversations_create(p, ctx),
        SlackMethod::ConversationsInvite => conversations::conversations_invite(p, ctx),
        SlackMethod::ConversationsOpen => conversations::conversations_open(p, ctx),
        SlackMethod::UsersLookupByEmail => users::users_lookup_by_email(p, ctx),
        SlackMethod::UsersInfo => interactive::users_info(p, ctx),
        SlackMethod::ViewsOpen => interactive::views_open(p, ctx),
        SlackMethod::ViewsUpdate => interactive::views_update(p, ctx),
        SlackMethod::PostEphemeral => interactive::post_ephemeral(p, ctx),
        SlackMethod::ChatUnfurl => interactive::chat_unfurl(p, ctx),
        SlackMethod::ViewsPublish => interactive::views_publish(p, ctx),
    }
}

fn auth_test() -> Value {
    json!({
        "ok": true,
        "url": "https://emulator.slack.invalid/",
        "team": "Emulated",
        "user": "sfrelay",
        "team_id": "T0EMULATED",
        "user_id": BOT_USER_ID,
        "bot_id": BOT_ID,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in SlackMethod::ALL {
            assert_eq!(SlackMethod::from_name(m.name()), Some(m));
        }
        assert_eq!(SlackMethod::from_name("chat.delete"), None);
        assert!(SlackMethod::ConversationsHistory.is_read());
        assert!(!SlackMethod::ConversationsHistory.is_chat_write());
        assert_eq!(auth_test()["user_id"], BOT_USER_ID);
    }
}
