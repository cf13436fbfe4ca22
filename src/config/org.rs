//! One `[[orgs]]` entry: the credentials that prove a caller is that org, read and checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{OrgFile, ReconcileConfig, SalesforceFile};
use super::{ConfigError, Env, Secret, invalid};
use crate::event::SalesforceId;

/// One Salesforce org allowed to call sfrelay, with the credentials that prove it is that org.
#[derive(Debug, Clone)]
pub struct OrgConfig {
    pub id: SalesforceId,
    pub name: String,
    pub api_key: Option<ApiKeyConfig>,
    pub jwt: Vec<JwtKeyConfig>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// The longest a JWT may live (`exp - iat`, or `exp - now` without `iat`).
    pub jwt_max_lifetime: Duration,
    pub outbound_message_token: Option<Secret<String>>,
    /// `https://acme.my.salesforce.com`: record links in messages.
    pub instance_url: Option<String>,
    pub salesforce: SalesforceFile,
    /// Who the org's writes to Salesforce run as (`[orgs.salesforce] act_as`).
    pub act_as: ActAs,
    pub reconcile: Vec<ReconcileConfig>,
    /// The Pub/Sub API's address (`[orgs.salesforce] pubsub_endpoint`).
    pub pubsub_endpoint: String,
    /// The topics sfrelay subscribes to itself (`[[orgs.subscribe]]`).
    pub subscribe: Vec<super::SubscriptionConfig>,
    /// The org's own Slack bot token; `None` posts with `SLACK_BOT_TOKEN`.
    pub slack_token: Option<Secret<String>>,
    /// The signing secret of the org's own Slack app, for its inbound requests.
    pub slack_signing_secret: Option<Secret<String>>,
}

impl OrgConfig {
    /// Whether the org can authenticate at all.
    pub fn has_credential(&self) -> bool {
        self.api_key.is_some() || !self.jwt.is_empty() || self.outbound_message_token.is_some()
    }
}

/// Who sfrelay's writes to an org run as.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActAs {
    /// The integration user of `[orgs.salesforce]` writes, on behalf of the person.
    #[default]
    Integration,
    /// The person who clicked writes as their own Salesforce user (JWT bearer flow with their
    /// username as `sub`), so their sharing and field-level security apply.
    User,
}

impl ActAs {
    /// The values `act_as` accepts, as written in the file.
    pub const ALLOWED: [&'static str; 2] = ["integration", "user"];

    fn parse(value: &str) -> Option<ActAs> {
        match value {
            "integration" => Some(ActAs::Integration),
            "user" => Some(ActAs::User),
            _ => None,
        }
    }
}

/// Reads `act_as`; acting as a user needs the JWT bearer flow, the only one that can sign an
/// assertion for another username.
fn act_as(key: &str, salesforce: &SalesforceFile) -> Result<ActAs, ConfigError> {
    let Some(value) = salesforce.act_as.as_deref() else {
        return Ok(ActAs::Integration);
    };
    let Some(act_as) = ActAs::parse(value.trim()) else {
        return Err(invalid(
            key,
            format!(
                "unknown value {value:?}; allowed: {}",
                ActAs::ALLOWED.map(|v| format!("{v:?}")).join(", ")
            ),
        ));
    };
    let jwt_bearer =
        salesforce.private_key_file.is_some() && salesforce.refresh_token_env.is_none();
    if act_as == ActAs::User && !jwt_bearer {
        return Err(invalid(
            key,
            "\"user\" needs the JWT bearer flow (username and private_key_file): sfrelay signs \
             an assertion for each person's username with the connected app's key; a refresh \
             token (or no API access) can only ever act as the one user it belongs to",
        ));
    }
    Ok(act_as)
}

/// A static API key and the header it arrives in (a Named Credential's custom header).
#[derive(Debug, Clone)]
pub struct ApiKeyConfig {
    pub header: String,
    pub key: Secret<String>,
}

/// A key that verifies the org's JWTs; the key's kind pins the accepted algorithm.
#[derive(Debug, Clone)]
pub enum JwtKeyConfig {
    Hs256(Secret<Vec<u8>>),
    PublicKeyPem { path: PathBuf, pem: Vec<u8> },
}

/// The path token is the only thing that proves an Outbound Message's sender.
const MIN_OUTBOUND_MESSAGE_TOKEN_CHARS: usize = 32;

pub(super) fn load_org(
    i: usize,
    org: OrgFile,
    base: &Path,
    env: &dyn Env,
) -> Result<OrgConfig, ConfigError> {
    let key = |field: &str| format!("orgs[{i}].{field}");
    let id = SalesforceId::parse(&org.id).map_err(|e| invalid(key("id"), e.to_string()))?;
    if id.key_prefix() != "00D" {
        return Err(invalid(key("id"), "not an org Id (must start with 00D)"));
    }
    for (j, r) in org.reconcile.iter().enumerate() {
        let bad_name = |n: &str| {
            n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        if bad_name(&r.object)
            || r.fields.is_empty()
            || r.fields.iter().chain(&r.also).any(|f| bad_name(f))
        {
            return Err(invalid(
                key(&format!("reconcile[{j}]")),
                "needs an object and a non-empty list of field API names",
            ));
        }
        if r.window_minutes <= r.grace_minutes {
            return Err(invalid(
                key(&format!("reconcile[{j}].window_minutes")),
                "must be larger than grace_minutes",
            ));
        }
    }
    let reconcile = org.reconcile.clone();
    let slack = org.slack.unwrap_or_default();
    let slack_token = secret_from(
        env,
        base,
        &key("slack.bot_token_env"),
        slack.bot_token_env.as_deref(),
        &key("slack.bot_token_file"),
        slack.bot_token_file.as_deref(),
    )?
    .map(Secret::new);
    let slack_signing_secret = secret_from(
        env,
        base,
        &key("slack.signing_secret_env"),
        slack.signing_secret_env.as_deref(),
        "",
        None,
    )?
    .map(Secret::new);
    let subscribe = super::pubsub::subscriptions(i, &org.subscribe, org.salesforce.is_some())?;
    let salesforce = org.salesforce.unwrap_or_default();
    let pubsub_endpoint = super::pubsub::endpoint(i, salesforce.pubsub_endpoint.as_deref())?;
    let act_as = act_as(&key("salesforce.act_as"), &salesforce)?;
    let instance_url = match &salesforce.instance_url {
        Some(url) => {
            let url = url.trim_end_matches('/').to_string();
            if !url.starts_with("https://") && !url.starts_with("http://127.0.0.1") {
                return Err(invalid(
                    key("salesforce.instance_url"),
                    format!("{url:?} must be an https:// URL"),
                ));
            }
            Some(url)
        }
        None => None,
    };

    let api_key = secret_from(
        env,
        base,
        &key("api_key_env"),
        org.api_key_env.as_deref(),
        &key("api_key_file"),
        org.api_key_file.as_deref(),
    )?
    .map(|k| {
        let header = org
            .api_key_header
            .clone()
            .unwrap_or_else(|| "X-Api-Key".into());
        (header, k)
    });
    let api_key = match api_key {
        Some((header, key_value)) => {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(key("api_key_header"), "not a valid header name"));
            }
            if key_value.len() < 16 {
                return Err(invalid(
                    key("api_key_env"),
                    "the API key must be at least 16 characters",
                ));
            }
            Some(ApiKeyConfig {
                header,
                key: Secret::new(key_value),
            })
        }
        None => None,
    };

    let mut jwt = Vec::new();
    if let Some(secret) = secret_from(
        env,
        base,
        &key("jwt_secret_env"),
        org.jwt_secret_env.as_deref(),
        &key("jwt_secret_file"),
        org.jwt_secret_file.as_deref(),
    )? {
        if secret.len() < 32 {
            return Err(invalid(
                key("jwt_secret_env"),
                "an HS256 secret must be at least 32 bytes",
            ));
        }
        jwt.push(JwtKeyConfig::Hs256(Secret::new(secret.into_bytes())));
    }
    if let Some(path) = &org.jwt_public_key_file {
        let path = base.join(path);
        let pem = std::fs::read(&path).map_err(|e| {
            invalid(
                key("jwt_public_key_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        jwt.push(JwtKeyConfig::PublicKeyPem { path, pem });
    }

    let outbound_message_token = secret_from(
        env,
        base,
        &key("outbound_message_token_env"),
        org.outbound_message_token_env.as_deref(),
        &key("outbound_message_token_file"),
        org.outbound_message_token_file.as_deref(),
    )?;
    if let Some(token) = &outbound_message_token
        && token.chars().count() < MIN_OUTBOUND_MESSAGE_TOKEN_CHARS
    {
        let field = if org.outbound_message_token_env.is_some() {
            "outbound_message_token_env"
        } else {
            "outbound_message_token_file"
        };
        return Err(invalid(
            key(field),
            format!(
                "the Outbound Message token must be at least {MIN_OUTBOUND_MESSAGE_TOKEN_CHARS} \
                 characters (it is the only secret in the URL); e.g. `openssl rand -hex 32`"
            ),
        ));
    }
    let outbound_message_token = outbound_message_token.map(Secret::new);

    let jwt_max_lifetime_secs = org.jwt_max_lifetime_secs.unwrap_or(3600);
    if !(60..=86_400).contains(&jwt_max_lifetime_secs) {
        return Err(invalid(
            key("jwt_max_lifetime_secs"),
            "must be between 60 and 86400 (one day)",
        ));
    }

    Ok(OrgConfig {
        name: org.name.unwrap_or_else(|| id.to_string()),
        id,
        api_key,
        jwt,
        jwt_issuer: org.jwt_issuer,
        jwt_audience: org.jwt_audience,
        jwt_max_lifetime: Duration::from_secs(jwt_max_lifetime_secs),
        outbound_message_token,
        instance_url,
        salesforce,
        act_as,
        reconcile,
        pubsub_endpoint,
        subscribe,
        slack_token,
        slack_signing_secret,
    })
}

/// Reads a secret named by an environment variable or a file; naming one that is missing is an
/// error (a typo must not silently disable a credential).
pub(super) fn secret_from(
    env: &dyn Env,
    base: &Path,
    env_key: &str,
    env_name: Option<&str>,
    file_key: &str,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    match (env_name, file) {
        (Some(_), Some(_)) => Err(invalid(
            env_key,
            format!("give either {env_key} or {file_key}, not both"),
        )),
        (Some(name), None) => match env.var(name) {
            Some(value) if !value.is_empty() => Ok(Some(value)),
            Some(_) => Err(invalid(
                env_key,
                format!("environment variable {name} is set but empty"),
            )),
            None => Err(invalid(
                env_key,
                format!("environment variable {name} is not set"),
            )),
        },
        (None, Some(path)) => {
            let path = base.join(path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid(file_key, format!("cannot read {}: {e}", path.display())))?;
            let value = text.trim().to_string();
            if value.is_empty() {
                return Err(invalid(file_key, format!("{} is empty", path.display())));
            }
            Ok(Some(value))
        }
        (None, None) => Ok(None),
    }
}
