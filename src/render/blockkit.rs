//! Block Kit templates that Salesforce admins edit without touching Rust.
//!
//! A template is a JSON (`.json`) or YAML (`.yaml`/`.yml`) file shaped like a Slack message,
//! `{"text": "...", "blocks": [...]}`, whose every string may hold minijinja expressions. Files
//! are parsed, checked against Block Kit and compiled once at load time, so a typo is reported as
//! `file:line: message` when sfrelay starts (or `sfrelay check` runs) rather than as a lost
//! alert at 3 a.m.
//!
//! Record data is never trusted: every interpolated value is escaped for Slack mrkdwn by a custom
//! auto-escape mode, so a record named `<!channel>` cannot ping anyone. Only literal template
//! text (which the admin wrote on purpose), values marked `| safe` and mentions made by
//! `slack_user()` reach Slack as written.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Object, ObjectRepr, ValueKind};
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::limits::{self, max};
use super::mrkdwn::escape;
use crate::event::{ChangeType, Event};

/// Name of the auto-escape mode every template renders in.
const MRKDWN: &str = "mrkdwn";

/// Context key of the per-render [`Scope`] the helpers read; not meant for template authors.
const SCOPE_KEY: &str = "__sfrelay__";

/// Block types a template may use.
const BLOCK_TYPES: [&str; 8] = [
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "input",
];

/// Rendering options fixed at load time.
///
/// They are baked into the filters when the templates are compiled, so one process renders
/// every message the same way and a render call cannot forget them.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Zone the `date` and `datetime` filters show times in (Salesforce sends UTC).
    pub time_zone: Tz,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { time_zone: Tz::UTC }
    }
}

/// Everything a template can see.
///
/// Borrowed, so a render costs no copy of the event; the caller keeps ownership and can render
/// again after resolving `wanted_emails`.
pub struct RenderContext<'a> {
    /// The change being announced.
    pub event: &'a Event,
    /// The org's instance URL (`https://acme.my.salesforce.com`) for record links; None when not configured.
    pub instance_url: Option<&'a str>,
    /// Emails already resolved to Slack user ids (keys lowercase).
    pub users: &'a HashMap<String, String>,
    /// Extra top-level variables (enrichment results, digest rows…); a JSON object or Null.
    pub extra: &'a serde_json::Value,
}

/// A rendered message, within Slack's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Top-level `text`: the notification and screen-reader text.
    pub text: String,
    /// Block Kit blocks, ready for `chat.postMessage`.
    pub blocks: Vec<serde_json::Value>,
    /// Emails passed to slack_user() that were not in `users` (the caller resolves them and renders again).
    pub wanted_emails: BTreeSet<String>,
    /// What limits::fit had to cut.
    pub cuts: Vec<String>,
}

/// A problem in a template file, reported as `file:line: message`.
///
/// Shaped like a compiler diagnostic so editors and CI logs link straight to the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {message}", file.display(), line)]
pub struct TemplateError {
    /// The template file (as given to `load_dir`, or the file name given to `from_sources`).
    pub file: PathBuf,
    /// 1-based line the problem is on (1 when it is not about one line, e.g. an unreadable file).
    pub line: usize,
    /// What is wrong, starting with where in the message it is (`blocks[2].text: ...`).
    pub message: String,
}

/// Why a template could not be rendered for one event.
///
/// Load-time checks catch structure and syntax; what is left are problems that depend on the
/// data (a loop over something that is not a list, a filter given the wrong argument).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No template of that name was loaded (a route names a file that does not exist).
    #[error("unknown template {0:?}")]
    Unknown(String),
    /// The template failed on this event's data.
    #[error("template {template}: {message}")]
    Failed {
        /// Template name.
        template: String,
        /// Where in the message and what went wrong.
        message: String,
    },
}

/// All templates of a directory, compiled once.
///
/// Shared by every worker through an `Arc`; rendering takes `&self` and needs no lock.
#[derive(Debug)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    trees: BTreeMap<String, Part>,
}

/// A compiled boolean expression over an event (route conditions, `when` on actions).
///
/// Compiled in the templates' environment so routes and templates share helpers
/// (`became`, `changed`, …) and behave identically.
#[derive(Debug)]
pub struct Condition {
    env: Arc<Environment<'static>>,
    source: String,
}

impl Condition {
    /// True when the expression holds for this event; an error when it cannot be evaluated
    /// (the caller decides whether that skips the route).
    pub fn eval(&self, ctx: &RenderContext<'_>) -> Result<bool, String> {
        let vars = Vars::new(ctx);
        eval_expression(&self.env, &self.source, &vars.value)
            .map(|v| v.is_true())
            .map_err(|e| describe(&e))
    }
}

/// A compiled expression giving text (a deal room's name), evaluated like a condition.
#[derive(Debug)]
pub struct Expression {
    env: Arc<Environment<'static>>,
    source: String,
}

impl Expression {
    /// The expression's value as plain text (not escaped: the caller decides what it becomes);
    /// none or undefined give an empty string.
    pub fn eval_text(&self, ctx: &RenderContext<'_>) -> Result<String, String> {
        let vars = Vars::new(ctx);
        let value =
            eval_expression(&self.env, &self.source, &vars.value).map_err(|e| describe(&e))?;
        Ok(if value.is_none() || value.is_undefined() {
            String::new()
        } else {
            value.to_string()
        })
    }
}

impl Templates {
    /// Compiles an expression that gives text (`name = '"deal-" ~ record.Name'`).
    pub fn compile_expression(&self, expr: &str) -> Result<Expression, String> {
        if expr.trim().is_empty() {
            return Err("empty expression".into());
        }
        self.env
            .compile_expression_owned(expr.to_owned())
            .map_err(|e| describe(&e))?;
        Ok(Expression {
            env: Arc::clone(&self.env),
            source: expr.to_owned(),
        })
    }

    /// Loads every .json/.yaml/.yml in `dir`; returns every problem found in every file (not just the first).
    ///
    /// Other files (a README next to the templates) are ignored.
    pub fn load_dir(dir: &Path, options: RenderOptions) -> Result<Self, Vec<TemplateError>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            vec![TemplateError {
                file: dir.to_path_buf(),
                line: 1,
                message: format!("cannot read the template directory: {e}"),
            }]
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| format_of(path).is_some() && path.is_file())
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        let mut files = Vec::new();
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((path, text)),
                Err(e) => errors.push(TemplateError {
                    file: path,
                    line: 1,
                    message: format!("cannot read the file: {e}"),
                }),
            }
        }
        Self::build(files, options, errors)
    }

    /// Same from in-memory sources (file name like "closed-won.json", text) — used by tests.
    pub fn from_sources(
        sources: &[(&str, &str)],
        options: RenderOptions,
    ) -> Result<Self, Vec<TemplateError>> {
        let files = sources
            .iter()
            .map(|(file, text)| (PathBuf::from(file), (*text).to_owned()))
            .collect();
        Self::build(files, options, Vec::new())
    }

    /// Compiles every file; `errors` holds problems found while reading them.
    fn build(
        files: Vec<(PathBuf, String)>,
        options: RenderOptions,
        mut errors: Vec<TemplateError>,
    ) -> Result<Self, Vec<TemplateError>> {
        let mut env = environment(&options);
        let mut trees = BTreeMap::new();
        let mut defined_in: HashMap<String, PathBuf> = HashMap::new();
        for (file, text) in files {
            let error = |message: String| TemplateError {
                file: file.clone(),
                line: 1,
                message,
            };
            let Some(format) = format_of(&file) else {
                errors.push(error("expected a .json, .yaml or .yml file".into()));
                continue;
            };
            let name = match file.file_stem().and_then(|s| s.to_str()) {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ => {
                    errors.push(error("the file name is not a usable template name".into()));
                    continue;
                }
            };
            if let Some(other) = defined_in.get(&name) {
                errors.push(error(format!(
                    "template {name:?} is also defined in {}",
                    other.display()
                )));
                continue;
            }
            defined_in.insert(name.clone(), file.clone());
            let mut compiler = Compiler {
                env: &mut env,
                name: &name,
                file: &file,
                format,
                errors: &mut errors,
                count: 0,
            };
            if let Some(tree) = compiler.file(&text) {
                trees.insert(name, tree);
            }
        }
        if errors.is_empty() {
            Ok(Self {
                env: Arc::new(env),
                trees,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether a template of that name was loaded, so config checks can flag a route that names
    /// a missing template at startup.
    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Names of all loaded templates, sorted, for `sfrelay check` and error messages.
    pub fn names(&self) -> Vec<String> {
        self.trees.keys().cloned().collect()
    }

    /// Renders template `name` for one event and fits the result within Slack's limits.
    pub fn render(&self, name: &str, ctx: &RenderContext<'_>) -> Result<Rendered, RenderError> {
        let tree = self
            .trees
            .get(name)
            .ok_or_else(|| RenderError::Unknown(name.to_owned()))?;
        let vars = Vars::new(ctx);
        let mut message = self
            .render_part(tree, &vars)
            .map_err(|fail| RenderError::Failed {
                template: name.to_owned(),
                message: fail.to_string(),
            })?;
        let has_text = message
            .get("text")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let cuts = limits::fit(&mut message);
        let serde_json::Value::Object(mut message) = message else {
            return Err(RenderError::Failed {
                template: name.to_owned(),
                message: "did not render to an object".into(),
            });
        };
        let blocks = match message.remove("blocks") {
            Some(serde_json::Value::Array(blocks)) => blocks,
            _ => Vec::new(),
        };
        let text = if has_text {
            match message.remove("text") {
                Some(serde_json::Value::String(text)) => text,
                _ => fallback_text(&blocks),
            }
        } else {
            fallback_text(&blocks)
        };
        Ok(Rendered {
            text,
            blocks,
            wanted_emails: vars.scope.wanted(),
            cuts,
        })
    }

    /// Compiles a route condition (`when = ...`) in the same environment, so routes and templates share helpers.
    pub fn compile_condition(&self, expr: &str) -> Result<Condition, String> {
        if expr.trim().is_empty() {
            return Err("empty condition".into());
        }
        self.env
            .compile_expression_owned(expr.to_owned())
            .map_err(|e| describe(&e))?;
        Ok(Condition {
            env: Arc::clone(&self.env),
            source: expr.to_owned(),
        })
    }

    fn render_part(&self, part: &Part, vars: &Vars) -> Result<serde_json::Value, Fail> {
        Ok(match part {
            Part::Const(value) => value.clone(),
            Part::Template(name) => {
                let template = self.env.get_template(name).map_err(Fail::from)?;
                serde_json::Value::String(template.render(&vars.value).map_err(Fail::from)?)
            }
            Part::Array(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (i, entry) in entries.iter().enumerate() {
                    self.render_entry(entry, vars, &mut out)
                        .map_err(|f| f.at(format!("[{i}]")))?;
                }
                serde_json::Value::Array(out)
            }
            Part::Object(members) => {
                let mut out = serde_json::Map::with_capacity(members.len());
                for (key, part) in members {
                    let value = self
                        .render_part(part, vars)
                        .map_err(|f| f.at(format!(".{key}")))?;
                    // Slack rejects these when empty; an empty one means "not this time".
                    let empty = value.as_str().is_some_and(str::is_empty);
                    if !(empty && DROP_WHEN_EMPTY.contains(&key.as_str())) {
                        out.insert(key.clone(), value);
                    }
                }
                serde_json::Value::Object(out)
            }
        })
    }

    /// Renders one array entry into `out`: nothing when its `when` is false, one element per
    /// list item for a loop.
    fn render_entry(
        &self,
        entry: &Entry,
        vars: &Vars,
        out: &mut Vec<serde_json::Value>,
    ) -> Result<(), Fail> {
        if let Some(when) = &entry.when {
            let value = eval_expression(&self.env, when, &vars.value)
                .map_err(|e| Fail::from(e).at(".when".into()))?;
            if !value.is_true() {
                return Ok(());
            }
        }
        match &entry.kind {
            EntryKind::Plain(part) => out.push(self.render_part(part, vars)?),
            EntryKind::Each { each, name, item } => {
                let list = eval_expression(&self.env, each, &vars.value)
                    .map_err(|e| Fail::from(e).at(".each".into()))?;
                if list.is_undefined() || list.is_none() {
                    return Ok(());
                }
                let items: Vec<Value> = list
                    .try_iter()
                    .map_err(|e| Fail::from(e).at(".each".into()))?
                    .collect();
                let length = items.len();
                for (i, value) in items.into_iter().enumerate() {
                    let looped: BTreeMap<String, Value> = [
                        ("index", Value::from(i + 1)),
                        ("index0", Value::from(i)),
                        ("first", Value::from(i == 0)),
                        ("last", Value::from(i + 1 == length)),
                        ("length", Value::from(length)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                    let inner = vars.with(&[(name.as_str(), value), ("loop", Value::from(looped))]);
                    self.render_entry(item, &inner, out)
                        .map_err(|f| f.at(format!(".item[{i}]")))?;
                }
            }
        }
        Ok(())
    }
}

/// Optional string keys Slack rejects when empty; dropped from the output instead.
const DROP_WHEN_EMPTY: [&str; 6] = [
    "url",
    "value",
    "style",
    "block_id",
    "action_id",
    "accessibility_label",
];

/// A render failure and where in the message it happened.
#[derive(Debug)]
struct Fail {
    path: String,
    message: String,
}

impl Fail {
    fn at(mut self, segment: String) -> Self {
        self.path.insert_str(0, &segment);
        self
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Self {
            path: String::new(),
            message: describe(&e),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.trim_start_matches('.');
        if path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{path}: {}", self.message)
        }
    }
}

/// A minijinja error in words, without the internal template name it carries.
fn describe(e: &Error) -> String {
    let mut message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(&format!(" ({inner})"));
        source = inner.source();
    }
    message
}

fn eval_expression(env: &Environment<'static>, source: &str, ctx: &Value) -> Result<Value, Error> {
    env.compile_expression_owned(source.to_owned())?.eval(ctx)
}

/// The top-level `text` when the template has none: header and section texts, which are
/// already escaped (interpolations) or written on purpose (literal text), so unlike
/// `limits::fit`'s fallback they are not escaped again (no `&amp;lt;` in notifications).
fn fallback_text(blocks: &[serde_json::Value]) -> String {
    let parts: Vec<&str> = blocks
        .iter()
        .filter(|b| {
            matches!(
                b.get("type").and_then(serde_json::Value::as_str),
                Some("header" | "section")
            )
        })
        .filter_map(|b| b.get("text")?.get("text")?.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let joined = parts.join("\n");
    match limits::truncate(&joined, max::SECTION_TEXT) {
        t if t.is_empty() => "…".into(),
        t => t.into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Render-time variables and helpers
// ---------------------------------------------------------------------------------------------

/// The variables of one render (or one loop iteration), as a map and as the minijinja value
/// built from it.
struct Vars {
    map: BTreeMap<String, Value>,
    value: Value,
    scope: Arc<Scope>,
}

impl Vars {
    fn new(ctx: &RenderContext<'_>) -> Self {
        let event = ctx.event;
        let record = Value::from(
            event
                .record
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        );
        let prior = event.prior.as_ref().map(|prior| {
            Value::from(
                prior
                    .iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect::<BTreeMap<String, Value>>(),
            )
        });
        let scope = Arc::new(Scope {
            record: record.clone(),
            prior: prior.clone(),
            changed_fields: event.changed_fields.clone(),
            change_type: event.change_type,
            object: event.object.clone(),
            instance_url: ctx.instance_url.map(str::to_owned),
            users: ctx.users.clone(),
            wanted: Mutex::new(BTreeSet::new()),
        });
        let mut map = BTreeMap::new();
        // Extra first, so it cannot shadow the event's own variables.
        if let serde_json::Value::Object(extra) = ctx.extra {
            for (k, v) in extra {
                map.insert(k.clone(), to_value(v));
            }
        }
        let time = |t: &chrono::DateTime<chrono::Utc>| {
            Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        };
        map.insert("record".into(), record);
        if let Some(prior) = prior {
            map.insert("prior".into(), prior);
        } else {
            map.remove("prior");
        }
        match &event.changed_fields {
            Some(fields) => {
                map.insert(
                    "changed_fields".into(),
                    fields.iter().map(Value::from).collect(),
                );
            }
            None => {
                map.remove("changed_fields");
            }
        }
        map.insert("org_id".into(), Value::from(event.org_id.as_str()));
        map.insert("object".into(), Value::from(event.object.as_str()));
        map.insert(
            "change_type".into(),
            Value::from(event.change_type.as_str()),
        );
        match &event.event_id {
            Some(id) => map.insert("event_id".into(), Value::from(id.as_str())),
            None => map.remove("event_id"),
        };
        map.insert("id".into(), Value::from(event.id.as_str()));
        match &event.occurred_at {
            Some(t) => map.insert("occurred_at".into(), time(t)),
            None => map.remove("occurred_at"),
        };
        map.insert("received_at".into(), time(&event.received_at));
        map.insert(SCOPE_KEY.into(), Value::from_dyn_object(Arc::clone(&scope)));
        let value = Value::from(map.clone());
        Self { map, value, scope }
    }

    /// These variables plus `bindings` (a loop's item and `loop`).
    fn with(&self, bindings: &[(&str, Value)]) -> Self {
        let mut map = self.map.clone();
        for (k, v) in bindings {
            map.insert((*k).to_owned(), v.clone());
        }
        let value = Value::from(map.clone());
        Self {
            map,
            value,
            scope: Arc::clone(&self.scope),
        }
    }
}

/// What the helpers need from the event, plus the emails `slack_user()` could not resolve.
///
/// Reached through a context variable rather than the `record`/`prior` variables so a loop
/// binding `as: record` cannot change what `changed()` sees.
#[derive(Debug)]
struct Scope {
    record: Value,
    prior: Option<Value>,
    changed_fields: Option<Vec<String>>,
    change_type: ChangeType,
    object: String,
    instance_url: Option<String>,
    users: HashMap<String, String>,
    wanted: Mutex<BTreeSet<String>>,
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl Scope {
    fn wanted(&self) -> BTreeSet<String> {
        self.wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Value of `field` in `map`; None when the map lacks it.
    fn field(map: &Value, field: &str) -> Option<Value> {
        map.get_attr(field).ok().filter(|v| !v.is_undefined())
    }

    fn changed(&self, field: &str) -> bool {
        if let Some(fields) = &self.changed_fields {
            return fields.iter().any(|f| f == field);
        }
        if let Some(before) = self.prior.as_ref().and_then(|p| Self::field(p, field)) {
            let now = Self::field(&self.record, field).unwrap_or_else(|| Value::from(()));
            return before != now;
        }
        // Neither list nor prior value: we cannot tell, and a missed alert is worse than an
        // extra one.
        !matches!(self.change_type, ChangeType::Delete)
    }

    fn became(&self, field: &str, value: &Value) -> bool {
        let now_equal = Self::field(&self.record, field).is_some_and(|v| &v == value);
        let was_equal = self
            .prior
            .as_ref()
            .and_then(|p| Self::field(p, field))
            .is_some_and(|v| &v == value);
        now_equal && !was_equal && self.changed(field)
    }
}

fn scope(state: &State) -> Result<Arc<Scope>, Error> {
    state
        .lookup(SCOPE_KEY)
        .and_then(|v| v.downcast_object::<Scope>())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "this helper needs an event to look at",
            )
        })
}

/// JSON data as a template value (numbers keep their integer/float kind).
fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => items.iter().map(to_value).collect(),
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// The environment every template and condition is compiled in.
fn environment(options: &RenderOptions) -> Environment<'static> {
    let mut env = Environment::new();
    // `record.Account.Name` on a record without an Account renders empty instead of failing.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|_| AutoEscape::Custom(Cow::Borrowed(MRKDWN)));
    env.set_formatter(mrkdwn_formatter);
    // Statements on their own lines in multi-line YAML strings leave no blank lines; a
    // trailing newline is kept so templated and literal strings come out the same.
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build();
    if let Ok(syntax) = syntax {
        env.set_syntax(syntax);
    }
    let tz = options.time_zone;
    env.add_function("changed", changed);
    env.add_function("became", became);
    env.add_function("was", was);
    env.add_function("slack_user", slack_user);
    env.add_function("sf_url", sf_url);
    env.add_filter("sf_url", sf_url);
    env.add_filter("money", money);
    env.add_filter("date", move |value: Value| format_when(value, tz, false));
    env.add_filter("datetime", move |value: Value| format_when(value, tz, true));
    env
}

/// Escapes every printed value for mrkdwn unless it is a safe string; none prints as nothing.
fn mrkdwn_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    if value.is_safe() || !matches!(state.auto_escape(), AutoEscape::Custom(_)) {
        // Safe strings, or `{% autoescape false %}` written by the admin.
        return minijinja::escape_formatter(out, state, value);
    }
    let text = match value.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(value.to_string()),
    };
    out.write_str(&escape(&text)).map_err(Error::from)
}

/// `changed(field)`: whether the change touched `field` (see [`Scope::changed`]).
fn changed(state: &State, field: &str) -> Result<bool, Error> {
    Ok(scope(state)?.changed(field))
}

/// `became(field, value)`: whether `field` is `value` now and was not before.
fn became(state: &State, field: &str, value: Value) -> Result<bool, Error> {
    Ok(scope(state)?.became(field, &value))
}

/// `was(field)`: the value before the change, none when unknown.
fn was(state: &State, field: &str) -> Result<Value, Error> {
    let scope = scope(state)?;
    Ok(scope
        .prior
        .as_ref()
        .and_then(|p| Scope::field(p, field))
        .unwrap_or_else(|| Value::from(())))
}

/// `slack_user(email)`: a mention when the email is resolved, otherwise the email as text and
/// a note for the caller to resolve it.
fn slack_user(state: &State, email: Option<Value>) -> Result<Value, Error> {
    let scope = scope(state)?;
    let email = match &email {
        None => return Ok(Value::from("")),
        Some(v) if v.is_none() || v.is_undefined() => return Ok(Value::from("")),
        Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    };
    let email = email.trim();
    if email.is_empty() {
        return Ok(Value::from(""));
    }
    let key = email.to_lowercase();
    match scope.users.get(&key) {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(Value::from_safe_string(format!("<@{id}>")))
        }
        _ => {
            scope
                .wanted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key);
            Ok(Value::from(email))
        }
    }
}

/// `sf_url(id, object?)`: the Lightning URL of a record, or "" when it cannot be built safely.
fn sf_url(state: &State, id: Option<Value>, object: Option<Value>) -> Result<Value, Error> {
    let scope = scope(state)?;
    let empty = Ok(Value::from(""));
    let Some(base) = scope
        .instance_url
        .as_deref()
        .map(|u| u.trim_end_matches('/'))
    else {
        return empty;
    };
    let base_ok = (base.starts_with("https://") || base.starts_with("http://"))
        && base.len() > "https://".len()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:/_".contains(&b));
    let id = id.as_ref().and_then(Value::as_str).unwrap_or_default();
    let object = match object.as_ref() {
        Some(v) if !v.is_none() && !v.is_undefined() => v.as_str().unwrap_or_default(),
        _ => scope.object.as_str(),
    };
    let id_ok = (1..=18).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let object_ok = object.starts_with(|c: char| c.is_ascii_alphabetic())
        && object.len() <= 80
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !(base_ok && id_ok && object_ok) {
        return empty;
    }
    Ok(Value::from_safe_string(format!(
        "{base}/lightning/r/{object}/{id}/view"
    )))
}

/// `money` filter: thousands separators and two decimals when there are cents; an optional
/// currency code goes in front. Numeric strings (Outbound Messages send every value as text)
/// are formatted too; anything else passes through.
fn money(value: Value, currency: Option<Value>) -> Value {
    let amount = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => value
            .as_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite()),
        _ => None,
    };
    let Some(amount) = amount else {
        return value;
    };
    let number = format_money(amount);
    match currency {
        Some(code) if !code.is_none() && !code.is_undefined() => {
            let code = code.to_string();
            if code.trim().is_empty() {
                Value::from(number)
            } else {
                Value::from(format!("{} {number}", code.trim()))
            }
        }
        _ => Value::from(number),
    }
}

/// An amount with thousands separators, rounded to cents, decimals shown only when there are
/// cents (`75,000`, `1,234,567.50`); shared with the built-in messages.
pub fn format_money(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i64;
    let (whole, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if cents < 0 { "-" } else { "" };
    if frac == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac:02}")
    }
}

/// A date or date-time Salesforce sent, in one of the forms it uses.
enum When {
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
}

fn parse_when(s: &str) -> Option<When> {
    let s = s.trim();
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(When::Date(date));
    }
    DateTime::parse_from_rfc3339(s)
        // Salesforce's own form: 2025-09-30T16:00:00.000+0000
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(When::DateTime)
}

/// `date` / `datetime` filters: `30 Sep 2025`, `2 Oct 2025 15:12 CEST` in the configured zone;
/// text that is not a date passes through.
fn format_when(value: Value, tz: Tz, with_time: bool) -> Value {
    let Some(when) = value.as_str().and_then(parse_when) else {
        return value;
    };
    Value::from(match when {
        When::Date(date) => date.format("%-d %b %Y").to_string(),
        When::DateTime(t) => {
            let local = t.with_timezone(&tz);
            if with_time {
                local.format("%-d %b %Y %H:%M %Z").to_string()
            } else {
                local.format("%-d %b %Y").to_string()
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Parsing: JSON/YAML into an ordered tree that knows its source lines
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

/// A parsed template value with its source line; maps keep their order (serde_json's own Map
/// would sort them) so lines can be found by walking the source in step.
#[derive(Debug, Clone)]
struct Node {
    line: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Member>),
}

#[derive(Debug, Clone)]
struct Member {
    key: String,
    key_line: usize,
    value: Node,
}

impl Node {
    fn new(kind: Kind) -> Self {
        Self { line: 1, kind }
    }

    fn get(&self, key: &str) -> Option<&Member> {
        match &self.kind {
            Kind::Map(members) => members.iter().find(|m| m.key == key),
            _ => None,
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "an array",
            Kind::Map(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::new(Kind::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::new(Kind::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::new(Kind::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::new(
            serde_json::Number::from_f64(v).map_or(Kind::Null, Kind::Number),
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::new(Kind::Str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::new(Kind::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::new(Kind::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::new(Kind::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::new(Kind::Seq(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value()?;
            members.push(Member {
                key,
                key_line: 1,
                value,
            });
        }
        Ok(Node::new(Kind::Map(members)))
    }
}

/// Finds the source line of every key and string by searching the text forward in document
/// order; what cannot be found (unusual escapes) gets the line of the last thing found.
struct Locator<'s> {
    src: &'s str,
    newlines: Vec<usize>,
    pos: usize,
    format: Format,
}

impl<'s> Locator<'s> {
    fn new(src: &'s str, format: Format) -> Self {
        let newlines = src
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Self {
            src,
            newlines,
            pos: 0,
            format,
        }
    }

    fn line_at(&self, byte: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < byte) + 1
    }

    fn seek(&mut self, needle: &str) -> usize {
        if needle.is_empty() {
            return self.line_at(self.pos);
        }
        match self.src.get(self.pos..).and_then(|rest| rest.find(needle)) {
            Some(i) => {
                let at = self.pos + i;
                self.pos = at + needle.len();
                self.line_at(at)
            }
            None => self.line_at(self.pos),
        }
    }

    /// How a string appears in the source: JSON-encoded, or (YAML) its first line as is.
    fn needle(&self, s: &str) -> String {
        match self.format {
            Format::Json => serde_json::to_string(s).unwrap_or_default(),
            Format::Yaml => s.lines().next().unwrap_or_default().to_owned(),
        }
    }

    fn locate(&mut self, node: &mut Node) {
        match &mut node.kind {
            Kind::Str(s) => {
                let needle = self.needle(s);
                node.line = self.seek(&needle);
            }
            Kind::Seq(items) => {
                node.line = self.line_at(self.pos);
                for item in items {
                    self.locate(item);
                }
            }
            Kind::Map(members) => {
                node.line = self.line_at(self.pos);
                for (i, member) in members.iter_mut().enumerate() {
                    let needle = self.needle(&member.key);
                    member.key_line = self.seek(&needle);
                    if i == 0 {
                        node.line = member.key_line;
                    }
                    member.value.line = member.key_line;
                    self.locate(&mut member.value);
                }
            }
            Kind::Null | Kind::Bool(_) | Kind::Number(_) => {
                node.line = node.line.max(self.line_at(self.pos));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiling: checks against Block Kit and compiles every string
// ---------------------------------------------------------------------------------------------

/// A compiled template value.
#[derive(Debug)]
enum Part {
    /// Literal data (and strings without template syntax).
    Const(serde_json::Value),
    /// A string compiled into the environment under this name.
    Template(String),
    Array(Vec<Entry>),
    Object(Vec<(String, Part)>),
}

/// One array element, kept only when `when` holds.
#[derive(Debug)]
struct Entry {
    when: Option<String>,
    kind: EntryKind,
}

#[derive(Debug)]
enum EntryKind {
    Plain(Part),
    /// One element per item of the `each` list, with the item bound as `name`.
    Each {
        each: String,
        name: String,
        item: Box<Entry>,
    },
}

/// What a value must look like at its place in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Message,
    Block,
    /// A text object, `plain_text` or `mrkdwn`.
    Text,
    /// A text object that must be `plain_text` (header text, button labels).
    PlainText,
    /// An element of a context block: a text object or an image.
    ContextElement,
    /// An element of an actions block: a button.
    ActionElement,
    /// A section accessory: a button or an image.
    Accessory,
    Str,
    Bool,
    Style,
    /// Anything (rich_text, input internals, confirm dialogs): strings compiled, not checked.
    Any,
    /// An array of the given element shape.
    ArrayOf(&'static Shape),
}

const BLOCKS: Shape = Shape::ArrayOf(&Shape::Block);
const FIELDS: Shape = Shape::ArrayOf(&Shape::Text);
const CONTEXT_ELEMENTS: Shape = Shape::ArrayOf(&Shape::ContextElement);
const ACTION_ELEMENTS: Shape = Shape::ArrayOf(&Shape::ActionElement);

/// Keys each block type allows (besides `when`) and the ones it needs.
fn block_keys(ty: &str) -> (&'static [(&'static str, Shape)], &'static [&'static str]) {
    use Shape::*;
    match ty {
        "section" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("text", Text),
                ("fields", FIELDS),
                ("accessory", Accessory),
                ("expand", Bool),
            ],
            &[],
        ),
        "header" => (
            &[("type", Str), ("block_id", Str), ("text", PlainText)],
            &["text"],
        ),
        "context" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("elements", CONTEXT_ELEMENTS),
            ],
            &["elements"],
        ),
        "actions" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("elements", ACTION_ELEMENTS),
            ],
            &["elements"],
        ),
        "image" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("image_url", Str),
                ("alt_text", Str),
                ("title", PlainText),
                ("slack_file", Any),
            ],
            &["alt_text"],
        ),
        "rich_text" => (
            &[("type", Str), ("block_id", Str), ("elements", Any)],
            &["elements"],
        ),
        "input" => (
            &[
                ("type", Str),
                ("block_id", Str),
                ("label", PlainText),
                ("element", Any),
                ("dispatch_action", Bool),
                ("hint", PlainText),
                ("optional", Bool),
            ],
            &["label", "element"],
        ),
        _ => (&[("type", Str), ("block_id", Str)], &[]), // divider
    }
}

const TEXT_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("text", Shape::Str),
    ("emoji", Shape::Bool),
    ("verbatim", Shape::Bool),
];

const BUTTON_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("text", Shape::PlainText),
    ("action_id", Shape::Str),
    ("url", Shape::Str),
    ("value", Shape::Str),
    ("style", Shape::Style),
    ("confirm", Shape::Any),
    ("accessibility_label", Shape::Str),
];

const IMAGE_ELEMENT_KEYS: &[(&str, Shape)] = &[
    ("type", Shape::Str),
    ("image_url", Shape::Str),
    ("alt_text", Shape::Str),
    ("slack_file", Shape::Any),
];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A parser message without its " at line N column M" parts: the line is already in front
/// of every [`TemplateError`], and the column of a YAML parser rarely helps an admin.
fn without_positions(message: &str) -> String {
    const AT: &str = " at line ";
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(AT) {
        out.push_str(&rest[..i]);
        let after = &rest[i + AT.len()..];
        let line = digits(after);
        if line == 0 {
            // Just words ("look at line breaks"), not a position.
            out.push_str(AT);
            rest = after;
            continue;
        }
        let tail = &after[line..];
        rest = match tail.strip_prefix(" column ") {
            Some(column) => &column[digits(column)..],
            None => tail,
        };
    }
    out.push_str(rest);
    out
}

fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Compiles one file into the shared environment, collecting every problem.
struct Compiler<'a> {
    env: &'a mut Environment<'static>,
    name: &'a str,
    file: &'a Path,
    format: Format,
    errors: &'a mut Vec<TemplateError>,
    count: usize,
}

impl Compiler<'_> {
    fn error(&mut self, line: usize, message: String) {
        self.errors.push(TemplateError {
            file: self.file.to_path_buf(),
            line: line.max(1),
            message,
        });
    }

    /// Parses, locates, checks and compiles a whole file; None when anything is wrong.
    fn file(&mut self, text: &str) -> Option<Part> {
        let parsed = match self.format {
            Format::Json => serde_json::from_str::<Node>(text).map_err(|e| {
                let message = without_positions(&e.to_string());
                (e.line(), format!("invalid JSON: {message}"))
            }),
            Format::Yaml => serde_norway::from_str::<Node>(text).map_err(|e| {
                let line = e.location().map_or(1, |l| l.line());
                let message = without_positions(&e.to_string());
                (line, format!("invalid YAML: {message}"))
            }),
        };
        let mut root = match parsed {
            Ok(root) => root,
            Err((line, message)) => {
                self.error(line, message);
                return None;
            }
        };
        Locator::new(text, self.format).locate(&mut root);
        let before = self.errors.len();
        let part = self.part(&root, "", Shape::Message);
        if self.errors.len() > before {
            None
        } else {
            part
        }
    }

    fn part(&mut self, node: &Node, path: &str, shape: Shape) -> Option<Part> {
        match shape {
            Shape::Message => self.message(node),
            Shape::Block => self.block(node, path),
            Shape::Text | Shape::PlainText => self.text_object(node, path, shape),
            Shape::ContextElement | Shape::ActionElement | Shape::Accessory => {
                self.element(node, path, shape)
            }
            Shape::Str => match &node.kind {
                Kind::Str(s) => self.string(s, node.line, path),
                _ => self.wrong(node, path, "a string"),
            },
            Shape::Bool => match node.kind {
                Kind::Bool(b) => Some(Part::Const(serde_json::Value::Bool(b))),
                _ => self.wrong(node, path, "true or false"),
            },
            Shape::Style => match &node.kind {
                Kind::Str(s) if has_template_syntax(s) || s == "primary" || s == "danger" => {
                    self.string(s, node.line, path)
                }
                _ => {
                    self.error(
                        node.line,
                        format!("{path}: must be \"primary\" or \"danger\""),
                    );
                    None
                }
            },
            Shape::Any => match &node.kind {
                Kind::Str(s) => self.string(s, node.line, path),
                Kind::Seq(_) => self.array(node, path, Shape::Any),
                Kind::Map(members) => {
                    let mut out = Vec::new();
                    let mut ok = true;
                    for m in members {
                        match self.part(&m.value, &join(path, &m.key), Shape::Any) {
                            Some(p) => out.push((m.key.clone(), p)),
                            None => ok = false,
                        }
                    }
                    ok.then_some(Part::Object(out))
                }
                Kind::Null => Some(Part::Const(serde_json::Value::Null)),
                Kind::Bool(b) => Some(Part::Const(serde_json::Value::Bool(*b))),
                Kind::Number(n) => Some(Part::Const(serde_json::Value::Number(n.clone()))),
            },
            Shape::ArrayOf(item) => match node.kind {
                Kind::Seq(_) => self.array(node, path, *item),
                _ => self.wrong(node, path, "an array"),
            },
        }
    }

    fn wrong(&mut self, node: &Node, path: &str, expected: &str) -> Option<Part> {
        let path = if path.is_empty() { "template" } else { path };
        self.error(
            node.line,
            format!("{path}: expected {expected}, got {}", node.type_name()),
        );
        None
    }

    fn message(&mut self, node: &Node) -> Option<Part> {
        let Kind::Map(members) = &node.kind else {
            self.error(
                node.line,
                format!(
                    "a template must be an object with \"text\" and/or \"blocks\", got {}",
                    node.type_name()
                ),
            );
            return None;
        };
        if node.get("text").is_none() && node.get("blocks").is_none() {
            self.error(node.line, "a template needs \"text\" or \"blocks\"".into());
        }
        self.object(
            members,
            "",
            &[("text", Shape::Str), ("blocks", BLOCKS)],
            &[],
            node.line,
        )
    }

    /// Checks an object's keys against `allowed`, reporting unknown, duplicate and missing ones.
    fn object(
        &mut self,
        members: &[Member],
        path: &str,
        allowed: &[(&str, Shape)],
        required: &[&str],
        line: usize,
    ) -> Option<Part> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut ok = true;
        let at = if path.is_empty() { "template" } else { path };
        for m in members {
            if !seen.insert(m.key.as_str()) {
                self.error(m.key_line, format!("{at}: duplicate key {:?}", m.key));
                ok = false;
                continue;
            }
            match allowed.iter().find(|(k, _)| *k == m.key) {
                Some((_, shape)) => match self.part(&m.value, &join(path, &m.key), *shape) {
                    Some(part) => out.push((m.key.clone(), part)),
                    None => ok = false,
                },
                None => {
                    self.error(m.key_line, format!("{at}: unknown key {:?}", m.key));
                    ok = false;
                }
            }
        }
        for key in required {
            if !seen.contains(key) {
                self.error(line, format!("{at}: missing required key {key:?}"));
                ok = false;
            }
        }
        ok.then_some(Part::Object(out))
    }

    /// The literal `type` of an object, reporting when it is missing or not a string.
    fn type_of<'n>(&mut self, node: &'n Node, path: &str) -> Option<(&'n str, usize)> {
        match node.get("type") {
            Some(Member {
                value:
                    Node {
                        kind: Kind::Str(ty),
                        line,
                    },
                ..
            }) => Some((ty.as_str(), *line)),
            Some(m) => {
                self.error(m.value.line, format!("{path}.type: expected a string"));
                None
            }
            None => {
                self.error(node.line, format!("{path}: missing required key \"type\""));
                None
            }
        }
    }

    fn block(&mut self, node: &Node, path: &str) -> Option<Part> {
        let Kind::Map(members) = &node.kind else {
            return self.wrong(node, path, "an object (a block)");
        };
        let (ty, line) = self.type_of(node, path)?;
        if !BLOCK_TYPES.contains(&ty) {
            self.error(line, format!("{path}: unknown block type {ty:?}"));
            return None;
        }
        let (allowed, required) = block_keys(ty);
        let part = self.object(members, path, allowed, required, node.line);
        if ty == "section" && node.get("text").is_none() && node.get("fields").is_none() {
            self.error(
                node.line,
                format!("{path}: a section needs \"text\" or \"fields\""),
            );
            return None;
        }
        if ty == "image" && node.get("image_url").is_none() && node.get("slack_file").is_none() {
            self.error(
                node.line,
                format!("{path}: an image needs \"image_url\" or \"slack_file\""),
            );
            return None;
        }
        part
    }

    fn text_object(&mut self, node: &Node, path: &str, shape: Shape) -> Option<Part> {
        let Kind::Map(members) = &node.kind else {
            return self.wrong(node, path, "a text object ({\"type\": ..., \"text\": ...})");
        };
        let (ty, line) = self.type_of(node, path)?;
        let ty_ok = match shape {
            Shape::PlainText => ty == "plain_text",
            _ => ty == "plain_text" || ty == "mrkdwn",
        };
        if !ty_ok {
            let expected = if shape == Shape::PlainText {
                "must be \"plain_text\" here"
            } else {
                "must be \"plain_text\" or \"mrkdwn\""
            };
            self.error(line, format!("{path}.type: {expected}, got {ty:?}"));
            // Keep checking the keys, so every problem shows at once.
            self.object(members, path, TEXT_KEYS, &["text"], node.line);
            return None;
        }
        self.object(members, path, TEXT_KEYS, &["text"], node.line)
    }

    fn element(&mut self, node: &Node, path: &str, shape: Shape) -> Option<Part> {
        let Kind::Map(members) = &node.kind else {
            return self.wrong(node, path, "an object (an element)");
        };
        let (ty, line) = self.type_of(node, path)?;
        let allowed: &[&str] = match shape {
            Shape::ContextElement => &["plain_text", "mrkdwn", "image"],
            Shape::ActionElement => &["button"],
            _ => &["button", "image"],
        };
        if !allowed.contains(&ty) {
            let known = ["plain_text", "mrkdwn", "image", "button"].contains(&ty);
            let message = if known {
                format!(
                    "{path}: element type {ty:?} is not allowed here (expected {})",
                    allowed.join(", ")
                )
            } else {
                format!("{path}: unknown element type {ty:?}")
            };
            self.error(line, message);
            return None;
        }
        match ty {
            "plain_text" | "mrkdwn" => self.text_object(node, path, Shape::Text),
            "button" => self.object(
                members,
                path,
                BUTTON_KEYS,
                &["text", "action_id"],
                node.line,
            ),
            _ => self.object(members, path, IMAGE_ELEMENT_KEYS, &["alt_text"], node.line),
        }
    }

    /// An array whose object elements may carry `when` or be `each` loops.
    fn array(&mut self, node: &Node, path: &str, item: Shape) -> Option<Part> {
        let Kind::Seq(items) = &node.kind else {
            return self.wrong(node, path, "an array");
        };
        let mut entries = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, element) in items.iter().enumerate() {
            match self.entry(element, &format!("{path}[{i}]"), item) {
                Some(entry) => entries.push(entry),
                None => ok = false,
            }
        }
        ok.then_some(Part::Array(entries))
    }

    fn entry(&mut self, node: &Node, path: &str, shape: Shape) -> Option<Entry> {
        let Kind::Map(members) = &node.kind else {
            return Some(Entry {
                when: None,
                kind: EntryKind::Plain(self.part(node, path, shape)?),
            });
        };
        if node.get("each").is_some() {
            return self.each(members, path, shape);
        }
        let when = node
            .get("when")
            .map(|m| self.expression(&m.value, &join(path, "when")));
        let rest = Node {
            line: node.line,
            kind: Kind::Map(
                members
                    .iter()
                    .filter(|m| m.key != "when")
                    .cloned()
                    .collect(),
            ),
        };
        // Check the element even when `when` is wrong, so every problem shows at once.
        let part = self.part(&rest, path, shape);
        let when = match when {
            Some(expr) => Some(expr?),
            None => None,
        };
        Some(Entry {
            when,
            kind: EntryKind::Plain(part?),
        })
    }

    fn each(&mut self, members: &[Member], path: &str, shape: Shape) -> Option<Entry> {
        let (mut each, mut name, mut item, mut when) = (None, None, None, None);
        let mut ok = true;
        for m in members {
            match m.key.as_str() {
                "each" => each = self.expression(&m.value, &join(path, "each")),
                "when" => when = self.expression(&m.value, &join(path, "when")),
                "as" => match &m.value.kind {
                    Kind::Str(s) if is_identifier(s) => name = Some(s.clone()),
                    _ => {
                        self.error(
                            m.value.line,
                            format!("{path}.as: must be a variable name such as \"item\""),
                        );
                        ok = false;
                    }
                },
                "item" => {
                    item = self.entry(&m.value, &join(path, "item"), shape);
                    ok &= item.is_some();
                }
                other => {
                    self.error(
                        m.key_line,
                        format!(
                            "{path}: unknown key {other:?} in a loop (expected each, as, item, when)"
                        ),
                    );
                    ok = false;
                }
            }
        }
        if members.iter().all(|m| m.key != "item") {
            self.error(
                members.first().map_or(1, |m| m.key_line),
                format!("{path}: a loop needs \"item\", the element to repeat"),
            );
            ok = false;
        }
        let has_when = members.iter().any(|m| m.key == "when");
        if !ok || (has_when && when.is_none()) {
            return None;
        }
        Some(Entry {
            when,
            kind: EntryKind::Each {
                each: each?,
                name: name.unwrap_or_else(|| "item".into()),
                item: Box::new(item?),
            },
        })
    }

    /// Checks that a `when`/`each` value is an expression that compiles.
    fn expression(&mut self, node: &Node, path: &str) -> Option<String> {
        let Kind::Str(source) = &node.kind else {
            self.error(
                node.line,
                format!(
                    "{path}: expected an expression string, got {}",
                    node.type_name()
                ),
            );
            return None;
        };
        if source.trim().is_empty() {
            self.error(node.line, format!("{path}: empty expression"));
            return None;
        }
        match self.env.compile_expression_owned(source.clone()) {
            Ok(_) => Some(source.clone()),
            Err(e) => {
                self.error(node.line, format!("{path}: {}", describe(&e)));
                None
            }
        }
    }

    /// A string: literal when it has no template syntax, otherwise compiled into the
    /// environment under a name of its own.
    fn string(&mut self, s: &str, line: usize, path: &str) -> Option<Part> {
        if !has_template_syntax(s) {
            return Some(Part::Const(serde_json::Value::String(s.to_owned())));
        }
        self.count += 1;
        let name = format!("{}#{}", self.name, self.count);
        match self.env.add_template_owned(name.clone(), s.to_owned()) {
            Ok(()) => Some(Part::Template(name)),
            Err(e) => {
                // A YAML block scalar spans lines as written; a JSON string is on one line.
                let inner = match self.format {
                    Format::Yaml => e.line().unwrap_or(1).saturating_sub(1),
                    Format::Json => 0,
                };
                let at = if path.is_empty() { "template" } else { path };
                self.error(line + inner, format!("{at}: {}", describe(&e)));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORG: &str = "00D5g000004ABCdEAO";
    const OPP: &str = "006Hs00000BkXyzIAF";
    const HOSTILE: &str = "<!channel> free money <https://evil.example|click> & more";
    const HOSTILE_ESCAPED: &str =
        "&lt;!channel&gt; free money &lt;https://evil.example|click&gt; &amp; more";

    /// An event as the Flow endpoint would produce it.
    fn event(envelope: serde_json::Value) -> Event {
        let mut envelope = envelope;
        let defaults = json!({"org_id": ORG, "object": "Opportunity"});
        for (k, v) in defaults.as_object().into_iter().flatten() {
            if envelope.get(k).is_none() {
                envelope[k] = v.clone();
            }
        }
        let received_at = "2025-09-30T16:00:05Z".parse().unwrap();
        let mut events =
            crate::ingest::flow::parse_flow_request(envelope.to_string().as_bytes(), received_at)
                .unwrap();
        events.remove(0)
    }

    fn closed_won_event() -> Event {
        event(json!({
            "change_type": "UPDATE",
            "changed_fields": ["StageName"],
            "occurred_at": "2025-10-02T13:12:00Z",
            "record": {
                "Id": OPP,
                "Name": "Acme Corp - Q3 Enterprise",
                "StageName": "Closed Won",
                "Amount": 75000,
                "CurrencyIsoCode": "USD",
                "CloseDate": "2025-09-30",
                "Account": {"Name": "Acme Corp"},
                "Owner": {"Name": "Dana Seller", "Email": "Dana.Seller@example.com"},
                "Sales_Engineer_Email__c": "sam.se@example.com",
                "Executive_Sponsor_Email__c": "eve.exec@example.com"
            },
            "prior": {"StageName": "Negotiation/Review"}
        }))
    }

    fn users() -> HashMap<String, String> {
        HashMap::from([
            ("dana.seller@example.com".into(), "U0DANA0001".into()),
            ("sam.se@example.com".into(), "U0SAMSE002".into()),
        ])
    }

    const NULL: serde_json::Value = serde_json::Value::Null;

    fn ctx<'a>(
        event: &'a Event,
        users: &'a HashMap<String, String>,
        extra: &'a serde_json::Value,
    ) -> RenderContext<'a> {
        RenderContext {
            event,
            instance_url: Some("https://acme.my.salesforce.com"),
            users,
            extra,
        }
    }

    fn load(sources: &[(&str, &str)]) -> Templates {
        match Templates::from_sources(sources, RenderOptions::default()) {
            Ok(t) => t,
            Err(errors) => panic!("{errors:#?}"),
        }
    }

    fn errors(file: &str, text: &str) -> Vec<String> {
        match Templates::from_sources(&[(file, text)], RenderOptions::default()) {
            Ok(_) => panic!("{file} loaded without errors"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    const CLOSED_WON_JSON: &str = r#"{
  "text": "Closed Won: {{ record.Name }} ({{ record.Account.Name }}) {{ record.Amount | money(record.CurrencyIsoCode) }}",
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Closed Won: {{ record.Name }}", "emoji": true}},
    {"type": "section", "fields": [
      {"type": "mrkdwn", "text": "*Account*\n{{ record.Account.Name }}"},
      {"type": "mrkdwn", "text": "*Amount*\n{{ record.Amount | money(record.CurrencyIsoCode) }}"},
      {"type": "mrkdwn", "text": "*Close date*\n{{ record.CloseDate | date }}"},
      {"type": "mrkdwn", "text": "*Owner*\n{{ slack_user(record.Owner.Email) }}"}
    ]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Stakeholders:* {{ slack_user(record.Owner.Email) }}, {{ slack_user(record.Sales_Engineer_Email__c) }}, {{ slack_user(record.Executive_Sponsor_Email__c) }}"}},
    {"when": "record.Amount >= 1000000", "type": "section", "text": {"type": "mrkdwn", "text": ":rotating_light: Seven figures!"}},
    {"type": "context", "elements": [
      {"type": "mrkdwn", "text": "{{ object }} {{ record.Id }} · was {{ was('StageName') }} · {{ occurred_at | datetime }}"}
    ]},
    {"type": "actions", "elements": [
      {"type": "button", "action_id": "open_record", "style": "primary",
       "text": {"type": "plain_text", "text": "View in Salesforce"}, "url": "{{ record.Id | sf_url }}"}
    ]}
  ]
}"#;

    const CLOSED_WON_YAML: &str = r#"
# Same message as closed-won.json, the way most admins will write it.
text: "Closed Won: {{ record.Name }} ({{ record.Account.Name }}) {{ record.Amount | money(record.CurrencyIsoCode) }}"
blocks:
  - type: header
    text:
      type: plain_text
      text: "Closed Won: {{ record.Name }}"
      emoji: true
  - type: section
    fields:
      - type: mrkdwn
        text: "*Account*\n{{ record.Account.Name }}"
      - type: mrkdwn
        text: "*Amount*\n{{ record.Amount | money(record.CurrencyIsoCode) }}"
      - type: mrkdwn
        text: "*Close date*\n{{ record.CloseDate | date }}"
      - {type: mrkdwn, text: "*Owner*\n{{ slack_user(record.Owner.Email) }}"}
  - type: section
    text:
      type: mrkdwn
      text: >-
        *Stakeholders:* {{ slack_user(record.Owner.Email) }},
        {{ slack_user(record.Sales_Engineer_Email__c) }},
        {{ slack_user(record.Executive_Sponsor_Email__c) }}
  - when: record.Amount >= 1000000
    type: section
    text: {type: mrkdwn, text: ":rotating_light: Seven figures!"}
  - type: context
    elements:
      - type: mrkdwn
        text: "{{ object }} {{ record.Id }} · was {{ was('StageName') }} · {{ occurred_at | datetime }}"
  - type: actions
    elements:
      - type: button
        action_id: open_record
        style: primary
        text: {type: plain_text, text: View in Salesforce}
        url: "{{ record.Id | sf_url }}"
"#;

    fn expected_closed_won() -> Rendered {
        Rendered {
            text: "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) USD 75,000".into(),
            blocks: vec![
                json!({"type": "header", "text": {"type": "plain_text", "text": "Closed Won: Acme Corp - Q3 Enterprise", "emoji": true}}),
                json!({"type": "section", "fields": [
                    {"type": "mrkdwn", "text": "*Account*\nAcme Corp"},
                    {"type": "mrkdwn", "text": "*Amount*\nUSD 75,000"},
                    {"type": "mrkdwn", "text": "*Close date*\n30 Sep 2025"},
                    {"type": "mrkdwn", "text": "*Owner*\n<@U0DANA0001>"},
                ]}),
                json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Stakeholders:* <@U0DANA0001>, <@U0SAMSE002>, eve.exec@example.com"}}),
                json!({"type": "context", "elements": [
                    {"type": "mrkdwn", "text": "Opportunity 006Hs00000BkXyzIAF · was Negotiation/Review · 2 Oct 2025 13:12 UTC"}
                ]}),
                json!({"type": "actions", "elements": [
                    {"type": "button", "action_id": "open_record", "style": "primary",
                     "text": {"type": "plain_text", "text": "View in Salesforce"},
                     "url": "https://acme.my.salesforce.com/lightning/r/Opportunity/006Hs00000BkXyzIAF/view"}
                ]}),
            ],
            wanted_emails: BTreeSet::from(["eve.exec@example.com".to_owned()]),
            cuts: vec![],
        }
    }

    #[test]
    fn renders_closed_won() {
        let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
        assert!(templates.contains("closed-won"));
        assert_eq!(templates.names(), ["closed-won"]);
        let (event, users) = (closed_won_event(), users());
        let rendered = templates
            .render("closed-won", &ctx(&event, &users, &NULL))
            .unwrap();
        assert_eq!(rendered, expected_closed_won());

        // Once the caller has resolved the third email, the mention appears.
        let mut users = users;
        users.insert("eve.exec@example.com".into(), "U0EVEX0003".into());
        let rendered = templates
            .render("closed-won", &ctx(&event, &users, &NULL))
            .unwrap();
        assert!(rendered.wanted_emails.is_empty());
        assert_eq!(
            rendered.blocks[2]["text"]["text"],
            "*Stakeholders:* <@U0DANA0001>, <@U0SAMSE002>, <@U0EVEX0003>"
        );
    }

    #[test]
    fn yaml_renders_the_same_as_json() {
        let templates = load(&[
            ("closed-won.json", CLOSED_WON_JSON),
            ("closed-won-yaml.yaml", CLOSED_WON_YAML),
        ]);
        assert_eq!(templates.names(), ["closed-won", "closed-won-yaml"]);
        let (event, users) = (closed_won_event(), users());
        let json = templates.render("closed-won", &ctx(&event, &users, &NULL));
        let yaml = templates.render("closed-won-yaml", &ctx(&event, &users, &NULL));
        assert_eq!(yaml.unwrap(), json.unwrap());
    }

    #[test]
    fn when_on_a_block() {
        let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
        let mut event = closed_won_event();
        event.record.insert("Amount".into(), json!(1_250_000.5));
        let users = users();
        let rendered = templates
            .render("closed-won", &ctx(&event, &users, &NULL))
            .unwrap();
        assert_eq!(rendered.blocks.len(), 6);
        assert_eq!(
            rendered.blocks[3],
            json!({"type": "section", "text": {"type": "mrkdwn", "text": ":rotating_light: Seven figures!"}})
        );
        assert_eq!(
            rendered.text,
            "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) USD 1,250,000.50"
        );
    }

    #[test]
    fn without_instance_url_the_button_has_no_url() {
        let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
        let (event, users) = (closed_won_event(), users());
        let mut context = ctx(&event, &users, &NULL);
        context.instance_url = None;
        let rendered = templates.render("closed-won", &context).unwrap();
        assert_eq!(
            rendered.blocks[4]["elements"][0],
            json!({"type": "button", "action_id": "open_record", "style": "primary",
                   "text": {"type": "plain_text", "text": "View in Salesforce"}})
        );
    }

    #[test]
    fn each_over_80_line_items_fits_in_50_blocks() {
        let template = r#"{"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Name }}: {{ line_items | length }} items"}},
            {"each": "line_items", "as": "li", "item": {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "{{ loop.index }}. {{ li.Name }} × {{ li.Quantity }} @ {{ li.UnitPrice | money }}"}
            }},
            {"each": "nothing_here", "item": {"type": "divider"}}
        ]}"#;
        let templates = load(&[("items.json", template)]);
        let items: Vec<serde_json::Value> = (1..=80)
            .map(|i| json!({"Name": format!("Widget {i}"), "Quantity": i, "UnitPrice": 1000.5}))
            .collect();
        let extra = json!({"line_items": items});
        let (event, users) = (closed_won_event(), users());
        let rendered = templates
            .render("items", &ctx(&event, &users, &extra))
            .unwrap();
        assert_eq!(rendered.blocks.len(), 50);
        assert_eq!(
            rendered.blocks[0]["text"]["text"],
            "Acme Corp - Q3 Enterprise: 80 items"
        );
        assert_eq!(
            rendered.blocks[1]["text"]["text"],
            "1. Widget 1 × 1 @ 1,000.50"
        );
        assert_eq!(
            rendered.blocks[48]["text"]["text"],
            "48. Widget 48 × 48 @ 1,000.50"
        );
        assert_eq!(
            rendered.blocks[49],
            json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "…and 32 more not shown"}]})
        );
        assert_eq!(
            rendered.cuts,
            [
                "blocks: 81 over 50, kept the first 49 and noted 32 more not shown",
                "text: missing or empty, built from the header and section texts"
            ]
        );
        assert!(
            rendered
                .text
                .starts_with("Acme Corp - Q3 Enterprise: 80 items\n1. Widget 1")
        );
    }

    #[test]
    fn each_item_may_hold_when() {
        let template = r#"
blocks:
  - each: record.Contacts
    as: c
    item:
      when: c.Role == "Decision Maker"
      type: section
      text: {type: mrkdwn, text: "{{ loop.index }}/{{ loop.length }} {{ c.Name }}"}
"#;
        let templates = load(&[("contacts.yml", template)]);
        let mut event = closed_won_event();
        event.record.insert(
            "Contacts".into(),
            json!([
                {"Name": "Ann", "Role": "Decision Maker"},
                {"Name": "Bob", "Role": "Influencer"},
                {"Name": "Cy <x>", "Role": "Decision Maker"}
            ]),
        );
        let users = users();
        let rendered = templates
            .render("contacts", &ctx(&event, &users, &NULL))
            .unwrap();
        let texts: Vec<_> = rendered
            .blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(texts, ["1/3 Ann", "3/3 Cy &lt;x&gt;"]);
        assert_eq!(rendered.text, "1/3 Ann\n3/3 Cy &lt;x&gt;");

        // No list at all: no blocks, and a text Slack accepts.
        event.record.remove("Contacts");
        let rendered = templates
            .render("contacts", &ctx(&event, &users, &NULL))
            .unwrap();
        assert!(rendered.blocks.is_empty());
        assert_eq!(rendered.text, "…");
    }

    #[test]
    fn long_field_is_cut_within_limits() {
        let template = r#"{"text": "{{ record.Description }}", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Description }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Description }}"}}
        ]}"#;
        let templates = load(&[("long.json", template)]);
        let mut event = closed_won_event();
        event
            .record
            .insert("Description".into(), json!("x".repeat(10_000)));
        let users = users();
        let rendered = templates
            .render("long", &ctx(&event, &users, &NULL))
            .unwrap();
        assert_eq!(
            rendered.blocks[0]["text"]["text"],
            format!("{}…", "x".repeat(149))
        );
        assert_eq!(
            rendered.blocks[1]["text"]["text"],
            format!("{}…", "x".repeat(2999))
        );
        assert_eq!(rendered.text, "x".repeat(10_000));
        assert_eq!(
            rendered.cuts,
            [
                "blocks[0].text: cut from 10000 to 150 chars",
                "blocks[1].text: cut from 10000 to 3000 chars"
            ]
        );
    }

    #[test]
    fn hostile_record_data_is_escaped_everywhere() {
        let template = r##"{"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Name }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Name }}"},
             "fields": [{"type": "mrkdwn", "text": "{{ record.Name }}"}, {"type": "plain_text", "text": "{{ record.Name | upper | lower }}"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "{{ record.Name }}"}]},
            {"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "{{ record.Name }}"}, "value": "{{ record.Name }}"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": "<!here> {{ slack_user(record.Owner.Email) }} {{ record.Name | safe }} {{ [slack_user(record.Owner.Email), record.Name] | join(' ') }}"}}
        ]}"##;
        let with_text = template.replacen(
            r#"{"blocks""#,
            r#"{"text": "{{ record.Name }}", "blocks""#,
            1,
        );
        let templates = load(&[
            ("hostile.json", template),
            ("hostile-text.json", with_text.as_str()),
        ]);
        let mut event = closed_won_event();
        event.record.insert("Name".into(), json!(HOSTILE));
        let users = users();
        for name in ["hostile", "hostile-text"] {
            let r = templates.render(name, &ctx(&event, &users, &NULL)).unwrap();
            let b = &r.blocks;
            for text in [
                &b[0]["text"]["text"],
                &b[1]["text"]["text"],
                &b[1]["fields"][0]["text"],
                &b[1]["fields"][1]["text"],
                &b[2]["elements"][0]["text"],
                &b[3]["elements"][0]["text"]["text"],
                &b[3]["elements"][0]["value"],
            ] {
                assert_eq!(text, HOSTILE_ESCAPED, "{name}");
            }
            assert_eq!(
                b[4]["text"]["text"],
                format!("<!here> <@U0DANA0001> {HOSTILE} <@U0DANA0001> {HOSTILE_ESCAPED}")
            );
            if name == "hostile" {
                // Built from the header and the sections, each escaped once.
                assert!(
                    r.text
                        .starts_with(&format!("{HOSTILE_ESCAPED}\n{HOSTILE_ESCAPED}\n<!here>")),
                    "{}",
                    r.text
                );
            } else {
                assert_eq!(r.text, HOSTILE_ESCAPED);
            }
        }
    }

    fn condition(expr: &str, event: &Event) -> bool {
        let templates = load(&[]);
        let condition = templates.compile_condition(expr).unwrap();
        let users = users();
        condition.eval(&ctx(event, &users, &NULL)).unwrap()
    }

    #[test]
    fn became_stage() {
        let expr = r#"became("StageName", "Closed Won")"#;
        assert!(condition(expr, &closed_won_event()));
        // Already Closed Won before: an edit of another field does not fire again.
        let mut e = closed_won_event();
        e.changed_fields = Some(vec!["Amount".into()]);
        e.prior = Some(serde_json::from_value(json!({"StageName": "Closed Won"})).unwrap());
        assert!(!condition(expr, &e));
        // Listed as changed but the prior value says it was already Closed Won.
        e.changed_fields = Some(vec!["StageName".into()]);
        assert!(!condition(expr, &e));
        // Another stage.
        let mut e = closed_won_event();
        e.record.insert("StageName".into(), json!("Closed Lost"));
        assert!(!condition(expr, &e));
        // Nothing known about the change: fire.
        let mut e = closed_won_event();
        e.changed_fields = None;
        e.prior = None;
        assert!(condition(expr, &e));
    }

    #[test]
    fn became_with_booleans_and_or() {
        let expr = r#"became("IsEscalated", true) or became("Priority", "Critical")"#;
        let case = |record: serde_json::Value, prior: serde_json::Value| {
            let mut record = record;
            record["Id"] = json!("500Hs00000EfGhiIAF");
            event(json!({"object": "Case", "record": record, "prior": prior}))
        };
        assert!(condition(
            expr,
            &case(json!({"IsEscalated": true}), json!({"IsEscalated": false}))
        ));
        assert!(!condition(
            expr,
            &case(json!({"IsEscalated": true}), json!({"IsEscalated": true}))
        ));
        assert!(condition(
            expr,
            &case(
                json!({"IsEscalated": false, "Priority": "Critical"}),
                json!({"IsEscalated": false, "Priority": "High"})
            )
        ));
        assert!(!condition(
            expr,
            &case(
                json!({"IsEscalated": false, "Priority": "High"}),
                json!({"IsEscalated": false, "Priority": "High"})
            )
        ));
        // A string "true" is not the boolean true.
        assert!(!condition(
            expr,
            &case(
                json!({"IsEscalated": "true"}),
                json!({"IsEscalated": false})
            )
        ));
    }

    #[test]
    fn numeric_comparison() {
        let expr = "record.AnnualRevenue >= 10000000";
        let account = |revenue: serde_json::Value| {
            event(
                json!({"object": "Account", "record": {"Id": "001Hs00000AbCdE", "AnnualRevenue": revenue}}),
            )
        };
        assert!(condition(expr, &account(json!(25_000_000))));
        assert!(condition(expr, &account(json!(10_000_000.0))));
        assert!(!condition(expr, &account(json!(9_999_999.99))));
        assert!(!condition(expr, &account(json!(null))));
        let missing = event(json!({"object": "Account", "record": {"Id": "001Hs00000AbCdE"}}));
        assert!(!condition(expr, &missing));
    }

    #[test]
    fn changed_status() {
        let expr = r#"changed("Status")"#;
        let case = |changed: Option<&[&str]>, prior: Option<serde_json::Value>, ct: &str| {
            let mut envelope = json!({"object": "Case", "change_type": ct,
                "record": {"Id": "500Hs00000EfGhiIAF", "Status": "Escalated"}});
            if let Some(changed) = changed {
                envelope["changed_fields"] = json!(changed);
            }
            if let Some(prior) = prior {
                envelope["prior"] = prior;
            }
            event(envelope)
        };
        // changed_fields decides when present.
        assert!(condition(expr, &case(Some(&["Status"]), None, "UPDATE")));
        assert!(!condition(expr, &case(Some(&["Subject"]), None, "UPDATE")));
        assert!(!condition(
            expr,
            &case(Some(&[]), Some(json!({"Status": "New"})), "UPDATE")
        ));
        // Otherwise the prior value.
        assert!(condition(
            expr,
            &case(None, Some(json!({"Status": "New"})), "UPDATE")
        ));
        assert!(!condition(
            expr,
            &case(None, Some(json!({"Status": "Escalated"})), "UPDATE")
        ));
        // Neither: fire, except for deletes.
        assert!(condition(expr, &case(None, None, "UPDATE")));
        assert!(condition(expr, &case(None, None, "CREATE")));
        assert!(condition(expr, &case(None, None, "UNDELETE")));
        assert!(!condition(expr, &case(None, None, "DELETE")));
        // A prior without the field says nothing about it.
        assert!(condition(
            expr,
            &case(None, Some(json!({"Subject": "x"})), "UPDATE")
        ));
        // was() reads the prior value.
        assert!(condition(
            r#"was("Status") == "New" and record.Status == "Escalated""#,
            &case(None, Some(json!({"Status": "New"})), "UPDATE")
        ));
        assert!(condition(
            r#"was("Status") is none"#,
            &case(None, None, "UPDATE")
        ));
    }

    #[test]
    fn condition_variables_and_errors() {
        let e = closed_won_event();
        assert!(condition(
            r#"object == "Opportunity" and change_type == "UPDATE" and "StageName" in changed_fields"#,
            &e
        ));
        assert!(condition("event_id is undefined and id | length == 36", &e));
        assert!(condition(r#"occurred_at == "2025-10-02T13:12:00Z""#, &e));
        // Multi-line conditions, as TOML's triple-quoted strings give them.
        assert!(condition(
            "\n(change_type == \"CREATE\")\nor became(\"StageName\", \"Closed Won\")\n",
            &e
        ));
        let templates = load(&[]);
        let err = templates.compile_condition("record.Amount >").unwrap_err();
        assert_eq!(
            err,
            "syntax error: unexpected end of input, expected expression"
        );
        assert_eq!(
            templates.compile_condition(" ").unwrap_err(),
            "empty condition"
        );
        let users = users();
        let extra = json!({"account_tier": "Gold"});
        let c = templates
            .compile_condition(r#"account_tier == "Gold""#)
            .unwrap();
        assert!(c.eval(&ctx(&e, &users, &extra)).unwrap());
        // extra cannot shadow the event.
        let extra = json!({"record": {"StageName": "Prospecting"}});
        let c = templates
            .compile_condition(r#"record.StageName == "Closed Won""#)
            .unwrap();
        assert!(c.eval(&ctx(&e, &users, &extra)).unwrap());
        let c = templates
            .compile_condition("record.Amount | money(1, 2)")
            .unwrap();
        assert!(c.eval(&ctx(&e, &users, &NULL)).is_err());
    }

    #[test]
    fn money_filter() {
        assert_eq!(money(Value::from(75000), None), Value::from("75,000"));
        assert_eq!(
            money(Value::from(75000), Some(Value::from("EUR"))),
            Value::from("EUR 75,000")
        );
        assert_eq!(
            money(Value::from(1234567.5), None),
            Value::from("1,234,567.50")
        );
        assert_eq!(money(Value::from(-1234.5), None), Value::from("-1,234.50"));
        assert_eq!(money(Value::from(0.5), None), Value::from("0.50"));
        assert_eq!(money(Value::from(999), None), Value::from("999"));
        assert_eq!(
            money(Value::from("640000.5"), None),
            Value::from("640,000.50")
        );
        assert_eq!(money(Value::from("n/a"), None), Value::from("n/a"));
        assert!(money(Value::from(()), None).is_none());
        assert_eq!(
            money(Value::from(12), Some(Value::from(()))),
            Value::from("12")
        );
        assert_eq!(format_money(1e6), "1,000,000");
        // Through a template, with the currency read from the record.
        let t = load(&[(
            "m.json",
            r#"{"text": "{{ record.Amount | money }} / {{ record.Amount | money(\"EUR\") }} / {{ 1234567.5 | money }} / {{ record.Name | money }}"}"#,
        )]);
        let (event, users) = (closed_won_event(), users());
        let r = t.render("m", &ctx(&event, &users, &NULL)).unwrap();
        assert_eq!(
            r.text,
            "75,000 / EUR 75,000 / 1,234,567.50 / Acme Corp - Q3 Enterprise"
        );
    }

    #[test]
    fn date_and_datetime_filters() {
        let text = r#"{"text": "{{ d | date }}|{{ t | date }}|{{ t | datetime }}|{{ sf | datetime }}|{{ d | datetime }}|{{ x | date }}|{{ missing | date }}"}"#;
        let extra = json!({
            "d": "2025-09-30",
            "t": "2025-10-02T03:12:00Z",
            "sf": "2025-10-02T13:12:00.000+0000",
            "x": "soon"
        });
        let (event, users) = (closed_won_event(), users());
        let render = |tz: Tz| {
            let t = Templates::from_sources(&[("d.json", text)], RenderOptions { time_zone: tz })
                .unwrap();
            t.render("d", &ctx(&event, &users, &extra)).unwrap().text
        };
        assert_eq!(
            render(Tz::UTC),
            "30 Sep 2025|2 Oct 2025|2 Oct 2025 03:12 UTC|2 Oct 2025 13:12 UTC|30 Sep 2025|soon|"
        );
        // 03:12 UTC is still the evening before in New York.
        assert_eq!(
            render(chrono_tz::America::New_York),
            "30 Sep 2025|1 Oct 2025|1 Oct 2025 23:12 EDT|2 Oct 2025 09:12 EDT|30 Sep 2025|soon|"
        );
        assert_eq!(
            format_when(
                Value::from("2025-10-02T13:12:00Z"),
                chrono_tz::Europe::Berlin,
                true
            ),
            Value::from("2 Oct 2025 15:12 CEST")
        );
        assert_eq!(
            format_when(
                Value::from("2025-12-02T13:12:00Z"),
                chrono_tz::America::New_York,
                true
            ),
            Value::from("2 Dec 2025 08:12 EST")
        );
    }

    #[test]
    fn sf_url_only_for_safe_ids() {
        let text = r#"{"text": "{{ record.Id | sf_url }}|{{ sf_url(record.Account.Id, 'Account') }}|{{ 'abc<def' | sf_url }}|{{ record.Id | sf_url('Bad-Name') }}|{{ missing | sf_url }}"}"#;
        let t = load(&[("u.json", text)]);
        let mut event = closed_won_event();
        event.record["Account"]["Id"] = json!("001Hs00000AbCdEIAV");
        let users = users();
        let mut c = ctx(&event, &users, &NULL);
        c.instance_url = Some("https://acme.my.salesforce.com/");
        assert_eq!(
            t.render("u", &c).unwrap().text,
            "https://acme.my.salesforce.com/lightning/r/Opportunity/006Hs00000BkXyzIAF/view|\
             https://acme.my.salesforce.com/lightning/r/Account/001Hs00000AbCdEIAV/view|||"
        );
        c.instance_url = Some("javascript:alert(1)//");
        assert_eq!(t.render("u", &c).unwrap().text, "||||");
    }

    #[test]
    fn slack_user_edge_cases() {
        let text = r#"{"text": "[{{ slack_user('') }}][{{ slack_user(none) }}][{{ slack_user(missing) }}][{{ slack_user('  DANA.SELLER@example.com ') }}][{{ slack_user('<b>@x.com') }}]"}"#;
        let t = load(&[("s.json", text)]);
        let (event, users) = (closed_won_event(), users());
        let r = t.render("s", &ctx(&event, &users, &NULL)).unwrap();
        assert_eq!(r.text, "[][][][<@U0DANA0001>][&lt;b&gt;@x.com]");
        assert_eq!(r.wanted_emails, BTreeSet::from(["<b>@x.com".to_owned()]));
    }

    #[test]
    fn render_errors_name_the_place() {
        let t = load(&[(
            "bad.json",
            r#"{"blocks": [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Amount | money(1, 2, 3) }}"}}]}"#,
        )]);
        let (event, users) = (closed_won_event(), users());
        let err = t.render("bad", &ctx(&event, &users, &NULL)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("template bad: blocks[1].text.text: too many arguments"),
            "{err}"
        );
        assert!(matches!(
            t.render("nope", &ctx(&event, &users, &NULL)),
            Err(RenderError::Unknown(name)) if name == "nope"
        ));
    }

    #[test]
    fn bad_json_reports_the_line() {
        let text = "{\n  \"blocks\": [\n    {\"type\": \"divider\"},\n  ]\n}\n";
        assert_eq!(
            errors("bad.json", text),
            ["bad.json:4: invalid JSON: trailing comma"]
        );
    }

    #[test]
    fn bad_yaml_reports_the_line() {
        let text = "blocks:\n  - type: divider\n  - type: section\n   text: oops\n";
        assert_eq!(
            errors("bad.yaml", text),
            [
                "bad.yaml:4: invalid YAML: did not find expected '-' indicator, \
              while parsing a block collection"
            ]
        );
        assert_eq!(
            errors("dup.yaml", "text: a\ntext: b\n"),
            ["dup.yaml:2: template: duplicate key \"text\""]
        );
        assert_eq!(
            without_positions("x at line 3 column 4, y at line 1 column 2"),
            "x, y"
        );
        assert_eq!(
            without_positions("look at line breaks at line 2"),
            "look at line breaks"
        );
    }

    #[test]
    fn unclosed_expression_reports_the_line() {
        let text = r#"{
  "text": "fine {{ record.Name }}",
  "blocks": [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Amount* {{ record.Amount | money "}},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "{% if x %}no end"}]}
  ]
}"#;
        assert_eq!(
            errors("unclosed.json", text),
            [
                "unclosed.json:4: blocks[0].text.text: syntax error: unexpected end of input, expected end of variable block",
                "unclosed.json:5: blocks[1].elements[0].text: syntax error: unexpected end of input, expected end of block"
            ]
        );
        // In YAML the line inside a block scalar counts too.
        let text = "blocks:\n  - type: section\n    text:\n      type: mrkdwn\n      text: |\n        line one\n        line {{ two\n";
        assert_eq!(
            errors("unclosed.yaml", text),
            [
                "unclosed.yaml:7: blocks[0].text.text: syntax error: unexpected end of input, expected end of variable block"
            ]
        );
    }

    #[test]
    fn unknown_block_type_and_key_report_the_line() {
        let text = r#"{
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Hi"}},
    {"type": "section",
     "text": {"type": "mrkdwn",
              "txt": "oops"}},
    {"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}
  ]
}"#;
        assert_eq!(
            errors("typos.json", text),
            [
                "typos.json:6: blocks[1].text: unknown key \"txt\"",
                "typos.json:5: blocks[1].text: missing required key \"text\"",
                "typos.json:7: blocks[2]: unknown block type \"sectoin\"",
            ]
        );
        let text = "blocks:\n  - type: divider\n  - type: sectoin\n  - type: header\n    text: {type: mrkdwn, text: Hi}\n";
        assert_eq!(
            errors("typos.yml", text),
            [
                "typos.yml:3: blocks[1]: unknown block type \"sectoin\"",
                "typos.yml:5: blocks[2].text.type: must be \"plain_text\" here, got \"mrkdwn\"",
            ]
        );
    }

    #[test]
    fn structure_checks() {
        let text = r#"{
  "txt": "x",
  "blocks": [
    {"type": "actions", "elements": [
      {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "style": "green"},
      {"type": "buton", "text": {"type": "plain_text", "text": "Go"}}
    ]},
    {"each": "rows", "item": {"type": "divider", "when": "row is defined and", "color": "red"}},
    {"type": "context", "elements": [{"type": "button", "action_id": "x", "text": {"type": "plain_text", "text": "Go"}}]},
    {"when": 3, "type": "divider"},
    "divider"
  ]
}"#;
        assert_eq!(
            errors("shape.json", text),
            [
                "shape.json:2: template: unknown key \"txt\"",
                "shape.json:5: blocks[0].elements[0].style: must be \"primary\" or \"danger\"",
                "shape.json:5: blocks[0].elements[0]: missing required key \"action_id\"",
                "shape.json:6: blocks[0].elements[1]: unknown element type \"buton\"",
                "shape.json:8: blocks[1].item.when: syntax error: unexpected end of input, expected expression",
                "shape.json:8: blocks[1].item: unknown key \"color\"",
                "shape.json:9: blocks[2].elements[0]: element type \"button\" is not allowed here (expected plain_text, mrkdwn, image)",
                "shape.json:10: blocks[3].when: expected an expression string, got a number",
                "shape.json:11: blocks[4]: expected an object (a block), got a string",
            ]
        );
    }

    #[test]
    fn every_file_is_checked() {
        let result = Templates::from_sources(
            &[
                ("a.json", "{\"blocks\": [{\"type\": \"nope\"}]}"),
                ("b.yaml", "text: \"{{ oops\""),
                ("a.yml", "text: hi"),
                ("c.txt", "text: hi"),
                ("ok.json", "{\"text\": \"hi\"}"),
            ],
            RenderOptions::default(),
        );
        let errors: Vec<String> = result
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "a.json:1: blocks[0]: unknown block type \"nope\"",
                "b.yaml:1: text: syntax error: unexpected end of input, expected end of variable block",
                "a.yml:1: template \"a\" is also defined in a.json",
                "c.txt:1: expected a .json, .yaml or .yml file",
            ]
        );
    }

    #[test]
    fn load_dir_reads_templates_and_ignores_other_files() {
        let dir = std::env::temp_dir().join(format!("sfrelay-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("closed-won.json"), CLOSED_WON_JSON).unwrap();
        std::fs::write(
            dir.join("escalated.yml"),
            "text: \"Escalated: {{ record.Subject }}\"",
        )
        .unwrap();
        std::fs::write(dir.join("README.md"), "not a template").unwrap();
        let templates = Templates::load_dir(&dir, RenderOptions::default());
        std::fs::write(dir.join("broken.yaml"), "text: [\n").unwrap();
        let broken = Templates::load_dir(&dir, RenderOptions::default());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(templates.unwrap().names(), ["closed-won", "escalated"]);
        let errors = broken.err().unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, dir.join("broken.yaml"));
        let missing = Templates::load_dir(&dir, RenderOptions::default());
        assert!(missing.is_err());
    }

    #[test]
    fn shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Templates>();
        send_sync::<Condition>();
        send_sync::<Rendered>();
        send_sync::<RenderError>();
    }
}
