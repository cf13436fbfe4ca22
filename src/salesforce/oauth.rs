//! Getting an access token from Salesforce: the OAuth 2.0 JWT bearer flow (server-to-server,
//! a connected app with a certificate and a pre-authorised integration user) and the
//! refresh-token flow (a token an admin obtained once through the web server flow).

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::{SalesforceError, transport_error};
use crate::config::Secret;
use crate::event::SalesforceId;

/// The `grant_type` of the JWT bearer flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a signed assertion is valid; Salesforce accepts at most a few minutes.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);

/// How sfrelay proves it may act for an org.
#[derive(Clone)]
pub enum Auth {
    /// JWT bearer flow: assertions signed with the connected app's private key, for `username`.
    JwtBearer {
        username: String,
        private_key_pem: Secret<Vec<u8>>,
    },
    /// Refresh-token flow; `client_secret` only when the connected app requires it.
    RefreshToken {
        refresh_token: Secret<String>,
        client_secret: Option<Secret<String>>,
    },
}

impl Auth {
    /// The flow's name, for messages and logs.
    pub fn flow(&self) -> &'static str {
        match self {
            Auth::JwtBearer { .. } => "JWT bearer",
            Auth::RefreshToken { .. } => "refresh token",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::JwtBearer { username, .. } => f
                .debug_struct("JwtBearer")
                .field("username", username)
                .finish_non_exhaustive(),
            Auth::RefreshToken { client_secret, .. } => f
                .debug_struct("RefreshToken")
                .field("client_secret", &client_secret.is_some())
                .finish_non_exhaustive(),
        }
    }
}

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

/// Parses and checks an RSA private key by signing a throw-away assertion with it (the PEM
/// parser alone accepts some keys the signer then refuses).
pub fn signing_key(pem: &[u8]) -> Result<EncodingKey, String> {
    let key = EncodingKey::from_rsa_pem(pem)
        .map_err(|e| format!("not an RSA private key in PEM form: {e}"))?;
    assertion(&key, "check", "check", "https://login.salesforce.com", 0)
        .map_err(|e| format!("cannot sign with this key: {e}"))?;
    Ok(key)
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
                description: super::clip(&body.error_description),
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
    fn bad_keys_are_refused_up_front() {
        assert!(signing_key(b"not a key").is_err());
        assert!(signing_key(PUBLIC).is_err());
        let ec = include_bytes!("../../tests/fixtures/keys/ec-private.pem");
        assert!(signing_key(ec).is_err());
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

    #[test]
    fn debug_hides_credentials() {
        let a = Auth::JwtBearer {
            username: "u@example.com".into(),
            private_key_pem: Secret::new(PRIVATE.to_vec()),
        };
        assert!(!format!("{a:?}").contains("PRIVATE"));
        let r = Auth::RefreshToken {
            refresh_token: Secret::new("5Aep-refresh".into()),
            client_secret: Some(Secret::new("shh".into())),
        };
        let text = format!("{r:?}");
        assert!(!text.contains("5Aep") && !text.contains("shh"), "{text}");
    }
}
