//! What a person typed after the slash command, and the answers that need nothing but the
//! text itself (help, and anything not understood), given in the acknowledgement.

use serde_json::{Value, json};

/// One request typed after the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Help,
    /// A record's link or Id: its card.
    Record(String),
    /// A SOSL search in the person's org.
    Find(String),
    /// The orgs, which is Preferred and Default, and whether the person is connected to each.
    Orgs,
    /// Set the Preferred org (by name or Id).
    Org(String),
    /// Connect (or disconnect) the person's own Salesforce account, in the org named or chosen.
    Connect(Option<String>),
    Disconnect(Option<String>),
    /// Follow a record (a DM when it changes); with nothing named, what the person follows.
    Follow(Option<String>),
    /// Stop following the record named (or `all`); with nothing named, the only one followed.
    Unfollow(Option<String>),
    /// Not understood: the help, saying so.
    Unknown(String),
}

impl Ask {
    pub fn parse(text: &str) -> Ask {
        let text = text.trim();
        let (word, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(w, r)| (w, r.trim()));
        let named = || (!rest.is_empty()).then(|| rest.to_owned());
        match word.to_ascii_lowercase().as_str() {
            "" | "help" | "?" => Ask::Help,
            "find" | "search" if !rest.is_empty() => Ask::Find(rest.to_owned()),
            "orgs" if rest.is_empty() => Ask::Orgs,
            "org" if !rest.is_empty() => Ask::Org(rest.to_owned()),
            "connect" => Ask::Connect(named()),
            "disconnect" => Ask::Disconnect(named()),
            "follow" => Ask::Follow(named()),
            "unfollow" => Ask::Unfollow(named()),
            _ if looks_like_record(word) && rest.is_empty() => Ask::Record(word.to_owned()),
            _ => Ask::Unknown(text.to_owned()),
        }
    }

    /// What the acknowledgement says while a queued ask is worked on.
    pub fn acknowledgement(&self) -> String {
        match self {
            Ask::Record(_) => "Looking that record up…".into(),
            Ask::Find(text) => {
                let shown: String = text.chars().take(80).collect();
                format!(
                    "Searching Salesforce for “{}”…",
                    crate::render::mrkdwn::escape(&shown)
                )
            }
            Ask::Orgs => "Looking at your orgs…".into(),
            Ask::Org(_) => "Setting your Preferred org…".into(),
            Ask::Connect(_) => "Preparing your connection link…".into(),
            Ask::Disconnect(_) => "Disconnecting…".into(),
            Ask::Follow(Some(_)) => "Following that record…".into(),
            Ask::Follow(None) => "Looking at what you follow…".into(),
            Ask::Unfollow(_) => "Unfollowing…".into(),
            Ask::Help | Ask::Unknown(_) => String::new(),
        }
    }
}

/// A URL, or something shaped like a 15- or 18-character record Id (checked later).
fn looks_like_record(word: &str) -> bool {
    let word = word.trim_start_matches('<').trim_end_matches('>');
    word.starts_with("https://")
        || ((word.len() == 15 || word.len() == 18)
            && word.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The answer given in the acknowledgement itself, for asks that need no lookup.
pub fn immediate(ask: &Ask, command: &str) -> Option<Value> {
    match ask {
        Ask::Help => Some(help(command, None)),
        Ask::Unknown(text) => Some(help(command, Some(text))),
        _ => None,
    }
}

/// An ephemeral reply of plain text (escaped: nothing in it can ping or link).
pub fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "text": crate::render::mrkdwn::escape(text)})
}

/// An ephemeral reply of mrkdwn, as one section (the caller has escaped what it repeats).
pub fn ephemeral_mrkdwn(text: String) -> Value {
    json!({"response_type": "ephemeral", "text": text,
           "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
}

/// The help, and what was not understood.
pub fn help(command: &str, not_understood: Option<&str>) -> Value {
    let mut lines = Vec::new();
    if let Some(text) = not_understood {
        let shown: String = text.chars().take(80).collect();
        lines.push(format!(
            "I did not understand “{}”.",
            crate::render::mrkdwn::escape(&shown)
        ));
    }
    lines.push(format!(
        "*{command}* looks Salesforce up from Slack:\n\
         • `{command} find <words>`: records matching them, as cards\n\
         • `{command} <record link or Id>`: the record's card\n\
         • `{command} orgs`: the orgs, your Preferred and the Default, and your connections\n\
         • `{command} org <name>`: make an org your Preferred one\n\
         • `{command} connect [org]` / `{command} disconnect [org]`: your own Salesforce account\n\
         • `{command} follow <record link or Id>`: a DM whenever that record changes; `{command} follow` lists what you follow\n\
         • `{command} unfollow <record link or Id | all>`: no more DMs about it\n\
         • `{command} help`: this help"
    ));
    ephemeral_mrkdwn(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_typed_is_read() {
        assert_eq!(Ask::parse(""), Ask::Help);
        assert_eq!(Ask::parse("  HELP "), Ask::Help);
        assert_eq!(
            Ask::parse("006000000000001AAA"),
            Ask::Record("006000000000001AAA".into())
        );
        assert_eq!(
            Ask::parse("<https://acme.lightning.force.com/lightning/r/Opportunity/006000000000001AAA/view>"),
            Ask::Record(
                "<https://acme.lightning.force.com/lightning/r/Opportunity/006000000000001AAA/view>"
                    .into()
            )
        );
        assert_eq!(Ask::parse("dance"), Ask::Unknown("dance".into()));
        assert_eq!(Ask::parse("find Acme {Q3}"), Ask::Find("Acme {Q3}".into()));
        assert_eq!(Ask::parse("find"), Ask::Unknown("find".into()));
        assert_eq!(Ask::parse("orgs"), Ask::Orgs);
        assert_eq!(
            Ask::parse("org Acme Sandbox"),
            Ask::Org("Acme Sandbox".into())
        );
        assert_eq!(Ask::parse("connect"), Ask::Connect(None));
        assert_eq!(Ask::parse("follow"), Ask::Follow(None));
        assert_eq!(
            Ask::parse("Follow 006000000000001AAA"),
            Ask::Follow(Some("006000000000001AAA".into()))
        );
        assert_eq!(
            Ask::parse("unfollow all"),
            Ask::Unfollow(Some("all".into()))
        );
        assert_eq!(
            Ask::parse("disconnect prod"),
            Ask::Disconnect(Some("prod".into()))
        );
    }

    #[test]
    fn help_escapes_what_it_repeats() {
        let reply = help("/sf", Some("<!channel> hi"));
        let text = reply["text"].as_str().unwrap();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(text.contains("/sf <record link or Id>"), "{text}");
    }
}
