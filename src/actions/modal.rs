//! The modals sfrelay opens: "Log follow-up" (subject, due date, comment) and the reason asked
//! for when a gate is rejected. Built here, opened from the request itself (a `trigger_id`
//! lasts about 3 s), and checked when submitted so a mistake is shown next to its field.

use chrono::{Duration as Days, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `callback_id` of the follow-up modal.
pub const LOG_TASK: &str = "sfrelay:log_task";
/// `callback_id` of the rejection-reason modal.
pub const GATE_REJECT: &str = "sfrelay:gate_reject";

/// A Task's subject may be at most this long.
const MAX_SUBJECT: usize = 255;
/// What a modal's comment takes (Slack's plain-text input limit).
const MAX_COMMENT: usize = 3000;

/// What a modal carries in `private_metadata`: the button it came from and its card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The clicked button's value (`sfrelay:v1:…`).
    pub value: String,
    pub channel: Option<String>,
    pub ts: Option<String>,
}

impl Origin {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Self, String> {
        serde_json::from_str(text)
            .map_err(|e| format!("the modal's metadata is not sfrelay's: {e}"))
    }
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text, "emoji": true})
}

fn input(block_id: &str, label: &str, element: Value, optional: bool) -> Value {
    json!({"type": "input", "block_id": block_id, "label": plain(label),
        "element": element, "optional": optional})
}

/// The follow-up modal for the record `about` (as the person reads it, e.g. "Acme — Q3").
pub fn log_task(origin: &Origin, about: &str, subject: Option<&str>, due: NaiveDate) -> Value {
    let mut subject_input = json!({"type": "plain_text_input", "action_id": "value",
        "max_length": MAX_SUBJECT});
    if let Some(subject) = subject {
        subject_input["initial_value"] = subject.into();
    }
    json!({
        "type": "modal",
        "callback_id": LOG_TASK,
        "private_metadata": origin.encode(),
        "title": plain("Log follow-up"),
        "submit": plain("Log it"),
        "close": plain("Cancel"),
        "blocks": [
            {"type": "context", "elements": [{"type": "plain_text", "text": about}]},
            input("subject", "Subject", subject_input, false),
            input("due", "Due date", json!({"type": "datepicker", "action_id": "value",
                "initial_date": due.format("%Y-%m-%d").to_string()}), false),
            input("comment", "Comment", json!({"type": "plain_text_input", "action_id": "value",
                "multiline": true, "max_length": MAX_COMMENT}), true),
        ]
    })
}

/// The modal asking why a gate is rejected.
pub fn gate_reject(origin: &Origin, about: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": GATE_REJECT,
        "private_metadata": origin.encode(),
        "title": plain("Reject"),
        "submit": plain("Reject"),
        "close": plain("Cancel"),
        "blocks": [
            {"type": "context", "elements": [{"type": "plain_text", "text": about}]},
            input("reason", "Reason", json!({"type": "plain_text_input", "action_id": "value",
                "multiline": true, "max_length": MAX_COMMENT}), false),
        ]
    })
}

/// A follow-up as submitted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub subject: String,
    pub due: NaiveDate,
    pub comment: Option<String>,
}

/// Field problems, by input block: what Slack shows under each field.
pub type FieldErrors = serde_json::Map<String, Value>;

fn entered<'a>(values: &'a Value, block: &str, key: &str) -> Option<&'a str> {
    values
        .pointer(&format!("/{block}/value/{key}"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Reads the follow-up modal's `state.values`; `today` bounds the due date.
pub fn read_follow_up(values: &Value, today: NaiveDate) -> Result<FollowUp, FieldErrors> {
    let mut errors = FieldErrors::new();
    let subject = entered(values, "subject", "value");
    match subject {
        None => {
            errors.insert("subject".into(), "Give the follow-up a subject.".into());
        }
        Some(s) if s.chars().count() > MAX_SUBJECT => {
            errors.insert(
                "subject".into(),
                format!("At most {MAX_SUBJECT} characters.").into(),
            );
        }
        Some(_) => {}
    }
    let due = match entered(values, "due", "selected_date") {
        None => {
            errors.insert("due".into(), "Pick a due date.".into());
            None
        }
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) if date < today => {
                errors.insert("due".into(), "The due date is in the past.".into());
                None
            }
            Ok(date) if date > today + Days::days(3650) => {
                errors.insert(
                    "due".into(),
                    "The due date is more than 10 years away.".into(),
                );
                None
            }
            Ok(date) => Some(date),
            Err(_) => {
                errors.insert("due".into(), "Not a date (YYYY-MM-DD).".into());
                None
            }
        },
    };
    let comment = entered(values, "comment", "value").map(str::to_string);
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        errors.insert(
            "comment".into(),
            format!("At most {MAX_COMMENT} characters.").into(),
        );
    }
    match (subject, due) {
        (Some(subject), Some(due)) if errors.is_empty() => Ok(FollowUp {
            subject: subject.to_string(),
            due,
            comment,
        }),
        _ => Err(errors),
    }
}

/// Reads the rejection modal's reason.
pub fn read_reason(values: &Value) -> Result<String, FieldErrors> {
    match entered(values, "reason", "value") {
        Some(reason) if reason.chars().count() <= MAX_COMMENT => Ok(reason.to_string()),
        Some(_) => {
            let mut errors = FieldErrors::new();
            errors.insert(
                "reason".into(),
                format!("At most {MAX_COMMENT} characters.").into(),
            );
            Err(errors)
        }
        None => {
            let mut errors = FieldErrors::new();
            errors.insert("reason".into(), "Say why it is rejected.".into());
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn values(subject: &str, due: &str, comment: &str) -> Value {
        json!({
            "subject": {"value": {"type": "plain_text_input", "value": subject}},
            "due": {"value": {"type": "datepicker", "selected_date": due}},
            "comment": {"value": {"type": "plain_text_input", "value": comment}},
        })
    }

    #[test]
    fn a_good_follow_up_is_read() {
        let read = read_follow_up(&values(" Call back ", "2026-12-10", ""), day("2026-12-02"));
        assert_eq!(
            read,
            Ok(FollowUp {
                subject: "Call back".into(),
                due: day("2026-12-10"),
                comment: None
            })
        );
    }

    #[test]
    fn each_field_problem_is_named_by_its_block() {
        let today = day("2026-12-02");
        let errors = read_follow_up(&values("", "2026-11-30", ""), today).unwrap_err();
        assert!(errors["subject"].as_str().unwrap().contains("subject"));
        assert!(errors["due"].as_str().unwrap().contains("past"));
        let long = "x".repeat(256);
        let errors = read_follow_up(&values(&long, "soon", ""), today).unwrap_err();
        assert!(errors["subject"].as_str().unwrap().contains("255"));
        assert!(errors["due"].as_str().unwrap().contains("Not a date"));
        assert!(read_reason(&json!({})).unwrap_err().contains_key("reason"));
    }

    #[test]
    fn the_modal_carries_its_origin_within_slacks_limit() {
        let origin = Origin {
            value: "sfrelay:v1:00D5g000004ABCdEAO:Opportunity:0065g00000AbCdEAAV:follow_up".into(),
            channel: Some("C1".into()),
            ts: Some("1.2".into()),
        };
        let view = log_task(&origin, "Acme", Some("Call"), day("2026-12-05"));
        let metadata = view["private_metadata"].as_str().unwrap();
        assert!(metadata.len() <= 3000);
        assert_eq!(Origin::decode(metadata).unwrap(), origin);
        assert_eq!(view["blocks"][2]["element"]["initial_date"], "2026-12-05");
        assert!(view["title"]["text"].as_str().unwrap().chars().count() <= 24);
    }
}
