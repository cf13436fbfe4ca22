//! The HTTP face of the Salesforce emulator: the OAuth token endpoint, the REST API subset and
//! the `/_emulator/` control API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::emulator::{Emulator, Faults, Reply, now_rfc3339};
use super::holds::{Holds, get_hold, hold_layer, release, set_hold};
use super::writes::{ValidationRule, WriteFault};

pub type Shared = Arc<Mutex<Emulator>>;

pub fn router(shared: Shared) -> Router {
    let holds = Arc::new(Holds::default());
    let control = Router::new()
        .route("/_emulator/hold", post(set_hold).get(get_hold))
        .route("/_emulator/release", post(release))
        .with_state(holds.clone());
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/{cursor}", get(query_more))
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(sobject).patch(update),
        )
        .route(
            "/services/data/{version}/process/approvals",
            post(process_approvals),
        )
        .route(
            "/services/data/{version}/process/approvals/",
            post(process_approvals),
        )
        .route("/services/data/{version}/sobjects/{object}", post(create))
        .route("/services/data/{version}/sobjects/{object}/", post(create))
        .route(
            "/services/data/{version}/ui-api/object-info/{object}/picklist-values/{record_type}/{field}",
            get(picklist_values),
        )
        .route("/_emulator/write-faults", post(set_write_faults))
        .route("/_emulator/validation-rules", post(set_validation_rules))
        .route("/_emulator/picklists", post(set_picklists))
        .route("/_emulator/assignment-rules", post(set_assignment_rules))
        .route("/_emulator/writes", get(get_writes))
        .route("/_emulator/jwt-users", post(set_jwt_users).get(get_jwt_users))
        .route(
            "/_emulator/approvals",
            post(submit_for_approval).get(get_approvals),
        )
        .route("/_emulator/expire-tokens", post(expire_tokens))
        .route("/_emulator/api-usage", post(set_api_usage))
        .route("/_emulator/faults", post(set_faults).get(get_faults))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/records", post(add_records))
        .route("/_emulator/stats", get(stats))
        .merge(super::http_people::routes())
        .fallback(fallback)
        .with_state(shared)
        .merge(control)
        .layer(axum::middleware::from_fn_with_state(holds, hold_layer))
}

pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Emulator> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn json_response(status: u16, body: &Value, limit_info: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // 204 No Content (an update) has no body.
    let mut response = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (status, axum::Json(body.clone())).into_response()
    };
    if let Some(info) = limit_info.and_then(|i| HeaderValue::from_str(&i).ok()) {
        response.headers_mut().insert("sforce-limit-info", info);
    }
    response
}

/// The emulator's base URL as the caller reached it.
pub(super) fn own_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Journals one request for `/_emulator/requests`.
pub(super) fn journal(
    emu: &mut Emulator,
    method: &Method,
    uri: &Uri,
    q: Option<&str>,
    extra: Option<(&str, Value)>,
    status: u16,
) {
    let mut entry = json!({
        "at": now_rfc3339(),
        "method": method.as_str(),
        "path": uri.path(),
        "q": q,
        "status": status,
    });
    if let Some((key, value)) = extra {
        entry[key] = value;
    }
    tracing::debug!(method = %method, path = uri.path(), status, "salesforce request");
    emu.record_request(entry);
}

/// Journals the request and turns the reply into a response; REST API answers carry
/// `Sforce-Limit-Info`.
pub(super) fn finish(
    emu: &mut Emulator,
    method: &Method,
    uri: &Uri,
    q: Option<&str>,
    extra: Option<(&str, Value)>,
    reply: Reply,
) -> Response {
    journal(emu, method, uri, q, extra, reply.status);
    let limit_info = uri
        .path()
        .starts_with("/services/data/")
        .then(|| emu.limit_info());
    json_response(reply.status, &reply.body, limit_info)
}

pub(super) fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

pub(super) fn not_found() -> Reply {
    Reply::api_error(404, "NOT_FOUND", "The requested resource does not exist")
}

pub(super) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
}

async fn token(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url_decode_form(&body);
    let own = own_url(&headers);
    let mut emu = lock(&shared);
    let reply = emu.token(&form, &own);
    let grant = form.get("grant_type").cloned().map(Value::String);
    finish(
        &mut emu,
        &method,
        &uri,
        None,
        Some(("grant_type", grant.unwrap_or(Value::Null))),
        reply,
    )
}

/// Decodes `application/x-www-form-urlencoded` pairs (a repeated key keeps its last value);
/// undecodable input yields what could be read, which the token checks then refuse.
pub(super) fn url_decode_form(body: &[u8]) -> HashMap<String, String> {
    url_decode_pairs(body).into_iter().collect()
}

/// Decodes `application/x-www-form-urlencoded` pairs in order, repeated keys kept.
pub(super) fn url_decode_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &[u8]| -> Option<String> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    };
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

async fn query(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = url_decode_form(uri.query().unwrap_or("").as_bytes());
    let q = params.get("q").map(String::as_str);
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| e.query(&version, q))
    } else {
        not_found()
    };
    finish(&mut emu, &method, &uri, q, None, reply)
}

async fn query_more(
    State(shared): State<Shared>,
    Path((version, cursor)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| e.query_more(&version, &cursor))
    } else {
        not_found()
    };
    finish(&mut emu, &method, &uri, None, None, reply)
}

async fn sobject(
    State(shared): State<Shared>,
    Path((version, object, id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = url_decode_form(uri.query().unwrap_or("").as_bytes());
    let fields = params.get("fields").map(String::as_str);
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| {
            e.sobject(&version, &object, &id, fields)
        })
    } else {
        not_found()
    };
    finish(&mut emu, &method, &uri, None, None, reply)
}

/// The write headers worth seeing in the journal.
fn write_headers(headers: &HeaderMap) -> Value {
    let names = [
        "sforce-call-options",
        "sforce-auto-assign",
        "if-unmodified-since",
    ];
    let mut seen = serde_json::Map::new();
    for name in names {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            seen.insert(name.into(), Value::String(v.to_owned()));
        }
    }
    Value::Object(seen)
}

async fn create(
    State(shared): State<Shared>,
    Path((version, object)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| e.create(&object, &body))
    } else {
        not_found()
    };
    let seen = write_headers(&headers);
    finish(
        &mut emu,
        &method,
        &uri,
        None,
        Some(("headers", seen)),
        reply,
    )
}

async fn update(
    State(shared): State<Shared>,
    Path((version, object, id)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let since = headers
        .get(header::IF_UNMODIFIED_SINCE)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let auto_assign = !headers
        .get("sforce-auto-assign")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| {
            e.update(&object, &id, since.as_deref(), auto_assign, &body)
        })
    } else {
        not_found()
    };
    let seen = write_headers(&headers);
    finish(
        &mut emu,
        &method,
        &uri,
        None,
        Some(("headers", seen)),
        reply,
    )
}

async fn picklist_values(
    State(shared): State<Shared>,
    Path((version, object, record_type, field)): Path<(String, String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| {
            e.picklist_values(&object, &record_type, &field)
        })
    } else {
        not_found()
    };
    finish(&mut emu, &method, &uri, None, None, reply)
}

async fn set_write_faults(State(shared): State<Shared>, body: Bytes) -> Response {
    let faults: Vec<WriteFault> = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return control_error(format!("write-faults: {e}")),
    };
    if let Some(bad) = faults.iter().find(|f| !(400..=599).contains(&f.status)) {
        return control_error(format!(
            "write-faults: status {} must be 400-599",
            bad.status
        ));
    }
    let mut emu = lock(&shared);
    emu.writes.faults.extend(faults);
    json_response(200, &emu.write_state(), None)
}

async fn set_validation_rules(State(shared): State<Shared>, body: Bytes) -> Response {
    let rules: Vec<ValidationRule> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return control_error(format!("validation-rules: {e}")),
    };
    let mut emu = lock(&shared);
    emu.writes.rules.extend(rules);
    json_response(200, &emu.write_state(), None)
}

async fn set_picklists(State(shared): State<Shared>, body: Bytes) -> Response {
    let data: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("picklists: {e}")),
    };
    let mut emu = lock(&shared);
    match emu.writes.set_picklists(data) {
        Ok(_) => json_response(200, &emu.write_state(), None),
        Err(message) => control_error(format!("picklists: {message}")),
    }
}

async fn set_assignment_rules(State(shared): State<Shared>, body: Bytes) -> Response {
    let data: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("assignment-rules: {e}")),
    };
    let mut emu = lock(&shared);
    match emu.writes.set_assignment_rules(data) {
        Ok(_) => json_response(200, &emu.write_state(), None),
        Err(message) => control_error(format!("assignment-rules: {message}")),
    }
}

async fn get_writes(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).write_state(), None)
}

async fn process_approvals(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut emu = lock(&shared);
    let reply = if valid_version(&version) {
        emu.api(authorization(&headers), |e| e.process_approvals(&body))
    } else {
        not_found()
    };
    finish(&mut emu, &method, &uri, None, None, reply)
}

async fn set_jwt_users(State(shared): State<Shared>, body: Bytes) -> Response {
    let data: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("jwt-users: {e}")),
    };
    match lock(&shared).set_jwt_users(data) {
        Ok(state) => json_response(200, &state, None),
        Err(message) => control_error(format!("jwt-users: {message}")),
    }
}

async fn get_jwt_users(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).jwt_users(), None)
}

async fn submit_for_approval(State(shared): State<Shared>, body: Bytes) -> Response {
    let reply = lock(&shared).submit_for_approval(&body);
    json_response(reply.status, &reply.body, None)
}

async fn get_approvals(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).approvals_state(), None)
}

async fn fallback(State(shared): State<Shared>, method: Method, uri: Uri) -> Response {
    let mut emu = lock(&shared);
    finish(&mut emu, &method, &uri, None, None, not_found())
}

pub(super) fn control_error(message: impl Into<String>) -> Response {
    json_response(400, &json!({ "error": message.into() }), None)
}

async fn expire_tokens(State(shared): State<Shared>) -> Response {
    let body = lock(&shared).expire_tokens();
    json_response(200, &body, None)
}

/// Other integrations' use of the org's daily allowance: `{"used": n, "limit"?: m}`.
async fn set_api_usage(State(shared): State<Shared>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Usage {
        used: u64,
        limit: Option<u64>,
    }
    let usage: Usage = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return control_error(format!("api-usage: {e}")),
    };
    let mut emulator = lock(&shared);
    emulator.api_used = usage.used;
    if let Some(limit) = usage.limit {
        emulator.api_limit = limit;
    }
    let body = serde_json::json!({"api_usage": emulator.api_used, "api_limit": emulator.api_limit});
    json_response(200, &body, None)
}

async fn set_faults(State(shared): State<Shared>, body: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return control_error(format!("faults: {e}")),
    };
    if !(400..=599).contains(&faults.status) {
        return control_error("faults: status must be 400-599");
    }
    let mut emu = lock(&shared);
    emu.faults = faults;
    json_response(200, &json!(emu.faults), None)
}

async fn get_faults(State(shared): State<Shared>) -> Response {
    json_response(200, &json!(lock(&shared).faults), None)
}

async fn requests(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).requests(), None)
}

async fn add_records(State(shared): State<Shared>, body: Bytes) -> Response {
    let data: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("records: {e}")),
    };
    let reply = lock(&shared).add_records(data);
    json_response(reply.status, &reply.body, None)
}

async fn stats(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).stats(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let form = url_decode_form(b"grant_type=refresh_token&refresh_token=a%2Bb+c&x&bad=%ZZ");
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "a+b c");
        assert_eq!(form["x"], "");
        assert!(!form.contains_key("bad"));
    }

    #[test]
    fn own_url_comes_from_host() {
        let mut h = HeaderMap::new();
        assert_eq!(own_url(&h), "http://127.0.0.1");
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4321"));
        assert_eq!(own_url(&h), "http://127.0.0.1:4321");
        h.insert(header::HOST, HeaderValue::from_static("evil\"host"));
        assert_eq!(own_url(&h), "http://127.0.0.1");
        assert!(valid_version("v62.0"));
        assert!(!valid_version("62.0"));
    }
}
