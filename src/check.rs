//! `sfrelay check` and `sfrelay render`: what an admin runs before shipping a route. Neither
//! touches Redis; `check` asks Slack only to confirm `#channel` names when a token is set.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::deliver::OrgDirectory;
use crate::event::Event;
use crate::ingest::flow::parse_flow_request;
use crate::render::template::RenderContext;
use crate::routing::{ChannelRef, PlannedAction, PlannedTarget, Route, RouteSet, Target};
use crate::slack::SlackClient;

const NO_EXTRA: Value = Value::Null;

/// Sample events from the fixtures directory (and its subfolders, except `invalid/`), with the
/// file each came from. Files that are not Flow envelopes are skipped.
pub fn load_fixtures(dir: &Path) -> Vec<(PathBuf, Event)> {
    let mut files = Vec::new();
    collect_json(dir, &mut files);
    files.sort();
    let mut events = Vec::new();
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        if let Ok(parsed) = parse_flow_request(&bytes, chrono::Utc::now()) {
            events.extend(parsed.into_iter().map(|e| (file.clone(), e)));
        }
    }
    events
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().and_then(|n| n.to_str()) != Some("invalid") {
                collect_json(&path, out);
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some("json") {
            out.push(path);
        }
    }
}

/// Checks every route and template; returns each problem as `file:line: message` (empty when
/// all is well) and a summary line.
pub async fn check(config: &Config, slack: Option<&SlackClient>) -> (Vec<String>, String) {
    let routes = match crate::app::load_routes(config) {
        Ok(routes) => routes,
        Err(errors) => {
            let n = errors.len();
            return (
                errors.into_iter().map(|e| e.to_string()).collect(),
                format!("{n} problem(s) loading routes and templates"),
            );
        }
    };
    let fixtures = load_fixtures(&config.fixtures_dir);
    let orgs = OrgDirectory::new(&config.orgs);
    let mut problems = Vec::new();
    let mut renders = 0;
    let users = HashMap::new();
    for route in &routes.routes {
        let samples: Vec<&(PathBuf, Event)> = fixtures
            .iter()
            .filter(|(_, e)| e.object == route.object)
            .collect();
        for (file, event) in samples {
            let ctx = RenderContext {
                event,
                instance_url: orgs.instance_url(&event.org_id),
                users: &users,
                extra: &NO_EXTRA,
            };
            if let Some(when) = &route.when
                && let Err(e) = when.eval(&ctx)
            {
                problems.push(format!(
                    "{}:1: condition fails on {}: {e}",
                    route.file.display(),
                    file.display()
                ));
            }
            for action in &route.actions {
                if let Some(when) = &action.when
                    && let Err(e) = when.eval(&ctx)
                {
                    problems.push(format!(
                        "{}:{}: condition fails on {}: {e}",
                        route.file.display(),
                        action.line,
                        file.display()
                    ));
                }
                renders += 1;
                if let Err(e) = routes.templates.render(&action.template, &ctx) {
                    problems.push(format!(
                        "{}:{}: {e} (with {})",
                        route.file.display(),
                        action.line,
                        file.display()
                    ));
                }
            }
        }
    }
    let mut names_checked = 0;
    if let Some(slack) = slack {
        match channel_names(slack).await {
            Ok(known) => {
                for route in &routes.routes {
                    for (line, name) in channel_names_of(route) {
                        names_checked += 1;
                        if !known.contains(&name) {
                            problems.push(format!(
                                "{}:{line}: channel #{name} does not exist in Slack (or the bot cannot see it)",
                                route.file.display()
                            ));
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("slack: cannot list channels to check names: {e}")),
        }
    }
    for (template, name) in routes.undeclared_buttons() {
        problems.push(format!(
            "template {template}: action({name:?}) places a button that no route or buttons file declares (add [buttons.{name}])"
        ));
    }
    let summary = format!(
        "{} route(s), {} button(s), {} template(s), {} render(s) against {} fixture event(s), {} channel name(s) checked in Slack{}",
        routes.routes.len(),
        routes.every_button().count(),
        routes.templates.names().len(),
        renders,
        fixtures.len(),
        names_checked,
        if slack.is_none() {
            " (set SLACK_BOT_TOKEN to check names)"
        } else {
            ""
        }
    );
    (problems, summary)
}

/// Every `#name` a route uses, with the line of its action.
fn channel_names_of(route: &Route) -> Vec<(usize, String)> {
    let mut names = Vec::new();
    if let Some(ChannelRef::Name(name)) = &route.fallback_channel {
        names.push((1, name.clone()));
    }
    for action in &route.actions {
        let channel = match &action.target {
            Target::Post { channel } => Some(channel),
            Target::Thread { channel, .. } | Target::Update { channel, .. } => channel.as_ref(),
            Target::Dm { .. } | Target::Room { .. } | Target::Followers => None,
        };
        if let Some(ChannelRef::Name(name)) = channel {
            names.push((action.line, name.clone()));
        }
    }
    names
}

async fn channel_names(slack: &SlackClient) -> Result<BTreeSet<String>, crate::slack::SlackError> {
    let mut names = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = slack.list_channels(cursor.as_deref()).await?;
        names.extend(page.channels.iter().map(|c| c.name.clone()));
        match page.next_cursor() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    Ok(names)
}

/// What `render` prints for one event.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub event_id: String,
    pub org_id: String,
    pub object: String,
    pub record_id: String,
    pub routes: Vec<RouteRun>,
}

/// One fired route's Slack calls.
#[derive(Debug, Serialize)]
pub struct RouteRun {
    pub route: String,
    pub priority: crate::routing::Priority,
    pub dedupe: crate::routing::Dedupe,
    pub calls: Vec<Value>,
    /// People the messages mention, resolved through Slack only at delivery.
    pub unresolved_emails: BTreeSet<String>,
}

/// The Slack calls `events` would cause, with no side effect. With `only`, just that route
/// (reported even when its condition does not hold, with no calls).
pub fn render(
    routes: &RouteSet,
    orgs: &OrgDirectory,
    events: &[Event],
    only: Option<&str>,
) -> Result<Vec<DryRun>, String> {
    if let Some(name) = only
        && routes.get(name).is_none()
    {
        return Err(format!("no route named {name:?}"));
    }
    let users = HashMap::new();
    let mut runs = Vec::new();
    for event in events {
        let ctx = RenderContext {
            event,
            instance_url: orgs.instance_url(&event.org_id),
            users: &users,
            extra: &NO_EXTRA,
        };
        let fired = routes.fired(event, &ctx);
        let mut route_runs = Vec::new();
        for route in fired
            .iter()
            .filter(|r| only.is_none_or(|name| r.name == name))
        {
            let actions = routes.plan(route, &ctx)?;
            let mut calls = Vec::new();
            let mut unresolved = BTreeSet::new();
            for action in &actions {
                let rendered = routes
                    .templates
                    .render(&action.template, &ctx)
                    .map_err(|e| e.to_string())?;
                unresolved.extend(rendered.wanted_emails.iter().cloned());
                calls.push(call(action, rendered.text, rendered.blocks));
            }
            route_runs.push(RouteRun {
                route: route.name.clone(),
                priority: route.priority,
                dedupe: route.dedupe,
                calls,
                unresolved_emails: unresolved,
            });
        }
        runs.push(DryRun {
            event_id: event.id.clone(),
            org_id: event.org_id.to_string(),
            object: event.object.clone(),
            record_id: event.record_id.to_string(),
            routes: route_runs,
        });
    }
    Ok(runs)
}

fn call(action: &PlannedAction, text: String, blocks: Vec<Value>) -> Value {
    let mut call = serde_json::json!({
        "method": "chat.postMessage",
        "template": action.template,
        "text": text,
        "blocks": blocks,
    });
    match &action.target {
        PlannedTarget::Post { channel } => call["channel"] = channel.to_string().into(),
        PlannedTarget::Dm { email, fallback } => {
            call["dm_to"] = email.clone().into();
            call["fallback_channel"] = fallback.as_ref().map(ToString::to_string).into();
        }
        PlannedTarget::Thread { on, channel } => {
            call["thread_of"] = on.clone().into();
            call["channel_if_none"] = channel.as_ref().map(ToString::to_string).into();
        }
        PlannedTarget::Room { name, invite } => {
            call["room"] = name.clone().into();
            call["invite"] = invite.clone().into();
        }
        PlannedTarget::Followers => call["dm_to"] = "each follower of the record".into(),
        PlannedTarget::Update { on, channel } => {
            call["method"] = "chat.update".into();
            call["update_of"] = on.clone().into();
            call["channel_if_none"] = channel.as_ref().map(ToString::to_string).into();
        }
    }
    call
}
