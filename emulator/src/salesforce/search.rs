//! `GET /services/data/vXX.X/search?q=<SOSL>` and `…/parameterizedSearch?q=…`: full-text
//! search over the emulated org's records ([`super::sosl`] says what is understood), as the
//! token's user sees them, each journaled with who searched.

use std::collections::VecDeque;

use chrono::Utc;
use serde_json::{Value, json};

use super::emulator::{Emulator, Reply, now_rfc3339};
use super::soql::{self, Query};
use super::sosl::{self, MAX_RESULTS, Scope, Search, SearchError};
use super::store::Record;

/// Searches kept for `GET /_emulator/searches`.
const MAX_SEARCHES: usize = 10_000;

/// Every search made, with who made it.
#[derive(Debug, Default)]
pub struct Searches {
    journal: VecDeque<Value>,
}

impl Searches {
    pub fn to_json(&self) -> Value {
        Value::Array(self.journal.iter().cloned().collect())
    }
}

fn refused(err: &SearchError) -> Reply {
    Reply::api_error(400, err.code, &err.message)
}

/// Whether every word appears in one of the record's string fields of `scope`.
fn text_match(record: &Record, words: &[String], scope: Scope) -> bool {
    let texts: Vec<String> = record
        .iter()
        .filter(|(field, _)| field.as_str() != "attributes" && scope.covers(field))
        .filter_map(|(_, value)| value.as_str().map(str::to_lowercase))
        .collect();
    words
        .iter()
        .all(|word| texts.iter().any(|text| text.contains(word.as_str())))
}

impl Emulator {
    /// `GET /services/data/<version>/search?q=…`.
    pub fn search(&mut self, version: &str, q: Option<&str>) -> Reply {
        let q = q.unwrap_or_default();
        let reply = match sosl::parse(q, Utc::now()) {
            Ok(search) => self.run_search(&search, version),
            Err(err) => refused(&err),
        };
        self.journal_search("sosl", q, &reply);
        reply
    }

    /// `GET /services/data/<version>/parameterizedSearch?q=…&sobject=…&<Object>.fields=…`:
    /// `in`, `overallLimit`, `defaultLimit`, `<Object>.limit` and `<Object>.where` as well.
    pub fn parameterized_search(&mut self, version: &str, pairs: &[(String, String)]) -> Reply {
        let q = pairs
            .iter()
            .find(|(k, _)| k == "q")
            .map_or("", |(_, v)| v.as_str());
        let reply = match parameterized(pairs) {
            Ok(search) => self.run_search(&search, version),
            Err(err) => refused(&err),
        };
        self.journal_search("parameterized", q, &reply);
        reply
    }

    fn run_search(&self, search: &Search, version: &str) -> Reply {
        let every_object: Vec<Query>;
        let targets = if search.returning.is_empty() {
            every_object = self
                .store
                .counts()
                .keys()
                .map(|object| Query {
                    fields: vec![vec!["Id".to_owned()]],
                    all_fields: false,
                    object: object.clone(),
                    conditions: Vec::new(),
                    order_by: Vec::new(),
                    limit: None,
                })
                .collect();
            &every_object
        } else {
            &search.returning
        };
        let mut found = Vec::new();
        for query in targets {
            if self.hidden_object(&query.object) {
                continue;
            }
            let matches = |record: &Record| text_match(record, &search.words, search.scope);
            match self.select(query, version, &matches) {
                Ok(records) => found.extend(records),
                Err(reply) => return reply,
            }
        }
        found.truncate(search.limit.unwrap_or(MAX_RESULTS).min(MAX_RESULTS));
        Reply::ok(json!({"searchRecords": found}))
    }

    fn journal_search(&mut self, kind: &str, q: &str, reply: &Reply) {
        let records = reply.body["searchRecords"].as_array();
        let mut objects: Vec<&str> = records
            .into_iter()
            .flatten()
            .filter_map(|r| r["attributes"]["type"].as_str())
            .collect();
        objects.dedup();
        let entry = json!({
            "at": now_rfc3339(),
            "kind": kind,
            "q": q,
            "user_id": self.acting.caller.user_id,
            "username": self.acting.caller.username,
            "status": reply.status,
            "error": (reply.status >= 400).then(|| reply.body[0]["errorCode"].clone()),
            "returned": records.map_or(0, Vec::len),
            "objects": objects,
        });
        let journal = &mut self.searches.journal;
        if journal.len() >= MAX_SEARCHES {
            journal.pop_front();
        }
        journal.push_back(entry);
    }
}

/// A parameterized search's query parameters as a [`Search`].
fn parameterized(pairs: &[(String, String)]) -> Result<Search, SearchError> {
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    };
    let malformed = |message: String| SearchError {
        code: "MALFORMED_SEARCH",
        message,
    };
    let number = |key: &str| -> Result<Option<usize>, SearchError> {
        get(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| malformed(format!("{key} must be a number")))
            })
            .transpose()
    };
    let words = sosl::words(get("q").unwrap_or_default())?;
    let scope = match get("in") {
        None => Scope::All,
        Some(group) => Scope::parse(group)
            .ok_or_else(|| malformed(format!("unknown search group {group:?}")))?,
    };
    let default_limit = number("defaultLimit")?;
    let mut returning = Vec::new();
    for (_, object) in pairs.iter().filter(|(k, _)| k == "sobject") {
        let object = object.trim();
        let fields = get(&format!("{object}.fields")).unwrap_or("Id");
        let mut soql = format!("SELECT {fields} FROM {object}");
        if let Some(condition) = get(&format!("{object}.where")) {
            soql.push_str(&format!(" WHERE {condition}"));
        }
        if let Some(n) = number(&format!("{object}.limit"))?.or(default_limit) {
            soql.push_str(&format!(" LIMIT {n}"));
        }
        returning
            .push(soql::parse(&soql, Utc::now()).map_err(|m| malformed(format!("{object}: {m}")))?);
    }
    Ok(Search {
        words,
        scope,
        returning,
        limit: number("overallLimit")?,
    })
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
