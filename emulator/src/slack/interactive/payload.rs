//! The interaction payloads Slack sends an app when someone clicks a button, picks an option,
//! submits a modal or closes one, built from what the emulator holds (the message and its
//! blocks, the open view and its input blocks), with a fresh `trigger_id` and, for clicks, a
//! fresh `response_url`.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::workspace::{BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, User, Workspace};
use super::responses::Origin;
use super::{APP_ID, Interactive};

/// Why a payload could not be built: the control API's status, error code and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
}

pub(super) fn refuse(
    status: StatusCode,
    error: &'static str,
    detail: impl Into<String>,
) -> Refusal {
    Refusal {
        status,
        error,
        detail: detail.into(),
    }
}

/// A payload ready to sign and send.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub payload: Value,
    pub trigger_id: Option<String>,
    /// The full `response_url` (clicks only).
    pub response_url: Option<String>,
}

/// A click or a pick from a select, as `/_emulator/interact` asks for it.
#[derive(Debug, Clone)]
pub struct Click<'a> {
    pub user: &'a str,
    pub channel: &'a str,
    pub ts: &'a str,
    pub action_id: &'a str,
    /// The `value` of the option picked, for selects, overflows and radio buttons.
    pub option: Option<&'a str>,
}

pub(super) fn person<'a>(workspace: &'a Workspace, user: &str) -> Result<&'a User, Refusal> {
    workspace.user(user).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "user_not_found",
            format!("{user} is not a user of the workspace"),
        )
    })
}

pub(super) fn user_json(user: &User) -> Value {
    json!({"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID})
}

pub(super) fn team_json() -> Value {
    json!({"id": TEAM_ID, "domain": TEAM_DOMAIN})
}

/// Slack's `action_ts`/message ts format for a moment in microseconds.
pub(super) fn ts_of(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

/// The block id of block `index` (Slack gives blocks sent without one an id of its own).
fn block_id(block: &Value, index: usize) -> String {
    block
        .get("block_id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("emu-block-{index}"), str::to_owned)
}

/// The interactive element with this `action_id` in a message's blocks, and its block's id:
/// in an actions block, a section's accessory or an input's element.
fn find_element<'a>(blocks: &'a [Value], action_id: &str) -> Option<(String, &'a Value)> {
    blocks.iter().enumerate().find_map(|(index, block)| {
        let candidates: Vec<&Value> = match block.get("type").and_then(Value::as_str) {
            Some("actions") => block
                .get("elements")
                .and_then(Value::as_array)
                .map(|e| e.iter().collect())
                .unwrap_or_default(),
            Some("section") => block.get("accessory").into_iter().collect(),
            Some("input") => block.get("element").into_iter().collect(),
            _ => Vec::new(),
        };
        candidates
            .into_iter()
            .find(|el| el.get("action_id").and_then(Value::as_str) == Some(action_id))
            .map(|el| (block_id(block, index), el))
    })
}

/// The option with this `value` among an element's `options` or `option_groups`.
fn find_option<'a>(element: &'a Value, value: &str) -> Option<&'a Value> {
    let direct = element.get("options").and_then(Value::as_array);
    let grouped = element
        .get("option_groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("options").and_then(Value::as_array));
    direct
        .into_iter()
        .chain(grouped)
        .flatten()
        .find(|o| o.get("value").and_then(Value::as_str) == Some(value))
}

/// `{text, value}` of a picked option.
fn picked(option: &Value) -> Value {
    json!({"text": option.get("text"), "value": option.get("value")})
}

/// The `actions[0]` of a click on `element`.
fn action_json(
    element: &Value,
    block_id: String,
    click: &Click<'_>,
    action_ts: String,
) -> Result<Value, Refusal> {
    let kind = element
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut action = json!({
        "type": kind,
        "action_id": click.action_id,
        "block_id": block_id,
        "action_ts": action_ts,
    });
    match kind {
        "button" => {
            action["text"] = element.get("text").cloned().unwrap_or(Value::Null);
            if let Some(value) = element.get("value") {
                action["value"] = value.clone();
            }
            if let Some(style) = element.get("style") {
                action["style"] = style.clone();
            }
        }
        "static_select" | "overflow" | "radio_buttons" => {
            let wanted = click.option.ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "option_required",
                    format!("`{}` is a {kind}: say which option", click.action_id),
                )
            })?;
            let option = find_option(element, wanted).ok_or_else(|| {
                refuse(
                    StatusCode::NOT_FOUND,
                    "option_not_found",
                    format!("`{}` has no option with value {wanted:?}", click.action_id),
                )
            })?;
            action["selected_option"] = picked(option);
            if let Some(placeholder) = element.get("placeholder") {
                action["placeholder"] = placeholder.clone();
            }
        }
        other => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "unsupported_element",
                format!("clicks on {other:?} elements are not emulated"),
            ));
        }
    }
    Ok(action)
}

/// A `block_actions` payload for a click on a message's button (or a pick from its select).
pub fn block_actions(
    workspace: &Workspace,
    state: &mut Interactive,
    click: &Click<'_>,
    base_url: &str,
    now_micros: i64,
) -> Result<Built, Refusal> {
    let user = person(workspace, click.user)?;
    let message = workspace.message(click.channel, click.ts).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "message_not_found",
            format!("no message {} in {}", click.ts, click.channel),
        )
    })?;
    let channel_name = match workspace.channel(click.channel) {
        Some(channel) => channel.name.clone(),
        None => "directmessage".to_owned(),
    };
    let blocks = message
        .blocks
        .as_ref()
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let (block, element) = find_element(blocks, click.action_id).ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "action_not_found",
            format!(
                "the message has no element with action_id {:?}",
                click.action_id
            ),
        )
    })?;
    let action = action_json(element, block, click, ts_of(now_micros))?;
    let mut shown_message = json!({
        "type": "message",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "ts": message.ts,
        "text": message.text,
        "blocks": blocks,
    });
    if let Some(thread_ts) = &message.thread_ts {
        shown_message["thread_ts"] = thread_ts.clone().into();
    }
    let trigger_id = state.issue_trigger(click.user, now_micros);
    let origin = Origin {
        channel: click.channel.to_owned(),
        message_ts: Some(click.ts.to_owned()),
        user: click.user.to_owned(),
    };
    let response_id = state.issue_response_url(origin, now_micros / 1000);
    let response_url = format!("{base_url}/_emulator/response/{response_id}");
    let payload = json!({
        "type": "block_actions",
        "user": user_json(user),
        "api_app_id": APP_ID,
        "token": "emulated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": click.channel,
            "is_ephemeral": false,
        },
        "trigger_id": trigger_id,
        "team": team_json(),
        "enterprise": null,
        "is_enterprise_install": false,
        "channel": {"id": click.channel, "name": channel_name},
        "message": shown_message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    });
    Ok(Built {
        payload,
        trigger_id: Some(trigger_id),
        response_url: Some(response_url),
    })
}

/// The `state.values` entry of one input element for what the person entered.
fn input_state(element: &Value, entered: Option<&str>, block: &str) -> Result<Value, Refusal> {
    let kind = element
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let unsupported = || {
        refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_element",
            format!("input {block:?}: {kind:?} elements are not emulated"),
        )
    };
    let (key, value) = match kind {
        "plain_text_input" | "email_text_input" | "url_text_input" | "number_input" => (
            "value",
            entered
                .map(Value::from)
                .or_else(|| element.get("initial_value").cloned()),
        ),
        "datepicker" => (
            "selected_date",
            entered
                .map(Value::from)
                .or_else(|| element.get("initial_date").cloned()),
        ),
        "timepicker" => (
            "selected_time",
            entered
                .map(Value::from)
                .or_else(|| element.get("initial_time").cloned()),
        ),
        "static_select" | "radio_buttons" => {
            let option = match entered {
                Some(wanted) => Some(picked(find_option(element, wanted).ok_or_else(|| {
                    refuse(
                        StatusCode::NOT_FOUND,
                        "option_not_found",
                        format!("input {block:?} has no option with value {wanted:?}"),
                    )
                })?)),
                None => element.get("initial_option").map(picked),
            };
            ("selected_option", option)
        }
        _ => return Err(unsupported()),
    };
    Ok(json!({"type": kind, key: value.unwrap_or(Value::Null)}))
}

/// The `state.values` of a submission: one entry per input block, from `values`
/// (`{block_id: {action_id: text}}`); a required input left empty is refused, as Slack's
/// client refuses to submit it.
fn submission_state(view_blocks: &[Value], values: &Value) -> Result<Value, Refusal> {
    let given = values.as_object().cloned().unwrap_or_default();
    let mut state = Map::new();
    let mut known = Vec::new();
    for (index, block) in view_blocks.iter().enumerate() {
        if block.get("type").and_then(Value::as_str) != Some("input") {
            continue;
        }
        let block = block.clone();
        let id = block_id(&block, index);
        let element = block.get("element").cloned().unwrap_or(Value::Null);
        let action = element
            .get("action_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let entered = given
            .get(&id)
            .and_then(|b| b.get(&action))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let entry = input_state(&element, entered, &id)?;
        let empty = entry
            .as_object()
            .is_some_and(|e| e.iter().any(|(k, v)| k != "type" && v.is_null()));
        let optional = block.get("optional").and_then(Value::as_bool) == Some(true);
        if empty && !optional {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "required_input_missing",
                format!("input {id:?} is required: give values.{id}.{action}"),
            ));
        }
        state.insert(id.clone(), json!({ action.clone(): entry }));
        known.push((id, action));
    }
    for (block, actions) in &given {
        let actions = actions.as_object().cloned().unwrap_or_default();
        for action in actions.keys() {
            if !known.iter().any(|(b, a)| b == block && a == action) {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "unknown_input",
                    format!("the view has no input {block}.{action}"),
                ));
            }
        }
    }
    Ok(json!({"values": state}))
}

/// The view a person may act on: open, and theirs.
fn own_open_view<'a>(
    state: &'a mut Interactive,
    view_id: &str,
    user: &str,
) -> Result<&'a mut super::OpenView, Refusal> {
    let closed = state.view(view_id).map(|v| v.closed);
    match closed {
        None => return Err(refuse(StatusCode::NOT_FOUND, "view_not_found", view_id)),
        Some(true) => {
            return Err(refuse(
                StatusCode::CONFLICT,
                "view_closed",
                format!("{view_id} is closed"),
            ));
        }
        Some(false) => {}
    }
    let view = state
        .open_view_mut(view_id)
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "view_not_found", view_id))?;
    if view.user != user {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "not_view_owner",
            format!("{view_id} is {}'s modal", view.user),
        ));
    }
    Ok(view)
}

/// A `view_submission` payload for a person submitting their open modal with `values`.
pub fn view_submission(
    workspace: &Workspace,
    state: &mut Interactive,
    user: &str,
    view_id: &str,
    values: &Value,
    now_micros: i64,
) -> Result<Built, Refusal> {
    let person = user_json(person(workspace, user)?);
    let view = own_open_view(state, view_id, user)?;
    if view.definition.get("submit").is_none_or(Value::is_null) {
        return Err(refuse(
            StatusCode::CONFLICT,
            "no_submit_button",
            format!("{view_id} has no submit button to press"),
        ));
    }
    let submitted = submission_state(view.blocks(), values)?;
    view.state = submitted;
    let shown = view.api_json();
    let trigger_id = state.issue_trigger(user, now_micros);
    let payload = json!({
        "type": "view_submission",
        "team": team_json(),
        "user": person,
        "api_app_id": APP_ID,
        "token": "emulated-verification-token",
        "trigger_id": trigger_id,
        "view": shown,
        "response_urls": [],
        "enterprise": null,
        "is_enterprise_install": false,
    });
    Ok(Built {
        payload,
        trigger_id: Some(trigger_id),
        response_url: None,
    })
}

/// A `view_closed` payload for a person closing their open modal; the view is closed at once
/// (Slack closes it whatever the app answers).
pub fn view_closed(
    workspace: &Workspace,
    state: &mut Interactive,
    user: &str,
    view_id: &str,
) -> Result<Built, Refusal> {
    let person = user_json(person(workspace, user)?);
    let view = own_open_view(state, view_id, user)?;
    view.closed = true;
    let payload = json!({
        "type": "view_closed",
        "team": team_json(),
        "user": person,
        "api_app_id": APP_ID,
        "token": "emulated-verification-token",
        "view": view.api_json(),
        "is_cleared": false,
        "enterprise": null,
        "is_enterprise_install": false,
    });
    Ok(Built {
        payload,
        trigger_id: None,
        response_url: None,
    })
}
