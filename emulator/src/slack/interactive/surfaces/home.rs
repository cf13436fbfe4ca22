//! `views.publish`: the app's Home tab, one view per person, checked like a modal (blocks,
//! ids, lengths) but of type `home`; a `hash` that is not the person's current one is a
//! `hash_conflict`. The latest view per person and every publish are kept for the control API,
//! and a switch turns the app's Home tab off (`not_enabled`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::super::super::blocks;
use super::super::super::methods::{ApiError, Ctx, MethodResult};
use super::super::super::workspace::{BOT_ID, TEAM_ID};
use super::super::APP_ID;
use super::super::views::{
    MAX_PRIVATE_METADATA, MAX_VIEW_BLOCKS, MAX_VIEW_ID, at, fill_ids, invalid, parse_view,
    short_string,
};
use crate::params::Params;

/// Largest view Slack takes: 250 kB of JSON.
pub const MAX_VIEW_BYTES: usize = 250 * 1024;

/// A person's Home tab as last published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HomeView {
    /// Slack's view id: the same across a person's publishes.
    pub id: String,
    pub user: String,
    /// The definition, block ids filled in.
    pub definition: Map<String, Value>,
    pub hash: String,
    pub published_at_ms: i64,
    /// How many times it was published.
    pub publishes: u64,
}

impl HomeView {
    fn text(&self, key: &str) -> &str {
        self.definition
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The view object as Slack's API and the `app_home_opened` event show it.
    pub fn api_json(&self) -> Value {
        json!({
            "id": self.id,
            "team_id": TEAM_ID,
            "type": "home",
            "close": null,
            "submit": null,
            "blocks": self.definition.get("blocks").cloned().unwrap_or_else(|| json!([])),
            "private_metadata": self.text("private_metadata"),
            "callback_id": self.text("callback_id"),
            "external_id": self.text("external_id"),
            "state": {"values": {}},
            "hash": self.hash,
            "clear_on_close": false,
            "notify_on_close": false,
            "root_view_id": self.id,
            "previous_view_id": null,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        })
    }
}

/// One publish, as `GET /_emulator/home` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Publish {
    pub user: String,
    pub view_id: String,
    pub hash: String,
    pub blocks: Value,
    pub at_ms: i64,
}

/// The app's Home tab across the workspace.
#[derive(Debug)]
pub struct Home {
    /// `features.app_home.home_tab_enabled`; when off, `views.publish` is `not_enabled`.
    pub enabled: bool,
    views: BTreeMap<String, HomeView>,
    publishes: Vec<Publish>,
}

impl Default for Home {
    fn default() -> Self {
        Home {
            enabled: true,
            views: BTreeMap::new(),
            publishes: Vec::new(),
        }
    }
}

impl Home {
    /// The person's current Home view, if the app published one.
    pub fn view_of(&self, user: &str) -> Option<&HomeView> {
        self.views.get(user)
    }

    /// What `GET /_emulator/home` shows.
    pub fn to_json(&self) -> Value {
        json!({
            "enabled": self.enabled,
            "views": self.views.values().collect::<Vec<_>>(),
            "publishes": self.publishes,
        })
    }
}

/// Checks a Home view against Slack's rules; the error is Slack's message line.
fn check_home(view: &Map<String, Value>) -> Result<(), String> {
    if view.get("type").and_then(Value::as_str) != Some("home") {
        return Err(at("must be home", "/view/type"));
    }
    let blocks = view
        .get("blocks")
        .ok_or_else(|| at("missing required field: blocks", "/view"))?
        .as_array()
        .ok_or_else(|| at("must be an array", "/view/blocks"))?;
    blocks::validate_at_most(blocks, MAX_VIEW_BLOCKS, "/view/blocks")
        .map_err(|e| e.to_slack_message())?;
    let mut ids = std::collections::HashSet::new();
    for (i, block) in blocks.iter().enumerate() {
        if let Some(id) = block.get("block_id").and_then(Value::as_str)
            && !ids.insert(id)
        {
            return Err(at(
                &format!("block_id `{id}` is used twice"),
                &format!("/view/blocks/{i}/block_id"),
            ));
        }
    }
    short_string(view, "callback_id", MAX_VIEW_ID)?;
    short_string(view, "external_id", MAX_VIEW_ID)?;
    short_string(view, "private_metadata", MAX_PRIVATE_METADATA)
}

/// `views.publish {user_id, view, hash?}`.
pub fn views_publish(p: &Params, ctx: &mut Ctx<'_>) -> MethodResult {
    let user_id = p.str("user_id")?.map(str::trim).unwrap_or_default();
    let person = ctx
        .workspace
        .user(user_id)
        .filter(|u| !u.deleted && !u.is_bot);
    if person.is_none() {
        return Err(ApiError {
            code: "invalid_arguments",
            messages: vec!["invalid `user_id`".into()],
        });
    }
    let mut definition = parse_view(p.value("view"))?;
    if Value::Object(definition.clone()).to_string().len() > MAX_VIEW_BYTES {
        return Err(ApiError::new("view_too_large"));
    }
    check_home(&definition).map_err(invalid)?;
    let home = &ctx.interactive.surfaces.home;
    if !home.enabled {
        return Err(ApiError::new("not_enabled"));
    }
    let current = home.views.get(user_id);
    let wanted_hash = p.str("hash")?.filter(|h| !h.is_empty());
    if let (Some(wanted), Some(current)) = (wanted_hash, current)
        && wanted != current.hash
    {
        return Err(ApiError::new("hash_conflict"));
    }
    let external_id = definition
        .get("external_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !external_id.is_empty()
        && home
            .views
            .values()
            .any(|v| v.user != user_id && v.text("external_id") == external_id)
    {
        return Err(ApiError::new("duplicate_external_id"));
    }
    let existing = current.map(|v| (v.id.clone(), v.publishes));
    let (id, publishes) = match existing {
        Some(existing) => existing,
        None => {
            let n = ctx.interactive.next_number();
            (format!("V2{n:08}"), 0)
        }
    };
    fill_ids(&mut definition);
    let hash = ctx.interactive.new_hash(ctx.now_micros);
    let view = HomeView {
        id: id.clone(),
        user: user_id.to_owned(),
        definition,
        hash: hash.clone(),
        published_at_ms: ctx.now_micros / 1000,
        publishes: publishes + 1,
    };
    let shown = view.api_json();
    let home = &mut ctx.interactive.surfaces.home;
    home.publishes.push(Publish {
        user: user_id.to_owned(),
        view_id: id,
        hash,
        blocks: shown["blocks"].clone(),
        at_ms: ctx.now_micros / 1000,
    });
    home.views.insert(user_id.to_owned(), view);
    Ok(json!({"ok": true, "view": shown}))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::journal::Stats;
    use super::super::super::super::methods::{SlackMethod, run};
    use super::super::super::super::workspace::{User, Workspace};
    use super::super::super::Interactive;
    use super::*;

    fn call(state: &mut Interactive, args: Value) -> MethodResult {
        let mut bot = User::new("U0BOT00001", "bot@example.com");
        bot.is_bot = true;
        let mut ws = Workspace::new(
            vec![],
            vec![
                User::new("U0DANA0001", "dana.seller@example.com"),
                User::new("U0SAM00001", "sam.engineer@example.com"),
                bot,
            ],
        );
        let mut stats = Stats::default();
        let params = Params::from_body(Some("application/json"), args.to_string().as_bytes())
            .map_err(ApiError::from)?;
        let mut ctx = Ctx {
            workspace: &mut ws,
            stats: &mut stats,
            page_size: 100,
            now_micros: 1_700_000_000_000_000,
            interactive: state,
        };
        run(SlackMethod::ViewsPublish, &params, &mut ctx)
    }

    fn code(r: MethodResult) -> &'static str {
        r.err().map_or("ok", |e| e.code)
    }

    fn home(text: &str) -> Value {
        json!({"type": "home", "callback_id": "sfrelay-home", "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
    }

    #[test]
    fn publishes_one_view_per_person() {
        let mut state = Interactive::default();
        let first = call(
            &mut state,
            json!({"user_id": "U0DANA0001", "view": home("Hi").to_string()}),
        )
        .unwrap();
        let view = &first["view"];
        assert_eq!(view["type"], "home");
        assert_eq!(view["blocks"][0]["block_id"], "emu-block-0");
        let hash = view["hash"].as_str().unwrap().to_owned();
        let again = json!({"user_id": "U0DANA0001", "view": home("Again"), "hash": hash});
        let second = call(&mut state, again.clone()).unwrap();
        assert_eq!(second["view"]["id"], view["id"], "the same view");
        assert_ne!(second["view"]["hash"], view["hash"]);
        assert_eq!(
            code(call(&mut state, again)),
            "hash_conflict",
            "a stale hash"
        );
        call(
            &mut state,
            json!({"user_id": "U0SAM00001", "view": home("Sam")}),
        )
        .unwrap();

        let home_tab = &state.surfaces.home;
        let dana = home_tab.view_of("U0DANA0001").unwrap();
        assert_eq!(dana.publishes, 2);
        assert_eq!(dana.api_json()["blocks"][0]["text"]["text"], "Again");
        let shown = home_tab.to_json();
        assert_eq!(shown["views"].as_array().map(Vec::len), Some(2));
        assert_eq!(shown["publishes"].as_array().map(Vec::len), Some(3));
        assert_ne!(
            state.surfaces.home.view_of("U0SAM00001").unwrap().id,
            dana.id
        );
    }

    #[test]
    fn checks_like_slack() {
        let mut state = Interactive::default();
        let many: Vec<Value> = (0..101).map(|_| json!({"type": "divider"})).collect();
        let twice = json!({"type": "home", "blocks": [
            {"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}]});
        let huge = json!({"type": "home", "private_metadata": "x".repeat(MAX_VIEW_BYTES),
                          "blocks": []});
        for (args, error) in [
            (json!({"view": home("x")}), "invalid_arguments"),
            (
                json!({"user_id": "U0GHOST001", "view": home("x")}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0BOT00001", "view": home("x")}),
                "invalid_arguments",
            ),
            (json!({"user_id": "U0DANA0001"}), "invalid_arguments"),
            (
                json!({"user_id": "U0DANA0001", "view": "{"}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": {"type": "modal", "blocks": []}}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": {"type": "home"}}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": {"type": "home", "blocks": many}}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": {"type": "home", "blocks": [{"type": "x"}]}}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": twice}),
                "invalid_arguments",
            ),
            (
                json!({"user_id": "U0DANA0001", "view": huge}),
                "view_too_large",
            ),
        ] {
            assert_eq!(code(call(&mut state, args.clone())), error, "{args}");
        }
        let ext = json!({"type": "home", "external_id": "e1", "blocks": []});
        call(&mut state, json!({"user_id": "U0DANA0001", "view": ext})).unwrap();
        assert_eq!(
            code(call(
                &mut state,
                json!({"user_id": "U0SAM00001", "view": ext})
            )),
            "duplicate_external_id"
        );
        state.surfaces.home.enabled = false;
        assert_eq!(
            code(call(
                &mut state,
                json!({"user_id": "U0DANA0001", "view": home("x")})
            )),
            "not_enabled"
        );
        assert_eq!(
            state.surfaces.home.to_json()["publishes"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }
}
