//! `chat.postMessage` and `chat.update`: where a message may land, and its text, blocks and
//! metadata checked against Slack's limits.

use serde_json::{Value, json};

use super::super::blocks;
use super::super::workspace::{BOT_ID, BOT_USER_ID, Message, looks_like_id};
use super::{ApiError, Ctx, MethodResult};
use crate::params::Params;

/// Longest `text` Slack takes in one message.
pub const MAX_MESSAGE_TEXT: usize = 40_000;

pub(super) fn post_message(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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

pub(super) fn update(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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
pub(crate) fn content(p: &Params) -> Result<(String, Option<Value>), ApiError> {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::SlackMethod;
    use super::super::testing::{call, code, ws};
    use super::*;
    use crate::slack::interactive::Interactive;
    use crate::slack::journal::Stats;
    use crate::slack::methods::run;

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
}
