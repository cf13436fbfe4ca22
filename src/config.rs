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
mod people;
mod pubsub;
mod surfaces;
#[cfg(test)]
mod tests;

pub(crate) use credentials::valid_base_url;
pub use credentials::{Auth, DEFAULT_LOGIN_URL, OrgCredentials, signing_key};
use file::FileConfig;
pub use file::{QueueBackend, ReconcileConfig, SalesforceFile};
use org::load_org;
pub use org::{ActAs, ApiKeyConfig, JwtKeyConfig, OrgConfig};
pub use people::{DEFAULT_STATE_TTL, PeopleConfig, WebApp, is_user_id};
pub use pubsub::{DEFAULT_PUBSUB_ENDPOINT, PubsubConfig, Start, SubscriptionConfig};
pub use surfaces::{CardsConfig, DEFAULT_COMMAND};

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
    /// `/metrics` on its own address; `None` serves it on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub http: HttpConfig,
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
    /// `SFRELAY_ENCRYPTION_KEY`: encrypts tokens kept in Redis (rotated refresh tokens).
    pub encryption_key: Option<Secret<[u8; 32]>>,
    /// The Pub/Sub subscriber's tuning (`[pubsub]`).
    pub pubsub: PubsubConfig,
    /// Per-person connections, Preferred and Default orgs (`public_url`, `[slack]
    /// default_org` and `admins`).
    pub people: PeopleConfig,
    /// What record cards show, per object (`[cards.<Object>]`).
    pub cards: CardsConfig,
}

/// Limits at the HTTP edge (`[http]`).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// A connection that has not sent a whole request head in this long is closed.
    pub header_read_timeout: Duration,
    /// A body not received in this long (once the caller is authenticated) is answered 408.
    pub body_timeout: Duration,
    /// A request not answered in this long is answered 503.
    pub request_timeout: Duration,
    /// Ingest requests served at once; more are answered 503 + `Retry-After` at once.
    pub max_concurrent_requests: usize,
}

/// Queue tuning: where keys live and when ingest pushes back.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Redis or the in-process queue.
    pub backend: QueueBackend,
    /// Whether `[queue] backend` was written in the file (rather than inferred from whether
    /// `REDIS_URL` is set): only an explicit `memory` may run where other machines connect.
    pub backend_explicit: bool,
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
    /// A job whose worker died this many times while running it is dead-lettered.
    pub max_recoveries: u32,
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
fn queue_config(q: file::QueueFile, backend: QueueBackend) -> Result<QueueConfig, ConfigError> {
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
    if q.max_recoveries == 0 {
        return Err(invalid("queue.max_recoveries", "must be at least 1"));
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
        backend,
        backend_explicit: q.backend.is_some(),
        max_recoveries: q.max_recoveries,
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
    /// What one job may hold of Salesforce's answers.
    pub caps: crate::jobs::Caps,
    /// How long an enrichment read by record Id waits for others to share its query (zero:
    /// each event queries alone).
    pub enrich_batch_window: Duration,
}

/// How to reach Slack. Without a token, messages go to the log instead.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Log what would be posted instead of posting, even with a token.
    pub dry_run: bool,
    pub api_base: String,
    pub bot_token: Option<Secret<String>>,
    pub timeout: Duration,
    /// One message per this interval per channel, on average, across all replicas…
    pub channel_interval: Duration,
    /// …with bursts of up to this many.
    pub channel_burst: u32,
    /// How often a paused app's token is tried again (`auth.test`).
    pub token_check_interval: Duration,
    /// Verifies the default app's inbound requests; `None` (with no org's own) turns them off.
    pub signing_secret: Option<Secret<String>>,
    /// The slash command sfrelay answers (`/sf`).
    pub command: String,
}

/// Where configuration values come from besides the file: the process environment in
/// production, a map in tests.
pub trait Env {
    /// The value as set, an empty one included (a blank key of a Kubernetes Secret is set but
    /// empty, and on a public address that is an error, not "unset"); `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A value that has a default: empty counts as unset.
fn optional_var(env: &dyn Env, name: &str) -> Option<String> {
    env.var(name).filter(|v| !v.is_empty())
}

/// A value a public deployment must fill in: set but empty is refused there, naming the
/// variable and what to do instead; on loopback empty counts as unset (the embedded defaults).
fn required_var(
    env: &dyn Env,
    name: &str,
    listen: SocketAddr,
    instead: &str,
) -> Result<Option<String>, ConfigError> {
    match env.var(name) {
        Some(v) if v.is_empty() && !listen.ip().is_loopback() => Err(invalid(
            name,
            format!(
                "is set but empty, and sfrelay listens on {listen} (reachable from other \
                 machines); give it a value, or {instead}"
            ),
        )),
        Some(v) if v.is_empty() => Ok(None),
        other => Ok(other),
    }
}

const REDIS_INSTEAD: &str =
    "set queue.backend = \"memory\" to run on the in-process queue (not durable, one replica)";
const SLACK_INSTEAD: &str = "set slack.dry_run = true (or SFRELAY_SLACK_DRY_RUN=true) to log messages instead of posting them";

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
        let listen_text = optional_var(env, "SFRELAY_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;

        let public = !listen.ip().is_loopback();
        let metrics_listen = match optional_var(env, "SFRELAY_METRICS_LISTEN")
            .or(file.metrics_listen)
            .filter(|v| !v.is_empty())
        {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    invalid(
                        "metrics_listen",
                        format!("{text:?} is not an address like 127.0.0.1:9090"),
                    )
                })?;
                if addr == listen && addr.port() != 0 {
                    return Err(invalid(
                        "metrics_listen",
                        format!(
                            "{addr} is the main listen address; give another or leave it empty"
                        ),
                    ));
                }
                Some(addr)
            }
        };
        let http = http_config(&file.http)?;

        let redis_url = if file.queue.backend == Some(QueueBackend::Memory) {
            optional_var(env, "REDIS_URL")
        } else {
            required_var(env, "REDIS_URL", listen, REDIS_INSTEAD)?
        };
        let backend = match (file.queue.backend, &redis_url) {
            (Some(QueueBackend::Redis), None) => {
                return Err(invalid(
                    "queue.backend",
                    "\"redis\" needs REDIS_URL, which is not set",
                ));
            }
            (Some(QueueBackend::Memory), Some(_)) => {
                return Err(invalid(
                    "queue.backend",
                    "is \"memory\" but REDIS_URL is set; unset REDIS_URL or use \"redis\"",
                ));
            }
            (Some(backend), _) => backend,
            (None, Some(_)) => QueueBackend::Redis,
            (None, None) => QueueBackend::Memory,
        };
        let queue = queue_config(file.queue, backend)?;
        if file.workers.count == 0 || file.workers.count > 1024 {
            return Err(invalid("workers.count", "must be between 1 and 1024"));
        }
        if file.workers.shutdown_grace_secs >= queue.visibility_timeout.as_secs() {
            return Err(invalid(
                "workers.shutdown_grace_secs",
                format!(
                    "must be shorter than queue.visibility_timeout_secs ({} s): a job still \
                     running at the end of the grace period would meanwhile be taken for \
                     abandoned and run again by another replica",
                    queue.visibility_timeout.as_secs()
                ),
            ));
        }
        let w = &file.workers;
        for (key, value) in [
            ("workers.digest_max_records", w.digest_max_records),
            ("workers.digest_max_bytes", w.digest_max_bytes),
            ("workers.enrich_max_rows", w.enrich_max_rows),
            ("workers.enrich_max_bytes", w.enrich_max_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if w.enrich_batch_window_ms > 1000 {
            return Err(invalid(
                "workers.enrich_batch_window_ms",
                "must be at most 1000: events wait this long for their enrichment",
            ));
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
        let api_base = optional_var(env, "SLACK_API_BASE")
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
        if public {
            for (i, org) in orgs.iter().enumerate().filter(|(_, o)| !o.jwt.is_empty()) {
                for (field, value, what) in [
                    ("jwt_issuer", &org.jwt_issuer, "iss"),
                    ("jwt_audience", &org.jwt_audience, "aud"),
                ] {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(invalid(
                            format!("orgs[{i}].{field}"),
                            format!(
                                "required when sfrelay listens on {listen} (reachable from other \
                                 machines) and the org accepts JWTs: the `{what}` its tokens carry"
                            ),
                        ));
                    }
                }
            }
        }
        if public && !orgs.iter().any(OrgConfig::has_credential) {
            return Err(invalid(
                "listen",
                format!(
                    "{listen} is reachable from other machines but no org has a credential; \
                     configure [[orgs]] with api_key_env, jwt_secret_env or jwt_public_key_file, \
                     or listen on 127.0.0.1"
                ),
            ));
        }

        let pubsub = pubsub::read(file.pubsub)?;

        let mut salesforce = Vec::new();
        for (i, org) in orgs.iter().enumerate() {
            if let Some(credentials) = OrgCredentials::from_org_config(i, org, base, env)? {
                salesforce.push(credentials);
            }
        }

        let encryption_key = match required_var(
            env,
            ENCRYPTION_KEY_ENV,
            listen,
            "leave it unset when no org uses the refresh-token flow",
        )? {
            Some(text) => Some(
                encryption_key(&text).map_err(|message| invalid(ENCRYPTION_KEY_ENV, message))?,
            ),
            None => None,
        };
        if encryption_key.is_none()
            && !listen.ip().is_loopback()
            && let Some(org) = salesforce
                .iter()
                .find(|c| matches!(c.auth, Auth::RefreshToken { .. }))
        {
            return Err(invalid(
                ENCRYPTION_KEY_ENV,
                format!(
                    "is required: org {} uses the refresh-token flow and {listen} is reachable \
                     from other machines; a refresh token Salesforce rotates is kept in Redis \
                     encrypted with this key, so a restart or another replica does not present \
                     the revoked original. Set it to 32 random bytes, base64 \
                     (`openssl rand -base64 32`)",
                    org.org_id
                ),
            ));
        }
        let people = people::read(
            people::PeopleInput {
                public_url: optional_var(env, "SFRELAY_PUBLIC_URL").or(file.public_url),
                default_org: file.slack.default_org,
                admins: file.slack.admins,
                file: file.people,
            },
            &orgs,
            &salesforce,
            env,
        )?;
        let slack_check = file.slack.token_check_interval_secs;
        if !(slack_check.is_finite() && (0.05..=3600.0).contains(&slack_check)) {
            return Err(invalid(
                "slack.token_check_interval_secs",
                "must be a number of seconds from 0.05 to 3600",
            ));
        }

        let time_zone_name = file.time_zone.unwrap_or_else(|| "UTC".into());
        let time_zone: chrono_tz::Tz = time_zone_name.parse().map_err(|_| {
            invalid(
                "time_zone",
                format!("{time_zone_name:?} is not an IANA time zone like America/New_York"),
            )
        })?;

        // An overlay that has no file of its own (Kubernetes) can ask for it explicitly too.
        let dry_run = match optional_var(env, "SFRELAY_SLACK_DRY_RUN").as_deref() {
            None => file.slack.dry_run,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(invalid(
                    "SFRELAY_SLACK_DRY_RUN",
                    format!("{other:?} is not true or false"),
                ));
            }
        };
        let bot_token = if dry_run {
            optional_var(env, "SLACK_BOT_TOKEN")
        } else {
            required_var(env, "SLACK_BOT_TOKEN", listen, SLACK_INSTEAD)?
        };

        // Empty or unset means Slack inbound is off (SPEC §7), on any address.
        let signing_secret = optional_var(env, &file.slack.signing_secret_env).map(Secret::new);

        Ok(Config {
            listen,
            metrics_listen,
            http,
            routes_dir: base.join(file.routes_dir.unwrap_or_else(|| "routes".into())),
            templates_dir: base.join(file.templates_dir.unwrap_or_else(|| "templates".into())),
            fixtures_dir: base.join(file.fixtures_dir.unwrap_or_else(|| "tests/fixtures".into())),
            time_zone,
            max_body_bytes: file.ingest.max_body_bytes,
            dedupe_window: Duration::from_secs(file.ingest.dedupe_window_secs.max(1)),
            redis_url: redis_url.map(Secret::new),
            queue,
            workers: WorkersConfig {
                count: file.workers.count,
                shutdown_grace: Duration::from_secs(file.workers.shutdown_grace_secs),
                caps: crate::jobs::Caps {
                    digest_max_records: file.workers.digest_max_records,
                    digest_max_bytes: file.workers.digest_max_bytes,
                    enrich_max_rows: file.workers.enrich_max_rows,
                    enrich_max_bytes: file.workers.enrich_max_bytes,
                },
                enrich_batch_window: Duration::from_millis(file.workers.enrich_batch_window_ms),
            },
            slack: SlackConfig {
                dry_run,
                api_base,
                bot_token: bot_token.map(Secret::new),
                timeout: Duration::from_secs(file.slack.timeout_secs.max(1)),
                channel_interval: Duration::from_secs_f64(
                    1.0 / file.slack.channel_messages_per_sec,
                ),
                channel_burst: file.slack.channel_burst.max(1),
                token_check_interval: Duration::from_secs_f64(slack_check),
                signing_secret,
                command: surfaces::command(&file.slack.command)?,
            },
            cards: surfaces::cards(file.cards)?,
            orgs,
            pubsub,
            salesforce,
            encryption_key,
            people,
        })
    }
}

/// The environment variable of the key that encrypts tokens at rest.
pub const ENCRYPTION_KEY_ENV: &str = "SFRELAY_ENCRYPTION_KEY";

/// Reads the encryption key: base64 of 32 random bytes. The message never repeats the value.
fn encryption_key(text: &str) -> Result<Secret<[u8; 32]>, String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let hint = "it must be 32 random bytes, base64-encoded (`openssl rand -base64 32`)";
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| format!("is not base64; {hint}"))?;
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("decodes to {} bytes, not 32; {hint}", bytes.len()))?;
    if key.iter().all(|b| *b == key[0]) {
        return Err(format!("is one byte repeated, not random; {hint}"));
    }
    Ok(Secret::new(key))
}

impl Config {
    /// Refuses to serve where other machines connect with the fallbacks meant for trying sfrelay
    /// out: the in-process queue (loses what is queued when the process stops) and the log sink
    /// (messages recorded as delivered that nobody sees). Each is allowed there only when asked
    /// for explicitly. `sfrelay check` does not need either, so only serving asks this.
    pub fn refuse_silent_fallbacks(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        let unset = |name: &str, instead: &str| {
            invalid(
                name,
                format!(
                    "is not set, and sfrelay listens on {} (reachable from other machines); set \
                     it, or {instead}",
                    self.listen
                ),
            )
        };
        if self.queue.backend == QueueBackend::Memory && !self.queue.backend_explicit {
            return Err(unset("REDIS_URL", REDIS_INSTEAD));
        }
        if self.slack.bot_token.is_none() && !self.slack.dry_run {
            return Err(unset("SLACK_BOT_TOKEN", SLACK_INSTEAD));
        }
        Ok(())
    }
}

/// `[http]`, checked: every timeout at least a second, the body's within the request's.
fn http_config(file: &file::HttpFile) -> Result<HttpConfig, ConfigError> {
    for (key, value) in [
        (
            "http.header_read_timeout_secs",
            file.header_read_timeout_secs,
        ),
        ("http.body_timeout_secs", file.body_timeout_secs),
        ("http.request_timeout_secs", file.request_timeout_secs),
    ] {
        if value == 0 {
            return Err(invalid(key, "must be at least 1"));
        }
    }
    if file.body_timeout_secs > file.request_timeout_secs {
        return Err(invalid(
            "http.body_timeout_secs",
            format!(
                "must not be longer than http.request_timeout_secs ({} s)",
                file.request_timeout_secs
            ),
        ));
    }
    if !(1..=65_536).contains(&file.max_concurrent_requests) {
        return Err(invalid(
            "http.max_concurrent_requests",
            "must be between 1 and 65536",
        ));
    }
    Ok(HttpConfig {
        header_read_timeout: Duration::from_secs(file.header_read_timeout_secs),
        body_timeout: Duration::from_secs(file.body_timeout_secs),
        request_timeout: Duration::from_secs(file.request_timeout_secs),
        max_concurrent_requests: file.max_concurrent_requests,
    })
}

/// Whether `s` looks like a Slack conversation Id (public `C…`, private `G…`, DM `D…`).
pub fn is_channel_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod encryption_key_tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_encryption_key_is_32_random_bytes_in_base64() {
        let good = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        assert_eq!(super::encryption_key(&good).unwrap().expose()[31], 31);
        assert!(super::encryption_key(good.trim_end_matches('=')).is_ok());
        for bad in ["not base64!", "c2hvcnQ=", &STANDARD.encode([7u8; 32])] {
            let message = super::encryption_key(bad).unwrap_err();
            assert!(message.contains("32"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
    }
}
