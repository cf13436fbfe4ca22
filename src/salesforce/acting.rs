//! Who a request runs as: [`Actor::Integration`] (the org's configured user),
//! [`Actor::User`], a person acting as their own Salesforce user through the JWT bearer flow,
//! or [`Actor::Connection`], a person's own signed-in connection. A [`Actor::User`] token comes
//! from the JWT bearer flow with the org's connected app key and their username as `sub`; it is
//! kept per (org, username) in [`UserTokens`] until it is older than [`USER_TOKEN_TTL`] or
//! Salesforce refuses it (then renewed once, like the integration token), and the cache is
//! bounded ([`MAX_CACHED_USERS`]). Tokens and usernames are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::{AccessToken, JWT_BEARER_GRANT, TokenCache, assertion, request_token};
use super::error::SalesforceError;
use crate::config::Auth;
use crate::event::SalesforceId;

/// How long a person's access token is reused before a new one is asked for. Salesforce does
/// not say when a token expires (it lasts as long as the session timeout, often 2 hours of
/// inactivity); a 401 before then renews it anyway.
pub const USER_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);
/// The most people whose tokens are kept; the least recently used is dropped beyond.
pub const MAX_CACHED_USERS: usize = 1024;
/// Salesforce usernames are at most 80 characters.
const MAX_USERNAME_CHARS: usize = 80;

/// The Salesforce user a request runs as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The org's integration user (`[orgs.salesforce] username`, or the refresh token's user).
    Integration,
    /// A person's own Salesforce user, by `Username` (their sharing and permissions apply).
    User { username: String },
    /// A person's own connection (they signed in through the web-server flow): its tokens
    /// come from the [`ConnectionTokens`](super::connection::ConnectionTokens) the client was
    /// given, refreshed there.
    Connection(super::connection::Connection),
}

impl Actor {
    /// The person's username, `None` for the integration user.
    pub fn username(&self) -> Option<&str> {
        match self {
            Actor::Integration => None,
            Actor::User { username } => Some(username),
            Actor::Connection(c) => Some(&c.username),
        }
    }

    /// Whether the person acts as themselves (not the integration user on their behalf).
    pub fn is_person(&self) -> bool {
        !matches!(self, Actor::Integration)
    }
}

/// Whether the token endpoint refused a person because the connected app does not let them in
/// (not pre-authorised, or no access to the app), as opposed to a broken configuration.
pub fn is_not_authorised(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::Auth { error, .. }
        if error == "invalid_grant" || error == "invalid_app_access")
}

/// A person's token and when it was obtained.
struct Cached {
    token: Arc<AccessToken>,
    fetched: Instant,
}

/// Held while a person's token is fetched, so concurrent writes share one token request.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

struct Entry {
    slot: Slot,
    last_used: Instant,
}

/// Access tokens of people acting as themselves, per (org, username), bounded.
pub(crate) struct UserTokens {
    entries: Mutex<HashMap<(SalesforceId, String), Entry>>,
    capacity: usize,
    ttl: Duration,
}

impl UserTokens {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> UserTokens {
        UserTokens {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    /// The slot of (org, username), made if missing; the least recently used entry goes when
    /// the cache is full.
    fn slot(&self, org: &SalesforceId, username: &str) -> Slot {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (org.clone(), username.to_owned());
        if let Some(entry) = entries.get_mut(&key) {
            entry.last_used = Instant::now();
            return Arc::clone(&entry.slot);
        }
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        let slot = Slot::default();
        entries.insert(
            key,
            Entry {
                slot: Arc::clone(&slot),
                last_used: Instant::now(),
            },
        );
        slot
    }

    /// How many people's tokens are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The person's current token, fetching one if there is none or it is too old.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        org: &TokenCache,
        username: &str,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let slot = self.slot(&org.creds().org_id, username);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && c.fetched.elapsed() < self.ttl
        {
            return Ok(Arc::clone(&c.token));
        }
        self.fetch(http, org, username, &mut cached).await
    }

    /// A token to replace `stale`, which Salesforce refused; if another write already replaced
    /// it, that one.
    pub(crate) async fn renew(
        &self,
        http: &reqwest::Client,
        org: &TokenCache,
        username: &str,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let slot = self.slot(&org.creds().org_id, username);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && !Arc::ptr_eq(&c.token, stale)
            && c.fetched.elapsed() < self.ttl
        {
            return Ok(Arc::clone(&c.token));
        }
        self.fetch(http, org, username, &mut cached).await
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        org: &TokenCache,
        username: &str,
        cached: &mut Option<Cached>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        *cached = None;
        let result = request_user_token(http, org, username).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!(
            "sfrelay_salesforce_user_token_requests_total",
            "org" => org.label().to_owned(),
            "result" => label.to_string()
        )
        .increment(1);
        let token = Arc::new(result?);
        tracing::debug!(org = %org.creds().org_id, "obtained an access token for a person acting as themselves");
        *cached = Some(Cached {
            token: Arc::clone(&token),
            fetched: Instant::now(),
        });
        Ok(token)
    }
}

/// Checks a username before it goes into an assertion.
pub(crate) fn check_username(username: &str) -> Result<(), SalesforceError> {
    let plausible = !username.trim().is_empty()
        && username.chars().count() <= MAX_USERNAME_CHARS
        && !username
            .chars()
            .any(|c| c.is_control() || c.is_whitespace());
    if plausible {
        Ok(())
    } else {
        Err(SalesforceError::InvalidArgument(
            "not a Salesforce username".into(),
        ))
    }
}

/// One JWT bearer token request with the org's connected app key and `sub` = `username`.
async fn request_user_token(
    http: &reqwest::Client,
    org: &TokenCache,
    username: &str,
) -> Result<AccessToken, SalesforceError> {
    let creds = org.creds();
    let config = |message: &str| SalesforceError::Config {
        org: org.label().to_owned(),
        message: message.to_owned(),
    };
    let (Auth::JwtBearer { .. }, Some(key)) = (&creds.auth, org.signing_key()) else {
        return Err(config(
            "acting as a person needs the JWT bearer flow (username and private_key_file)",
        ));
    };
    let assertion = assertion(
        key,
        &creds.client_id,
        username,
        &creds.login_url,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| config(&format!("cannot sign the JWT assertion: {e}")))?;
    request_token(
        http,
        &creds.org_id,
        &creds.login_url,
        creds.auth.flow(),
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OrgCredentials, Secret};

    fn org(n: u8) -> SalesforceId {
        SalesforceId::parse(&format!("00D00000000000{n}")).unwrap()
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_used() {
        let tokens = UserTokens::new(2, USER_TOKEN_TTL);
        let ada = tokens.slot(&org(1), "ada@acme.example");
        tokens.slot(&org(1), "bob@acme.example");
        // Ada is used again, so Bob is the one to go.
        assert!(Arc::ptr_eq(&ada, &tokens.slot(&org(1), "ada@acme.example")));
        tokens.slot(&org(2), "ada@acme.example");
        assert_eq!(tokens.len(), 2);
        assert!(Arc::ptr_eq(&ada, &tokens.slot(&org(1), "ada@acme.example")));
        let entries = tokens.entries.lock().unwrap();
        assert!(!entries.contains_key(&(org(1), "bob@acme.example".to_owned())));
    }

    #[test]
    fn usernames_are_checked_and_refusals_recognised() {
        assert!(check_username("ada@acme.example").is_ok());
        for bad in ["", " ", "ada @acme.example", "a\nb", &"x".repeat(81)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
        let auth = |error: &str| SalesforceError::Auth {
            org: org(1),
            flow: "JWT bearer",
            status: 400,
            error: error.into(),
            description: "d".into(),
        };
        assert!(is_not_authorised(&auth("invalid_grant")));
        assert!(is_not_authorised(&auth("invalid_app_access")));
        assert!(!is_not_authorised(&auth("invalid_client_id")));
        assert_eq!(Actor::Integration.username(), None);
        let ada = Actor::User {
            username: "ada@acme.example".into(),
        };
        assert_eq!(ada.username(), Some("ada@acme.example"));
    }

    #[tokio::test]
    async fn a_refresh_token_org_cannot_act_as_a_person() {
        let cache = TokenCache::new(OrgCredentials {
            org_id: org(1),
            login_url: "https://login.salesforce.com".into(),
            client_id: "3MVG9".into(),
            auth: Auth::RefreshToken {
                refresh_token: Secret::new("5Aep".into()),
                client_secret: None,
            },
            budget: Default::default(),
        })
        .unwrap();
        let tokens = UserTokens::new(4, USER_TOKEN_TTL);
        let err = tokens
            .token(&reqwest::Client::new(), &cache, "ada@acme.example")
            .await
            .unwrap_err();
        assert!(matches!(err, SalesforceError::Config { .. }), "{err}");
    }
}
