//! Who is calling: each configured org's credentials (API key header, JWT), checked before a
//! body is read. A credential proves exactly one org.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, JwtKeyConfig, OrgConfig, Secret};
use crate::event::SalesforceId;

/// Why a caller was turned away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send an API key header or Authorization: Bearer <JWT>")]
    Missing,
    #[error("the credential is not valid: {0}")]
    Invalid(String),
}

/// Clock skew allowed between Salesforce and sfrelay on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// One way an org can prove itself.
struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// The longest a token may live: a stolen long-lived token is worth less.
    max_lifetime: Duration,
}

struct OrgCredentials {
    org: SalesforceId,
    api_key: Option<(HeaderName, Secret<String>)>,
    jwt: Vec<JwtVerifier>,
    outbound_message_token: Option<Secret<String>>,
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Proved to be this org: its events may name only this org.
    Org(SalesforceId),
    /// No org has a credential and sfrelay listens on loopback only (the embedded default for
    /// trying it out): any org is accepted. Start-up refuses this on a public address.
    Open,
}

/// Every org's credentials, prepared once (PEM parsed, validations built).
pub struct Authenticator {
    orgs: Vec<OrgCredentials>,
    open: bool,
}

impl Authenticator {
    /// Prepares verifiers; a key file that does not parse is a configuration error.
    pub fn new(orgs: &[OrgConfig]) -> Result<Self, ConfigError> {
        let mut prepared = Vec::with_capacity(orgs.len());
        for (i, org) in orgs.iter().enumerate() {
            let api_key = match &org.api_key {
                Some(k) => Some((
                    HeaderName::from_bytes(k.header.as_bytes()).map_err(|e| {
                        ConfigError::Invalid {
                            key: format!("orgs[{i}].api_key_header"),
                            message: e.to_string(),
                        }
                    })?,
                    k.key.clone(),
                )),
                None => None,
            };
            let mut jwt = Vec::new();
            for key in &org.jwt {
                let (decoding, algorithm) = match key {
                    JwtKeyConfig::Hs256(secret) => {
                        (DecodingKey::from_secret(secret.expose()), Algorithm::HS256)
                    }
                    JwtKeyConfig::PublicKeyPem { path, pem } => {
                        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
                            (k, Algorithm::RS256)
                        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
                            (k, Algorithm::ES256)
                        } else {
                            return Err(ConfigError::Invalid {
                                key: format!("orgs[{i}].jwt_public_key_file"),
                                message: format!(
                                    "{} is not an RSA or EC (P-256) public key in PEM form",
                                    path.display()
                                ),
                            });
                        }
                    }
                };
                // The key's kind pins the one algorithm accepted: a token claiming `none`, or
                // HS256 signed with the public key as secret, fails the algorithm check.
                let mut validation = Validation::new(algorithm);
                validation.leeway = LEEWAY_SECS;
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp"]);
                match &org.jwt_audience {
                    Some(aud) => validation.set_audience(&[aud]),
                    None => validation.validate_aud = false,
                }
                if let Some(iss) = &org.jwt_issuer {
                    validation.set_issuer(&[iss]);
                }
                jwt.push(JwtVerifier {
                    key: decoding,
                    validation,
                    max_lifetime: org.jwt_max_lifetime,
                });
            }
            prepared.push(OrgCredentials {
                org: org.id.clone(),
                api_key,
                jwt,
                outbound_message_token: org.outbound_message_token.clone(),
            });
        }
        let open = !prepared.iter().any(|o| {
            o.api_key.is_some() || !o.jwt.is_empty() || o.outbound_message_token.is_some()
        });
        Ok(Authenticator {
            orgs: prepared,
            open,
        })
    }

    /// Finds the org whose credential the request carries.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        if self.open {
            return Ok(Caller::Open);
        }
        let mut presented = false;
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| AuthError::Invalid("Authorization header is not ASCII".into()))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| AuthError::Invalid("Authorization must be `Bearer <JWT>`".into()))?
                .trim();
            return self.authenticate_jwt(token).map(Caller::Org);
        }
        // API keys: every org's header is checked, each in constant time.
        let mut found = None;
        for org in &self.orgs {
            if let Some((name, key)) = &org.api_key
                && let Some(value) = headers.get(name)
            {
                presented = true;
                if bool::from(value.as_bytes().ct_eq(key.expose().as_bytes())) && found.is_none() {
                    found = Some(org.org.clone());
                }
            }
        }
        match (found, presented) {
            (Some(org), _) => Ok(Caller::Org(org)),
            (None, true) => Err(AuthError::Invalid("unknown API key".into())),
            (None, false) => Err(AuthError::Missing),
        }
    }

    fn authenticate_jwt(&self, token: &str) -> Result<SalesforceId, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::Invalid(format!("malformed JWT: {e}")))?;
        let mut last_error = format!("no org accepts {:?} tokens", header.alg);
        for org in &self.orgs {
            for verifier in &org.jwt {
                if !verifier.validation.algorithms.contains(&header.alg) {
                    continue;
                }
                match jsonwebtoken::decode::<serde_json::Value>(
                    token,
                    &verifier.key,
                    &verifier.validation,
                ) {
                    Ok(data) => {
                        check_lifetime(&data.claims, verifier.max_lifetime)?;
                        return Ok(org.org.clone());
                    }
                    Err(e) => {
                        use jsonwebtoken::errors::ErrorKind;
                        // A signature that verifies with this key but fails a claim says
                        // more than "wrong key": keep that reason.
                        if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                            last_error = claim_error(&e);
                        }
                    }
                }
            }
        }
        Err(AuthError::Invalid(last_error))
    }

    /// The org whose Outbound Message token is `token` (the secret in the URL path, since
    /// Outbound Messages carry no custom headers), compared in constant time against every org.
    pub fn authenticate_outbound_token(&self, token: &str) -> Result<Caller, AuthError> {
        if self.open {
            return Ok(Caller::Open);
        }
        let mut found = None;
        for org in &self.orgs {
            if let Some(expected) = &org.outbound_message_token
                && bool::from(token.as_bytes().ct_eq(expected.expose().as_bytes()))
                && found.is_none()
            {
                found = Some(org.org.clone());
            }
        }
        found
            .map(Caller::Org)
            .ok_or_else(|| AuthError::Invalid("unknown Outbound Message token".into()))
    }

    /// Whether `org` is a configured org.
    pub fn knows(&self, org: &SalesforceId) -> bool {
        self.orgs.iter().any(|o| &o.org == org)
    }

    /// Whether requests are accepted without a credential (see [`Caller::Open`]).
    pub fn is_open(&self) -> bool {
        self.open
    }
}

/// What a claim failure means, in words a Salesforce admin can act on.
fn claim_error(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired (exp is in the past)".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidIssuer => "the token's iss is not this org's jwt_issuer".into(),
        ErrorKind::InvalidAudience => "the token's aud is not this org's jwt_audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        _ => e.to_string(),
    }
}

/// A token may live at most `max`: `exp - iat` when it says when it was issued, otherwise its
/// `exp` may be at most `max` ahead. One issued in the future is refused too.
fn check_lifetime(claims: &serde_json::Value, max: Duration) -> Result<(), AuthError> {
    let time = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
    let now = jsonwebtoken::get_current_timestamp() as f64;
    let leeway = LEEWAY_SECS as f64;
    let max_secs = max.as_secs_f64();
    let Some(exp) = time("exp") else {
        return Err(AuthError::Invalid(
            "the token has no numeric exp claim".into(),
        ));
    };
    match time("iat") {
        Some(iat) if iat > now + leeway => Err(AuthError::Invalid(
            "the token was issued in the future (iat is ahead of the clock)".into(),
        )),
        Some(iat) if exp - iat > max_secs => Err(AuthError::Invalid(format!(
            "the token's lifetime (exp - iat = {} s) is over the maximum of {} s",
            (exp - iat) as i64,
            max.as_secs()
        ))),
        None if exp - now > max_secs + leeway => Err(AuthError::Invalid(format!(
            "the token has no iat and expires {} s from now, over the maximum lifetime of {} s",
            (exp - now) as i64,
            max.as_secs()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SalesforceFile;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"auth-test-secret-auth-test-secret-0123";

    fn org() -> OrgConfig {
        OrgConfig {
            id: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            name: "production".into(),
            api_key: None,
            jwt: vec![JwtKeyConfig::Hs256(Secret::new(SECRET.to_vec()))],
            jwt_issuer: Some("salesforce-prod".into()),
            jwt_audience: Some("sfrelay".into()),
            jwt_max_lifetime: Duration::from_secs(3600),
            outbound_message_token: None,
            instance_url: None,
            salesforce: SalesforceFile::default(),
            act_as: Default::default(),
            reconcile: Vec::new(),
            pubsub_endpoint: crate::config::DEFAULT_PUBSUB_ENDPOINT.into(),
            subscribe: Vec::new(),
            slack_token: None,
            slack_signing_secret: None,
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn bearer(claims: serde_json::Value) -> HeaderMap {
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    fn check(claims: serde_json::Value) -> Result<Caller, AuthError> {
        Authenticator::new(&[org()])
            .unwrap()
            .authenticate(&bearer(claims))
    }

    fn claims(extra: serde_json::Value) -> serde_json::Value {
        let mut claims = json!({"iss": "salesforce-prod", "aud": "sfrelay"});
        if let (Some(map), serde_json::Value::Object(extra)) = (claims.as_object_mut(), extra) {
            map.extend(extra);
        }
        claims
    }

    #[test]
    fn a_short_lived_token_is_accepted() {
        let t = now();
        assert!(matches!(
            check(claims(json!({"iat": t, "exp": t + 300}))),
            Ok(Caller::Org(_))
        ));
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let t = now();
        let err = check(claims(json!({"iat": t, "nbf": t + 600, "exp": t + 900}))).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("not valid yet") || m.contains("nbf")),
            "{err}"
        );
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let t = now();
        let err = check(claims(json!({"iat": t, "exp": t + 2 * 3600}))).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("lifetime")),
            "{err}"
        );
    }

    #[test]
    fn a_token_without_iat_expiring_beyond_the_maximum_is_refused() {
        let t = now();
        let err = check(claims(json!({"exp": t + 2 * 3600}))).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("lifetime")),
            "{err}"
        );
        assert!(check(claims(json!({"exp": t + 600}))).is_ok());
    }

    #[test]
    fn the_maximum_lifetime_is_the_org_s() {
        let mut short = org();
        short.jwt_max_lifetime = Duration::from_secs(300);
        let auth = Authenticator::new(&[short]).unwrap();
        let t = now();
        let ten_minutes = bearer(claims(json!({"iat": t, "exp": t + 600})));
        assert!(auth.authenticate(&ten_minutes).is_err());
        let five_minutes = bearer(claims(json!({"iat": t, "exp": t + 300})));
        assert!(auth.authenticate(&five_minutes).is_ok());
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let t = now();
        let err = check(claims(json!({"iat": t + 600, "exp": t + 900}))).unwrap_err();
        assert!(
            matches!(&err, AuthError::Invalid(m) if m.contains("future")),
            "{err}"
        );
    }

    #[test]
    fn issuer_and_audience_are_checked() {
        let t = now();
        let wrong_aud = json!({"iss": "salesforce-prod", "aud": "other", "exp": t + 60});
        assert!(check(wrong_aud).is_err());
        let wrong_iss = json!({"iss": "someone", "aud": "sfrelay", "exp": t + 60});
        assert!(check(wrong_iss).is_err());
    }
}
