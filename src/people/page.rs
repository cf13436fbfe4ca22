//! The pages a browser sees at the end of a sign-in: what each one says, with its status, and
//! the headers every page and redirect carries. The flow that picks them is in `oauth.rs`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::state::StateError;
use crate::salesforce::SalesforceError;

/// The title of every page that says why nothing was connected.
const NOT_CONNECTED: &str = "Not connected";

/// A page: its status, a title and a sentence (escaped when drawn).
#[derive(Debug)]
pub struct Page {
    status: StatusCode,
    title: &'static str,
    message: String,
}

fn page(status: StatusCode, title: &'static str, message: impl Into<String>) -> Page {
    Page {
        status,
        title,
        message: message.into(),
    }
}

fn refused(status: StatusCode, message: impl Into<String>) -> Page {
    page(status, NOT_CONNECTED, message)
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers every page and redirect carries: not cached, not framed, no referrer (the
/// callback's address holds the code), nothing loaded from anywhere.
pub(super) fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width\">\
             <title>{title} · sfrelay</title></head>\
             <body style=\"font-family: sans-serif; max-width: 36em; margin: 4em auto\">\
             <h1>{title}</h1><p>{message}</p></body></html>\n",
            title = escape(self.title),
            message = escape(&self.message),
        );
        guarded(
            (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
        )
    }
}

pub(super) fn connected(org_name: &str, username: &str) -> Page {
    page(
        StatusCode::OK,
        "Connected",
        format!("Connected to {org_name} as {username}. You can close this tab."),
    )
}

pub(super) fn bad_state(e: StateError) -> Page {
    match e {
        StateError::Forged => refused(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid: it was changed, or not made by sfrelay. Ask \
             sfrelay in Slack for a new one.",
        ),
        StateError::Expired => refused(
            StatusCode::GONE,
            "This sign-in link has expired (links work for a few minutes). Ask sfrelay in \
             Slack for a new one.",
        ),
    }
}

pub(super) fn store_unavailable() -> Page {
    refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "sfrelay cannot reach its store right now. Try the link again in a moment.",
    )
}

pub(super) fn switched_off() -> Page {
    refused(
        StatusCode::NOT_FOUND,
        "Connecting your own Salesforce account is not set up on this sfrelay (it needs \
         public_url and SFRELAY_ENCRYPTION_KEY). Ask your admin.",
    )
}

pub(super) fn reused() -> Page {
    refused(
        StatusCode::CONFLICT,
        "This sign-in link was already used. If you are not connected, ask sfrelay in Slack \
         for a new link.",
    )
}

pub(super) fn opened_elsewhere() -> Page {
    refused(
        StatusCode::CONFLICT,
        "This sign-in link was already opened in another browser. Ask sfrelay in Slack for a \
         new one.",
    )
}

pub(super) fn another_browser() -> Page {
    refused(
        StatusCode::FORBIDDEN,
        "This sign-in did not start in this browser. Open the link sfrelay sent you in Slack, \
         in this browser, and sign in from there.",
    )
}

pub(super) fn another_slack_user() -> Page {
    refused(
        StatusCode::FORBIDDEN,
        "This sign-in belongs to another Slack user than the one who started it in this \
         browser. Nothing was connected. Open the link sfrelay sent you in Slack.",
    )
}

pub(super) fn another_link() -> Page {
    refused(
        StatusCode::FORBIDDEN,
        "This browser started another sign-in since this one. Open the newest link sfrelay \
         sent you in Slack.",
    )
}

pub(super) fn org_not_served() -> Page {
    refused(
        StatusCode::NOT_FOUND,
        "This org is no longer one sfrelay serves.",
    )
}

pub(super) fn org_not_connectable() -> Page {
    refused(
        StatusCode::NOT_FOUND,
        "This org is no longer one sfrelay can connect you to.",
    )
}

/// The person declined at Salesforce; `why` is Salesforce's description or error code.
pub(super) fn declined(why: &str) -> Page {
    refused(
        StatusCode::FORBIDDEN,
        format!("Salesforce did not connect your account ({why}). Nothing was connected."),
    )
}

pub(super) fn no_code() -> Page {
    refused(StatusCode::BAD_REQUEST, "Salesforce sent no code back.")
}

pub(super) fn no_refresh_token() -> Page {
    page(
        StatusCode::BAD_GATEWAY,
        NOT_CONNECTED,
        "Salesforce gave sfrelay no refresh token, so the connection could not last. Ask your \
         admin to let the connected app use the refresh_token scope.",
    )
}

pub(super) fn no_identity() -> Page {
    page(
        StatusCode::BAD_GATEWAY,
        NOT_CONNECTED,
        "Salesforce did not say who signed in. Try the link again.",
    )
}

pub(super) fn another_org(org_name: &str) -> Page {
    refused(
        StatusCode::FORBIDDEN,
        format!(
            "You signed in to another Salesforce org than {org_name}. Nothing was connected; \
             open the link again and sign in to {org_name}."
        ),
    )
}

/// Salesforce refused or could not be reached; the code cannot be tried again.
pub(super) fn salesforce_trouble(e: &SalesforceError) -> Page {
    match e {
        SalesforceError::Auth { error, .. } => refused(
            StatusCode::BAD_REQUEST,
            format!(
                "Salesforce refused the sign-in ({error}). Ask sfrelay in Slack for a new link; \
                 if it happens again, ask your admin to check the connected app."
            ),
        ),
        _ => page(
            StatusCode::BAD_GATEWAY,
            NOT_CONNECTED,
            "Salesforce could not be reached to finish the sign-in. Ask sfrelay in Slack for a \
             new link and try again.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        assert_eq!(escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        let page = refused(StatusCode::BAD_REQUEST, "<script>");
        let response = page.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
    }
}
