//! The emulated org's state and the behaviour of each endpoint, independent of HTTP.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::acting::{Acting, Issued};
use super::approvals::Approvals;
use super::search::Searches;
use super::soql::{self, Query};
use super::store::{Record, Store, field_value, record_id};
use super::visibility::Visibility;
use super::webflow::{Granted, WebFlow, random_hex, signature};
use super::writes::with_checksum;

/// The org the emulator pretends to be.
pub const ORG_ID: &str = "00D000000000001";
/// The integration user's Id, unless a User record has the integration username.
pub const USER_ID: &str = "005000000000001";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The audiences a JWT assertion may name besides the emulator's own URL.
const AUDIENCES: &[&str] = &[
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];
/// How far in the future an assertion's `exp` may be.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
/// Query cursors kept for `nextRecordsUrl`; older ones are forgotten.
const MAX_CURSORS: usize = 64;
/// Requests kept for `/_emulator/requests`.
const MAX_JOURNAL: usize = 10_000;

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: 200, body }
    }

    /// The REST API's error shape: `[{"message": …, "errorCode": …}]`.
    pub fn api_error(status: u16, code: &str, message: &str) -> Reply {
        Reply {
            status,
            body: json!([{ "message": message, "errorCode": code }]),
        }
    }

    /// The token endpoint's error shape.
    pub fn oauth_error(error: &str, description: &str) -> Reply {
        Reply {
            status: 400,
            body: json!({ "error": error, "error_description": description }),
        }
    }

    fn invalid_session() -> Reply {
        Reply::api_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }
}

/// Where injected failures apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultTarget {
    /// `/services/data/…` (after the session check).
    Api,
    /// `/services/oauth2/token`.
    Token,
}

/// Failures to inject: the next `fail_next` matching requests answer `status`/`error_code`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default)]
    pub fail_next: u32,
    #[serde(default = "default_fault_status")]
    pub status: u16,
    #[serde(default = "default_fault_code")]
    pub error_code: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "default_fault_target")]
    pub endpoint: FaultTarget,
}

fn default_fault_status() -> u16 {
    503
}

fn default_fault_code() -> String {
    "SERVER_UNAVAILABLE".into()
}

fn default_fault_target() -> FaultTarget {
    FaultTarget::Api
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            fail_next: 0,
            status: default_fault_status(),
            error_code: default_fault_code(),
            message: None,
            endpoint: FaultTarget::Api,
        }
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub token_requests: u64,
    pub tokens_issued: u64,
    pub token_errors: u64,
    pub api_requests: u64,
    pub api_errors: u64,
    pub faults_injected: u64,
}

struct Cursor {
    records: Vec<Value>,
}

pub struct Emulator {
    pub client_id: String,
    pub keys: Vec<DecodingKey>,
    pub refresh_token: Option<String>,
    pub rotate_refresh_tokens: bool,
    pub token_ttl: Duration,
    pub page_size: usize,
    pub api_limit: u64,
    pub api_used: u64,
    pub store: Store,
    pub faults: Faults,
    /// Write faults, validation rules and picklists ([`super::writes`]).
    pub writes: super::writes::Writes,
    /// The integration user, pre-authorised users and who the current call runs as.
    pub acting: Acting,
    /// Records in approval ([`super::approvals`]).
    pub approvals: Approvals,
    pub stats: Stats,
    /// Access tokens handed out, and whom they run as.
    pub tokens: HashMap<String, Issued>,
    /// The web-server flow's settings, codes and people's refresh tokens ([`super::webflow`]).
    pub web: WebFlow,
    /// What each person may not see ([`super::visibility`]).
    pub visibility: Visibility,
    /// Searches made ([`super::search`]).
    pub searches: Searches,
    /// The org's Id (15 characters): the Pub/Sub API's `tenantid`, and the org identity URLs
    /// name (in its 18-character form, as Salesforce writes it there).
    pub org_id: String,
    cursors: VecDeque<(String, Cursor)>,
    next_cursor: u64,
    journal: VecDeque<Value>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Value,
    exp: i64,
}

/// Salesforce's datetime format.
pub fn sf_now() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string()
}

impl Emulator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client_id: String,
        keys: Vec<DecodingKey>,
        refresh_token: Option<String>,
        rotate_refresh_tokens: bool,
        token_ttl: Duration,
        page_size: usize,
        api_limit: u64,
        mut store: Store,
    ) -> Emulator {
        super::approvals::register_objects(&mut store);
        Emulator {
            client_id,
            keys,
            refresh_token,
            rotate_refresh_tokens,
            token_ttl,
            page_size,
            api_limit,
            api_used: 0,
            store,
            faults: Faults::default(),
            writes: Default::default(),
            acting: Acting::default(),
            approvals: Approvals::default(),
            stats: Stats::default(),
            tokens: HashMap::new(),
            web: WebFlow::default(),
            visibility: Visibility::default(),
            searches: Searches::default(),
            org_id: ORG_ID.to_owned(),
            cursors: VecDeque::new(),
            next_cursor: 1,
            journal: VecDeque::new(),
        }
    }

    /// `api-usage=N/limit`, for every REST API answer.
    pub fn limit_info(&self) -> String {
        format!("api-usage={}/{}", self.api_used, self.api_limit)
    }

    pub fn record_request(&mut self, entry: Value) {
        if self.journal.len() >= MAX_JOURNAL {
            self.journal.pop_front();
        }
        self.journal.push_back(entry);
    }

    pub fn requests(&self) -> Value {
        Value::Array(self.journal.iter().cloned().collect())
    }

    pub fn expire_tokens(&mut self) -> Value {
        let n = self.tokens.len();
        self.tokens.clear();
        json!({ "expired": n })
    }

    /// Whether `token` was issued here and has not expired (Pub/Sub's `accesstoken` check).
    pub fn access_token_valid(&self, token: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|issued| issued.at.elapsed() < self.token_ttl)
    }

    fn active_tokens(&self) -> usize {
        self.tokens
            .values()
            .filter(|issued| issued.at.elapsed() < self.token_ttl)
            .count()
    }

    pub fn stats(&self) -> Value {
        json!({
            "token_requests": self.stats.token_requests,
            "tokens_issued": self.stats.tokens_issued,
            "token_errors": self.stats.token_errors,
            "active_tokens": self.active_tokens(),
            "api_requests": self.stats.api_requests,
            "api_errors": self.stats.api_errors,
            "faults_injected": self.stats.faults_injected,
            "api_usage": self.api_used,
            "api_limit": self.api_limit,
            "records": self.store.counts(),
            "faults": self.faults,
        })
    }

    /// Takes one injected failure for `target`, if any is pending.
    fn take_fault(&mut self, target: FaultTarget) -> Option<Reply> {
        if self.faults.fail_next == 0 || self.faults.endpoint != target {
            return None;
        }
        self.faults.fail_next -= 1;
        self.stats.faults_injected += 1;
        let code = self.faults.error_code.clone();
        let message = self
            .faults
            .message
            .clone()
            .unwrap_or_else(|| format!("injected failure: {code}"));
        Some(match target {
            FaultTarget::Api => Reply::api_error(self.faults.status, &code, &message),
            FaultTarget::Token => Reply {
                status: self.faults.status,
                body: json!({ "error": code, "error_description": message }),
            },
        })
    }

    /// `POST /services/oauth2/token` with the form's fields; `own_url` is the emulator's base
    /// URL as the caller reached it (its `instance_url`, and an accepted audience).
    pub fn token(&mut self, form: &HashMap<String, String>, own_url: &str) -> Reply {
        self.stats.token_requests += 1;
        let reply = self.token_inner(form, own_url);
        if reply.status == 200 {
            self.stats.tokens_issued += 1;
        } else {
            self.stats.token_errors += 1;
        }
        reply
    }

    fn token_inner(&mut self, form: &HashMap<String, String>, own_url: &str) -> Reply {
        if let Some(fault) = self.take_fault(FaultTarget::Token) {
            return fault;
        }
        let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
        let granted = match grant {
            JWT_BEARER_GRANT => {
                let Some(assertion) = form.get("assertion") else {
                    return Reply::oauth_error("invalid_request", "assertion is missing");
                };
                let sub = match self.verify_assertion(assertion, own_url) {
                    Ok(sub) => sub,
                    Err(reply) => return reply,
                };
                match self.authorise_sub(&sub) {
                    Ok(caller) => Granted {
                        caller,
                        scope: "api".into(),
                        refresh_from: None,
                        new_refresh: None,
                        signed: false,
                    },
                    Err(reply) => return reply,
                }
            }
            "refresh_token" => match self.refresh_grant(form) {
                Ok(granted) => granted,
                Err(reply) => return reply,
            },
            "authorization_code" => match self.code_grant(form) {
                Ok(granted) => granted,
                Err(reply) => return reply,
            },
            "" => return Reply::oauth_error("invalid_request", "grant_type is missing"),
            _ => return Reply::oauth_error("unsupported_grant_type", "grant type not supported"),
        };
        self.issue(granted, own_url)
    }

    /// Mints an access token for a grant and answers the token endpoint's body.
    fn issue(&mut self, granted: Granted, own_url: &str) -> Reply {
        let access_token = format!("{ORG_ID}!{}", random_hex(32));
        let id_url = format!(
            "{own_url}/id/{}/{}",
            with_checksum(&self.org_id),
            granted.caller.user_id
        );
        let issued_at = Utc::now().timestamp_millis().to_string();
        self.tokens.insert(
            access_token.clone(),
            Issued {
                at: Instant::now(),
                caller: granted.caller,
                refresh: granted.refresh_from,
            },
        );
        let mut body = json!({
            "access_token": access_token,
            "instance_url": own_url,
            "id": id_url,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "scope": granted.scope,
        });
        if granted.signed {
            let key = self.web.client_secret.as_deref().unwrap_or(&self.client_id);
            body["signature"] = signature(key, &id_url, &issued_at).into();
        }
        if let Some(next) = granted.new_refresh {
            body["refresh_token"] = next.into();
        }
        Reply::ok(body)
    }

    /// Checks the assertion and answers its `sub`.
    fn verify_assertion(&self, assertion: &str, own_url: &str) -> Result<String, Reply> {
        let invalid = |d: &str| Err(Reply::oauth_error("invalid_grant", d));
        match jsonwebtoken::decode_header(assertion) {
            Ok(header) if header.alg == Algorithm::RS256 => {}
            Ok(_) => return invalid("invalid assertion: the algorithm must be RS256"),
            Err(_) => return invalid("invalid assertion"),
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut claims = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => continue,
                Err(e) => {
                    return match e.kind() {
                        ErrorKind::ExpiredSignature => invalid("expired assertion"),
                        _ => invalid(&format!("invalid assertion: {e}")),
                    };
                }
            }
        }
        let Some(claims) = claims else {
            return invalid("invalid assertion: no configured certificate verifies its signature");
        };
        if claims.iss != self.client_id {
            return Err(Reply::oauth_error(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        let own = own_url.trim_end_matches('/');
        let accepted = |aud: &str| {
            let aud = aud.trim_end_matches('/');
            aud == own || AUDIENCES.contains(&aud)
        };
        let aud_ok = match &claims.aud {
            Value::String(aud) => accepted(aud),
            Value::Array(auds) => auds.iter().filter_map(Value::as_str).any(accepted),
            _ => false,
        };
        if !aud_ok {
            return invalid("audience is invalid");
        }
        if claims.exp - Utc::now().timestamp() > MAX_ASSERTION_LIFETIME_SECS {
            return invalid("invalid assertion: exp is more than 5 minutes away");
        }
        if claims.sub.trim().is_empty() {
            return invalid("invalid assertion: sub is missing");
        }
        Ok(claims.sub.trim().to_owned())
    }

    /// Runs an authenticated REST API call: checks the session, the caller's API access, the
    /// API allowance and the injected failures, then `call` as the token's user.
    pub fn api(
        &mut self,
        authorization: Option<&str>,
        call: impl FnOnce(&mut Emulator) -> Reply,
    ) -> Reply {
        self.stats.api_requests += 1;
        let reply = self.api_inner(authorization, call);
        if reply.status >= 400 {
            self.stats.api_errors += 1;
        }
        reply
    }

    fn api_inner(
        &mut self,
        authorization: Option<&str>,
        call: impl FnOnce(&mut Emulator) -> Reply,
    ) -> Reply {
        let token = authorization.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("OAuth "))
                .map(str::trim)
        });
        let caller = token
            .and_then(|t| self.tokens.get(t))
            .filter(|issued| issued.at.elapsed() < self.token_ttl)
            .map(|issued| issued.caller.clone());
        let Some(caller) = caller else {
            return Reply::invalid_session();
        };
        if let Some(refused) = self.api_disabled(&caller) {
            return refused;
        }
        if self.api_used >= self.api_limit {
            return Reply::api_error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            );
        }
        self.api_used += 1;
        if let Some(fault) = self.take_fault(FaultTarget::Api) {
            return fault;
        }
        self.acting.caller = caller;
        let reply = call(self);
        self.acting.caller = self.integration_caller();
        reply
    }

    /// `GET /services/data/<version>/query?q=…`.
    pub fn query(&mut self, version: &str, q: Option<&str>) -> Reply {
        let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
            return Reply::api_error(400, "MALFORMED_QUERY", "SOQL query is missing (q)");
        };
        let query = match soql::parse(q, Utc::now()) {
            Ok(query) => query,
            Err(message) => return Reply::api_error(400, "MALFORMED_QUERY", &message),
        };
        let records = match self.run(&query, version) {
            Ok(records) => records,
            Err(reply) => return reply,
        };
        let locator = format!("01gEMU{:09}", self.next_cursor);
        self.next_cursor += 1;
        self.page(version, &locator, records, 0)
    }

    /// `GET /services/data/<version>/query/<locator>-<offset>`.
    pub fn query_more(&mut self, version: &str, cursor: &str) -> Reply {
        let invalid = || Reply::api_error(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
        let Some((locator, offset)) = cursor.rsplit_once('-') else {
            return invalid();
        };
        let Ok(offset) = offset.parse::<usize>() else {
            return invalid();
        };
        let Some(index) = self.cursors.iter().position(|(l, _)| l == locator) else {
            return invalid();
        };
        let (locator, cursor) = self.cursors.remove(index).expect("index found above");
        if offset >= cursor.records.len() {
            self.cursors.push_back((locator, cursor));
            return invalid();
        }
        self.page(version, &locator, cursor.records, offset)
    }

    /// The page of `records` starting at `offset`, keeping a cursor for the rest.
    fn page(&mut self, version: &str, locator: &str, records: Vec<Value>, offset: usize) -> Reply {
        let total = records.len();
        let end = (offset + self.page_size).min(total);
        let page: Vec<Value> = records[offset..end].to_vec();
        let mut body = json!({ "totalSize": total, "done": end >= total, "records": page });
        if end < total {
            body["nextRecordsUrl"] =
                format!("/services/data/{version}/query/{locator}-{end}").into();
            if self.cursors.len() >= MAX_CURSORS {
                self.cursors.pop_front();
            }
            self.cursors
                .push_back((locator.to_owned(), Cursor { records }));
        }
        Reply::ok(body)
    }

    /// Filters, orders, limits and projects the records `query` asks for.
    fn run(&self, query: &Query, version: &str) -> Result<Vec<Value>, Reply> {
        self.select(query, version, &|_| true)
    }

    /// [`Self::run`], keeping only records `keep` accepts (before ordering and the limit) and
    /// those the caller may see; an object hidden from the caller is an unknown type.
    pub fn select(
        &self,
        query: &Query,
        version: &str,
        keep: &dyn Fn(&Record) -> bool,
    ) -> Result<Vec<Value>, Reply> {
        let found = self
            .store
            .object(&query.object)
            .filter(|_| !self.hidden_object(&query.object));
        let Some((object, records)) = found else {
            return Err(Reply::api_error(
                400,
                "INVALID_TYPE",
                &format!("sObject type '{}' is not supported.", query.object),
            ));
        };
        let paths = query
            .fields
            .iter()
            .chain(query.conditions.iter().map(|c| &c.field))
            .chain(query.order_by.iter().map(|k| &k.field));
        for path in paths {
            self.store
                .check_path(object, records, path)
                .map_err(|m| Reply::api_error(400, "INVALID_FIELD", &m))?;
        }
        let mut selected: Vec<&Record> = records
            .iter()
            .filter(|record| keep(record) && !self.hidden_record(object, record))
            .filter(|record| {
                query.conditions.iter().all(|c| {
                    let value = self.store.resolve(record, &c.field);
                    let is_id = c.field.last().is_some_and(|f| {
                        f.eq_ignore_ascii_case("Id") || f.to_ascii_lowercase().ends_with("id")
                    });
                    soql::matches(&value, c.op, &c.value, is_id)
                })
            })
            .collect();
        if !query.order_by.is_empty() {
            selected.sort_by(|a, b| {
                for key in &query.order_by {
                    let (va, vb) = (
                        self.store.resolve(a, &key.field),
                        self.store.resolve(b, &key.field),
                    );
                    let ord = match (va.is_null(), vb.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) if key.nulls_last => std::cmp::Ordering::Greater,
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) if key.nulls_last => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        (false, false) if key.descending => soql::order_values(&vb, &va),
                        (false, false) => soql::order_values(&va, &vb),
                    };
                    if ord != std::cmp::Ordering::Equal {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        if let Some(limit) = query.limit {
            selected.truncate(limit);
        }
        Ok(selected
            .into_iter()
            .map(|record| {
                let mut shown = self.project(object, record, &query.fields, version);
                if query.all_fields {
                    // Every field of the record itself; relationships are not fields.
                    for (k, v) in record.iter().filter(|(_, v)| !v.is_object()) {
                        shown.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                Value::Object(shown)
            })
            .collect())
    }

    /// The record as the API shows it: `attributes` plus the selected fields, relationships
    /// nested.
    fn project(
        &self,
        object: &str,
        record: &Record,
        fields: &[Vec<String>],
        version: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("attributes".into(), attributes(object, record, version));
        for path in fields {
            self.insert_path(&mut out, record, path, version);
        }
        out
    }

    fn insert_path(
        &self,
        out: &mut Map<String, Value>,
        record: &Record,
        path: &[String],
        version: &str,
    ) {
        match path {
            [] => {}
            [field] => {
                let (key, value) = match field_value(record, field) {
                    Some((key, value)) => (key.to_owned(), value.clone()),
                    None => (field.clone(), Value::Null),
                };
                out.insert(key, value);
            }
            [rel, rest @ ..] => match self.store.related(record, rel) {
                Some(related) => {
                    let entry = out.entry(related.name.clone()).or_insert(Value::Null);
                    if !entry.is_object() {
                        let mut nested = Map::new();
                        nested.insert(
                            "attributes".into(),
                            attributes(&related.type_name, related.record, version),
                        );
                        *entry = Value::Object(nested);
                    }
                    if let Value::Object(nested) = entry {
                        self.insert_path(nested, related.record, rest, version);
                    }
                }
                None => {
                    out.entry(self.store.relationship_key(record, rel))
                        .or_insert(Value::Null);
                }
            },
        }
    }

    /// `GET /services/data/<version>/sobjects/<object>/<id>?fields=…`.
    pub fn sobject(
        &mut self,
        version: &str,
        object: &str,
        id: &str,
        fields: Option<&str>,
    ) -> Reply {
        let not_found =
            || Reply::api_error(404, "NOT_FOUND", "The requested resource does not exist");
        let Some((object, records)) = self.store.object(object) else {
            return not_found();
        };
        let Some(record) = records
            .iter()
            .find(|r| super::store::same_id(record_id(r), id))
            .filter(|r| !self.hidden_record(object, r))
        else {
            return not_found();
        };
        let mut out = Map::new();
        out.insert("attributes".into(), attributes(object, record, version));
        match fields.map(str::trim).filter(|f| !f.is_empty()) {
            None => {
                for (k, v) in record {
                    out.insert(k.clone(), v.clone());
                }
            }
            Some(list) => {
                for field in list.split(',').map(str::trim) {
                    let path = vec![field.to_owned()];
                    if field.contains('.') || field.is_empty() {
                        return Reply::api_error(
                            400,
                            "INVALID_FIELD",
                            &format!("No such column '{field}' on sobject of type {object}"),
                        );
                    }
                    if let Err(m) = self.store.check_path(object, records, &path) {
                        return Reply::api_error(400, "INVALID_FIELD", &m);
                    }
                    self.insert_path(&mut out, record, &path, version);
                }
            }
        }
        Reply::ok(Value::Object(out))
    }

    /// `POST /_emulator/records`.
    pub fn add_records(&mut self, data: Value) -> Reply {
        match self.store.upsert_all(data, &sf_now()) {
            Ok(n) => Reply::ok(json!({ "upserted": n })),
            Err(message) => Reply {
                status: 400,
                body: json!({ "error": message }),
            },
        }
    }
}

fn attributes(object: &str, record: &Record, version: &str) -> Value {
    json!({
        "type": object,
        "url": format!("/services/data/{version}/sobjects/{object}/{}", record_id(record)),
    })
}

/// For the journal: RFC 3339 now.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
