//! The deliberately small SOQL subset the emulator understands:
//!
//! ```text
//! SELECT f1, f2, Rel.Field FROM Object
//!   [WHERE cond [AND cond]...]
//!   [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST] [, ...]]
//!   [LIMIT n]
//! cond := path (= | != | <> | < | <= | > | >=) value
//!       | path [NOT] IN (value, ...)
//! value := 'string' | number | true | false | null
//!        | LAST_N_MINUTES:n | LAST_N_HOURS:n | LAST_N_DAYS:n
//! ```
//!
//! String literals follow Salesforce's escapes (`\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`,
//! `\f`, `\uXXXX`). Anything else (`OR`, parentheses in conditions, `LIKE`, sub-queries,
//! functions, a stray quote) is refused as `MALFORMED_QUERY`, so a query that a pasted
//! value broke fails loudly instead of matching something.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;

/// A dotted field path as written (`Account.Name`).
pub type FieldPath = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<FieldPath>,
    /// `FIELDS(ALL)` was selected: every field of the record (it needs a `LIMIT` of 200 or
    /// less, as Salesforce's API does).
    pub all_fields: bool,
    pub object: String,
    pub conditions: Vec<Condition>,
    pub order_by: Vec<OrderKey>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: FieldPath,
    pub op: Op,
    pub value: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    List(Vec<Literal>),
    /// A relative date literal, resolved when parsed: `[start, end]`.
    Range {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub field: FieldPath,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Comma,
    LParen,
    RParen,
    Colon,
    Op(Op),
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Word(w) => w.clone(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => n.to_string(),
        Tok::Comma => ",".into(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Colon => ":".into(),
        Tok::Op(op) => format!("{op:?}"),
    }
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "OFFSET", "ASC",
    "DESC", "NULLS", "LIKE", "GROUP", "HAVING", "WITH", "INCLUDES", "EXCLUDES", "TRUE", "FALSE",
    "NULL",
];

fn lex(input: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ':' => {
                toks.push(Tok::Colon);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Op(Op::Eq));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Op(Op::Ne));
                i += 2;
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    toks.push(Tok::Op(Op::Le));
                    i += 2;
                }
                Some('>') => {
                    toks.push(Tok::Op(Op::Ne));
                    i += 2;
                }
                _ => {
                    toks.push(Tok::Op(Op::Lt));
                    i += 1;
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    toks.push(Tok::Op(Op::Ge));
                    i += 2;
                } else {
                    toks.push(Tok::Op(Op::Gt));
                    i += 1;
                }
            }
            '\'' => {
                let (s, next) = lex_string(&chars, i)?;
                toks.push(Tok::Str(s));
                i = next;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                {
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    return Err(format!("unexpected character '{}' in a number", chars[i]));
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("bad number {text}"))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(toks)
}

/// Reads the string literal whose opening quote is at `start`; returns it and the index after
/// its closing quote.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("unterminated string literal".into()),
            Some('\'') => return Ok((out, i + 1)),
            Some('\\') => {
                let escaped = chars
                    .get(i + 1)
                    .ok_or_else(|| "unterminated string literal".to_string())?;
                match escaped {
                    '\'' | '"' | '\\' => out.push(*escaped),
                    'n' | 'N' => out.push('\n'),
                    'r' | 'R' => out.push('\r'),
                    't' | 'T' => out.push('\t'),
                    'b' | 'B' => out.push('\u{8}'),
                    'f' | 'F' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = chars.get(i + 2..i + 6).unwrap_or(&[]).iter().collect();
                        let code = (hex.len() == 4)
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid unicode escape \\u{hex}"))?;
                        out.push(code);
                        i += 4;
                    }
                    other => return Err(format!("invalid escape sequence \\{other}")),
                }
                i += 2;
            }
            Some(c) => {
                out.push(*c);
                i += 1;
            }
        }
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    now: DateTime<Utc>,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.peek_kw(kw);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), String> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected {kw}")))
        }
    }

    fn unexpected(&self, what: &str) -> String {
        match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                "unexpected token: OR (the emulator supports only AND)".into()
            }
            Some(t) => format!("unexpected token: {} ({what})", describe(t)),
            None => format!("unexpected end of query ({what})"),
        }
    }

    fn path(&mut self) -> Result<FieldPath, String> {
        match self.peek() {
            Some(Tok::Word(w))
                if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w))
                    && w.split('.').all(valid_name) =>
            {
                let path = w.split('.').map(str::to_owned).collect();
                self.pos += 1;
                Ok(path)
            }
            _ => Err(self.unexpected("expected a field name")),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        self.expect_kw("SELECT")?;
        let (mut fields, mut all_fields) = (Vec::new(), false);
        loop {
            if self.fields_all()? {
                all_fields = true;
            } else {
                fields.push(self.path()?);
            }
            if self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.expect_kw("FROM")?;
        let object = match self.path()? {
            p if p.len() == 1 => p.into_iter().next().unwrap_or_default(),
            _ => return Err("an object name has no dots".into()),
        };
        let mut conditions = Vec::new();
        if self.eat_kw("WHERE") {
            conditions.push(self.condition()?);
            while self.eat_kw("AND") {
                conditions.push(self.condition()?);
            }
        }
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let field = self.path()?;
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                let mut nulls_last = descending;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("LAST") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("FIRST")?;
                        nulls_last = false;
                    }
                }
                order_by.push(OrderKey {
                    field,
                    descending,
                    nulls_last,
                });
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        let mut limit = None;
        if self.eat_kw("LIMIT") {
            match self.next() {
                Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 && n <= 1e9 => {
                    limit = Some(n as usize);
                }
                _ => return Err("LIMIT needs a whole number".into()),
            }
        }
        if self.peek().is_some() {
            return Err(self.unexpected("expected the end of the query"));
        }
        if all_fields && limit.is_none_or(|n| n > 200) {
            return Err(
                "The SOQL FIELDS function must have a LIMIT of at most 200 (an unbounded set of fields)"
                    .into(),
            );
        }
        Ok(Query {
            fields,
            all_fields,
            object,
            conditions,
            order_by,
            limit,
        })
    }

    /// `FIELDS(ALL)` at this point of the field list (consumed); other groups are refused.
    fn fields_all(&mut self) -> Result<bool, String> {
        if !self.peek_kw("FIELDS") || self.toks.get(self.pos + 1) != Some(&Tok::LParen) {
            return Ok(false);
        }
        self.pos += 2;
        match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("ALL") => {}
            _ => return Err("only FIELDS(ALL) is supported by the emulator".into()),
        }
        match self.next() {
            Some(Tok::RParen) => Ok(true),
            _ => Err("FIELDS(ALL needs its closing parenthesis".into()),
        }
    }

    fn condition(&mut self) -> Result<Condition, String> {
        let field = self.path()?;
        let (op, value) = match self.next() {
            Some(Tok::Op(op)) => (op, self.value(true)?),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IN") => (Op::In, self.list()?),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => {
                self.expect_kw("IN")?;
                (Op::NotIn, self.list()?)
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("LIKE") => {
                return Err("LIKE is not supported by the emulator".into());
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("expected an operator"));
            }
        };
        Ok(Condition { field, op, value })
    }

    fn list(&mut self) -> Result<Literal, String> {
        if self.next() != Some(Tok::LParen) {
            self.pos -= 1;
            return Err(self.unexpected("expected ("));
        }
        let mut items = vec![self.value(false)?];
        loop {
            match self.next() {
                Some(Tok::Comma) => items.push(self.value(false)?),
                Some(Tok::RParen) => return Ok(Literal::List(items)),
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("expected , or )"));
                }
            }
        }
    }

    fn value(&mut self, allow_range: bool) -> Result<Literal, String> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Literal::Str(s)),
            Some(Tok::Num(n)) => Ok(Literal::Num(n)),
            Some(Tok::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "TRUE" => Ok(Literal::Bool(true)),
                "FALSE" => Ok(Literal::Bool(false)),
                "NULL" => Ok(Literal::Null),
                unit @ ("LAST_N_MINUTES" | "LAST_N_HOURS" | "LAST_N_DAYS") if allow_range => {
                    if self.next() != Some(Tok::Colon) {
                        return Err(format!("{unit} needs :n"));
                    }
                    let n = match self.next() {
                        Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 && n <= 1e6 => n as i64,
                        _ => return Err(format!("{unit} needs a whole number after the colon")),
                    };
                    let span = match unit {
                        "LAST_N_MINUTES" => Duration::minutes(n),
                        "LAST_N_HOURS" => Duration::hours(n),
                        _ => Duration::days(n),
                    };
                    Ok(Literal::Range {
                        start: self.now - span,
                        end: self.now,
                    })
                }
                _ => {
                    self.pos -= 1;
                    Err(self.unexpected("expected a value"))
                }
            },
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected a value"))
            }
        }
    }
}

fn valid_name(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses `input`; relative date literals are resolved against `now`.
pub fn parse(input: &str, now: DateTime<Utc>) -> Result<Query, String> {
    let toks = lex(input)?;
    Parser { toks, pos: 0, now }.query()
}

/// Whether `actual` (a record's value) satisfies `op value`; `id_field` compares Salesforce
/// Ids as Salesforce does (a 15- and an 18-character spelling are equal).
pub fn matches(actual: &Value, op: Op, value: &Literal, id_field: bool) -> bool {
    match (op, value) {
        (Op::In, Literal::List(items)) => items.iter().any(|v| equal(actual, v, id_field)),
        (Op::NotIn, Literal::List(items)) => !items.iter().any(|v| equal(actual, v, id_field)),
        (_, Literal::Range { start, end }) => {
            let Some(t) = actual.as_str().and_then(parse_datetime) else {
                return op == Op::Ne;
            };
            let within = *start <= t && t <= *end;
            match op {
                Op::Eq => within,
                Op::Ne => !within,
                Op::Lt => t < *start,
                Op::Le => t <= *end,
                Op::Gt => t > *end,
                Op::Ge => t >= *start,
                Op::In | Op::NotIn => false,
            }
        }
        (Op::Eq, v) => equal(actual, v, id_field),
        (Op::Ne, v) => !equal(actual, v, id_field),
        (op, v) => match compare(actual, v) {
            Some(ord) => match op {
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                _ => false,
            },
            None => false,
        },
    }
}

fn equal(actual: &Value, value: &Literal, id_field: bool) -> bool {
    match (actual, value) {
        (Value::Null, Literal::Null) => true,
        (Value::String(a), Literal::Str(b)) if id_field && looks_like_id(a) && looks_like_id(b) => {
            a[..15] == b[..15]
        }
        _ => compare(actual, value) == Some(Ordering::Equal),
    }
}

/// Orders a record's value against a literal of the same kind; text compares without case,
/// as Salesforce does.
fn compare(actual: &Value, value: &Literal) -> Option<Ordering> {
    match (actual, value) {
        (Value::String(a), Literal::Str(b)) => Some(cmp_text(a, b)),
        (Value::Number(a), Literal::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    a.to_lowercase().cmp(&b.to_lowercase())
}

/// A 15- or 18-character Salesforce Id.
pub fn looks_like_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads Salesforce's datetime format (`2024-05-01T10:00:00.000+0000`), RFC 3339, or a date.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Orders two record values for `ORDER BY`: by kind first (null, booleans, numbers, text),
/// then by value; text without case.
pub fn order_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => cmp_text(x, y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(q: &str) -> Result<Query, String> {
        parse(q, Utc::now())
    }

    fn path(s: &str) -> FieldPath {
        s.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_subset() {
        let q = p("select Id, Name, Account.Name FROM Opportunity \
                   WHERE StageName = 'Closed Won' AND Amount >= 5 AND Id IN ('a','b') \
                   AND Region__c NOT IN ('EMEA') AND IsWon = true AND X != null \
                   AND LastModifiedDate >= LAST_N_MINUTES:15 \
                   ORDER BY Amount DESC, Name NULLS LAST LIMIT 10")
        .unwrap();
        assert_eq!(
            q.fields,
            vec![path("Id"), path("Name"), path("Account.Name")]
        );
        assert_eq!(q.object, "Opportunity");
        assert_eq!(q.conditions.len(), 7);
        assert_eq!(q.conditions[1].op, Op::Ge);
        assert_eq!(q.conditions[1].value, Literal::Num(5.0));
        assert_eq!(
            q.conditions[2].value,
            Literal::List(vec![Literal::Str("a".into()), Literal::Str("b".into())])
        );
        assert_eq!(q.conditions[3].op, Op::NotIn);
        assert_eq!(q.conditions[5].op, Op::Ne);
        assert!(matches!(q.conditions[6].value, Literal::Range { .. }));
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[0].descending && q.order_by[0].nulls_last);
        assert!(!q.order_by[1].descending && q.order_by[1].nulls_last);
        assert_eq!(q.limit, Some(10));
        let all =
            p("SELECT FIELDS(ALL) FROM Opportunity WHERE Id IN ('006000000000001AAA') LIMIT 200")
                .unwrap();
        assert!(all.all_fields && all.fields.is_empty());
        assert!(
            p("SELECT FIELDS(ALL) FROM Opportunity")
                .unwrap_err()
                .contains("LIMIT of at most 200")
        );
        assert!(p("SELECT FIELDS(CUSTOM) FROM Opportunity LIMIT 5").is_err());
    }

    #[test]
    fn string_escapes_are_decoded() {
        let q = p(r#"SELECT Id FROM Account WHERE Name = 'x\' OR Name != \'' AND B = 'O\'Brien \\ Sons' AND C = 'a\nb\tc\u00e9\"'"#)
            .unwrap();
        assert_eq!(q.conditions.len(), 3);
        assert_eq!(
            q.conditions[0].value,
            Literal::Str("x' OR Name != '".into())
        );
        assert_eq!(
            q.conditions[1].value,
            Literal::Str(r"O'Brien \ Sons".into())
        );
        assert_eq!(q.conditions[2].value, Literal::Str("a\nb\tcé\"".into()));
    }

    #[test]
    fn anything_else_is_malformed() {
        for bad in [
            "",
            "SELECT FROM Account",
            "SELECT Id FROM",
            "SELECT Id, FROM Account",
            "SELECT Id FROM Account WHERE Name = 'x' OR Name != ''",
            "SELECT Id FROM Account WHERE Name = 'x'' OR Name != ''",
            "SELECT Id FROM Account WHERE Name = 'unterminated",
            r"SELECT Id FROM Account WHERE Name = 'bad \q escape'",
            r"SELECT Id FROM Account WHERE Name = 'bad \u12 escape'",
            "SELECT Id FROM Account WHERE (Name = 'x')",
            "SELECT Id FROM Account WHERE Name LIKE 'x%'",
            "SELECT Id FROM Account WHERE Name = x",
            "SELECT Id FROM Account WHERE Name",
            "SELECT Id FROM Account WHERE Id IN ()",
            "SELECT Id FROM Account WHERE Id IN 'a'",
            "SELECT Id FROM Account LIMIT -1",
            "SELECT Id FROM Account LIMIT 1.5",
            "SELECT Id FROM Account; DELETE",
            "SELECT Id FROM Account WHERE CreatedDate > LAST_N_DAYS",
            "SELECT Id FROM Account WHERE Id IN (LAST_N_DAYS:1)",
            "SELECT COUNT() FROM Account",
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "SELECT Account..Name FROM Contact",
            "SELECT Id FROM Account ORDER BY",
            "SELECT Id FROM Account WHERE Amount > 5x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(
            p("SELECT Id FROM Account WHERE Name = 'x' OR Name != ''")
                .unwrap_err()
                .contains("OR")
        );
    }

    #[test]
    fn conditions_match_like_salesforce() {
        let s = |v: &str| Literal::Str(v.into());
        assert!(matches(
            &json!("Closed Won"),
            Op::Eq,
            &s("closed won"),
            false
        ));
        assert!(!matches(&json!("Closed Won"), Op::Eq, &s("Closed"), false));
        assert!(matches(&json!(null), Op::Eq, &Literal::Null, false));
        assert!(!matches(&json!(null), Op::Ne, &Literal::Null, false));
        assert!(matches(&json!("x"), Op::Ne, &Literal::Null, false));
        assert!(matches(&json!(10), Op::Ge, &Literal::Num(10.0), false));
        assert!(!matches(&json!(null), Op::Ge, &Literal::Num(10.0), false));
        assert!(!matches(&json!("10"), Op::Eq, &Literal::Num(10.0), false));
        assert!(matches(
            &json!("006000000000001AAA"),
            Op::Eq,
            &s("006000000000001"),
            true
        ));
        assert!(!matches(
            &json!("006000000000001AAA"),
            Op::Eq,
            &s("006000000000001"),
            false
        ));
        let list = Literal::List(vec![s("a"), s("b")]);
        assert!(matches(&json!("B"), Op::In, &list, false));
        assert!(matches(&json!("c"), Op::NotIn, &list, false));
        let now = Utc::now();
        let range = Literal::Range {
            start: now - Duration::minutes(5),
            end: now,
        };
        let recent = (now - Duration::minutes(1))
            .format("%Y-%m-%dT%H:%M:%S%.3f%z")
            .to_string();
        assert!(matches(&json!(recent), Op::Ge, &range, false));
        assert!(matches(&json!(recent), Op::Eq, &range, false));
        assert!(!matches(
            &json!("2001-01-01T00:00:00Z"),
            Op::Ge,
            &range,
            false
        ));
        assert!(matches(&json!("2001-01-01"), Op::Lt, &range, false));
        assert!(!matches(&json!(null), Op::Ge, &range, false));
    }

    #[test]
    fn values_order_by_kind_then_value() {
        let mut v = vec![json!("b"), json!(null), json!(2), json!("A"), json!(1)];
        v.sort_by(order_values);
        assert_eq!(
            v,
            vec![json!(null), json!(1), json!(2), json!("A"), json!("b")]
        );
    }
}
