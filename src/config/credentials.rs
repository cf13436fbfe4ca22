//! Salesforce API credentials (`[orgs.salesforce]`): the plain value the Salesforce client
//! consumes ([`OrgCredentials`], [`Auth`]), read and checked here at start-up like the rest
//! of the configuration, so a bad section stops the start with a message naming the key.

use std::fmt;
use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::{ConfigError, Env, OrgConfig, Secret};
use crate::event::SalesforceId;

/// Where tokens come from unless `login_url` says otherwise (sandboxes use
/// `https://test.salesforce.com`).
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

/// One org's API credentials.
#[derive(Debug, Clone)]
pub struct OrgCredentials {
    pub org_id: SalesforceId,
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or a My Domain login
    /// URL, without a trailing slash. It is also the JWT `aud`.
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    pub auth: Auth,
    /// The shares of the org's daily API allowance above which work is held back.
    pub budget: crate::salesforce::budget::Budget,
}

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

impl OrgCredentials {
    /// Reads `[orgs.salesforce]` of the org at `index` in the file (for error keys); `base` is
    /// the configuration file's directory, against which `private_key_file` is resolved.
    ///
    /// `Ok(None)` when the section asks for no API access (neither `client_id` nor any
    /// credential key is set; `instance_url` alone only builds record links).
    pub fn from_org_config(
        index: usize,
        org: &OrgConfig,
        base: &Path,
        env: &dyn Env,
    ) -> Result<Option<OrgCredentials>, ConfigError> {
        let key = |field: &str| format!("orgs[{index}].salesforce.{field}");
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            key: key(field),
            message,
        };
        let sf = &org.salesforce;
        let wants_api = sf.client_id.is_some()
            || sf.username.is_some()
            || sf.private_key_file.is_some()
            || sf.refresh_token_env.is_some()
            || sf.client_secret_env.is_some();
        if !wants_api {
            return Ok(None);
        }
        let client_id = match sf.client_id.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => {
                return Err(invalid(
                    "client_id",
                    "the connected app's consumer key is required for Salesforce API access".into(),
                ));
            }
        };
        let login_url = sf
            .login_url
            .as_deref()
            .unwrap_or(DEFAULT_LOGIN_URL)
            .trim_end_matches('/')
            .to_owned();
        if !valid_base_url(&login_url) {
            return Err(invalid(
                "login_url",
                format!(
                    "{login_url:?} must be an https:// URL such as {DEFAULT_LOGIN_URL} \
                     (http:// only on 127.0.0.1 or localhost)"
                ),
            ));
        }
        let read_env = |field: &str, name: &str| {
            env.var(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                invalid(
                    field,
                    format!("environment variable {name} is not set or empty"),
                )
            })
        };
        let jwt = sf.username.is_some() || sf.private_key_file.is_some();
        let auth = match (jwt, &sf.refresh_token_env) {
            (true, Some(_)) => {
                return Err(invalid(
                    "refresh_token_env",
                    "give either username and private_key_file (JWT bearer flow) or \
                     refresh_token_env (refresh-token flow), not both"
                        .into(),
                ));
            }
            (true, None) => {
                if sf.client_secret_env.is_some() {
                    return Err(invalid(
                        "client_secret_env",
                        "only used with refresh_token_env; the JWT bearer flow needs no secret"
                            .into(),
                    ));
                }
                let username = match sf.username.as_deref().map(str::trim) {
                    Some(u) if !u.is_empty() => u.to_owned(),
                    _ => {
                        return Err(invalid(
                            "username",
                            "the JWT bearer flow needs the integration user's username".into(),
                        ));
                    }
                };
                let Some(file) = &sf.private_key_file else {
                    return Err(invalid(
                        "private_key_file",
                        "the JWT bearer flow needs the connected app's RSA private key (PEM)"
                            .into(),
                    ));
                };
                let path = base.join(file);
                let pem = std::fs::read(&path).map_err(|e| {
                    invalid(
                        "private_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                signing_key(&pem)
                    .map_err(|e| invalid("private_key_file", format!("{}: {e}", path.display())))?;
                Auth::JwtBearer {
                    username,
                    private_key_pem: Secret::new(pem),
                }
            }
            (false, Some(name)) => {
                let refresh_token = Secret::new(read_env("refresh_token_env", name)?);
                let client_secret = match &sf.client_secret_env {
                    Some(name) => Some(Secret::new(read_env("client_secret_env", name)?)),
                    None => None,
                };
                Auth::RefreshToken {
                    refresh_token,
                    client_secret,
                }
            }
            (false, None) => {
                return Err(invalid(
                    "username",
                    "give username and private_key_file (JWT bearer flow) or refresh_token_env \
                     (refresh-token flow)"
                        .into(),
                ));
            }
        };
        let budget = budget_of(sf, &invalid)?;
        Ok(Some(OrgCredentials {
            org_id: org.id.clone(),
            login_url,
            client_id,
            auth,
            budget,
        }))
    }
}

/// `api_budget_low_share` and `api_budget_high_share`: shares of the daily allowance, the low
/// one below the high one.
fn budget_of(
    sf: &super::file::SalesforceFile,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<crate::salesforce::budget::Budget, ConfigError> {
    let default = crate::salesforce::budget::Budget::default();
    let low = sf.api_budget_low_share.unwrap_or(default.low_share);
    let high = sf.api_budget_high_share.unwrap_or(default.high_share);
    for (key, share) in [
        ("api_budget_low_share", low),
        ("api_budget_high_share", high),
    ] {
        if !(share > 0.0 && share <= 1.0) {
            return Err(invalid(
                key,
                format!("{share} is not a share above 0 and at most 1"),
            ));
        }
    }
    if low > high {
        return Err(invalid(
            "api_budget_low_share",
            format!("{low} is above api_budget_high_share ({high})"),
        ));
    }
    Ok(crate::salesforce::budget::Budget {
        low_share: low,
        high_share: high,
    })
}

/// An https URL, or http on loopback (the emulator).
pub(crate) fn valid_base_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    parsed.host_str().is_some()
        && (parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
        && parsed.query().is_none()
}

/// Parses and checks an RSA private key by signing a throw-away RS256 token with it (the PEM
/// parser alone accepts some keys the signer then refuses).
pub fn signing_key(pem: &[u8]) -> Result<EncodingKey, String> {
    let key = EncodingKey::from_rsa_pem(pem)
        .map_err(|e| format!("not an RSA private key in PEM form: {e}"))?;
    let claims = serde_json::json!({
        "iss": "check",
        "sub": "check",
        "aud": DEFAULT_LOGIN_URL,
        "exp": 180,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|e| format!("cannot sign with this key: {e}"))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-private.pem");
    const PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-public.pem");

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    #[test]
    fn bad_keys_are_refused_up_front() {
        assert!(signing_key(b"not a key").is_err());
        assert!(signing_key(PUBLIC).is_err());
        let ec = include_bytes!("../../tests/fixtures/keys/ec-private.pem");
        assert!(signing_key(ec).is_err());
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

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn org_config(sf: crate::config::SalesforceFile) -> OrgConfig {
        OrgConfig {
            id: org(),
            name: "Acme".into(),
            api_key: None,
            jwt: Vec::new(),
            jwt_issuer: None,
            jwt_audience: None,
            jwt_max_lifetime: std::time::Duration::from_secs(3600),
            outbound_message_token: None,
            instance_url: None,
            salesforce: sf,
            act_as: Default::default(),
            reconcile: Vec::new(),
            pubsub_endpoint: crate::config::DEFAULT_PUBSUB_ENDPOINT.into(),
            subscribe: Vec::new(),
            slack_token: None,
            slack_signing_secret: None,
        }
    }

    #[test]
    fn credentials_come_from_the_org_config() {
        use crate::config::SalesforceFile;
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let keys = PathBuf::from("tests/fixtures/keys");
        let env = MapEnv(HashMap::from([
            ("SF_REFRESH", "5Aep-r"),
            ("SF_SECRET", "s"),
        ]));
        let err_key = |sf: SalesforceFile| match OrgCredentials::from_org_config(
            2,
            &org_config(sf),
            &base,
            &env,
        ) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an error, got {other:?}"),
        };

        assert!(
            OrgCredentials::from_org_config(0, &org_config(SalesforceFile::default()), &base, &env)
                .unwrap()
                .is_none()
        );
        let jwt = SalesforceFile {
            client_id: Some("3MVG9".into()),
            username: Some("u@example.com".into()),
            private_key_file: Some(keys.join("rsa-private.pem")),
            login_url: Some("https://test.salesforce.com/".into()),
            ..SalesforceFile::default()
        };
        let creds = OrgCredentials::from_org_config(2, &org_config(jwt.clone()), &base, &env)
            .unwrap()
            .unwrap();
        assert_eq!(creds.login_url, "https://test.salesforce.com");
        assert!(
            matches!(creds.auth, Auth::JwtBearer { ref username, .. } if username == "u@example.com")
        );

        let refresh = SalesforceFile {
            client_id: Some("3MVG9".into()),
            refresh_token_env: Some("SF_REFRESH".into()),
            client_secret_env: Some("SF_SECRET".into()),
            ..SalesforceFile::default()
        };
        let creds = OrgCredentials::from_org_config(2, &org_config(refresh.clone()), &base, &env)
            .unwrap()
            .unwrap();
        assert_eq!(creds.login_url, DEFAULT_LOGIN_URL);
        match &creds.auth {
            Auth::RefreshToken {
                refresh_token,
                client_secret,
            } => {
                assert_eq!(refresh_token.expose(), "5Aep-r");
                assert!(client_secret.is_some());
            }
            other => panic!("{other:?}"),
        }

        assert_eq!(
            err_key(SalesforceFile {
                private_key_file: Some(keys.join("missing.pem")),
                ..jwt.clone()
            }),
            "orgs[2].salesforce.private_key_file"
        );
        assert_eq!(
            err_key(SalesforceFile {
                private_key_file: Some(keys.join("rsa-public.pem")),
                ..jwt.clone()
            }),
            "orgs[2].salesforce.private_key_file"
        );
        assert_eq!(
            err_key(SalesforceFile {
                private_key_file: None,
                ..jwt.clone()
            }),
            "orgs[2].salesforce.private_key_file"
        );
        assert_eq!(
            err_key(SalesforceFile {
                username: None,
                ..jwt.clone()
            }),
            "orgs[2].salesforce.username"
        );
        assert_eq!(
            err_key(SalesforceFile {
                client_id: None,
                ..jwt.clone()
            }),
            "orgs[2].salesforce.client_id"
        );
        assert_eq!(
            err_key(SalesforceFile {
                login_url: Some("http://login.salesforce.com".into()),
                ..jwt.clone()
            }),
            "orgs[2].salesforce.login_url"
        );
        assert_eq!(
            err_key(SalesforceFile {
                refresh_token_env: Some("SF_REFRESH".into()),
                ..jwt.clone()
            }),
            "orgs[2].salesforce.refresh_token_env"
        );
        assert_eq!(
            err_key(SalesforceFile {
                refresh_token_env: Some("UNSET".into()),
                ..refresh.clone()
            }),
            "orgs[2].salesforce.refresh_token_env"
        );
        assert_eq!(
            err_key(SalesforceFile {
                client_secret_env: Some("UNSET".into()),
                ..refresh
            }),
            "orgs[2].salesforce.client_secret_env"
        );
        assert_eq!(
            err_key(SalesforceFile {
                client_id: Some("3MVG9".into()),
                ..SalesforceFile::default()
            }),
            "orgs[2].salesforce.username"
        );
    }
}
