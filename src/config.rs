//! Configuration: `sfrelay.toml` plus the environment overrides of the contract, loaded and
//! validated once at start-up. A bad file stops the start with a message naming the key.
//! The Salesforce API credentials (`[orgs.salesforce]`) are read in the `credentials` module.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod credentials;
mod file;
mod org;
#[cfg(test)]
mod tests;

pub(crate) use credentials::valid_base_url;
pub use credentials::{Auth, DEFAULT_LOGIN_URL, OrgCredentials, signing_key};
use file::FileConfig;
pub use file::{ReconcileConfig, SalesforceFile};
use org::load_org;
pub use org::{ApiKeyConfig, JwtKeyConfig, OrgConfig};

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
    /// How `REDIS_URL` is read: one server, cluster seed nodes, or sentinels.
    pub redis: RedisMode,
    /// Replicas that must have an ingest write (`WAIT`) before it is answered 202; 0 = none.
    pub min_replicas_acked: u32,
    /// How long an ingest write waits for those replicas before answering 503.
    pub replica_ack_timeout: Duration,
    /// A worker that has not finished a take (with or without a job) for this long is stuck
    /// on Redis, and readiness says so.
    pub take_stuck_after: Duration,
}

/// Which Redis deployment `REDIS_URL` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    /// `REDIS_URL` lists seed nodes; every key shares one hash tag, so one slot.
    Cluster,
    /// `REDIS_URL` lists sentinels, which name the primary called `master`.
    Sentinel {
        master: String,
    },
}

/// The longest a take waits for a job, and the margin its reply may take beyond that.
pub const TAKE_WAIT: Duration = Duration::from_secs(1);
pub const TAKE_REPLY_MARGIN: Duration = Duration::from_secs(2);

/// `[queue]`, checked.
fn queue_config(q: file::QueueFile) -> Result<QueueConfig, ConfigError> {
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
    let redis = match (q.redis.as_str(), q.sentinel_master) {
        ("standalone", None) => RedisMode::Standalone,
        ("cluster", None) => RedisMode::Cluster,
        ("sentinel", Some(master)) if !master.trim().is_empty() => RedisMode::Sentinel {
            master: master.trim().to_string(),
        },
        ("sentinel", _) => {
            return Err(invalid(
                "queue.sentinel_master",
                "redis = \"sentinel\" needs the primary's name as the sentinels know it",
            ));
        }
        ("standalone" | "cluster", Some(_)) => {
            return Err(invalid(
                "queue.sentinel_master",
                "only used with redis = \"sentinel\"",
            ));
        }
        (other, _) => {
            return Err(invalid(
                "queue.redis",
                format!("{other:?} is not \"standalone\", \"cluster\" or \"sentinel\""),
            ));
        }
    };
    if !(1..=60_000).contains(&q.replica_ack_timeout_ms) {
        return Err(invalid(
            "queue.replica_ack_timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    // A healthy take finishes within its wait plus the reply margin, and a failed one is
    // retried within a few seconds; anything shorter would flag workers that are fine.
    let floor = (TAKE_WAIT + TAKE_REPLY_MARGIN).as_secs() + 2;
    if q.take_stuck_secs < floor {
        return Err(invalid(
            "queue.take_stuck_secs",
            format!(
                "must be at least {floor} (a take waits up to {}s for a job, plus {}s for the reply)",
                TAKE_WAIT.as_secs(),
                TAKE_REPLY_MARGIN.as_secs()
            ),
        ));
    }
    Ok(QueueConfig {
        namespace: q.namespace,
        high_water_mark: q.high_water_mark,
        retry_after: Duration::from_secs(q.retry_after_secs.max(1)),
        max_attempts: q.max_attempts,
        backoff_base: Duration::from_millis(q.backoff_base_ms.max(1)),
        backoff_cap: Duration::from_secs(q.backoff_cap_secs.max(1)),
        visibility_timeout: Duration::from_secs(q.visibility_timeout_secs.max(2)),
        max_age: Duration::from_secs(q.max_age_secs.max(60)),
        redis,
        min_replicas_acked: q.min_replicas_acked,
        replica_ack_timeout: Duration::from_millis(q.replica_ack_timeout_ms),
        take_stuck_after: Duration::from_secs(q.take_stuck_secs),
    })
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

        let queue = queue_config(file.queue)?;
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
            queue,
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
