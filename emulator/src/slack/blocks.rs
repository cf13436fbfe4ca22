//! Block Kit validation with Slack's documented size limits.
//!
//! The point is to catch messages that real Slack would refuse with `invalid_blocks` before they
//! reach production, so lengths are counted in characters exactly as Slack counts them.

use serde_json::{Map, Value};

/// Most blocks one message may carry.
pub const MAX_BLOCKS: usize = 50;
/// Longest header text.
pub const MAX_HEADER_TEXT: usize = 150;
/// Longest section (and other general) text.
pub const MAX_SECTION_TEXT: usize = 3000;
/// Most fields in a section.
pub const MAX_SECTION_FIELDS: usize = 10;
/// Longest text of one section field.
pub const MAX_FIELD_TEXT: usize = 2000;
/// Most elements in a context block.
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// Most elements in an actions block.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// Longest button label.
pub const MAX_BUTTON_TEXT: usize = 75;
/// Longest URL (buttons and images).
pub const MAX_URL: usize = 3000;
/// Longest button value.
pub const MAX_BUTTON_VALUE: usize = 2000;
/// Longest `action_id` or `block_id`.
pub const MAX_ID: usize = 255;
/// Longest image alt text (and image title).
pub const MAX_ALT_TEXT: usize = 2000;

/// Block types Slack knows.
const BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "input",
];

/// Interactive and display element types allowed inside section, actions and input blocks.
const ELEMENT_TYPES: &[&str] = &[
    "button",
    "checkboxes",
    "datepicker",
    "datetimepicker",
    "email_text_input",
    "file_input",
    "image",
    "number_input",
    "overflow",
    "plain_text_input",
    "radio_buttons",
    "rich_text_input",
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
    "timepicker",
    "url_text_input",
    "workflow_button",
];

/// The first problem found in a `blocks` argument, located with a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockError {
    /// What is wrong, in Slack's words where possible.
    pub message: String,
    /// Where, e.g. `/blocks/0/text/text`.
    pub pointer: String,
}

impl BlockError {
    fn new(message: impl Into<String>, pointer: &Ptr) -> Self {
        BlockError {
            message: message.into(),
            pointer: pointer.0.clone(),
        }
    }

    /// The line Slack puts in `response_metadata.messages`.
    pub fn to_slack_message(&self) -> String {
        format!("[ERROR] {} [json-pointer:{}]", self.message, self.pointer)
    }
}

type Check = Result<(), BlockError>;

/// A JSON pointer under construction.
#[derive(Debug, Clone)]
struct Ptr(String);

impl Ptr {
    fn at(&self, key: impl std::fmt::Display) -> Ptr {
        Ptr(format!("{}/{key}", self.0))
    }
}

/// Reads the `blocks` argument: a JSON array, or a string holding one (as form posts send).
pub fn parse(value: &Value) -> Result<Vec<Value>, BlockError> {
    let root = Ptr("/blocks".into());
    let parsed;
    let value = match value {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| BlockError::new("blocks must be a JSON array", &root))?;
            &parsed
        }
        other => other,
    };
    match value {
        Value::Array(items) => Ok(items.clone()),
        _ => Err(BlockError::new("must be an array", &root)),
    }
}

/// Checks a message's blocks against Block Kit's shape and size limits.
pub fn validate(blocks: &[Value]) -> Check {
    validate_at_most(blocks, MAX_BLOCKS, "/blocks")
}

/// Checks blocks as [`validate`] does, allowing up to `max` of them (modals take 100), with
/// pointers under `root` (e.g. `/view/blocks`).
pub fn validate_at_most(blocks: &[Value], max: usize, root: &str) -> Check {
    let root = Ptr(root.into());
    if blocks.len() > max {
        return Err(BlockError::new(
            format!("no more than {max} items allowed"),
            &root,
        ));
    }
    for (i, block) in blocks.iter().enumerate() {
        validate_block(block, &root.at(i))?;
    }
    Ok(())
}

fn validate_block(block: &Value, at: &Ptr) -> Check {
    let obj = object(block, at)?;
    let kind = required_str(obj, "type", at)?;
    if !BLOCK_TYPES.contains(&kind) {
        return Err(BlockError::new(
            format!("unsupported type `{kind}`"),
            &at.at("type"),
        ));
    }
    optional_len(obj, "block_id", MAX_ID, at)?;
    match kind {
        "header" => text_object(
            required(obj, "text", at)?,
            &at.at("text"),
            MAX_HEADER_TEXT,
            true,
        ),
        "section" => section(obj, at),
        "context" => {
            let elements = array(obj, "elements", 1, MAX_CONTEXT_ELEMENTS, at)?;
            for (i, el) in elements.iter().enumerate() {
                context_element(el, &at.at("elements").at(i))?;
            }
            Ok(())
        }
        "actions" => {
            let elements = array(obj, "elements", 1, MAX_ACTIONS_ELEMENTS, at)?;
            for (i, el) in elements.iter().enumerate() {
                element(el, &at.at("elements").at(i))?;
            }
            Ok(())
        }
        "image" => image(obj, at),
        "rich_text" => array(obj, "elements", 0, usize::MAX, at).map(|_| ()),
        "input" => {
            text_object(
                required(obj, "label", at)?,
                &at.at("label"),
                MAX_FIELD_TEXT,
                true,
            )?;
            element(required(obj, "element", at)?, &at.at("element"))
        }
        _ => Ok(()), // divider has nothing to check
    }
}

fn section(obj: &Map<String, Value>, at: &Ptr) -> Check {
    let text = obj.get("text");
    let fields = obj.get("fields");
    if text.is_none() && fields.is_none() {
        return Err(BlockError::new("must provide either text or fields", at));
    }
    if let Some(text) = text {
        text_object(text, &at.at("text"), MAX_SECTION_TEXT, false)?;
    }
    if fields.is_some() {
        let fields = array(obj, "fields", 1, MAX_SECTION_FIELDS, at)?;
        for (i, field) in fields.iter().enumerate() {
            text_object(field, &at.at("fields").at(i), MAX_FIELD_TEXT, false)?;
        }
    }
    if let Some(accessory) = obj.get("accessory") {
        element(accessory, &at.at("accessory"))?;
    }
    Ok(())
}

fn image(obj: &Map<String, Value>, at: &Ptr) -> Check {
    if let Some(file) = obj.get("slack_file") {
        object(file, &at.at("slack_file"))?;
    } else {
        let url = required_str(obj, "image_url", at)?;
        max_len(url, MAX_URL, &at.at("image_url"))?;
    }
    let alt = required_str(obj, "alt_text", at)?;
    max_len(alt, MAX_ALT_TEXT, &at.at("alt_text"))?;
    if let Some(title) = obj.get("title") {
        text_object(title, &at.at("title"), MAX_ALT_TEXT, true)?;
    }
    Ok(())
}

fn context_element(el: &Value, at: &Ptr) -> Check {
    let obj = object(el, at)?;
    match required_str(obj, "type", at)? {
        "image" => image(obj, at),
        _ => text_object(el, at, MAX_SECTION_TEXT, false),
    }
}

/// An interactive element; buttons get their specific limits, others only the common ones.
fn element(el: &Value, at: &Ptr) -> Check {
    let obj = object(el, at)?;
    let kind = required_str(obj, "type", at)?;
    if !ELEMENT_TYPES.contains(&kind) {
        return Err(BlockError::new(
            format!("unsupported element type `{kind}`"),
            &at.at("type"),
        ));
    }
    optional_len(obj, "action_id", MAX_ID, at)?;
    match kind {
        "button" => {
            text_object(
                required(obj, "text", at)?,
                &at.at("text"),
                MAX_BUTTON_TEXT,
                true,
            )?;
            optional_len(obj, "url", MAX_URL, at)?;
            optional_len(obj, "value", MAX_BUTTON_VALUE, at)
        }
        "image" => image(obj, at),
        _ => Ok(()),
    }
}

/// A composition text object: `{"type": "mrkdwn"|"plain_text", "text": "..."}`.
fn text_object(value: &Value, at: &Ptr, max: usize, plain_only: bool) -> Check {
    let obj = object(value, at)?;
    let kind = required_str(obj, "type", at)?;
    let allowed = if plain_only {
        kind == "plain_text"
    } else {
        kind == "plain_text" || kind == "mrkdwn"
    };
    if !allowed {
        let expected = if plain_only {
            "plain_text"
        } else {
            "plain_text or mrkdwn"
        };
        return Err(BlockError::new(
            format!("must be {expected}, not `{kind}`"),
            &at.at("type"),
        ));
    }
    let text = required_str(obj, "text", at)?;
    if text.is_empty() {
        return Err(BlockError::new(
            "must be more than 0 characters",
            &at.at("text"),
        ));
    }
    max_len(text, max, &at.at("text"))
}

fn object<'a>(value: &'a Value, at: &Ptr) -> Result<&'a Map<String, Value>, BlockError> {
    value
        .as_object()
        .ok_or_else(|| BlockError::new("must be an object", at))
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str, at: &Ptr) -> Result<&'a Value, BlockError> {
    obj.get(key)
        .ok_or_else(|| BlockError::new(format!("missing required field: {key}"), at))
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &Ptr,
) -> Result<&'a str, BlockError> {
    required(obj, key, at)?
        .as_str()
        .ok_or_else(|| BlockError::new("must be a string", &at.at(key)))
}

fn optional_len(obj: &Map<String, Value>, key: &str, max: usize, at: &Ptr) -> Check {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::String(s)) => max_len(s, max, &at.at(key)),
        Some(_) => Err(BlockError::new("must be a string", &at.at(key))),
    }
}

fn array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    min: usize,
    max: usize,
    at: &Ptr,
) -> Result<&'a Vec<Value>, BlockError> {
    let items = required(obj, key, at)?
        .as_array()
        .ok_or_else(|| BlockError::new("must be an array", &at.at(key)))?;
    if items.len() < min {
        return Err(BlockError::new(
            format!("must provide at least {min} items"),
            &at.at(key),
        ));
    }
    if items.len() > max {
        return Err(BlockError::new(
            format!("no more than {max} items allowed"),
            &at.at(key),
        ));
    }
    Ok(items)
}

/// Slack counts characters, not bytes.
fn max_len(text: &str, max: usize, at: &Ptr) -> Check {
    if text.chars().count() > max {
        return Err(BlockError::new(
            format!("must be less than {} characters", max + 1),
            at,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(blocks: Value) -> Check {
        validate(&parse(&blocks)?)
    }

    fn pointer_of(blocks: Value) -> String {
        check(blocks).unwrap_err().pointer
    }

    fn text(kind: &str, n: usize) -> Value {
        json!({"type": kind, "text": "é".repeat(n)})
    }

    #[test]
    fn accepts_a_typical_message() {
        let blocks = json!([
            {"type": "header", "text": text("plain_text", MAX_HEADER_TEXT)},
            {"type": "section", "block_id": "b".repeat(MAX_ID), "text": text("mrkdwn", MAX_SECTION_TEXT),
             "fields": (0..MAX_SECTION_FIELDS).map(|_| text("mrkdwn", MAX_FIELD_TEXT)).collect::<Vec<_>>(),
             "accessory": {"type": "button", "text": text("plain_text", 5), "url": "https://x"}},
            {"type": "context", "elements": [text("mrkdwn", 10),
                {"type": "image", "image_url": "https://i", "alt_text": "a"}]},
            {"type": "divider"},
            {"type": "actions", "elements": [{"type": "button", "action_id": "a".repeat(MAX_ID),
                "text": text("plain_text", MAX_BUTTON_TEXT), "value": "v".repeat(MAX_BUTTON_VALUE),
                "url": "u".repeat(MAX_URL)}]},
            {"type": "image", "image_url": "u".repeat(MAX_URL), "alt_text": "a".repeat(MAX_ALT_TEXT)},
            {"type": "rich_text", "elements": []},
            {"type": "input", "label": text("plain_text", 3), "element": {"type": "plain_text_input"}}
        ]);
        assert_eq!(check(blocks), Ok(()));
    }

    #[test]
    fn accepts_blocks_as_a_json_string() {
        let s = json!([{"type": "divider"}]).to_string();
        assert_eq!(parse(&Value::String(s)).map(|b| b.len()), Ok(1));
        assert!(parse(&json!("not json")).is_err());
        assert!(parse(&json!({"type": "divider"})).is_err());
    }

    #[test]
    fn enforces_counts() {
        let many = vec![json!({"type": "divider"}); MAX_BLOCKS];
        assert_eq!(check(json!(many)), Ok(()));
        let too_many = vec![json!({"type": "divider"}); MAX_BLOCKS + 1];
        assert_eq!(pointer_of(json!(too_many)), "/blocks");

        let fields = vec![text("mrkdwn", 1); MAX_SECTION_FIELDS + 1];
        assert_eq!(
            pointer_of(json!([{"type": "section", "fields": fields}])),
            "/blocks/0/fields"
        );
        let elements = vec![text("mrkdwn", 1); MAX_CONTEXT_ELEMENTS + 1];
        assert_eq!(
            pointer_of(json!([{"type": "context", "elements": elements}])),
            "/blocks/0/elements"
        );
        let button = json!({"type": "button", "text": text("plain_text", 1)});
        let buttons = vec![button.clone(); MAX_ACTIONS_ELEMENTS];
        assert_eq!(
            check(json!([{"type": "actions", "elements": buttons}])),
            Ok(())
        );
        let buttons = vec![button; MAX_ACTIONS_ELEMENTS + 1];
        assert_eq!(
            pointer_of(json!([{"type": "actions", "elements": buttons}])),
            "/blocks/0/elements"
        );
    }

    #[test]
    fn enforces_lengths_in_characters() {
        let cases = [
            (
                json!({"type": "header", "text": text("plain_text", MAX_HEADER_TEXT + 1)}),
                "/blocks/0/text/text",
            ),
            (
                json!({"type": "section", "text": text("mrkdwn", MAX_SECTION_TEXT + 1)}),
                "/blocks/0/text/text",
            ),
            (
                json!({"type": "section", "fields": [text("mrkdwn", MAX_FIELD_TEXT + 1)]}),
                "/blocks/0/fields/0/text",
            ),
            (
                json!({"type": "divider", "block_id": "b".repeat(MAX_ID + 1)}),
                "/blocks/0/block_id",
            ),
            (
                json!({"type": "actions", "elements": [{"type": "button", "text": text("plain_text", MAX_BUTTON_TEXT + 1)}]}),
                "/blocks/0/elements/0/text/text",
            ),
            (
                json!({"type": "actions", "elements": [{"type": "button", "text": text("plain_text", 1), "url": "u".repeat(MAX_URL + 1)}]}),
                "/blocks/0/elements/0/url",
            ),
            (
                json!({"type": "actions", "elements": [{"type": "button", "text": text("plain_text", 1), "value": "v".repeat(MAX_BUTTON_VALUE + 1)}]}),
                "/blocks/0/elements/0/value",
            ),
            (
                json!({"type": "actions", "elements": [{"type": "button", "text": text("plain_text", 1), "action_id": "a".repeat(MAX_ID + 1)}]}),
                "/blocks/0/elements/0/action_id",
            ),
            (
                json!({"type": "image", "image_url": "u".repeat(MAX_URL + 1), "alt_text": "a"}),
                "/blocks/0/image_url",
            ),
            (
                json!({"type": "image", "image_url": "u", "alt_text": "a".repeat(MAX_ALT_TEXT + 1)}),
                "/blocks/0/alt_text",
            ),
        ];
        for (block, pointer) in cases {
            let err = check(json!([block])).unwrap_err();
            assert_eq!(err.pointer, pointer, "{block}");
            assert!(err.message.starts_with("must be less than"), "{err:?}");
        }
    }

    #[test]
    fn enforces_shapes() {
        let cases = [
            (json!("divider"), "/blocks/0"),
            (json!({"text": "x"}), "/blocks/0"),
            (json!({"type": "carousel"}), "/blocks/0/type"),
            (
                json!({"type": "header", "text": text("mrkdwn", 3)}),
                "/blocks/0/text/type",
            ),
            (
                json!({"type": "header", "text": "plain string"}),
                "/blocks/0/text",
            ),
            (json!({"type": "section"}), "/blocks/0"),
            (
                json!({"type": "section", "text": {"type": "markdown", "text": "x"}}),
                "/blocks/0/text/type",
            ),
            (
                json!({"type": "section", "text": {"type": "mrkdwn", "text": 5}}),
                "/blocks/0/text/text",
            ),
            (
                json!({"type": "section", "text": {"type": "mrkdwn", "text": ""}}),
                "/blocks/0/text/text",
            ),
            (
                json!({"type": "section", "text": {"type": "mrkdwn"}}),
                "/blocks/0/text",
            ),
            (
                json!({"type": "actions", "elements": [{"type": "teleporter"}]}),
                "/blocks/0/elements/0/type",
            ),
            (
                json!({"type": "actions", "elements": []}),
                "/blocks/0/elements",
            ),
            (
                json!({"type": "context", "elements": [{"type": "image", "image_url": "u"}]}),
                "/blocks/0/elements/0",
            ),
            (json!({"type": "image", "alt_text": "a"}), "/blocks/0"),
        ];
        for (block, pointer) in cases {
            assert_eq!(pointer_of(json!([block])), pointer, "{block}");
        }
    }

    #[test]
    fn formats_like_slack() {
        let err = check(json!([{"type": "header", "text": text("plain_text", 151)}])).unwrap_err();
        assert_eq!(
            err.to_slack_message(),
            "[ERROR] must be less than 151 characters [json-pointer:/blocks/0/text/text]"
        );
    }
}
