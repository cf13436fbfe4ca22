//! The file as an operator writes it: every section with its defaults, parsed strictly.

use std::path::PathBuf;

use serde::Deserialize;

/// The file as written by an operator. Every section has defaults so an empty file is valid.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) metrics_listen: Option<String>,
    pub(super) routes_dir: Option<PathBuf>,
    pub(super) templates_dir: Option<PathBuf>,
    pub(super) fixtures_dir: Option<PathBuf>,
    pub(super) time_zone: Option<String>,
    /// Where Slack and Salesforce reach sfrelay (OAuth redirects); see `config::people`.
    pub(super) public_url: Option<String>,
    #[serde(default)]
    pub(super) people: super::people::PeopleFile,
    #[serde(default)]
    pub(super) ingest: IngestFile,
    #[serde(default)]
    pub(super) http: HttpFile,
    #[serde(default)]
    pub(super) queue: QueueFile,
    #[serde(default)]
    pub(super) workers: WorkersFile,
    #[serde(default)]
    pub(super) slack: SlackFile,
    #[serde(default)]
    pub(super) orgs: Vec<OrgFile>,
    #[serde(default)]
    pub(super) pubsub: super::pubsub::PubsubFile,
    /// `[cards.<Object>]`: the fields a record card may show.
    #[serde(default)]
    pub(super) cards: std::collections::BTreeMap<String, super::surfaces::CardFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct IngestFile {
    pub(super) max_body_bytes: usize,
    pub(super) dedupe_window_secs: u64,
}

impl Default for IngestFile {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            dedupe_window_secs: 24 * 3600,
        }
    }
}

/// Limits at the HTTP edge. The defaults answer a Salesforce callout (which gives up after 120 s)
/// well within its limit, and keep slow or hostile clients from holding connections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct HttpFile {
    pub(super) header_read_timeout_secs: u64,
    pub(super) body_timeout_secs: u64,
    pub(super) request_timeout_secs: u64,
    pub(super) max_concurrent_requests: usize,
}

impl Default for HttpFile {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            request_timeout_secs: 60,
            max_concurrent_requests: 1024,
        }
    }
}

/// `[queue] backend`: which queue, when it is said explicitly.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueBackend {
    /// Redis at `REDIS_URL`: durable, shared by every replica.
    Redis,
    /// The in-process queue: not durable, one replica.
    Memory,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct QueueFile {
    pub(super) backend: Option<QueueBackend>,
    pub(super) namespace: String,
    pub(super) high_water_mark: u64,
    pub(super) retry_after_secs: u64,
    pub(super) max_attempts: u32,
    pub(super) backoff_base_ms: u64,
    pub(super) backoff_cap_secs: u64,
    pub(super) visibility_timeout_secs: u64,
    pub(super) max_age_secs: u64,
    pub(super) max_recoveries: u32,
    pub(super) redis: String,
    pub(super) sentinel_master: Option<String>,
    pub(super) min_replicas_acked: u32,
    pub(super) replica_ack_timeout_ms: u64,
    pub(super) take_stuck_secs: u64,
}

impl Default for QueueFile {
    fn default() -> Self {
        Self {
            backend: None,
            namespace: "default".into(),
            high_water_mark: 100_000,
            retry_after_secs: 5,
            max_attempts: 12,
            backoff_base_ms: 500,
            backoff_cap_secs: 300,
            visibility_timeout_secs: 30,
            max_age_secs: 24 * 3600,
            max_recoveries: 3,
            redis: "standalone".into(),
            sentinel_master: None,
            min_replicas_acked: 0,
            replica_ack_timeout_ms: 500,
            take_stuck_secs: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct WorkersFile {
    pub(super) count: usize,
    pub(super) shutdown_grace_secs: u64,
    pub(super) digest_max_records: usize,
    pub(super) digest_max_bytes: usize,
    pub(super) enrich_max_rows: usize,
    pub(super) enrich_max_bytes: usize,
    pub(super) enrich_batch_window_ms: u64,
}

impl Default for WorkersFile {
    fn default() -> Self {
        Self {
            count: 8,
            shutdown_grace_secs: 20,
            digest_max_records: crate::jobs::Caps::default().digest_max_records,
            digest_max_bytes: crate::jobs::Caps::default().digest_max_bytes,
            enrich_max_rows: crate::jobs::Caps::default().enrich_max_rows,
            enrich_max_bytes: crate::jobs::Caps::default().enrich_max_bytes,
            enrich_batch_window_ms: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SlackFile {
    pub(super) dry_run: bool,
    pub(super) api_base: String,
    pub(super) timeout_secs: u64,
    pub(super) channel_messages_per_sec: f64,
    pub(super) channel_burst: u32,
    pub(super) token_check_interval_secs: f64,
    /// The variable holding the default app's signing secret.
    pub(super) signing_secret_env: String,
    /// The org used when a person has no Preferred org (a name or an Id).
    pub(super) default_org: Option<String>,
    /// Slack user Ids that may set the Default org.
    pub(super) admins: Vec<String>,
    /// The slash command sfrelay answers.
    pub(super) command: String,
}

impl Default for SlackFile {
    fn default() -> Self {
        Self {
            dry_run: false,
            api_base: "https://slack.com/api".into(),
            timeout_secs: 10,
            channel_messages_per_sec: 1.0,
            // Slack allows "short bursts >1" without saying how short; 3 is a short burst, and a
            // 429 still closes the channel for every replica for exactly its Retry-After.
            channel_burst: 3,
            token_check_interval_secs: 30.0,
            signing_secret_env: "SLACK_SIGNING_SECRET".into(),
            default_org: None,
            admins: Vec::new(),
            command: super::DEFAULT_COMMAND.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgFile {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key_file: Option<PathBuf>,
    pub(super) api_key_header: Option<String>,
    pub(super) jwt_secret_env: Option<String>,
    pub(super) jwt_secret_file: Option<PathBuf>,
    pub(super) jwt_public_key_file: Option<PathBuf>,
    pub(super) jwt_issuer: Option<String>,
    pub(super) jwt_audience: Option<String>,
    pub(super) jwt_max_lifetime_secs: Option<u64>,
    pub(super) outbound_message_token_env: Option<String>,
    pub(super) outbound_message_token_file: Option<PathBuf>,
    pub(super) salesforce: Option<SalesforceFile>,
    #[serde(default)]
    pub(super) reconcile: Vec<ReconcileConfig>,
    /// `[[orgs.subscribe]]`: Pub/Sub API topics sfrelay subscribes to itself.
    #[serde(default)]
    pub(super) subscribe: Vec<super::pubsub::SubscribeFile>,
    pub(super) slack: Option<OrgSlackFile>,
}

/// An org's own Slack bot token (`[orgs.slack]`), when it posts as another app or workspace.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct OrgSlackFile {
    pub(super) bot_token_env: Option<String>,
    pub(super) bot_token_file: Option<PathBuf>,
    /// The variable holding the signing secret of the org's own Slack app.
    pub(super) signing_secret_env: Option<String>,
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
    /// Who writes to Salesforce: `"integration"` (default) or `"user"`; read into
    /// [`super::ActAs`] so an unknown value is refused naming the key.
    pub act_as: Option<String>,
    /// The Pub/Sub API's address, `https://api.pubsub.salesforce.com:7443` unless given.
    pub pubsub_endpoint: Option<String>,
    /// The connected app people sign in to (web-server flow), when not `client_id`'s.
    pub oauth_client_id: Option<String>,
    /// The variable holding that flow's consumer secret, when the app requires one.
    pub oauth_client_secret_env: Option<String>,
    /// Above this share of the daily API allowance, low-priority work waits (0.8).
    pub api_budget_low_share: Option<f64>,
    /// Above this share, only high-priority work runs (0.95).
    pub api_budget_high_share: Option<f64>,
}
