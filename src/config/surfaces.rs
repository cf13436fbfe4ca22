//! What people reach sfrelay by in Slack: the slash command's name (`[slack] command`) and the
//! fields a record card (a `/sf` lookup, a search result, an unfurl) may show per object
//! (`[cards.<Object>] fields`). A card never shows a field the admin did not list here.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// The command when `[slack] command` is not set.
pub const DEFAULT_COMMAND: &str = "/sf";

/// `[cards.<Object>]` as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CardFile {
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The fields each object's card shows, in order. An object with no entry shows its name only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardsConfig {
    pub by_object: BTreeMap<String, Vec<String>>,
}

impl CardsConfig {
    /// The fields listed for `object` (none when it has no entry).
    pub fn fields(&self, object: &str) -> &[String] {
        self.by_object.get(object).map_or(&[], Vec::as_slice)
    }
}

/// A slash command's name: `/`, then 1–31 lower-case letters, digits, `-` or `_`.
pub fn command(text: &str) -> Result<String, ConfigError> {
    let name = text.strip_prefix('/').unwrap_or("");
    let ok = !name.is_empty()
        && name.len() <= 31
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(invalid(
            "slack.command",
            format!(
                "{text:?} is not a slash command like \"/sf\" (lower case, at most 32 characters)"
            ),
        ))
    }
}

/// Checks `[cards.*]`: object names and field paths (`Name`, `Account.Name`, `Amount__c`).
pub fn cards(file: BTreeMap<String, CardFile>) -> Result<CardsConfig, ConfigError> {
    let api_name = |s: &str| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut by_object = BTreeMap::new();
    for (object, card) in file {
        if !api_name(&object) {
            return Err(invalid(
                format!("cards.{object}"),
                "is not an object API name like Opportunity or Invoice__c",
            ));
        }
        for field in &card.fields {
            if !field.split('.').all(api_name) {
                return Err(invalid(
                    format!("cards.{object}.fields"),
                    format!("{field:?} is not a field like Amount or Account.Name"),
                ));
            }
        }
        by_object.insert(object, card.fields);
    }
    Ok(CardsConfig { by_object })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_a_slash_and_a_short_lower_case_name() {
        assert_eq!(command("/sf").unwrap(), "/sf");
        assert_eq!(command("/acme-crm").unwrap(), "/acme-crm");
        for bad in [
            "sf",
            "/",
            "/SF",
            "/s f",
            "/a234567890123456789012345678901x",
        ] {
            let e = command(bad).unwrap_err().to_string();
            assert!(e.contains("slack.command"), "{bad}: {e}");
        }
    }

    #[test]
    fn card_fields_are_checked_and_name_the_object() {
        let mut file = BTreeMap::new();
        file.insert(
            "Opportunity".to_string(),
            CardFile {
                fields: vec!["StageName".into(), "Account.Name".into()],
            },
        );
        let cards = cards(file.clone()).unwrap();
        assert_eq!(cards.fields("Opportunity"), ["StageName", "Account.Name"]);
        assert!(cards.fields("Case").is_empty());
        file.insert(
            "Case".into(),
            CardFile {
                fields: vec!["Subject; DELETE".into()],
            },
        );
        let e = super::cards(file).unwrap_err().to_string();
        assert!(e.contains("cards.Case.fields"), "{e}");
    }
}
