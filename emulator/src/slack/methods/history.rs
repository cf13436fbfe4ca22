//! `conversations.history`: a conversation's top-level messages, newest first, in pages.

use std::cmp::Reverse;
use std::collections::HashSet;

use serde_json::{Value, json};

use super::super::workspace::{BOT_ID, Message, parse_ts};
use super::{ApiError, Ctx, MethodResult};
use crate::params::Params;

/// `limit` used by `conversations.history` when none is given.
const DEFAULT_HISTORY_LIMIT: u64 = 100;
/// Largest `conversations.history` page; bigger `limit`s are cut down to it, like Slack.
pub const MAX_HISTORY_LIMIT: u64 = 999;
/// Prefix of the opaque `conversations.history` cursor; the ts of the next message follows.
const HISTORY_CURSOR_PREFIX: &str = "next_ts:";

/// The top-level messages (thread replies left out) of a channel the bot is in or a DM it
/// opened, newest first, between `oldest` and `latest` (exclusive unless `inclusive`), in
/// pages of `limit` followed with `cursor`.
pub(super) fn conversations_history(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::SlackMethod;
    use super::super::testing::{call, code, post_all, texts, ws};
    use super::*;
    use crate::slack::journal::Stats;
    use crate::slack::workspace::{Channel, Workspace};

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
}
