//! Routing is pure: (event, routes) → which routes fire and what each wants sent. No I/O, so it
//! is tested without any server and is what `sfrelay render` prints.

pub mod route;

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::event::Event;
use crate::render::template::{RenderContext, RenderOptions, Templates};
pub use route::{ActionSpec, ChannelRef, Dedupe, LoadError, Priority, Route, Target};

/// Every route and template, loaded and checked together; swapped whole on reload.
pub struct RouteSet {
    pub routes: Vec<Route>,
    pub templates: Templates,
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
}

impl RouteSet {
    /// Loads `templates_dir` then every `*.toml` in `routes_dir`; returns every problem found.
    pub fn load(
        routes_dir: &Path,
        templates_dir: &Path,
        options: RenderOptions,
    ) -> Result<RouteSet, Vec<LoadError>> {
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
        match Self::from_routes(&sources, templates) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// Builds a set from route sources (path, text) and loaded templates.
    pub fn from_routes(
        sources: &[(&Path, &str)],
        templates: Templates,
    ) -> Result<RouteSet, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut routes: Vec<Route> = Vec::new();
        for (path, text) in sources {
            match Route::parse(path, text, &templates) {
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
            Ok(RouteSet { routes, templates })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The routes this event fires: object, change type, org filter and condition all match.
    /// A condition that fails to evaluate does not fire (and is logged).
    pub fn fired<'a>(&'a self, event: &Event, ctx: &RenderContext<'_>) -> Vec<&'a Route> {
        self.routes
            .iter()
            .filter(|route| {
                route.object == event.object
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

/// An action's `email`: a literal address, or a path into the event (`record.Owner.Email`).
fn email_from(spec: &str, ctx: &RenderContext<'_>) -> Option<String> {
    let spec = spec.trim();
    if spec.contains('@') {
        return Some(spec.to_string());
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
        .filter(|s| s.contains('@'))
        .map(str::to_string)
}
