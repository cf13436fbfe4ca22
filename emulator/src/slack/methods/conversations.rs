//! `conversations.list`, `.create`, `.invite` and `.open`: channels and the bot's DMs.

use serde_json::json;

use super::super::workspace::{BOT_USER_ID, Channel, validate_channel_name};
use super::{ApiError, Ctx, MethodResult};
use crate::params::Params;

/// Most user ids `conversations.invite` takes in one call.
pub const MAX_INVITE_USERS: usize = 1000;
/// Most user ids `conversations.open` takes in one call (a multi-person DM).
pub const MAX_OPEN_USERS: usize = 8;
/// `limit` used by `conversations.list` when none is given.
const DEFAULT_LIST_LIMIT: u64 = 100;
/// Prefix of the opaque `conversations.list` cursor.
const CURSOR_PREFIX: &str = "next:";

pub(super) fn conversations_list(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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

pub(super) fn conversations_create(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let name = p.str("name")?.unwrap_or_default();
    validate_channel_name(name).map_err(ApiError::new)?;
    if ctx.workspace.name_taken(name) {
        return Err(ApiError::new("name_taken"));
    }
    let is_private = p.bool("is_private")?.unwrap_or(false);
    let channel = ctx.workspace.create_channel(name, is_private);
    Ok(json!({"ok": true, "channel": channel.to_json()}))
}

pub(super) fn conversations_invite(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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
pub(super) fn conversations_open(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::SlackMethod;
    use super::super::testing::{call, code, ws};
    use super::*;
    use crate::slack::journal::Stats;

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
}
