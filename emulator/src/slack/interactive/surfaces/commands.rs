//! `POST /_emulator/command`: the emulator plays a person typing a slash command. It posts the
//! form Slack posts to the command's request URL (signed like every Slack request), with a
//! fresh `trigger_id` and a `response_url` it serves itself, then shows the app's immediate
//! answer as Slack would: a JSON or text body within 3 seconds is the reply (ephemeral unless
//! `response_type` is `in_channel`); a late, failed or empty answer shows nothing.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::super::emulator::{Clock, lock};
use super::super::super::workspace::{Message, TEAM_DOMAIN, TEAM_ID, Workspace};
use super::super::control::{Control, bad_request, refusal_response};
use super::super::interact::{base_url, loopback_url};
use super::super::payload::{Refusal, person, refuse};
use super::super::responses::Origin;
use super::super::signing::form_encode;
use super::super::{APP_ID, Ephemeral, Interactive};
use super::conversation;
use super::send::{Answer, Outgoing, send};

/// The command a request names when it names none.
const DEFAULT_COMMAND: &str = "/sf";

/// What the test asks the emulated person to type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandRequest {
    /// The command's request URL (`…/slack/commands`).
    url: String,
    signing_secret: String,
    user: String,
    /// Where it is typed: a channel id or a DM id (`D…`).
    channel: String,
    #[serde(default = "default_command")]
    command: String,
    #[serde(default)]
    text: String,
    /// Signs with this Unix time instead of now (for stale-signature tests).
    timestamp: Option<i64>,
    /// Alters the body after signing, so the signature no longer matches.
    #[serde(default)]
    tamper: bool,
    /// Another app's id, for an org with a Slack app of its own.
    api_app_id: Option<String>,
}

fn default_command() -> String {
    DEFAULT_COMMAND.to_owned()
}

/// One command as sent, what the app answered and what Slack made of the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRecord {
    pub command: String,
    pub text: String,
    pub user: String,
    pub channel: String,
    pub trigger_id: String,
    pub response_url: String,
    /// The `response_url`'s id, for `GET /_emulator/response/{id}`.
    pub response_id: String,
    /// The form fields as sent.
    pub payload: Value,
    /// `{status, body, elapsed_ms, within_3s}` of the app's immediate answer.
    pub answer: Value,
    /// What Slack showed of it: `{"outcome": "none" | "ephemeral" | "in_channel" | "late" |
    /// "failed"}`, with the message's ts when one was shown.
    pub applied: Value,
    pub at_ms: i64,
}

/// The form Slack posts, built under the emulator's lock.
struct Built {
    form: String,
    payload: Value,
    trigger_id: String,
    response_url: String,
    response_id: String,
}

fn build(
    workspace: &mut Workspace,
    state: &mut Interactive,
    req: &CommandRequest,
    base: &str,
    now_micros: i64,
) -> Result<Built, Refusal> {
    let user = person(workspace, &req.user)?.clone();
    let (channel_name, _) = conversation(workspace, &req.channel, &req.user)?;
    let valid_command = req.command.len() > 1
        && req.command.starts_with('/')
        && !req.command.contains(char::is_whitespace);
    if !valid_command {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_arguments",
            format!("{:?} is not a slash command like /sf", req.command),
        ));
    }
    let trigger_id = state.issue_trigger(&req.user, now_micros);
    let origin = Origin {
        channel: req.channel.clone(),
        message_ts: None,
        user: req.user.clone(),
    };
    let response_id = state.issue_response_url(origin, now_micros / 1000);
    let response_url = format!("{base}/_emulator/response/{response_id}");
    let fields: Vec<(&str, String)> = vec![
        ("token", "emulated-verification-token".into()),
        ("team_id", TEAM_ID.into()),
        ("team_domain", TEAM_DOMAIN.into()),
        ("channel_id", req.channel.clone()),
        ("channel_name", channel_name),
        ("user_id", user.id.clone()),
        ("user_name", user.name.clone()),
        ("command", req.command.clone()),
        ("text", req.text.clone()),
        (
            "api_app_id",
            req.api_app_id.clone().unwrap_or_else(|| APP_ID.into()),
        ),
        ("is_enterprise_install", "false".into()),
        ("response_url", response_url.clone()),
        ("trigger_id", trigger_id.clone()),
    ];
    let form = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let payload = Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect(),
    );
    Ok(Built {
        form,
        payload,
        trigger_id,
        response_url,
        response_id,
    })
}

/// Shows the app's immediate answer as Slack would.
fn apply_answer(
    workspace: &mut Workspace,
    state: &mut Interactive,
    req: &CommandRequest,
    answer: &Answer,
    now_micros: i64,
) -> Value {
    if !answer.acknowledged() {
        let outcome = if (200..300).contains(&answer.status) {
            "late"
        } else {
            "failed"
        };
        return json!({"outcome": outcome});
    }
    let (text, blocks, in_channel) = match &answer.body {
        Value::Object(reply) => (
            reply
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            reply.get("blocks").filter(|b| b.is_array()).cloned(),
            reply.get("response_type").and_then(Value::as_str) == Some("in_channel"),
        ),
        Value::String(text) => (text.clone(), None, false),
        _ => (String::new(), None, false),
    };
    if text.is_empty() && blocks.as_ref().is_none_or(|b| b == &json!([])) {
        return json!({"outcome": "none"});
    }
    let ts = workspace.next_ts(now_micros);
    if in_channel {
        workspace.push_message(Message {
            channel: req.channel.clone(),
            ts: ts.clone(),
            text,
            blocks,
            thread_ts: None,
            metadata: None,
            updated: false,
            received_at_ms: now_micros / 1000,
            updated_at_ms: None,
        });
        return json!({"outcome": "in_channel", "ts": ts});
    }
    state.push_ephemeral(Ephemeral {
        channel: req.channel.clone(),
        user: req.user.clone(),
        text,
        blocks,
        thread_ts: None,
        message_ts: ts.clone(),
        via: "command",
        received_at_ms: now_micros / 1000,
    });
    json!({"outcome": "ephemeral", "ts": ts})
}

/// `POST /_emulator/command`.
pub async fn command(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> Response {
    let req: CommandRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(err) => return bad_request("invalid_arguments", &err.to_string()),
    };
    let target = match loopback_url(&req.url) {
        Ok(target) => target,
        Err(detail) => return bad_request("url_not_loopback", &detail),
    };
    let now = Clock::now();
    let built = {
        let mut guard = lock(&control.shared);
        let emu = &mut *guard;
        build(
            &mut emu.workspace,
            &mut emu.interactive,
            &req,
            &base_url(&headers),
            now.micros,
        )
    };
    let built = match built {
        Ok(built) => built,
        Err(refusal) => return refusal_response(&refusal),
    };
    let out = Outgoing {
        url: target,
        secret: &req.signing_secret,
        timestamp: req.timestamp.unwrap_or(now.micros.div_euclid(1_000_000)),
        content_type: "application/x-www-form-urlencoded",
        body: built.form,
        headers: Vec::new(),
        tamper: req.tamper,
    };
    let answer = match send(&control, out).await {
        Ok(answer) => answer,
        Err(unreachable) => return unreachable,
    };
    let mut guard = lock(&control.shared);
    let emu = &mut *guard;
    let applied = apply_answer(
        &mut emu.workspace,
        &mut emu.interactive,
        &req,
        &answer,
        Clock::now().micros,
    );
    let record = CommandRecord {
        command: req.command,
        text: req.text,
        user: req.user,
        channel: req.channel,
        trigger_id: built.trigger_id,
        response_url: built.response_url,
        response_id: built.response_id,
        payload: built.payload,
        answer: answer.to_json(),
        applied,
        at_ms: now.micros / 1000,
    };
    let mut shown = answer.to_json();
    if let Some(out) = shown.as_object_mut() {
        out.insert("trigger_id".into(), record.trigger_id.clone().into());
        out.insert("response_url".into(), record.response_url.clone().into());
        out.insert("response_id".into(), record.response_id.clone().into());
        out.insert("payload".into(), record.payload.clone());
        out.insert("applied".into(), record.applied.clone());
    }
    emu.interactive.surfaces.commands.push(record);
    Json(shown).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::params::Params;
    use crate::slack::workspace::{Channel, User};

    const NOW: i64 = 1_700_000_000_000_000;

    fn workspace() -> Workspace {
        let mut ws = Workspace::new(
            vec![Channel::new("C0DEALDESK", "deal-desk", false)],
            vec![User::new("U0DANA0001", "dana.seller@example.com")],
        );
        ws.open_dm("U0DANA0001");
        ws
    }

    fn request(channel: &str, command: &str) -> CommandRequest {
        CommandRequest {
            url: "http://127.0.0.1:1/slack/commands".into(),
            signing_secret: "s".into(),
            user: "U0DANA0001".into(),
            channel: channel.into(),
            command: command.into(),
            text: "find Acme & co".into(),
            timestamp: None,
            tamper: false,
            api_app_id: None,
        }
    }

    #[test]
    fn builds_the_form_slack_posts() {
        let mut ws = workspace();
        let mut state = Interactive::default();
        let built = build(
            &mut ws,
            &mut state,
            &request("C0DEALDESK", "/sf"),
            "http://127.0.0.1:9",
            NOW,
        )
        .unwrap();
        let form = Params::from_body(None, built.form.as_bytes()).unwrap();
        for (key, value) in [
            ("team_id", TEAM_ID),
            ("channel_id", "C0DEALDESK"),
            ("channel_name", "deal-desk"),
            ("user_id", "U0DANA0001"),
            ("user_name", "dana.seller"),
            ("command", "/sf"),
            ("text", "find Acme & co"),
            ("api_app_id", APP_ID),
        ] {
            assert_eq!(form.str(key).unwrap(), Some(value), "{key}");
        }
        assert_eq!(
            form.str("response_url").unwrap(),
            Some(built.response_url.as_str())
        );
        assert!(
            built
                .response_url
                .starts_with("http://127.0.0.1:9/_emulator/response/")
        );
        assert_eq!(built.payload["trigger_id"], built.trigger_id);
        assert_eq!(
            state.exchange_trigger(&built.trigger_id, NOW + 1),
            Ok("U0DANA0001".to_owned())
        );

        let dm = build(
            &mut ws,
            &mut state,
            &request("D0DANA0001", "/sf"),
            "http://x",
            NOW,
        )
        .unwrap();
        assert_eq!(dm.payload["channel_name"], "directmessage");
        let mut fresh = Workspace::new(vec![], vec![User::new("U0DANA0001", "d@example.com")]);
        let own_dm = build(
            &mut fresh,
            &mut state,
            &request("D0DANA0001", "/sf"),
            "x",
            NOW,
        );
        assert!(own_dm.is_ok(), "the person's DM with the app opens");
        assert_eq!(fresh.dms().len(), 1);
        for (channel, command, error) in [
            ("C0NOPE", "/sf", "channel_not_found"),
            ("C0DEALDESK", "sf", "invalid_arguments"),
            ("C0DEALDESK", "/", "invalid_arguments"),
            ("C0DEALDESK", "/s f", "invalid_arguments"),
        ] {
            let refused = build(&mut ws, &mut state, &request(channel, command), "x", NOW);
            assert_eq!(
                refused.err().map(|r| r.error),
                Some(error),
                "{channel} {command}"
            );
        }
        let mut stranger = request("C0DEALDESK", "/sf");
        stranger.user = "U0GHOST001".into();
        let refused = build(&mut ws, &mut state, &stranger, "x", NOW);
        assert_eq!(refused.err().map(|r| r.error), Some("user_not_found"));
    }

    #[test]
    fn shows_the_immediate_answer_like_slack() {
        let mut ws = workspace();
        let mut state = Interactive::default();
        let req = request("C0DEALDESK", "/sf");
        let answer = |status, body: Value, ms| Answer {
            status,
            body,
            elapsed: Duration::from_millis(ms),
        };
        let mut apply = |a: Answer| apply_answer(&mut ws, &mut state, &req, &a, NOW);
        assert_eq!(apply(answer(200, json!(""), 5))["outcome"], "none");
        assert_eq!(apply(answer(200, json!({}), 5))["outcome"], "none");
        assert_eq!(
            apply(answer(200, json!({"text": "late"}), 3500))["outcome"],
            "late"
        );
        assert_eq!(
            apply(answer(500, json!({"text": "x"}), 5))["outcome"],
            "failed"
        );
        assert_eq!(
            apply(answer(200, json!({"text": "Only you"}), 5))["outcome"],
            "ephemeral"
        );
        assert_eq!(
            apply(answer(200, json!("plain"), 5))["outcome"],
            "ephemeral"
        );
        let shown = apply(answer(
            200,
            json!({"response_type": "in_channel", "text": "Everyone"}),
            5,
        ));
        assert_eq!(shown["outcome"], "in_channel");
        assert_eq!(state.ephemerals().len(), 2);
        assert_eq!(state.ephemerals()[0].via, "command");
        let posted: Vec<_> = ws.messages(Some("C0DEALDESK")).collect();
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].ts, shown["ts"].as_str().unwrap());
    }
}
