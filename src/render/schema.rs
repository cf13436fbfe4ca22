//! The part of Slack's Block Kit that templates are checked against: which block types exist,
//! which keys each block and element allows or needs, and what shape each value must have.
//!
//! Kept apart from the compiler that walks a template with them because they are data: letting
//! templates use another block type or key Slack accepts means editing these tables, not the
//! walk.

/// Block types a template may use.
pub(super) const BLOCK_TYPES: [&str; 8] = [
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "input",
];

/// What a value must look like at its place in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Message,
    Block,
    /// A text object, `plain_text` or `mrkdwn`.
    Text,
    /// A text object that must be `plain_text` (header text, button labels).
    PlainText,
    /// An element of a context block: a text object or an image.
    ContextElement,
    /// An element of an actions block: a button or a static select.
    ActionElement,
    /// An option of a select: `text` and `value`.
    SelectOption,
    /// A section accessory: a button or an image.
    Accessory,
    Str,
    Bool,
    Style,
    /// Anything (rich_text, input internals, confirm dialogs): strings compiled, not checked.
    Any,
    /// An array of the given element shape.
    ArrayOf(&'static Shape),
}

/// The `blocks` of a message.
pub(super) const BLOCKS: Shape = Shape::ArrayOf(&Shape::Block);
const FIELDS: Shape = Shape::ArrayOf(&Shape::Text);
const CONTEXT_ELEMENTS: Shape = Shape::ArrayOf(&Shape::ContextElement);
const ACTION_ELEMENTS: Shape = Shape::ArrayOf(&Shape::ActionElement);

/// Keys each block type allows (besides `when`) and the ones it needs.
pub(super) fn block_keys(ty: &str) -> (&'static [(&'static str, Shape)], &'static [&'static str]) {
    use Shape::*;
    match ty {
        "section" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("text", Text),
                ("fields", FIELDS),
                ("accessory", Accessory),
                ("expand", Bool),
            ],
            &[],
        ),
        "header" => (
            &[("type", Str), ("block_id", Str), ("text", PlainText)],
            &["text"],
        ),
        "context" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("elements", CONTEXT_ELEMENTS),
            ],
            &["elements"],
        ),
        "actions" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("elements", ACTION_ELEMENTS),
            ],
            &["elements"],
        ),
        "image" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("image_url", Str),
                ("alt_text", Str),
                ("title", PlainText),
                ("slack_file", Any),
            ],
            &["alt_text"],
        ),
        "rich_text" => (
            &[("type", Str), ("block_id", Str), ("elements", Any)],
            &["elements"],
        ),
        "input" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("label", PlainText),
                ("element", Any),
                ("dispatch_action", Bool),
                ("hint", PlainText),
                ("optional", Bool),
            ],
            &["label", "element"],
        ),
        _ => (&[("type", Str), ("block_id", Str)], &[]), // divider
    }
}

/// Keys of a text object (`plain_text` or `mrkdwn`).
pub(super) const TEXT_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("text", Shape::Str),
    ("emoji", Shape::Bool),
    ("verbatim", Shape::Bool),
];

/// Keys of a button.
pub(super) const BUTTON_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("text", Shape::PlainText),
    ("action_id", Shape::Str),
    ("url", Shape::Str),
    ("value", Shape::Str),
    ("style", Shape::Style),
    ("confirm", Shape::Any),
    ("accessibility_label", Shape::Str),
];

/// Keys of a static select (its options may be an `each` loop).
pub(super) const SELECT_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("action_id", Shape::Str),
    ("placeholder", Shape::PlainText),
    ("options", Shape::ArrayOf(&Shape::SelectOption)),
    ("initial_option", Shape::Any),
    ("confirm", Shape::Any),
    ("focus_on_load", Shape::Bool),
];

/// Keys of a select's option.
pub(super) const OPTION_KEYS: &[(&str, Shape)] = &[
    ("text", Shape::PlainText),
    ("value", Shape::Str),
    ("description", Shape::PlainText),
];

/// Keys of an image element (in a context block or as an accessory).
pub(super) const IMAGE_ELEMENT_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("image_url", Shape::Str),
    ("alt_text", Shape::Str),
    ("slack_file", Shape::Any),
];
