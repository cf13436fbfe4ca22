//! The interactivity payload (`payload=<json>` in a form body), decoded only after its
//! signature verified, into the few fields a job needs; and the button `value` sfrelay writes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::SalesforceId;

/// What a job needs of one verified interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// `block_actions`, `view_submission` or `view_closed`.
    pub kind: String,
    /// Whose signing secret verified it: `None` for the default app, else that org's app.
    pub app_org: Option<SalesforceId>,
    pub api_app_id: Option<String>,
    /// The workspace (`team.id`, else `user.team_id` in org-wide installs).
    pub team: Option<String>,
    pub user: String,
    pub action_id: Option<String>,
    /// The button's `value` (or a select's chosen option's).
    pub value: Option<String>,
    pub response_url: Option<String>,
    pub trigger_id: Option<String>,
    pub channel: Option<String>,
    pub message_ts: Option<String>,
    /// A modal's `callback_id`.
    pub callback_id: Option<String>,
    /// The modal submitted or closed.
    #[serde(default)]
    pub view_id: Option<String>,
    /// What sfrelay put in the modal when it opened it.
    #[serde(default)]
    pub private_metadata: Option<String>,
    /// A submitted modal's `state.values`: input block → element → what was entered.
    #[serde(default)]
    pub values: Option<Value>,
    /// The blocks and text of the message the click came from (absent for ephemeral ones),
    /// so the card can be rewritten in place.
    #[serde(default)]
    pub message_blocks: Option<Vec<Value>>,
    #[serde(default)]
    pub message_text: Option<String>,
    /// The clicked element's block.
    #[serde(default)]
    pub block_id: Option<String>,
    /// The modal the request itself opened for this click (its `trigger_id` was fresh).
    #[serde(default)]
    pub opened_view: Option<String>,
}

/// The interaction kinds `/slack/interactions` takes.
pub const KINDS: [&str; 3] = ["block_actions", "view_submission", "view_closed"];

/// The JSON in a form body's one `payload` field.
pub fn payload_json(body: &[u8]) -> Result<Value, String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| format!("the body is not a form (application/x-www-form-urlencoded): {e}"))?;
    let mut payloads = fields.into_iter().filter(|(name, _)| name == "payload");
    let (_, payload) = payloads.next().ok_or("the form has no payload field")?;
    if payloads.next().is_some() {
        return Err("the form has more than one payload field".into());
    }
    serde_json::from_str(&payload).map_err(|e| format!("payload is not JSON: {e}"))
}

/// Whether a form body is Slack's unsigned `ssl_check=1` health check.
pub fn is_ssl_check(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .is_ok_and(|fields| fields.iter().any(|(k, v)| k == "ssl_check" && v == "1"))
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Interaction {
    /// The fields of `payload`; an unknown kind or a payload without a user is refused.
    pub fn from_payload(payload: &Value, app_org: Option<SalesforceId>) -> Result<Self, String> {
        let kind = text(payload, "/type").ok_or("payload has no type")?;
        if !KINDS.contains(&kind.as_str()) {
            return Err(format!(
                "payload type {kind:?} is not one of {}",
                KINDS.join(", ")
            ));
        }
        let user = text(payload, "/user/id").ok_or("payload has no user.id")?;
        let action = payload.pointer("/actions/0");
        let action_text = |pointer: &str| action.and_then(|a| text(a, pointer));
        Ok(Interaction {
            app_org,
            api_app_id: text(payload, "/api_app_id"),
            team: text(payload, "/team/id").or_else(|| text(payload, "/user/team_id")),
            user,
            action_id: action_text("/action_id"),
            value: action_text("/value").or_else(|| action_text("/selected_option/value")),
            response_url: text(payload, "/response_url"),
            trigger_id: text(payload, "/trigger_id"),
            channel: text(payload, "/container/channel_id")
                .or_else(|| text(payload, "/channel/id")),
            message_ts: text(payload, "/container/message_ts")
                .or_else(|| text(payload, "/message/ts")),
            callback_id: text(payload, "/view/callback_id"),
            view_id: text(payload, "/view/id"),
            private_metadata: text(payload, "/view/private_metadata"),
            values: payload.pointer("/view/state/values").cloned(),
            message_blocks: payload
                .pointer("/message/blocks")
                .and_then(Value::as_array)
                .cloned(),
            message_text: text(payload, "/message/text"),
            block_id: action_text("/block_id"),
            opened_view: None,
            kind,
        })
    }
}

/// A button's `value` as sfrelay writes it: `sfrelay:v1:{org}:{object}:{record id}:{action}`,
/// and for a select's option `…:{action}:{choice}` (the value chosen, which may hold `:`).
/// It names what the button is about and never carries a secret; what it names is checked
/// again before anything is done (the org must be configured, the action declared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonValue {
    pub org: SalesforceId,
    pub object: String,
    pub record: SalesforceId,
    pub action: String,
    pub choice: Option<String>,
}

/// What opens every value sfrelay writes.
pub const VALUE_PREFIX: &str = "sfrelay:v1:";

/// Object and action names: API-name characters only, so a value cannot smuggle anything.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl ButtonValue {
    pub fn parse(value: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value.splitn(7, ':').collect();
        let (scheme, version, org, object, record, action, choice) = match parts[..] {
            [scheme, version, org, object, record, action] => {
                (scheme, version, org, object, record, action, None)
            }
            [scheme, version, org, object, record, action, choice] => {
                (scheme, version, org, object, record, action, Some(choice))
            }
            _ => return Err("not sfrelay:v1:{org}:{object}:{record id}:{action}".into()),
        };
        if scheme != "sfrelay" || version != "v1" {
            return Err(format!("{scheme}:{version} is not sfrelay:v1"));
        }
        let org = SalesforceId::parse(org).map_err(|e| format!("org: {e}"))?;
        if org.key_prefix() != "00D" {
            return Err("org: not an org Id (must start with 00D)".into());
        }
        if !is_name(object) {
            return Err(format!("object {object:?} is not an API name"));
        }
        let record = SalesforceId::parse(record).map_err(|e| format!("record id: {e}"))?;
        if !is_name(action) {
            return Err(format!("action {action:?} is not a name"));
        }
        if choice.is_some_and(str::is_empty) {
            return Err("the chosen value is empty".into());
        }
        Ok(ButtonValue {
            org,
            object: object.to_string(),
            record,
            action: action.to_string(),
            choice: choice.map(str::to_string),
        })
    }

    /// The value as a button or option carries it.
    pub fn render(&self) -> String {
        let mut value = format!(
            "{VALUE_PREFIX}{}:{}:{}:{}",
            self.org, self.object, self.record, self.action
        );
        if let Some(choice) = &self.choice {
            value.push(':');
            value.push_str(choice);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_button_value_names_org_object_record_and_action() {
        let value =
            ButtonValue::parse("sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:take")
                .unwrap();
        assert_eq!(value.org.as_str(), "00D5g000004ABCdEAO");
        assert_eq!(value.object, "Case");
        assert_eq!(value.record.as_str(), "5005g00000AbCdEAAV");
        assert_eq!(value.action, "take");
        assert_eq!(value.choice, None);
        let chosen =
            "sfrelay:v1:00D5g000004ABCdEAO:Opportunity:0065g00000AbCdEAAV:stage:Closed: Won";
        let value = ButtonValue::parse(chosen).unwrap();
        assert_eq!(value.choice.as_deref(), Some("Closed: Won"));
        assert_eq!(value.render(), chosen);
    }

    #[test]
    fn a_bad_button_value_is_refused_naming_what_is_wrong() {
        for (value, says) in [
            ("approve", "not sfrelay:v1"),
            (
                "sfrelay:v2:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:take",
                "v2",
            ),
            (
                "sfrelay:v1:0065g000004ABCdEAO:Case:5005g00000AbCdEAAV:take",
                "org",
            ),
            (
                "sfrelay:v1:00D5g000004ABCdEAO:Ca se:5005g00000AbCdEAAV:take",
                "object",
            ),
            ("sfrelay:v1:00D5g000004ABCdEAO:Case:nope:take", "record id"),
            (
                "sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:",
                "action",
            ),
            (
                "sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:take:",
                "chosen value",
            ),
        ] {
            let error = ButtonValue::parse(value).unwrap_err();
            assert!(error.contains(says), "{value}: {error}");
        }
    }

    #[test]
    fn a_block_action_keeps_what_the_job_needs() {
        let payload = json!({
            "type": "block_actions", "api_app_id": "A1", "team": null,
            "user": {"id": "U1", "team_id": "T1"},
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"},
            "response_url": "https://hooks.slack.com/actions/T1/1/x", "trigger_id": "t.1",
            "actions": [{"action_id": "take", "value": "v", "action_ts": "3.4"}]
        });
        let interaction = Interaction::from_payload(&payload, None).unwrap();
        assert_eq!(interaction.team.as_deref(), Some("T1"));
        assert_eq!(interaction.channel.as_deref(), Some("C1"));
        assert_eq!(interaction.message_ts.as_deref(), Some("1.2"));
        assert_eq!(interaction.value.as_deref(), Some("v"));
        assert_eq!(interaction.action_id.as_deref(), Some("take"));
    }

    #[test]
    fn unknown_kinds_and_forms_without_one_payload_are_refused() {
        let error =
            Interaction::from_payload(&json!({"type": "shortcut", "user": {"id": "U"}}), None)
                .unwrap_err();
        assert!(error.contains("shortcut"), "{error}");
        assert!(payload_json(b"a=1").unwrap_err().contains("no payload"));
        assert!(
            payload_json(b"payload=%7B%7D&payload=%7B%7D")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(is_ssl_check(b"ssl_check=1&token=x"));
        assert!(!is_ssl_check(b"payload=%7B%7D"));
    }
}
