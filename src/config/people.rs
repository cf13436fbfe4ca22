//! Per-person Salesforce connections and which org a person works in: the top-level
//! `public_url` (where Salesforce sends a person back after they sign in), `[slack]
//! default_org` and `[slack] admins`, the connected app each org's web-server flow uses, and
//! the hidden `[people] state_ttl_secs`.
//!
//! ```toml
//! public_url = "https://sfrelay.example.com"   # or SFRELAY_PUBLIC_URL
//!
//! [slack]
//! default_org = "production"     # an [[orgs]] name or Id
//! admins = ["U0123ABCD"]         # may set the Default org from the Home tab
//!
//! [orgs.salesforce]
//! oauth_client_id = "3MVG9..."             # optional: the web-server flow's connected app
//! oauth_client_secret_env = "SF_WEB_SECRET" # optional: its consumer secret
//! ```
//!
//! A person's connection uses the org's `client_id` (the JWT or refresh-token connected app)
//! unless `oauth_client_id` names another app; the secret is `oauth_client_secret_env`, else,
//! for the same app, the refresh-token flow's `client_secret_env`. With PKCE a connected app
//! can be set not to require the secret for the web-server flow; then none is needed.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Env, OrgConfig, OrgCredentials, Secret, invalid};
use crate::config::Auth;
use crate::event::SalesforceId;

/// How long a connect link works unless `[people] state_ttl_secs` says otherwise.
pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(600);

/// `[people]` as written. Not documented for operators: tests shorten the link lifetime.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PeopleFile {
    pub(super) state_ttl_secs: u64,
}

impl Default for PeopleFile {
    fn default() -> Self {
        PeopleFile {
            state_ttl_secs: DEFAULT_STATE_TTL.as_secs(),
        }
    }
}

/// What the per-person features need, read and checked.
#[derive(Debug, Clone)]
pub struct PeopleConfig {
    /// Where Slack and Salesforce reach sfrelay (`https://…`, no trailing slash); `None`:
    /// connect links cannot be made.
    pub public_url: Option<String>,
    /// The org used when a person has chosen none (an admin can change it from Home).
    pub default_org: Option<SalesforceId>,
    /// Slack user Ids that may set the Default org.
    pub admins: Vec<String>,
    /// How long a connect link (its signed `state`) works.
    pub state_ttl: Duration,
    /// The connected app of each org a person can connect to (those with API access).
    pub apps: Vec<WebApp>,
}

/// The connected app a person signs in to for one org (OAuth web-server flow with PKCE).
#[derive(Debug, Clone)]
pub struct WebApp {
    pub org: SalesforceId,
    /// `https://login.salesforce.com` or the org's My Domain, without a trailing slash.
    pub login_url: String,
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
}

/// The parts of the file this reads, gathered by the loader.
pub(super) struct PeopleInput {
    /// `SFRELAY_PUBLIC_URL`, else the file's `public_url`.
    pub(super) public_url: Option<String>,
    pub(super) default_org: Option<String>,
    pub(super) admins: Vec<String>,
    pub(super) file: PeopleFile,
}

pub(super) fn read(
    input: PeopleInput,
    orgs: &[OrgConfig],
    salesforce: &[OrgCredentials],
    env: &dyn Env,
) -> Result<PeopleConfig, ConfigError> {
    let public_url = match input.public_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(public_url(text).map_err(|m| invalid("public_url", m))?),
    };
    let default_org = match input.default_org.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(wanted) => Some(find_org(orgs, wanted).ok_or_else(|| {
            invalid(
                "slack.default_org",
                format!(
                    "{wanted:?} is neither the name nor the Id of an [[orgs]] entry (known: {})",
                    orgs.iter()
                        .map(|o| format!("{:?}", o.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?),
    };
    for (i, admin) in input.admins.iter().enumerate() {
        if !is_user_id(admin) {
            return Err(invalid(
                format!("slack.admins[{i}]"),
                format!("{admin:?} is not a Slack user Id (U… or W…, as in a member's profile)"),
            ));
        }
    }
    if !(1..=3600).contains(&input.file.state_ttl_secs) {
        return Err(invalid(
            "people.state_ttl_secs",
            "must be between 1 and 3600",
        ));
    }
    let mut apps = Vec::new();
    for (i, org) in orgs.iter().enumerate() {
        let key = |field: &str| format!("orgs[{i}].salesforce.{field}");
        let sf = &org.salesforce;
        let Some(creds) = salesforce.iter().find(|c| c.org_id == org.id) else {
            if sf.oauth_client_id.is_some() || sf.oauth_client_secret_env.is_some() {
                return Err(invalid(
                    key("oauth_client_id"),
                    "a person's connection runs through the org's API access; configure \
                     client_id with the integration user (username and private_key_file, or \
                     refresh_token_env) too",
                ));
            }
            continue;
        };
        let own_app = sf
            .oauth_client_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty());
        if sf.oauth_client_id.is_some() && own_app.is_none() {
            return Err(invalid(key("oauth_client_id"), "is empty"));
        }
        let client_secret = match &sf.oauth_client_secret_env {
            Some(name) => match env.var(name).filter(|v| !v.is_empty()) {
                Some(value) => Some(Secret::new(value)),
                None => {
                    return Err(invalid(
                        key("oauth_client_secret_env"),
                        format!("environment variable {name} is not set or empty"),
                    ));
                }
            },
            // The refresh-token flow's secret belongs to the same app, not to another one.
            None if own_app.is_none() => match &creds.auth {
                Auth::RefreshToken { client_secret, .. } => client_secret.clone(),
                Auth::JwtBearer { .. } => None,
            },
            None => None,
        };
        apps.push(WebApp {
            org: org.id.clone(),
            login_url: creds.login_url.clone(),
            client_id: own_app.unwrap_or(&creds.client_id).to_owned(),
            client_secret,
        });
    }
    Ok(PeopleConfig {
        public_url,
        default_org,
        admins: input.admins,
        state_ttl: Duration::from_secs(input.file.state_ttl_secs),
        apps,
    })
}

/// Checks `public_url`: https (http only on loopback), a host, no query, fragment or
/// credentials; a path is kept (sfrelay behind a proxy under `/sfrelay`).
fn public_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("{text:?} is not a URL like https://sfrelay.example.com: {e}"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.host_str().is_none() {
        return Err(format!(
            "{text:?} must be an https:// URL (http:// only on 127.0.0.1 or localhost): \
             Salesforce sends people back to it after they sign in"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{text:?} must be a plain address, without a query, fragment or credentials"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The org `wanted` names, by its `name` or its Id (15 or 18 characters).
fn find_org(orgs: &[OrgConfig], wanted: &str) -> Option<SalesforceId> {
    if let Some(org) = orgs.iter().find(|o| o.name == wanted) {
        return Some(org.id.clone());
    }
    let id = SalesforceId::parse(wanted).ok()?;
    orgs.iter().find(|o| o.id == id).map(|o| o.id.clone())
}

/// A Slack user Id: `U…` (one workspace) or `W…` (Enterprise Grid), upper-case letters and
/// digits.
pub fn is_user_id(s: &str) -> bool {
    (9..=32).contains(&s.len())
        && s.starts_with(['U', 'W'])
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_https_or_loopback() {
        assert_eq!(
            public_url("https://sfrelay.example.com/").unwrap(),
            "https://sfrelay.example.com"
        );
        assert_eq!(
            public_url("https://example.com/sfrelay/").unwrap(),
            "https://example.com/sfrelay"
        );
        assert_eq!(
            public_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "http://sfrelay.example.com",
            "sfrelay.example.com",
            "https://example.com/?a=1",
            "https://example.com/#x",
            "https://u:p@example.com",
            "ftp://example.com",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slack_user_ids_are_recognised() {
        assert!(is_user_id("U0123ABCD"));
        assert!(is_user_id("W0123ABCDEF"));
        for bad in ["u0123abcd", "C0123ABCD", "U01", "U0123 ABCD", "U0123-ABCD"] {
            assert!(!is_user_id(bad), "{bad}");
        }
    }
}
