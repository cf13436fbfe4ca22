//! SOQL with bound parameters, so no caller can paste raw input into a query.
//!
//! A query is written once as a template whose parameters are named `:name`, or dotted paths
//! into a JSON context such as `:record.Id` or `:record.Account.Name`:
//!
//! ```text
//! SELECT Id, Name FROM Contact WHERE AccountId = :record.AccountId AND Email IN :emails
//! ```
//!
//! [`Soql::bind`] replaces each parameter with a SOQL literal:
//!
//! - strings are always quoted (`'…'`) and escaped by Salesforce's rules (`\'`, `\"`, `\\`,
//!   `\n`, `\r`, `\t`, `\b`, `\f`, other control characters as `\uXXXX`), so a value can never
//!   end the literal it sits in. Dates (`2024-05-01`) and datetimes (RFC 3339) are strings like
//!   any other and stay quoted: there is no date-literal cast;
//! - numbers are written as they are, booleans as `true`/`false`, JSON `null` as `null`;
//! - arrays become a parenthesised list for `IN :ids`: `('a','b')`. Their items must be
//!   scalars, and an empty array is refused (`IN ()` is not valid SOQL);
//! - objects are refused.
//!
//! Out of scope: a parameter inside a `LIKE` pattern. `%` and `_` in a bound string are not
//! escaped, so `Name LIKE :prefix` treats them as wildcards; build such patterns yourself.
//!
//! `:` only starts a parameter when a letter or `_` follows it and it does not follow a letter,
//! digit or `_` itself; so `LAST_N_DAYS:30` is left alone, and `LAST_N_DAYS::days` binds a
//! number after the date literal's colon. Text inside string literals of the template
//! (`'…:not_a_param…'`) is copied as it is.

use std::fmt;

use serde_json::{Map, Value};

/// A SOQL query whose every value came through [`Soql::bind`].
#[derive(Clone, PartialEq, Eq)]
pub struct Soql {
    text: String,
}

/// Why a template could not be bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoqlError {
    /// The template names a parameter the context does not have.
    #[error("SOQL parameter :{0} has no value")]
    Missing(String),
    /// The value is an object, or an array holding something other than scalars.
    #[error(
        "SOQL parameter :{name} is {kind}; only strings, numbers, booleans, null and arrays of those can be bound"
    )]
    Unsupported { name: String, kind: &'static str },
    /// `IN ()` is not valid SOQL.
    #[error("SOQL parameter :{0} is an empty array; `IN ()` is not valid SOQL")]
    EmptyList(String),
    /// A `'` in the template opens a string literal that never closes.
    #[error("SOQL template: the string literal opened at byte {0} is not closed")]
    UnterminatedLiteral(usize),
}

impl Soql {
    /// Binds `template`'s parameters to values looked up in `params`; a dotted name walks into
    /// nested objects (`:record.Account.Name` reads `params["record"]["Account"]["Name"]`).
    ///
    /// A path that runs into `null` part way (a lookup field that is empty, as Salesforce
    /// sends it) binds `null`; a path naming a key that is not there is an error.
    pub fn bind(template: &str, params: &Map<String, Value>) -> Result<Soql, SoqlError> {
        Self::bind_with(template, |name| lookup_path(params, name).cloned())
    }

    /// Binds `template`'s parameters to what `lookup` answers for each parameter name (the
    /// whole dotted name, without the colon); `None` is a missing parameter.
    pub fn bind_with(
        template: &str,
        mut lookup: impl FnMut(&str) -> Option<Value>,
    ) -> Result<Soql, SoqlError> {
        let bytes = template.as_bytes();
        let mut text = String::with_capacity(template.len() + 32);
        // `copied` is where the not yet copied part of the template starts.
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\'' => {
                    let start = i;
                    i += 1;
                    loop {
                        match bytes.get(i) {
                            None => return Err(SoqlError::UnterminatedLiteral(start)),
                            Some(b'\\') => i += 2,
                            Some(b'\'') => {
                                i += 1;
                                break;
                            }
                            Some(_) => i += 1,
                        }
                    }
                }
                b':' if is_param_start(bytes, i) => {
                    let end = param_end(bytes, i + 1);
                    let name = &template[i + 1..end];
                    text.push_str(&template[copied..i]);
                    let value = lookup(name).ok_or_else(|| SoqlError::Missing(name.to_owned()))?;
                    render(name, &value, &mut text)?;
                    i = end;
                    copied = end;
                }
                _ => i += 1,
            }
        }
        text.push_str(&template[copied..]);
        Ok(Soql { text })
    }

    /// The query text, ready to send.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Soql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Soql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Soql").field(&self.text).finish()
    }
}

/// Quotes `s` as a SOQL string literal, escaped so that it always ends where it should.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(s, &mut out);
    out
}

fn push_quoted(s: &str, out: &mut String) {
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Every control character (C0, DEL, C1) is below U+0100: four hex digits suffice.
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// Whether the `:` at `i` starts a parameter: a name must follow, and the colon must not be
/// glued to a word before it (the `:` of a date literal such as `LAST_N_DAYS:30`).
fn is_param_start(bytes: &[u8], i: usize) -> bool {
    let next_ok = bytes
        .get(i + 1)
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    let glued = i > 0 && is_word(bytes[i - 1]);
    next_ok && !glued
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The end of the parameter name starting at `start`: words joined by single dots.
fn param_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    loop {
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let dotted_word_follows = bytes.get(i) == Some(&b'.')
            && bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
        if dotted_word_follows {
            i += 1;
        } else {
            return i;
        }
    }
}

static NULL: Value = Value::Null;

/// Walks a dotted path into `params`; running into `null` part way yields `null`.
fn lookup_path<'a>(params: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut current = params.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Null => return Some(&NULL),
            Value::Object(map) => map.get(part)?,
            _ => return None,
        };
    }
    Some(current)
}

fn render(name: &str, value: &Value, out: &mut String) -> Result<(), SoqlError> {
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(SoqlError::EmptyList(name.to_owned()));
            }
            out.push('(');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                match item {
                    Value::Array(_) => {
                        return Err(SoqlError::Unsupported {
                            name: name.to_owned(),
                            kind: "an array holding an array",
                        });
                    }
                    Value::Object(_) => {
                        return Err(SoqlError::Unsupported {
                            name: name.to_owned(),
                            kind: "an array holding an object",
                        });
                    }
                    scalar => render_scalar(scalar, out),
                }
            }
            out.push(')');
            Ok(())
        }
        Value::Object(_) => Err(SoqlError::Unsupported {
            name: name.to_owned(),
            kind: "an object",
        }),
        scalar => {
            render_scalar(scalar, out);
            Ok(())
        }
    }
}

fn render_scalar(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => push_quoted(s, out),
        Value::Array(_) | Value::Object(_) => unreachable!("render handles compound values"),
    }
}

/// The part of a query template before `WHERE` when the template reads one row by the record's
/// own Id: `SELECT <anything> FROM <Object> WHERE Id = :record.Id`, with an optional `LIMIT n`
/// (one Id matches one row). Keywords in any case; any spacing. Such reads of many events can
/// be made as one `WHERE Id IN (…)` query.
pub fn select_by_record_id(query: &str) -> Option<String> {
    let upper = query.to_ascii_uppercase();
    let at = last_top_level(&upper, " WHERE ")?;
    let condition: String = query[at + " WHERE ".len()..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("");
    let rest = condition.strip_prefix("Id=:record.Id")?;
    let limited = rest.to_ascii_uppercase();
    let limit_ok = rest.is_empty()
        || limited
            .strip_prefix("LIMIT")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n != "0");
    if !limit_ok {
        return None;
    }
    let select_from = query[..at].trim();
    let head = select_from.to_ascii_uppercase();
    let from = last_top_level(&head, " FROM ")?;
    let object = select_from[from + " FROM ".len()..].trim();
    let is_name = !object.is_empty()
        && object
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    (head.starts_with("SELECT ") && is_name)
        .then(|| select_from.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Where `needle` last stands outside parentheses and string literals.
fn last_top_level(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut quoted, mut found) = (0i32, false, None);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            _ if !quoted && depth == 0 && text[i..].starts_with(needle) => found = Some(i),
            _ => {}
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn bind(template: &str, v: Value) -> Result<String, SoqlError> {
        Soql::bind(template, &params(v)).map(|s| s.as_str().to_owned())
    }

    #[test]
    fn an_injection_attempt_stays_inside_its_literal() {
        assert_eq!(
            bind(
                "SELECT Id FROM Account WHERE Name = :name",
                json!({"name": "x' OR Name != '"})
            )
            .unwrap(),
            r"SELECT Id FROM Account WHERE Name = 'x\' OR Name != \''"
        );
        assert_eq!(
            bind("WHERE Name = :n", json!({"n": r"O'Brien \ Sons"})).unwrap(),
            r"WHERE Name = 'O\'Brien \\ Sons'"
        );
        // A trailing backslash must not escape the closing quote.
        assert_eq!(
            bind("WHERE Name = :n", json!({"n": r"x\"})).unwrap(),
            r"WHERE Name = 'x\\'"
        );
        assert_eq!(
            bind("WHERE Name = :n", json!({"n": "say \"hi\""})).unwrap(),
            r#"WHERE Name = 'say \"hi\"'"#
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            bind(
                "WHERE Description = :d",
                json!({"d": "a\nb\rc\td\u{8}e\u{c}f\u{0}g\u{1b}h\u{7f}i\u{85}"})
            )
            .unwrap(),
            r"WHERE Description = 'a\nb\rc\td\be\ff\u0000g\u001bh\u007fi\u0085'"
        );
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(
            bind("WHERE Name = :n", json!({"n": "Zoë 東京 🚀 \u{2028}"})).unwrap(),
            "WHERE Name = 'Zoë 東京 🚀 \u{2028}'"
        );
    }

    #[test]
    fn scalars_and_arrays() {
        let q = bind(
            "WHERE Amount >= :amount AND Probability < :p AND IsWon = :won AND CloseDate = :d \
             AND Region__c = :none AND Id IN :ids AND Score__c IN :scores",
            json!({
                "amount": 100000, "p": 0.5, "won": true, "d": "2024-05-01", "none": null,
                "ids": ["006000000000001", "it's"], "scores": [1, 2.5, -3],
            }),
        )
        .unwrap();
        assert_eq!(
            q,
            r"WHERE Amount >= 100000 AND Probability < 0.5 AND IsWon = true AND CloseDate = '2024-05-01' AND Region__c = null AND Id IN ('006000000000001','it\'s') AND Score__c IN (1,2.5,-3)"
        );
        assert_eq!(
            bind("WHERE IsClosed = :c", json!({"c": false})).unwrap(),
            "WHERE IsClosed = false"
        );
    }

    #[test]
    fn dotted_paths_walk_the_context() {
        let ctx = json!({
            "record": {"Id": "006000000000001AAA", "Account": {"Name": "Acme"}, "Owner": null},
        });
        assert_eq!(
            bind(
                "WHERE Id = :record.Id AND Account.Name = :record.Account.Name",
                ctx.clone()
            )
            .unwrap(),
            "WHERE Id = '006000000000001AAA' AND Account.Name = 'Acme'"
        );
        // An empty lookup binds null; a key that is not there is missing.
        assert_eq!(
            bind("WHERE OwnerId = :record.Owner.Id", ctx.clone()).unwrap(),
            "WHERE OwnerId = null"
        );
        assert_eq!(
            bind("WHERE X = :record.Account.Missing", ctx.clone()),
            Err(SoqlError::Missing("record.Account.Missing".into()))
        );
        assert_eq!(
            bind("WHERE X = :record.Id.Deeper", ctx.clone()),
            Err(SoqlError::Missing("record.Id.Deeper".into()))
        );
        // A dot not followed by a name ends the parameter.
        assert_eq!(
            bind("WHERE Id = :record.Id.", ctx).unwrap(),
            "WHERE Id = '006000000000001AAA'."
        );
    }

    #[test]
    fn missing_and_unsupported_parameters_are_named() {
        assert_eq!(
            bind("WHERE Id = :id AND Name = :name", json!({"id": "1"})),
            Err(SoqlError::Missing("name".into()))
        );
        let err = bind("WHERE Name = :n", json!({"n": {"a": 1}})).unwrap_err();
        assert!(err.to_string().contains(":n is an object"), "{err}");
        assert!(matches!(
            bind("WHERE Id IN :ids", json!({"ids": [["a"]]})),
            Err(SoqlError::Unsupported { .. })
        ));
        assert!(matches!(
            bind("WHERE Id IN :ids", json!({"ids": [{"a": 1}]})),
            Err(SoqlError::Unsupported { .. })
        ));
        assert_eq!(
            bind("WHERE Id IN :ids", json!({"ids": []})),
            Err(SoqlError::EmptyList("ids".into()))
        );
    }

    #[test]
    fn colons_inside_literals_and_date_literals_are_not_parameters() {
        let ctx = json!({"n": 7, "name": "x"});
        assert_eq!(
            bind(
                "WHERE Subject = 'a :name here' AND Name = :name",
                ctx.clone()
            )
            .unwrap(),
            "WHERE Subject = 'a :name here' AND Name = 'x'"
        );
        // An escaped quote does not end the template's literal.
        assert_eq!(
            bind(
                r"WHERE Subject = 'it\'s :name' AND Name = :name",
                ctx.clone()
            )
            .unwrap(),
            r"WHERE Subject = 'it\'s :name' AND Name = 'x'"
        );
        assert_eq!(
            bind(
                "WHERE CreatedDate = LAST_N_DAYS:30 AND LastModifiedDate > LAST_N_MINUTES::n",
                ctx.clone()
            )
            .unwrap(),
            "WHERE CreatedDate = LAST_N_DAYS:30 AND LastModifiedDate > LAST_N_MINUTES:7"
        );
        // A lone colon, or one before a digit, is copied.
        assert_eq!(
            bind("SELECT Id FROM X WHERE a = : b AND c = :5", ctx.clone()).unwrap(),
            "SELECT Id FROM X WHERE a = : b AND c = :5"
        );
        assert_eq!(
            bind("WHERE Name = 'open", ctx),
            Err(SoqlError::UnterminatedLiteral(13))
        );
        assert_eq!(
            Soql::bind(r"WHERE Name = 'x\'", &Map::new()),
            Err(SoqlError::UnterminatedLiteral(13))
        );
    }

    #[test]
    fn a_value_is_never_bound_again() {
        assert_eq!(
            bind("WHERE A = :a AND B = :b", json!({"a": ":b", "b": "B"})).unwrap(),
            "WHERE A = ':b' AND B = 'B'"
        );
    }

    #[test]
    fn adjacent_punctuation_and_lookup_functions() {
        assert_eq!(
            bind("WHERE Id IN(:a,:b)", json!({"a": "1", "b": 2})).unwrap(),
            "WHERE Id IN('1',2)"
        );
        let calls = std::cell::RefCell::new(Vec::new());
        let soql = Soql::bind_with("WHERE Id = :record.Id AND X = :x", |name| {
            calls.borrow_mut().push(name.to_owned());
            Some(json!("v"))
        })
        .unwrap();
        assert_eq!(soql.as_str(), "WHERE Id = 'v' AND X = 'v'");
        assert_eq!(*calls.borrow(), ["record.Id", "x"]);
        assert_eq!(
            Soql::bind("SELECT Id FROM Account", &Map::new())
                .unwrap()
                .to_string(),
            "SELECT Id FROM Account"
        );
        assert_eq!(quote("a'b"), r"'a\'b'");
    }

    #[test]
    fn only_reads_by_the_records_own_id_combine() {
        assert_eq!(
            select_by_record_id("SELECT Id, Name, Amount FROM Opportunity WHERE Id = :record.Id")
                .as_deref(),
            Some("SELECT Id, Name, Amount FROM Opportunity")
        );
        assert_eq!(
            select_by_record_id(
                "select Id, (SELECT Id FROM OpportunityLineItems WHERE Quantity > 1)\n  from Opportunity where Id=:record.Id limit 1"
            )
            .as_deref(),
            Some("select Id, (SELECT Id FROM OpportunityLineItems WHERE Quantity > 1) from Opportunity")
        );
        for other in [
            "SELECT Id FROM Contact WHERE AccountId = :record.AccountId",
            "SELECT Id FROM Opportunity WHERE Id = :record.Id AND IsClosed = true",
            "SELECT Id FROM Opportunity WHERE Id = :record.Id ORDER BY Name",
            "SELECT Id FROM Opportunity WHERE Id = :record.Id LIMIT 0",
            "SELECT Id FROM Opportunity WHERE Name = 'x WHERE Id = :record.Id'",
            "SELECT Id FROM Opportunity",
        ] {
            assert_eq!(select_by_record_id(other), None, "{other}");
        }
    }
}
