//! The SOSL subset the emulator understands:
//!
//! ```text
//! FIND {text} [IN ALL|NAME|EMAIL|PHONE FIELDS]
//!   [RETURNING Object [(f1, f2 [WHERE …] [ORDER BY …] [LIMIT n])] [, …]]
//!   [LIMIT n]
//! ```
//!
//! Inside the braces the reserved characters `? & | ! { } [ ] ( ) ^ ~ * : \ " ' + -` must be
//! escaped with a backslash, or the search is `MALFORMED_SEARCH`, as Salesforce answers a
//! search built from unescaped user input (so wildcards and phrases are not emulated). The
//! text is split into words, and a record matches when each word appears, case-insensitively,
//! in one of its string fields of the chosen group. Each object's parentheses take the SOQL
//! subset [`super::soql`] reads.

use chrono::{DateTime, Utc};

use super::soql::{self, Query};

/// The characters SOSL reserves inside `{…}`.
pub const RESERVED: &str = "?&|!{}[]()^~*:\\\"'+-";
/// The most records one search returns.
pub const MAX_RESULTS: usize = 2000;

/// Why a search was refused: Salesforce's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchError {
    pub code: &'static str,
    pub message: String,
}

fn malformed(message: impl Into<String>) -> SearchError {
    SearchError {
        code: "MALFORMED_SEARCH",
        message: message.into(),
    }
}

/// Which of a record's string fields the words are looked for in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every field but Ids and lookups.
    All,
    /// `Name`, and fields ending in `Name` (`FirstName`, `LastName`).
    Name,
    /// Fields whose name contains `Email`.
    Email,
    /// Fields whose name contains `Phone`.
    Phone,
}

impl Scope {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.to_ascii_uppercase().as_str() {
            "ALL" => Some(Scope::All),
            "NAME" => Some(Scope::Name),
            "EMAIL" => Some(Scope::Email),
            "PHONE" => Some(Scope::Phone),
            _ => None,
        }
    }

    /// Whether a field of this name is searched.
    pub fn covers(self, field: &str) -> bool {
        let lower = field.to_ascii_lowercase();
        match self {
            // Every field but Ids and lookups (`Id`, `AccountId`).
            Scope::All => !field.ends_with("Id") && lower != "id",
            Scope::Name => lower.ends_with("name"),
            Scope::Email => lower.contains("email"),
            Scope::Phone => lower.contains("phone"),
        }
    }
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    /// The words to find, lower case.
    pub words: Vec<String>,
    pub scope: Scope,
    /// One SOQL query per object; empty searches every object for `Id`s.
    pub returning: Vec<Query>,
    pub limit: Option<usize>,
}

/// Splits search text into lower-case words; fewer than two characters in all is Salesforce's
/// `INVALID_SEARCH`.
pub fn words(text: &str) -> Result<Vec<String>, SearchError> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.iter().map(|w| w.chars().count()).sum::<usize>() < 2 {
        return Err(SearchError {
            code: "INVALID_SEARCH",
            message: "search term must be longer than one character".into(),
        });
    }
    Ok(words)
}

/// Reads `{…}` starting at `start` (the `{`); answers the unescaped text and the index after
/// the closing brace.
fn braces(chars: &[char], start: usize) -> Result<(String, usize), SearchError> {
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        let column = i + 1;
        match chars.get(i) {
            None => {
                return Err(malformed(format!(
                    "line 1:{column} mismatched character '<EOF>' expecting '}}'"
                )));
            }
            Some('\\') => match chars.get(i + 1) {
                Some(c) if RESERVED.contains(*c) => {
                    text.push(*c);
                    i += 2;
                }
                _ => {
                    return Err(malformed(format!(
                        "line 1:{column} invalid escape sequence: only reserved characters \
                         may follow a backslash"
                    )));
                }
            },
            Some('}') => return Ok((text, i + 1)),
            Some(c) if RESERVED.contains(*c) => {
                return Err(malformed(format!(
                    "line 1:{column} mismatched character '{c}' expecting '}}'"
                )));
            }
            Some(c) => {
                text.push(*c);
                i += 1;
            }
        }
    }
}

/// Tracks SOQL string literals (`'…'`, backslash escapes) while scanning a clause.
#[derive(Debug, Default)]
struct Quotes {
    open: bool,
    escaped: bool,
}

impl Quotes {
    /// Takes one character; whether it belongs to a string literal (its quotes included).
    fn step(&mut self, c: char) -> bool {
        if !self.open {
            self.open = c == '\'';
            return self.open;
        }
        if self.escaped {
            self.escaped = false;
        } else if c == '\\' {
            self.escaped = true;
        } else if c == '\'' {
            self.open = false;
        }
        true
    }
}

/// Splits `s` at top-level commas (outside parentheses and quoted strings).
fn split_top(s: &str) -> Result<Vec<String>, SearchError> {
    let mut parts = vec![String::new()];
    let mut depth = 0usize;
    let mut quotes = Quotes::default();
    for c in s.chars() {
        if !quotes.step(c) {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or_else(|| malformed("unexpected ')'"))?;
                }
                ',' if depth == 0 => {
                    parts.push(String::new());
                    continue;
                }
                _ => {}
            }
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    if depth != 0 || quotes.open {
        return Err(malformed("unbalanced parentheses or quotes in RETURNING"));
    }
    Ok(parts.into_iter().map(|p| p.trim().to_owned()).collect())
}

/// The byte index of the first top-level keyword (`WHERE`, `ORDER`, `LIMIT`) in `inner`.
fn first_clause(inner: &str) -> Option<usize> {
    let mut quotes = Quotes::default();
    let bytes = inner.as_bytes();
    for (i, c) in inner.char_indices() {
        if quotes.step(c) {
            continue;
        }
        let starts_word = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if !starts_word {
            continue;
        }
        for keyword in ["WHERE", "ORDER", "LIMIT"] {
            let end = i + keyword.len();
            let is_word = inner
                .get(i..end)
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
                && bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
            if is_word {
                return Some(i);
            }
        }
    }
    None
}

/// One `Object[(fields …)]` of `RETURNING`, as the SOQL query it amounts to.
fn returning_spec(spec: &str, now: DateTime<Utc>) -> Result<Query, SearchError> {
    let (object, inner) = match spec.find('(') {
        Some(open) => {
            let inner = spec[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| malformed(format!("expecting ')' after {spec}")))?;
            (spec[..open].trim(), inner.trim())
        }
        None => (spec, "Id"),
    };
    let valid_object = object
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid_object {
        return Err(malformed(format!("{object:?} is not an object name")));
    }
    let (fields, rest) = match first_clause(inner) {
        Some(at) => (inner[..at].trim(), &inner[at..]),
        None => (inner, ""),
    };
    let fields = if fields.is_empty() { "Id" } else { fields };
    soql::parse(&format!("SELECT {fields} FROM {object} {rest}"), now)
        .map_err(|m| malformed(format!("RETURNING {object}: {m}")))
}

/// Reads a `LIMIT n` value.
fn limit(raw: &str) -> Result<usize, SearchError> {
    raw.trim()
        .parse::<usize>()
        .map_err(|_| malformed(format!("LIMIT {raw:?} is not a number")))
}

/// Parses `input`; relative date literals in conditions are resolved against `now`.
pub fn parse(input: &str, now: DateTime<Utc>) -> Result<Search, SearchError> {
    let input = input.trim();
    let head = input.get(..4).unwrap_or_default();
    if !head.eq_ignore_ascii_case("FIND") {
        return Err(malformed("line 1:1 expecting FIND"));
    }
    let chars: Vec<char> = input.chars().collect();
    let start = chars
        .iter()
        .enumerate()
        .skip(4)
        .find(|(_, c)| !c.is_whitespace())
        .map(|(i, _)| i);
    let Some(start) = start.filter(|i| chars[*i] == '{') else {
        return Err(malformed(
            "No search term found. The search term must be enclosed in braces.",
        ));
    };
    let (text, after) = braces(&chars, start)?;
    let words = words(&text)?;
    let rest: String = chars[after..].iter().collect();
    let mut search = Search {
        words,
        scope: Scope::All,
        returning: Vec::new(),
        limit: None,
    };
    let mut rest = rest.trim();
    if let Some(tail) = strip_keyword(rest, "IN") {
        let mut parts = tail.trim_start().splitn(2, char::is_whitespace);
        let group = parts.next().unwrap_or_default();
        search.scope = Scope::parse(group)
            .ok_or_else(|| malformed(format!("unknown search group {group:?}")))?;
        rest = strip_keyword(parts.next().unwrap_or_default().trim_start(), "FIELDS")
            .ok_or_else(|| malformed("expecting FIELDS after the search group"))?
            .trim_start();
    }
    if let Some(tail) = strip_keyword(rest, "RETURNING") {
        let (specs, tail) = match last_top_level_limit(tail) {
            Some(at) => (&tail[..at], &tail[at..]),
            None => (tail, ""),
        };
        for spec in split_top(specs)? {
            if spec.is_empty() {
                return Err(malformed("expecting an object after RETURNING"));
            }
            search.returning.push(returning_spec(&spec, now)?);
        }
        rest = tail.trim_start();
    }
    if let Some(tail) = strip_keyword(rest, "LIMIT") {
        search.limit = Some(limit(tail)?);
        rest = "";
    }
    if !rest.is_empty() {
        return Err(malformed(format!("unexpected {rest:?}")));
    }
    Ok(search)
}

/// `s` after a leading keyword (any case, followed by whitespace or the end).
fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let tail = &s[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword)
        && (tail.is_empty() || tail.starts_with(char::is_whitespace)))
    .then_some(tail)
}

/// Where a `LIMIT` outside every parenthesis starts in the text after `RETURNING`.
fn last_top_level_limit(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quotes = Quotes::default();
    let bytes = s.as_bytes();
    let mut found = None;
    for (i, c) in s.char_indices() {
        if quotes.step(c) {
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0
                && (i == 0 || bytes[i - 1].is_ascii_whitespace())
                && strip_keyword(&s[i..], "LIMIT").is_some() =>
            {
                found = Some(i);
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    #[test]
    fn reads_find_in_returning_and_limit() {
        let s = parse(
            "FIND {Acme Corp} IN NAME FIELDS RETURNING Opportunity(Id, Name, Account.Name \
             WHERE StageName != 'Closed Lost' ORDER BY Name LIMIT 5), Case(Id, Subject), Lead \
             LIMIT 20",
            now(),
        )
        .unwrap();
        assert_eq!(s.words, ["acme", "corp"]);
        assert_eq!(s.scope, Scope::Name);
        assert_eq!(s.limit, Some(20));
        assert_eq!(s.returning.len(), 3);
        let opp = &s.returning[0];
        assert_eq!(opp.object, "Opportunity");
        assert_eq!(opp.fields.len(), 3);
        assert_eq!(opp.conditions.len(), 1);
        assert_eq!((opp.order_by.len(), opp.limit), (1, Some(5)));
        assert_eq!(s.returning[2].fields, [vec!["Id".to_owned()]]);

        let quoted = parse(
            r"FIND {acme} RETURNING Account(Id WHERE Name = 'O\'Brien, (Ltd) LIMIT' LIMIT 2), Lead LIMIT 9",
            now(),
        )
        .unwrap();
        assert_eq!(quoted.returning.len(), 2);
        assert_eq!(quoted.returning[0].limit, Some(2));
        assert_eq!(quoted.limit, Some(9));

        let plain = parse("find {acme}", now()).unwrap();
        assert_eq!((plain.scope, plain.returning.len()), (Scope::All, 0));
        let all = parse("FIND {x y} IN ALL FIELDS LIMIT 3", now()).unwrap();
        assert_eq!(all.limit, Some(3));
    }

    #[test]
    fn reserved_characters_must_be_escaped() {
        let escaped = parse(
            r#"FIND {O\'Brien \& Sons \(UK\) \- 50% \*\?\:\+\!\^\~\[\]\{\}\\\"\|} RETURNING Account"#,
            now(),
        );
        let escaped = escaped.unwrap();
        assert_eq!(escaped.words[0], "o'brien");
        assert_eq!(escaped.words[1], "&");
        assert!(escaped.words.contains(&"(uk)".to_owned()));
        for c in RESERVED.chars().filter(|c| *c != '}' && *c != '\\') {
            let q = format!("FIND {{acme{c}co}} RETURNING Account");
            let err = parse(&q, now()).unwrap_err();
            assert_eq!(err.code, "MALFORMED_SEARCH", "{q}");
            assert!(
                err.message.contains(&format!("'{c}'")),
                "{q}: {}",
                err.message
            );
        }
        for bad in [
            r"FIND {acme\co}",
            r"FIND {acme\}",
            "FIND {acme",
            "FIND acme",
            "SEARCH {acme}",
            "FIND {acme} RETURNING",
            "FIND {acme} RETURNING Opportunity(Id",
            "FIND {acme} RETURNING Opportunity(Nme Id)",
            "FIND {acme} RETURNING 9Opp",
            "FIND {acme} IN BODY FIELDS",
            "FIND {acme} IN ALL",
            "FIND {acme} LIMIT many",
            "FIND {acme} WITH SNIPPET",
        ] {
            assert_eq!(
                parse(bad, now()).unwrap_err().code,
                "MALFORMED_SEARCH",
                "{bad}"
            );
        }
        assert_eq!(parse("FIND {a}", now()).unwrap_err().code, "INVALID_SEARCH");
        assert_eq!(parse("FIND { }", now()).unwrap_err().code, "INVALID_SEARCH");
    }

    #[test]
    fn scopes_choose_fields() {
        assert!(Scope::All.covers("Description") && !Scope::All.covers("AccountId"));
        assert!(Scope::Name.covers("LastName") && !Scope::Name.covers("Subject"));
        assert!(Scope::Email.covers("Email") && Scope::Phone.covers("MobilePhone"));
        assert_eq!(Scope::parse("name"), Some(Scope::Name));
        assert_eq!(Scope::parse("SIDEBAR"), None);
    }
}
