//! The emulated Slack workspace: channels, users, the bot's direct messages with users, and
//! the messages posted to them.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};

/// The user id the emulated bot token belongs to.
pub const BOT_USER_ID: &str = "U0SFRELAY1";
/// The bot id the emulated bot token belongs to.
pub const BOT_ID: &str = "B0SFRELAY1";
/// The emulated workspace's team id (what `auth.test` reports).
pub const TEAM_ID: &str = "T0EMULATED";
/// The emulated workspace's domain (`<domain>.slack.com`).
pub const TEAM_DOMAIN: &str = "emulated";
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
    /// Address `users.lookupByEmail` matches (case-insensitively); empty when the user has
    /// none (`users.info` then shows no `profile.email`).
    pub email: String,
    /// A deactivated account (`users.info` says `deleted: true`).
    pub deleted: bool,
    /// A bot user rather than a person.
    pub is_bot: bool,
}

impl User {
    /// A user whose handle is the local part of the address.
    pub fn new(id: &str, email: &str) -> Self {
        let name = email.split('@').next().unwrap_or(email);
        User {
            id: id.to_owned(),
            name: name.to_owned(),
            email: email.to_owned(),
            deleted: false,
            is_bot: false,
        }
    }

    /// The object `users.lookupByEmail` and `users.info` answer with; `profile.email` only
    /// when the user has an address.
    pub fn to_json(&self) -> Value {
        let mut profile = json!({"real_name": self.name, "display_name": self.name});
        if !self.email.is_empty() {
            profile["email"] = self.email.clone().into();
        }
        json!({
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "profile": profile,
        })
    }
}

/// A direct-message conversation (`im`) between the bot and one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dm {
    /// Slack id, e.g. `D0DANA0001`.
    pub id: String,
    /// The user at the other end.
    pub user: String,
}

impl Dm {
    /// The object `conversations.open` answers with.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "is_im": true,
            "user": self.user,
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
    /// Message metadata (`{"event_type": …, "event_payload": {…}}`), null when none.
    pub metadata: Option<Value>,
    /// Whether `chat.update` replaced it.
    pub updated: bool,
    /// When it was posted (Unix epoch milliseconds).
    pub received_at_ms: i64,
    /// When it was last updated (Unix epoch milliseconds).
    pub updated_at_ms: Option<i64>,
}

/// Channels, users, DMs and messages, in the order they were created.
#[derive(Debug, Default)]
pub struct Workspace {
    channels: Vec<Channel>,
    users: Vec<User>,
    dms: Vec<Dm>,
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

    /// The user with this e-mail address, ignoring case like Slack (non-ASCII letters too).
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        let wanted = email.to_lowercase();
        self.users
            .iter()
            .find(|u| !u.email.is_empty() && u.email.to_lowercase() == wanted)
    }

    /// Adds a user, or replaces the one with the same id.
    pub fn upsert_user(&mut self, user: User) {
        match self.users.iter_mut().find(|u| u.id == user.id) {
            Some(existing) => *existing = user,
            None => self.users.push(user),
        }
    }

    /// The DM with this id.
    pub fn dm(&self, id: &str) -> Option<&Dm> {
        self.dms.iter().find(|d| d.id == id)
    }

    /// The bot's DM with this user, if it was opened.
    pub fn dm_with(&self, user: &str) -> Option<&Dm> {
        self.dms.iter().find(|d| d.user == user)
    }

    /// All opened DMs in the order they were opened, for the control API.
    pub fn dms(&self) -> &[Dm] {
        &self.dms
    }

    /// Whether a channel or a DM already has this id.
    pub fn id_taken(&self, id: &str) -> bool {
        self.channel(id).is_some() || self.dm(id).is_some()
    }

    /// The id of the bot's DM with `user`: the open one's, or the one [`Self::open_dm`] would
    /// give it now. A user `U0DANA0001` (or `W0DANA0001`) gets `D0DANA0001`, so ids are
    /// predictable across runs; on a clash with another id, a fresh `D1nnnnnnnn` is used.
    pub fn dm_id_for(&self, user: &str) -> String {
        if let Some(dm) = self.dm_with(user) {
            return dm.id.clone();
        }
        let derived = match user.strip_prefix(['U', 'W']) {
            Some(rest) if !rest.is_empty() => format!("D{rest}"),
            _ => format!("D{user}"),
        };
        if !self.id_taken(&derived) {
            return derived;
        }
        let mut n = self.dms.len() as u64;
        loop {
            n += 1;
            let candidate = format!("D1{n:08}");
            if !self.id_taken(&candidate) {
                return candidate;
            }
        }
    }

    /// Opens the bot's DM with `user` (who must exist), or finds the open one; also says
    /// whether it was opened just now.
    pub fn open_dm(&mut self, user: &str) -> (&Dm, bool) {
        if let Some(index) = self.dms.iter().position(|d| d.user == user) {
            return (&self.dms[index], false);
        }
        let id = self.dm_id_for(user);
        self.dms.push(Dm {
            id,
            user: user.to_owned(),
        });
        let index = self.dms.len() - 1;
        (&self.dms[index], true)
    }

    /// The conversation a `channel` argument stands for, as rate limits key it: the argument
    /// itself, except that a user's id (not also a channel's or DM's) stands for the bot's DM
    /// with that user, which is where Slack posts it.
    pub fn conversation_key(&self, channel: &str) -> String {
        if !self.id_taken(channel) && self.user(channel).is_some() {
            self.dm_id_for(channel)
        } else {
            channel.to_owned()
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

    /// Deletes the message with this ts in this channel; whether there was one.
    pub fn remove_message(&mut self, channel: &str, ts: &str) -> bool {
        let before = self.messages.len();
        self.messages
            .retain(|m| !(m.channel == channel && m.ts == ts));
        self.messages.len() != before
    }

    /// Messages in post order, optionally of one channel only.
    pub fn messages<'a>(&'a self, channel: Option<&'a str>) -> impl Iterator<Item = &'a Message> {
        self.messages
            .iter()
            .filter(move |m| channel.is_none_or(|c| m.channel == c))
    }

    /// Forgets all messages (channels, users and DMs stay).
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

/// Reads a Slack timestamp such as `1700000000.000100` (or `1700000000`, or with fewer than six
/// fraction digits) as Unix epoch microseconds; `None` when it is not one.
pub fn parse_ts(ts: &str) -> Option<i64> {
    let ts = ts.trim();
    let (secs, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let micros: i64 = format!("{fraction:0<6}").parse().ok()?;
    secs.parse::<i64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(micros)
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
    fn reads_slack_timestamps() {
        assert_eq!(parse_ts("1700000000.000100"), Some(1_700_000_000_000_100));
        assert_eq!(parse_ts(" 1700000000.1 "), Some(1_700_000_000_100_000));
        assert_eq!(parse_ts("1700000000."), Some(1_700_000_000_000_000));
        assert_eq!(parse_ts("1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(parse_ts("0"), Some(0));
        for bad in [
            "",
            ".5",
            "-1",
            "1.-5",
            "1.0000001",
            "1e9",
            "abc",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
        let mut ws = workspace(0);
        let ts = ws.next_ts(1_700_000_000_000_042);
        assert_eq!(parse_ts(&ts), Some(1_700_000_000_000_042));
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

    #[test]
    fn matches_emails_ignoring_case_even_beyond_ascii() {
        let mut ws = workspace(0);
        ws.upsert_user(User::new("U2", "Élodie.Dupont@Example.com"));
        for email in [
            "élodie.dupont@example.com",
            "ÉLODIE.DUPONT@EXAMPLE.COM",
            "Élodie.Dupont@Example.com",
        ] {
            assert_eq!(ws.user_by_email(email).map(|u| u.id.as_str()), Some("U2"));
        }
        assert!(ws.user_by_email("elodie.dupont@example.com").is_none());
        assert!(ws.user_by_email("dana.seller@example.co").is_none());
    }

    #[test]
    fn opens_one_dm_per_user_with_predictable_ids() {
        let mut ws = Workspace::new(
            vec![Channel::new("D0CLASH001", "clash", false)],
            vec![
                User::new("U0DANA0001", "dana.seller@example.com"),
                User::new("W0CLASH001", "clash@example.com"),
            ],
        );
        assert_eq!(ws.dm_id_for("U0DANA0001"), "D0DANA0001");
        assert_eq!(ws.conversation_key("U0DANA0001"), "D0DANA0001");
        assert!(ws.dms().is_empty(), "looking ahead opens nothing");

        let (dm, opened) = ws.open_dm("U0DANA0001");
        assert_eq!(
            (dm.id.as_str(), dm.user.as_str(), opened),
            ("D0DANA0001", "U0DANA0001", true)
        );
        let (dm, opened) = ws.open_dm("U0DANA0001");
        assert_eq!((dm.id.as_str(), opened), ("D0DANA0001", false));
        assert_eq!(
            ws.dm("D0DANA0001").map(|d| d.user.as_str()),
            Some("U0DANA0001")
        );
        assert_eq!(
            ws.dm_with("U0DANA0001").map(|d| d.id.as_str()),
            Some("D0DANA0001")
        );

        let predicted = ws.dm_id_for("W0CLASH001");
        assert_ne!(predicted, "D0CLASH001", "a channel already has that id");
        assert!(looks_like_id(&predicted) && predicted.starts_with('D'));
        assert_eq!(ws.open_dm("W0CLASH001").0.id, predicted);
        assert_eq!(ws.dms().len(), 2);

        assert_eq!(ws.conversation_key("D0DANA0001"), "D0DANA0001");
        assert_eq!(ws.conversation_key("D0CLASH001"), "D0CLASH001");
        assert_eq!(ws.conversation_key("U0GHOST001"), "U0GHOST001");
        assert_eq!(ws.conversation_key("#deal-desk"), "#deal-desk");
        ws.clear_messages();
        assert_eq!(ws.dms().len(), 2, "DMs outlive a reset");
    }
}
