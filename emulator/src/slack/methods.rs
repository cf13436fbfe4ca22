//! The Slack Web API methods the service uses, each answering like real Slack would.

use std::cmp::Reverse;
use std::collections::HashSet;

use serde_json::{Value, json};

use super::blocks;
use super::interactive::{self, Interactive};
use super::journal::Stats;
use super::workspace::{
    BOT_ID, BOT_USER_ID, Channel, Message, Workspace, looks_like_id, parse_ts,
    validate_channel_name,
};
use crate::params::{ParamError, Params};

/// Longest `text` Slack takes in one message.
pub const MAX_MESSAGE_TEXT: usize = 40_000;
/// Most user ids `conversations.invite` takes in one call.
pub const MAX_INVITE_USERS: usize = 1000;
/// Most user ids `conversations.open` takes in one call (a multi-person DM).
pub const MAX_OPEN_USERS: usize = 8;
/// `limit` used by `conversations.list` when none is given.
const DEFAULT_LIST_LIMIT: u64 = 100;
/// Prefix of the opaque `conversations.list` cursor.
const CURSOR_PREFIX: &str = "next:";
/// `limit` used by `conversations.history` when none is given.
const DEFAULT_HISTORY_LIMIT: u64 = 100;
/// Largest `conversations.history` page; bigger `limit`s are cut down to it, like Slack.
pub const MAX_HISTORY_LIMIT: u64 = 999;
/// Prefix of the opaque `conversations.history` cursor; the ts of the next message follows.
const HISTORY_CURSOR_PREFIX: &str = "next_ts:";

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
}

impl SlackMethod {
    const ALL: [SlackMethod; 13] = [
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
        SlackMethod::PostMessage => post_message(p, ctx),
        SlackMethod::Update => update(p, ctx),
        SlackMethod::ConversationsList => conversations_list(p, ctx),
        SlackMethod::ConversationsHistory => conversations_history(p, ctx),
        SlackMethod::ConversationsCreate => conversations_create(p, ctx),
        SlackMethod::ConversationsInvite => conversations_invite(p, ctx),
        SlackMethod::ConversationsOpen => conversations_open(p, ctx),
        SlackMethod::UsersLookupByEmail => users_lookup_by_email(p, ctx),
        SlackMethod::UsersInfo => interactive::users_info(p, ctx),
        SlackMethod::ViewsOpen => interactive::views_open(p, ctx),
        SlackMethod::ViewsUpdate => interactive::views_update(p, ctx),
        SlackMethod::PostEphemeral => interactive::post_ephemeral(p, ctx),
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

fn post_message(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let target = postable_channel(p, ctx, true)?;
    let channel = target.id;
    let (text, blocks) = content(p)?;
    let metadata = metadata(p)?;
    let thread_ts = p.str("thread_ts")?.filter(|t| !t.is_empty());
    if let Some(parent) = thread_ts
        && ctx.workspace.message(&channel, parent).is_none()
    {
        return Err(ApiError::new("thread_not_found"));
    }
    if let Some(user) = &target.dm_user {
        ctx.stats.dm_posts += 1;
        if target.by_user_id {
            ctx.stats.posts_to_user_id += 1;
            ctx.workspace.open_dm(user);
        }
    }
    let ts = ctx.workspace.next_ts(ctx.now_micros);
    let message = ctx.workspace.push_message(Message {
        channel,
        ts,
        text,
        blocks,
        thread_ts: thread_ts.map(str::to_owned),
        metadata,
        updated: false,
        received_at_ms: ctx.now_micros / 1000,
        updated_at_ms: None,
    });
    ctx.stats.posts += 1;
    Ok(json!({
        "ok": true,
        "channel": message.channel,
        "ts": message.ts,
        "message": message_json(message),
    }))
}

fn update(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let channel = postable_channel(p, ctx, false)?.id;
    let ts = p.str("ts")?.unwrap_or_default();
    if ctx.workspace.message(&channel, ts).is_none() {
        return Err(ApiError::new("message_not_found"));
    }
    let (text, blocks) = content(p)?;
    let metadata = metadata(p)?;
    let message = ctx
        .workspace
        .message_mut(&channel, ts)
        .ok_or(ApiError::new("message_not_found"))?;
    message.text = text;
    message.blocks = blocks;
    if metadata.is_some() {
        message.metadata = metadata;
    }
    message.updated = true;
    message.updated_at_ms = Some(ctx.now_micros / 1000);
    ctx.stats.updates += 1;
    Ok(json!({
        "ok": true,
        "channel": message.channel,
        "ts": message.ts,
        "text": message.text,
        "message": message_json(message),
    }))
}

/// Where a `chat.*` call lands.
struct Target {
    /// The conversation id the message is stored under (`C…`, `G…` or `D…`).
    id: String,
    /// The user at the other end when it is the bot's DM with them.
    dm_user: Option<String>,
    /// Whether the call named the user's id rather than the DM's; the DM, if not open yet,
    /// is opened once the post succeeds.
    by_user_id: bool,
}

/// The `channel` of a `chat.*` call, which must be the id of a channel the bot can post in or
/// of a DM it opened. Names (`#deal-desk` or `deal-desk`) are refused and counted: the service
/// must use ids. With `user_ids`, a user's id also works and lands in the bot's DM with them,
/// as `chat.postMessage` does in Slack; `chat.update` needs the `D…` id, like in Slack.
fn postable_channel(p: &Params, ctx: &mut Ctx<'_>, user_ids: bool) -> Result<Target, ApiError> {
    let channel = p.str("channel")?.unwrap_or_default();
    if channel.is_empty() {
        return Err(ApiError::new("channel_not_found"));
    }
    if !looks_like_id(channel) {
        ctx.stats.posts_by_name += 1;
        return Err(ApiError::new("channel_not_found"));
    }
    if let Some(found) = ctx.workspace.channel(channel) {
        if found.is_archived {
            return Err(ApiError::new("is_archived"));
        }
        if !found.is_member() {
            return Err(ApiError::new("not_in_channel"));
        }
        return Ok(Target {
            id: found.id.clone(),
            dm_user: None,
            by_user_id: false,
        });
    }
    if let Some(dm) = ctx.workspace.dm(channel) {
        return Ok(Target {
            id: dm.id.clone(),
            dm_user: Some(dm.user.clone()),
            by_user_id: false,
        });
    }
    if user_ids && ctx.workspace.user(channel).is_some() {
        return Ok(Target {
            id: ctx.workspace.dm_id_for(channel),
            dm_user: Some(channel.to_owned()),
            by_user_id: true,
        });
    }
    Err(ApiError::new("channel_not_found"))
}

/// The `text` and `blocks` of a `chat.*` call, checked against Slack's limits.
pub(super) fn content(p: &Params) -> Result<(String, Option<Value>), ApiError> {
    let text = p.str("text")?.unwrap_or_default();
    if text.chars().count() > MAX_MESSAGE_TEXT {
        return Err(ApiError::new("msg_too_long"));
    }
    let blocks = match p.value("blocks") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(raw) => {
            let parsed = blocks::parse(raw)
                .and_then(|b| blocks::validate(&b).map(|()| b))
                .map_err(|err| ApiError {
                    code: "invalid_blocks",
                    messages: vec![err.to_slack_message()],
                })?;
            Some(Value::Array(parsed))
        }
    };
    let has_blocks = blocks
        .as_ref()
        .and_then(Value::as_array)
        .is_some_and(|b| !b.is_empty());
    if text.is_empty() && !has_blocks {
        return Err(ApiError::new("no_text"));
    }
    Ok((text.to_owned(), blocks))
}

/// The `metadata` of a `chat.*` call: `{"event_type": "…", "event_payload": {…}}` as a JSON
/// object, or a string holding one (as form posts send); absent or blank means none. Anything
/// that is not an object is `invalid_metadata_format`; an object breaking the schema (an
/// `event_type` of letters, digits, `_` and `.`, an object `event_payload`) is
/// `invalid_metadata_schema`. Only those two fields are kept.
fn metadata(p: &Params) -> Result<Option<Value>, ApiError> {
    let parsed;
    let value = match p.value("metadata") {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| ApiError::new("invalid_metadata_format"))?;
            &parsed
        }
        Some(other) => other,
    };
    let Value::Object(fields) = value else {
        return Err(ApiError::new("invalid_metadata_format"));
    };
    let event_type = fields
        .get("event_type")
        .and_then(Value::as_str)
        .filter(|t| is_event_type(t));
    let event_payload = fields.get("event_payload").filter(|p| p.is_object());
    match (event_type, event_payload) {
        (Some(event_type), Some(event_payload)) => Ok(Some(json!({
            "event_type": event_type,
            "event_payload": event_payload,
        }))),
        _ => Err(ApiError::new("invalid_metadata_schema")),
    }
}

/// Whether a metadata `event_type` is a non-empty run of ASCII letters, digits, `_` and `.`.
fn is_event_type(event_type: &str) -> bool {
    !event_type.is_empty()
        && event_type
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn message_json(message: &Message) -> Value {
    let mut out = json!({
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "text": message.text,
        "ts": message.ts,
    });
    if let Some(obj) = out.as_object_mut() {
        if let Some(blocks) = &message.blocks {
            obj.insert("blocks".into(), blocks.clone());
        }
        if let Some(thread_ts) = &message.thread_ts {
            obj.insert("thread_ts".into(), thread_ts.clone().into());
        }
        if let Some(metadata) = &message.metadata {
            obj.insert("metadata".into(), metadata.clone());
        }
    }
    out
}

fn conversations_list(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let types = p.str("types")?.unwrap_or("public_channel");
    let wanted = |t: &str| types.split(',').any(|x| x.trim() == t);
    let (public, private) = (wanted("public_channel"), wanted("private_channel"));
    let exclude_archived = p.bool("exclude_archived")?.unwrap_or(false);
    let limit = match p.u64("limit")? {
        None | Some(0) => DEFAULT_LIST_LIMIT,
        Some(n) => n,
    };
    let size = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .min(ctx.page_size)
        .max(1);
    let start = decode_cursor(p.str("cursor")?.unwrap_or_default())?;

    let keep = |c: &Channel| {
        (if c.is_private { private } else { public }) && !(exclude_archived && c.is_archived)
    };
    let (page, next) = ctx.workspace.page_channels(start, size, keep);
    Ok(json!({
        "ok": true,
        "channels": page.iter().map(|c| c.to_json()).collect::<Vec<_>>(),
        "response_metadata": {
            "next_cursor": next.map(|n| format!("{CURSOR_PREFIX}{n}")).unwrap_or_default(),
        },
    }))
}

/// An empty cursor starts at the beginning; anything not made by us is `invalid_cursor`.
fn decode_cursor(cursor: &str) -> Result<usize, ApiError> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|n| n.parse().ok())
        .ok_or(ApiError::new("invalid_cursor"))
}

/// The top-level messages (thread replies left out) of a channel the bot is in or a DM it
/// opened, newest first, between `oldest` and `latest` (exclusive unless `inclusive`), in
/// pages of `limit` followed with `cursor`.
fn conversations_history(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let channel = readable_conversation(p, ctx)?;
    let limit = match p.u64("limit")? {
        None | Some(0) => DEFAULT_HISTORY_LIMIT,
        Some(n) => n.min(MAX_HISTORY_LIMIT),
    };
    let size = usize::try_from(limit).unwrap_or(usize::MAX);
    let oldest = ts_arg(p, "oldest", "invalid_ts_oldest")?;
    let latest = ts_arg(p, "latest", "invalid_ts_latest")?;
    let inclusive = p.bool("inclusive")?.unwrap_or(false);
    let with_metadata = p.bool("include_all_metadata")?.unwrap_or(false);
    let from = decode_history_cursor(p.str("cursor")?.unwrap_or_default())?;

    let in_range = |ts: i64| {
        let after_oldest = oldest.is_none_or(|o| if inclusive { ts >= o } else { ts > o });
        let before_latest = latest.is_none_or(|l| if inclusive { ts <= l } else { ts < l });
        after_oldest && before_latest && from.is_none_or(|f| ts <= f)
    };
    let parents: HashSet<&str> = ctx
        .workspace
        .messages(Some(&channel))
        .filter_map(|m| m.thread_ts.as_deref())
        .collect();
    let mut found: Vec<(i64, &Message)> = ctx
        .workspace
        .messages(Some(&channel))
        .filter(|m| m.thread_ts.is_none())
        .filter_map(|m| parse_ts(&m.ts).map(|ts| (ts, m)))
        .filter(|(ts, _)| in_range(*ts))
        .collect();
    found.sort_by_key(|(ts, _)| Reverse(*ts));
    let next = found
        .get(size)
        .map(|(_, m)| format!("{HISTORY_CURSOR_PREFIX}{}", m.ts));
    let page: Vec<Value> = found
        .iter()
        .take(size)
        .map(|(_, m)| history_json(m, parents.contains(m.ts.as_str()), with_metadata))
        .collect();
    Ok(json!({
        "ok": true,
        "messages": page,
        "has_more": next.is_some(),
        "response_metadata": {"next_cursor": next.unwrap_or_default()},
    }))
}

/// The `channel` of a read: a channel the bot is in (a public one it is not in is
/// `not_in_channel`; a private one it cannot see) or a DM it opened.
fn readable_conversation(p: &Params, ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let channel = p.str("channel")?.unwrap_or_default();
    if let Some(found) = ctx.workspace.channel(channel) {
        return match (found.is_member(), found.is_private) {
            (true, _) => Ok(found.id.clone()),
            (false, false) => Err(ApiError::new("not_in_channel")),
            (false, true) => Err(ApiError::new("channel_not_found")),
        };
    }
    ctx.workspace
        .dm(channel)
        .map(|dm| dm.id.clone())
        .ok_or(ApiError::new("channel_not_found"))
}

/// A Slack timestamp argument (`oldest`, `latest`) in microseconds; blank means none, anything
/// unreadable is the given error.
fn ts_arg(p: &Params, key: &str, code: &'static str) -> Result<Option<i64>, ApiError> {
    let raw = match p.value(key) {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(ApiError::new(code)),
    };
    parse_ts(&raw).map(Some).ok_or(ApiError::new(code))
}

/// An empty cursor starts at the newest message; anything not made by us is `invalid_cursor`.
fn decode_history_cursor(cursor: &str) -> Result<Option<i64>, ApiError> {
    if cursor.is_empty() {
        return Ok(None);
    }
    cursor
        .strip_prefix(HISTORY_CURSOR_PREFIX)
        .and_then(parse_ts)
        .map(Some)
        .ok_or(ApiError::new("invalid_cursor"))
}

/// A message as `conversations.history` shows it: `thread_ts` only on thread parents (equal to
/// their own ts, like Slack), `metadata` only when asked for and present.
fn history_json(message: &Message, has_replies: bool, with_metadata: bool) -> Value {
    let mut out = json!({
        "type": "message",
        "ts": message.ts,
        "text": message.text,
        "blocks": message.blocks.clone().unwrap_or_else(|| json!([])),
        "bot_id": BOT_ID,
    });
    if let Some(obj) = out.as_object_mut() {
        if has_replies {
            obj.insert("thread_ts".into(), message.ts.clone().into());
        }
        if with_metadata && let Some(metadata) = &message.metadata {
            obj.insert("metadata".into(), metadata.clone());
        }
    }
    out
}

fn conversations_create(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let name = p.str("name")?.unwrap_or_default();
    validate_channel_name(name).map_err(ApiError::new)?;
    if ctx.workspace.name_taken(name) {
        return Err(ApiError::new("name_taken"));
    }
    let is_private = p.bool("is_private")?.unwrap_or(false);
    let channel = ctx.workspace.create_channel(name, is_private);
    Ok(json!({"ok": true, "channel": channel.to_json()}))
}

fn conversations_invite(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let users: Vec<&str> = p
        .str("users")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let count = users.len() as u64;
    ctx.stats.invited_users += count;
    ctx.stats.max_invite_batch = ctx.stats.max_invite_batch.max(count);

    let channel_id = p.str("channel")?.unwrap_or_default();
    let channel = ctx
        .workspace
        .channel(channel_id)
        .ok_or(ApiError::new("channel_not_found"))?;
    if !channel.is_member() {
        return Err(ApiError::new("not_in_channel"));
    }
    if users.is_empty() {
        return Err(ApiError::new("no_user"));
    }
    if users.len() > MAX_INVITE_USERS {
        return Err(ApiError::new("too_many_users"));
    }
    if users.contains(&BOT_USER_ID) {
        return Err(ApiError::new("cant_invite_self"));
    }
    if users.iter().any(|u| ctx.workspace.user(u).is_none()) {
        return Err(ApiError::new("user_not_found"));
    }
    if users.iter().all(|u| channel.members.contains(*u)) {
        return Err(ApiError::new("already_in_channel"));
    }
    let channel = ctx
        .workspace
        .channel_mut(channel_id)
        .ok_or(ApiError::new("channel_not_found"))?;
    channel
        .members
        .extend(users.iter().map(|u| (*u).to_owned()));
    Ok(json!({"ok": true, "channel": channel.to_json()}))
}

/// Opens (or finds) the bot's 1:1 DM with the one user in `users`, or resumes the DM whose id
/// is `channel`. Multi-person DMs are not emulated.
fn conversations_open(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let users: Vec<&str> = p
        .str("users")?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let (dm, opened) = match users.as_slice() {
        [] => {
            let channel = p.str("channel")?.unwrap_or_default();
            if channel.is_empty() {
                return Err(ApiError::new("users_list_not_supplied"));
            }
            let dm = ctx
                .workspace
                .dm(channel)
                .ok_or(ApiError::new("channel_not_found"))?;
            (dm, false)
        }
        [user] => {
            if ctx.workspace.user(user).is_none() {
                return Err(ApiError::new("user_not_found"));
            }
            ctx.workspace.open_dm(user)
        }
        many => {
            if many.len() > MAX_OPEN_USERS {
                return Err(ApiError::new("too_many_users"));
            }
            if many.iter().any(|u| ctx.workspace.user(u).is_none()) {
                return Err(ApiError::new("user_not_found"));
            }
            return Err(ApiError::new("not_implemented"));
        }
    };
    let mut out = json!({"ok": true, "channel": dm.to_json()});
    if !opened {
        out["no_op"] = true.into();
        out["already_open"] = true.into();
    }
    Ok(out)
}

fn users_lookup_by_email(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let email = p.str("email")?.unwrap_or_default();
    if email.is_empty() {
        return Err(ApiError::new("invalid_arguments"));
    }
    ctx.workspace
        .user_by_email(email)
        .map(|u| json!({"ok": true, "user": u.to_json()}))
        .ok_or(ApiError::new("users_not_found"))
}

#[cfg(test)]
mod tests {
    use super::super::workspace::User;
    use super::*;

    fn ws() -> Workspace {
        let mut archived = Channel::new("C0ARCHIVED", "old", false);
        archived.is_archived = true;
        let mut outside = Channel::new("C0OUTSIDE1", "outside", false);
        outside.members.clear();
        Workspace::new(
            vec![
                Channel::new("C0DEALDESK", "deal-desk", false),
                Channel::new("C0SECRET01", "secret", true),
                archived,
                outside,
            ],
            vec![
                User::new("U0DANA0001", "dana.seller@example.com"),
                User::new("U0SAM00001", "sam.engineer@example.com"),
            ],
        )
    }

    fn call(
        ws: &mut Workspace,
        stats: &mut Stats,
        method: SlackMethod,
        args: Value,
    ) -> MethodResult {
        let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
            .map_err(ApiError::from)?;
        let mut interactive = Interactive::default();
        let mut ctx = Ctx {
            workspace: ws,
            stats,
            page_size: 2,
            now_micros: 1_700_000_000_000_000,
            interactive: &mut interactive,
        };
        run(method, &params, &mut ctx)
    }

    fn code(r: MethodResult) -> &'static str {
        r.err().map_or("ok", |e| e.code)
    }

    #[test]
    fn posts_only_by_id() {
        let (mut w, mut s) = (ws(), Stats::default());
        let post = SlackMethod::PostMessage;
        for name in ["#deal-desk", "deal-desk"] {
            assert_eq!(
                code(call(
                    &mut w,
                    &mut s,
                    post,
                    json!({"channel": name, "text": "x"})
                )),
                "channel_not_found"
            );
        }
        assert_eq!(s.posts_by_name, 2);
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                post,
                json!({"channel": "C0NOPE", "text": "x"})
            )),
            "channel_not_found"
        );
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                post,
                json!({"channel": "C0ARCHIVED", "text": "x"})
            )),
            "is_archived"
        );
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                post,
                json!({"channel": "C0OUTSIDE1", "text": "x"})
            )),
            "not_in_channel"
        );
        assert_eq!(
            code(call(&mut w, &mut s, post, json!({"channel": "C0DEALDESK"}))),
            "no_text"
        );
        let long = "é".repeat(MAX_MESSAGE_TEXT + 1);
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                post,
                json!({"channel": "C0DEALDESK", "text": long})
            )),
            "msg_too_long"
        );
        let bad = json!({"channel": "C0DEALDESK", "blocks": [{"type": "nope"}]});
        let err = call(&mut w, &mut s, post, bad).unwrap_err();
        assert_eq!(err.code, "invalid_blocks");
        assert!(err.messages[0].contains("/blocks/0/type"), "{err:?}");
        assert_eq!(s.posts, 0);
        assert_eq!(w.messages(None).count(), 0);
    }

    #[test]
    fn posts_threads_and_updates() {
        let (mut w, mut s) = (ws(), Stats::default());
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);
        let ok = call(
            &mut w,
            &mut s,
            SlackMethod::PostMessage,
            json!({"channel": "C0DEALDESK", "blocks": blocks.to_string()}),
        )
        .unwrap();
        let ts = ok["ts"].as_str().unwrap().to_owned();
        assert_eq!(ok["message"]["blocks"], blocks);

        let reply = json!({"channel": "C0DEALDESK", "text": "r", "thread_ts": ts});
        assert_eq!(
            code(call(&mut w, &mut s, SlackMethod::PostMessage, reply)),
            "ok"
        );
        let orphan = json!({"channel": "C0DEALDESK", "text": "r", "thread_ts": "1.000001"});
        assert_eq!(
            code(call(&mut w, &mut s, SlackMethod::PostMessage, orphan)),
            "thread_not_found"
        );

        let missing = json!({"channel": "C0DEALDESK", "ts": "1.000001", "text": "u"});
        assert_eq!(
            code(call(&mut w, &mut s, SlackMethod::Update, missing)),
            "message_not_found"
        );
        let upd = json!({"channel": "C0DEALDESK", "ts": ts, "text": "updated"});
        assert_eq!(code(call(&mut w, &mut s, SlackMethod::Update, upd)), "ok");
        let stored: Vec<_> = w.messages(Some("C0DEALDESK")).collect();
        assert_eq!(stored.len(), 2);
        assert!(stored[0].updated && stored[0].text == "updated" && stored[0].blocks.is_none());
        assert_eq!(stored[1].thread_ts.as_deref(), Some(ts.as_str()));
        assert!(stored[0].ts < stored[1].ts);
        assert_eq!((s.posts, s.updates), (2, 1));
    }

    #[test]
    fn lists_in_pages() {
        let (mut w, mut s) = (ws(), Stats::default());
        let list = SlackMethod::ConversationsList;
        let first = call(
            &mut w,
            &mut s,
            list,
            json!({"types": "public_channel,private_channel", "limit": 3}),
        )
        .unwrap();
        assert_eq!(
            first["channels"].as_array().map(Vec::len),
            Some(2),
            "page size caps limit"
        );
        let cursor = first["response_metadata"]["next_cursor"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!cursor.is_empty());
        let second = call(
            &mut w,
            &mut s,
            list,
            json!({"types": "public_channel,private_channel", "cursor": cursor}),
        )
        .unwrap();
        assert_eq!(second["channels"].as_array().map(Vec::len), Some(2));
        assert_eq!(second["response_metadata"]["next_cursor"], "");

        let public = call(
            &mut w,
            &mut s,
            list,
            json!({"exclude_archived": true, "limit": 1}),
        )
        .unwrap();
        assert_eq!(public["channels"][0]["id"], "C0DEALDESK");
        let next = public["response_metadata"]["next_cursor"].clone();
        let rest = call(
            &mut w,
            &mut s,
            list,
            json!({"exclude_archived": "true", "cursor": next}),
        )
        .unwrap();
        assert_eq!(rest["channels"][0]["id"], "C0OUTSIDE1");
        assert_eq!(rest["channels"][0]["is_member"], false);
        assert_eq!(rest["response_metadata"]["next_cursor"], "");
        assert_eq!(
            code(call(&mut w, &mut s, list, json!({"cursor": "bogus"}))),
            "invalid_cursor"
        );
        assert_eq!(
            code(call(&mut w, &mut s, list, json!({"limit": "many"}))),
            "invalid_arguments"
        );
    }

    #[test]
    fn creates_channels() {
        let (mut w, mut s) = (ws(), Stats::default());
        let create = SlackMethod::ConversationsCreate;
        let ok = call(
            &mut w,
            &mut s,
            create,
            json!({"name": "big-deals", "is_private": "true"}),
        )
        .unwrap();
        assert_eq!(ok["channel"]["name"], "big-deals");
        assert_eq!(ok["channel"]["is_private"], true);
        assert_eq!(ok["channel"]["is_member"], true);
        assert_eq!(
            code(call(&mut w, &mut s, create, json!({"name": "big-deals"}))),
            "name_taken"
        );
        assert_eq!(
            code(call(&mut w, &mut s, create, json!({}))),
            "invalid_name_required"
        );
        assert_eq!(
            code(call(&mut w, &mut s, create, json!({"name": "Big Deals"}))),
            "invalid_name_specials"
        );
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                create,
                json!({"name": "a".repeat(81)})
            )),
            "invalid_name_maxlength"
        );
    }

    #[test]
    fn invites_users() {
        let (mut w, mut s) = (ws(), Stats::default());
        let invite = SlackMethod::ConversationsInvite;
        let args = |users: &str| json!({"channel": "C0DEALDESK", "users": users});
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                invite,
                json!({"channel": "C0NOPE", "users": "U0DANA0001"})
            )),
            "channel_not_found"
        );
        assert_eq!(code(call(&mut w, &mut s, invite, args(""))), "no_user");
        assert_eq!(
            code(call(&mut w, &mut s, invite, args("U0DANA0001,U0SFRELAY1"))),
            "cant_invite_self"
        );
        assert_eq!(
            code(call(&mut w, &mut s, invite, args("U0DANA0001,U0GHOST001"))),
            "user_not_found"
        );
        assert_eq!(code(call(&mut w, &mut s, invite, args("U0DANA0001"))), "ok");
        assert_eq!(
            code(call(&mut w, &mut s, invite, args("U0DANA0001"))),
            "already_in_channel"
        );
        let ok = call(&mut w, &mut s, invite, args("U0DANA0001, U0SAM00001")).unwrap();
        assert_eq!(ok["channel"]["num_members"], 3);
        let many = vec!["U0DANA0001"; MAX_INVITE_USERS + 1].join(",");
        assert_eq!(
            code(call(&mut w, &mut s, invite, args(&many))),
            "too_many_users"
        );
        assert_eq!(s.max_invite_batch, MAX_INVITE_USERS as u64 + 1);
    }

    #[test]
    fn looks_up_users() {
        let (mut w, mut s) = (ws(), Stats::default());
        let lookup = SlackMethod::UsersLookupByEmail;
        let ok = call(
            &mut w,
            &mut s,
            lookup,
            json!({"email": "Dana.Seller@example.com"}),
        )
        .unwrap();
        assert_eq!(ok["user"]["id"], "U0DANA0001");
        assert_eq!(ok["user"]["profile"]["email"], "dana.seller@example.com");
        assert_eq!(
            code(call(
                &mut w,
                &mut s,
                lookup,
                json!({"email": "x@example.com"})
            )),
            "users_not_found"
        );
        assert_eq!(
            code(call(&mut w, &mut s, lookup, json!({}))),
            "invalid_arguments"
        );
    }

    #[test]
    fn looks_up_emails_stored_in_any_case() {
        let (mut w, mut s) = (ws(), Stats::default());
        w.upsert_user(User::new("U0ELODIE01", "Élodie.Dupont@Example.com"));
        let lookup = SlackMethod::UsersLookupByEmail;
        for email in ["élodie.dupont@example.com", "ÉLODIE.DUPONT@EXAMPLE.COM"] {
            let ok = call(&mut w, &mut s, lookup, json!({"email": email})).unwrap();
            assert_eq!(ok["user"]["id"], "U0ELODIE01", "{email}");
            assert_eq!(ok["user"]["profile"]["email"], "Élodie.Dupont@Example.com");
        }
        let ok = call(
            &mut w,
            &mut s,
            lookup,
            json!({"email": "SAM.ENGINEER@EXAMPLE.COM"}),
        )
        .unwrap();
        assert_eq!(ok["user"]["id"], "U0SAM00001");
    }

    #[test]
    fn opens_dms() {
        let (mut w, mut s) = (ws(), Stats::default());
        let open = SlackMethod::ConversationsOpen;
        let first = call(&mut w, &mut s, open, json!({"users": "U0DANA0001"})).unwrap();
        assert_eq!(
            first,
            json!({"ok": true, "channel": {"id": "D0DANA0001", "is_im": true, "user": "U0DANA0001"}})
        );
        let again = call(&mut w, &mut s, open, json!({"users": " U0DANA0001 "})).unwrap();
        assert_eq!(again["channel"], first["channel"]);
        assert_eq!(
            (&again["already_open"], &again["no_op"]),
            (&json!(true), &json!(true))
        );
        let resumed = call(&mut w, &mut s, open, json!({"channel": "D0DANA0001"})).unwrap();
        assert_eq!(resumed["channel"], first["channel"]);
        let sam = call(&mut w, &mut s, open, json!({"users": "U0SAM00001"})).unwrap();
        assert_eq!(sam["channel"]["id"], "D0SAM00001");
        assert_eq!(w.dms().len(), 2);

        let nine = ["U0DANA0001"; MAX_OPEN_USERS + 1].join(",");
        for (args, error) in [
            (json!({}), "users_list_not_supplied"),
            (json!({"users": " , "}), "users_list_not_supplied"),
            (json!({"channel": "C0DEALDESK"}), "channel_not_found"),
            (json!({"channel": "D0NOTOPEN1"}), "channel_not_found"),
            (json!({"channel": "U0DANA0001"}), "channel_not_found"),
            (json!({"users": "U0GHOST001"}), "user_not_found"),
            (json!({"users": "U0SFRELAY1"}), "user_not_found"),
            (json!({"users": "U0DANA0001,U0GHOST001"}), "user_not_found"),
            (json!({"users": "U0DANA0001,U0SAM00001"}), "not_implemented"),
            (json!({"users": nine}), "too_many_users"),
            (json!({"users": 5}), "invalid_arguments"),
        ] {
            assert_eq!(
                code(call(&mut w, &mut s, open, args.clone())),
                error,
                "{args}"
            );
        }
        assert_eq!(w.dms().len(), 2, "failed calls open nothing");
    }

    #[test]
    fn posts_to_dms_by_dm_or_user_id() {
        let (mut w, mut s) = (ws(), Stats::default());
        let post = SlackMethod::PostMessage;
        for channel in ["D0DANA0001", "U0GHOST001", "D0GHOST001"] {
            assert_eq!(
                code(call(
                    &mut w,
                    &mut s,
                    post,
                    json!({"channel": channel, "text": "x"})
                )),
                "channel_not_found",
                "{channel}"
            );
        }
        assert_eq!(
            code(call(&mut w, &mut s, post, json!({"channel": "U0SAM00001"}))),
            "no_text"
        );
        assert!(w.dms().is_empty(), "failed posts open no DM");

        let by_user = call(
            &mut w,
            &mut s,
            post,
            json!({"channel": "U0DANA0001", "text": "hi Dana"}),
        )
        .unwrap();
        assert_eq!(by_user["channel"], "D0DANA0001");
        assert_eq!(
            w.dm_with("U0DANA0001").map(|d| d.id.as_str()),
            Some("D0DANA0001")
        );
        let ts = by_user["ts"].as_str().unwrap().to_owned();

        let reply = json!({"channel": "D0DANA0001", "text": "more", "thread_ts": ts});
        let by_dm = call(&mut w, &mut s, post, reply).unwrap();
        assert_eq!(by_dm["channel"], "D0DANA0001");
        let reply = json!({"channel": "U0DANA0001", "text": "again", "thread_ts": ts});
        assert_eq!(code(call(&mut w, &mut s, post, reply)), "ok");

        let update = SlackMethod::Update;
        let by_user = json!({"channel": "U0DANA0001", "ts": ts, "text": "edited"});
        assert_eq!(
            code(call(&mut w, &mut s, update, by_user)),
            "channel_not_found",
            "chat.update wants the D… id, like Slack"
        );
        let by_dm = json!({"channel": "D0DANA0001", "ts": ts, "text": "edited"});
        assert_eq!(code(call(&mut w, &mut s, update, by_dm)), "ok");

        let opened = call(
            &mut w,
            &mut s,
            SlackMethod::ConversationsOpen,
            json!({"users": "U0DANA0001"}),
        )
        .unwrap();
        assert_eq!(opened["channel"]["id"], "D0DANA0001");
        assert_eq!(opened["already_open"], true);

        let stored: Vec<_> = w.messages(Some("D0DANA0001")).collect();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[0].text, "edited");
        assert!(w.messages(Some("U0DANA0001")).next().is_none());
        assert_eq!(w.dms().len(), 1);
        assert_eq!(
            (s.posts, s.dm_posts, s.posts_to_user_id, s.updates),
            (3, 3, 2, 1)
        );
    }

    #[test]
    fn stores_and_updates_metadata() {
        let (mut w, mut s) = (ws(), Stats::default());
        let post = SlackMethod::PostMessage;
        let meta = json!({"event_type": "deal.won_v2", "event_payload": {"id": "006A", "n": 3}});
        let ok = call(
            &mut w,
            &mut s,
            post,
            json!({"channel": "C0DEALDESK", "text": "won", "metadata": meta}),
        )
        .unwrap();
        assert_eq!(ok["message"]["metadata"], meta);
        let ts = ok["ts"].as_str().unwrap().to_owned();

        // Form posts send it as a string; extra fields are not kept.
        let as_form = Params::from_body(
            None,
            format!(
                "channel=C0DEALDESK&text=x&metadata={}",
                r#"{"event_type":"a","event_payload":{},"extra":1}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let mut interactive = Interactive::default();
        let mut ctx = Ctx {
            workspace: &mut w,
            stats: &mut s,
            page_size: 2,
            now_micros: 1_700_000_000_000_000,
            interactive: &mut interactive,
        };
        let form = run(post, &as_form, &mut ctx).unwrap();
        assert_eq!(
            form["message"]["metadata"],
            json!({"event_type": "a", "event_payload": {}})
        );
        let plain = call(
            &mut w,
            &mut s,
            post,
            json!({"channel": "C0DEALDESK", "text": "plain", "metadata": " "}),
        )
        .unwrap();
        assert!(plain["message"].get("metadata").is_none());

        for (metadata, error) in [
            (json!("{not json"), "invalid_metadata_format"),
            (json!("[1]"), "invalid_metadata_format"),
            (json!("\"deal\""), "invalid_metadata_format"),
            (json!(5), "invalid_metadata_format"),
            (json!([]), "invalid_metadata_format"),
            (json!({}), "invalid_metadata_schema"),
            (json!({"event_type": "x"}), "invalid_metadata_schema"),
            (json!({"event_payload": {}}), "invalid_metadata_schema"),
            (
                json!({"event_type": "", "event_payload": {}}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": "deal won", "event_payload": {}}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": "deal-won", "event_payload": {}}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": "dëal", "event_payload": {}}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": 7, "event_payload": {}}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": "x", "event_payload": "{}"}),
                "invalid_metadata_schema",
            ),
            (
                json!({"event_type": "x", "event_payload": [1]}),
                "invalid_metadata_schema",
            ),
            (
                json!(r#"{"event_type":"x","event_payload":null}"#),
                "invalid_metadata_schema",
            ),
        ] {
            let args = json!({"channel": "C0DEALDESK", "text": "x", "metadata": metadata});
            assert_eq!(code(call(&mut w, &mut s, post, args)), error, "{metadata}");
        }
        assert_eq!(s.posts, 3, "refused posts store nothing");
        assert_eq!(w.messages(None).count(), 3);

        let update = SlackMethod::Update;
        let bad = json!({"channel": "C0DEALDESK", "ts": ts, "text": "u", "metadata": {}});
        assert_eq!(
            code(call(&mut w, &mut s, update, bad)),
            "invalid_metadata_schema"
        );
        let keep = json!({"channel": "C0DEALDESK", "ts": ts, "text": "edited"});
        let kept = call(&mut w, &mut s, update, keep).unwrap();
        assert_eq!(
            kept["message"]["metadata"], meta,
            "no metadata keeps the old"
        );
        let other = json!({"event_type": "deal.lost", "event_payload": {"id": "006A"}});
        let replace = json!({"channel": "C0DEALDESK", "ts": ts, "text": "e", "metadata": other});
        call(&mut w, &mut s, update, replace).unwrap();
        let stored: Vec<_> = w.messages(Some("C0DEALDESK")).collect();
        assert_eq!(stored[0].metadata.as_ref(), Some(&other));
        assert_eq!(stored[2].metadata, None);
        let shown = serde_json::to_value(stored[2]).unwrap();
        assert_eq!(shown.get("metadata"), Some(&Value::Null));
        assert_eq!((s.posts, s.updates), (3, 2));
    }

    /// Posts `texts` to `channel` one after another and returns their ts, oldest first.
    fn post_all(w: &mut Workspace, s: &mut Stats, channel: &str, texts: &[&str]) -> Vec<String> {
        texts
            .iter()
            .map(|text| {
                let args = json!({"channel": channel, "text": text});
                let ok = call(w, s, SlackMethod::PostMessage, args).unwrap();
                ok["ts"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn texts(history: &Value) -> Vec<&str> {
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn reads_history_newest_first_without_replies() {
        let (mut w, mut s) = (ws(), Stats::default());
        let history = SlackMethod::ConversationsHistory;
        let ts = post_all(&mut w, &mut s, "C0DEALDESK", &["one", "two", "three"]);
        post_all(&mut w, &mut s, "C0SECRET01", &["elsewhere"]);
        let reply = json!({"channel": "C0DEALDESK", "text": "reply", "thread_ts": ts[0]});
        call(&mut w, &mut s, SlackMethod::PostMessage, reply).unwrap();
        let meta = json!({"event_type": "deal_won", "event_payload": {"id": 1}});
        let with_meta = json!({"channel": "C0DEALDESK", "text": "four", "metadata": meta});
        let four = call(&mut w, &mut s, SlackMethod::PostMessage, with_meta).unwrap();

        let all = call(&mut w, &mut s, history, json!({"channel": "C0DEALDESK"})).unwrap();
        assert_eq!(texts(&all), ["four", "three", "two", "one"]);
        assert_eq!(all["has_more"], false);
        assert_eq!(all["response_metadata"]["next_cursor"], "");
        assert_eq!(
            all["messages"][3],
            json!({
                "type": "message",
                "ts": ts[0],
                "text": "one",
                "blocks": [],
                "thread_ts": ts[0],
                "bot_id": BOT_ID,
            }),
            "a thread parent carries its own ts as thread_ts"
        );
        assert!(all["messages"][2].get("thread_ts").is_none());
        assert!(
            all["messages"][0].get("metadata").is_none(),
            "not asked for"
        );

        let with = call(
            &mut w,
            &mut s,
            history,
            json!({"channel": "C0DEALDESK", "include_all_metadata": "true"}),
        )
        .unwrap();
        assert_eq!(with["messages"][0]["ts"], four["ts"]);
        assert_eq!(with["messages"][0]["metadata"], meta);
        assert!(with["messages"][1].get("metadata").is_none(), "none stored");

        let blocks = json!([{"type": "divider"}]);
        let args = json!({"channel": "C0DEALDESK", "blocks": blocks});
        call(&mut w, &mut s, SlackMethod::PostMessage, args).unwrap();
        let newest = call(
            &mut w,
            &mut s,
            history,
            json!({"channel": "C0DEALDESK", "limit": 1}),
        )
        .unwrap();
        assert_eq!(newest["messages"][0]["blocks"], blocks);
        assert_eq!(newest["messages"][0]["text"], "");
    }

    #[test]
    fn pages_history_with_cursors_and_bounds() {
        let (mut w, mut s) = (ws(), Stats::default());
        let history = SlackMethod::ConversationsHistory;
        let ts = post_all(&mut w, &mut s, "C0DEALDESK", &["a", "b", "c", "d", "e"]);
        let page =
            |w: &mut Workspace, s: &mut Stats, args: Value| call(w, s, history, args).unwrap();

        let first = page(&mut w, &mut s, json!({"channel": "C0DEALDESK", "limit": 2}));
        assert_eq!(texts(&first), ["e", "d"]);
        assert_eq!(first["has_more"], true);
        let cursor = first["response_metadata"]["next_cursor"].clone();
        let second = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "limit": "2", "cursor": cursor}),
        );
        assert_eq!(texts(&second), ["c", "b"]);
        // Newer posts do not shift a page already under way.
        post_all(&mut w, &mut s, "C0DEALDESK", &["f"]);
        let cursor = second["response_metadata"]["next_cursor"].clone();
        let last = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "limit": 2, "cursor": cursor}),
        );
        assert_eq!(texts(&last), ["a"]);
        assert_eq!(last["has_more"], false);
        assert_eq!(last["response_metadata"]["next_cursor"], "");

        let bounded = |inclusive: bool| json!({"channel": "C0DEALDESK", "oldest": ts[1], "latest": ts[3], "inclusive": inclusive});
        let exclusive = page(&mut w, &mut s, bounded(false));
        assert_eq!(texts(&exclusive), ["c"]);
        let inclusive = page(&mut w, &mut s, bounded(true));
        assert_eq!(texts(&inclusive), ["d", "c", "b"]);
        let oldest = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "oldest": ts[3]}),
        );
        assert_eq!(texts(&oldest), ["f", "e"]);
        let latest = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "latest": ts[1], "inclusive": "1"}),
        );
        assert_eq!(texts(&latest), ["b", "a"]);
        let paged = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "oldest": ts[0], "limit": 2, "cursor": "next_ts:0"}),
        );
        assert_eq!(texts(&paged), Vec::<&str>::new());
        let whole_seconds = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "oldest": "1700000000", "latest": 1_700_000_001}),
        );
        assert_eq!(
            texts(&whole_seconds),
            ["f", "e", "d", "c", "b"],
            "`a` is exactly at 1700000000.000000, which an exclusive `oldest` leaves out"
        );
        let empty = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "latest": "0"}),
        );
        assert_eq!(texts(&empty), Vec::<&str>::new());
        assert_eq!(empty["has_more"], false);

        let capped = page(
            &mut w,
            &mut s,
            json!({"channel": "C0DEALDESK", "limit": 5000}),
        );
        assert_eq!(texts(&capped).len(), 6);
        post_all(&mut w, &mut s, "C0SECRET01", &["x"; 1000]);
        let capped = page(
            &mut w,
            &mut s,
            json!({"channel": "C0SECRET01", "limit": 5000}),
        );
        assert_eq!(
            capped["messages"].as_array().map(Vec::len),
            Some(usize::try_from(MAX_HISTORY_LIMIT).unwrap())
        );
        assert_eq!(capped["has_more"], true);
        let by_default = page(&mut w, &mut s, json!({"channel": "C0SECRET01", "limit": 0}));
        assert_eq!(by_default["messages"].as_array().map(Vec::len), Some(100));
    }

    #[test]
    fn history_checks_its_arguments() {
        let (mut w, mut s) = (ws(), Stats::default());
        let history = SlackMethod::ConversationsHistory;
        let mut private_outside = Channel::new("G0HIDDEN01", "hidden", true);
        private_outside.members.clear();
        w.upsert_channel(private_outside);
        post_all(&mut w, &mut s, "U0DANA0001", &["hi"]);
        let dm = call(&mut w, &mut s, history, json!({"channel": "D0DANA0001"})).unwrap();
        assert_eq!(texts(&dm), ["hi"]);
        let archived = call(&mut w, &mut s, history, json!({"channel": "C0ARCHIVED"}));
        assert_eq!(code(archived), "ok", "archived channels can still be read");

        let dc = |extra: Value| {
            let mut args = json!({"channel": "C0DEALDESK"});
            if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
                args.extend(extra);
            }
            args
        };
        for (args, error) in [
            (json!({}), "channel_not_found"),
            (json!({"channel": ""}), "channel_not_found"),
            (json!({"channel": "C0NOPE"}), "channel_not_found"),
            (json!({"channel": "#deal-desk"}), "channel_not_found"),
            (json!({"channel": "U0DANA0001"}), "channel_not_found"),
            (json!({"channel": "D0SAM00001"}), "channel_not_found"),
            (json!({"channel": "G0HIDDEN01"}), "channel_not_found"),
            (json!({"channel": "C0OUTSIDE1"}), "not_in_channel"),
            (json!({"channel": 5}), "invalid_arguments"),
            (dc(json!({"oldest": "yesterday"})), "invalid_ts_oldest"),
            (dc(json!({"oldest": true})), "invalid_ts_oldest"),
            (dc(json!({"latest": "1.2.3"})), "invalid_ts_latest"),
            (dc(json!({"latest": -5})), "invalid_ts_latest"),
            (dc(json!({"cursor": "bogus"})), "invalid_cursor"),
            (dc(json!({"cursor": "next:1"})), "invalid_cursor"),
            (dc(json!({"limit": "many"})), "invalid_arguments"),
            (dc(json!({"inclusive": "maybe"})), "invalid_arguments"),
            (dc(json!({"include_all_metadata": 2})), "invalid_arguments"),
            (dc(json!({"oldest": "", "latest": " ", "cursor": ""})), "ok"),
        ] {
            assert_eq!(
                code(call(&mut w, &mut s, history, args.clone())),
                error,
                "{args}"
            );
        }
    }

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
