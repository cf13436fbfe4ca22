//! `chat.unfurl`: previews for links a person shared. Only the links of a `link_shared` event
//! the emulator sent can be unfurled (`cannot_unfurl_url` otherwise), the share named by
//! `channel`+`ts` or by `unfurl_id`+`source`, with `unfurls` a JSON map from each exact URL to
//! an attachment whose blocks pass Slack's checks. Every call that succeeds is kept, with the
//! share it answered, for `GET /_emulator/unfurls`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::super::super::blocks;
use super::super::super::methods::{ApiError, Ctx, MethodResult};
use crate::params::Params;

/// The `channel` Slack gives links typed in the message composer, not yet posted.
pub const COMPOSER: &str = "COMPOSER";

/// Where shared links came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Posted in a conversation.
    ConversationsHistory,
    /// Typed in the message composer.
    Composer,
}

impl Source {
    /// Slack's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Source::ConversationsHistory => "conversations_history",
            Source::Composer => "composer",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Source::ConversationsHistory, Source::Composer]
            .into_iter()
            .find(|s| s.name() == raw)
    }
}

/// Links a `link_shared` event told the app about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Share {
    /// The conversation, or [`COMPOSER`].
    pub channel: String,
    pub message_ts: String,
    pub unfurl_id: String,
    pub source: Source,
    /// Who shared them.
    pub user: String,
    /// The URLs exactly as the event listed them.
    pub links: Vec<String>,
    pub at_ms: i64,
}

/// One `chat.unfurl` that succeeded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unfurl {
    /// The share it unfurled.
    pub channel: String,
    pub message_ts: String,
    pub unfurl_id: String,
    pub source: Source,
    /// Who shared the links.
    pub user: String,
    /// URL → attachment, as sent (blocks parsed).
    pub unfurls: Map<String, Value>,
    pub user_auth_required: bool,
    pub user_auth_message: Option<String>,
    pub user_auth_url: Option<String>,
    pub user_auth_blocks: Option<Value>,
    pub at_ms: i64,
}

fn invalid(message: &str) -> ApiError {
    ApiError {
        code: "invalid_arguments",
        messages: vec![format!("[ERROR] {message}")],
    }
}

fn nonempty<'a>(p: &'a Params, key: &str) -> Result<Option<&'a str>, ApiError> {
    Ok(p.str(key)?.map(str::trim).filter(|s| !s.is_empty()))
}

/// The share a call names: by `channel`+`ts`, else `unfurl_id`+`source`.
fn find_share<'a>(p: &Params, shares: &'a [Share], ctx: &Ctx<'_>) -> Result<&'a Share, ApiError> {
    let (channel, ts) = (nonempty(p, "channel")?, nonempty(p, "ts")?);
    let (unfurl_id, source) = (nonempty(p, "unfurl_id")?, nonempty(p, "source")?);
    match (channel, ts, unfurl_id, source) {
        (Some(channel), Some(ts), _, _) => {
            let known = channel == COMPOSER
                || ctx.workspace.channel(channel).is_some()
                || ctx.workspace.dm(channel).is_some();
            if !known {
                return Err(ApiError::new("cannot_find_channel"));
            }
            shares
                .iter()
                .rev()
                .find(|s| s.channel == channel && s.message_ts == ts)
                .ok_or(ApiError::new("cannot_find_message"))
        }
        (None, None, Some(unfurl_id), Some(source)) => {
            let source = Source::parse(source)
                .ok_or_else(|| invalid("source must be composer or conversations_history"))?;
            shares
                .iter()
                .rev()
                .find(|s| s.unfurl_id == unfurl_id && s.source == source)
                .ok_or(ApiError::new("cannot_find_message"))
        }
        (Some(_), None, None, None) => Err(ApiError::new("missing_ts")),
        (None, Some(_), None, None) => Err(ApiError::new("missing_channel")),
        (None, None, None, None) => Err(ApiError::new("missing_channel")),
        _ => Err(invalid(
            "give channel and ts together, or unfurl_id and source together",
        )),
    }
}

/// Blocks checked like a message's, `invalid_blocks` with Slack's detail otherwise.
fn checked_blocks(raw: &Value, pointer: &str) -> Result<Value, ApiError> {
    let parsed = blocks::parse(raw)
        .and_then(|b| blocks::validate(&b).map(|()| b))
        .map_err(|err| ApiError {
            code: "invalid_blocks",
            messages: vec![format!("{} (in {pointer})", err.to_slack_message())],
        })?;
    Ok(Value::Array(parsed))
}

/// The `unfurls` map: a JSON object (or a string holding one) of URL → attachment object.
fn unfurls_map(p: &Params) -> Result<Option<Map<String, Value>>, ApiError> {
    let parsed;
    let value = match p.value("unfurls") {
        None => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| ApiError::new("invalid_unfurls_format"))?;
            &parsed
        }
        Some(other) => other,
    };
    match value {
        Value::Object(map) => Ok(Some(map.clone())),
        _ => Err(ApiError::new("invalid_unfurls_format")),
    }
}

/// `chat.unfurl`.
pub fn chat_unfurl(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let share = find_share(p, &ctx.interactive.surfaces.shares, ctx)?.clone();
    let user_auth_required = p.bool("user_auth_required")?.unwrap_or(false);
    let user_auth_message = nonempty(p, "user_auth_message")?.map(str::to_owned);
    let user_auth_url = nonempty(p, "user_auth_url")?.map(str::to_owned);
    if let Some(url) = &user_auth_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(invalid("user_auth_url must be an http(s) URL"));
    }
    let user_auth_blocks = match p.value("user_auth_blocks") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(raw) => Some(checked_blocks(raw, "user_auth_blocks")?),
    };
    let asks_auth = user_auth_required || user_auth_message.is_some() || user_auth_blocks.is_some();
    let mut unfurls = match unfurls_map(p)? {
        Some(map) => map,
        None if asks_auth => Map::new(),
        None => return Err(ApiError::new("missing_unfurls")),
    };
    for (url, attachment) in &mut unfurls {
        if !share.links.iter().any(|l| l == url) {
            return Err(ApiError::new("cannot_unfurl_url"));
        }
        let Value::Object(fields) = attachment else {
            return Err(ApiError::new("cannot_parse_attachment"));
        };
        if let Some(raw) = fields.get("blocks") {
            let checked = checked_blocks(raw, &format!("unfurls[{url}].blocks"))?;
            fields.insert("blocks".into(), checked);
        }
    }
    ctx.interactive.surfaces.unfurls.push(Unfurl {
        channel: share.channel,
        message_ts: share.message_ts,
        unfurl_id: share.unfurl_id,
        source: share.source,
        user: share.user,
        unfurls,
        user_auth_required,
        user_auth_message,
        user_auth_url,
        user_auth_blocks,
        at_ms: ctx.now_micros / 1000,
    });
    Ok(json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::journal::Stats;
    use super::super::super::super::methods::{SlackMethod, run};
    use super::super::super::super::workspace::{Channel, Workspace};
    use super::super::super::Interactive;
    use super::*;

    const LINK: &str = "https://acme.my.salesforce.com/lightning/r/Opportunity/006A/view";

    fn state() -> Interactive {
        let mut state = Interactive::default();
        for (channel, ts, id, source) in [
            (
                "C0DEALDESK",
                "1.000001",
                "C0DEALDESK.1.000001.ab",
                Source::ConversationsHistory,
            ),
            (COMPOSER, "U0DANA0001-cd", "U0DANA0001-cd", Source::Composer),
        ] {
            state.surfaces.shares.push(Share {
                channel: channel.into(),
                message_ts: ts.into(),
                unfurl_id: id.into(),
                source,
                user: "U0DANA0001".into(),
                links: vec![LINK.into()],
                at_ms: 0,
            });
        }
        state
    }

    fn call(state: &mut Interactive, args: Value) -> MethodResult {
        let mut ws = Workspace::new(vec![Channel::new("C0DEALDESK", "deal-desk", false)], vec![]);
        let mut stats = Stats::default();
        let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
            .map_err(ApiError::from)?;
        let mut ctx = Ctx {
            workspace: &mut ws,
            stats: &mut stats,
            page_size: 100,
            now_micros: 1_700_000_000_000_000,
            interactive: state,
        };
        run(SlackMethod::ChatUnfurl, &params, &mut ctx)
    }

    fn code(r: MethodResult) -> &'static str {
        r.err().map_or("ok", |e| e.code)
    }

    fn preview() -> Value {
        json!({LINK: {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Acme*"}}]}})
    }

    #[test]
    fn unfurls_the_links_of_a_share() {
        let mut state = state();
        let by_message = json!({"channel": "C0DEALDESK", "ts": "1.000001",
                                "unfurls": preview().to_string()});
        assert_eq!(call(&mut state, by_message).unwrap(), json!({"ok": true}));
        let by_id = json!({"unfurl_id": "U0DANA0001-cd", "source": "composer",
                           "unfurls": preview()});
        assert_eq!(code(call(&mut state, by_id)), "ok");
        let auth = json!({"channel": "C0DEALDESK", "ts": "1.000001",
                          "user_auth_required": "true", "user_auth_message": "Connect Salesforce",
                          "user_auth_url": "https://sfrelay.example/oauth/salesforce/start"});
        assert_eq!(code(call(&mut state, auth)), "ok");
        let kept = &state.surfaces.unfurls;
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[0].unfurls[LINK]["blocks"][0]["type"], "section");
        assert_eq!(kept[1].source, Source::Composer);
        assert!(kept[2].user_auth_required && kept[2].unfurls.is_empty());
        assert_eq!(
            kept[2].user_auth_message.as_deref(),
            Some("Connect Salesforce")
        );
    }

    #[test]
    fn refuses_what_slack_refuses() {
        let mut state = state();
        let msg = |extra: Value| {
            let mut args = json!({"channel": "C0DEALDESK", "ts": "1.000001"});
            if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
                args.extend(extra);
            }
            args
        };
        let bad_blocks = json!({LINK: {"blocks": [{"type": "nope"}]}});
        for (args, error) in [
            (json!({"unfurls": preview()}), "missing_channel"),
            (
                json!({"channel": "C0DEALDESK", "unfurls": preview()}),
                "missing_ts",
            ),
            (
                json!({"ts": "1.000001", "unfurls": preview()}),
                "missing_channel",
            ),
            (
                json!({"unfurl_id": "U0DANA0001-cd", "unfurls": preview()}),
                "invalid_arguments",
            ),
            (
                json!({"unfurl_id": "U0DANA0001-cd", "source": "history", "unfurls": preview()}),
                "invalid_arguments",
            ),
            (
                json!({"unfurl_id": "U0DANA0001-cd", "source": "conversations_history",
                       "unfurls": preview()}),
                "cannot_find_message",
            ),
            (
                json!({"channel": "C0NOPE", "ts": "1.000001", "unfurls": preview()}),
                "cannot_find_channel",
            ),
            (
                json!({"channel": "C0DEALDESK", "ts": "2.000002", "unfurls": preview()}),
                "cannot_find_message",
            ),
            (msg(json!({})), "missing_unfurls"),
            (
                msg(json!({"unfurls": "{not json"})),
                "invalid_unfurls_format",
            ),
            (msg(json!({"unfurls": "[1]"})), "invalid_unfurls_format"),
            (
                msg(json!({"unfurls": {"https://elsewhere.example/": {"text": "x"}}})),
                "cannot_unfurl_url",
            ),
            (
                msg(json!({"unfurls": {LINK: "text"}})),
                "cannot_parse_attachment",
            ),
            (msg(json!({"unfurls": bad_blocks})), "invalid_blocks"),
            (
                msg(json!({"user_auth_required": true, "user_auth_url": "javascript:x"})),
                "invalid_arguments",
            ),
            (
                msg(json!({"user_auth_blocks": [{"type": "nope"}]})),
                "invalid_blocks",
            ),
        ] {
            assert_eq!(code(call(&mut state, args.clone())), error, "{args}");
        }
        assert!(state.surfaces.unfurls.is_empty(), "nothing refused is kept");
    }
}
