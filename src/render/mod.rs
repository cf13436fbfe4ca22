//! Rendering is pure: (template, event) → Block Kit JSON within Slack's limits, with every
//! interpolated value escaped for mrkdwn so record data can never ping or link.
//!
//! Block Kit templates are what Salesforce admins edit without touching Rust. A template is a
//! JSON (`.json`) or YAML (`.yaml`/`.yml`) file shaped like a Slack message,
//! `{"text": "...", "blocks": [...]}`, whose every string may hold minijinja expressions. Files
//! are parsed, checked against Block Kit and compiled once at load time, so a typo is reported as
//! `file:line: message` when sfrelay starts (or `sfrelay check` runs) rather than as a lost
//! alert at 3 a.m.
//!
//! Record data is never trusted: every interpolated value is escaped for Slack mrkdwn by a custom
//! auto-escape mode, so a record named `<!channel>` cannot ping anyone. Only literal template
//! text (which the admin wrote on purpose), values marked `| safe` and mentions made by
//! `slack_user()` reach Slack as written.
//!
//! This module is the API: [`Templates`] loads and renders templates, [`Condition`] and
//! [`Expression`] evaluate route expressions in the same environment. The work is done in
//! `located` (JSON/YAML parsed into a tree that knows its source lines), `schema` (what Block
//! Kit allows where), `blockkit` (a parsed template checked, compiled, and rendered for one
//! event), `helpers` (the variables, functions and filters templates see), [`limits`] (Slack's
//! limits, and fitting a message within them) and [`mrkdwn`] (escaping).

pub mod limits;
pub mod mrkdwn;

mod blockkit;
mod helpers;
mod located;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Environment;

use blockkit::Part;
use helpers::{Vars, describe, environment, eval_expression};
use located::format_of;

pub use helpers::{RenderContext, RenderOptions, format_money, record_url};

/// The templates API under the path the rest of the crate imports it by
/// (`render::template::Templates`): the same items as directly under `render`.
pub mod template {
    pub use super::{
        Condition, Expression, RenderContext, RenderError, RenderOptions, Rendered, TemplateError,
        Templates, format_money,
    };
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
    /// The picklist fields each template offers choices of (`picklists.StageName`), which
    /// the job reads from Salesforce before rendering it.
    picklists: BTreeMap<String, BTreeSet<String>>,
    /// The buttons each template places by name (`action('take_case')`), checked against
    /// the declared ones when routes load.
    actions: BTreeMap<String, BTreeSet<String>>,
}

/// Every button name a template's text places literally: `action('x')` or `action("x")`.
fn action_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    // In a JSON file a double quote inside a string is written \".
    for mark in ["action('", "action(\\\"", "action(\""] {
        let mut rest = text;
        while let Some(at) = rest.find(mark) {
            let after = &rest[at + mark.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
            rest = after;
        }
    }
    names
}

/// Every `picklists.<Field>` a template's text mentions.
fn picklist_fields(text: &str) -> BTreeSet<String> {
    const MARK: &str = "picklists.";
    let mut fields = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        let after = &rest[at + MARK.len()..];
        let field: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let starts_well = field.starts_with(|c: char| c.is_ascii_alphabetic());
        let whole_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        if starts_well && whole_word {
            fields.insert(field);
        }
        rest = after;
    }
    fields
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
        let mut picklists = BTreeMap::new();
        let mut actions = BTreeMap::new();
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
            picklists.insert(name.clone(), picklist_fields(&text));
            actions.insert(name.clone(), action_names(&text));
            if let Some(tree) =
                blockkit::compile(&mut env, &name, &file, format, &text, &mut errors)
            {
                trees.insert(name, tree);
            }
        }
        if errors.is_empty() {
            Ok(Self {
                env: Arc::new(env),
                trees,
                picklists,
                actions,
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

    /// The button names template `name` places with a literal `action('<name>')`, by template.
    pub fn action_names(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.actions
    }

    /// The picklist fields template `name` offers choices of.
    pub fn picklist_fields(&self, name: &str) -> BTreeSet<String> {
        self.picklists.get(name).cloned().unwrap_or_default()
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
        tree.render_message(&self.env, &Vars::new(ctx))
            .map_err(|fail| RenderError::Failed {
                template: name.to_owned(),
                message: fail.to_string(),
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
}
