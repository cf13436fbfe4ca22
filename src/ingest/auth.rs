//! Who is calling: each configured org's credentials (API key header, JWT), checked before a
//! body is read. A credential proves exactly one org.

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

/// One way an org can prove itself.
struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
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
                validation.leeway = 30;
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
                    Ok(_) => return Ok(org.org.clone()),
                    Err(e) => {
                        use jsonwebtoken::errors::ErrorKind;
                        // A signature that verifies with this key but fails a claim says
                        // more than "wrong key": keep that reason.
                        if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                            last_error = e.to_string();
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
