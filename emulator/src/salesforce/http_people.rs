//! The HTTP face of people's own connections and searches: the web-server flow's authorize
//! and revoke endpoints, SOSL and parameterized search, and their control routes
//! (`/_emulator/oauth…`, `/_emulator/visibility`, `/_emulator/searches`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::emulator::Emulator;
use super::http::{
    Shared, authorization, control_error, finish, journal, json_response, lock, not_found,
    url_decode_form, url_decode_pairs, valid_version,
};
use super::webflow::Authorize;

/// What the login page says: the emulator has no one to log in.
const LOGIN_PAGE: &str = "<!DOCTYPE html><html><head><title>Login | Salesforce</title></head>\
<body><p>Nobody logs in: add login_as=&lt;username or Id&gt; to the authorize URL, or set one \
with POST /_emulator/oauth/login.</p></body></html>";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/services/oauth2/authorize", get(authorize))
        .route("/services/oauth2/revoke", post(revoke).get(revoke))
        .route("/services/data/{version}/search", get(search))
        .route("/services/data/{version}/search/", get(search))
        .route(
            "/services/data/{version}/parameterizedSearch",
            get(parameterized_search),
        )
        .route(
            "/services/data/{version}/parameterizedSearch/",
            get(parameterized_search),
        )
        .route("/_emulator/oauth", get(oauth_state))
        .route("/_emulator/oauth/app", post(set_app))
        .route("/_emulator/oauth/login", post(set_login))
        .route("/_emulator/oauth/tokens", post(end_tokens))
        .route(
            "/_emulator/visibility",
            post(set_visibility).get(get_visibility),
        )
        .route("/_emulator/searches", get(searches))
}

async fn authorize(State(shared): State<Shared>, method: Method, uri: Uri) -> Response {
    let params = url_decode_form(uri.query().unwrap_or_default().as_bytes());
    let mut emu = lock(&shared);
    let answer = emu.authorize(&params);
    let response = match answer {
        Authorize::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
        Authorize::LoginPage => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            LOGIN_PAGE,
        )
            .into_response(),
        Authorize::Refused(reply) => json_response(reply.status, &reply.body, None),
    };
    journal(
        &mut emu,
        &method,
        &uri,
        None,
        None,
        response.status().as_u16(),
    );
    response
}

/// `POST /services/oauth2/revoke` (form `token=…`) or `GET …?token=…`: 200 with no body.
async fn revoke(State(shared): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Response {
    let mut form = url_decode_form(&body);
    if form.is_empty() {
        form = url_decode_form(uri.query().unwrap_or_default().as_bytes());
    }
    let mut emu = lock(&shared);
    let reply = emu.revoke(form.get("token").map(String::as_str));
    journal(&mut emu, &method, &uri, None, None, reply.status);
    if reply.status == 200 {
        StatusCode::OK.into_response()
    } else {
        json_response(reply.status, &reply.body, None)
    }
}

/// Runs an authenticated call if the API version is well formed.
fn versioned(
    emu: &mut Emulator,
    version: &str,
    headers: &HeaderMap,
    call: impl FnOnce(&mut Emulator) -> super::emulator::Reply,
) -> super::emulator::Reply {
    if valid_version(version) {
        emu.api(authorization(headers), call)
    } else {
        not_found()
    }
}

async fn search(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params = url_decode_form(uri.query().unwrap_or_default().as_bytes());
    let q = params.get("q").map(String::as_str);
    let mut emu = lock(&shared);
    let reply = versioned(&mut emu, &version, &headers, |e| e.search(&version, q));
    finish(&mut emu, &method, &uri, q, None, reply)
}

async fn parameterized_search(
    State(shared): State<Shared>,
    Path(version): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let pairs = url_decode_pairs(uri.query().unwrap_or_default().as_bytes());
    let q = pairs.iter().find(|(k, _)| k == "q").map(|(_, v)| v.clone());
    let mut emu = lock(&shared);
    let reply = versioned(&mut emu, &version, &headers, |e| {
        e.parameterized_search(&version, &pairs)
    });
    finish(&mut emu, &method, &uri, q.as_deref(), None, reply)
}

/// Parses a control body and applies `change`, answering its result or a 400.
fn control(
    shared: &Shared,
    body: &[u8],
    what: &str,
    change: impl FnOnce(&mut Emulator, &Value) -> Result<Value, String>,
) -> Response {
    let data: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return control_error(format!("{what}: {e}")),
    };
    match change(&mut lock(shared), &data) {
        Ok(state) => json_response(200, &state, None),
        Err(message) => control_error(format!("{what}: {message}")),
    }
}

async fn oauth_state(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).web_state(), None)
}

async fn set_app(State(shared): State<Shared>, body: Bytes) -> Response {
    control(&shared, &body, "oauth/app", Emulator::set_web_app)
}

async fn set_login(State(shared): State<Shared>, body: Bytes) -> Response {
    control(&shared, &body, "oauth/login", Emulator::set_login)
}

async fn end_tokens(State(shared): State<Shared>, body: Bytes) -> Response {
    control(&shared, &body, "oauth/tokens", Emulator::end_person_tokens)
}

async fn set_visibility(State(shared): State<Shared>, body: Bytes) -> Response {
    control(&shared, &body, "visibility", Emulator::set_visibility)
}

async fn get_visibility(State(shared): State<Shared>) -> Response {
    json_response(200, &lock(&shared).visibility_state(), None)
}

async fn searches(State(shared): State<Shared>) -> Response {
    json_response(200, &json!(lock(&shared).searches.to_json()), None)
}
