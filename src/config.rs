//! Configuration: `sfrelay.toml` plus the environment overrides of the contract, loaded and
//! validated once at start-up. A bad file stops the start with a message naming the key.
//! The Salesforce API credentials (`[orgs.salesforce]`) are read in the `credentials` module.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::event::SalesforceId;

mod credentials;

pub(crate) use credentials::valid_base_url;
pub use credentials::{Auth, DEFAULT_LOGIN_URL, OrgCredentials, signing_key};

/// Why the configuration could not be loaded; each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A secret value (API key, token, signing secret). Its `Debug` and `Display` never show it, so
/// it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The only way to the value: every use is greppable.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The file as written by an operator. Every section has defaults so an empty file is valid.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    routes_dir: Option<PathBuf>,
    templates_dir: Option<PathBuf>,
    fixtures_dir: Option<PathBuf>,
    time_zone: Option<String>,
    #[serde(default)]
    ingest: IngestFile,
    #[serde(default)]
    queue: QueueFile,
    #[serde(default)]
    workers: WorkersFile,
    #[serde(default)]
    slack: SlackFile,
    #[serde(default)]
    orgs: Vec<OrgFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct IngestFile {
    max_body_bytes: usize,
    dedupe_window_secs: u64,
}

impl Default for IngestFile {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            dedupe_window_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct QueueFile {
    namespace: String,
    high_water_mark: u64,
    retry_after_secs: u64,
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_cap_secs: u64,
    visibility_timeout_secs: u64,
    max_age_secs: u64,
}

impl Default for QueueFile {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            high_water_mark: 100_000,
            retry_after_secs: 5,
            max_attempts: 12,
            backoff_base_ms: 500,
            backoff_cap_secs: 300,
            visibility_timeout_secs: 30,
            max_age_secs: 24 * 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct WorkersFile {
    count: usize,
    shutdown_grace_secs: u64,
}

impl Default for WorkersFile {
    fn default() -> Self {
        Self {
            count: 8,
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SlackFile {
    api_base: String,
    timeout_secs: u64,
    channel_messages_per_sec: f64,
    channel_burst: u32,
}

impl Default for SlackFile {
    fn default() -> Self {
        Self {
            api_base: "https://slack.com/api".into(),
            timeout_secs: 10,
            channel_messages_per_sec: 1.0,
            // Slack allows "short bursts >1" without saying how short; 3 is a short burst, and a
            // 429 still closes the channel for every replica for exactly its Retry-After.
            channel_burst: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgFile {
    id: String,
    name: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key_header: Option<String>,
    jwt_secret_env: Option<String>,
    jwt_secret_file: Option<PathBuf>,
    jwt_public_key_file: Option<PathBuf>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    outbound_message_token_env: Option<String>,
    outbound_message_token_file: Option<PathBuf>,
    salesforce: Option<SalesforceFile>,
    #[serde(default)]
    reconcile: Vec<ReconcileConfig>,
    slack: Option<OrgSlackFile>,
}

/// An org's own Slack bot token (`[orgs.slack]`), when it posts as another app or workspace.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OrgSlackFile {
    bot_token_env: Option<String>,
    bot_token_file: Option<PathBuf>,
}

/// Reconciliation of one object of one org: every `every_seconds`, records modified in the last
/// `window_minutes` (but not in the last `grace_minutes`, whose callouts may still be on their
/// way) are compared with what sfrelay last saw; missed changes are routed as events.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    pub object: String,
    /// The fields the routes watch: a difference in any of them is a missed change.
    pub fields: Vec<String>,
    /// More fields to fetch for the templates (`Name`, `Account.Name`, …), not compared.
    #[serde(default)]
    pub also: Vec<String>,
    #[serde(default = "default_reconcile_every")]
    pub every_seconds: u64,
    #[serde(default = "default_reconcile_window")]
    pub window_minutes: u64,
    #[serde(default = "default_reconcile_grace")]
    pub grace_minutes: u64,
}

fn default_reconcile_every() -> u64 {
    300
}
fn default_reconcile_window() -> u64 {
    30
}
fn default_reconcile_grace() -> u64 {
    2
}

/// The org's Salesforce API access (`[orgs.salesforce]`).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SalesforceFile {
    pub instance_url: Option<String>,
    pub login_url: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub refresh_token_env: Option<String>,
    pub client_secret_env: Option<String>,
}

/// The running configuration: validated, secrets resolved, immutable.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub routes_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Sample events `sfrelay check` renders every template against.
    pub fixtures_dir: PathBuf,
    /// The zone dates and times are shown in.
    pub time_zone: chrono_tz::Tz,
    pub max_body_bytes: usize,
    pub dedupe_window: Duration,
    /// `None` runs the in-process queue (not durable, single replica).
    pub redis_url: Option<Secret<String>>,
    pub queue: QueueConfig,
    pub workers: WorkersConfig,
    pub slack: SlackConfig,
    pub orgs: Vec<OrgConfig>,
    /// The orgs whose Salesforce API sfrelay may call (enrichment, schedules), with their
    /// OAuth credentials read and checked.
    pub salesforce: Vec<OrgCredentials>,
}

/// Queue tuning: where keys live and when ingest pushes back.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Part of every Redis key (`sfrelay:{namespace}:…`); one hash tag keeps all keys in one
    /// Redis Cluster slot, and separate namespaces let deployments (or tests) share a server.
    pub namespace: String,
    /// Ready jobs above which ingest answers 503 instead of growing the backlog further.
    pub high_water_mark: u64,
    /// The `Retry-After` ingest sends with a 503.
    pub retry_after: Duration,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A consumer silent this long is taken for dead and its in-flight jobs are recovered.
    pub visibility_timeout: Duration,
    /// A job older than this that fails (or is still being put off) is dead-lettered.
    pub max_age: Duration,
}

/// Worker pool size and how long a shutdown waits for jobs in flight.
#[derive(Debug, Clone)]
pub struct WorkersConfig {
    pub count: usize,
    pub shutdown_grace: Duration,
}

/// How to reach Slack. Without a token, messages go to the log instead.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    pub api_base: String,
    pub bot_token: Option<Secret<String>>,
    pub timeout: Duration,
    /// One message per this interval per channel, on average, across all replicas…
    pub channel_interval: Duration,
    /// …with bursts of up to this many.
    pub channel_burst: u32,
}

/// One Salesforce org allowed to call sfrelay, with the credentials that prove it is that org.
#[derive(Debug, Clone)]
pub struct OrgConfig {
    pub id: SalesforceId,
    pub name: String,
    pub api_key: Option<ApiKeyConfig>,
    pub jwt: Vec<JwtKeyConfig>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub outbound_message_token: Option<Secret<String>>,
    /// `https://acme.my.salesforce.com`: record links in messages.
    pub instance_url: Option<String>,
    pub salesforce: SalesforceFile,
    pub reconcile: Vec<ReconcileConfig>,
    /// The org's own Slack bot token; `None` posts with `SLACK_BOT_TOKEN`.
    pub slack_token: Option<Secret<String>>,
}

impl OrgConfig {
    /// Whether the org can authenticate at all.
    pub fn has_credential(&self) -> bool {
        self.api_key.is_some() || !self.jwt.is_empty() || self.outbound_message_token.is_some()
    }
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

/// Where configuration values come from besides the file: the process environment in
/// production, a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Loads `path` (or, when `None`, only defaults) and applies the environment overrides.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let (file, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (file, base)
            }
            None => (FileConfig::default(), PathBuf::new()),
        };
        Self::from_file(file, &base, env)
    }

    fn from_file(file: FileConfig, base: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        let listen_text = env
            .var("SFRELAY_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;

        let q = file.queue;
        if q.namespace.is_empty()
            || !q
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "queue.namespace",
                "must be non-empty letters, digits, '-' or '_'",
            ));
        }
        if q.max_attempts == 0 {
            return Err(invalid("queue.max_attempts", "must be at least 1"));
        }
        if q.high_water_mark == 0 {
            return Err(invalid("queue.high_water_mark", "must be at least 1"));
        }
        if file.workers.count == 0 || file.workers.count > 1024 {
            return Err(invalid("workers.count", "must be between 1 and 1024"));
        }
        if file.ingest.max_body_bytes < 1024 {
            return Err(invalid("ingest.max_body_bytes", "must be at least 1024"));
        }

        let rate = file.slack.channel_messages_per_sec;
        if !(rate.is_finite() && rate > 0.0 && rate <= 100.0) {
            return Err(invalid(
                "slack.channel_messages_per_sec",
                "must be a number above 0 and at most 100",
            ));
        }
        let api_base = env
            .var("SLACK_API_BASE")
            .unwrap_or(file.slack.api_base)
            .trim_end_matches('/')
            .to_string();
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(invalid(
                "slack.api_base",
                format!("{api_base:?} must be an http(s) URL"),
            ));
        }

        let mut orgs = Vec::with_capacity(file.orgs.len());
        for (i, org) in file.orgs.into_iter().enumerate() {
            orgs.push(load_org(i, org, base, env)?);
        }
        for (i, org) in orgs.iter().enumerate() {
            if orgs[..i].iter().any(|o| o.id == org.id) {
                return Err(invalid(format!("orgs[{i}].id"), "the same org twice"));
            }
        }
        if !listen.ip().is_loopback() && !orgs.iter().any(OrgConfig::has_credential) {
            return Err(invalid(
                "listen",
                format!(
                    "{listen} is reachable from other machines but no org has a credential; \
                     configure [[orgs]] with api_key_env, jwt_secret_env or jwt_public_key_file, \
                     or listen on 127.0.0.1"
                ),
            ));
        }

        let mut salesforce = Vec::new();
        for (i, org) in orgs.iter().enumerate() {
            if let Some(credentials) = OrgCredentials::from_org_config(i, org, base, env)? {
                salesforce.push(credentials);
            }
        }

        let time_zone_name = file.time_zone.unwrap_or_else(|| "UTC".into());
        let time_zone: chrono_tz::Tz = time_zone_name.parse().map_err(|_| {
            invalid(
                "time_zone",
                format!("{time_zone_name:?} is not an IANA time zone like America/New_York"),
            )
        })?;

        Ok(Config {
            listen,
            routes_dir: base.join(file.routes_dir.unwrap_or_else(|| "routes".into())),
            templates_dir: base.join(file.templates_dir.unwrap_or_else(|| "templates".into())),
            fixtures_dir: base.join(file.fixtures_dir.unwrap_or_else(|| "tests/fixtures".into())),
            time_zone,
            max_body_bytes: file.ingest.max_body_bytes,
            dedupe_window: Duration::from_secs(file.ingest.dedupe_window_secs.max(1)),
            redis_url: env.var("REDIS_URL").map(Secret::new),
            queue: QueueConfig {
                namespace: q.namespace,
                high_water_mark: q.high_water_mark,
                retry_after: Duration::from_secs(q.retry_after_secs.max(1)),
                max_attempts: q.max_attempts,
                backoff_base: Duration::from_millis(q.backoff_base_ms.max(1)),
                backoff_cap: Duration::from_secs(q.backoff_cap_secs.max(1)),
                visibility_timeout: Duration::from_secs(q.visibility_timeout_secs.max(2)),
                max_age: Duration::from_secs(q.max_age_secs.max(60)),
            },
            workers: WorkersConfig {
                count: file.workers.count,
                shutdown_grace: Duration::from_secs(file.workers.shutdown_grace_secs),
            },
            slack: SlackConfig {
                api_base,
                bot_token: env.var("SLACK_BOT_TOKEN").map(Secret::new),
                timeout: Duration::from_secs(file.slack.timeout_secs.max(1)),
                channel_interval: Duration::from_secs_f64(
                    1.0 / file.slack.channel_messages_per_sec,
                ),
                channel_burst: file.slack.channel_burst.max(1),
            },
            orgs,
            salesforce,
        })
    }
}

/// Whether `s` looks like a Slack conversation Id (public `C…`, private `G…`, DM `D…`).
pub fn is_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

fn load_org(i: usize, org: OrgFile, base: &Path, env: &dyn Env) -> Result<OrgConfig, ConfigError> {
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
    let salesforce = org.salesforce.unwrap_or_default();
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
    )?
    .map(Secret::new);

    Ok(OrgConfig {
        name: org.name.unwrap_or_else(|| id.to_string()),
        id,
        api_key,
        jwt,
        jwt_issuer: org.jwt_issuer,
        jwt_audience: org.jwt_audience,
        outbound_message_token,
        instance_url,
        salesforce,
        reconcile,
        slack_token,
    })
}

/// Reads a secret named by an environment variable or a file; naming one that is missing is an
/// error (a typo must not silently disable a credential).
fn secret_from(
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
        (Some(name), None) => env.var(name).map(Some).ok_or_else(|| {
            invalid(
                env_key,
                format!("environment variable {name} is not set or empty"),
            )
        }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn load(toml_text: &str, vars: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(toml_text).map_err(|e| ConfigError::Parse {
            path: "sfrelay.toml".into(),
            message: e.to_string(),
        })?;
        Config::from_file(file, Path::new(""), &MapEnv(vars.iter().copied().collect()))
    }

    #[test]
    fn empty_file_gives_the_embedded_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.redis_url.is_none());
        assert!(c.slack.bot_token.is_none());
        assert_eq!(c.slack.api_base, "https://slack.com/api");
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.dedupe_window, Duration::from_secs(86400));
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            "listen = \"127.0.0.1:9000\"\n[slack]\napi_base = \"http://a\"",
            &[
                ("SFRELAY_LISTEN", "127.0.0.1:9100"),
                ("SLACK_API_BASE", "http://127.0.0.1:1/api/"),
                ("SLACK_BOT_TOKEN", "xoxb-1"),
                ("REDIS_URL", "redis://127.0.0.1:6390"),
            ],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        assert_eq!(c.slack.api_base, "http://127.0.0.1:1/api");
        assert_eq!(c.slack.bot_token.unwrap().expose(), "xoxb-1");
        assert!(c.redis_url.is_some());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("[queue]\nhigh_watermark = 3", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("high_watermark"), "{err}");
    }

    #[test]
    fn missing_secret_env_is_named() {
        let err = load(
            "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"NOPE\"",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("orgs[0].api_key_env") && err.contains("NOPE"),
            "{err}"
        );
    }

    #[test]
    fn bad_org_id_is_named() {
        let err = load("[[orgs]]\nid = \"006Hs00000BkXyzIAF\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("orgs[0].id"), "{err}");
    }

    #[test]
    fn public_listen_without_credentials_is_refused() {
        let err = load("listen = \"0.0.0.0:8080\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("listen:"), "{err}");
        let ok = load(
            "listen = \"0.0.0.0:8080\"\n[[orgs]]\nid = \"00D5g000004ABCd\"\napi_key_env = \"K\"",
            &[("K", "0123456789abcdef0123")],
        )
        .unwrap();
        assert_eq!(ok.orgs[0].id.as_str(), "00D5g000004ABCdEAO");
        assert_eq!(ok.orgs[0].api_key.as_ref().unwrap().header, "X-Api-Key");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = load(
            "[[orgs]]\nid = \"00D5g000004ABCdEAO\"\napi_key_env = \"K\"\njwt_secret_env = \"J\"",
            &[
                ("K", "super-secret-api-key-1"),
                ("J", "jwt-secret-jwt-secret-jwt-secret-1234"),
                ("SLACK_BOT_TOKEN", "xoxb-very-secret"),
                ("REDIS_URL", "redis://:pw-secret@127.0.0.1"),
            ],
        )
        .unwrap();
        let debug = format!("{c:?}");
        for s in ["super-secret", "jwt-secret", "xoxb-very", "pw-secret"] {
            assert!(!debug.contains(s), "{s} leaked: {debug}");
        }
    }

    #[test]
    fn channel_ids() {
        assert!(is_channel_id("C0DEALDESK"));
        assert!(is_channel_id("G01234567"));
        assert!(!is_channel_id("#deal-desk"));
        assert!(!is_channel_id("deal-desk"));
    }
}
