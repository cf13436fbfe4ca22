//! A person's connection as kept in the store, sealed with `SFRELAY_ENCRYPTION_KEY` and bound
//! to the team, user and org it belongs to, so a value copied under another person's key does
//! not open; and the calls to Salesforce's OAuth endpoints it needs: the code exchange, the
//! refresh on a 401 (once; `invalid_grant` marks it expired), revocation on disconnect, and
//! the signed-in user's name. Tokens are never logged.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Loaded, People, PeopleError, Person};
use crate::config::{Secret, WebApp};
use crate::event::SalesforceId;
use crate::keys::Key;
use crate::salesforce::SalesforceError;
use crate::salesforce::auth::{AccessToken, request_token};
use crate::salesforce::connection::{Connection, ConnectionTokens};

/// One connection, as sealed in the store.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    pub username: String,
    pub user_id: String,
    pub name: String,
    pub instance_url: String,
    /// Dropped once the connection is expired: they no longer work.
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expired: bool,
    pub connected_ms: i64,
}

/// What a sealed connection is bound to.
fn context(who: &Person, org: &SalesforceId) -> String {
    format!("person-connection:{org}:{}:{}", who.team, who.user)
}

impl People {
    /// The person's connection to `org`, opened.
    pub(super) async fn load(
        &self,
        who: &Person,
        org: &SalesforceId,
    ) -> Result<Loaded, PeopleError> {
        let key = Key::person_connection(&who.team, &who.user, org);
        let Some(sealed) = self.store.get(key.as_str()).await? else {
            return Ok(Loaded::None);
        };
        let Some(cipher) = &self.cipher else {
            tracing::warn!(%org, "a stored connection cannot be opened: SFRELAY_ENCRYPTION_KEY is not set");
            return Ok(Loaded::Unreadable);
        };
        let opened = cipher
            .open(&sealed, &context(who, org))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok());
        Ok(match opened {
            None => {
                tracing::warn!(%org, key_id = cipher.key_id(), "a stored connection does not open (SFRELAY_ENCRYPTION_KEY changed?); the person must connect again");
                Loaded::Unreadable
            }
            Some(stored) if stored.expired || stored.access_token.is_none() => Loaded::Expired,
            Some(stored) => Loaded::Live(stored),
        })
    }

    /// Seals and stores the connection.
    pub(super) async fn save(
        &self,
        who: &Person,
        org: &SalesforceId,
        stored: &Stored,
    ) -> Result<(), PeopleError> {
        let cipher = self.cipher.as_ref().ok_or(PeopleError::NoEncryptionKey)?;
        let json = serde_json::to_vec(stored).map_err(|e| {
            PeopleError::Salesforce(SalesforceError::Decode {
                org: org.clone(),
                message: format!("cannot write the connection: {e}"),
            })
        })?;
        let key = Key::person_connection(&who.team, &who.user, org);
        let sealed = cipher.seal(&json, &context(who, org));
        self.store.set(key.as_str(), &sealed, key.ttl()).await?;
        Ok(())
    }

    /// Marks the connection expired (its tokens dropped), so the person is asked to
    /// reconnect instead of failing in silence.
    async fn mark_expired(&self, who: &Person, org: &SalesforceId, mut stored: Stored) {
        stored.expired = true;
        stored.access_token = None;
        stored.refresh_token = None;
        metrics::counter!("sfrelay_people_connections_expired_total").increment(1);
        tracing::info!(%org, user = %who.user, "a person's Salesforce connection was refused at refresh; marked expired");
        if let Err(e) = self.save(who, org, &stored).await {
            tracing::warn!(%org, error = %e, "cannot mark the connection expired");
        }
    }

    /// One refresh of the connection after Salesforce refused `stale`.
    async fn refresh_connection(
        &self,
        org: &SalesforceId,
        who: &Person,
        stale: &str,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let expired = || SalesforceError::ConnectionExpired { org: org.clone() };
        let app = self
            .org(org)
            .and_then(|o| o.app.clone())
            .ok_or_else(expired)?;
        let key = Key::person_connection(&who.team, &who.user, org);
        let _turn = self.refresh_lock(&key).lock().await;
        let mut stored = self.live(who, org).await?;
        if stored.access_token.as_deref() != Some(stale) {
            // Another request (on this replica or another) refreshed it meanwhile.
            return Ok(token_of(&stored));
        }
        let Some(refresh_token) = stored.refresh_token.clone() else {
            self.mark_expired(who, org, stored).await;
            return Err(expired());
        };
        let answer = refresh(&self.http, &app, &refresh_token).await;
        let label = match &answer {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!("sfrelay_people_token_refreshes_total", "result" => label.to_owned())
            .increment(1);
        match answer {
            Ok(token) => {
                stored.access_token = Some(token.token.expose().clone());
                stored.instance_url = token.instance_url.clone();
                if let Some(rotated) = &token.refresh_token {
                    stored.refresh_token = Some(rotated.expose().clone());
                }
                self.save(who, org, &stored)
                    .await
                    .map_err(|e| store_trouble(org, e))?;
                Ok(Arc::new(token))
            }
            Err(e) if refused(&e) => {
                // A replica that rotated the refresh token meanwhile made this one stale.
                let now = self.live(who, org).await?;
                if now.refresh_token.as_deref() != Some(refresh_token.as_str()) {
                    return Ok(token_of(&now));
                }
                self.mark_expired(who, org, stored).await;
                Err(expired())
            }
            Err(e) => Err(e),
        }
    }

    /// The live connection, or `ConnectionExpired`.
    async fn live(&self, who: &Person, org: &SalesforceId) -> Result<Stored, SalesforceError> {
        match self.load(who, org).await {
            Ok(Loaded::Live(stored)) => Ok(stored),
            Ok(_) => Err(SalesforceError::ConnectionExpired { org: org.clone() }),
            Err(e) => Err(store_trouble(org, e)),
        }
    }
}

/// A store failure in the client's terms: retried like a network failure.
fn store_trouble(org: &SalesforceId, e: PeopleError) -> SalesforceError {
    SalesforceError::Transport {
        org: org.clone(),
        message: e.to_string(),
    }
}

/// Whether the token endpoint refused the refresh token itself (revoked, expired, the user
/// gone): the person has to connect again.
fn refused(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::Auth { error, .. } if error == "invalid_grant")
}

fn token_of(stored: &Stored) -> Arc<AccessToken> {
    Arc::new(AccessToken {
        token: Secret::new(stored.access_token.clone().unwrap_or_default()),
        instance_url: stored.instance_url.clone(),
        id: None,
        token_type: Some("Bearer".into()),
        scope: None,
        refresh_token: None,
    })
}

#[async_trait]
impl ConnectionTokens for People {
    async fn access_token(
        &self,
        org: &SalesforceId,
        who: &Connection,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let person = Person::new(&who.team, &who.user);
        Ok(token_of(&self.live(&person, org).await?))
    }

    async fn refresh(
        &self,
        org: &SalesforceId,
        who: &Connection,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let person = Person::new(&who.team, &who.user);
        self.refresh_connection(org, &person, stale.token.expose())
            .await
    }
}

/// The client's own credentials in a token request.
fn client_pairs(app: &WebApp) -> Vec<(&'static str, String)> {
    let mut pairs = vec![("client_id", app.client_id.clone())];
    if let Some(secret) = &app.client_secret {
        pairs.push(("client_secret", secret.expose().clone()));
    }
    pairs
}

async fn token_request(
    http: &reqwest::Client,
    app: &WebApp,
    flow: &'static str,
    mut pairs: Vec<(&'static str, String)>,
) -> Result<AccessToken, SalesforceError> {
    pairs.extend(client_pairs(app));
    let form: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    request_token(http, &app.org, &app.login_url, flow, &form).await
}

/// The authorization code exchanged for tokens, with the PKCE verifier.
pub(super) async fn exchange(
    http: &reqwest::Client,
    app: &WebApp,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<AccessToken, SalesforceError> {
    let pairs = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.to_owned()),
    ];
    token_request(http, app, "web server", pairs).await
}

async fn refresh(
    http: &reqwest::Client,
    app: &WebApp,
    refresh_token: &str,
) -> Result<AccessToken, SalesforceError> {
    let pairs = vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
    ];
    token_request(http, app, "connection refresh", pairs).await
}

/// Revokes the connection at Salesforce: its refresh token (which ends its access tokens
/// too), else its access token. A token Salesforce no longer knows counts as revoked.
pub(super) async fn revoke(
    http: &reqwest::Client,
    app: &WebApp,
    stored: &Stored,
) -> Result<(), SalesforceError> {
    let Some(token) = stored
        .refresh_token
        .as_deref()
        .or(stored.access_token.as_deref())
    else {
        return Ok(());
    };
    revoke_token(http, app, token).await
}

pub(super) async fn revoke_token(
    http: &reqwest::Client,
    app: &WebApp,
    token: &str,
) -> Result<(), SalesforceError> {
    let org = &app.org;
    let response = http
        .post(format!("{}/services/oauth2/revoke", app.login_url))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(crate::salesforce::auth::form_body(&[("token", token)]))
        .send()
        .await
        .map_err(|e| crate::salesforce::error::transport_error(org, e))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let unknown = status == 400
        && serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .is_some_and(|v| v["error"] == "invalid_token");
    metrics::counter!("sfrelay_people_revocations_total", "status" => status.to_string())
        .increment(1);
    if (200..300).contains(&status) || unknown {
        Ok(())
    } else {
        Err(SalesforceError::Http {
            org: org.clone(),
            status,
        })
    }
}

/// The org and user Ids in a token's identity URL (`…/id/<org Id>/<user Id>`).
pub(super) fn identity(id_url: &str) -> Option<(SalesforceId, SalesforceId)> {
    let mut parts = id_url.trim_end_matches('/').rsplit('/');
    let user = SalesforceId::parse(parts.next()?).ok()?;
    let org = SalesforceId::parse(parts.next()?).ok()?;
    (parts.next()? == "id").then_some((org, user))
}

/// The signed-in user's `Username` and `Name`, read with their own new token.
pub(super) async fn whoami(
    http: &reqwest::Client,
    api_version: &str,
    org: &SalesforceId,
    token: &AccessToken,
    user: &SalesforceId,
) -> Result<(String, String), SalesforceError> {
    let url = format!(
        "{}/services/data/{api_version}/sobjects/User/{user}?fields=Username,Name",
        token.instance_url
    );
    let response = http
        .get(url)
        .bearer_auth(token.token.expose())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| crate::salesforce::error::transport_error(org, e))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| crate::salesforce::error::transport_error(org, e))?;
    if !(200..300).contains(&status) {
        return Err(crate::salesforce::error::api_error(org, status, &bytes));
    }
    #[derive(Deserialize)]
    struct User {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Name", default)]
        name: Option<String>,
    }
    let user: User = serde_json::from_slice(&bytes).map_err(|e| SalesforceError::Decode {
        org: org.clone(),
        message: format!("the signed-in user: {e}"),
    })?;
    let name = user.name.unwrap_or_else(|| user.username.clone());
    Ok((user.username, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_urls_name_the_org_and_user() {
        let (org, user) =
            identity("https://login.salesforce.com/id/00D5g000004ABCdEAO/005000000000011AAA")
                .unwrap();
        assert_eq!(org.as_str(), "00D5g000004ABCdEAO");
        assert_eq!(user.as_str(), "005000000000011AAA");
        assert!(
            identity("https://login.salesforce.com/id/00D5g000004ABCd/005000000000011").is_some()
        );
        for bad in [
            "",
            "https://x/id/nope/005000000000011AAA",
            "https://x/other/00D5g000004ABCdEAO/005000000000011AAA",
            "https://x/005000000000011AAA",
        ] {
            assert!(identity(bad).is_none(), "{bad}");
        }
    }
}
