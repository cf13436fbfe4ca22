//! The keys of people's own Salesforce connections, their Preferred org, the Default org an admin
//! set, the single-use sign-in links (`crate::people`), and the records people follow. Slack team
//! and user Ids and org Ids are letters and digits only (checked before a key is made), so the `:`
//! between them cannot be confused.

use std::fmt::Display;
use std::time::Duration;

use super::{Key, prefix};

/// How much longer than a link's life its "used" mark is kept: replicas whose clocks differ
/// by up to this much still all see the link as used until every one of them sees it expired.
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(300);

impl Key {
    /// A person's connection to an org (tokens, username, live or expired), sealed with the
    /// encryption key. Until they disconnect: a refresh token may stay valid indefinitely.
    pub fn person_connection(team: &str, user: &str, org: impl Display) -> Key {
        Key::new(
            format!("{}{org}:{team}:{user}", prefix::PERSON_CONNECTION),
            None,
        )
    }

    /// The org a person chose to work in (its Id). Until they choose another; a few bytes.
    pub fn preferred_org(team: &str, user: &str) -> Key {
        Key::new(format!("{}{team}:{user}", prefix::PERSON_PREFERRED), None)
    }

    /// The Default org an admin set from the Home tab (its Id), over `[slack] default_org`.
    /// Until changed.
    pub fn default_org() -> Key {
        Key::new(prefix::DEFAULT_ORG.to_string(), None)
    }

    /// What a sign-in link was made for (Slack team, user, org) and its PKCE verifier, sealed,
    /// under the link's nonce. As long as the link works (`ttl`).
    pub fn oauth_state(nonce: &str, ttl: Duration) -> Key {
        Key::new(format!("{}{nonce}", prefix::OAUTH_STATE), Some(ttl))
    }

    /// The browser that opened a sign-in link first (a random id also set in its cookie), so
    /// the link cannot be opened in another browser. As long as the link works.
    pub fn oauth_started(nonce: &str, ttl: Duration) -> Key {
        Key::new(format!("{}{nonce}", prefix::OAUTH_STARTED), Some(ttl))
    }

    /// A sign-in link whose callback came: a second one is refused. Kept past the link's own
    /// life (`ttl`) by a margin for clock differences between replicas.
    pub fn oauth_used(nonce: &str, ttl: Duration) -> Key {
        Key::new(
            format!("{}{nonce}", prefix::OAUTH_USED),
            Some(ttl + CLOCK_SKEW_MARGIN),
        )
    }

    /// The people following a record (`/sf follow`), as `team:user` members. Until the last
    /// of them unfollows.
    pub fn followers(org: impl Display, record: impl Display) -> Key {
        Key::new(format!("{}{org}:{record}", prefix::FOLLOWERS), None)
    }

    /// The records a person follows, as `org:object:record` members; a bounded few.
    pub fn following(team: &str, user: &str) -> Key {
        Key::new(format!("{}{team}:{user}", prefix::FOLLOWING), None)
    }
}
