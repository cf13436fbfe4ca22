//! The emulator's whole state and the path every API call takes through it.
//!
//! Kept free of HTTP so the order of checks (method, auth, arguments, forced 429s, rate limits,
//! injected 500s, then the method, then answers dropped after the effect) can be tested
//! directly.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;

use super::faults::Faults;
use super::interactive::Interactive;
use super::journal::{Journal, PostedMessage, RequestRecord};
use super::limits::Limits;
use super::methods::{self, ApiError, Ctx, SlackMethod};
use super::tokens::TokenStates;
use super::workspace::Workspace;
use crate::gcra::retry_after_secs;
use crate::params::Params;

/// The state shared by all request handlers.
pub type Shared = Arc<Mutex<Emulator>>;

/// Locks the state; a panic in another handler must not wedge the emulator, so poisoning is
/// ignored (every change leaves the state consistent).
pub fn lock(shared: &Shared) -> MutexGuard<'_, Emulator> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything the emulator knows and has seen.
#[derive(Debug)]
pub struct Emulator {
    /// Bot token callers must present.
    pub token: String,
    /// Other accepted tokens, and tokens refused on demand.
    pub token_states: TokenStates,
    /// Largest `conversations.list` page.
    pub page_size: usize,
    /// Channels, users, messages.
    pub workspace: Workspace,
    /// Request log and counters.
    pub journal: Journal,
    /// Injected faults.
    pub faults: Faults,
    /// Rate limiters.
    pub limits: Limits,
    /// Triggers, open modals, ephemeral messages and `response_url`s.
    pub interactive: Interactive,
}

/// One API call as it arrived, before any interpretation.
#[derive(Debug, Clone, Copy)]
pub struct ApiRequest<'a> {
    /// The method segment of `/api/<method>`.
    pub method: &'a str,
    /// Whether it came as GET (arguments only in the query string).
    pub is_get: bool,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The query string, if any.
    pub query: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// "Now", passed in so tests control time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Monotonic time for rate limits.
    pub instant: Instant,
    /// Wall time, Unix epoch microseconds, for timestamps.
    pub micros: i64,
}

impl Clock {
    /// The real current time.
    pub fn now() -> Self {
        Clock {
            instant: Instant::now(),
            micros: chrono::Utc::now().timestamp_micros(),
        }
    }
}

/// How an API call is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// HTTP 200 with this `{"ok":true,...}` body.
    Ok(Value),
    /// `{"ok":false,"error":code}` with this HTTP status.
    Failed {
        /// HTTP status (200 for most Slack errors).
        status: StatusCode,
        /// The error and its details.
        error: ApiError,
    },
    /// HTTP 429 with `Retry-After`.
    RateLimited {
        /// Whole seconds to wait.
        retry_after: u64,
    },
    /// HTTP 500 with a plain-text body, from fault injection; the call had no effect.
    Injected,
    /// The same HTTP 500 as [`Outcome::Injected`], but the `chat.postMessage` took effect first:
    /// the message is stored, the caller just never hears so.
    DroppedAfterEffect(PostedMessage),
}

impl Outcome {
    fn failed(status: StatusCode, code: &'static str) -> Self {
        Outcome::Failed {
            status,
            error: ApiError {
                code,
                messages: Vec::new(),
            },
        }
    }

    /// The HTTP status this outcome is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Outcome::Ok(_) => StatusCode::OK,
            Outcome::Failed { status, .. } => *status,
            Outcome::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Outcome::Injected | Outcome::DroppedAfterEffect(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Slack error code, if the call did not succeed.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Outcome::Ok(_) | Outcome::Injected | Outcome::DroppedAfterEffect(_) => None,
            Outcome::Failed { error, .. } => Some(error.code),
            Outcome::RateLimited { .. } => Some("ratelimited"),
        }
    }
}

impl Emulator {
    /// Handles one API call and logs it; returns how to answer and how long to delay that.
    pub fn call(&mut self, req: &ApiRequest<'_>, clock: Clock) -> (Outcome, Duration) {
        let params = read_params(req);
        let outcome = self.decide(req, params.as_ref(), clock);
        let body = params.as_ref().map_or(Value::Null, Params::to_json);
        let channel = params
            .as_ref()
            .ok()
            .and_then(|p| p.value("channel"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let dropped_after_effect = match &outcome {
            Outcome::DroppedAfterEffect(posted) => Some(posted.clone()),
            _ => None,
        };
        self.journal.record(RequestRecord {
            method: req.method.to_owned(),
            status: outcome.status().as_u16(),
            error: outcome.error_code().map(str::to_owned),
            channel,
            at_ms: clock.micros / 1000,
            body,
            dropped_after_effect,
        });
        (outcome, self.faults.latency())
    }

    fn decide(
        &mut self,
        req: &ApiRequest<'_>,
        params: Result<&Params, &ApiError>,
        clock: Clock,
    ) -> Outcome {
        let Some(method) = SlackMethod::from_name(req.method) else {
            return Outcome::failed(StatusCode::NOT_FOUND, "unknown_method");
        };
        if req.is_get && !method.is_read() {
            return Outcome::failed(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        }
        if let Err(code) = check_auth(req.authorization, &self.token, &self.token_states) {
            return Outcome::failed(StatusCode::OK, code);
        }
        let params = match params {
            Ok(p) => p,
            Err(error) => {
                return Outcome::Failed {
                    status: StatusCode::OK,
                    error: error.clone(),
                };
            }
        };
        if let Some(retry_after) = self.faults.take_forced_429() {
            return Outcome::RateLimited { retry_after };
        }
        let conversation = params
            .value("channel")
            .and_then(Value::as_str)
            .map(|c| self.workspace.conversation_key(c));
        if let Err(wait) = self
            .limits
            .check(method, conversation.as_deref(), clock.instant)
        {
            return Outcome::RateLimited {
                retry_after: retry_after_secs(wait),
            };
        }
        if self.faults.roll_failure() {
            return Outcome::Injected;
        }
        let mut ctx = Ctx {
            workspace: &mut self.workspace,
            stats: self.journal.stats_mut(),
            page_size: self.page_size,
            now_micros: clock.micros,
            interactive: &mut self.interactive,
        };
        match methods::run(method, params, &mut ctx) {
            Ok(body)
                if method == SlackMethod::PostMessage && self.faults.roll_drop_after_effect() =>
            {
                Outcome::DroppedAfterEffect(PostedMessage {
                    channel: body["channel"].as_str().unwrap_or_default().to_owned(),
                    ts: body["ts"].as_str().unwrap_or_default().to_owned(),
                })
            }
            Ok(body) => Outcome::Ok(body),
            Err(error) => Outcome::Failed {
                status: StatusCode::OK,
                error,
            },
        }
    }

    /// Forgets messages, requests, counters, rate-limit history, triggers, modals, ephemeral
    /// messages and `response_url`s; keeps channels, users, open DMs and fault settings.
    pub fn reset(&mut self) {
        self.interactive.clear();
        self.workspace.clear_messages();
        self.journal.clear();
        self.limits.clear();
    }
}

/// Reads the call's arguments (body first, then the query string) without the token.
fn read_params(req: &ApiRequest<'_>) -> Result<Params, ApiError> {
    let mut params = if req.is_get {
        Params::default()
    } else {
        Params::from_body(req.content_type, req.body)?
    };
    params.merge_missing(Params::from_query(req.query)?);
    params.remove("token");
    Ok(params)
}

/// Checks `Authorization: Bearer <token>`, answering Slack's codes.
fn check_auth(header: Option<&str>, token: &str, states: &TokenStates) -> Result<(), &'static str> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err("not_authed");
    }
    let (scheme, presented) = header.split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("invalid_auth");
    }
    match presented.trim() {
        "" => Err("not_authed"),
        value => states.check(value, token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcra::Rate;
    use crate::slack::faults::FaultsPatch;
    use crate::slack::workspace::{Channel, User};

    const TOKEN: &str = "xoxb-test";

    fn emulator() -> Emulator {
        Emulator {
            token: TOKEN.into(),
            token_states: TokenStates::default(),
            page_size: 100,
            workspace: Workspace::new(vec![Channel::new("C0DEALDESK", "deal-desk", false)], vec![]),
            journal: Journal::default(),
            faults: Faults::new(0.0, 0.0, Duration::ZERO, 1),
            limits: Limits::new(Rate::new(1.0, 2).unwrap(), Rate::new(1.0, 20).unwrap()),
            interactive: Interactive::default(),
        }
    }

    fn post<'a>(auth: Option<&'a str>, content_type: &'a str, body: &'a [u8]) -> ApiRequest<'a> {
        ApiRequest {
            method: "chat.postMessage",
            is_get: false,
            authorization: auth,
            content_type: Some(content_type),
            query: None,
            body,
        }
    }

    const BEARER: Option<&str> = Some("Bearer xoxb-test");
    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn checks_auth() {
        assert_eq!(
            check_auth(None, TOKEN, &TokenStates::default()),
            Err("not_authed")
        );
        assert_eq!(
            check_auth(Some(" "), TOKEN, &TokenStates::default()),
            Err("not_authed")
        );
        assert_eq!(
            check_auth(Some("Bearer "), TOKEN, &TokenStates::default()),
            Err("not_authed")
        );
        assert_eq!(
            check_auth(Some("Bearer nope"), TOKEN, &TokenStates::default()),
            Err("invalid_auth")
        );
        assert_eq!(
            check_auth(Some("Basic eGs6"), TOKEN, &TokenStates::default()),
            Err("invalid_auth")
        );
        assert_eq!(
            check_auth(Some("bearer xoxb-test"), TOKEN, &TokenStates::default()),
            Ok(())
        );
    }

    #[test]
    fn answers_in_slack_order_and_logs_everything() {
        let mut emu = emulator();
        let clock = Clock::now();
        let body = b"channel=C0DEALDESK&text=hi&token=secret";
        let unknown = ApiRequest {
            method: "chat.delete",
            ..post(BEARER, FORM, body)
        };
        assert_eq!(emu.call(&unknown, clock).0.status(), StatusCode::NOT_FOUND);
        let get = ApiRequest {
            is_get: true,
            ..post(BEARER, FORM, body)
        };
        assert_eq!(
            emu.call(&get, clock).0.status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            emu.call(&post(None, FORM, body), clock).0.error_code(),
            Some("not_authed")
        );
        let bad_form = post(BEARER, FORM, b"text=%zz");
        assert_eq!(
            emu.call(&bad_form, clock).0.error_code(),
            Some("invalid_form_data")
        );
        let bad_json = post(BEARER, "application/json", b"{");
        assert_eq!(
            emu.call(&bad_json, clock).0.error_code(),
            Some("invalid_arguments")
        );

        let (ok, _) = emu.call(&post(BEARER, FORM, body), clock);
        assert!(matches!(ok, Outcome::Ok(_)), "{ok:?}");
        let json = br#"{"channel":"C0DEALDESK","text":"again"}"#;
        assert!(matches!(
            emu.call(&post(BEARER, "application/json", json), clock).0,
            Outcome::Ok(_)
        ));
        assert_eq!(
            emu.call(&post(BEARER, FORM, body), clock).0,
            Outcome::RateLimited { retry_after: 1 }
        );

        let requests = emu.journal.requests();
        assert_eq!(requests.len(), 8);
        assert!(requests.iter().all(|r| r.body.get("token").is_none()));
        assert_eq!(requests[5].channel.as_deref(), Some("C0DEALDESK"));
        assert_eq!(requests[3].body, Value::Null);
        let stats = emu.journal.stats();
        assert_eq!((stats.calls, stats.posts, stats.rate_limited), (8, 2, 1));
        assert_eq!(emu.workspace.messages(None).count(), 2);

        emu.reset();
        assert_eq!(emu.journal.requests().len(), 0);
        assert_eq!(emu.workspace.messages(None).count(), 0);
        assert!(matches!(
            emu.call(&post(BEARER, FORM, body), clock).0,
            Outcome::Ok(_)
        ));
    }

    #[test]
    fn forced_429s_and_injected_failures_take_no_effect() {
        let mut emu = emulator();
        let clock = Clock::now();
        let patch: FaultsPatch = serde_json::from_str(
            r#"{"force_429_for":{"count":1,"retry_after":7},"fail_rate":1.0,"latency_ms":3}"#,
        )
        .unwrap();
        emu.faults.apply(&patch, &mut emu.limits).unwrap();
        let body = b"channel=C0DEALDESK&text=hi";
        let (outcome, latency) = emu.call(&post(BEARER, FORM, body), clock);
        assert_eq!(outcome, Outcome::RateLimited { retry_after: 7 });
        assert_eq!(latency, Duration::from_millis(3));
        assert_eq!(
            emu.call(&post(BEARER, FORM, body), clock).0,
            Outcome::Injected
        );
        assert_eq!(emu.workspace.messages(None).count(), 0);
        let stats = emu.journal.stats();
        assert_eq!(
            (stats.rate_limited, stats.failed_injected, stats.posts),
            (1, 1, 0)
        );
    }

    #[test]
    fn dropped_answers_still_store_the_post() {
        let mut emu = emulator();
        emu.workspace
            .upsert_user(User::new("U0DANA0001", "dana.seller@example.com"));
        let clock = Clock::now();
        let patch: FaultsPatch =
            serde_json::from_str(r#"{"drop_response_after_effect_rate":1.0,"burst":10}"#).unwrap();
        emu.faults.apply(&patch, &mut emu.limits).unwrap();

        let body = b"channel=C0DEALDESK&text=hi";
        let (outcome, _) = emu.call(&post(BEARER, FORM, body), clock);
        let Outcome::DroppedAfterEffect(posted) = outcome.clone() else {
            panic!("{outcome:?}")
        };
        assert_eq!(outcome.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(outcome.error_code(), None);
        let stored: Vec<_> = emu.workspace.messages(None).collect();
        assert_eq!(stored.len(), 1, "the effect happened");
        assert_eq!(
            (posted.channel.as_str(), posted.ts.as_str()),
            ("C0DEALDESK", stored[0].ts.as_str())
        );

        // Only successful chat.postMessage calls are affected.
        let no_text = post(BEARER, FORM, b"channel=C0DEALDESK");
        assert_eq!(emu.call(&no_text, clock).0.error_code(), Some("no_text"));
        let update_body = format!("channel=C0DEALDESK&ts={}&text=edited", posted.ts);
        let update = ApiRequest {
            method: "chat.update",
            ..post(BEARER, FORM, update_body.as_bytes())
        };
        assert!(matches!(emu.call(&update, clock).0, Outcome::Ok(_)));
        let (to_user, _) = emu.call(&post(BEARER, FORM, b"channel=U0DANA0001&text=hi"), clock);
        assert!(
            matches!(&to_user, Outcome::DroppedAfterEffect(p) if p.channel == "D0DANA0001"),
            "{to_user:?}"
        );
        assert_eq!(emu.workspace.dms().len(), 1, "the DM was opened too");

        // An injected failure comes first and leaves nothing to drop.
        let patch: FaultsPatch = serde_json::from_str(r#"{"fail_rate":1.0}"#).unwrap();
        emu.faults.apply(&patch, &mut emu.limits).unwrap();
        let again = post(BEARER, FORM, b"channel=U0DANA0001&text=again");
        assert_eq!(emu.call(&again, clock).0, Outcome::Injected);
        assert_eq!(emu.workspace.messages(None).count(), 2);

        let requests = emu.journal.requests();
        assert_eq!(requests[0].dropped_after_effect.as_ref(), Some(&posted));
        assert_eq!(requests[0].status, 500);
        let dropped: Vec<bool> = requests
            .iter()
            .map(|r| r.dropped_after_effect.is_some())
            .collect();
        assert_eq!(dropped, [true, false, false, true, false]);
        let stats = emu.journal.stats();
        assert_eq!(
            (
                stats.posts,
                stats.dropped_after_effect,
                stats.failed_injected
            ),
            (2, 2, 1)
        );
        assert_eq!(stats.updates, 1);
    }

    #[test]
    fn history_is_a_read_with_a_method_budget() {
        let mut emu = emulator();
        let clock = Clock::now();
        let meta = "%7B%22event_type%22%3A%22deal_won%22%2C%22event_payload%22%3A%7B%7D%7D";
        let body = format!("channel=C0DEALDESK&text=hi&metadata={meta}");
        assert!(matches!(
            emu.call(&post(BEARER, FORM, body.as_bytes()), clock).0,
            Outcome::Ok(_)
        ));
        let patch: FaultsPatch = serde_json::from_str(r#"{"method_burst":2}"#).unwrap();
        emu.faults.apply(&patch, &mut emu.limits).unwrap();
        let get = ApiRequest {
            method: "conversations.history",
            is_get: true,
            authorization: BEARER,
            content_type: None,
            query: Some("channel=C0DEALDESK&include_all_metadata=true"),
            body: b"",
        };
        let (outcome, _) = emu.call(&get, clock);
        let Outcome::Ok(history) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(history["messages"][0]["text"], "hi");
        assert_eq!(history["messages"][0]["metadata"]["event_type"], "deal_won");
        let by_post = ApiRequest {
            method: "conversations.history",
            ..post(BEARER, FORM, b"channel=C0NOPE")
        };
        assert_eq!(
            emu.call(&by_post, clock).0.error_code(),
            Some("channel_not_found")
        );
        assert_eq!(
            emu.call(&get, clock).0,
            Outcome::RateLimited { retry_after: 1 },
            "its own per-method budget"
        );
        let unauthed = ApiRequest {
            authorization: None,
            ..get
        };
        assert_eq!(
            emu.call(&unauthed, clock).0.error_code(),
            Some("not_authed")
        );
        let body = b"channel=C0DEALDESK&text=still+fine";
        assert!(matches!(
            emu.call(&post(BEARER, FORM, body), clock).0,
            Outcome::Ok(_)
        ));
        let stats = emu.journal.stats();
        assert_eq!(stats.by_method.get("conversations.history"), Some(&4));
        assert_eq!(
            emu.journal.requests()[1].channel.as_deref(),
            Some("C0DEALDESK")
        );
    }

    #[test]
    fn reads_get_queries_for_read_methods() {
        let mut emu = emulator();
        let req = ApiRequest {
            method: "conversations.list",
            is_get: true,
            authorization: BEARER,
            content_type: None,
            query: Some("limit=1&types=public_channel"),
            body: b"",
        };
        let (outcome, _) = emu.call(&req, Clock::now());
        let Outcome::Ok(body) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(body["channels"][0]["id"], "C0DEALDESK");
        assert_eq!(emu.journal.requests()[0].body["limit"], "1");
    }

    #[test]
    fn dm_posts_share_one_budget_per_conversation() {
        let mut emu = emulator();
        emu.workspace
            .upsert_user(User::new("U0DANA0001", "dana.seller@example.com"));
        emu.workspace
            .upsert_user(User::new("U0SAM00001", "sam.engineer@example.com"));
        let clock = Clock::now();
        let open = ApiRequest {
            method: "conversations.open",
            ..post(BEARER, FORM, b"users=U0DANA0001")
        };
        let get_open = ApiRequest {
            is_get: true,
            query: Some("users=U0DANA0001"),
            ..open
        };
        assert_eq!(
            emu.call(&get_open, clock).0.error_code(),
            Some("method_not_allowed")
        );
        let unauthed = ApiRequest {
            authorization: None,
            ..open
        };
        assert_eq!(
            emu.call(&unauthed, clock).0.error_code(),
            Some("not_authed")
        );
        assert!(emu.workspace.dms().is_empty());
        let (Outcome::Ok(opened), _) = emu.call(&open, clock) else {
            panic!("conversations.open failed")
        };
        assert_eq!(opened["channel"]["id"], "D0DANA0001");

        // Burst 2 per conversation: the user id and the DM id spend the same budget.
        let by_user = post(BEARER, FORM, b"channel=U0DANA0001&text=hi");
        let by_dm = post(BEARER, FORM, b"channel=D0DANA0001&text=hi");
        let (Outcome::Ok(first), _) = emu.call(&by_user, clock) else {
            panic!("post by user id failed")
        };
        assert_eq!(first["channel"], "D0DANA0001");
        assert!(matches!(emu.call(&by_dm, clock).0, Outcome::Ok(_)));
        assert_eq!(
            emu.call(&by_user, clock).0,
            Outcome::RateLimited { retry_after: 1 }
        );
        assert_eq!(
            emu.call(&by_dm, clock).0,
            Outcome::RateLimited { retry_after: 1 }
        );
        // Other conversations keep their own budgets, even a DM not opened yet.
        let sam = post(BEARER, FORM, b"channel=U0SAM00001&text=hi");
        assert!(matches!(emu.call(&sam, clock).0, Outcome::Ok(_)));
        assert!(matches!(emu.call(&sam, clock).0, Outcome::Ok(_)));
        assert_eq!(
            emu.call(&post(BEARER, FORM, b"channel=D0SAM00001&text=hi"), clock)
                .0,
            Outcome::RateLimited { retry_after: 1 }
        );
        let channel = post(BEARER, FORM, b"channel=C0DEALDESK&text=hi");
        assert!(matches!(emu.call(&channel, clock).0, Outcome::Ok(_)));

        let requests = emu.journal.requests();
        assert_eq!(
            requests[3].channel.as_deref(),
            Some("U0DANA0001"),
            "as sent"
        );
        assert_eq!(requests[4].channel.as_deref(), Some("D0DANA0001"));
        assert_eq!(emu.workspace.messages(Some("D0DANA0001")).count(), 2);
        assert_eq!(emu.workspace.messages(Some("D0SAM00001")).count(), 2);
        let stats = emu.journal.stats();
        assert_eq!(
            (stats.posts, stats.dm_posts, stats.posts_to_user_id),
            (5, 4, 3)
        );
        assert_eq!(stats.rate_limited, 3);
        assert_eq!(stats.by_method.get("conversations.open"), Some(&3));

        emu.reset();
        assert_eq!(emu.workspace.dms().len(), 2, "DMs stay open across a reset");
        assert!(matches!(emu.call(&by_dm, clock).0, Outcome::Ok(_)));
    }
}
