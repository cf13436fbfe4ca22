//! [`SalesforceClient`]: the REST API of every configured org over one pooled HTTP client.
//! SOQL queries with paging, single records by Id, the API usage Salesforce reports on each
//! answer (`Sforce-Limit-Info`), and the [`ClientOptions`] that tune it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::acting::{Actor, MAX_CACHED_USERS, USER_TOKEN_TTL, UserTokens, check_username};
use super::auth::{AccessToken, TokenCache};
use super::connection::ConnectionTokens;
use super::error::{SalesforceError, api_error, transport_error};
use super::soql::Soql;
use crate::config::OrgCredentials;
use crate::event::SalesforceId;

/// The REST API version used unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "v62.0";
/// The most records one `query` collects across its pages.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;

/// A query record: the fields asked for plus Salesforce's `attributes` (`type`, `url`).
pub type Record = Map<String, Value>;

/// A record's own `Id`, when it has a valid one.
pub fn record_id(record: &Record) -> Option<SalesforceId> {
    record
        .get("Id")
        .and_then(Value::as_str)
        .and_then(|id| SalesforceId::parse(id).ok())
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

/// A successful answer's body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub bytes: bytes::Bytes,
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

pub(crate) struct OrgState {
    /// The org's credentials and access token.
    tokens: TokenCache,
    /// What Salesforce last said of the org's API usage, and the budget guard over it.
    pub(crate) usage: super::budget::Usage,
}

impl OrgState {
    fn id(&self) -> &SalesforceId {
        &self.tokens.creds().org_id
    }
}

/// The Salesforce REST API of every configured org over one pooled HTTP client.
pub struct SalesforceClient {
    http: reqwest::Client,
    api_version: String,
    max_records: usize,
    orgs: HashMap<SalesforceId, OrgState>,
    /// Access tokens of people acting as themselves ([`Actor::User`]).
    people: UserTokens,
    /// The tokens of people's own connections ([`Actor::Connection`]); `None`: not offered.
    connections: Option<Arc<dyn ConnectionTokens>>,
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
pub(crate) fn is_api_name(s: &str) -> bool {
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
        for creds in orgs {
            let id = creds.org_id.clone();
            let tokens = TokenCache::new(creds)?;
            let org = tokens.label().to_owned();
            let budget = tokens.creds().budget;
            let state = OrgState {
                tokens,
                usage: super::budget::Usage::new(budget),
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
            people: UserTokens::new(MAX_CACHED_USERS, USER_TOKEN_TTL),
            connections: None,
        })
    }

    /// Runs [`Actor::Connection`] requests with the tokens `connections` keeps.
    pub fn with_connections(mut self, connections: Arc<dyn ConnectionTokens>) -> Self {
        self.connections = Some(connections);
        self
    }

    /// Keeps the refresh tokens Salesforce rotates in `vault`, so a restart or another
    /// replica presents the newest one.
    pub fn with_vault(mut self, vault: super::vault::RefreshTokenVault) -> Self {
        for state in self.orgs.values_mut() {
            state.tokens.set_vault(vault.clone());
        }
        self
    }

    /// Whether the client holds credentials for `org`.
    pub fn has_org(&self, org: &SalesforceId) -> bool {
        self.orgs.contains_key(org)
    }

    /// The API usage Salesforce reported on the org's last answer.
    pub fn api_usage(&self, org: &SalesforceId) -> Option<ApiUsage> {
        self.orgs.get(org)?.usage.latest()
    }

    /// Whether Salesforce work of `need` may run for `org` now, given its API usage (see
    /// [`super::budget`]); an org without credentials is not held (its calls fail anyway).
    pub fn budget_allows(
        &self,
        org: &SalesforceId,
        need: super::budget::Need,
    ) -> Result<(), super::budget::OverBudget> {
        match self.orgs.get(org) {
            Some(state) => state.usage.allows(org, need, state.tokens.label()),
            None => Ok(()),
        }
    }

    /// Each org whose usage holds work back, for `/readyz`.
    pub fn budget_holding(&self) -> Vec<(String, ApiUsage, super::budget::Need)> {
        let mut held: Vec<_> = self
            .orgs
            .values()
            .filter_map(|state| {
                let (usage, need) = state.usage.holding()?;
                Some((state.tokens.label().to_owned(), usage, need))
            })
            .collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        held
    }

    pub(crate) fn org(&self, org: &SalesforceId) -> Result<&OrgState, SalesforceError> {
        self.orgs
            .get(org)
            .ok_or_else(|| SalesforceError::UnknownOrg(org.clone()))
    }

    /// Gets a token now (e.g. to check the credentials at start-up); later calls reuse it.
    pub async fn authenticate(&self, org: &SalesforceId) -> Result<(), SalesforceError> {
        self.org(org)?.tokens.token(&self.http).await.map(|_| ())
    }

    /// The org's current access token, for APIs beside REST (the Pub/Sub API's
    /// `accesstoken` header); fetched when there is none.
    pub async fn access_token(
        &self,
        org: &SalesforceId,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        self.org(org)?.tokens.token(&self.http).await
    }

    /// Whether the org's token works, from what the client knows: its token, else its last
    /// failure while younger than `recheck_after`; only otherwise is Salesforce asked.
    pub async fn check_token(
        &self,
        org: &SalesforceId,
        recheck_after: Duration,
    ) -> Result<(), SalesforceError> {
        self.org(org)?.tokens.check(&self.http, recheck_after).await
    }

    /// A token to replace `stale`, which the Pub/Sub API refused (`service.auth.error`).
    pub async fn renew_access_token(
        &self,
        org: &SalesforceId,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError> {
        self.org(org)?.tokens.renew(&self.http, stale).await
    }

    /// Runs `soql` and collects every page (following `nextRecordsUrl` until `done`), up to
    /// the configured record limit.
    pub async fn query(
        &self,
        org: &SalesforceId,
        soql: &Soql,
    ) -> Result<Vec<Record>, SalesforceError> {
        self.query_as(org, &Actor::Integration, soql).await
    }

    /// [`SalesforceClient::query`] as `actor`: what their sharing lets them see.
    pub async fn query_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        soql: &Soql,
    ) -> Result<Vec<Record>, SalesforceError> {
        let mut page = self.query_page_as(org, actor, soql).await?;
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
            page = self.query_more_as(org, actor, &next).await?;
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
        self.query_page_as(org, &Actor::Integration, soql).await
    }

    /// [`SalesforceClient::query_page`] as `actor`.
    pub async fn query_page_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        soql: &Soql,
    ) -> Result<QueryPage, SalesforceError> {
        let state = self.org(org)?;
        let version = &self.api_version;
        self.get_json(state, actor, |instance| {
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
        self.query_more_as(org, &Actor::Integration, next_records_url)
            .await
    }

    /// [`SalesforceClient::query_more`] as `actor` (the one who ran the query).
    pub async fn query_more_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
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
        self.get_json(state, actor, |instance| {
            api_url(org, instance, next_records_url)
        })
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
        self.get_record_as(org, &Actor::Integration, object, id, fields)
            .await
    }

    /// [`SalesforceClient::get_record`] as `actor`: a record they may not see is refused.
    pub async fn get_record_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
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
        self.get_json(state, actor, |instance| {
            let mut url = api_url(org, instance, &path)?;
            if !fields.is_empty() {
                url.query_pairs_mut()
                    .append_pair("fields", &fields.join(","));
            }
            Ok(url)
        })
        .await
    }

    /// The REST API version in use (`v62.0`).
    pub(crate) fn api_version(&self) -> &str {
        &self.api_version
    }

    /// [`SalesforceClient::request_as`] the integration user.
    pub(crate) async fn request(
        &self,
        org: &SalesforceId,
        method: reqwest::Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, SalesforceError> {
        self.request_as(org, &Actor::Integration, method, path, headers, body)
            .await
    }

    /// Sends `method path` (a path on the instance host) as `actor` with `headers` and a JSON
    /// `body`; on 401 gets a new token once and tries once more. Failures are logged by error
    /// code only: a write's error message can quote the values it refused.
    pub(crate) async fn request_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        method: reqwest::Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, SalesforceError> {
        let state = self.org(org)?;
        if let Some(username) = actor.username() {
            check_username(username)?;
        }
        let attempt = |token: Arc<AccessToken>| {
            let method = method.clone();
            async move {
                let url = api_url(org, &token.instance_url, path)?;
                let mut builder = self
                    .http
                    .request(method, url)
                    .bearer_auth(token.token.expose())
                    .header(reqwest::header::ACCEPT, "application/json");
                for (name, value) in headers {
                    builder = builder.header(*name, value);
                }
                if let Some(body) = body {
                    builder = builder.json(body);
                }
                let result = self.exchange(state, builder).await;
                count_call(state, &result);
                if let Err(e) = &result {
                    tracing::debug!(org = %state.id(), code = e.label(), "Salesforce call failed");
                }
                result
            }
        };
        self.renewing_once(state, actor, attempt).await
    }

    /// Runs `attempt` with `actor`'s access token; on 401 gets a new token once and runs it
    /// once more.
    async fn renewing_once<T, F, Fut>(
        &self,
        state: &OrgState,
        actor: &Actor,
        attempt: F,
    ) -> Result<T, SalesforceError>
    where
        F: Fn(Arc<AccessToken>) -> Fut,
        Fut: std::future::Future<Output = Result<T, SalesforceError>>,
    {
        let token = match actor {
            Actor::Integration => state.tokens.token(&self.http).await?,
            Actor::User { username } => {
                self.people
                    .token(&self.http, &state.tokens, username)
                    .await?
            }
            Actor::Connection(who) => {
                self.connections(state)?
                    .access_token(state.id(), who)
                    .await?
            }
        };
        match attempt(Arc::clone(&token)).await {
            Err(e) if e.is_unauthorized() => {
                tracing::info!(
                    org = %state.id(),
                    person = actor.username().is_some(),
                    "Salesforce session expired or invalid; getting a new access token"
                );
                let fresh = match actor {
                    Actor::Integration => state.tokens.renew(&self.http, &token).await?,
                    Actor::User { username } => {
                        self.people
                            .renew(&self.http, &state.tokens, username, &token)
                            .await?
                    }
                    Actor::Connection(who) => {
                        self.connections(state)?
                            .refresh(state.id(), who, &token)
                            .await?
                    }
                };
                attempt(fresh).await
            }
            other => other,
        }
    }

    /// Where connections' tokens come from; a connection without it is a configuration gap.
    fn connections(&self, state: &OrgState) -> Result<&Arc<dyn ConnectionTokens>, SalesforceError> {
        self.connections
            .as_ref()
            .ok_or_else(|| SalesforceError::Config {
                org: state.tokens.label().to_owned(),
                message: "people's own connections are not set up in this client".into(),
            })
    }

    /// Sends one request, reads the API usage, and maps a failure status to an error.
    async fn exchange(
        &self,
        state: &OrgState,
        builder: reqwest::RequestBuilder,
    ) -> Result<Answer, SalesforceError> {
        let org = state.id();
        let response = builder.send().await.map_err(|e| transport_error(org, e))?;
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
            Ok(Answer { bytes })
        } else {
            Err(api_error(org, status, &bytes))
        }
    }

    /// GETs the URL `url_for` builds on the token's instance URL as `actor`; on 401 gets a
    /// new token once and tries once more.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        state: &OrgState,
        actor: &Actor,
        url_for: impl Fn(&str) -> Result<reqwest::Url, SalesforceError>,
    ) -> Result<T, SalesforceError> {
        if let Some(username) = actor.username() {
            check_username(username)?;
        }
        let url_for = &url_for;
        let bytes = self
            .renewing_once(state, actor, |token| async move {
                self.send(state, &token, url_for(&token.instance_url)?)
                    .await
            })
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| SalesforceError::Decode {
            org: state.id().clone(),
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
        let builder = self
            .http
            .get(url)
            .bearer_auth(token.token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        let result = self.exchange(state, builder).await.map(|a| a.bytes);
        count_call(state, &result);
        if let Err(e) = &result {
            tracing::debug!(org = %state.id(), error = %e, "Salesforce call failed");
        }
        result
    }
}

/// Counts one Salesforce call by its outcome.
fn count_call<T>(state: &OrgState, result: &Result<T, SalesforceError>) {
    let label = match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    };
    metrics::counter!(
        "sfrelay_salesforce_calls_total",
        "org" => state.tokens.label().to_owned(),
        "result" => label.to_string()
    )
    .increment(1);
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
    state.usage.record(usage, state.tokens.label());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Auth, Secret, valid_base_url};
    use crate::retry::Retry;

    const PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-private.pem");

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
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
            budget: Default::default(),
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
}
