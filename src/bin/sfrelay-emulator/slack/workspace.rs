//! The emulated Slack workspace: channels, users and the messages posted to them.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

/// The user id the emulated bot token belongs to.
pub const BOT_USER_ID: &str = "U0SFRELAY1";
/// The bot id the emulated bot token belongs to.
pub const BOT_ID: &str = "B0SFRELAY1";
/// Longest channel name Slack accepts.
pub const MAX_CHANNEL_NAME: usize = 80;

/// A conversation the bot may post to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Slack id, e.g. `C0DEALDESK`.
    pub id: String,
    /// Name without `#`.
    pub name: String,
    /// Private channels are only listed when asked for.
    pub is_private: bool,
    /// Archived channels refuse posts.
    pub is_archived: bool,
    /// User ids in the channel; the bot is a member when its id is here.
    pub members: BTreeSet<String>,
}

impl Channel {
    /// A channel the bot has joined.
    pub fn new(id: &str, name: &str, is_private: bool) -> Self {
        Channel {
            id: id.to_owned(),
            name: name.to_owned(),
            is_private,
            is_archived: false,
            members: BTreeSet::from([BOT_USER_ID.to_owned()]),
        }
    }

    /// Whether the bot is in the channel.
    pub fn is_member(&self) -> bool {
        self.members.contains(BOT_USER_ID)
    }

    /// The object `conversations.*` methods answer with.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "is_channel": true,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_member": self.is_member(),
            "num_members": self.members.len(),
        })
    }
}

/// A person the service may look up by e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Slack id, e.g. `U0DANA0001`.
    pub id: String,
    /// Handle, derived from the e-mail's local part unless given.
    pub name: String,
    /// Address `users.lookupByEmail` matches (case-insensitively).
    pub email: String,
}

impl User {
    /// A user whose handle is the local part of the address.
    pub fn new(id: &str, email: &str) -> Self {
        let name = email.split('@').next().unwrap_or(email);
        User {
            id: id.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
        }
    }

    /// The object `users.lookupByEmail` answers with.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "real_name": self.name,
            "is_bot": false,
            "profile": {"email": self.email, "real_name": self.name},
        })
    }
}

/// A message as stored and shown by the control API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    /// Channel id.
    pub channel: String,
    /// Slack timestamp, unique and increasing.
    pub ts: String,
    /// Fallback text ("" when only blocks were sent).
    pub text: String,
    /// Block Kit blocks as posted, parsed to JSON.
    pub blocks: Option<Value>,
    /// Parent message when this is a thread reply.
    pub thread_ts: Option<String>,
    /// Whether `chat.update` replaced it.
    pub updated: bool,
    /// When it was posted (Unix epoch milliseconds).
    pub received_at_ms: i64,
    /// When it was last updated (Unix epoch milliseconds).
    pub updated_at_ms: Option<i64>,
}

/// Channels, users and messages, in the order they were created.
#[derive(Debug, Default)]
pub struct Workspace {
    channels: Vec<Channel>,
    users: Vec<User>,
    messages: Vec<Message>,
    last_ts_micros: i64,
    created_channels: u64,
}

impl Workspace {
    /// A workspace holding the given channels and users.
    pub fn new(channels: Vec<Channel>, users: Vec<User>) -> Self {
        Workspace {
            channels,
            users,
            ..Workspace::default()
        }
    }

    /// The channel with this id.
    pub fn channel(&self, id: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The channel with this id, to change it.
    pub fn channel_mut(&mut self, id: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| c.id == id)
    }

    /// All channels with their members, for the control API.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Whether any channel already has this name.
    pub fn name_taken(&self, name: &str) -> bool {
        self.channels.iter().any(|c| c.name == name)
    }

    /// Creates a channel with a fresh id; the name must already be valid and free.
    pub fn create_channel(&mut self, name: &str, is_private: bool) -> &Channel {
        self.created_channels += 1;
        let id = loop {
            let candidate = format!("C1{:08}", self.created_channels);
            if self.channel(&candidate).is_none() {
                break candidate;
            }
            self.created_channels += 1;
        };
        self.channels.push(Channel::new(&id, name, is_private));
        let index = self.channels.len() - 1;
        &self.channels[index]
    }

    /// Adds a channel, or replaces the one with the same id (keeping its members).
    pub fn upsert_channel(&mut self, mut channel: Channel) {
        match self.channels.iter_mut().find(|c| c.id == channel.id) {
            Some(existing) => {
                channel
                    .members
                    .extend(std::mem::take(&mut existing.members));
                *existing = channel;
            }
            None => self.channels.push(channel),
        }
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// All users, for the control API.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user with this e-mail address, ignoring case like Slack.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// Adds a user, or replaces the one with the same id.
    pub fn upsert_user(&mut self, user: User) {
        match self.users.iter_mut().find(|u| u.id == user.id) {
            Some(existing) => *existing = user,
            None => self.users.push(user),
        }
    }

    /// A fresh message timestamp: the current time in microseconds, bumped so every ts is
    /// strictly greater than the one before (Slack's ts doubles as a message id).
    pub fn next_ts(&mut self, now_micros: i64) -> String {
        self.last_ts_micros = now_micros.max(self.last_ts_micros + 1);
        let secs = self.last_ts_micros.div_euclid(1_000_000);
        let micros = self.last_ts_micros.rem_euclid(1_000_000);
        format!("{secs}.{micros:06}")
    }

    /// Stores a posted message.
    pub fn push_message(&mut self, message: Message) -> &Message {
        self.messages.push(message);
        let index = self.messages.len() - 1;
        &self.messages[index]
    }

    /// The message with this ts in this channel.
    pub fn message(&self, channel: &str, ts: &str) -> Option<&Message> {
        self.messages
            .iter()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    /// The message with this ts in this channel, to update it.
    pub fn message_mut(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
        self.messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
    }

    /// Messages in post order, optionally of one channel only.
    pub fn messages<'a>(&'a self, channel: Option<&'a str>) -> impl Iterator<Item = &'a Message> {
        self.messages
            .iter()
            .filter(move |m| channel.is_none_or(|c| m.channel == c))
    }

    /// Forgets all messages (channels and users stay).
    pub fn clear_messages(&mut self) {
        self.messages.clear();
    }

    /// One page of channels matching `keep`, starting at creation index `start`. Also returns
    /// the index to continue from, if any channel remains; indexes stay valid as channels are
    /// added because new ones are appended.
    pub fn page_channels(
        &self,
        start: usize,
        size: usize,
        keep: impl Fn(&Channel) -> bool,
    ) -> (Vec<&Channel>, Option<usize>) {
        let mut page = Vec::new();
        for (index, channel) in self.channels.iter().enumerate().skip(start) {
            if !keep(channel) {
                continue;
            }
            if page.len() == size {
                return (page, Some(index));
            }
            page.push(channel);
        }
        (page, None)
    }
}

/// Checks a new channel name against Slack's rules, returning Slack's error code.
pub fn validate_channel_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("invalid_name_required");
    }
    if name.chars().count() > MAX_CHANNEL_NAME {
        return Err("invalid_name_maxlength");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
    if !name.chars().all(allowed) {
        return Err("invalid_name_specials");
    }
    if name.chars().all(|c| c == '-' || c == '_') {
        return Err("invalid_name_punctuation");
    }
    Ok(())
}

/// Whether a `channel` argument looks like an id (`C0ABC123`) rather than a name; names are
/// lowercase by Slack's rules, ids are uppercase letters and digits.
pub fn looks_like_id(channel: &str) -> bool {
    !channel.is_empty()
        && channel
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(n: usize) -> Workspace {
        let channels = (0..n)
            .map(|i| Channel::new(&format!("C{i:03}"), &format!("chan-{i}"), i % 3 == 2))
            .collect();
        Workspace::new(channels, vec![User::new("U1", "Dana.Seller@example.com")])
    }

    fn ids(page: &[&Channel]) -> Vec<String> {
        page.iter().map(|c| c.id.clone()).collect()
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_channel_name("deal-desk_2"), Ok(()));
        assert_eq!(validate_channel_name(&"a".repeat(80)), Ok(()));
        assert_eq!(validate_channel_name(""), Err("invalid_name_required"));
        assert_eq!(
            validate_channel_name(&"a".repeat(81)),
            Err("invalid_name_maxlength")
        );
        assert_eq!(
            validate_channel_name(&"é".repeat(80)),
            Err("invalid_name_specials")
        );
        for bad in ["Deal", "deal desk", "#deal", "deal.desk", "dèal"] {
            assert_eq!(
                validate_channel_name(bad),
                Err("invalid_name_specials"),
                "{bad}"
            );
        }
        assert_eq!(validate_channel_name("--"), Err("invalid_name_punctuation"));
    }

    #[test]
    fn tells_ids_from_names() {
        assert!(looks_like_id("C0DEALDESK"));
        assert!(!looks_like_id("#deal-desk"));
        assert!(!looks_like_id("deal-desk"));
        assert!(!looks_like_id("general"));
        assert!(!looks_like_id(""));
    }

    #[test]
    fn pages_through_all_channels() {
        let ws = workspace(7);
        let (page, next) = ws.page_channels(0, 3, |_| true);
        assert_eq!(ids(&page), ["C000", "C001", "C002"]);
        assert_eq!(next, Some(3));
        let (page, next) = ws.page_channels(3, 3, |_| true);
        assert_eq!(ids(&page), ["C003", "C004", "C005"]);
        let (page, next) = ws.page_channels(next.unwrap_or(0), 3, |_| true);
        assert_eq!(ids(&page), ["C006"]);
        assert_eq!(next, None);
        let (page, next) = ws.page_channels(99, 3, |_| true);
        assert!(page.is_empty() && next.is_none());
    }

    #[test]
    fn pages_with_a_filter_and_exact_fit() {
        let ws = workspace(6);
        let public = |c: &Channel| !c.is_private;
        let (page, next) = ws.page_channels(0, 2, public);
        assert_eq!(ids(&page), ["C000", "C001"]);
        assert_eq!(next, Some(3));
        let (page, next) = ws.page_channels(3, 2, public);
        assert_eq!(ids(&page), ["C003", "C004"]);
        assert_eq!(next, None, "no public channel left after C004");
    }

    #[test]
    fn timestamps_are_unique_and_increasing() {
        let mut ws = workspace(0);
        assert_eq!(ws.next_ts(1_700_000_000_000_100), "1700000000.000100");
        assert_eq!(ws.next_ts(1_700_000_000_000_100), "1700000000.000101");
        assert_eq!(ws.next_ts(1_600_000_000_000_000), "1700000000.000102");
        assert_eq!(ws.next_ts(1_700_000_001_000_000), "1700000001.000000");
    }

    #[test]
    fn creates_channels_with_fresh_ids_and_finds_users() {
        let mut ws = workspace(1);
        let id = ws.create_channel("new-one", false).id.clone();
        assert!(looks_like_id(&id));
        assert!(ws.channel(&id).is_some_and(Channel::is_member));
        assert!(ws.name_taken("new-one"));
        assert_ne!(ws.create_channel("other", true).id, id);
        assert_eq!(
            ws.user_by_email("dana.seller@EXAMPLE.com")
                .map(|u| u.name.as_str()),
            Some("Dana.Seller")
        );
    }
}
