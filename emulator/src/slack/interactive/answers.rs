//! What Slack does with an app's answer to a `view_submission`: an empty 200 closes the modal;
//! `response_action` `update` replaces it, `errors` keeps it open showing the field errors,
//! `clear` closes it; a late (over 3 s), failed or unreadable answer leaves it open, with
//! Slack's connection error shown to the person.

use std::time::Duration;

use serde_json::{Value, json};

use super::Interactive;
use super::views::{check_view, parse_view};

/// How long Slack waits for the app's answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(3);

/// The outcome, as `/_emulator/interact` reports it: `{"outcome": …, "detail"?: …}`.
fn outcome(what: &str, detail: Option<String>) -> Value {
    match detail {
        Some(detail) => json!({"outcome": what, "detail": detail}),
        None => json!({"outcome": what}),
    }
}

/// Applies the app's answer (HTTP `status`, raw `body`, after `elapsed`) to the submitted view.
pub fn apply_submission_answer(
    state: &mut Interactive,
    view_id: &str,
    status: u16,
    body: &[u8],
    elapsed: Duration,
    now_micros: i64,
) -> Value {
    if elapsed > ANSWER_DEADLINE {
        return outcome(
            "kept_open",
            Some(format!(
                "answered after {} ms; Slack gives up after 3 s",
                elapsed.as_millis()
            )),
        );
    }
    if status != 200 {
        return outcome("kept_open", Some(format!("answered HTTP {status}")));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return close(state, view_id, "closed");
    }
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return outcome(
            "kept_open",
            Some("the answer is neither empty nor a JSON object".into()),
        );
    };
    match answer.get("response_action").and_then(Value::as_str) {
        Some("clear") => close(state, view_id, "cleared"),
        Some("errors") => {
            let Some(errors) = answer.get("errors").filter(|e| e.is_object()) else {
                return outcome("kept_open", Some("errors without an errors object".into()));
            };
            let unknown = unknown_blocks(state, view_id, errors);
            if let Some(view) = state.open_view_mut(view_id) {
                view.errors = Some(errors.clone());
            }
            let detail = (!unknown.is_empty()).then(|| {
                format!(
                    "not input blocks of the view (Slack shows a generic error): {}",
                    unknown.join(", ")
                )
            });
            outcome("errors", detail)
        }
        Some("update") => {
            let definition = match parse_view(answer.get("view")) {
                Ok(definition) => definition,
                Err(error) => return outcome("kept_open", error.messages.first().cloned()),
            };
            if let Err(why) = check_view(&definition) {
                return outcome("kept_open", Some(why));
            }
            let hash = state.new_hash(now_micros);
            match state.open_view_mut(view_id) {
                Some(view) => {
                    view.replace(definition, hash, now_micros / 1000);
                    outcome("updated", None)
                }
                None => outcome("kept_open", Some("the view is no longer open".into())),
            }
        }
        Some("push") => outcome(
            "kept_open",
            Some("response_action push is not emulated".into()),
        ),
        Some(other) => outcome(
            "kept_open",
            Some(format!("unknown response_action {other:?}")),
        ),
        None => close(state, view_id, "closed"),
    }
}

fn close(state: &mut Interactive, view_id: &str, what: &str) -> Value {
    if let Some(view) = state.open_view_mut(view_id) {
        view.closed = true;
    }
    outcome(what, None)
}

/// The keys of `errors` that are not the `block_id` of one of the view's input blocks.
fn unknown_blocks(state: &Interactive, view_id: &str, errors: &Value) -> Vec<String> {
    let inputs: Vec<&str> = state
        .view(view_id)
        .map(|v| {
            v.blocks()
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("input"))
                .filter_map(|b| b.get("block_id").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    errors
        .as_object()
        .map(|e| {
            e.keys()
                .filter(|k| !inputs.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::OpenView;
    use super::*;

    fn state_with_view() -> Interactive {
        let mut state = Interactive::default();
        let definition = json!({
            "type": "modal",
            "title": {"type": "plain_text", "text": "Log a task"},
            "submit": {"type": "plain_text", "text": "Save"},
            "blocks": [{"type": "input", "block_id": "subject",
                        "label": {"type": "plain_text", "text": "Subject"},
                        "element": {"type": "plain_text_input", "action_id": "value"}}],
        });
        state.views.push(OpenView {
            id: "V1".into(),
            user: "U1".into(),
            definition: definition.as_object().cloned().unwrap_or_default(),
            hash: "1.1".into(),
            state: json!({"values": {}}),
            closed: false,
            errors: None,
            opened_at_ms: 0,
            updated_at_ms: None,
        });
        state
    }

    fn apply(state: &mut Interactive, status: u16, body: &str, elapsed_ms: u64) -> Value {
        let elapsed = Duration::from_millis(elapsed_ms);
        apply_submission_answer(state, "V1", status, body.as_bytes(), elapsed, 0)
    }

    #[test]
    fn late_failed_or_unreadable_answers_keep_the_modal_open() {
        let mut state = state_with_view();
        for (status, body, elapsed_ms) in [
            (200, "", 3001),
            (500, "", 10),
            (200, "not json", 10),
            (200, "[1]", 10),
            (200, r#"{"response_action":"push","view":{}}"#, 10),
            (200, r#"{"response_action":"errors"}"#, 10),
            (
                200,
                r#"{"response_action":"update","view":{"type":"modal"}}"#,
                10,
            ),
            (200, r#"{"response_action":"sideways"}"#, 10),
        ] {
            let outcome = apply(&mut state, status, body, elapsed_ms);
            assert_eq!(
                outcome["outcome"], "kept_open",
                "{status} {body}: {outcome}"
            );
            assert!(outcome["detail"].is_string(), "{outcome}");
        }
        assert!(!state.views()[0].closed);
    }

    #[test]
    fn errors_naming_other_blocks_are_recorded_and_pointed_out() {
        let mut state = state_with_view();
        let body = r#"{"response_action":"errors","errors":{"subject":"Too short","due":"x"}}"#;
        let outcome = apply(&mut state, 200, body, 10);
        assert_eq!(outcome["outcome"], "errors");
        assert!(
            outcome["detail"].as_str().unwrap().contains("due"),
            "{outcome}"
        );
        assert_eq!(
            state.views()[0].errors.as_ref().unwrap()["subject"],
            "Too short"
        );
        assert_eq!(
            apply(&mut state, 200, r#"{"response_action":"clear"}"#, 10),
            json!({"outcome": "cleared"})
        );
        assert!(state.views()[0].closed);
        assert_eq!(
            apply(
                &mut state,
                200,
                r#"{"response_action":"update","view":{"type":"modal","title":{"type":"plain_text","text":"t"},"blocks":[]}}"#,
                10
            )["outcome"],
            "kept_open",
            "a closed modal is not brought back"
        );
    }
}
