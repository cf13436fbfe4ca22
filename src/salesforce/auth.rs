//! Getting an access token from Salesforce, and keeping it: the OAuth 2.0 JWT bearer flow
//! (server-to-server, a connected app with a certificate and a pre-authorised integration
//! user), the refresh-token flow (a token an admin obtained once through the web server flow),
//! and the per-org token cache (`TokenCache`) that fetches one token at a time and replaces
//! it once Salesforce refuses it. The credentials themselves are configuration
//! ([`OrgCredentials`], read from `[orgs.salesforce]`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::error::{SalesforceError, clip, transport_error};
use super::vault::RefreshTokenVault;
pub use crate::config::signing_key;
use crate::config::{Auth, OrgCredentials, Secret, valid_base_url};
use crate::event::SalesforceId;

/// The `grant_type` of the JWT bearer flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a signed assertion is valid; Salesforce accepts at most a few minutes.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// An access token and where to use it.
pub struct AccessToken {
    pub token: Secret<String>,
    /// The org's API host, e.g. `https://acme.my.salesforce.com` (no trailing slash).
    pub instance_url: String,
    /// The identity URL (`…/id/<org id>/<user id>`).
    pub id: Option<String>,
    pub token_type: Option<String>,
    pub scope: Option<String>,
    /// A new refresh token, when the connected app rotates them.
    pub refresh_token: Option<Secret<String>>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("rotated_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
}

/// The RS256 assertion of the JWT bearer flow: `iss` the connected app's consumer key, `sub`
/// the user, `aud` the login URL, `exp` a few minutes after `now` (Unix seconds).
pub fn assertion(
    key: &EncodingKey,
    client_id: &str,
    username: &str,
    login_url: &str,
    now: i64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: login_url,
        exp: now + ASSERTION_LIFETIME.as_secs() as i64,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://form.invalid/").expect("a valid static URL");
    url.query_pairs_mut().extend_pairs(pairs);
    url.query().unwrap_or_default().to_owned()
}

/// What the token endpoint answers on success.
#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    instance_url: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// What the token endpoint answers on failure.
#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// POSTs `form` to `<login_url>/services/oauth2/token` and reads the answer.
pub(crate) async fn request_token(
    http: &reqwest::Client,
    org: &SalesforceId,
    login_url: &str,
    flow: &'static str,
    form: &[(&str, &str)],
) -> Result<AccessToken, SalesforceError> {
    let response = http
        .post(format!("{login_url}/services/oauth2/token"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(form_body(form))
        .send()
        .await
        .map_err(|e| transport_error(org, e))?;
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(org, e))?;
    parse_token_response(org, flow, status, &bytes)
}

/// Turns the token endpoint's answer into a token or a classified error.
pub(crate) fn parse_token_response(
    org: &SalesforceId,
    flow: &'static str,
    status: u16,
    bytes: &[u8],
) -> Result<AccessToken, SalesforceError> {
    if !(200..300).contains(&status) {
        return Err(match serde_json::from_slice::<TokenErrorBody>(bytes) {
            Ok(body) => SalesforceError::Auth {
                org: org.clone(),
                flow,
                status,
                error: body.error,
                description: clip(&body.error_description),
            },
            Err(_) => SalesforceError::Http {
                org: org.clone(),
                status,
            },
        });
    }
    let body: TokenBody = serde_json::from_slice(bytes).map_err(|e| SalesforceError::Decode {
        org: org.clone(),
        message: format!("token response: {e}"),
    })?;
    let instance_url = body.instance_url.trim_end_matches('/').to_owned();
    let valid_url = reqwest::Url::parse(&instance_url)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
    if !valid_url || body.access_token.is_empty() {
        return Err(SalesforceError::Decode {
            org: org.clone(),
            message: format!(
                "token response without a usable access token and instance_url ({instance_url:?})"
            ),
        });
    }
    Ok(AccessToken {
        token: Secret::new(body.access_token),
        instance_url,
        id: body.id,
        token_type: body.token_type,
        scope: body.scope,
        refresh_token: body
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(Secret::new),
    })
}

/// The token an org's calls use, and what is needed to get the next one.
#[derive(Default)]
struct TokenSlot {
    current: Option<Arc<AccessToken>>,
    /// A refresh token handed out by rotation, which replaces the configured one.
    rotated_refresh_token: Option<Secret<String>>,
    /// The last failed attempt, shared with callers that waited for it.
    last_error: Option<SalesforceError>,
    /// When that attempt failed.
    failed_at: Option<Instant>,
}

/// One org's credentials and access token. Concurrent callers wait for a single token
/// request and share its answer, a token or the error.
pub(crate) struct TokenCache {
    creds: OrgCredentials,
    signing_key: Option<EncodingKey>,
    /// Held while a token is fetched: concurrent callers wait for that one fetch.
    slot: tokio::sync::Mutex<TokenSlot>,
    /// Token fetches started, so a waiter can tell whether one ran while it waited.
    attempts: AtomicU64,
    org_label: String,
    /// Where rotated refresh tokens are kept for restarts and other replicas.
    vault: Option<RefreshTokenVault>,
}

impl TokenCache {
    /// Checks `creds` (the login URL, the private key) and starts with no token.
    pub(crate) fn new(mut creds: OrgCredentials) -> Result<TokenCache, SalesforceError> {
        let org = creds.org_id.to_string();
        creds.login_url = creds.login_url.trim_end_matches('/').to_owned();
        if !valid_base_url(&creds.login_url) {
            return Err(SalesforceError::Config {
                org,
                message: format!("login URL {:?} is not an https URL", creds.login_url),
            });
        }
        let signing_key = match &creds.auth {
            Auth::JwtBearer {
                private_key_pem, ..
            } => Some(signing_key(private_key_pem.expose()).map_err(|message| {
                SalesforceError::Config {
                    org: org.clone(),
                    message,
                }
            })?),
            Auth::RefreshToken { .. } => None,
        };
        Ok(TokenCache {
            creds,
            signing_key,
            slot: tokio::sync::Mutex::new(TokenSlot::default()),
            attempts: AtomicU64::new(0),
            org_label: org,
            vault: None,
        })
    }

    pub(crate) fn set_vault(&mut self, vault: RefreshTokenVault) {
        self.vault = Some(vault);
    }

    /// The credentials, with the login URL trimmed of a trailing slash.
    pub(crate) fn creds(&self) -> &OrgCredentials {
        &self.creds
    }

    /// The org Id as text, the `org` label of metrics.
    pub(crate) fn label(&self) -> &str {
        &self.org_label
    }

    /// The connected app's key (JWT bearer orgs), which also signs assertions for people
    /// acting as themselves.
    pub(crate) fn signing_key(&self) -> Option<&EncodingKey> {
        self.signing_key.as_ref()
    }

    /// The org's current token, fetching one if there is none; concurrent callers wait for
    /// a single fetch.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let seen = self.attempts.load(Ordering::SeqCst);
        let mut slot = self.slot.lock().await;
        if let Some(token) = &slot.current {
            return Ok(Arc::clone(token));
        }
        if self.attempts.load(Ordering::SeqCst) != seen
            && let Some(e) = &slot.last_error
        {
            return Err(e.clone());
        }
        self.fetch_token(http, &mut slot).await
    }

    /// Whether the org has a working token as far as this cache knows: the held token counts
    /// as working (it is replaced once Salesforce refuses it), and the last failure is answered
    /// again until `recheck_after` has passed. Salesforce is asked only otherwise.
    pub(crate) async fn check(
        &self,
        http: &reqwest::Client,
        recheck_after: Duration,
    ) -> Result<(), SalesforceError> {
        let mut slot = self.slot.lock().await;
        if slot.current.is_some() {
            return Ok(());
        }
        if let (Some(e), Some(at)) = (&slot.last_error, slot.failed_at)
            && at.elapsed() < recheck_after
        {
            return Err(e.clone());
        }
        self.fetch_token(http, &mut slot).await.map(|_| ())
    }

    /// A token to replace `stale`, which Salesforce refused; if another caller already
    /// replaced it, that one.
    pub(crate) async fn renew(
        &self,
        http: &reqwest::Client,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let seen = self.attempts.load(Ordering::SeqCst);
        let mut slot = self.slot.lock().await;
        match &slot.current {
            Some(current) if !Arc::ptr_eq(current, stale) => return Ok(Arc::clone(current)),
            Some(_) => slot.current = None,
            None => {
                if self.attempts.load(Ordering::SeqCst) != seen
                    && let Some(e) = &slot.last_error
                {
                    return Err(e.clone());
                }
            }
        }
        self.fetch_token(http, &mut slot).await
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        slot: &mut TokenSlot,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let result = self.request_token(http, slot).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!(
            "sfrelay_salesforce_token_requests_total",
            "org" => self.org_label.clone(),
            "result" => label.to_string()
        )
        .increment(1);
        match result {
            Ok(token) => {
                tracing::info!(
                    org = %self.creds.org_id,
                    flow = self.creds.auth.flow(),
                    instance_url = %token.instance_url,
                    "obtained a Salesforce access token"
                );
                if let Some(rotated) = &token.refresh_token {
                    slot.rotated_refresh_token = Some(rotated.clone());
                }
                let token = Arc::new(token);
                slot.current = Some(Arc::clone(&token));
                slot.last_error = None;
                slot.failed_at = None;
                Ok(token)
            }
            Err(e) => {
                tracing::warn!(org = %self.creds.org_id, error = %e, "cannot get a Salesforce access token");
                slot.current = None;
                slot.last_error = Some(e.clone());
                slot.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn request_token(
        &self,
        http: &reqwest::Client,
        slot: &TokenSlot,
    ) -> Result<AccessToken, SalesforceError> {
        let creds = &self.creds;
        let flow = creds.auth.flow();
        match &creds.auth {
            Auth::JwtBearer { username, .. } => {
                let key = self
                    .signing_key
                    .as_ref()
                    .expect("JWT bearer orgs have a signing key");
                let assertion = assertion(
                    key,
                    &creds.client_id,
                    username,
                    &creds.login_url,
                    chrono::Utc::now().timestamp(),
                )
                .map_err(|e| SalesforceError::Config {
                    org: self.org_label.clone(),
                    message: format!("cannot sign the JWT assertion: {e}"),
                })?;
                request_token(
                    http,
                    &creds.org_id,
                    &creds.login_url,
                    flow,
                    &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
                )
                .await
            }
            Auth::RefreshToken {
                refresh_token: configured,
                client_secret,
            } => {
                let turn = match &self.vault {
                    Some(vault) => vault.take_turn(&creds.org_id).await,
                    None => None,
                };
                // The newest token: the stored one (another replica, or before a restart, may
                // have rotated it), else the one this process rotated, else the configured one.
                let stored = self.stored_refresh_token(configured).await;
                let presented = stored
                    .or_else(|| slot.rotated_refresh_token.clone())
                    .unwrap_or_else(|| configured.clone());
                let mut result = self.refresh(http, &presented, client_secret.as_ref()).await;
                // Another replica may have rotated the token a moment before we presented it:
                // the one it stored is then the one to use.
                if let Err(SalesforceError::Auth { error, .. }) = &result
                    && error == "invalid_grant"
                    && let Some(newer) = self.stored_refresh_token(configured).await
                    && newer != presented
                {
                    tracing::info!(org = %creds.org_id, "the refresh token was rotated by another replica; using the stored one");
                    result = self.refresh(http, &newer, client_secret.as_ref()).await;
                }
                if let (Ok(token), Some(vault)) = (&result, &self.vault)
                    && let Some(rotated) = &token.refresh_token
                {
                    vault.save(&creds.org_id, configured, rotated).await;
                }
                if let Some(vault) = &self.vault {
                    vault.end_turn(&creds.org_id, turn).await;
                }
                result
            }
        }
    }

    async fn stored_refresh_token(&self, configured: &Secret<String>) -> Option<Secret<String>> {
        self.vault
            .as_ref()?
            .load(&self.creds.org_id, configured)
            .await
    }

    /// One refresh-token request presenting `refresh_token`.
    async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &Secret<String>,
        client_secret: Option<&Secret<String>>,
    ) -> Result<AccessToken, SalesforceError> {
        let creds = &self.creds;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose().as_str()),
            ("client_id", creds.client_id.as_str()),
        ];
        if let Some(secret) = client_secret {
            form.push(("client_secret", secret.expose().as_str()));
        }
        request_token(
            http,
            &creds.org_id,
            &creds.login_url,
            creds.auth.flow(),
            &form,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::Retry;
    use jsonwebtoken::{DecodingKey, Validation};

    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-private.pem");
    const PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-public.pem");

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    #[test]
    fn the_assertion_carries_the_flow_claims_and_verifies() {
        let key = signing_key(PRIVATE).unwrap();
        let now = chrono::Utc::now().timestamp();
        let jwt = assertion(
            &key,
            "3MVG9client",
            "integration@acme.example",
            "https://test.salesforce.com",
            now,
        )
        .unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&["https://test.salesforce.com"]);
        v.set_issuer(&["3MVG9client"]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &DecodingKey::from_rsa_pem(PUBLIC).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(data.header.alg, Algorithm::RS256);
        assert_eq!(data.claims["sub"], "integration@acme.example");
        assert_eq!(data.claims["exp"], now + 180);
    }

    #[test]
    fn form_bodies_are_encoded() {
        assert_eq!(
            form_body(&[
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", "a.b+c/d=="),
                ("x", "ä &=")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b%2Bc%2Fd%3D%3D&x=%C3%A4+%26%3D"
        );
    }

    #[test]
    fn token_answers_are_read_and_classified() {
        let t = parse_token_response(
            &org(),
            "JWT bearer",
            200,
            br#"{"access_token":"00D!secret","instance_url":"https://acme.my.salesforce.com/","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","scope":"api","issued_at":"1"}"#,
        )
        .unwrap();
        assert_eq!(t.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(t.token.expose(), "00D!secret");
        assert!(t.refresh_token.is_none());
        assert!(!format!("{t:?}").contains("secret"));

        let err = parse_token_response(
            &org(),
            "JWT bearer",
            400,
            br#"{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}"#,
        )
        .unwrap_err();
        assert_eq!(err.retry(), Retry::Never);
        let text = err.to_string();
        assert!(text.contains("00D000000000001EAA"), "{text}");
        assert!(
            text.contains("user hasn't approved this consumer"),
            "{text}"
        );
        assert!(text.contains("invalid_grant"), "{text}");

        let err = parse_token_response(
            &org(),
            "refresh token",
            400,
            br#"{"error":"unknown_error","error_description":"retry your request"}"#,
        )
        .unwrap_err();
        assert_eq!(err.retry(), Retry::Later);
        let err =
            parse_token_response(&org(), "JWT bearer", 503, b"<html>down</html>").unwrap_err();
        assert_eq!(err.retry(), Retry::Later);
        let err = parse_token_response(&org(), "JWT bearer", 200, b"<html>").unwrap_err();
        assert_eq!(err.retry(), Retry::Later);
        let err = parse_token_response(
            &org(),
            "JWT bearer",
            200,
            br#"{"access_token":"x","instance_url":"javascript:alert(1)"}"#,
        )
        .unwrap_err();
        assert!(matches!(err, SalesforceError::Decode { .. }));
    }
}
