//! Route files: one TOML file per route in `routes/`, written by an admin. Loading checks every
//! part (object, condition, templates, channels) and reports each problem as `file:line: …`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::config::is_channel_id;
use crate::event::{ChangeType, SalesforceId};
use crate::render::template::{Condition, Expression, Templates};

/// A problem in a route or template file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {message}", file.display(), line)]
pub struct LoadError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// How urgent a route's deliveries are; the queue serves high before normal before low.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

/// When a route may fire again for the same record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dedupe {
    /// Once for each event (repeats of the same event are already dropped at ingest).
    #[default]
    PerEvent,
    /// Never twice for the same record (a deal closes once).
    OncePerRecord,
}

/// A channel as written in a route: an Id is used as is, a `#name` is resolved to its Id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ChannelRef {
    Id(String),
    Name(String),
}

impl ChannelRef {
    /// Parses `C0123…`/`G0123…` or `#name`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(name) = s.strip_prefix('#') {
            if name.is_empty()
                || name.len() > 80
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{s:?} is not a channel name (lowercase letters, digits, - and _)"
                ));
            }
            Ok(ChannelRef::Name(name.to_string()))
        } else if is_channel_id(s) {
            Ok(ChannelRef::Id(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is neither a channel Id (C…, G…) nor a #channel-name"
            ))
        }
    }
}

impl std::fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelRef::Id(id) => f.write_str(id),
            ChannelRef::Name(name) => write!(f, "#{name}"),
        }
    }
}

/// Where an action's message goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// A new message in a channel.
    Post { channel: ChannelRef },
    /// A direct message to the person with this email (a template over the event).
    Dm { email: String },
    /// A reply in the thread of the message route `on` posted for this record; a new message
    /// in `channel` when there is none (skipped when no channel is given).
    Thread {
        on: String,
        channel: Option<ChannelRef>,
    },
    /// An in-place update of the message route `on` posted for this record; a new message in
    /// `channel` when there is none (skipped when no channel is given).
    Update {
        on: String,
        channel: Option<ChannelRef>,
    },
    /// A private channel for the record (its name from the `name` expression, slugged), the
    /// people at `invite` (paths to emails, or addresses) invited, and the message posted in it.
    Room { name: String, invite: Vec<String> },
    /// A direct message to each person following the record (`/sf follow`); nobody when no
    /// one follows it.
    Followers,
}

/// One action of a route.
#[derive(Debug)]
pub struct ActionSpec {
    pub target: Target,
    pub template: String,
    pub when: Option<Condition>,
    /// A room's name, compiled (only for `room` actions).
    pub name: Option<Expression>,
    /// Held by the route's approval gate until someone approves.
    pub gated: bool,
    pub line: usize,
}

/// A loaded, checked route.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub object: String,
    pub change_types: BTreeSet<ChangeType>,
    pub when: Option<Condition>,
    pub orgs: Vec<SalesforceId>,
    pub dedupe: Dedupe,
    pub priority: Priority,
    /// Where a DM goes when the person's email is unknown to Slack.
    pub fallback_channel: Option<ChannelRef>,
    /// A Salesforce query whose result the templates see, run before the actions.
    pub enrich: Option<Enrich>,
    /// For a scheduled route: when it runs and what it queries. Such a route does not react
    /// to events.
    pub schedule: Option<Schedule>,
    /// How long `once_per_record` holds (default: as long as sfrelay remembers anything).
    pub dedupe_days: Option<u64>,
    /// What a CDC gap event (no field values) means for this route.
    pub on_gap: OnGap,
    pub actions: Vec<ActionSpec>,
    /// The buttons this file declares (cards of any route may carry them).
    pub buttons: Vec<super::buttons::Button>,
    /// The approval gate holding this route's actions, if any.
    pub gate: Option<super::gate::Gate>,
}

/// A CDC gap event carries no field values: ignore it, or fetch the record and route that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnGap {
    #[default]
    Ignore,
    Fetch,
}

/// When a scheduled route fires and what it asks Salesforce.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The cron expression as written (minute hour day-of-month month day-of-week).
    pub cron_text: String,
    pub cron: croner::Cron,
    pub time_zone: chrono_tz::Tz,
    /// SOQL with bound parameters (`:stages`) from `params`.
    pub query: String,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// One delivery per record (each record is the event), or one message for all (digest).
    pub each: bool,
}

impl Schedule {
    /// The first tick strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let local = after.with_timezone(&self.time_zone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

/// Route enrichment: SOQL with bound parameters (`:record.Id`), its first record exposed to
/// templates as `name` (and all records as `<name>_records`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrich {
    pub query: String,
    #[serde(default = "default_enrich_name")]
    pub name: String,
    /// The query before `WHERE` when it reads one row by the record's own Id, so the reads of
    /// many events can be combined; worked out once, when the route is loaded.
    #[serde(skip)]
    pub select_by_id: Option<String>,
}

fn default_enrich_name() -> String {
    "enrichment".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    object: Spanned<String>,
    change_types: Option<Spanned<Vec<String>>>,
    when: Option<Spanned<String>>,
    #[serde(default)]
    orgs: Vec<Spanned<String>>,
    #[serde(default)]
    dedupe: Dedupe,
    #[serde(default)]
    priority: Priority,
    fallback_channel: Option<Spanned<String>>,
    enrich: Option<Spanned<Enrich>>,
    schedule: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    #[serde(default)]
    params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    each: bool,
    dedupe_days: Option<u64>,
    #[serde(default)]
    on_gap: OnGap,
    actions: Vec<Spanned<ActionFile>>,
    #[serde(default)]
    buttons: std::collections::BTreeMap<String, Spanned<super::buttons::ButtonFile>>,
    gate: Option<Spanned<super::gate::GateFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFile {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    channel: Option<Spanned<String>>,
    email: Option<Spanned<String>>,
    on: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    #[serde(default)]
    invite: Vec<String>,
    template: Spanned<String>,
    when: Option<Spanned<String>>,
    /// With a `[gate]`: whether this action waits for the decision (default: it does).
    gated: Option<Spanned<bool>>,
}

/// Turns a byte offset into a 1-based line number.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

impl Route {
    /// Parses and checks one route file against the loaded templates.
    pub fn parse(file: &Path, text: &str, templates: &Templates) -> Result<Route, Vec<LoadError>> {
        Self::parse_in(file, text, templates, chrono_tz::UTC)
    }

    /// Parses a route; `default_zone` is the zone schedules use unless they name one.
    pub fn parse_in(
        file: &Path,
        text: &str,
        templates: &Templates,
        default_zone: chrono_tz::Tz,
    ) -> Result<Route, Vec<LoadError>> {
        let mut errors = Vec::new();
        let err = |errors: &mut Vec<LoadError>, offset: usize, message: String| {
            errors.push(LoadError {
                file: file.to_path_buf(),
                line: line_of(text, offset),
                message,
            });
        };
        let parsed: RouteFile = match toml::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                err(&mut errors, offset, e.message().to_string());
                return Err(errors);
            }
        };
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("route")
            .to_string();
        let name = parsed.name.as_ref().map_or(stem, |n| n.get_ref().clone());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            let offset = parsed.name.as_ref().map_or(0, |n| n.span().start);
            err(
                &mut errors,
                offset,
                format!("route name {name:?} must be letters, digits, - or _"),
            );
        }

        let object = parsed.object.get_ref().clone();
        if object.is_empty()
            || !object.starts_with(|c: char| c.is_ascii_alphabetic())
            || !object
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            err(
                &mut errors,
                parsed.object.span().start,
                format!("object {object:?} is not an sObject API name"),
            );
        }

        let mut change_types = BTreeSet::new();
        match &parsed.change_types {
            None => {
                change_types.extend([ChangeType::Create, ChangeType::Update, ChangeType::Undelete]);
            }
            Some(list) => {
                for value in list.get_ref() {
                    match serde_json::from_value::<ChangeType>(serde_json::Value::String(
                        value.clone(),
                    )) {
                        Ok(ct) => {
                            change_types.insert(ct);
                        }
                        Err(_) => err(
                            &mut errors,
                            list.span().start,
                            format!(
                                "change type {value:?} is not one of CREATE, UPDATE, DELETE, UNDELETE"
                            ),
                        ),
                    }
                }
            }
        }

        let compile = |errors: &mut Vec<LoadError>, expr: &Spanned<String>| -> Option<Condition> {
            match templates.compile_condition(expr.get_ref()) {
                Ok(c) => Some(c),
                Err(message) => {
                    errors.push(LoadError {
                        file: file.to_path_buf(),
                        line: line_of(text, expr.span().start),
                        message: format!("condition {:?}: {message}", expr.get_ref()),
                    });
                    None
                }
            }
        };
        let when = parsed.when.as_ref().and_then(|w| compile(&mut errors, w));

        let mut orgs = Vec::new();
        for org in &parsed.orgs {
            match SalesforceId::parse(org.get_ref()) {
                Ok(id) if id.key_prefix() == "00D" => orgs.push(id),
                Ok(_) => err(&mut errors, org.span().start, "not an org Id (00D…)".into()),
                Err(e) => err(&mut errors, org.span().start, format!("org Id: {e}")),
            }
        }

        let channel = |errors: &mut Vec<LoadError>, value: &Spanned<String>| match ChannelRef::parse(
            value.get_ref(),
        ) {
            Ok(c) => Some(c),
            Err(message) => {
                errors.push(LoadError {
                    file: file.to_path_buf(),
                    line: line_of(text, value.span().start),
                    message,
                });
                None
            }
        };
        let fallback_channel = parsed
            .fallback_channel
            .as_ref()
            .and_then(|c| channel(&mut errors, c));

        if let Some(enrich) = &parsed.enrich {
            let e = enrich.get_ref();
            if let Err(problem) =
                crate::salesforce::Soql::bind_with(&e.query, |_| Some(serde_json::Value::Null))
            {
                err(
                    &mut errors,
                    enrich.span().start,
                    format!("enrich.query: {problem}"),
                );
            }
            if e.name.is_empty()
                || !e
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                err(
                    &mut errors,
                    enrich.span().start,
                    format!("enrich.name {:?} must be letters, digits or _", e.name),
                );
            }
        }

        let schedule = match (&parsed.schedule, &parsed.query) {
            (Some(cron_text), Some(query)) => {
                // Five fields (minute hour day month weekday), or six with seconds first.
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(cron_text.get_ref());
                let zone = match &parsed.time_zone {
                    Some(z) => z.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                        (
                            z.span().start,
                            format!("time_zone {:?} is not an IANA zone", z.get_ref()),
                        )
                    }),
                    None => Ok(default_zone),
                };
                if let Err(problem) = crate::salesforce::Soql::bind_with(query.get_ref(), |name| {
                    parsed
                        .params
                        .get(name)
                        .cloned()
                        .or(Some(serde_json::Value::Null))
                }) {
                    err(&mut errors, query.span().start, format!("query: {problem}"));
                }
                match (cron, zone) {
                    (Ok(cron), Ok(time_zone)) => Some(Schedule {
                        cron_text: cron_text.get_ref().clone(),
                        cron,
                        time_zone,
                        query: query.get_ref().clone(),
                        params: parsed.params.clone(),
                        each: parsed.each,
                    }),
                    (Err(e), _) => {
                        err(
                            &mut errors,
                            cron_text.span().start,
                            format!("schedule: {e}"),
                        );
                        None
                    }
                    (_, Err((offset, message))) => {
                        err(&mut errors, offset, message);
                        None
                    }
                }
            }
            (Some(cron_text), None) => {
                err(
                    &mut errors,
                    cron_text.span().start,
                    "a scheduled route needs a `query`".into(),
                );
                None
            }
            (None, Some(query)) => {
                err(
                    &mut errors,
                    query.span().start,
                    "`query` belongs to a scheduled route: add `schedule`".into(),
                );
                None
            }
            (None, None) => None,
        };

        if parsed.actions.is_empty() {
            err(
                &mut errors,
                0,
                "a route needs at least one [[actions]]".into(),
            );
        }
        let mut actions = Vec::new();
        for action in &parsed.actions {
            let line = line_of(text, action.span().start);
            let a = action.get_ref();
            let template = a.template.get_ref().clone();
            if !templates.contains(&template) {
                err(
                    &mut errors,
                    a.template.span().start,
                    format!(
                        "unknown template {template:?} (templates: {})",
                        templates.names().join(", ")
                    ),
                );
            }
            let when = a.when.as_ref().and_then(|w| compile(&mut errors, w));
            let kind = a.kind.get_ref().as_str();
            let mut require = |field: &Option<Spanned<String>>, what: &str| {
                if field.is_none() {
                    err(
                        &mut errors,
                        a.kind.span().start,
                        format!("a {kind:?} action needs `{what}`"),
                    );
                }
            };
            match kind {
                "post" => require(&a.channel, "channel"),
                "dm" => require(&a.email, "email"),
                "thread" | "update" => require(&a.on, "on"),
                "room" => require(&a.name, "name"),
                _ => {}
            }
            let mut name = None;
            let target = match kind {
                "post" => a
                    .channel
                    .as_ref()
                    .and_then(|c| channel(&mut errors, c))
                    .map(|channel| Target::Post { channel }),
                "dm" => {
                    if fallback_channel.is_none() {
                        err(
                            &mut errors,
                            a.kind.span().start,
                            "a \"dm\" action needs the route's `fallback_channel` for people Slack does not know".into(),
                        );
                    }
                    a.email.as_ref().map(|e| Target::Dm {
                        email: e.get_ref().clone(),
                    })
                }
                "thread" | "update" => {
                    let channel = a.channel.as_ref().and_then(|c| channel(&mut errors, c));
                    a.on.as_ref().map(|on| {
                        let on = on.get_ref().clone();
                        if kind == "thread" {
                            Target::Thread { on, channel }
                        } else {
                            Target::Update { on, channel }
                        }
                    })
                }
                "followers" => Some(Target::Followers),
                "room" => a.name.as_ref().map(|n| {
                    match templates.compile_expression(n.get_ref()) {
                        Ok(compiled) => name = Some(compiled),
                        Err(message) => err(
                            &mut errors,
                            n.span().start,
                            format!("room name {:?}: {message}", n.get_ref()),
                        ),
                    }
                    Target::Room {
                        name: n.get_ref().clone(),
                        invite: a.invite.clone(),
                    }
                }),
                other => {
                    err(
                        &mut errors,
                        a.kind.span().start,
                        format!(
                            "unknown action type {other:?} (post, dm, thread, update, room, followers)"
                        ),
                    );
                    None
                }
            };
            if let (Some(gated), None) = (&a.gated, &parsed.gate) {
                err(
                    &mut errors,
                    gated.span().start,
                    "`gated` needs the route's [gate]".into(),
                );
            }
            let gated = parsed.gate.is_some() && a.gated.as_ref().is_none_or(|g| *g.get_ref());
            if let Some(target) = target {
                actions.push(ActionSpec {
                    target,
                    template,
                    when,
                    name,
                    gated,
                    line,
                });
            }
        }

        let buttons = super::buttons::parse(file, text, &parsed.buttons, &mut errors);
        let gate = parsed
            .gate
            .as_ref()
            .and_then(|g| super::gate::parse(file, text, g, templates, &mut errors));
        if gate.is_some() && schedule.is_some() {
            err(
                &mut errors,
                0,
                "a scheduled route cannot have a [gate] (nobody's record to decide on)".into(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Route {
            buttons,
            gate,
            name,
            file: file.to_path_buf(),
            description: parsed.description,
            object,
            change_types,
            when,
            orgs,
            dedupe: parsed.dedupe,
            priority: parsed.priority,
            fallback_channel,
            enrich: parsed.enrich.map(|e| {
                let mut enrich = e.into_inner();
                enrich.select_by_id = crate::salesforce::soql::select_by_record_id(&enrich.query);
                enrich
            }),
            schedule,
            dedupe_days: parsed.dedupe_days,
            on_gap: parsed.on_gap,
            actions,
        })
    }
}
