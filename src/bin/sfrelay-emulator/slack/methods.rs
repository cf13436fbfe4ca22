//! The Slack Web API methods the service uses, each answering like real Slack would.

use serde_json::{Value, json};

use super::blocks;
use super::journal::Stats;
use super::workspace::{
    BOT_ID, BOT_USER_ID, Channel, Message, Workspace, looks_like_id, validate_channel_name,
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
    /// `conversations.create`
    ConversationsCreate,
    /// `conversations.invite`
    ConversationsInvite,
    /// `conversations.open`
    ConversationsOpen,
    /// `users.lookupByEmail`
    UsersLookupByEmail,
}

impl SlackMethod {
    const ALL: [SlackMethod; 8] = [
        SlackMethod::AuthTest,
        SlackMethod::PostMessage,
        SlackMethod::Update,
        SlackMethod::ConversationsList,
        SlackMethod::ConversationsCreate,
        SlackMethod::ConversationsInvite,
        SlackMethod::ConversationsOpen,
        SlackMethod::UsersLookupByEmail,
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
            SlackMethod::ConversationsCreate => "conversations.create",
            SlackMethod::ConversationsInvite => "conversations.invite",
            SlackMethod::ConversationsOpen => "conversations.open",
            SlackMethod::UsersLookupByEmail => "users.lookupByEmail",
        }
    }

    /// Methods that change nothing, which may also be called with GET.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            SlackMethod::AuthTest
                | SlackMethod::ConversationsList
                | SlackMethod::UsersLookupByEmail
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
    fn new(code: &'static str) -> Self {
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
}

/// Runs one method whose call already passed auth, limits and fault injection.
pub fn run(method: SlackMethod, p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    match method {
        SlackMethod::AuthTest => Ok(auth_test()),
        SlackMethod::PostMessage => post_message(p, ctx),
        SlackMethod::Update => update(p, ctx),
        SlackMethod::ConversationsList => conversations_list(p, ctx),
        SlackMethod::ConversationsCreate => conversations_create(p, ctx),
        SlackMethod::ConversationsInvite => conversations_invite(p, ctx),
        SlackMethod::ConversationsOpen => conversations_open(p, ctx),
        SlackMethod::UsersLookupByEmail => users_lookup_by_email(p, ctx),
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
    let message = ctx
        .workspace
        .message_mut(&channel, ts)
        .ok_or(ApiError::new("message_not_found"))?;
    message.text = text;
    message.blocks = blocks;
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
fn content(p: &Params) -> Result<(String, Option<Value>), ApiError> {
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
        let mut ctx = Ctx {
            workspace: ws,
            stats,
            page_size: 2,
            now_micros: 1_700_000_000_000_000,
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
    fn method_names_round_trip() {
        for m in SlackMethod::ALL {
            assert_eq!(SlackMethod::from_name(m.name()), Some(m));
        }
        assert_eq!(SlackMethod::from_name("chat.delete"), None);
        assert_eq!(auth_test()["user_id"], BOT_USER_ID);
    }
}
