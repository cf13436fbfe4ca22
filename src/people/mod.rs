//! People in Slack and the Salesforce orgs they work in: each person's own connection to an
//! org (OAuth 2.0 web-server flow with PKCE), the org they prefer, the Default org an admin
//! sets, and which org handles their command or action.
//!
//! # The API the Slack surfaces use
//!
//! [`People`] is built once (in `app.rs`) and shared, by HTTP handlers through `AppState` and
//! by job handlers through `Jobs`:
//!
//! - [`People::status`]: [`ConnectionStatus::NotConnected`], `Connected { username }` or
//!   `Expired` (revoked or refused at Salesforce: the person must connect again);
//! - [`People::preferred`] / [`People::set_preferred`]: the org the person chose;
//! - [`People::default_org`] / [`People::set_default_org`]: the Default org, as an admin set
//!   it from Home (kept in the store) over `[slack] default_org`; only [`People::is_admin`]s
//!   (`[slack] admins`) may set it;
//! - [`People::choose_org`]: the card's org, else Preferred, else Default, else the only org
//!   sfrelay can call, else [`OrgChoice::Ambiguous`] (ask) or [`OrgChoice::NoOrgs`];
//! - [`People::connect_link`]: a link to `GET /oauth/salesforce/start` carrying a fresh
//!   signed, single-use `state`. Put it only in an ephemeral reply to that person;
//! - [`People::disconnect`]: revokes the connection at Salesforce, then forgets it;
//! - [`People::actor`]: the [`Actor`] to hand to `SalesforceClient` for the person in an org:
//!   their connection when live, `None` without one, `Err(PeopleError::Expired)` when it needs
//!   reconnecting (tell them, with a fresh [`People::connect_link`]).
//!
//! Errors ([`PeopleError`]) read as sentences a person can be shown: no `public_url`, no
//! encryption key, an org without API access, not an admin.
//!
//! # What a sign-in link guarantees
//!
//! Salesforce's starter kit omits `state`, so anyone could bind their Salesforce login to
//! another person's Slack Id. Here:
//!
//! - the `state` is signed (HMAC-SHA256, key derived from `SFRELAY_ENCRYPTION_KEY`) and binds
//!   the Slack team, the Slack user and the org; a changed or home-made one is refused;
//! - it expires ten minutes after it was made (`[people] state_ttl_secs`);
//! - it is handed out only in an ephemeral reply to the person it names, after a request
//!   Slack signed, so only that person's Slack client sees it;
//! - the PKCE verifier stays in the store under the state's nonce; only its S256 challenge
//!   travels through the browser, so an intercepted code cannot be exchanged by anyone else;
//! - the first browser that opens the start link is remembered (a random id in the store and
//!   in an `HttpOnly` cookie); the link does not open in another browser, and the callback is
//!   accepted only from the browser that started it, carrying the state issued for that start.
//!   A callback whose state names another Slack user than the sign-in this browser started
//!   (someone sending the person a callback link of their own) is refused;
//! - the callback works once (a claim in the store), and the org the person signed in to must
//!   be the org the link was made for.
//!
//! What it cannot guarantee: that the person who opens the start link first is the one it
//! was made for, if they hand the link to someone else. The link then fails for them (it is
//! already opened), and Home shows which Salesforce user the connection signed in as.
//!
//! # Tokens
//!
//! Access and refresh tokens are kept in the store sealed with `SFRELAY_ENCRYPTION_KEY`
//! (ChaCha20-Poly1305, bound to the team, user and org), never in clear and never logged. A
//! 401 from Salesforce refreshes once with the refresh token; a refused refresh
//! (`invalid_grant`) marks the connection expired, so the person is prompted to reconnect.

mod choose;
mod oauth;
mod page;
mod pkce;
mod state;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

pub use choose::{OrgChoice, choose};
pub use oauth::{get_callback, get_start};

use crate::config::{Config, WebApp};
use crate::crypto::Cipher;
use crate::event::SalesforceId;
use crate::keys::Key;
use crate::salesforce::connection::Connection;
use crate::salesforce::{Actor, SalesforceError, SalesforceUser};
use crate::store::{Store, StoreError};
use state::{StateKey, is_plain};
use tokens::Stored;

/// A person in Slack: the workspace (team) Id and their user Id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Person {
    pub team: String,
    pub user: String,
}

impl Person {
    pub fn new(team: impl Into<String>, user: impl Into<String>) -> Person {
        Person {
            team: team.into(),
            user: user.into(),
        }
    }
}

/// Where a person stands with one org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    NotConnected,
    Connected {
        username: String,
    },
    /// Revoked, or refused at Salesforce: they must connect again.
    Expired,
}

/// Why a people operation could not be done; each message can be shown to the person.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("sfrelay cannot reach its state store right now; try again in a moment ({0})")]
    Store(#[from] StoreError),
    #[error("org {0} is not one sfrelay serves")]
    UnknownOrg(SalesforceId),
    #[error(
        "org {0} has no Salesforce API access configured in sfrelay, so nobody can connect to it or work in it"
    )]
    NoApiAccess(SalesforceId),
    #[error("only sfrelay's admins may set the Default org")]
    NotAdmin,
    #[error(
        "connect links cannot be made: sfrelay has no public_url configured (the address Salesforce sends you back to). Ask your admin to set it"
    )]
    NoPublicUrl,
    #[error(
        "connect links cannot be made: SFRELAY_ENCRYPTION_KEY is not set, so sfrelay could not keep your tokens safe. Ask your admin to set it"
    )]
    NoEncryptionKey,
    #[error("your Salesforce connection has expired or was revoked; connect again")]
    Expired,
    #[error("not a Slack team and user Id")]
    InvalidPerson,
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
}

/// How many refreshes may run at once (one per connection: the stripe a key hashes to).
const REFRESH_STRIPES: usize = 16;
/// Timeout of each call to Salesforce's token, revoke and identity endpoints.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// One configured org as people see it.
#[derive(Debug, Clone)]
struct Org {
    id: SalesforceId,
    name: String,
    /// The connected app people sign in to; `None` without API access.
    app: Option<WebApp>,
}

/// People's connections and choices. Build once with [`People::new`]; share as an `Arc`.
pub struct People {
    store: Arc<dyn Store>,
    /// Seals tokens and verifiers; `None` (no `SFRELAY_ENCRYPTION_KEY`): no connections.
    cipher: Option<Cipher>,
    state_key: Option<StateKey>,
    public_url: Option<String>,
    state_ttl: Duration,
    admins: Vec<String>,
    configured_default: Option<SalesforceId>,
    orgs: Vec<Org>,
    http: reqwest::Client,
    api_version: String,
    /// Held while a connection is refreshed, so one replica refreshes it once at a time.
    refreshing: [tokio::sync::Mutex<()>; REFRESH_STRIPES],
}

impl std::fmt::Debug for People {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("People")
            .field("public_url", &self.public_url)
            .field("connections", &self.cipher.is_some())
            .finish_non_exhaustive()
    }
}

impl People {
    /// People for `config`, keeping their state in `store`.
    pub fn new(config: &Config, store: Arc<dyn Store>) -> Result<People, PeopleError> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                PeopleError::Salesforce(SalesforceError::Config {
                    org: "-".into(),
                    message: format!("cannot build the HTTP client: {e}"),
                })
            })?;
        let people = &config.people;
        let orgs = config
            .orgs
            .iter()
            .map(|o| Org {
                id: o.id.clone(),
                name: o.name.clone(),
                app: people.apps.iter().find(|a| a.org == o.id).cloned(),
            })
            .collect();
        Ok(People {
            store,
            cipher: config.encryption_key.as_ref().map(Cipher::new),
            state_key: config.encryption_key.as_ref().map(StateKey::derive),
            public_url: people.public_url.clone(),
            state_ttl: people.state_ttl,
            admins: people.admins.clone(),
            configured_default: people.default_org.clone(),
            orgs,
            http,
            api_version: crate::salesforce::DEFAULT_API_VERSION.to_owned(),
            refreshing: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
        })
    }

    /// Whether connect links can be made at all (a `public_url` and an encryption key).
    pub fn connections_enabled(&self) -> bool {
        self.public_url.is_some() && self.cipher.is_some()
    }

    /// An org's name as configured (its Id when it has none).
    pub fn org_name(&self, org: &SalesforceId) -> Option<&str> {
        self.org(org).map(|o| o.name.as_str())
    }

    pub async fn status(
        &self,
        who: &Person,
        org: &SalesforceId,
    ) -> Result<ConnectionStatus, PeopleError> {
        check(who)?;
        Ok(match self.load(who, org).await? {
            Loaded::None => ConnectionStatus::NotConnected,
            Loaded::Live(stored) => ConnectionStatus::Connected {
                username: stored.username,
            },
            Loaded::Expired | Loaded::Unreadable => ConnectionStatus::Expired,
        })
    }

    /// The org the person chose, while it is still one sfrelay can call.
    pub async fn preferred(&self, who: &Person) -> Result<Option<SalesforceId>, PeopleError> {
        check(who)?;
        let key = Key::preferred_org(&who.team, &who.user);
        Ok(self
            .store
            .get(key.as_str())
            .await?
            .and_then(|id| self.callable(&id)))
    }

    pub async fn set_preferred(&self, who: &Person, org: &SalesforceId) -> Result<(), PeopleError> {
        check(who)?;
        self.require_api(org)?;
        let key = Key::preferred_org(&who.team, &who.user);
        self.store
            .set(key.as_str(), org.as_str(), key.ttl())
            .await?;
        Ok(())
    }

    /// The Default org: the one an admin set from Home, else `[slack] default_org`.
    pub async fn default_org(&self) -> Result<Option<SalesforceId>, PeopleError> {
        let key = Key::default_org();
        let stored = self.store.get(key.as_str()).await?;
        let set = stored.and_then(|id| {
            let id = SalesforceId::parse(&id).ok()?;
            self.org(&id).map(|o| o.id.clone())
        });
        Ok(set.or_else(|| self.configured_default.clone()))
    }

    /// Sets the Default org for everyone; admins only.
    pub async fn set_default_org(
        &self,
        by: &Person,
        org: &SalesforceId,
    ) -> Result<(), PeopleError> {
        check(by)?;
        if !self.is_admin(by) {
            return Err(PeopleError::NotAdmin);
        }
        let org = self
            .org(org)
            .ok_or_else(|| PeopleError::UnknownOrg(org.clone()))?;
        let key = Key::default_org();
        self.store
            .set(key.as_str(), org.id.as_str(), key.ttl())
            .await?;
        tracing::info!(org = %org.id, by = %by.user, "Default org set");
        Ok(())
    }

    /// Whether the person is one of `[slack] admins`.
    pub fn is_admin(&self, who: &Person) -> bool {
        self.admins.iter().any(|a| a == &who.user)
    }

    /// Card org first, else Preferred, else Default, else the only org; ambiguous otherwise.
    /// The orgs counted are those sfrelay can call (with API access), in configuration order.
    pub async fn choose_org(
        &self,
        who: &Person,
        card_org: Option<&SalesforceId>,
    ) -> Result<OrgChoice, PeopleError> {
        if let Some(org) = card_org {
            return Ok(OrgChoice::One(org.clone()));
        }
        let preferred = self.preferred(who).await?;
        let default = match preferred {
            Some(_) => None,
            None => self.default_org().await?,
        };
        let callable: Vec<SalesforceId> = self
            .orgs
            .iter()
            .filter(|o| o.app.is_some())
            .map(|o| o.id.clone())
            .collect();
        Ok(choose(None, preferred, default, &callable))
    }

    /// A link to `/oauth/salesforce/start` with a fresh signed single-use state (only ever put
    /// in an ephemeral reply to that person).
    pub async fn connect_link(
        &self,
        who: &Person,
        org: &SalesforceId,
    ) -> Result<String, PeopleError> {
        check(who)?;
        self.require_api(org)?;
        oauth::link(self, who, org).await
    }

    /// Revokes the person's connection to `org` at Salesforce, then forgets it; `false` when
    /// there was none. When Salesforce cannot be reached it is kept (and the error answered),
    /// so that it can be revoked on a later try.
    pub async fn disconnect(&self, who: &Person, org: &SalesforceId) -> Result<bool, PeopleError> {
        check(who)?;
        let key = Key::person_connection(&who.team, &who.user, org);
        match self.load(who, org).await? {
            Loaded::None => return Ok(false),
            Loaded::Live(stored) => {
                if let Some(app) = self.org(org).and_then(|o| o.app.as_ref()) {
                    tokens::revoke(&self.http, app, &stored).await?;
                }
            }
            Loaded::Expired | Loaded::Unreadable => {}
        }
        self.store.delete(key.as_str()).await?;
        tracing::info!(%org, user = %who.user, "a person disconnected their Salesforce account");
        Ok(true)
    }

    /// The Actor to hand to SalesforceClient for this person in this org: their connection
    /// when live, `None` when not connected, Err(PeopleError::Expired) when it needs
    /// reconnecting.
    pub async fn actor(
        &self,
        who: &Person,
        org: &SalesforceId,
    ) -> Result<Option<Actor>, PeopleError> {
        Ok(self.acting(who, org).await?.map(|(actor, _)| actor))
    }

    /// [`People::actor`] with the Salesforce user the connection signed in as (a Task's or a
    /// Case's new owner).
    pub async fn acting(
        &self,
        who: &Person,
        org: &SalesforceId,
    ) -> Result<Option<(Actor, SalesforceUser)>, PeopleError> {
        check(who)?;
        match self.load(who, org).await? {
            Loaded::None => Ok(None),
            Loaded::Expired | Loaded::Unreadable => Err(PeopleError::Expired),
            Loaded::Live(stored) => {
                let user = SalesforceUser {
                    id: SalesforceId::parse(&stored.user_id).map_err(|_| PeopleError::Expired)?,
                    username: stored.username.clone(),
                    name: stored.name.clone(),
                };
                let actor = Actor::Connection(Connection {
                    team: who.team.clone(),
                    user: who.user.clone(),
                    username: stored.username,
                });
                Ok(Some((actor, user)))
            }
        }
    }

    fn org(&self, org: &SalesforceId) -> Option<&Org> {
        self.orgs.iter().find(|o| &o.id == org)
    }

    /// The org with Id `id`, if sfrelay can call it.
    fn callable(&self, id: &str) -> Option<SalesforceId> {
        let id = SalesforceId::parse(id).ok()?;
        self.org(&id)
            .filter(|o| o.app.is_some())
            .map(|o| o.id.clone())
    }

    /// The org's connected app, or why there is none.
    fn require_api(&self, org: &SalesforceId) -> Result<&WebApp, PeopleError> {
        let known = self
            .org(org)
            .ok_or_else(|| PeopleError::UnknownOrg(org.clone()))?;
        known
            .app
            .as_ref()
            .ok_or_else(|| PeopleError::NoApiAccess(org.clone()))
    }

    /// The stripe lock of one connection's refreshes.
    fn refresh_lock(&self, key: &Key) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.as_str().hash(&mut hasher);
        &self.refreshing[(hasher.finish() as usize) % REFRESH_STRIPES]
    }
}

/// A stored connection, as read.
enum Loaded {
    None,
    Live(Stored),
    Expired,
    /// Sealed under another key, or damaged: it can only be replaced.
    Unreadable,
}

/// Refuses Ids that could not be Slack's (and could bend a store key).
fn check(who: &Person) -> Result<(), PeopleError> {
    if is_plain(&who.team, 32) && is_plain(&who.user, 32) {
        Ok(())
    } else {
        Err(PeopleError::InvalidPerson)
    }
}

#[cfg(test)]
mod tests;
