//! SOSL searches (`GET /services/data/vXX.X/search?q=FIND {…} …`) built from what a person
//! typed: inside the braces every character SOSL reserves is escaped with a backslash, so the
//! text is searched for as written and can neither widen the search (`*`, `?`), end the braces
//! early (`}`) nor add operators (`AND`-like `&`, `|`, `!`). Object and field names are checked
//! as API names. A search runs as any [`Actor`]: as a person, Salesforce answers only what
//! their sharing lets them see.

use serde::Deserialize;

use super::acting::Actor;
use super::client::{Record, SalesforceClient, is_api_name};
use super::error::SalesforceError;
use crate::event::SalesforceId;

/// The characters SOSL reserves inside `FIND {…}`.
pub const RESERVED: &str = "?&|!{}[]()^~*:\\\"'+-";
/// The longest search text accepted (Salesforce refuses much longer queries anyway).
pub const MAX_TEXT_CHARS: usize = 1000;
/// The most records one search may ask for (Salesforce's own ceiling).
pub const MAX_LIMIT: usize = 2000;

/// `text` with each reserved character preceded by a backslash, and line breaks and other
/// control characters turned into spaces.
pub fn sosl_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if RESERVED.contains(c) {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// A SOSL search, built only by [`Sosl::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sosl(String);

impl Sosl {
    /// `FIND {text} IN ALL FIELDS RETURNING Object(f1, f2), … LIMIT n`, with `text` escaped.
    /// Text of fewer than two characters (Salesforce's `INVALID_SEARCH`), an empty `returning`
    /// or a bad name is refused here.
    pub fn find(
        text: &str,
        returning: &[(&str, &[&str])],
        limit: usize,
    ) -> Result<Sosl, SalesforceError> {
        let invalid = |m: String| SalesforceError::InvalidArgument(m);
        let text = text.trim();
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        if chars < 2 {
            return Err(invalid(
                "search text must be at least two characters".into(),
            ));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(invalid(format!(
                "search text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        if returning.is_empty() {
            return Err(invalid("a search must name the objects it returns".into()));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
        }
        let mut objects = Vec::with_capacity(returning.len());
        for (object, fields) in returning {
            if !is_api_name(object) {
                return Err(invalid(format!("{object:?} is not an object API name")));
            }
            if let Some(bad) = fields.iter().find(|f| !is_api_name(f)) {
                return Err(invalid(format!("{bad:?} is not a field API name")));
            }
            objects.push(if fields.is_empty() {
                (*object).to_owned()
            } else {
                format!("{object}({})", fields.join(", "))
            });
        }
        Ok(Sosl(format!(
            "FIND {{{}}} IN ALL FIELDS RETURNING {} LIMIT {limit}",
            sosl_escape(text),
            objects.join(", ")
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the search resource answers.
#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(rename = "searchRecords", default)]
    search_records: Vec<Record>,
}

impl SalesforceClient {
    /// Runs `sosl` as `actor` and answers the records found (each with its `attributes.type`).
    pub async fn search_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        sosl: &Sosl,
    ) -> Result<Vec<Record>, SalesforceError> {
        let state = self.org(org)?;
        let path = format!("/services/data/{}/search", self.api_version());
        let answer: SearchAnswer = self
            .get_json(state, actor, |instance| {
                let mut url = reqwest::Url::parse(&format!("{instance}{path}")).map_err(|e| {
                    SalesforceError::Decode {
                        org: org.clone(),
                        message: format!("cannot build a URL on {instance:?}: {e}"),
                    }
                })?;
                url.query_pairs_mut().append_pair("q", sosl.as_str());
                Ok(url)
            })
            .await?;
        Ok(answer.search_records)
    }

    /// [`SalesforceClient::search_as`] the integration user.
    pub async fn search(
        &self,
        org: &SalesforceId,
        sosl: &Sosl,
    ) -> Result<Vec<Record>, SalesforceError> {
        self.search_as(org, &Actor::Integration, sosl).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the braces back the way SOSL does: a backslash takes the next character as is.
    fn unescape(text: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().filter(|n| RESERVED.contains(*n))?),
                c if RESERVED.contains(c) => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    #[test]
    fn every_reserved_character_is_escaped() {
        for c in RESERVED.chars() {
            assert_eq!(sosl_escape(&c.to_string()), format!("\\{c}"), "{c:?}");
        }
        assert_eq!(sosl_escape("Acme"), "Acme");
        assert_eq!(sosl_escape("O'Brien & Co."), "O\\'Brien \\& Co.");
        assert_eq!(sosl_escape("a}b"), "a\\}b");
        assert_eq!(sosl_escape("\\"), "\\\\");
        assert_eq!(sosl_escape("line\nbreak\ttab"), "line break tab");
        assert_eq!(sosl_escape("Müller-Lüdenscheidt"), "Müller\\-Lüdenscheidt");
        let nasty = "x} RETURNING User(Username) LIMIT 1 {*?";
        let escaped = sosl_escape(nasty);
        assert_eq!(unescape(&escaped).as_deref(), Some(nasty));
    }

    #[test]
    fn escaping_round_trips_any_text() {
        use proptest::prelude::*;
        proptest!(|(text in "\\PC{0,40}")| {
            let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            prop_assert_eq!(unescape(&sosl_escape(&text)), Some(clean));
        });
    }

    #[test]
    fn searches_are_built_with_checked_names() {
        let sosl = Sosl::find(
            "  acme (emea) ",
            &[("Account", &["Id", "Name"]), ("Opportunity", &[])],
            20,
        )
        .unwrap();
        assert_eq!(
            sosl.as_str(),
            "FIND {acme \\(emea\\)} IN ALL FIELDS RETURNING Account(Id, Name), Opportunity LIMIT 20"
        );
        let account: &[(&str, &[&str])] = &[("Account", &["Id"])];
        for (text, returning, limit) in [
            ("a", account, 20),
            ("  ", account, 20),
            ("acme", &[][..], 20),
            ("acme", &[("Account/../x", &["Id"][..])][..], 20),
            ("acme", &[("Account", &["Name)"][..])][..], 20),
            ("acme", account, 0),
            ("acme", account, MAX_LIMIT + 1),
        ] {
            assert!(
                matches!(
                    Sosl::find(text, returning, limit),
                    Err(SalesforceError::InvalidArgument(_))
                ),
                "{text:?} {returning:?} {limit}"
            );
        }
        assert!(Sosl::find(&"x".repeat(MAX_TEXT_CHARS + 1), account, 1).is_err());
    }
}
