//! The `response_url` sink: `POST /_emulator/response/{id}` takes a body as Slack takes an
//! interaction's answer, and `GET` lists what each id received, in order.
//!
//! A URL the emulator handed out with a click acts on that click's message like Slack:
//! `replace_original` rewrites it, `delete_original` deletes it, `response_type: in_channel`
//! posts a new message, anything else is an ephemeral message for the person who clicked.
//! A URL handed out with a slash command has no message of its own: its "original" is the
//! last message it posted `in_channel` (else `replace_original` shows a fresh ephemeral one).
//! Any other id only records what it gets. Either way a URL takes five answers within thirty
//! minutes of its first use (or of the click), then is refused.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::blocks;
use super::super::workspace::{Message, Workspace};
use super::{Ephemeral, Interactive};

/// Answers one `response_url` takes.
pub const MAX_USES: usize = 5;
/// How long a `response_url` works: 30 minutes.
pub const LIFETIME_MS: i64 = 30 * 60 * 1000;

/// The click or slash command a `response_url` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The conversation the clicked message is in, or the command was typed in.
    pub channel: String,
    /// The clicked message; none for a slash command.
    pub message_ts: Option<String>,
    /// Who clicked or typed the command.
    pub user: String,
}

#[derive(Debug)]
struct ResponseUrl {
    /// The click it was handed out with; `None` for ids the emulator never issued.
    origin: Option<Origin>,
    bodies: Vec<Value>,
    created_at_ms: i64,
    /// The last message a command's URL posted `in_channel`: what its `replace_original` and
    /// `delete_original` act on.
    posted: Option<String>,
}

/// Every `response_url` handed out or used.
#[derive(Debug, Default)]
pub struct ResponseUrls {
    urls: HashMap<String, ResponseUrl>,
}

/// Why an answer was not taken: the HTTP status and the `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub error: &'static str,
}

impl Refused {
    fn new(status: StatusCode, error: &'static str) -> Self {
        Refused { status, error }
    }
}

/// A JSON boolean, or the strings `true`/`false` some clients send.
fn flag(body: &Value, key: &str) -> bool {
    match body.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

impl Interactive {
    /// Hands out a `response_url` id for a click.
    pub fn issue_response_url(&mut self, origin: Origin, now_ms: i64) -> String {
        let n = self.next_number();
        let id = format!("{n}-{:016x}", rand::random::<u64>());
        self.responses.urls.insert(
            id.clone(),
            ResponseUrl {
                origin: Some(origin),
                bodies: Vec::new(),
                created_at_ms: now_ms,
                posted: None,
            },
        );
        id
    }

    /// What `id` received, in order.
    pub fn responses_to(&self, id: &str) -> Vec<Value> {
        self.responses
            .urls
            .get(id)
            .map(|url| url.bodies.clone())
            .unwrap_or_default()
    }

    /// Takes one answer posted to `id` and acts on the clicked message as Slack would.
    pub fn respond(
        &mut self,
        workspace: &mut Workspace,
        id: &str,
        body: &[u8],
        now_micros: i64,
    ) -> Result<(), Refused> {
        let now_ms = now_micros / 1000;
        let body = match serde_json::from_slice::<Value>(body) {
            Ok(body @ Value::Object(_)) => body,
            _ => return Err(Refused::new(StatusCode::BAD_REQUEST, "invalid_json")),
        };
        let url = self
            .responses
            .urls
            .entry(id.to_owned())
            .or_insert_with(|| ResponseUrl {
                origin: None,
                bodies: Vec::new(),
                created_at_ms: now_ms,
                posted: None,
            });
        if now_ms - url.created_at_ms > LIFETIME_MS {
            return Err(Refused::new(StatusCode::NOT_FOUND, "expired_url"));
        }
        if url.bodies.len() >= MAX_USES {
            return Err(Refused::new(StatusCode::NOT_FOUND, "used_url"));
        }
        let blocks = match body.get("blocks") {
            None | Some(Value::Null) => None,
            Some(raw) => Some(
                blocks::parse(raw)
                    .and_then(|b| blocks::validate(&b).map(|()| b))
                    .map_err(|_| Refused::new(StatusCode::BAD_REQUEST, "invalid_blocks"))?,
            ),
        };
        let text = body
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let delete = flag(&body, "delete_original");
        if !delete && text.is_empty() && blocks.as_ref().is_none_or(Vec::is_empty) {
            return Err(Refused::new(StatusCode::BAD_REQUEST, "no_text"));
        }
        let in_channel = body.get("response_type").and_then(Value::as_str) == Some("in_channel");
        let replace = flag(&body, "replace_original");
        url.bodies.push(body);
        let Some(origin) = url.origin.clone() else {
            return Ok(());
        };
        // A click's original is the clicked message; a command's, what it last posted.
        let original = origin.message_ts.clone().or_else(|| url.posted.clone());
        let blocks = blocks.map(Value::Array);
        if delete {
            if let Some(ts) = &original {
                workspace.remove_message(&origin.channel, ts);
            }
        } else if let Some(ts) = original.as_ref().filter(|_| replace) {
            if let Some(message) = workspace.message_mut(&origin.channel, ts) {
                message.text = text;
                message.blocks = blocks;
                message.updated = true;
                message.updated_at_ms = Some(now_ms);
            }
        } else if in_channel {
            let ts = workspace.next_ts(now_micros);
            workspace.push_message(Message {
                channel: origin.channel,
                ts: ts.clone(),
                text,
                blocks,
                thread_ts: None,
                metadata: None,
                updated: false,
                received_at_ms: now_ms,
                updated_at_ms: None,
            });
            if origin.message_ts.is_none()
                && let Some(url) = self.responses.urls.get_mut(id)
            {
                url.posted = Some(ts);
            }
        } else {
            let message_ts = workspace.next_ts(now_micros);
            self.push_ephemeral(Ephemeral {
                channel: origin.channel,
                user: origin.user,
                text,
                blocks,
                thread_ts: None,
                message_ts,
                via: "response_url",
                received_at_ms: now_ms,
            });
        }
        Ok(())
    }
}

/// The JSON an answer to a refused post carries.
pub fn refusal_json(refused: Refused) -> Value {
    json!({"ok": false, "error": refused.error})
}

#[cfg(test)]
mod tests {
    use super::super::super::workspace::Channel;
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    fn workspace_with_card() -> (Workspace, String) {
        let mut ws = Workspace::new(vec![Channel::new("C0DEALDESK", "deal-desk", false)], vec![]);
        let ts = ws.next_ts(NOW);
        ws.push_message(Message {
            channel: "C0DEALDESK".into(),
            ts: ts.clone(),
            text: "Approve?".into(),
            blocks: Some(json!([{"type": "divider"}])),
            thread_ts: None,
            metadata: None,
            updated: false,
            received_at_ms: 0,
            updated_at_ms: None,
        });
        (ws, ts)
    }

    fn origin(ts: &str) -> Origin {
        Origin {
            channel: "C0DEALDESK".into(),
            message_ts: Some(ts.into()),
            user: "U0DANA0001".into(),
        }
    }

    fn post(
        state: &mut Interactive,
        ws: &mut Workspace,
        id: &str,
        body: Value,
    ) -> Result<(), Refused> {
        state.respond(ws, id, body.to_string().as_bytes(), NOW)
    }

    #[test]
    fn acts_on_the_clicked_message_like_slack() {
        let (mut ws, ts) = workspace_with_card();
        let mut state = Interactive::default();
        let id = state.issue_response_url(origin(&ts), NOW / 1000);

        post(
            &mut state,
            &mut ws,
            &id,
            json!({"text": "Only you see this"}),
        )
        .unwrap();
        assert_eq!(state.ephemerals()[0].user, "U0DANA0001");
        assert_eq!(state.ephemerals()[0].via, "response_url");
        assert_eq!(
            ws.messages(None).count(),
            1,
            "an ephemeral is not in history"
        );

        let approved = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U0DANA0001>"}}]);
        post(
            &mut state,
            &mut ws,
            &id,
            json!({"replace_original": true, "text": "Approved", "blocks": approved}),
        )
        .unwrap();
        let card = ws.message("C0DEALDESK", &ts).unwrap();
        assert_eq!((card.text.as_str(), card.updated), ("Approved", true));
        assert_eq!(card.blocks.as_ref(), Some(&approved));

        post(
            &mut state,
            &mut ws,
            &id,
            json!({"response_type": "in_channel", "text": "Everyone sees this"}),
        )
        .unwrap();
        assert_eq!(ws.messages(Some("C0DEALDESK")).count(), 2);

        post(&mut state, &mut ws, &id, json!({"delete_original": true})).unwrap();
        assert!(ws.message("C0DEALDESK", &ts).is_none());
        assert_eq!(state.responses_to(&id).len(), 4);

        assert_eq!(
            post(&mut state, &mut ws, &id, json!({})),
            Err(Refused::new(StatusCode::BAD_REQUEST, "no_text"))
        );
        assert_eq!(
            post(&mut state, &mut ws, &id, json!({"blocks": [{"type": "x"}]})),
            Err(Refused::new(StatusCode::BAD_REQUEST, "invalid_blocks"))
        );
        assert_eq!(
            state.respond(&mut ws, &id, b"not json", NOW),
            Err(Refused::new(StatusCode::BAD_REQUEST, "invalid_json"))
        );
        post(&mut state, &mut ws, &id, json!({"text": "fifth"})).unwrap();
        assert_eq!(
            post(&mut state, &mut ws, &id, json!({"text": "sixth"})),
            Err(Refused::new(StatusCode::NOT_FOUND, "used_url")),
            "five answers, refused ones not counted"
        );
        assert_eq!(state.responses_to(&id).len(), 5);
    }

    #[test]
    fn a_commands_url_acts_on_what_it_posted() {
        let (mut ws, _) = workspace_with_card();
        let mut state = Interactive::default();
        let command = Origin {
            channel: "C0DEALDESK".into(),
            message_ts: None,
            user: "U0DANA0001".into(),
        };
        let id = state.issue_response_url(command, NOW / 1000);
        post(
            &mut state,
            &mut ws,
            &id,
            json!({"replace_original": true, "text": "a"}),
        )
        .unwrap();
        assert_eq!(
            state.ephemerals().len(),
            1,
            "nothing posted yet: shown to the person"
        );
        post(&mut state, &mut ws, &id, json!({"delete_original": true})).unwrap();
        assert_eq!(ws.messages(None).count(), 1, "nothing of its own to delete");
        post(
            &mut state,
            &mut ws,
            &id,
            json!({"response_type": "in_channel", "text": "b"}),
        )
        .unwrap();
        let posted = ws.messages(None).last().unwrap().ts.clone();
        post(
            &mut state,
            &mut ws,
            &id,
            json!({"replace_original": "true", "text": "c"}),
        )
        .unwrap();
        assert_eq!(ws.message("C0DEALDESK", &posted).unwrap().text, "c");
        post(&mut state, &mut ws, &id, json!({"delete_original": true})).unwrap();
        assert!(ws.message("C0DEALDESK", &posted).is_none());
        assert_eq!(ws.messages(None).count(), 1, "the card is untouched");
    }

    #[test]
    fn any_id_records_and_every_url_expires_after_thirty_minutes() {
        let (mut ws, ts) = workspace_with_card();
        let mut state = Interactive::default();
        post(&mut state, &mut ws, "take", json!({"text": "recorded"})).unwrap();
        assert_eq!(state.responses_to("take"), [json!({"text": "recorded"})]);
        assert!(state.ephemerals().is_empty(), "no click to act on");
        assert!(state.responses_to("never").is_empty());

        let id = state.issue_response_url(origin(&ts), NOW / 1000);
        let late = NOW + (LIFETIME_MS + 1) * 1000;
        for id in [id.as_str(), "take"] {
            assert_eq!(
                state.respond(&mut ws, id, br#"{"text":"late"}"#, late),
                Err(Refused::new(StatusCode::NOT_FOUND, "expired_url"))
            );
        }
        assert_eq!(
            refusal_json(Refused::new(StatusCode::NOT_FOUND, "used_url")),
            json!({"ok": false, "error": "used_url"})
        );
    }
}
