//! A JSON/YAML parser that remembers where things are: template files become an ordered tree
//! whose every value and key knows its source line, so a problem found later (an unknown key,
//! a bad expression) is reported as `file:line: message`.
//!
//! Separate from the Block Kit checks because it knows nothing about Slack: it only parses and
//! locates, and reports syntax errors with their line.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The syntax of a template file, chosen by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Yaml,
}

/// The format a file's extension names; None for any other file.
pub(super) fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()? {
        "json" => Some(Format::Json),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

/// Parses a template file into a tree whose every node knows its source line; on a syntax
/// error, the line and the parser's message (without the positions it repeats).
pub(super) fn parse(text: &str, format: Format) -> Result<Node, (usize, String)> {
    let parsed = match format {
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
    let mut root = parsed?;
    Locator::new(text, format).locate(&mut root);
    Ok(root)
}

/// A parser message without its " at line N column M" parts: the line is already in front
/// of every [`TemplateError`](super::TemplateError), and the column of a YAML parser rarely
/// helps an admin.
pub(super) fn without_positions(message: &str) -> String {
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

/// A parsed template value with its source line; maps keep their order (serde_json's own Map
/// would sort them) so lines can be found by walking the source in step.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) line: usize,
    pub(super) kind: Kind,
}

/// What a [`Node`] holds.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Member>),
}

/// One key of a map and its value; the key has a line of its own.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) key: String,
    pub(super) key_line: usize,
    pub(super) value: Node,
}

impl Node {
    fn new(kind: Kind) -> Self {
        Self { line: 1, kind }
    }

    /// The member with this key, when this is a map that has it.
    pub(super) fn get(&self, key: &str) -> Option<&Member> {
        match &self.kind {
            Kind::Map(members) => members.iter().find(|m| m.key == key),
            _ => None,
        }
    }

    /// What this is, in words, for error messages ("a string").
    pub(super) fn type_name(&self) -> &'static str {
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
