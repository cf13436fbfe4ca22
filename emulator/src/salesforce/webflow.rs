//! A person connecting their own Salesforce account: the OAuth 2.0 web-server flow with PKCE,
//! the refresh tokens it hands out, and revocation.
//!
//! `GET /services/oauth2/authorize` stands in for the login page and the consent screen: the
//! `login_as` query parameter (or the default `POST /_emulator/oauth/login` set) names the User
//! who logs in, by username or Id, and `decision=deny` makes them decline. An unknown
//! `client_id` or a `redirect_uri` the connected app does not list is a 400 (Salesforce shows
//! an error page, it never redirects there); every other answer is a 302 to `redirect_uri`
//! with `code` and `state`, or with `error`. A code works once, within its lifetime, for the
//! same `client_id` and `redirect_uri`, and only with the `code_verifier` whose S256 hash is
//! the `code_challenge`. The tokens it buys run as that person; their refresh token (when the
//! scope asks for one) buys more, until revoked.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use reqwest::Url;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::acting::Caller;
use super::emulator::{Emulator, Reply, now_rfc3339};
use super::store::{field_value, record_id, same_id};

/// How long an authorization code works unless `--auth-code-ttl-secs` says otherwise.
pub const DEFAULT_CODE_TTL_SECS: u64 = 900;
/// Authorize requests kept for `GET /_emulator/oauth`.
const MAX_AUTHORIZATIONS: usize = 1000;
/// Scopes that come with a refresh token.
const REFRESH_SCOPES: &[&str] = &["refresh_token", "offline_access", "full"];
/// The scope granted when the request names none (the connected app's own).
const DEFAULT_SCOPE: &str = "api refresh_token";

/// Who logs in at the authorize endpoint, and whether they approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub login_as: String,
    pub approve: bool,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    caller: Caller,
    scope: String,
    issued: Instant,
    used: bool,
}

/// A person's refresh token.
#[derive(Debug, Clone)]
struct Grant {
    caller: Caller,
    scope: String,
}

/// The connected app's web-server flow settings and what it handed out.
#[derive(Debug)]
pub struct WebFlow {
    /// The connected app's callback URLs; empty accepts any loopback `http(s)` URL.
    pub callback_urls: Vec<String>,
    /// The consumer secret; when set, a token request that sends another is refused.
    pub client_secret: Option<String>,
    pub code_ttl: Duration,
    /// Who logs in when the authorize request does not say.
    pub login: Option<Login>,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Grant>,
    authorizations: VecDeque<Value>,
}

impl Default for WebFlow {
    fn default() -> Self {
        WebFlow {
            callback_urls: Vec::new(),
            client_secret: None,
            code_ttl: Duration::from_secs(DEFAULT_CODE_TTL_SECS),
            login: None,
            codes: HashMap::new(),
            refresh: HashMap::new(),
            authorizations: VecDeque::new(),
        }
    }
}

/// How the authorize endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorize {
    /// 302 to this URL.
    Redirect(String),
    /// The login page: nobody logged in (no `login_as`).
    LoginPage,
    /// A 400 without redirecting.
    Refused(Reply),
}

/// What a token grant gives, before the access token is minted.
#[derive(Debug, Clone)]
pub struct Granted {
    pub caller: Caller,
    pub scope: String,
    /// The refresh token the access token derives from, for revocation.
    pub refresh_from: Option<String>,
    /// A refresh token to hand out with it.
    pub new_refresh: Option<String>,
    /// Whether the answer carries Salesforce's `signature`.
    pub signed: bool,
}

pub fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Base64url (no padding) of the SHA-256 of the verifier: PKCE's S256.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Salesforce's `signature`: Base64 HMAC-SHA256 of `id` and `issued_at`, keyed with the
/// consumer secret.
pub fn signature(key: &str, id: &str, issued_at: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// `redirect_uri` with `pairs` added to its query.
fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
                    query.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

fn is_loopback_http(raw: &str) -> bool {
    Url::parse(raw).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|h| {
                h.eq_ignore_ascii_case("localhost") || h == "127.0.0.1" || h == "[::1]"
            })
    })
}

fn wants_refresh(scope: &str) -> bool {
    scope
        .split_whitespace()
        .any(|s| REFRESH_SCOPES.contains(&s))
}

impl Emulator {
    /// The active User a login names, by username (any case) or Id.
    pub fn person(&self, who: &str) -> Option<Caller> {
        let (_, users) = self.store.object("User")?;
        let user = users.iter().find(|u| {
            same_id(record_id(u), who)
                || field_value(u, "Username")
                    .and_then(|(_, v)| v.as_str())
                    .is_some_and(|name| name.eq_ignore_ascii_case(who))
        })?;
        let active = field_value(user, "IsActive").is_none_or(|(_, v)| v != &Value::Bool(false));
        active.then(|| Caller {
            user_id: record_id(user).to_owned(),
            username: field_value(user, "Username")
                .and_then(|(_, v)| v.as_str())
                .unwrap_or(who)
                .to_owned(),
        })
    }

    /// `GET /services/oauth2/authorize` with its query parameters.
    pub fn authorize(&mut self, params: &HashMap<String, String>) -> Authorize {
        let answer = self.authorize_inner(params);
        let outcome = match &answer {
            Authorize::Redirect(url) if url.contains("error=") => "error",
            Authorize::Redirect(_) => "code",
            Authorize::LoginPage => "login_page",
            Authorize::Refused(reply) => reply.body["error"].as_str().unwrap_or("refused"),
        };
        if self.web.authorizations.len() >= MAX_AUTHORIZATIONS {
            self.web.authorizations.pop_front();
        }
        let param = |k: &str| params.get(k).cloned().map(Value::String);
        self.web.authorizations.push_back(json!({
            "at": now_rfc3339(),
            "client_id": param("client_id"),
            "redirect_uri": param("redirect_uri"),
            "scope": param("scope"),
            "state": param("state"),
            "code_challenge_method": param("code_challenge_method"),
            "login_as": param("login_as"),
            "outcome": outcome,
        }));
        answer
    }

    fn authorize_inner(&mut self, params: &HashMap<String, String>) -> Authorize {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        if get("client_id") != self.client_id {
            return Authorize::Refused(Reply::oauth_error(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        let redirect_uri = get("redirect_uri");
        let registered = if self.web.callback_urls.is_empty() {
            is_loopback_http(redirect_uri)
        } else {
            self.web.callback_urls.iter().any(|u| u == redirect_uri)
        };
        if !registered {
            return Authorize::Refused(Reply::oauth_error(
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            ));
        }
        let state = get("state");
        let fail = |error: &str, description: &str| {
            Authorize::Redirect(redirect_with(
                redirect_uri,
                &[
                    ("error", error),
                    ("error_description", description),
                    ("state", state),
                ],
            ))
        };
        if get("response_type") != "code" {
            return fail("unsupported_response_type", "response type not supported");
        }
        let challenge = params.get("code_challenge").filter(|c| !c.is_empty());
        if challenge.is_some() && get("code_challenge_method") != "S256" {
            return fail("invalid_request", "code_challenge_method must be S256");
        }
        let login = match params.get("login_as").filter(|l| !l.is_empty()) {
            Some(who) => Login {
                login_as: who.clone(),
                approve: get("decision") != "deny",
            },
            None => match &self.web.login {
                Some(login) => Login {
                    approve: login.approve && get("decision") != "deny",
                    ..login.clone()
                },
                None => return Authorize::LoginPage,
            },
        };
        let Some(caller) = self.person(&login.login_as) else {
            return Authorize::Refused(Reply::oauth_error(
                "login_failed",
                "no active User has that username or Id",
            ));
        };
        if !login.approve {
            return fail("access_denied", "end-user denied authorization");
        }
        let scope = match get("scope").trim() {
            "" => DEFAULT_SCOPE.to_owned(),
            given => given.to_owned(),
        };
        let code = format!("aPrx{}", random_hex(32));
        self.web.codes.insert(
            code.clone(),
            Code {
                client_id: self.client_id.clone(),
                redirect_uri: redirect_uri.to_owned(),
                challenge: challenge.cloned(),
                caller,
                scope,
                issued: Instant::now(),
                used: false,
            },
        );
        Authorize::Redirect(redirect_with(
            redirect_uri,
            &[("code", &code), ("state", state)],
        ))
    }

    /// Checks a token request's `client_id` and, when it sends one, `client_secret`.
    fn check_client(&self, form: &HashMap<String, String>) -> Result<(), Reply> {
        if form.get("client_id") != Some(&self.client_id) {
            return Err(Reply::oauth_error(
                "invalid_client_id",
                "client identifier invalid",
            ));
        }
        match (form.get("client_secret"), &self.web.client_secret) {
            (Some(given), Some(secret)) if given != secret => Err(Reply::oauth_error(
                "invalid_client",
                "invalid client credentials",
            )),
            _ => Ok(()),
        }
    }

    /// `grant_type=authorization_code`.
    pub fn code_grant(&mut self, form: &HashMap<String, String>) -> Result<Granted, Reply> {
        self.check_client(form)?;
        let invalid = |d: &str| Reply::oauth_error("invalid_grant", d);
        let given = form.get("code").map(String::as_str).unwrap_or_default();
        let ttl = self.web.code_ttl;
        let code = self
            .web
            .codes
            .get_mut(given)
            .ok_or_else(|| invalid("invalid authorization code"))?;
        if code.used {
            return Err(invalid("invalid authorization code"));
        }
        if code.issued.elapsed() >= ttl {
            return Err(invalid("expired authorization code"));
        }
        if form.get("redirect_uri") != Some(&code.redirect_uri) {
            return Err(Reply::oauth_error(
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            ));
        }
        if code.client_id != self.client_id {
            return Err(invalid("invalid authorization code"));
        }
        if let Some(challenge) = &code.challenge {
            let verifier = form.get("code_verifier").map(String::as_str);
            if verifier.is_none_or(|v| s256(v) != *challenge) {
                return Err(invalid("invalid code verifier"));
            }
        }
        code.used = true;
        let (caller, scope) = (code.caller.clone(), code.scope.clone());
        let new_refresh = wants_refresh(&scope).then(|| {
            let token = format!("5Aep{}", random_hex(32));
            self.web.refresh.insert(
                token.clone(),
                Grant {
                    caller: caller.clone(),
                    scope: scope.clone(),
                },
            );
            token
        });
        Ok(Granted {
            caller,
            scope,
            refresh_from: new_refresh.clone(),
            new_refresh,
            signed: true,
        })
    }

    /// `grant_type=refresh_token`: a person's refresh token, or the integration user's
    /// (`--refresh-token`); rotated when `--rotate-refresh-tokens` is on.
    pub fn refresh_grant(&mut self, form: &HashMap<String, String>) -> Result<Granted, Reply> {
        self.check_client(form)?;
        let given = form.get("refresh_token").cloned().unwrap_or_default();
        let expired = || Reply::oauth_error("invalid_grant", "expired access/refresh token");
        let rotated = self
            .rotate_refresh_tokens
            .then(|| format!("5Aep{}", random_hex(24)));
        if let Some(grant) = self.web.refresh.get(&given).cloned() {
            let current = match &rotated {
                Some(next) => {
                    self.web.refresh.remove(&given);
                    self.web.refresh.insert(next.clone(), grant.clone());
                    next.clone()
                }
                None => given,
            };
            return Ok(Granted {
                caller: grant.caller,
                scope: grant.scope,
                refresh_from: Some(current),
                new_refresh: rotated,
                signed: true,
            });
        }
        if given.is_empty() || self.refresh_token.as_ref() != Some(&given) {
            return Err(expired());
        }
        if let Some(next) = &rotated {
            self.refresh_token = Some(next.clone());
        }
        Ok(Granted {
            caller: self.integration_caller(),
            scope: "api".into(),
            refresh_from: rotated.clone().or(Some(given)),
            new_refresh: rotated,
            signed: true,
        })
    }

    /// `POST /services/oauth2/revoke token=…`: an access token, or a refresh token and every
    /// access token it bought.
    pub fn revoke(&mut self, token: Option<&str>) -> Reply {
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Reply::oauth_error("unsupported_token_type", "Token type not supported");
        };
        if self.tokens.remove(token).is_some() {
            return Reply::ok(Value::Null);
        }
        let person = self.web.refresh.remove(token).is_some();
        let integration = self.refresh_token.as_deref() == Some(token);
        if !person && !integration {
            return Reply::oauth_error("invalid_token", "invalid token");
        }
        if integration {
            self.refresh_token = None;
        }
        self.tokens
            .retain(|_, issued| issued.refresh.as_deref() != Some(token));
        Reply::ok(Value::Null)
    }

    /// `POST /_emulator/oauth/tokens {"user", "action": "expire" | "revoke"}`: ends a person's
    /// access tokens (`expire`; their refresh token still works) or all their tokens.
    pub fn end_person_tokens(&mut self, data: &Value) -> Result<Value, String> {
        let who = data
            .get("user")
            .and_then(Value::as_str)
            .ok_or(r#"expected {"user": "<username or Id>", "action": "expire"|"revoke"}"#)?;
        let revoke = match data.get("action").and_then(Value::as_str) {
            Some("expire") => false,
            Some("revoke") => true,
            _ => return Err(r#"action must be "expire" or "revoke""#.into()),
        };
        let theirs = |c: &Caller| same_id(&c.user_id, who) || c.username.eq_ignore_ascii_case(who);
        let before = self.tokens.len();
        self.tokens.retain(|_, issued| !theirs(&issued.caller));
        let expired = before - self.tokens.len();
        let mut revoked = 0;
        if revoke {
            let before = self.web.refresh.len();
            self.web.refresh.retain(|_, grant| !theirs(&grant.caller));
            revoked = before - self.web.refresh.len();
        }
        Ok(json!({"access_tokens_ended": expired, "refresh_tokens_revoked": revoked}))
    }

    /// `POST /_emulator/oauth/app {"callback_urls"?, "client_secret"?, "code_ttl_secs"?}`.
    pub fn set_web_app(&mut self, data: &Value) -> Result<Value, String> {
        let Value::Object(fields) = data else {
            return Err("expected an object".into());
        };
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("callback_urls", Value::Array(urls)) => {
                    self.web.callback_urls = urls
                        .iter()
                        .map(|u| u.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("callback_urls must be strings")?;
                }
                ("client_secret", Value::String(secret)) => {
                    self.web.client_secret = Some(secret.clone());
                }
                ("client_secret", Value::Null) => self.web.client_secret = None,
                ("code_ttl_secs", Value::Number(n)) => {
                    let secs = n.as_u64().ok_or("code_ttl_secs must be a whole number")?;
                    self.web.code_ttl = Duration::from_secs(secs);
                }
                (other, _) => return Err(format!("unknown or mistyped setting {other:?}")),
            }
        }
        Ok(self.web_state())
    }

    /// `POST /_emulator/oauth/login {"login_as": "…"|null, "decision"?: "approve"|"deny"}`.
    pub fn set_login(&mut self, data: &Value) -> Result<Value, String> {
        let approve = match data.get("decision").and_then(Value::as_str) {
            None | Some("approve") => true,
            Some("deny") => false,
            Some(other) => return Err(format!("decision {other:?} is not approve or deny")),
        };
        self.web.login = match data.get("login_as") {
            Some(Value::String(who)) if !who.trim().is_empty() => Some(Login {
                login_as: who.trim().to_owned(),
                approve,
            }),
            Some(Value::Null) => None,
            _ => return Err(r#"expected {"login_as": "<username or Id>" | null}"#.into()),
        };
        Ok(self.web_state())
    }

    /// `GET /_emulator/oauth`: the settings, who holds tokens, and the authorize requests.
    pub fn web_state(&self) -> Value {
        let mut people: Vec<Value> = Vec::new();
        let mut holders: Vec<&Caller> = self.tokens.values().map(|i| &i.caller).collect();
        holders.extend(self.web.refresh.values().map(|g| &g.caller));
        holders.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        holders.dedup_by(|a, b| a.user_id == b.user_id);
        for caller in holders {
            let access = self
                .tokens
                .values()
                .filter(|i| i.caller.user_id == caller.user_id)
                .count();
            let refresh = self
                .web
                .refresh
                .values()
                .filter(|g| g.caller.user_id == caller.user_id)
                .count();
            people.push(
                json!({"user_id": caller.user_id, "username": caller.username,
                               "access_tokens": access, "refresh_tokens": refresh}),
            );
        }
        json!({
            "client_id": self.client_id,
            "callback_urls": self.web.callback_urls,
            "client_secret_set": self.web.client_secret.is_some(),
            "code_ttl_secs": self.web.code_ttl.as_secs(),
            "login": self.web.login.as_ref().map(|l| json!({"login_as": l.login_as,
                                                            "approve": l.approve})),
            "codes_pending": self.web.codes.values().filter(|c| !c.used).count(),
            "people": people,
            "authorizations": self.web.authorizations,
        })
    }
}

#[cfg(test)]
#[path = "webflow_tests.rs"]
mod tests;
