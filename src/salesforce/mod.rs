//! A thin typed client for the Salesforce REST API: OAuth tokens per org (cached, refreshed
//! once on `INVALID_SESSION_ID`), SOQL queries with paging, single records, API-usage metrics,
//! and errors classified for the retry logic.

pub mod oauth;
pub mod soql;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::{ConfigError, Env, OrgConfig, Secret};
use crate::event::SalesforceId;

pub use oauth::{AccessToken, Auth};
pub use soql::{Soql, SoqlError};

/// The REST API version used unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// Where tokens come from unless `login_url` says otherwise (sandboxes use
/// `https://test.salesforce.com`).
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The most records one `query` collects across its pages.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
/// How long to wait after `REQUEST_LIMIT_EXCEEDED`: the daily API allowance is a rolling
/// 24-hour window, so hammering it does not help.
pub const REQUEST_LIMIT_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// A query record: the fields asked for plus Salesforce's `attributes` (`type`, `url`).
pub type Record = Map<String, Value>;

/// Why a Salesforce call failed, in the terms delivery decides on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SalesforceError {
    /// The client holds no credentials for this org.
    #[error("no Salesforce API credentials are configured for org {0}")]
    UnknownOrg(SalesforceId),
    /// The token endpoint refused (`invalid_grant`, `invalid_client_id`, …).
    #[error(
        "Salesforce refused the {flow} token request for org {org}: {error}: {description} (HTTP {status})"
    )]
    Auth {
        org: SalesforceId,
        flow: &'static str,
        status: u16,
        error: String,
        description: String,
    },
    /// The REST API answered an error (`[{"errorCode": …, "message": …}]`).
    #[error("Salesforce org {org} answered {code} (HTTP {status}): {message}")]
    Api {
        org: SalesforceId,
        status: u16,
        code: String,
        message: String,
    },
    /// An HTTP failure without a readable Salesforce error.
    #[error("Salesforce org {org} answered HTTP {status}")]
    Http { org: SalesforceId, status: u16 },
    #[error("cannot reach Salesforce for org {org}: {message}")]
    Transport { org: SalesforceId, message: String },
    #[error("unexpected answer from Salesforce for org {org}: {message}")]
    Decode { org: SalesforceId, message: String },
    /// A query matched more records than the client is configured to collect.
    #[error("the query for org {org} matches {total} records, more than the limit of {limit}")]
    TooManyRecords {
        org: SalesforceId,
        total: u64,
        limit: usize,
    },
    /// A caller passed a malformed object name, field name or record Id.
    #[error("invalid Salesforce request: {0}")]
    InvalidArgument(String),
    /// Credentials that cannot be used (a key that does not sign, a bad API version…).
    #[error("Salesforce client configuration for org {org}: {message}")]
    Config { org: String, message: String },
}

pub use crate::retry::Retry;

/// Salesforce `errorCode`s worth repeating; other codes with a 4xx status are permanent.
pub fn classify_code(code: &str) -> Retry {
    match code {
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" => Retry::Later,
        _ => Retry::Never,
    }
}

fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

impl SalesforceError {
    /// Classifies every failure: network trouble, 5xx, lock contention, API limits and
    /// Salesforce's "retry your request" are retried; everything else (bad query, missing
    /// field or record, no access, a refused grant, a session still invalid after one refresh)
    /// is permanent.
    pub fn retry(&self) -> Retry {
        match self {
            SalesforceError::Transport { .. } | SalesforceError::Decode { .. } => Retry::Later,
            SalesforceError::Http { status, .. } => {
                if transient_status(*status) {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::Api { status, code, .. } => {
                if classify_code(code) == Retry::Later || *status >= 500 {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::Auth { status, error, .. } => {
                if *status >= 500 || error == "unknown_error" {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::UnknownOrg(_)
            | SalesforceError::TooManyRecords { .. }
            | SalesforceError::InvalidArgument(_)
            | SalesforceError::Config { .. } => Retry::Never,
        }
    }

    /// The least wait before a retry is worth it, when Salesforce's answer implies one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SalesforceError::Api { code, .. } if code == "REQUEST_LIMIT_EXCEEDED" => {
                Some(REQUEST_LIMIT_BACKOFF)
            }
            _ => None,
        }
    }

    /// A short label for metrics (`result` label).
    pub fn label(&self) -> &str {
        match self {
            SalesforceError::UnknownOrg(_) => "unknown_org",
            SalesforceError::Auth { error, .. } => error,
            SalesforceError::Api { code, .. } => code,
            SalesforceError::Http { .. } => "http_error",
            SalesforceError::Transport { .. } => "transport_error",
            SalesforceError::Decode { .. } => "decode_error",
            SalesforceError::TooManyRecords { .. } => "too_many_records",
            SalesforceError::InvalidArgument(_) => "invalid_argument",
            SalesforceError::Config { .. } => "config_error",
        }
    }

    /// Whether Salesforce said the session is expired or invalid.
    fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            SalesforceError::Api { status: 401, .. } | SalesforceError::Http { status: 401, .. }
        )
    }
}

/// reqwest errors print the URL, which may hold a query; the kind and cause are enough.
pub(crate) fn transport_error(org: &SalesforceId, e: reqwest::Error) -> SalesforceError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    SalesforceError::Transport {
        org: org.clone(),
        message: format!("{kind} error: {}", e.without_url()),
    }
}

/// Keeps error messages from Salesforce to a log-friendly length.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

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
            env.var(name).ok_or_else(|| {
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
                oauth::signing_key(&pem)
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
        Ok(Some(OrgCredentials {
            org_id: org.id.clone(),
            login_url,
            client_id,
            auth,
        }))
    }
}

/// An https URL, or http on loopback (the emulator).
fn valid_base_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    parsed.host_str().is_some()
        && (parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback))
        && parsed.query().is_none()
}

/// Client tuning.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `v62.0`.
    pub api_version: String,
    /// Per HTTP request.
    pub timeout: Duration,
    /// The most records [`SalesforceClient::query`] collects.
    pub max_records: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            api_version: DEFAULT_API_VERSION.into(),
            timeout: Duration::from_secs(30),
            max_records: DEFAULT_MAX_RECORDS,
        }
    }
}

/// The API usage Salesforce last reported (`Sforce-Limit-Info: api-usage=used/limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// Reads the `api-usage=N/M` entry of a `Sforce-Limit-Info` header (which may list others,
/// such as `per-app-api-usage=…`).
pub fn parse_limit_info(value: &str) -> Option<ApiUsage> {
    value.split(',').find_map(|part| {
        let rest = part.trim().strip_prefix("api-usage=")?;
        let (used, limit) = rest.split_once('/')?;
        Some(ApiUsage {
            used: used.trim().parse().ok()?,
            limit: limit.trim().parse().ok()?,
        })
    })
}

/// One page of a query's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryPage {
    #[serde(rename = "totalSize")]
    pub total_size: u64,
    pub done: bool,
    #[serde(default)]
    pub records: Vec<Record>,
    #[serde(rename = "nextRecordsUrl", default)]
    pub next_records_url: Option<String>,
}

/// The token an org's calls use, and what is needed to get the next one.
#[derive(Default)]
struct TokenSlot {
    current: Option<Arc<AccessToken>>,
    /// A refresh token handed out by rotation, which replaces the configured one.
    rotated_refresh_token: Option<Secret<String>>,
    /// The last failed attempt, shared with callers that waited for it.
    last_error: Option<SalesforceError>,
}

struct OrgState {
    creds: OrgCredentials,
    signing_key: Option<EncodingKey>,
    /// Held while a token is fetched: concurrent callers wait for that one fetch.
    slot: tokio::sync::Mutex<TokenSlot>,
    /// Token fetches started, so a waiter can tell whether one ran while it waited.
    attempts: AtomicU64,
    usage: Mutex<Option<ApiUsage>>,
    org_label: String,
}

/// The Salesforce REST API of every configured org over one pooled HTTP client.
pub struct SalesforceClient {
    http: reqwest::Client,
    api_version: String,
    max_records: usize,
    orgs: HashMap<SalesforceId, OrgState>,
}

impl fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut orgs: Vec<_> = self.orgs.keys().map(SalesforceId::as_str).collect();
        orgs.sort_unstable();
        f.debug_struct("SalesforceClient")
            .field("api_version", &self.api_version)
            .field("orgs", &orgs)
            .finish_non_exhaustive()
    }
}

fn valid_api_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

/// An object or field API name: `Opportunity`, `Region__c`, `ns__Thing__c`.
fn is_api_name(s: &str) -> bool {
    s.len() <= 255
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SalesforceClient {
    pub fn new(
        orgs: Vec<OrgCredentials>,
        options: ClientOptions,
    ) -> Result<SalesforceClient, SalesforceError> {
        if !valid_api_version(&options.api_version) {
            return Err(SalesforceError::Config {
                org: "*".into(),
                message: format!(
                    "API version {:?} is not like {DEFAULT_API_VERSION}",
                    options.api_version
                ),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            // A redirect would be a misconfiguration; never carry a token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sfrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SalesforceError::Config {
                org: "*".into(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let mut states = HashMap::with_capacity(orgs.len());
        for mut creds in orgs {
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
                } => Some(
                    oauth::signing_key(private_key_pem.expose()).map_err(|message| {
                        SalesforceError::Config {
                            org: org.clone(),
                            message,
                        }
                    })?,
                ),
                Auth::RefreshToken { .. } => None,
            };
            let id = creds.org_id.clone();
            let state = OrgState {
                creds,
                signing_key,
                slot: tokio::sync::Mutex::new(TokenSlot::default()),
                attempts: AtomicU64::new(0),
                usage: Mutex::new(None),
                org_label: org.clone(),
            };
            if states.insert(id, state).is_some() {
                return Err(SalesforceError::Config {
                    org,
                    message: "the same org twice".into(),
                });
            }
        }
        Ok(SalesforceClient {
            http,
            api_version: options.api_version,
            max_records: options.max_records,
            orgs: states,
        })
    }

    /// Whether the client holds credentials for `org`.
    pub fn has_org(&self, org: &SalesforceId) -> bool {
        self.orgs.contains_key(org)
    }

    /// The API usage Salesforce reported on the org's last answer.
    pub fn api_usage(&self, org: &SalesforceId) -> Option<ApiUsage> {
        let state = self.orgs.get(org)?;
        *state.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn org(&self, org: &SalesforceId) -> Result<&OrgState, SalesforceError> {
        self.orgs
            .get(org)
            .ok_or_else(|| SalesforceError::UnknownOrg(org.clone()))
    }

    /// Gets a token now (e.g. to check the credentials at start-up); later calls reuse it.
    pub async fn authenticate(&self, org: &SalesforceId) -> Result<(), SalesforceError> {
        self.token(self.org(org)?).await.map(|_| ())
    }

    /// Runs `soql` and collects every page (following `nextRecordsUrl` until `done`), up to
    /// the configured record limit.
    pub async fn query(
        &self,
        org: &SalesforceId,
        soql: &Soql,
    ) -> Result<Vec<Record>, SalesforceError> {
        let mut page = self.query_page(org, soql).await?;
        let too_many = |total: u64| SalesforceError::TooManyRecords {
            org: org.clone(),
            total,
            limit: self.max_records,
        };
        if page.total_size > self.max_records as u64 {
            return Err(too_many(page.total_size));
        }
        let mut records = std::mem::take(&mut page.records);
        while !page.done {
            let Some(next) = page.next_records_url.take() else {
                return Err(SalesforceError::Decode {
                    org: org.clone(),
                    message: "a query page says it is not done but has no nextRecordsUrl".into(),
                });
            };
            page = self.query_more(org, &next).await?;
            records.append(&mut page.records);
            if records.len() > self.max_records {
                return Err(too_many(page.total_size.max(records.len() as u64)));
            }
        }
        Ok(records)
    }

    /// The first page of `soql`'s answer.
    pub async fn query_page(
        &self,
        org: &SalesforceId,
        soql: &Soql,
    ) -> Result<QueryPage, SalesforceError> {
        let state = self.org(org)?;
        let version = &self.api_version;
        self.get_json(state, |instance| {
            let mut url = api_url(org, instance, &format!("/services/data/{version}/query"))?;
            url.query_pairs_mut().append_pair("q", soql.as_str());
            Ok(url)
        })
        .await
    }

    /// The page a previous page's `nextRecordsUrl` points at.
    pub async fn query_more(
        &self,
        org: &SalesforceId,
        next_records_url: &str,
    ) -> Result<QueryPage, SalesforceError> {
        let state = self.org(org)?;
        // A path on the org's own host, never a URL that could send the token elsewhere.
        let safe = next_records_url.starts_with("/services/data/")
            && !next_records_url.contains("..")
            && !next_records_url.contains('\\')
            && !next_records_url.contains("//");
        if !safe {
            return Err(SalesforceError::Decode {
                org: org.clone(),
                message: format!("unexpected nextRecordsUrl {next_records_url:?}"),
            });
        }
        self.get_json(state, |instance| api_url(org, instance, next_records_url))
            .await
    }

    /// One record's `fields` (all fields when empty), by Id: `GET sobjects/<object>/<id>`.
    pub async fn get_record(
        &self,
        org: &SalesforceId,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Record, SalesforceError> {
        if !is_api_name(object) {
            return Err(SalesforceError::InvalidArgument(format!(
                "{object:?} is not an object API name"
            )));
        }
        let id = SalesforceId::parse(id)
            .map_err(|e| SalesforceError::InvalidArgument(format!("record Id {id:?}: {e}")))?;
        if let Some(bad) = fields.iter().find(|f| !is_api_name(f)) {
            return Err(SalesforceError::InvalidArgument(format!(
                "{bad:?} is not a field API name"
            )));
        }
        let state = self.org(org)?;
        let path = format!("/services/data/{}/sobjects/{object}/{id}", self.api_version);
        self.get_json(state, |instance| {
            let mut url = api_url(org, instance, &path)?;
            if !fields.is_empty() {
                url.query_pairs_mut()
                    .append_pair("fields", &fields.join(","));
            }
            Ok(url)
        })
        .await
    }

    /// GETs the URL `url_for` builds on the token's instance URL; on 401 gets a new token once
    /// and tries once more.
    async fn get_json<T: DeserializeOwned>(
        &self,
        state: &OrgState,
        url_for: impl Fn(&str) -> Result<reqwest::Url, SalesforceError>,
    ) -> Result<T, SalesforceError> {
        let token = self.token(state).await?;
        let bytes = match self
            .send(state, &token, url_for(&token.instance_url)?)
            .await
        {
            Err(e) if e.is_unauthorized() => {
                tracing::info!(
                    org = %state.creds.org_id,
                    "Salesforce session expired or invalid; getting a new access token"
                );
                let fresh = self.renew(state, &token).await?;
                self.send(state, &fresh, url_for(&fresh.instance_url)?)
                    .await?
            }
            other => other?,
        };
        serde_json::from_slice(&bytes).map_err(|e| SalesforceError::Decode {
            org: state.creds.org_id.clone(),
            message: e.to_string(),
        })
    }

    /// One GET with the token; counts it, reads the API usage and maps failures.
    async fn send(
        &self,
        state: &OrgState,
        token: &AccessToken,
        url: reqwest::Url,
    ) -> Result<bytes::Bytes, SalesforceError> {
        let result = self.send_inner(state, token, url).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!(
            "sfrelay_salesforce_calls_total",
            "org" => state.org_label.clone(),
            "result" => label.to_string()
        )
        .increment(1);
        if let Err(e) = &result {
            tracing::debug!(org = %state.creds.org_id, error = %e, "Salesforce call failed");
        }
        result
    }

    async fn send_inner(
        &self,
        state: &OrgState,
        token: &AccessToken,
        url: reqwest::Url,
    ) -> Result<bytes::Bytes, SalesforceError> {
        let org = &state.creds.org_id;
        let response = self
            .http
            .get(url)
            .bearer_auth(token.token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(org, e))?;
        let status = response.status().as_u16();
        if let Some(usage) = response
            .headers()
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            record_usage(state, usage);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(org, e))?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(api_error(org, status, &bytes))
        }
    }

    /// The org's current token, fetching one if there is none; concurrent callers wait for
    /// a single fetch.
    async fn token(&self, state: &OrgState) -> Result<Arc<AccessToken>, SalesforceError> {
        let seen = state.attempts.load(Ordering::SeqCst);
        let mut slot = state.slot.lock().await;
        if let Some(token) = &slot.current {
            return Ok(Arc::clone(token));
        }
        if state.attempts.load(Ordering::SeqCst) != seen
            && let Some(e) = &slot.last_error
        {
            return Err(e.clone());
        }
        self.fetch_token(state, &mut slot).await
    }

    /// A token to replace `stale`, which Salesforce refused; if another caller already
    /// replaced it, that one.
    async fn renew(
        &self,
        state: &OrgState,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        let seen = state.attempts.load(Ordering::SeqCst);
        let mut slot = state.slot.lock().await;
        match &slot.current {
            Some(current) if !Arc::ptr_eq(current, stale) => return Ok(Arc::clone(current)),
            Some(_) => slot.current = None,
            None => {
                if state.attempts.load(Ordering::SeqCst) != seen
                    && let Some(e) = &slot.last_error
                {
                    return Err(e.clone());
                }
            }
        }
        self.fetch_token(state, &mut slot).await
    }

    async fn fetch_token(
        &self,
        state: &OrgState,
        slot: &mut TokenSlot,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        state.attempts.fetch_add(1, Ordering::SeqCst);
        let result = self.request_token(state, slot).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!(
            "sfrelay_salesforce_token_requests_total",
            "org" => state.org_label.clone(),
            "result" => label.to_string()
        )
        .increment(1);
        match result {
            Ok(token) => {
                tracing::info!(
                    org = %state.creds.org_id,
                    flow = state.creds.auth.flow(),
                    instance_url = %token.instance_url,
                    "obtained a Salesforce access token"
                );
                if let Some(rotated) = &token.refresh_token {
                    slot.rotated_refresh_token = Some(rotated.clone());
                }
                let token = Arc::new(token);
                slot.current = Some(Arc::clone(&token));
                slot.last_error = None;
                Ok(token)
            }
            Err(e) => {
                tracing::warn!(org = %state.creds.org_id, error = %e, "cannot get a Salesforce access token");
                slot.current = None;
                slot.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn request_token(
        &self,
        state: &OrgState,
        slot: &TokenSlot,
    ) -> Result<AccessToken, SalesforceError> {
        let creds = &state.creds;
        let flow = creds.auth.flow();
        match &creds.auth {
            Auth::JwtBearer { username, .. } => {
                let key = state
                    .signing_key
                    .as_ref()
                    .expect("JWT bearer orgs have a signing key");
                let assertion = oauth::assertion(
                    key,
                    &creds.client_id,
                    username,
                    &creds.login_url,
                    chrono::Utc::now().timestamp(),
                )
                .map_err(|e| SalesforceError::Config {
                    org: state.org_label.clone(),
                    message: format!("cannot sign the JWT assertion: {e}"),
                })?;
                oauth::request_token(
                    &self.http,
                    &creds.org_id,
                    &creds.login_url,
                    flow,
                    &[
                        ("grant_type", oauth::JWT_BEARER_GRANT),
                        ("assertion", &assertion),
                    ],
                )
                .await
            }
            Auth::RefreshToken {
                refresh_token,
                client_secret,
            } => {
                let refresh_token = slot.rotated_refresh_token.as_ref().unwrap_or(refresh_token);
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose().as_str()),
                    ("client_id", creds.client_id.as_str()),
                ];
                if let Some(secret) = client_secret {
                    form.push(("client_secret", secret.expose().as_str()));
                }
                oauth::request_token(&self.http, &creds.org_id, &creds.login_url, flow, &form).await
            }
        }
    }
}

/// `path` (which may carry a query) on the instance host.
fn api_url(
    org: &SalesforceId,
    instance: &str,
    path: &str,
) -> Result<reqwest::Url, SalesforceError> {
    reqwest::Url::parse(&format!("{instance}{path}")).map_err(|e| SalesforceError::Decode {
        org: org.clone(),
        message: format!("cannot build a URL on {instance:?}: {e}"),
    })
}

fn record_usage(state: &OrgState, usage: ApiUsage) {
    *state.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
    let org = state.org_label.clone();
    metrics::gauge!("sfrelay_salesforce_api_used", "org" => org.clone()).set(usage.used as f64);
    metrics::gauge!("sfrelay_salesforce_api_limit", "org" => org.clone()).set(usage.limit as f64);
    metrics::gauge!("sfrelay_salesforce_api_remaining", "org" => org).set(usage.remaining() as f64);
}

/// Reads Salesforce's error answer: `[{"message": …, "errorCode": …}]` (or one such object).
fn api_error(org: &SalesforceId, status: u16, bytes: &[u8]) -> SalesforceError {
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        message: String,
        #[serde(rename = "errorCode", default)]
        error_code: String,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Item>),
        One(Item),
    }
    let first = match serde_json::from_slice::<Body>(bytes) {
        Ok(Body::Many(items)) => items.into_iter().next(),
        Ok(Body::One(item)) => Some(item),
        Err(_) => None,
    };
    match first {
        Some(item) if !item.error_code.is_empty() => SalesforceError::Api {
            org: org.clone(),
            status,
            code: item.error_code,
            message: clip(&item.message),
        },
        _ => SalesforceError::Http {
            org: org.clone(),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-private.pem");

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    fn api(status: u16, code: &str) -> SalesforceError {
        SalesforceError::Api {
            org: org(),
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn every_class_of_failure_is_classified() {
        for (status, code) in [
            (400, "UNABLE_TO_LOCK_ROW"),
            (403, "REQUEST_LIMIT_EXCEEDED"),
            (503, "SERVER_UNAVAILABLE"),
            (500, "UNKNOWN_EXCEPTION"),
        ] {
            assert_eq!(api(status, code).retry(), Retry::Later, "{code}");
        }
        for (status, code) in [
            (400, "MALFORMED_QUERY"),
            (400, "INVALID_FIELD"),
            (400, "INVALID_TYPE"),
            (401, "INVALID_SESSION_ID"),
            (404, "NOT_FOUND"),
            (403, "INSUFFICIENT_ACCESS"),
            (400, "INVALID_QUERY_LOCATOR"),
            (400, "SOMETHING_NEW"),
        ] {
            assert_eq!(api(status, code).retry(), Retry::Never, "{code}");
        }
        assert_eq!(
            api(403, "REQUEST_LIMIT_EXCEEDED").retry_after(),
            Some(REQUEST_LIMIT_BACKOFF)
        );
        assert_eq!(api(400, "UNABLE_TO_LOCK_ROW").retry_after(), None);
        let http = |status| SalesforceError::Http { org: org(), status };
        assert_eq!(http(502).retry(), Retry::Later);
        assert_eq!(http(429).retry(), Retry::Later);
        assert_eq!(http(404).retry(), Retry::Never);
        assert_eq!(http(302).retry(), Retry::Never);
        let transport = SalesforceError::Transport {
            org: org(),
            message: "x".into(),
        };
        assert_eq!(transport.retry(), Retry::Later);
        let grant = SalesforceError::Auth {
            org: org(),
            flow: "JWT bearer",
            status: 400,
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        };
        assert_eq!(grant.retry(), Retry::Never);
        assert_eq!(grant.label(), "invalid_grant");
        assert_eq!(
            SalesforceError::TooManyRecords {
                org: org(),
                total: 9,
                limit: 1
            }
            .retry(),
            Retry::Never
        );
    }

    #[test]
    fn error_bodies_are_read() {
        let e = api_error(
            &org(),
            400,
            br#"[{"message":"unexpected token: OR","errorCode":"MALFORMED_QUERY"}]"#,
        );
        assert_eq!(
            e,
            api(400, "MALFORMED_QUERY").with_message("unexpected token: OR")
        );
        let e = api_error(
            &org(),
            404,
            br#"{"errorCode":"NOT_FOUND","message":"gone"}"#,
        );
        assert!(matches!(e, SalesforceError::Api { ref code, .. } if code == "NOT_FOUND"));
        assert_eq!(
            api_error(&org(), 502, b"<html>bad gateway</html>"),
            SalesforceError::Http {
                org: org(),
                status: 502
            }
        );
        assert!(api_error(&org(), 401, b"[]").is_unauthorized());
        assert!(
            api_error(
                &org(),
                401,
                br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
            )
            .is_unauthorized()
        );
        let long = "é".repeat(400);
        assert!(clip(&long).len() <= 504);
    }

    impl SalesforceError {
        fn with_message(self, m: &str) -> Self {
            match self {
                SalesforceError::Api {
                    org, status, code, ..
                } => SalesforceError::Api {
                    org,
                    status,
                    code,
                    message: m.into(),
                },
                other => other,
            }
        }
    }

    #[test]
    fn limit_info_is_parsed() {
        assert_eq!(
            parse_limit_info("api-usage=123/15000"),
            Some(ApiUsage {
                used: 123,
                limit: 15000
            })
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=sample-app), api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                limit: 5000
            })
        );
        assert_eq!(parse_limit_info("api-usage=x/1"), None);
        assert_eq!(parse_limit_info(""), None);
        assert_eq!(ApiUsage { used: 9, limit: 5 }.remaining(), 0);
    }

    #[test]
    fn names_and_versions_are_checked() {
        assert!(valid_api_version("v62.0"));
        assert!(!valid_api_version("62.0"));
        assert!(!valid_api_version("v62"));
        assert!(!valid_api_version("v62.0/../x"));
        assert!(is_api_name("Opportunity"));
        assert!(is_api_name("ns__Thing__c"));
        assert!(!is_api_name("Opportunity/../x"));
        assert!(!is_api_name("_x"));
        assert!(!is_api_name(""));
        assert!(valid_base_url("https://login.salesforce.com"));
        assert!(valid_base_url("http://127.0.0.1:8080"));
        assert!(!valid_base_url("http://login.salesforce.com"));
        assert!(!valid_base_url("login.salesforce.com"));
    }

    fn jwt_creds() -> OrgCredentials {
        OrgCredentials {
            org_id: org(),
            login_url: "https://test.salesforce.com/".into(),
            client_id: "3MVG9".into(),
            auth: Auth::JwtBearer {
                username: "u@example.com".into(),
                private_key_pem: Secret::new(PRIVATE.to_vec()),
            },
        }
    }

    #[tokio::test]
    async fn client_checks_its_input_and_hides_secrets() {
        let client = SalesforceClient::new(vec![jwt_creds()], ClientOptions::default()).unwrap();
        let text = format!("{client:?}");
        assert!(
            text.contains("00D000000000001EAA") && !text.contains("PRIVATE"),
            "{text}"
        );
        assert!(client.has_org(&org()));
        assert_eq!(client.api_usage(&org()), None);
        let other = SalesforceId::parse("00D000000000002").unwrap();
        assert!(matches!(
            client
                .get_record(&other, "Account", "001000000000001", &[])
                .await,
            Err(SalesforceError::UnknownOrg(_))
        ));
        for (object, id, fields) in [
            ("Account/../x", "001000000000001", &[][..]),
            ("Account", "001'", &[][..]),
            ("Account", "001000000000001", &["Name", "Owner.Name"][..]),
        ] {
            assert!(matches!(
                client.get_record(&org(), object, id, fields).await,
                Err(SalesforceError::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            client
                .query_more(&org(), "https://evil.example/services/data/x")
                .await,
            Err(SalesforceError::Decode { .. })
        ));
        assert!(matches!(
            client
                .query_more(&org(), "/services/data/v62.0/query/../../x")
                .await,
            Err(SalesforceError::Decode { .. })
        ));

        let mut bad_key = jwt_creds();
        bad_key.auth = Auth::JwtBearer {
            username: "u".into(),
            private_key_pem: Secret::new(b"nope".to_vec()),
        };
        assert!(SalesforceClient::new(vec![bad_key], ClientOptions::default()).is_err());
        let options = ClientOptions {
            api_version: "62".into(),
            ..ClientOptions::default()
        };
        assert!(SalesforceClient::new(vec![jwt_creds()], options).is_err());
        assert!(
            SalesforceClient::new(vec![jwt_creds(), jwt_creds()], ClientOptions::default())
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_unreachable_login_is_retriable_and_shared() {
        let mut creds = jwt_creds();
        creds.login_url = "http://127.0.0.1:9".into();
        let client = SalesforceClient::new(vec![creds], ClientOptions::default()).unwrap();
        let soql = Soql::bind("SELECT Id FROM Account", &Map::new()).unwrap();
        let err = client.query(&org(), &soql).await.unwrap_err();
        assert!(matches!(err, SalesforceError::Transport { .. }), "{err}");
        assert_eq!(err.retry(), Retry::Later);
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
            outbound_message_token: None,
            instance_url: None,
            salesforce: sf,
            reconcile: Vec::new(),
            slack_token: None,
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
