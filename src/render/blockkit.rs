//! The Block Kit compiler: checks a parsed template against what Slack accepts and compiles
//! every string into the environment at load time, then renders the compiled tree for one
//! event (keeping blocks whose `when` holds, repeating `each` loops, dropping empty optional
//! keys) and fits the message within Slack's limits.
//!
//! The one module that knows both a template's structure and Block Kit; it builds on the
//! parser ([`located`]), the tables of [`schema`](super::schema) and the variables and helpers
//! of [`helpers`](super::helpers), none of which depend on it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use minijinja::{Environment, Error, Value};

use super::helpers::{Vars, describe, eval_expression};
use super::limits::{self, max};
use super::located::{self, Format, Kind, Member, Node};
use super::schema::{
    BLOCK_TYPES, BLOCKS, BUTTON_KEYS, IMAGE_ELEMENT_KEYS, OPTION_KEYS, SELECT_KEYS, Shape,
    TEXT_KEYS, block_keys,
};
use super::{Rendered, TemplateError};

/// A compiled template value.
#[derive(Debug)]
pub(super) enum Part {
    /// Literal data (and strings without template syntax).
    Const(serde_json::Value),
    /// A string compiled into the environment under this name.
    Template(String),
    Array(Vec<Entry>),
    Object(Vec<(String, Part)>),
}

/// One array element, kept only when `when` holds.
#[derive(Debug)]
pub(super) struct Entry {
    when: Option<String>,
    kind: EntryKind,
}

/// What an [`Entry`] holds: one element, or a loop.
#[derive(Debug)]
pub(super) enum EntryKind {
    Plain(Part),
    /// One element per item of the `each` list, with the item bound as `name`.
    Each {
        each: String,
        name: String,
        item: Box<Entry>,
    },
}

// ---------------------------------------------------------------------------------------------
// Compiling: checks against Block Kit and compiles every string
// ---------------------------------------------------------------------------------------------

/// Parses, checks and compiles one file into `env`, its strings named after template `name`;
/// None when anything is wrong, with every problem found added to `errors`.
pub(super) fn compile(
    env: &mut Environment<'static>,
    name: &str,
    file: &Path,
    format: Format,
    text: &str,
    errors: &mut Vec<TemplateError>,
) -> Option<Part> {
    Compiler {
        env,
        name,
        file,
        format,
        errors,
        count: 0,
    }
    .file(text)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
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
        let root = match located::parse(text, self.format) {
            Ok(root) => root,
            Err((line, message)) => {
                self.error(line, message);
                return None;
            }
        };
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
            Shape::SelectOption => match &node.kind {
                Kind::Map(members) => {
                    self.object(members, path, OPTION_KEYS, &["text", "value"], node.line)
                }
                _ => self.wrong(node, path, "an option ({\"text\": ..., \"value\": ...})"),
            },
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
            Shape::ActionElement => &["button", "static_select"],
            _ => &["button", "static_select", "image"],
        };
        if !allowed.contains(&ty) {
            let known = ["plain_text", "mrkdwn", "image", "button", "static_select"].contains(&ty);
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
            "static_select" => self.object(
                members,
                path,
                SELECT_KEYS,
                &["action_id", "options"],
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

// ---------------------------------------------------------------------------------------------
// Rendering: the compiled tree for one event, fitted within Slack's limits
// ---------------------------------------------------------------------------------------------

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
pub(super) struct Fail {
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

impl Part {
    /// Renders a whole message for one event and fits it within Slack's limits.
    pub(super) fn render_message(
        &self,
        env: &Environment<'static>,
        vars: &Vars,
    ) -> Result<Rendered, Fail> {
        let mut message = self.render(env, vars)?;
        let has_text = message
            .get("text")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let cuts = limits::fit(&mut message);
        let serde_json::Value::Object(mut message) = message else {
            return Err(Fail {
                path: String::new(),
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
            wanted_emails: vars.wanted(),
            cuts,
        })
    }

    fn render(&self, env: &Environment<'static>, vars: &Vars) -> Result<serde_json::Value, Fail> {
        Ok(match self {
            Part::Const(value) => value.clone(),
            Part::Template(name) => {
                let template = env.get_template(name).map_err(Fail::from)?;
                serde_json::Value::String(template.render(&vars.value).map_err(Fail::from)?)
            }
            Part::Array(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (i, entry) in entries.iter().enumerate() {
                    entry
                        .render_into(env, vars, &mut out)
                        .map_err(|f| f.at(format!("[{i}]")))?;
                }
                serde_json::Value::Array(out)
            }
            Part::Object(members) => {
                let mut out = serde_json::Map::with_capacity(members.len());
                for (key, part) in members {
                    let value = part
                        .render(env, vars)
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
}

impl Entry {
    /// Renders one array entry into `out`: nothing when its `when` is false, one element per
    /// list item for a loop.
    fn render_into(
        &self,
        env: &Environment<'static>,
        vars: &Vars,
        out: &mut Vec<serde_json::Value>,
    ) -> Result<(), Fail> {
        if let Some(when) = &self.when {
            let value = eval_expression(env, when, &vars.value)
                .map_err(|e| Fail::from(e).at(".when".into()))?;
            if !value.is_true() {
                return Ok(());
            }
        }
        match &self.kind {
            EntryKind::Plain(part) => out.push(part.render(env, vars)?),
            EntryKind::Each { each, name, item } => {
                let list = eval_expression(env, each, &vars.value)
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
                    item.render_into(env, &inner, out)
                        .map_err(|f| f.at(format!(".item[{i}]")))?;
                }
            }
        }
        Ok(())
    }
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
