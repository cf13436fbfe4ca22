//! Routing is pure: (event, routes) → which routes fire and what each wants sent. No I/O, so it
//! is tested without any server and is what `sfrelay render` prints.

pub mod buttons;
pub mod gate;
pub mod route;

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::event::Event;
use crate::render::template::{RenderContext, RenderOptions, Templates};
pub use buttons::{Button, ButtonKind};
pub use route::{ActionSpec, ChannelRef, Dedupe, LoadError, OnGap, Priority, Route, Target};

/// Every route and template, loaded and checked together; swapped whole on reload.
pub struct RouteSet {
    pub routes: Vec<Route>,
    pub templates: Templates,
    /// Buttons declared in files of their own (no `object`, only `[buttons]`), for any card.
    pub buttons: Vec<Button>,
}

/// One action of a fired route, with its target worked out from the event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedAction {
    /// The action's position in its route: part of its ledger key.
    pub index: usize,
    pub target: PlannedTarget,
    pub template: String,
}

/// Where a planned action goes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlannedTarget {
    Post {
        channel: ChannelRef,
    },
    /// `email` is `None` when the record holds no address: the fallback channel is used.
    Dm {
        email: Option<String>,
        fallback: Option<ChannelRef>,
    },
    Thread {
        on: String,
        channel: Option<ChannelRef>,
    },
    Update {
        on: String,
        channel: Option<ChannelRef>,
    },
    /// A private room named `name` (already slugged to Slack's rules) with these people.
    Room {
        name: String,
        invite: Vec<String>,
    },
    /// Whoever follows the record when the action runs, each in their own DM.
    Followers,
}

/// Turns any text into a Slack channel name: lowercase letters, digits, `-` and `_`, at most
/// 80 characters (`Acme Corp - Q3 Enterprise` → `acme-corp-q3-enterprise`).
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_matches('-').chars().take(80).collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

impl RouteSet {
    /// Loads `templates_dir` then every `*.toml` in `routes_dir`; returns every problem found.
    pub fn load(
        routes_dir: &Path,
        templates_dir: &Path,
        options: RenderOptions,
    ) -> Result<RouteSet, Vec<LoadError>> {
        let options_zone = options.time_zone;
        let templates = Templates::load_dir(templates_dir, options).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| LoadError {
                    file: e.file,
                    line: e.line,
                    message: e.message,
                })
                .collect::<Vec<_>>()
        })?;
        let mut files = Vec::new();
        let entries = std::fs::read_dir(routes_dir).map_err(|e| {
            vec![LoadError {
                file: routes_dir.to_path_buf(),
                line: 1,
                message: format!("cannot read the routes directory: {e}"),
            }]
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                files.push(path);
            }
        }
        files.sort();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((path, text)),
                Err(e) => errors.push(LoadError {
                    file: path,
                    line: 1,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        let sources: Vec<(&Path, &str)> = sources
            .iter()
            .map(|(p, t)| (p.as_path(), t.as_str()))
            .collect();
        match Self::from_routes_in(&sources, templates, options_zone) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Builds a set from route sources (path, text) and loaded templates (schedules in UTC
    /// unless they name a zone).
    pub fn from_routes(
        sources: &[(&Path, &str)],
        templates: Templates,
    ) -> Result<RouteSet, Vec<LoadError>> {
        Self::from_routes_in(sources, templates, chrono_tz::UTC)
    }

    /// Like `from_routes`, with the default zone of schedules.
    pub fn from_routes_in(
        sources: &[(&Path, &str)],
        templates: Templates,
        zone: chrono_tz::Tz,
    ) -> Result<RouteSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut routes: Vec<Route> = Vec::new();
        let mut shared = Vec::new();
        for (path, text) in sources {
            if buttons::is_buttons_file(text) {
                match buttons::parse_file(path, text) {
                    Ok(found) => shared.extend(found),
                    Err(e) => errors.extend(e),
                }
                continue;
            }
            match Route::parse_in(path, text, &templates, zone) {
                Ok(route) => {
                    if let Some(other) = routes.iter().find(|r| r.name == route.name) {
                        errors.push(LoadError {
                            file: path.to_path_buf(),
                            line: 1,
                            message: format!(
                                "route name {:?} is also used by {}",
                                route.name,
                                other.file.display()
                            ),
                        });
                    }
                    routes.push(route);
                }
                Err(e) => errors.extend(e),
            }
        }
        let mut declared: std::collections::HashMap<&str, &Path> = std::collections::HashMap::new();
        let every = shared
            .iter()
            .chain(routes.iter().flat_map(|r| r.buttons.iter()));
        for button in every {
            if let Some(first) = declared.insert(button.name.as_str(), &button.file) {
                errors.push(LoadError {
                    file: button.file.clone(),
                    line: button.line,
                    message: format!(
                        "buttons.{}: also declared in {}; a button name is declared once",
                        button.name,
                        first.display()
                    ),
                });
            }
        }
        let names: HashSet<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        for route in &routes {
            for action in &route.actions {
                if let Target::Thread { on, .. } | Target::Update { on, .. } = &action.target
                    && !names.contains(on.as_str())
                {
                    errors.push(LoadError {
                        file: route.file.clone(),
                        line: action.line,
                        message: format!("`on = {on:?}` names no route"),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(RouteSet {
                routes,
                templates,
                buttons: shared,
            })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The button declared as `name`, in whichever route file declares it.
    pub fn button(&self, name: &str) -> Option<&Button> {
        self.every_button().find(|b| b.name == name)
    }

    /// Buttons templates place (`action('<name>')`) that nothing declares, as
    /// (template, name): a click on one would only be told it is not available.
    pub fn undeclared_buttons(&self) -> Vec<(String, String)> {
        let mut missing = Vec::new();
        for (template, placed) in self.templates.action_names() {
            for name in placed {
                if self.button(name).is_none() && !buttons::RESERVED.contains(&name.as_str()) {
                    missing.push((template.clone(), name.clone()));
                }
            }
        }
        missing
    }

    /// Whether some route messages the followers of `object`'s records in `org` (so following
    /// one of them means something).
    pub fn followable(&self, object: &str, org: &crate::event::SalesforceId) -> bool {
        self.routes.iter().any(|r| {
            r.schedule.is_none()
                && r.object == object
                && (r.orgs.is_empty() || r.orgs.contains(org))
                && r.actions.iter().any(|a| a.target == Target::Followers)
        })
    }

    /// Every declared button, in button files and route files.
    pub fn every_button(&self) -> impl Iterator<Item = &Button> {
        self.buttons
            .iter()
            .chain(self.routes.iter().flat_map(|r| r.buttons.iter()))
    }

    /// The routes this event fires: object, change type, org filter and condition all match.
    /// A condition that fails to evaluate does not fire (and is logged).
    pub fn fired<'a>(&'a self, event: &Event, ctx: &RenderContext<'_>) -> Vec<&'a Route> {
        self.routes
            .iter()
            .filter(|route| {
                route.schedule.is_none()
                    && route.object == event.object
                    && route.change_types.contains(&event.change_type)
                    && (route.orgs.is_empty() || route.orgs.contains(&event.org_id))
                    && route.when.as_ref().is_none_or(|c| {
                        c.eval(ctx).unwrap_or_else(|e| {
                            tracing::warn!(event_id = %event.id, route = %route.name, error = %e, "route condition failed to evaluate; not firing");
                            false
                        })
                    })
            })
            .collect()
    }

    /// The actions of `route` that apply to this event, targets worked out.
    pub fn plan(
        &self,
        route: &Route,
        ctx: &RenderContext<'_>,
    ) -> Result<Vec<PlannedAction>, String> {
        let mut planned = Vec::new();
        for (index, action) in route.actions.iter().enumerate() {
            if let Some(when) = &action.when
                && !when.eval(ctx)?
            {
                continue;
            }
            let target = match &action.target {
                Target::Post { channel } => PlannedTarget::Post {
                    channel: channel.clone(),
                },
                Target::Dm { email } => PlannedTarget::Dm {
                    email: email_from(email, ctx),
                    fallback: route.fallback_channel.clone(),
                },
                Target::Thread { on, channel } => PlannedTarget::Thread {
                    on: on.clone(),
                    channel: channel.clone(),
                },
                Target::Update { on, channel } => PlannedTarget::Update {
                    on: on.clone(),
                    channel: channel.clone(),
                },
                Target::Followers => PlannedTarget::Followers,
                Target::Room { invite, .. } => {
                    let text = match &action.name {
                        Some(expr) => expr.eval_text(ctx)?,
                        None => String::new(),
                    };
                    let mut name = slug(&text);
                    if name.is_empty() {
                        name = slug(&format!("{}-{}", route.name, ctx.event.record_id));
                    }
                    let mut people: Vec<String> = Vec::new();
                    for spec in invite {
                        if let Some(email) = email_from(spec, ctx)
                            && !people.iter().any(|p| p.eq_ignore_ascii_case(&email))
                        {
                            people.push(email);
                        }
                    }
                    PlannedTarget::Room {
                        name,
                        invite: people,
                    }
                }
            };
            planned.push(PlannedAction {
                index,
                target,
                template: action.template.clone(),
            });
        }
        Ok(planned)
    }
}

/// Whether `s` looks like one email address (and nothing that Slack or a log could read as
/// markup or a list).
fn is_email(s: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| !c.is_whitespace() && !"<>@,;\"()[]\\".contains(c))
    };
    match s.split_once('@') {
        Some((local, domain)) => ok(local) && ok(domain) && domain.contains('.'),
        None => false,
    }
}

/// An action's `email`: a literal address, or a path into the event (`record.Owner.Email`).
/// Anything that is not one plausible address counts as none.
/// The cards of `route`'s approval gate for the people at `who` (emails, or paths to them),
/// numbered from `first` (apart from the route's own actions in the ledger); with a gate
/// channel, one card posted there; when the record names nobody, one card in the route's
/// `fallback_channel`.
pub fn plan_gate_cards(
    route: &Route,
    gate: &gate::Gate,
    who: &[String],
    first: usize,
    ctx: &RenderContext<'_>,
) -> Vec<PlannedAction> {
    if let Some(channel) = &gate.channel {
        return vec![PlannedAction {
            index: first,
            target: PlannedTarget::Post {
                channel: channel.clone(),
            },
            template: gate.template.clone(),
        }];
    }
    let mut emails: Vec<String> = Vec::new();
    for spec in who {
        if let Some(email) = email_from(spec, ctx)
            && !emails.iter().any(|e| e.eq_ignore_ascii_case(&email))
        {
            emails.push(email);
        }
    }
    if emails.is_empty()
        && let Some(channel) = &route.fallback_channel
    {
        // The record names nobody to ask: the card goes where the route's DMs fall back to.
        return vec![PlannedAction {
            index: first,
            target: PlannedTarget::Post {
                channel: channel.clone(),
            },
            template: gate.template.clone(),
        }];
    }
    emails
        .into_iter()
        .enumerate()
        .map(|(i, email)| PlannedAction {
            index: first + i,
            target: PlannedTarget::Dm {
                email: Some(email),
                fallback: route.fallback_channel.clone(),
            },
            template: gate.template.clone(),
        })
        .collect()
}

fn email_from(spec: &str, ctx: &RenderContext<'_>) -> Option<String> {
    let spec = spec.trim();
    if spec.contains('@') {
        return is_email(spec).then(|| spec.to_string());
    }
    let mut parts = spec.split('.');
    let root = match parts.next()? {
        "record" => Value::Object(ctx.event.record.clone()),
        "prior" => Value::Object(ctx.event.prior.clone().unwrap_or_default()),
        other => ctx.extra.get(other)?.clone(),
    };
    let mut value = &root;
    for part in parts {
        value = value.get(part)?;
    }
    value
        .as_str()
        .map(str::trim)
        .filter(|s| is_email(s))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::flow::parse_flow_request;
    use std::collections::HashMap;

    const TEMPLATE: &str = r#"{"text": "{{ record.Name }}", "blocks": []}"#;

    fn set(routes: &[(&str, &str)]) -> Result<RouteSet, Vec<LoadError>> {
        let templates =
            Templates::from_sources(&[("t.json", TEMPLATE)], RenderOptions::default()).unwrap();
        let sources: Vec<(std::path::PathBuf, &str)> = routes
            .iter()
            .map(|(name, text)| {
                (
                    std::path::PathBuf::from(format!("routes/{name}.toml")),
                    *text,
                )
            })
            .collect();
        let sources: Vec<(&Path, &str)> = sources.iter().map(|(p, t)| (p.as_path(), *t)).collect();
        RouteSet::from_routes(&sources, templates)
    }

    fn event(body: serde_json::Value) -> Event {
        parse_flow_request(body.to_string().as_bytes(), chrono::Utc::now())
            .unwrap()
            .remove(0)
    }

    fn fired(set: &RouteSet, event: &Event) -> Vec<String> {
        let users = HashMap::new();
        let ctx = RenderContext {
            event,
            instance_url: None,
            users: &users,
            extra: &Value::Null,
        };
        set.fired(event, &ctx)
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    fn opportunity(stage: &str, prior: &str, amount: u64) -> Event {
        event(serde_json::json!({
            "org_id": "00D5g000004ABCdEAO", "object": "Opportunity", "changed_fields": ["StageName"],
            "record": {"Id": "006Hs00000BkXyzIAF", "StageName": stage, "Amount": amount},
            "prior": {"StageName": prior}
        }))
    }

    const WON: &str = r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[[actions]]
type = "post"
channel = "#enterprise-wins"
when = 'record.Amount >= 100000'
template = "t"
[[actions]]
type = "post"
channel = "C0SMBWINS1"
when = 'record.Amount < 100000'
template = "t"
"##;

    #[test]
    fn conditions_decide_which_routes_fire_and_which_actions_apply() {
        let set = set(&[("won", WON)]).unwrap();
        assert_eq!(
            fired(&set, &opportunity("Closed Won", "Negotiation", 5)),
            vec!["won"]
        );
        assert!(fired(&set, &opportunity("Closed Won", "Closed Won", 5)).is_empty());
        assert!(fired(&set, &opportunity("Prospecting", "Qualification", 5)).is_empty());

        let users = HashMap::new();
        for (amount, channel) in [
            (250_000, ChannelRef::Name("enterprise-wins".into())),
            (99_999, ChannelRef::Id("C0SMBWINS1".into())),
        ] {
            let e = opportunity("Closed Won", "Negotiation", amount);
            let ctx = RenderContext {
                event: &e,
                instance_url: None,
                users: &users,
                extra: &Value::Null,
            };
            let planned = set.plan(set.get("won").unwrap(), &ctx).unwrap();
            assert_eq!(planned.len(), 1, "{amount}");
            assert_eq!(planned[0].target, PlannedTarget::Post { channel });
        }
    }

    #[test]
    fn object_change_type_and_org_filters_apply() {
        let route = r#"
object = "Case"
change_types = ["CREATE"]
orgs = ["00D5g000004ABCd"]
[[actions]]
type = "post"
channel = "C0SUPESC01"
template = "t"
"#;
        let set = set(&[("cases", route)]).unwrap();
        let case = |org: &str, change: &str| {
            event(
                serde_json::json!({"org_id": org, "object": "Case", "change_type": change,
                "record": {"Id": "500Hs00000EfGhiIAF"}}),
            )
        };
        assert_eq!(
            fired(&set, &case("00D5g000004ABCdEAO", "CREATE")),
            vec!["cases"]
        );
        assert!(fired(&set, &case("00D5g000004ABCdEAO", "UPDATE")).is_empty());
        assert!(fired(&set, &case("00D5g000009XYZaEAO", "CREATE")).is_empty());
    }

    #[test]
    fn dm_email_comes_from_the_record() {
        let route = r##"
object = "Opportunity"
fallback_channel = "#deal-desk"
[[actions]]
type = "dm"
email = "record.Owner.Email"
template = "t"
"##;
        let set = set(&[("dm", route)]).unwrap();
        let e = event(
            serde_json::json!({"org_id": "00D5g000004ABCdEAO", "object": "Opportunity",
            "record": {"Id": "006Hs00000BkXyzIAF", "Owner": {"Email": " dana@example.com "}}}),
        );
        let users = HashMap::new();
        let ctx = RenderContext {
            event: &e,
            instance_url: None,
            users: &users,
            extra: &Value::Null,
        };
        let planned = set.plan(set.get("dm").unwrap(), &ctx).unwrap();
        assert_eq!(
            planned[0].target,
            PlannedTarget::Dm {
                email: Some("dana@example.com".into()),
                fallback: Some(ChannelRef::Name("deal-desk".into()))
            }
        );
    }

    #[test]
    fn only_plausible_emails_are_used() {
        assert!(is_email("dana.seller@example.com"));
        for bad in [
            "<!here>@example.com",
            "a b@example.com",
            "a@b",
            "@example.com",
            "a,b@x.com",
            "x",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn slugs_follow_slacks_channel_name_rules() {
        assert_eq!(
            slug("deal-Acme Corp - Q3 Enterprise"),
            "deal-acme-corp-q3-enterprise"
        );
        assert_eq!(slug("  AT&T / Ünïcode__x "), "at-t-n-code__x");
        assert_eq!(slug("!!!"), "");
        let long = slug(&"abc ".repeat(40));
        assert!(long.len() <= 80 && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn load_errors_name_file_and_line() {
        let errors = set(&[(
            "bad",
            "object = \"Opportunity\"\nwhen = 'became(\"StageName\"'\n[[actions]]\ntype = \"post\"\nchannel = \"deal desk\"\ntemplate = \"nope\"\n",
        )])
        .err()
        .unwrap();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("routes/bad.toml:2: condition")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("routes/bad.toml:5:") && e.contains("channel")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("routes/bad.toml:6: unknown template \"nope\"")),
            "{text:?}"
        );

        let errors = set(&[("typo", "object = \"Lead\"\nwhenn = 'true'\n")])
            .err()
            .unwrap();
        assert!(
            errors[0].to_string().starts_with("routes/typo.toml:2:"),
            "{errors:?}"
        );

        let errors = set(&[(
            "t",
            "object = \"Case\"\n[[actions]]\ntype = \"update\"\non = \"ghost\"\ntemplate = \"t\"\n",
        )])
        .err()
        .unwrap();
        assert!(
            errors[0].to_string().contains("names no route"),
            "{errors:?}"
        );
    }
}
