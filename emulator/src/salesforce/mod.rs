//! `sfrelay-emulator salesforce`: a local Salesforce org — the OAuth token endpoint (JWT
//! bearer, refresh-token and web-server with PKCE flows), revocation, a small SOQL and SOSL
//! subset over in-memory records with paging, single records by Id, API usage headers — plus
//! a control API for tests.
//!
//! Tokens are bound to a user: the integration user (`--integration-user`, always authorised;
//! also the refresh-token flow's user) or the active User whose `Username` a JWT `sub` names,
//! if pre-authorised. Writes stamp `CreatedById`/`LastModifiedById` (and a missing `OwnerId`)
//! with that user; a User with `UserPermissionsApiEnabled = false` gets `API_DISABLED_FOR_ORG`.
//!
//! A person can also connect their own account ([`webflow`]): their tokens run as them, and
//! what they may not see ([`visibility`]) is left out of what those calls answer.
//!
//! Endpoints:
//! - `POST /services/oauth2/token` (`invalid_grant` "user hasn't approved this consumer" for a
//!   `sub` that is no active User or is not pre-authorised; `grant_type=authorization_code`
//!   with `code`, `client_id`, `client_secret`?, `redirect_uri`, `code_verifier`; a person's
//!   `refresh_token`)
//! - `GET /services/oauth2/authorize` with `response_type=code`, `client_id`, `redirect_uri`,
//!   `state`, `code_challenge`, `code_challenge_method=S256`, `scope`, and for the emulator
//!   `login_as=<username or Id>` and `decision=deny` (optional): 302 to `redirect_uri` with `code` and `state` (or `error=access_denied`); 400 for an
//!   unknown `client_id` or a `redirect_uri` the app does not list; the login page (200) when
//!   nobody logs in
//! - `POST /services/oauth2/revoke` `token=…` (or `GET ?token=`): an access token, or a refresh
//!   token and its access tokens; 400 `invalid_token` for anything else
//! - `GET /services/data/:version/search?q=FIND {…} …` and `…/parameterizedSearch?q=…&sobject=…`
//!   ([`sosl`]): `{"searchRecords": […]}`, `MALFORMED_SEARCH` for unescaped reserved characters
//! - `GET /services/data/:version/query?q=…` and `…/query/<cursor>` (`nextRecordsUrl`)
//! - `GET /services/data/:version/sobjects/:object/:id?fields=…`
//! - `POST /services/data/:version/sobjects/:object/` (create), `PATCH …/:object/:id` (update,
//!   honouring `If-Unmodified-Since` against `LastModifiedDate`: 412)
//! - `GET /services/data/:version/ui-api/object-info/:object/picklist-values/:recordTypeId/:field`
//! - `POST /services/data/:version/process/approvals/` `{"requests": [{"actionType":
//!   "Approve"|"Reject", "contextId": "04i…", "comments"?}]}`
//! - `POST /_emulator/jwt-users` `{"usernames": […]}`: the users pre-authorised on the connected
//!   app (never set: every active User); `GET` shows them
//! - `POST /_emulator/approvals` `{"record", "approver": "005…", "steps"?: 1}`: puts a record into
//!   approval (`ProcessInstance`, `ProcessInstanceWorkitem`; updates get `ENTITY_IS_LOCKED` while
//!   pending); `GET` shows instances, work items and decisions with actor and comments
//! - `POST /_emulator/expire-tokens`: every issued token becomes invalid
//! - `POST /_emulator/api-usage` `{"used": n, "limit"?: m}`: the org's daily API usage (what
//!   other integrations spent), as `Sforce-Limit-Info` reports it from then on
//! - `POST /_emulator/faults` `{"fail_next": n, "status": 503, "error_code": "…",
//!   "message"?: "…", "endpoint"?: "api"|"token"}`; `GET` shows them
//! - `GET /_emulator/requests`: `[{"method", "path", "q", "status", "headers"?, …}]` (writes
//!   record their `Sforce-Call-Options`, `Sforce-Auto-Assign` and `If-Unmodified-Since`)
//! - `POST /_emulator/write-faults` `[{"object", "error_code", "status"?: 400, "message"?,
//!   "fields"?: […], "times"?: 1}]`: queued refusals of the next writes to an object
//! - `POST /_emulator/validation-rules` `[{"object", "field", "value", "message"}]`: a write
//!   setting that value fails with `FIELD_CUSTOM_VALIDATION_EXCEPTION` and the message
//! - `POST /_emulator/picklists` `{"Case": {"Status": {"master"|"012…": ["New", …]}}}`: UI API
//!   values, also enforced on writes as restricted picklists
//! - `POST /_emulator/assignment-rules` `{"Case": "<owner Id>"}`: updates get that owner unless
//!   they send `Sforce-Auto-Assign: FALSE`; `GET /_emulator/writes` shows the write-side state
//!   and the journal of writes with the acting user's Id and username
//! - `POST /_emulator/records` `{"Opportunity": [records…]}`: adds or replaces by Id
//! - `GET /_emulator/stats`
//! - `POST /_emulator/hold` `{"method"?, "path_contains", "delay_ms"?}`,
//!   `POST /_emulator/release`, `GET /_emulator/hold`: replies to matching API, token, revoke
//!   and search requests held (the write made) until released, or delayed by `delay_ms`
//! - `POST /_emulator/oauth/app` `{"callback_urls"?, "client_secret"?, "code_ttl_secs"?}`: the
//!   connected app's web-server flow settings; `GET /_emulator/oauth` shows them, who holds
//!   tokens and every authorize request
//! - `POST /_emulator/oauth/login` `{"login_as": "<username or Id>"|null, "decision"?:
//!   "approve"|"deny"}`: who logs in when an authorize request names nobody
//! - `POST /_emulator/oauth/tokens` `{"user", "action": "expire"|"revoke"}`: ends a person's
//!   access tokens (their refresh token still works), or all their tokens
//! - `POST /_emulator/visibility` `{"user", "hidden_ids"?: […], "hidden_objects"?: […]}`: what
//!   that person may not see; `GET` shows every rule
//! - `GET /_emulator/searches`: every search with who made it, its status and what it found
//! - gRPC `/eventbus.v1.PubSub/{Subscribe,GetSchema,GetTopic}` on the same port (h2c), and its
//!   control API ([`pubsub`] documents both): `POST /_emulator/pubsub/publish`,
//!   `POST /_emulator/pubsub/fields`, `POST /_emulator/pubsub/channels`,
//!   `POST /_emulator/pubsub/purge`, `POST /_emulator/pubsub/faults`,
//!   `POST|GET /_emulator/pubsub/timing`, `GET /_emulator/pubsub/streams`,
//!   `GET /_emulator/pubsub/topics`, `GET /_emulator/pubsub/schemas/{id}`

mod acting;
mod approvals;
mod emulator;
mod holds;
mod http;
mod http_people;
pub mod pubsub;
mod search;
mod soql;
mod sosl;
mod store;
mod visibility;
pub mod webflow;
mod writes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use jsonwebtoken::DecodingKey;

pub use acting::DEFAULT_INTEGRATION_USERNAME;
use emulator::Emulator;
pub use pubsub::{Fault, PubSubControl};
use store::Store;

/// The consumer key the token endpoint expects unless `--client-id` says otherwise.
pub const DEFAULT_CLIENT_ID: &str = "3MVG9sfrelay.emulator";

/// Command-line options of the `salesforce` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct SalesforceArgs {
    /// Address to listen on; must be loopback. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// PEM public key (the connected app's certificate key) whose signatures the JWT bearer
    /// flow accepts (repeatable).
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// The connected app's consumer key: the JWT `iss`, and `client_id` of refreshes.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// The integration user's username: a JWT `sub` always authorised, whether or not a User
    /// record has it.
    #[arg(long, default_value = DEFAULT_INTEGRATION_USERNAME)]
    pub integration_user: String,
    /// The refresh token the refresh-token flow accepts (none: that flow always fails).
    #[arg(long)]
    pub refresh_token: Option<String>,
    /// Hand out a new refresh token on every refresh and stop accepting the old one.
    #[arg(long)]
    pub rotate_refresh_tokens: bool,
    /// JSON records to seed: `{"Opportunity": [{"Id": …, …}], "Account": […]}`.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Seconds an access token stays valid.
    #[arg(long, default_value_t = 7200, value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl_secs: u64,
    /// Records per query page before `nextRecordsUrl`.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// The org's API request allowance reported in `Sforce-Limit-Info`; calls beyond it get
    /// `REQUEST_LIMIT_EXCEEDED`.
    #[arg(long, default_value_t = 15000)]
    pub api_limit: u64,
    /// The org Id (15 or 18 characters): the Pub/Sub API's `tenantid`, and the org the token
    /// endpoint's identity URLs name.
    #[arg(long, default_value = emulator::ORG_ID)]
    pub org_id: String,
    /// Milliseconds of silence after which a Pub/Sub stream owed credit gets an empty keepalive.
    #[arg(long, default_value_t = 270_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub pubsub_keepalive_ms: u64,
    /// Milliseconds a Pub/Sub stream may sit at zero credit before it is ended.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub pubsub_zero_credit_timeout_ms: u64,
    /// Most events in one Pub/Sub batch.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub pubsub_batch_max: u32,
    /// The connected app's consumer secret: a token request sending another one is refused.
    #[arg(long, env = "SFRELAY_EMULATOR_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// A callback URL the connected app lists for the web-server flow (repeatable; none
    /// accepts any loopback URL).
    #[arg(long = "callback-url", value_name = "URL")]
    pub callback_urls: Vec<String>,
    /// Seconds an authorization code from the web-server flow stays usable.
    #[arg(long, default_value_t = webflow::DEFAULT_CODE_TTL_SECS)]
    pub auth_code_ttl_secs: u64,
}

/// Runs the Salesforce emulator until SIGINT or SIGTERM.
pub async fn run(args: SalesforceArgs) -> anyhow::Result<()> {
    crate::serve::serve(args.listen, app(&args)?).await
}

/// The Salesforce and control routes over the initial state `args` describe.
pub(crate) fn app(args: &SalesforceArgs) -> anyhow::Result<Router> {
    Ok(app_with_pubsub(args)?.0)
}

/// The routes (the Pub/Sub gRPC service among them) and the event bus's control handle.
pub(crate) fn app_with_pubsub(args: &SalesforceArgs) -> anyhow::Result<(Router, PubSubControl)> {
    let emulator = build(args)?;
    if emulator.keys.is_empty() {
        tracing::warn!("no --public-key given: the JWT bearer flow will refuse every assertion");
    }
    let shared = Arc::new(Mutex::new(emulator));
    let timing = pubsub::timing_from_args(
        args.pubsub_keepalive_ms,
        args.pubsub_zero_credit_timeout_ms,
        args.pubsub_batch_max,
    );
    let bus = PubSubControl::new(Arc::clone(&shared), timing);
    Ok((http::router(shared).merge(bus.router()), bus))
}

/// The initial state described by the command line.
fn build(args: &SalesforceArgs) -> anyhow::Result<Emulator> {
    let mut keys = Vec::with_capacity(args.public_keys.len());
    for path in &args.public_keys {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
            bail!(
                "{} holds a private key; give the public key",
                path.display()
            );
        }
        let key = DecodingKey::from_rsa_pem(&pem)
            .with_context(|| format!("{} is not an RSA public key in PEM form", path.display()))?;
        keys.push(key);
    }
    if args.client_id.trim().is_empty() {
        bail!("--client-id must not be empty");
    }
    if args.integration_user.trim().is_empty() {
        bail!("--integration-user must not be empty");
    }
    let mut store = Store::default();
    if let Some(path) = &args.data {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let data: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let n = store
            .upsert_all(data, &emulator::sf_now())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        tracing::info!(records = n, "seeded records");
    }
    let mut emulator = Emulator::new(
        args.client_id.clone(),
        keys,
        args.refresh_token.clone(),
        args.rotate_refresh_tokens,
        Duration::from_secs(args.token_ttl_secs),
        usize::try_from(args.page_size).unwrap_or(usize::MAX),
        args.api_limit,
        store,
    );
    emulator.web.client_secret = args.client_secret.clone().filter(|s| !s.is_empty());
    emulator.web.callback_urls = args.callback_urls.clone();
    emulator.web.code_ttl = Duration::from_secs(args.auth_code_ttl_secs);
    emulator.acting.integration_username = args.integration_user.trim().to_owned();
    emulator.acting.caller = emulator.integration_caller();
    let org_id = args.org_id.trim();
    if !matches!(org_id.len(), 15 | 18) || !org_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("--org-id {org_id:?} is not a 15- or 18-character org Id");
    }
    emulator.org_id = org_id[..15].to_owned();
    Ok(emulator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        salesforce: SalesforceArgs,
    }

    fn args(extra: &[&str]) -> Result<SalesforceArgs, clap::Error> {
        let argv = std::iter::once("salesforce").chain(extra.iter().copied());
        Cli::try_parse_from(argv).map(|c| c.salesforce)
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/../tests/fixtures/keys/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn an_org_id_that_is_not_one_is_refused() {
        for bad in ["00D5g", "00D5g000004ABCdE", "00D5g000004AB-dEAO"] {
            let err = build(&args(&["--org-id", bad]).unwrap()).err().unwrap();
            assert!(err.to_string().contains("--org-id"), "{err}");
        }
        let emu = build(&args(&["--org-id", "00D5g000004ABCdEAO"]).unwrap()).unwrap();
        assert_eq!(emu.org_id, "00D5g000004ABCd");
    }

    #[test]
    fn defaults_and_seeds() {
        let a = args(&[]).unwrap();
        assert_eq!(a.page_size, 2000);
        assert_eq!(a.api_limit, 15000);
        assert_eq!(a.token_ttl_secs, 7200);
        assert_eq!(a.client_id, DEFAULT_CLIENT_ID);
        assert_eq!(a.integration_user, DEFAULT_INTEGRATION_USERNAME);
        let emu = build(&a).unwrap();
        assert!(emu.keys.is_empty());

        let dir = std::env::temp_dir().join(format!("sf-emu-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data.json");
        std::fs::write(
            &data,
            r#"{"Opportunity": [{"Id": "006000000000001", "Name": "A"}]}"#,
        )
        .unwrap();
        let key = fixture("rsa-public.pem");
        let a = args(&[
            "--public-key",
            &key,
            "--data",
            data.to_str().unwrap(),
            "--page-size",
            "3",
            "--refresh-token",
            "r",
        ])
        .unwrap();
        let emu = build(&a).unwrap();
        assert_eq!(emu.keys.len(), 1);
        assert_eq!(emu.page_size, 3);
        assert_eq!(emu.store.counts()["Opportunity"], 1);

        std::fs::write(&data, r#"{"Opportunity": [{"Name": "no id"}]}"#).unwrap();
        assert!(build(&a).is_err());
        let bad_key = args(&["--public-key", &fixture("rsa-private.pem")]).unwrap();
        assert!(build(&bad_key).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn rejects_bad_options() {
        assert!(args(&["--page-size", "0"]).is_err());
        assert!(args(&["--token-ttl-secs", "0"]).is_err());
        assert!(build(&args(&["--client-id", " "]).unwrap()).is_err());
        assert!(build(&args(&["--integration-user", ""]).unwrap()).is_err());
    }
}
