//! Buttons a card can carry, declared in route files under `[buttons.<name>]` and placed by a
//! template with `action("<name>")` (a select's options with `action("<name>", value)`).
//! Adding a button is editing files: what it does is one of the kinds below, with its details.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::route::{LoadError, line_of};

/// Names sfrelay gives its own buttons (an approval gate's); a route cannot declare them.
pub const RESERVED: [&str; 2] = [GATE_APPROVE, GATE_REJECT];
/// The approve button of an approval gate's card.
pub const GATE_APPROVE: &str = "gate_approve";
/// The reject button of an approval gate's card (asks for a reason first).
pub const GATE_REJECT: &str = "gate_reject";

/// What a click does.
#[derive(Debug, Clone, PartialEq)]
pub enum ButtonKind {
    /// Opens a modal (subject, due date, comment); submitting it creates a Task on the record,
    /// owned by the person who clicked where they have a Salesforce user.
    LogTask {
        /// The Task's `Status` (a per-org picklist).
        status: String,
        /// The subject the modal starts with.
        subject: Option<String>,
        /// The due date the modal starts with, in days from today.
        due_in_days: Option<u32>,
    },
    /// Sets `field` to `value` when given, else to the option chosen in the select; refused
    /// when the record changed after the card was shown.
    SetField {
        field: String,
        value: Option<serde_json::Value>,
    },
    /// Makes the person who clicked the record's owner (`OwnerId`), assignment rules off.
    Take,
    /// Approves or rejects the record's pending Salesforce approval (Process Approvals).
    Workitem { approve: bool },
}

impl ButtonKind {
    /// Whether the click opens a modal at once (in the request, while its trigger is fresh).
    pub fn opens_modal(&self) -> bool {
        matches!(self, ButtonKind::LogTask { .. })
    }
}

/// One declared button.
#[derive(Debug, Clone, PartialEq)]
pub struct Button {
    pub name: String,
    pub kind: ButtonKind,
    /// The file that declares it (a route's, or a buttons file).
    pub file: std::path::PathBuf,
    pub line: usize,
}

/// A `[buttons.<name>]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ButtonFile {
    kind: String,
    field: Option<String>,
    value: Option<toml::Value>,
    status: Option<String>,
    subject: Option<String>,
    due_in_days: Option<u32>,
}

/// Whether `s` is a button name: letters, digits, `_` and `-`, at most 80.
pub fn is_button_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 80
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_field_name(s: &str) -> bool {
    s.len() <= 255
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The kinds, as a route file names them.
const KINDS: &str = "log_task, set_field, take, approve_workitem, reject_workitem";

/// A file of `[buttons]` only, shared by every card.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ButtonsOnly {
    buttons: BTreeMap<String, Spanned<ButtonFile>>,
}

/// Whether a file in `routes/` declares buttons only (it names no `object`).
pub fn is_buttons_file(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .is_ok_and(|t| !t.contains_key("object") && t.contains_key("buttons"))
}

/// Reads a buttons-only file.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Button>, Vec<LoadError>> {
    let parsed: ButtonsOnly = toml::from_str(text).map_err(|e| {
        vec![LoadError {
            file: file.to_path_buf(),
            line: line_of(text, e.span().map_or(0, |s| s.start)),
            message: e.message().to_string(),
        }]
    })?;
    let mut errors = Vec::new();
    let buttons = parse(file, text, &parsed.buttons, &mut errors);
    if errors.is_empty() {
        Ok(buttons)
    } else {
        Err(errors)
    }
}

/// Checks the `[buttons]` of one route file.
pub(super) fn parse(
    file: &Path,
    text: &str,
    tables: &BTreeMap<String, Spanned<ButtonFile>>,
    errors: &mut Vec<LoadError>,
) -> Vec<Button> {
    let mut buttons = Vec::new();
    for (name, table) in tables {
        let line = line_of(text, table.span().start);
        let mut fail = |message: String| {
            errors.push(LoadError {
                file: file.to_path_buf(),
                line,
                message: format!("buttons.{name}: {message}"),
            });
        };
        if !is_button_name(name) {
            fail("a button name is letters, digits, - and _ (at most 80)".into());
            continue;
        }
        if RESERVED.contains(&name.as_str()) {
            fail("this name is sfrelay's own (approval gates); choose another".into());
            continue;
        }
        let b = table.get_ref();
        let extra = |keys: &[(&str, bool)]| -> Vec<String> {
            keys.iter()
                .filter(|(_, present)| *present)
                .map(|(k, _)| (*k).to_string())
                .collect()
        };
        let kind = match b.kind.as_str() {
            "log_task" => {
                let unused = extra(&[("field", b.field.is_some()), ("value", b.value.is_some())]);
                if !unused.is_empty() {
                    fail(format!("log_task takes no {}", unused.join(", ")));
                    continue;
                }
                if b.subject.as_ref().is_some_and(|s| s.chars().count() > 255) {
                    fail("subject is longer than a Task's 255 characters".into());
                    continue;
                }
                ButtonKind::LogTask {
                    status: b.status.clone().unwrap_or_else(|| "Not Started".into()),
                    subject: b.subject.clone(),
                    due_in_days: b.due_in_days,
                }
            }
            "set_field" => {
                let unused = extra(&[
                    ("status", b.status.is_some()),
                    ("subject", b.subject.is_some()),
                    ("due_in_days", b.due_in_days.is_some()),
                ]);
                if !unused.is_empty() {
                    fail(format!("set_field takes no {}", unused.join(", ")));
                    continue;
                }
                let Some(field) = b.field.clone() else {
                    fail("set_field needs field = \"<field API name>\"".into());
                    continue;
                };
                if !is_field_name(&field) {
                    fail(format!("field {field:?} is not a field API name"));
                    continue;
                }
                if field == "OwnerId" {
                    fail("to change the owner use kind = \"take\"".into());
                    continue;
                }
                let value = match &b.value {
                    None => None,
                    Some(v) => match serde_json::to_value(v) {
                        Ok(
                            v @ (serde_json::Value::String(_)
                            | serde_json::Value::Bool(_)
                            | serde_json::Value::Number(_)),
                        ) => Some(v),
                        _ => {
                            fail("value must be a string, a number or true/false".into());
                            continue;
                        }
                    },
                };
                ButtonKind::SetField { field, value }
            }
            kind @ ("take" | "approve_workitem" | "reject_workitem") => {
                let unused = extra(&[
                    ("field", b.field.is_some()),
                    ("value", b.value.is_some()),
                    ("status", b.status.is_some()),
                    ("subject", b.subject.is_some()),
                    ("due_in_days", b.due_in_days.is_some()),
                ]);
                if !unused.is_empty() {
                    fail(format!("{kind} takes no {}", unused.join(", ")));
                    continue;
                }
                match kind {
                    "take" => ButtonKind::Take,
                    "approve_workitem" => ButtonKind::Workitem { approve: true },
                    _ => ButtonKind::Workitem { approve: false },
                }
            }
            other => {
                fail(format!("kind {other:?} is not one of {KINDS}"));
                continue;
            }
        };
        buttons.push(Button {
            name: name.clone(),
            kind,
            file: file.to_path_buf(),
            line,
        });
    }
    buttons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<Button>, Vec<LoadError>> {
        #[derive(Deserialize)]
        struct Only {
            buttons: BTreeMap<String, Spanned<ButtonFile>>,
        }
        let only: Only = toml::from_str(text).unwrap();
        let mut errors = Vec::new();
        let buttons = parse(Path::new("r.toml"), text, &only.buttons, &mut errors);
        if errors.is_empty() {
            Ok(buttons)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn each_kind_is_read_with_its_details() {
        let buttons = load(
            r#"
[buttons.follow_up]
kind = "log_task"
subject = "Follow up"
due_in_days = 3

[buttons.stage]
kind = "set_field"
field = "StageName"

[buttons.ack]
kind = "set_field"
field = "Acknowledged__c"
value = true

[buttons.take]
kind = "take"

[buttons.approve]
kind = "approve_workitem"
"#,
        )
        .unwrap();
        let kind = |name: &str| {
            buttons
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.kind.clone())
                .unwrap()
        };
        assert_eq!(
            kind("follow_up"),
            ButtonKind::LogTask {
                status: "Not Started".into(),
                subject: Some("Follow up".into()),
                due_in_days: Some(3)
            }
        );
        assert_eq!(
            kind("stage"),
            ButtonKind::SetField {
                field: "StageName".into(),
                value: None
            }
        );
        assert_eq!(
            kind("ack"),
            ButtonKind::SetField {
                field: "Acknowledged__c".into(),
                value: Some(serde_json::Value::Bool(true))
            }
        );
        assert_eq!(kind("take"), ButtonKind::Take);
        assert_eq!(kind("approve"), ButtonKind::Workitem { approve: true });
        assert!(kind("follow_up").opens_modal());
    }

    #[test]
    fn mistakes_are_refused_naming_the_button_and_line() {
        for (text, says) in [
            ("[buttons.x]\nkind = \"explode\"\n", "not one of log_task"),
            ("[buttons.x]\nkind = \"set_field\"\n", "needs field"),
            (
                "[buttons.x]\nkind = \"set_field\"\nfield = \"Stage Name\"\n",
                "API name",
            ),
            (
                "[buttons.x]\nkind = \"set_field\"\nfield = \"OwnerId\"\n",
                "take",
            ),
            (
                "[buttons.x]\nkind = \"take\"\nfield = \"A\"\n",
                "takes no field",
            ),
            ("[buttons.gate_approve]\nkind = \"take\"\n", "sfrelay's own"),
            (
                "[buttons.x]\nkind = \"set_field\"\nfield = \"A\"\nvalue = [1]\n",
                "value must",
            ),
        ] {
            let errors = load(text).unwrap_err();
            assert!(errors[0].message.contains(says), "{text}: {:?}", errors[0]);
            assert!(errors[0].message.starts_with("buttons."), "{:?}", errors[0]);
            assert_eq!(errors[0].line, 1);
        }
    }
}
