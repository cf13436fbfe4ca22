//! Active Salesforce Users by email, for acting as the person who clicked: one bound SOQL
//! query (`LIMIT 2`, so two matches are seen as ambiguous), cached in memory per process,
//! misses included, so a person without a Salesforce user costs one query per TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::client::SalesforceClient;
use super::error::SalesforceError;
use super::soql::Soql;
use crate::event::SalesforceId;

/// How long a found user is remembered.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(60 * 60);
/// How long "no such user" is remembered: shorter, so a newly created user is found soon.
pub const USER_MISS_TTL: Duration = Duration::from_secs(5 * 60);

const USER_BY_EMAIL: &str = "SELECT Id, Username, Name FROM User \
    WHERE Email = :email AND IsActive = true LIMIT 2";

/// An active Salesforce User.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceUser {
    pub id: SalesforceId,
    pub username: String,
    pub name: String,
}

/// Why no single user was found. Messages never hold the email (personal data in logs).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UserLookupError {
    #[error("no active Salesforce user has this email")]
    NotFound,
    #[error("more than one active Salesforce user has this email")]
    Ambiguous,
    #[error("not an email address")]
    InvalidEmail,
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
}

/// A found user, or `None` for a remembered miss.
type Entry = (Instant, Option<SalesforceUser>);

/// Active Users by email per org, cached with negative caching.
pub struct UserDirectory {
    client: Arc<SalesforceClient>,
    hit_ttl: Duration,
    miss_ttl: Duration,
    cache: Mutex<HashMap<(SalesforceId, String), Entry>>,
}

impl UserDirectory {
    pub fn new(client: Arc<SalesforceClient>) -> UserDirectory {
        UserDirectory::with_ttls(client, USER_CACHE_TTL, USER_MISS_TTL)
    }

    pub fn with_ttls(
        client: Arc<SalesforceClient>,
        hit_ttl: Duration,
        miss_ttl: Duration,
    ) -> UserDirectory {
        UserDirectory {
            client,
            hit_ttl,
            miss_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The one active User of `org` whose Email is `email` (compared without case, as
    /// Salesforce does).
    pub async fn by_email(
        &self,
        org: &SalesforceId,
        email: &str,
    ) -> Result<SalesforceUser, UserLookupError> {
        let email = email.trim();
        let plausible = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !plausible {
            return Err(UserLookupError::InvalidEmail);
        }
        let key = (org.clone(), email.to_lowercase());
        if let Some((at, cached)) = self.lock().get(&key) {
            let ttl = if cached.is_some() {
                self.hit_ttl
            } else {
                self.miss_ttl
            };
            if at.elapsed() < ttl {
                return cached.clone().ok_or(UserLookupError::NotFound);
            }
        }
        let mut params = Map::new();
        params.insert("email".into(), Value::String(email.to_owned()));
        let soql = Soql::bind(USER_BY_EMAIL, &params)
            .map_err(|e| SalesforceError::InvalidArgument(format!("user query: {e}")))?;
        let records = self.client.query(org, &soql).await?;
        let user = match records.as_slice() {
            [] => None,
            [record] => Some(user_from(org, record)?),
            _ => return Err(UserLookupError::Ambiguous),
        };
        self.lock().insert(key, (Instant::now(), user.clone()));
        user.ok_or(UserLookupError::NotFound)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(SalesforceId, String), Entry>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn user_from(
    org: &SalesforceId,
    record: &Map<String, Value>,
) -> Result<SalesforceUser, SalesforceError> {
    let text = |field: &str| {
        record
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let id = SalesforceId::parse(text("Id")).map_err(|e| SalesforceError::Decode {
        org: org.clone(),
        message: format!("User record without a valid Id: {e}"),
    })?;
    Ok(SalesforceUser {
        id,
        username: text("Username").to_owned(),
        name: text("Name").to_owned(),
    })
}
