//! [`SalesforceControl`]: people's own connections (the web-server flow), what they may see,
//! their tokens, searches and held replies, on the Salesforce emulator.

use std::collections::BTreeMap;

use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};

use super::{ControlError, form, json_of, with_query};

/// PKCE's S256 challenge for a verifier: what a client sends as `code_challenge`.
pub fn pkce_challenge(verifier: &str) -> String {
    crate::salesforce::webflow::s256(verifier)
}

/// How the authorize endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// 302 for a redirect, 200 for the login page, 400 for a refusal.
    pub status: u16,
    /// Where a redirect leads.
    pub location: Option<String>,
    /// The redirect's query parameters (`code`, `state`, `error`, …).
    pub query: BTreeMap<String, String>,
    /// The body (the login page, or a refusal's JSON).
    pub body: String,
}

impl Authorized {
    /// The authorization code, when the person approved.
    pub fn code(&self) -> Option<&str> {
        self.query.get("code").map(String::as_str)
    }

    /// The OAuth `error` the redirect carries, if any.
    pub fn error(&self) -> Option<&str> {
        self.query.get("error").map(String::as_str)
    }

    /// The `state` the redirect carries back.
    pub fn state(&self) -> Option<&str> {
        self.query.get("state").map(String::as_str)
    }
}

/// What [`SalesforceControl::end_tokens`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAction {
    /// The person's access tokens; their refresh token still works.
    Expire,
    /// All their tokens, refresh tokens too.
    Revoke,
}

/// A client of the Salesforce emulator's OAuth endpoints and control API. It never follows
/// redirects, so the authorize endpoint's answer can be read.
#[derive(Debug, Clone)]
pub struct SalesforceControl {
    base: String,
    http: reqwest::Client,
}

impl SalesforceControl {
    /// A client of the emulator at `base_url` (`http://127.0.0.1:PORT`).
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        SalesforceControl {
            base: base_url.into().trim_end_matches('/').to_owned(),
            http,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, ControlError> {
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        json_of(path, sent).await
    }

    async fn get(&self, path: &str) -> Result<Value, ControlError> {
        let sent = self.http.get(format!("{}{path}", self.base)).send().await;
        json_of(path, sent).await
    }

    /// `GET /services/oauth2/authorize` with these query parameters (a `login_as` among them
    /// picks who logs in), as the person's browser would.
    pub async fn authorize(&self, params: &[(&str, &str)]) -> Result<Authorized, ControlError> {
        let what = "/services/oauth2/authorize";
        let url = with_query(&self.base, what, params)?;
        let http = |source| ControlError::Http {
            what: what.to_owned(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(http)?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let query = location
            .as_deref()
            .and_then(|l| reqwest::Url::parse(l).ok())
            .map(|url| url.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let body = response.text().await.map_err(http)?;
        Ok(Authorized {
            status,
            location,
            query,
            body,
        })
    }

    /// The whole web-server flow for `login_as`: authorize with a PKCE challenge for
    /// `verifier`, then exchange the code; answers the token endpoint's JSON.
    pub async fn connect(
        &self,
        client_id: &str,
        redirect_uri: &str,
        login_as: &str,
        verifier: &str,
    ) -> Result<Value, ControlError> {
        let challenge = pkce_challenge(verifier);
        let authorized = self
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("state", "emulated-state"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", "api refresh_token"),
                ("login_as", login_as),
            ])
            .await?;
        let Some(code) = authorized.code() else {
            return Err(ControlError::Refused {
                what: "/services/oauth2/authorize".into(),
                status: authorized.status,
                body: json!({"location": authorized.location, "body": authorized.body}),
            });
        };
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ]);
        let sent = self
            .http
            .post(format!("{}/services/oauth2/token", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        json_of("/services/oauth2/token", sent).await
    }

    /// Who logs in when an authorize request names nobody (`None`: nobody), and whether
    /// they approve.
    pub async fn set_login(
        &self,
        login_as: Option<&str>,
        approve: bool,
    ) -> Result<(), ControlError> {
        let decision = if approve { "approve" } else { "deny" };
        self.post(
            "/_emulator/oauth/login",
            &json!({"login_as": login_as, "decision": decision}),
        )
        .await
        .map(|_| ())
    }

    /// The connected app's web-server settings: `{"callback_urls"?, "client_secret"?,
    /// "code_ttl_secs"?}`.
    pub async fn set_web_app(&self, settings: Value) -> Result<Value, ControlError> {
        self.post("/_emulator/oauth/app", &settings).await
    }

    /// The web-server flow's state: settings, who holds tokens, every authorize request.
    pub async fn oauth_state(&self) -> Result<Value, ControlError> {
        self.get("/_emulator/oauth").await
    }

    /// Ends a person's access tokens, or all their tokens.
    pub async fn end_tokens(&self, user: &str, action: TokenAction) -> Result<Value, ControlError> {
        let action = match action {
            TokenAction::Expire => "expire",
            TokenAction::Revoke => "revoke",
        };
        self.post(
            "/_emulator/oauth/tokens",
            &json!({"user": user, "action": action}),
        )
        .await
    }

    /// What `user` (username or Id) may not see; empty lists make everything visible again.
    pub async fn set_visibility(
        &self,
        user: &str,
        hidden_ids: &[&str],
        hidden_objects: &[&str],
    ) -> Result<(), ControlError> {
        self.post(
            "/_emulator/visibility",
            &json!({"user": user, "hidden_ids": hidden_ids, "hidden_objects": hidden_objects}),
        )
        .await
        .map(|_| ())
    }

    /// Every search made, with who made it, its status and what it found.
    pub async fn searches(&self) -> Result<Vec<Value>, ControlError> {
        let all = self.get("/_emulator/searches").await?;
        Ok(all.as_array().cloned().unwrap_or_default())
    }

    /// Holds the replies to matching requests until [`Self::release`], or delays each by
    /// `delay_ms`.
    pub async fn hold(
        &self,
        method: Option<&str>,
        path_contains: &str,
        delay_ms: Option<u64>,
    ) -> Result<(), ControlError> {
        self.post(
            "/_emulator/hold",
            &json!({"method": method, "path_contains": path_contains, "delay_ms": delay_ms}),
        )
        .await
        .map(|_| ())
    }

    /// Drops every hold and sends every held reply.
    pub async fn release(&self) -> Result<(), ControlError> {
        self.post("/_emulator/release", &json!({}))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
#[path = "salesforce_tests.rs"]
mod tests;
