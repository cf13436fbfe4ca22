//! `views.open` and `views.update`: modals checked against Slack's limits, opened with a
//! trigger the emulator issued, and kept (open, then closed) for the person they belong to.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::super::blocks;
use super::super::methods::{ApiError, Ctx, MethodResult};
use super::super::workspace::{BOT_ID, TEAM_ID};
use super::{APP_ID, Interactive};
use crate::params::Params;

/// Most blocks a modal may hold.
pub const MAX_VIEW_BLOCKS: usize = 100;
/// Longest modal `title`, `close` and `submit` text.
pub const MAX_VIEW_LABEL: usize = 24;
/// Longest `callback_id` and `external_id`.
pub const MAX_VIEW_ID: usize = 255;
/// Longest `private_metadata`.
pub const MAX_PRIVATE_METADATA: usize = 3000;

/// A modal the emulator opened for someone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenView {
    /// Slack's view id (`V…`).
    pub id: String,
    /// Whose modal it is: the person whose trigger opened it.
    pub user: String,
    /// The definition last opened, updated or answered with, block and action ids filled in.
    pub definition: Map<String, Value>,
    /// Changes with every update; `views.update` with an older one is a `hash_conflict`.
    pub hash: String,
    /// `{"values": …}`: what the person last submitted (empty until then).
    pub state: Value,
    /// Closed by a submission's answer, a `clear` or the person closing it.
    pub closed: bool,
    /// Field errors from the last `response_action: errors`, keyed by input `block_id`.
    pub errors: Option<Value>,
    /// When it was opened (Unix epoch milliseconds).
    pub opened_at_ms: i64,
    /// When it was last replaced (Unix epoch milliseconds).
    pub updated_at_ms: Option<i64>,
}

impl OpenView {
    fn text(&self, key: &str) -> &str {
        self.definition
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The definition's `callback_id` ("" when none).
    pub fn callback_id(&self) -> &str {
        self.text("callback_id")
    }

    /// The blocks of the definition.
    pub fn blocks(&self) -> &[Value] {
        self.definition
            .get("blocks")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The view object as Slack's API and payloads show it.
    pub fn api_json(&self) -> Value {
        let field = |key: &str| self.definition.get(key).cloned().unwrap_or(Value::Null);
        let flag = |key: &str| self.definition.get(key).and_then(Value::as_bool) == Some(true);
        json!({
            "id": self.id,
            "team_id": TEAM_ID,
            "type": "modal",
            "title": field("title"),
            "close": field("close"),
            "submit": field("submit"),
            "blocks": self.blocks(),
            "private_metadata": self.text("private_metadata"),
            "callback_id": self.callback_id(),
            "external_id": self.text("external_id"),
            "state": self.state,
            "hash": self.hash,
            "clear_on_close": flag("clear_on_close"),
            "notify_on_close": flag("notify_on_close"),
            "root_view_id": self.id,
            "previous_view_id": null,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        })
    }

    /// What `GET /_emulator/views` shows of it.
    pub fn control_json(&self) -> Value {
        json!({
            "id": self.id,
            "user": self.user,
            "callback_id": self.callback_id(),
            "external_id": self.text("external_id"),
            "private_metadata": self.text("private_metadata"),
            "title": self.definition.get("title"),
            "blocks": self.blocks(),
            "state": self.state,
            "hash": self.hash,
            "closed": self.closed,
            "errors": self.errors,
            "opened_at_ms": self.opened_at_ms,
            "updated_at_ms": self.updated_at_ms,
        })
    }

    /// Replaces the definition (already checked), as `views.update` or a submission's
    /// `response_action: update` does: new hash, state and errors cleared.
    pub fn replace(&mut self, mut definition: Map<String, Value>, hash: String, now_ms: i64) {
        if !definition.contains_key("external_id")
            && let Some(old) = self.definition.get("external_id")
        {
            definition.insert("external_id".into(), old.clone());
        }
        fill_ids(&mut definition);
        self.definition = definition;
        self.hash = hash;
        self.state = json!({"values": {}});
        self.errors = None;
        self.updated_at_ms = Some(now_ms);
    }
}

impl Interactive {
    /// A fresh view hash, shaped like Slack's (`<seconds>.<hex>`).
    pub fn new_hash(&mut self, now_micros: i64) -> String {
        let n = self.next_number();
        format!("{}.{:08x}", now_micros.div_euclid(1_000_000), n)
    }

    /// Whether an open view other than `except` already uses this `external_id`.
    fn external_id_taken(&self, external_id: &str, except: Option<&str>) -> bool {
        !external_id.is_empty()
            && self.views.iter().any(|v| {
                !v.closed && Some(v.id.as_str()) != except && v.text("external_id") == external_id
            })
    }
}

/// `invalid_arguments` with Slack's `[ERROR] … [json-pointer:…]` line.
pub(super) fn invalid(message: String) -> ApiError {
    ApiError {
        code: "invalid_arguments",
        messages: vec![message],
    }
}

pub(super) fn at(message: &str, pointer: &str) -> String {
    format!("[ERROR] {message} [json-pointer:{pointer}]")
}

/// Reads the `view` argument: a JSON object, or a string holding one (as form posts send).
pub fn parse_view(value: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    let parsed;
    let value = match value {
        None => return Err(invalid(at("missing required field: view", "/view"))),
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| invalid(at("view must be a JSON object", "/view")))?;
            &parsed
        }
        Some(other) => other,
    };
    match value {
        Value::Object(view) => Ok(view.clone()),
        _ => Err(invalid(at("must be an object", "/view"))),
    }
}

/// A plain_text object of at most `max` characters.
fn plain_text(value: &Value, pointer: &str, max: usize) -> Result<(), String> {
    if value.get("type").and_then(Value::as_str) != Some("plain_text") {
        return Err(at("must be plain_text", &format!("{pointer}/type")));
    }
    let text = value
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pointer = format!("{pointer}/text");
    if text.is_empty() {
        return Err(at("must be more than 0 characters", &pointer));
    }
    if text.chars().count() > max {
        return Err(at(
            &format!("must be less than {} characters", max + 1),
            &pointer,
        ));
    }
    Ok(())
}

/// An optional string field of at most `max` characters.
pub(super) fn short_string(view: &Map<String, Value>, key: &str, max: usize) -> Result<(), String> {
    let pointer = format!("/view/{key}");
    match view.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.chars().count() > max => Err(at(
            &format!("must be less than {} characters", max + 1),
            &pointer,
        )),
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(at("must be a string", &pointer)),
    }
}

/// Checks a modal definition against Slack's rules; the error is Slack's message line.
pub fn check_view(view: &Map<String, Value>) -> Result<(), String> {
    if view.get("type").and_then(Value::as_str) != Some("modal") {
        return Err(at("must be modal", "/view/type"));
    }
    let title = view
        .get("title")
        .ok_or_else(|| at("missing required field: title", "/view"))?;
    plain_text(title, "/view/title", MAX_VIEW_LABEL)?;
    for key in ["close", "submit"] {
        if let Some(label) = view.get(key).filter(|v| !v.is_null()) {
            plain_text(label, &format!("/view/{key}"), MAX_VIEW_LABEL)?;
        }
    }
    let blocks = view
        .get("blocks")
        .ok_or_else(|| at("missing required field: blocks", "/view"))?
        .as_array()
        .ok_or_else(|| at("must be an array", "/view/blocks"))?;
    blocks::validate_at_most(blocks, MAX_VIEW_BLOCKS, "/view/blocks")
        .map_err(|e| e.to_slack_message())?;
    let mut block_ids = HashSet::new();
    for (i, block) in blocks.iter().enumerate() {
        if let Some(id) = block.get("block_id").and_then(Value::as_str)
            && !block_ids.insert(id)
        {
            return Err(at(
                &format!("block_id `{id}` is used twice"),
                &format!("/view/blocks/{i}/block_id"),
            ));
        }
    }
    let has_input = blocks
        .iter()
        .any(|b| b.get("type").and_then(Value::as_str) == Some("input"));
    if has_input && view.get("submit").is_none_or(Value::is_null) {
        return Err(at(
            "must provide submit when blocks contain an input",
            "/view/submit",
        ));
    }
    short_string(view, "callback_id", MAX_VIEW_ID)?;
    short_string(view, "external_id", MAX_VIEW_ID)?;
    short_string(view, "private_metadata", MAX_PRIVATE_METADATA)
}

/// Gives every block a `block_id` and every input element an `action_id`, as Slack does for
/// those sent without, so submissions can name them.
pub(super) fn fill_ids(view: &mut Map<String, Value>) {
    let Some(Value::Array(blocks)) = view.get_mut("blocks") else {
        return;
    };
    for (i, block) in blocks.iter_mut().enumerate() {
        let Some(block) = block.as_object_mut() else {
            continue;
        };
        block
            .entry("block_id")
            .or_insert_with(|| format!("emu-block-{i}").into());
        if let Some(Value::Object(element)) = block.get_mut("element") {
            element
                .entry("action_id")
                .or_insert_with(|| format!("emu-action-{i}").into());
        }
    }
}

/// `views.open`: opens a modal for whoever the trigger belongs to.
pub fn views_open(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let trigger_id = p.str("trigger_id")?.unwrap_or_default();
    if trigger_id.is_empty() {
        return Err(invalid(at(
            "missing required field: trigger_id",
            "/trigger_id",
        )));
    }
    let mut definition = parse_view(p.value("view"))?;
    check_view(&definition).map_err(invalid)?;
    let external_id = definition
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ctx.interactive.external_id_taken(external_id, None) {
        return Err(ApiError::new("duplicate_external_id"));
    }
    let user = ctx
        .interactive
        .exchange_trigger(trigger_id, ctx.now_micros)
        .map_err(|e| ApiError::new(e.code()))?;
    fill_ids(&mut definition);
    let n = ctx.interactive.next_number();
    let view = OpenView {
        id: format!("V1{n:08}"),
        user,
        definition,
        hash: ctx.interactive.new_hash(ctx.now_micros),
        state: json!({"values": {}}),
        closed: false,
        errors: None,
        opened_at_ms: ctx.now_micros / 1000,
        updated_at_ms: None,
    };
    let shown = view.api_json();
    ctx.interactive.views.push(view);
    Ok(json!({"ok": true, "view": shown}))
}

/// `views.update`: replaces an open modal, found by `view_id` or `external_id`; a `hash`
/// that is not the current one is a `hash_conflict`.
pub fn views_update(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let view_id = p.str("view_id")?.filter(|s| !s.is_empty());
    let external_id = p.str("external_id")?.filter(|s| !s.is_empty());
    let found = match (view_id, external_id) {
        (Some(id), _) => ctx.interactive.open_view_mut(id).map(|v| v.id.clone()),
        (None, Some(external)) => ctx
            .interactive
            .views
            .iter()
            .find(|v| !v.closed && v.text("external_id") == external)
            .map(|v| v.id.clone()),
        (None, None) => {
            return Err(invalid(at(
                "either view_id or external_id is required",
                "/view_id",
            )));
        }
    };
    let id = found.ok_or(ApiError::new("not_found"))?;
    let definition = parse_view(p.value("view"))?;
    check_view(&definition).map_err(invalid)?;
    let new_external = definition
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if ctx.interactive.external_id_taken(new_external, Some(&id)) {
        return Err(ApiError::new("duplicate_external_id"));
    }
    let hash = ctx.interactive.new_hash(ctx.now_micros);
    let wanted_hash = p.str("hash")?.filter(|h| !h.is_empty());
    let now_ms = ctx.now_micros / 1000;
    let view = ctx
        .interactive
        .open_view_mut(&id)
        .ok_or(ApiError::new("not_found"))?;
    if wanted_hash.is_some_and(|h| h != view.hash) {
        return Err(ApiError::new("hash_conflict"));
    }
    view.replace(definition, hash, now_ms);
    Ok(json!({"ok": true, "view": view.api_json()}))
}

#[cfg(test)]
mod tests {
    use super::super::super::journal::Stats;
    use super::super::super::methods::{SlackMethod, run};
    use super::super::super::workspace::{User, Workspace};
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    fn call(state: &mut Interactive, method: SlackMethod, args: Value, now: i64) -> MethodResult {
        let mut workspace = Workspace::new(
            vec![],
            vec![User::new("U0DANA0001", "dana.seller@example.com")],
        );
        let mut stats = Stats::default();
        let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
            .map_err(ApiError::from)?;
        let mut ctx = Ctx {
            workspace: &mut workspace,
            stats: &mut stats,
            page_size: 100,
            now_micros: now,
            interactive: state,
        };
        run(method, &params, &mut ctx)
    }

    fn modal() -> Value {
        json!({
            "type": "modal",
            "callback_id": "sfrelay-task",
            "private_metadata": "006A",
            "title": {"type": "plain_text", "text": "Log a task"},
            "submit": {"type": "plain_text", "text": "Save"},
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "For *Acme*"}},
                {"type": "input", "block_id": "subject",
                 "label": {"type": "plain_text", "text": "Subject"},
                 "element": {"type": "plain_text_input", "action_id": "value"}},
                {"type": "input", "label": {"type": "plain_text", "text": "Due"},
                 "element": {"type": "datepicker"}}
            ]
        })
    }

    fn code(r: MethodResult) -> &'static str {
        r.err().map_or("ok", |e| e.code)
    }

    #[test]
    fn opens_a_modal_with_an_issued_trigger_once() {
        let mut state = Interactive::default();
        let trigger = state.issue_trigger("U0DANA0001", NOW);
        let args = json!({"trigger_id": trigger, "view": modal().to_string()});
        let opened = call(&mut state, SlackMethod::ViewsOpen, args.clone(), NOW + 1).unwrap();
        let view = &opened["view"];
        assert!(view["id"].as_str().unwrap().starts_with('V'), "{view}");
        assert_eq!(view["callback_id"], "sfrelay-task");
        assert_eq!(view["private_metadata"], "006A");
        assert_eq!(view["state"], json!({"values": {}}));
        assert_eq!(view["team_id"], TEAM_ID);
        assert_eq!(
            view["blocks"][0]["block_id"], "emu-block-0",
            "ids filled in"
        );
        assert_eq!(view["blocks"][2]["element"]["action_id"], "emu-action-2");
        assert_eq!(view["blocks"][1]["block_id"], "subject", "given ids kept");
        assert!(view["hash"].as_str().unwrap().contains('.'));
        assert_eq!(state.views()[0].user, "U0DANA0001");
        assert!(!state.views()[0].closed);

        assert_eq!(
            code(call(&mut state, SlackMethod::ViewsOpen, args, NOW + 2)),
            "exchanged_trigger_id"
        );
        let late = state.issue_trigger("U0DANA0001", NOW);
        let args = json!({"trigger_id": late, "view": modal()});
        assert_eq!(
            code(call(
                &mut state,
                SlackMethod::ViewsOpen,
                args,
                NOW + 3_000_001
            )),
            "expired_trigger_id"
        );
        let args = json!({"trigger_id": "12345.98765.abcd2358fdea", "view": modal()});
        assert_eq!(
            code(call(&mut state, SlackMethod::ViewsOpen, args, NOW)),
            "invalid_trigger_id"
        );
        assert_eq!(
            code(call(
                &mut state,
                SlackMethod::ViewsOpen,
                json!({"view": modal()}),
                NOW
            )),
            "invalid_arguments"
        );
        assert_eq!(state.views().len(), 1);
    }

    #[test]
    fn refuses_views_breaking_slacks_rules_without_using_the_trigger() {
        let mut state = Interactive::default();
        let trigger = state.issue_trigger("U0DANA0001", NOW);
        let with = |patch: Value| {
            let mut view = modal();
            if let (Some(view), Value::Object(patch)) = (view.as_object_mut(), patch) {
                view.extend(patch);
            }
            view
        };
        let many: Vec<Value> = (0..=MAX_VIEW_BLOCKS)
            .map(|_| json!({"type": "divider"}))
            .collect();
        let divider = json!([{"type": "divider"}]);
        for (view, says) in [
            (with(json!({"type": "home"})), "/view/type"),
            (
                with(json!({"title": {"type": "plain_text", "text": "x".repeat(25)}})),
                "/view/title/text",
            ),
            (
                with(json!({"title": {"type": "mrkdwn", "text": "x"}})),
                "/view/title/type",
            ),
            (
                with(json!({"close": {"type": "plain_text", "text": "c".repeat(25)}})),
                "/view/close/text",
            ),
            (
                with(json!({"submit": {"type": "plain_text", "text": ""}})),
                "/view/submit/text",
            ),
            (with(json!({"submit": null})), "/view/submit"),
            (with(json!({"blocks": many})), "/view/blocks"),
            (
                with(json!({"blocks": [{"type": "section"}]})),
                "/view/blocks/0",
            ),
            (
                with(json!({"blocks": [{"type": "divider", "block_id": "a"},
                                       {"type": "divider", "block_id": "a"}]})),
                "/view/blocks/1/block_id",
            ),
            (
                with(json!({"callback_id": "c".repeat(256)})),
                "/view/callback_id",
            ),
            (
                with(json!({"private_metadata": "m".repeat(3001)})),
                "/view/private_metadata",
            ),
            (
                with(json!({"private_metadata": 5})),
                "/view/private_metadata",
            ),
            (json!("[1]"), "/view"),
        ] {
            let args = json!({"trigger_id": trigger, "view": view});
            let error = call(&mut state, SlackMethod::ViewsOpen, args, NOW).unwrap_err();
            assert_eq!(error.code, "invalid_arguments", "{says}");
            assert!(
                error.messages[0].contains(&format!("[json-pointer:{says}]")),
                "{says}: {:?}",
                error.messages
            );
        }
        let at_limits = with(json!({
            "title": {"type": "plain_text", "text": "t".repeat(24)},
            "submit": null,
            "blocks": (0..MAX_VIEW_BLOCKS).map(|_| json!({"type": "divider"})).collect::<Vec<_>>(),
            "private_metadata": "m".repeat(3000),
            "callback_id": "c".repeat(255),
        }));
        let args = json!({"trigger_id": trigger, "view": at_limits});
        assert_eq!(
            code(call(&mut state, SlackMethod::ViewsOpen, args, NOW)),
            "ok"
        );
        let second = state.issue_trigger("U0DANA0001", NOW);
        let args =
            json!({"trigger_id": second, "view": with(json!({"blocks": divider, "submit": null}))});
        assert_eq!(
            code(call(&mut state, SlackMethod::ViewsOpen, args, NOW)),
            "ok"
        );
    }

    #[test]
    fn updates_by_id_or_external_id_and_checks_the_hash() {
        let mut state = Interactive::default();
        let trigger = state.issue_trigger("U0DANA0001", NOW);
        let mut view = modal();
        view["external_id"] = "task-006A".into();
        let args = json!({"trigger_id": trigger, "view": view});
        let opened = call(&mut state, SlackMethod::ViewsOpen, args, NOW).unwrap();
        let id = opened["view"]["id"].as_str().unwrap().to_owned();
        let hash = opened["view"]["hash"].as_str().unwrap().to_owned();

        let saving = json!({"type": "modal", "title": {"type": "plain_text", "text": "Saving…"},
                            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "…"}}]});
        let update = SlackMethod::ViewsUpdate;
        let updated = call(
            &mut state,
            update,
            json!({"view_id": id, "hash": hash, "view": saving}),
            NOW,
        )
        .unwrap();
        assert_eq!(updated["view"]["id"], id.as_str());
        assert_eq!(updated["view"]["title"]["text"], "Saving…");
        assert_eq!(updated["view"]["external_id"], "task-006A", "kept");
        assert_ne!(updated["view"]["hash"], hash.as_str());
        assert_eq!(
            code(call(
                &mut state,
                update,
                json!({"view_id": id, "hash": hash, "view": saving}),
                NOW
            )),
            "hash_conflict",
            "the hash it was opened with is stale now"
        );
        let by_external = call(
            &mut state,
            update,
            json!({"external_id": "task-006A", "view": modal()}),
            NOW,
        )
        .unwrap();
        assert_eq!(by_external["view"]["id"], id.as_str());
        assert_eq!(state.views()[0].blocks().len(), 3);

        for (args, error) in [
            (json!({"view_id": "V0NOPE", "view": saving}), "not_found"),
            (json!({"external_id": "other", "view": saving}), "not_found"),
            (json!({"view": saving}), "invalid_arguments"),
            (
                json!({"view_id": id, "view": {"type": "modal"}}),
                "invalid_arguments",
            ),
        ] {
            assert_eq!(
                code(call(&mut state, update, args.clone(), NOW)),
                error,
                "{args}"
            );
        }

        let other = state.issue_trigger("U0DANA0001", NOW);
        let mut taken = modal();
        taken["external_id"] = "task-006A".into();
        let args = json!({"trigger_id": other, "view": taken});
        assert_eq!(
            code(call(&mut state, SlackMethod::ViewsOpen, args, NOW)),
            "duplicate_external_id"
        );

        state.views[0].closed = true;
        assert_eq!(
            code(call(
                &mut state,
                update,
                json!({"view_id": id, "view": saving}),
                NOW
            )),
            "not_found",
            "a closed view cannot be updated"
        );
    }
}
