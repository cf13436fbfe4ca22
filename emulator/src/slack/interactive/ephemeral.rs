//! `chat.postEphemeral`: a message only one person in a conversation sees. Stored apart from
//! the channel's messages (it never appears in history), for `GET /_emulator/ephemerals`.

use serde::Serialize;
use serde_json::{Value, json};

use super::super::methods::{ApiError, Ctx, MethodResult, content};
use super::super::workspace::Workspace;
use super::Interactive;
use crate::params::Params;

/// An ephemeral message as stored and shown by the control API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ephemeral {
    /// The conversation it was shown in.
    pub channel: String,
    /// The one person who sees it.
    pub user: String,
    /// Fallback text ("" when only blocks were sent).
    pub text: String,
    /// Block Kit blocks, when sent.
    pub blocks: Option<Value>,
    /// The thread it was shown in, if any.
    pub thread_ts: Option<String>,
    /// The ts Slack answered with.
    pub message_ts: String,
    /// How it was sent: `chat.postEphemeral`, or `response_url` (an answer to a click).
    pub via: &'static str,
    /// When it was sent (Unix epoch milliseconds).
    pub received_at_ms: i64,
}

impl Interactive {
    /// Stores an ephemeral message.
    pub fn push_ephemeral(&mut self, ephemeral: Ephemeral) {
        self.ephemerals.push(ephemeral);
    }
}

/// Whether `user` can be shown an ephemeral message in `channel`. The bot must be in the
/// channel; the person must be a workspace user and, in a private channel, a member (the
/// emulator does not track who joined public channels, so every user counts as in them); in
/// a DM, the person at the other end.
fn check_audience(workspace: &Workspace, channel: &str, user: &str) -> Result<(), ApiError> {
    let known = workspace.user(user).is_some();
    if let Some(found) = workspace.channel(channel) {
        if !found.is_member() {
            return Err(ApiError::new(if found.is_private {
                "channel_not_found"
            } else {
                "not_in_channel"
            }));
        }
        if found.is_archived {
            return Err(ApiError::new("is_archived"));
        }
        if !known || (found.is_private && !found.members.contains(user)) {
            return Err(ApiError::new("user_not_in_channel"));
        }
        return Ok(());
    }
    match workspace.dm(channel) {
        Some(dm) if dm.user == user => Ok(()),
        Some(_) => Err(ApiError::new("user_not_in_channel")),
        None => Err(ApiError::new("channel_not_found")),
    }
}

/// `chat.postEphemeral {channel, user, text?, blocks?, thread_ts?}` → `{ok, message_ts}`.
pub fn post_ephemeral(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let channel = p.str("channel")?.unwrap_or_default();
    let user = p.str("user")?.unwrap_or_default();
    check_audience(ctx.workspace, channel, user)?;
    let (text, blocks) = content(p)?;
    let thread_ts = p.str("thread_ts")?.filter(|t| !t.is_empty());
    let message_ts = ctx.workspace.next_ts(ctx.now_micros);
    ctx.interactive.push_ephemeral(Ephemeral {
        channel: channel.to_owned(),
        user: user.to_owned(),
        text,
        blocks,
        thread_ts: thread_ts.map(str::to_owned),
        message_ts: message_ts.clone(),
        via: "chat.postEphemeral",
        received_at_ms: ctx.now_micros / 1000,
    });
    ctx.stats.ephemerals += 1;
    Ok(json!({"ok": true, "message_ts": message_ts}))
}

#[cfg(test)]
mod tests {
    use super::super::super::journal::Stats;
    use super::super::super::methods::{SlackMethod, run};
    use super::super::super::workspace::{Channel, User};
    use super::*;

    fn workspace() -> Workspace {
        let mut private = Channel::new("G0PRIVATE1", "private", true);
        private.members.insert("U0SAM00001".into());
        let mut outside = Channel::new("C0OUTSIDE1", "outside", false);
        outside.members.clear();
        let mut hidden = Channel::new("G0HIDDEN01", "hidden", true);
        hidden.members.clear();
        let mut archived = Channel::new("C0ARCHIVED", "old", false);
        archived.is_archived = true;
        let mut ws = Workspace::new(
            vec![
                Channel::new("C0DEALDESK", "deal-desk", false),
                private,
                outside,
                hidden,
                archived,
            ],
            vec![
                User::new("U0DANA0001", "dana.seller@example.com"),
                User::new("U0SAM00001", "sam.engineer@example.com"),
            ],
        );
        ws.open_dm("U0DANA0001");
        ws
    }

    #[test]
    fn posts_to_one_person_and_never_into_history() {
        let mut ws = workspace();
        let mut stats = Stats::default();
        let mut state = Interactive::default();
        let mut post = |ws: &mut Workspace, state: &mut Interactive, args: Value| {
            let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
                .map_err(ApiError::from)?;
            let mut ctx = Ctx {
                workspace: ws,
                stats: &mut stats,
                page_size: 100,
                now_micros: 1_700_000_000_000_000,
                interactive: state,
            };
            run(SlackMethod::PostEphemeral, &params, &mut ctx)
        };
        let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "Only you"}}]);
        let ok = post(
            &mut ws,
            &mut state,
            json!({"channel": "C0DEALDESK", "user": "U0DANA0001", "text": "psst", "blocks": blocks}),
        )
        .unwrap();
        assert!(ok["message_ts"].as_str().unwrap().contains('.'), "{ok}");
        assert_eq!(state.ephemerals().len(), 1);
        let shown = serde_json::to_value(&state.ephemerals()[0]).unwrap();
        assert_eq!(shown["channel"], "C0DEALDESK");
        assert_eq!(shown["user"], "U0DANA0001");
        assert_eq!(shown["text"], "psst");
        assert_eq!(shown["blocks"], blocks);
        assert_eq!(shown["via"], "chat.postEphemeral");
        assert_eq!(ws.messages(None).count(), 0, "not in any history");

        for (channel, user, error) in [
            ("C0NOPE", "U0DANA0001", "channel_not_found"),
            ("", "U0DANA0001", "channel_not_found"),
            ("C0DEALDESK", "U0GHOST001", "user_not_in_channel"),
            ("C0DEALDESK", "", "user_not_in_channel"),
            ("G0PRIVATE1", "U0DANA0001", "user_not_in_channel"),
            ("G0PRIVATE1", "U0SAM00001", "ok"),
            ("C0OUTSIDE1", "U0DANA0001", "not_in_channel"),
            ("G0HIDDEN01", "U0DANA0001", "channel_not_found"),
            ("C0ARCHIVED", "U0DANA0001", "is_archived"),
            ("D0DANA0001", "U0DANA0001", "ok"),
            ("D0DANA0001", "U0SAM00001", "user_not_in_channel"),
        ] {
            let args = json!({"channel": channel, "user": user, "text": "x"});
            let result = post(&mut ws, &mut state, args);
            assert_eq!(
                result.err().map_or("ok", |e| e.code),
                error,
                "{channel} {user}"
            );
        }
        let empty = json!({"channel": "C0DEALDESK", "user": "U0DANA0001"});
        assert_eq!(
            post(&mut ws, &mut state, empty).unwrap_err().code,
            "no_text"
        );
        let bad =
            json!({"channel": "C0DEALDESK", "user": "U0DANA0001", "blocks": [{"type": "nope"}]});
        assert_eq!(
            post(&mut ws, &mut state, bad).unwrap_err().code,
            "invalid_blocks"
        );
        assert_eq!(state.ephemerals().len(), 3);
        assert_eq!(stats.ephemerals, 3);
    }
}
