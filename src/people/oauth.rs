//! The web-server flow's two pages: `GET /oauth/salesforce/start?state=…` sends the person to
//! their org's authorize endpoint (PKCE S256, scope `api refresh_token`) and remembers their
//! browser; `GET /oauth/salesforce/callback?code&state` checks the state (signature, expiry,
//! the browser that started it, single use), exchanges the code with the verifier kept in the
//! store, checks the org, and stores the connection sealed. Each answers a small HTML page
//! (`page.rs`); a refusal says why with the matching 4xx. Neither logs the state, the code or
//! a token.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::page::{self, Page, guarded};
use super::state::{self, StateError};
use super::tokens::{self, Stored};
use super::{Loaded, People, PeopleError, Person};
use crate::event::SalesforceId;
use crate::keys::Key;
use crate::salesforce::SalesforceError;

/// The cookie that ties a sign-in to the browser that started it.
const COOKIE: &str = "sfrelay_connect";
/// What the connection asks of Salesforce: the REST API, and a refresh token to keep it.
const SCOPE: &str = "api refresh_token";

/// What a sign-in link was made for, sealed in the store under its nonce.
#[derive(Serialize, Deserialize)]
struct Pending {
    team: String,
    user: String,
    org: String,
    verifier: String,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// What the sealed sign-in record is bound to.
fn pending_context(nonce: &str) -> String {
    format!("oauth-state:{nonce}")
}

/// Makes a sign-in link for `who` and `org` (checked by the caller).
pub(super) async fn link(
    people: &People,
    who: &Person,
    org: &SalesforceId,
) -> Result<String, PeopleError> {
    let public_url = people.public_url.as_ref().ok_or(PeopleError::NoPublicUrl)?;
    let (Some(cipher), Some(key)) = (&people.cipher, &people.state_key) else {
        return Err(PeopleError::NoEncryptionKey);
    };
    let nonce = state::nonce();
    let pending = Pending {
        team: who.team.clone(),
        user: who.user.clone(),
        org: org.to_string(),
        verifier: super::pkce::verifier(),
    };
    let json = serde_json::to_vec(&pending).unwrap_or_default();
    let record = Key::oauth_state(&nonce, people.state_ttl);
    people
        .store
        .set(
            record.as_str(),
            &cipher.seal(&json, &pending_context(&nonce)),
            record.ttl(),
        )
        .await?;
    let signed = key.sign(&state::State {
        nonce,
        team: who.team.clone(),
        user: who.user.clone(),
        org: org.clone(),
        expires: now() + people.state_ttl.as_secs() as i64,
    });
    Ok(format!(
        "{public_url}/oauth/salesforce/start?state={signed}"
    ))
}

fn state_refused(e: StateError, why: &'static str) -> Page {
    tracing::info!(reason = why, "a Salesforce sign-in was refused");
    page::bad_state(e)
}

fn store_trouble(e: impl std::fmt::Display) -> Page {
    tracing::warn!(error = %e, "a Salesforce sign-in could not reach the state store");
    page::store_unavailable()
}

fn reused() -> Page {
    tracing::info!(reason = "reused", "a Salesforce sign-in was refused");
    page::reused()
}

fn salesforce_trouble(e: &SalesforceError, during: &'static str) -> Page {
    tracing::warn!(error = %e, during, "a Salesforce sign-in failed");
    page::salesforce_trouble(e)
}

/// The sign-in this browser started: `<nonce>.<browser id>.<team>.<user>`.
#[derive(Debug, PartialEq, Eq)]
struct Started {
    nonce: String,
    browser: String,
    team: String,
    user: String,
}

fn started_in(headers: &HeaderMap) -> Option<Started> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let parts: Vec<&str> = value.split('.').collect();
    let [nonce, browser, team, user] = parts[..] else {
        return None;
    };
    [nonce, browser, team, user]
        .iter()
        .all(|p| state::is_plain(p, 64))
        .then(|| Started {
            nonce: nonce.into(),
            browser: browser.into(),
            team: team.into(),
            user: user.into(),
        })
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    state: Option<String>,
}

/// `GET /oauth/salesforce/start?state=…`.
pub async fn get_start(
    State(people): State<Arc<People>>,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    match people.start(query.state.as_deref(), &headers).await {
        Ok((location, cookie)) => {
            let mut response = StatusCode::FOUND.into_response();
            if let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&location),
                HeaderValue::from_str(&cookie),
            ) {
                response.headers_mut().insert(header::LOCATION, location);
                response.headers_mut().insert(header::SET_COOKIE, cookie);
                guarded(response)
            } else {
                store_trouble("the sign-in address is not a valid header").into_response()
            }
        }
        Err(page) => page.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub(super) code: Option<String>,
    pub(super) state: Option<String>,
    pub(super) error: Option<String>,
    pub(super) error_description: Option<String>,
}

/// `GET /oauth/salesforce/callback?code&state` (or `?error=…` when the person declined).
pub async fn get_callback(
    State(people): State<Arc<People>>,
    Query(query): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    match people.callback(&query, &headers).await {
        Ok(page) | Err(page) => page.into_response(),
    }
}

impl People {
    /// The path under `public_url` the sign-in cookie is sent to.
    fn cookie_path(&self) -> String {
        let base = self
            .public_url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        format!("{base}/oauth/salesforce")
    }

    fn redirect_uri(&self) -> String {
        format!(
            "{}/oauth/salesforce/callback",
            self.public_url.as_deref().unwrap_or_default()
        )
    }

    /// Reads the sign-in record of a verified state, if it is still there.
    async fn pending(&self, nonce: &str) -> Result<Option<Pending>, Page> {
        let cipher = self.cipher.as_ref().ok_or_else(page::switched_off)?;
        let key = Key::oauth_state(nonce, self.state_ttl);
        let Some(sealed) = self.store.get(key.as_str()).await.map_err(store_trouble)? else {
            return Ok(None);
        };
        let pending = cipher
            .open(&sealed, &pending_context(nonce))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Pending>(&bytes).ok());
        Ok(pending)
    }

    /// The redirect to Salesforce and the cookie, or the page that says why not.
    pub(super) async fn start(
        &self,
        text: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(String, String), Page> {
        let key = match (&self.state_key, &self.public_url) {
            (Some(key), Some(_)) => key,
            _ => return Err(page::switched_off()),
        };
        let text = text.ok_or_else(|| state_refused(StateError::Forged, "no state"))?;
        let state = key
            .verify(text, now())
            .map_err(|e| state_refused(e, "start"))?;
        let used = Key::oauth_used(&state.nonce, self.state_ttl);
        if self
            .store
            .get(used.as_str())
            .await
            .map_err(store_trouble)?
            .is_some()
        {
            return Err(reused());
        }
        let Some(pending) = self.pending(&state.nonce).await? else {
            return Err(state_refused(StateError::Expired, "start without record"));
        };
        if (
            pending.team.as_str(),
            pending.user.as_str(),
            pending.org.as_str(),
        ) != (state.team.as_str(), state.user.as_str(), state.org.as_str())
        {
            return Err(state_refused(StateError::Forged, "record differs"));
        }
        let app = self
            .org(&state.org)
            .and_then(|o| o.app.as_ref())
            .ok_or_else(page::org_not_connectable)?;
        // The first browser to open the link owns it; it may open it again.
        let own = started_in(headers)
            .filter(|s| s.nonce == state.nonce)
            .map(|s| s.browser);
        let browser = own.clone().unwrap_or_else(state::nonce);
        let started = Key::oauth_started(&state.nonce, self.state_ttl);
        let holder = self
            .store
            .claim(started.as_str(), &browser, started.ttl())
            .await
            .map_err(store_trouble)?;
        if holder.is_some_and(|h| h != browser) {
            tracing::info!(
                reason = "opened elsewhere",
                "a Salesforce sign-in was refused"
            );
            return Err(page::opened_elsewhere());
        }
        let mut authorize =
            reqwest::Url::parse(&format!("{}/services/oauth2/authorize", app.login_url))
                .map_err(store_trouble)?;
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", &self.redirect_uri())
            .append_pair("state", text)
            .append_pair("code_challenge", &super::pkce::challenge(&pending.verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", SCOPE);
        let secure = self
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let cookie = format!(
            "{COOKIE}={}.{browser}.{}.{}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
            state.nonce,
            state.team,
            state.user,
            self.cookie_path(),
            (state.expires - now()).max(1),
            if secure { "; Secure" } else { "" }
        );
        Ok((authorize.to_string(), cookie))
    }

    /// Finishes a sign-in: the page that says it is connected, or why not.
    pub(super) async fn callback(
        &self,
        query: &CallbackQuery,
        headers: &HeaderMap,
    ) -> Result<Page, Page> {
        let Some(key) = self
            .state_key
            .as_ref()
            .filter(|_| self.public_url.is_some())
        else {
            return Err(page::switched_off());
        };
        if let Some(error) = &query.error {
            tracing::info!(reason = "declined", "a Salesforce sign-in did not complete");
            let why = query.error_description.as_deref().unwrap_or(error);
            return Err(page::declined(why));
        }
        let text = query
            .state
            .as_deref()
            .ok_or_else(|| state_refused(StateError::Forged, "no state"))?;
        let state = key
            .verify(text, now())
            .map_err(|e| state_refused(e, "callback"))?;
        let code = query
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(page::no_code)?;
        self.same_browser(&state, headers).await?;
        let used = Key::oauth_used(&state.nonce, self.state_ttl);
        if self
            .store
            .claim(used.as_str(), "used", used.ttl())
            .await
            .map_err(store_trouble)?
            .is_some()
        {
            return Err(reused());
        }
        let record = Key::oauth_state(&state.nonce, self.state_ttl);
        let pending = self.pending(&state.nonce).await?;
        self.store
            .delete(record.as_str())
            .await
            .map_err(store_trouble)?;
        let Some(pending) = pending else {
            return Err(state_refused(
                StateError::Expired,
                "callback without record",
            ));
        };
        if (
            pending.team.as_str(),
            pending.user.as_str(),
            pending.org.as_str(),
        ) != (state.team.as_str(), state.user.as_str(), state.org.as_str())
        {
            return Err(state_refused(StateError::Forged, "record differs"));
        }
        let who = Person::new(&state.team, &state.user);
        self.connect(&who, &state.org, code, &pending.verifier)
            .await
    }

    /// Refuses a callback that does not come from the browser that opened this state's start
    /// link.
    async fn same_browser(&self, state: &state::State, headers: &HeaderMap) -> Result<(), Page> {
        let elsewhere = || {
            tracing::info!(
                reason = "another browser",
                "a Salesforce sign-in was refused"
            );
            page::another_browser()
        };
        let Some(cookie) = started_in(headers) else {
            return Err(elsewhere());
        };
        if (cookie.team.as_str(), cookie.user.as_str())
            != (state.team.as_str(), state.user.as_str())
        {
            tracing::info!(
                reason = "another Slack user",
                "a Salesforce sign-in was refused"
            );
            return Err(page::another_slack_user());
        }
        if cookie.nonce != state.nonce {
            tracing::info!(reason = "another link", "a Salesforce sign-in was refused");
            return Err(page::another_link());
        }
        let started = Key::oauth_started(&state.nonce, self.state_ttl);
        match self
            .store
            .get(started.as_str())
            .await
            .map_err(store_trouble)?
        {
            Some(browser) if browser == cookie.browser => Ok(()),
            _ => Err(elsewhere()),
        }
    }

    /// Exchanges the code, checks who signed in where, and keeps the connection.
    async fn connect(
        &self,
        who: &Person,
        org: &SalesforceId,
        code: &str,
        verifier: &str,
    ) -> Result<Page, Page> {
        let known = self.org(org).ok_or_else(page::org_not_served)?;
        let name = known.name.clone();
        let app = known.app.clone().ok_or_else(page::org_not_connectable)?;
        let token = tokens::exchange(&self.http, &app, code, &self.redirect_uri(), verifier)
            .await
            .map_err(|e| salesforce_trouble(&e, "exchanging the code"))?;
        // A refused sign-in gives back what it bought: the refresh token when there is one
        // (revoking it revokes its access tokens too), else the access token.
        let bought = token
            .refresh_token
            .as_ref()
            .unwrap_or(&token.token)
            .expose()
            .clone();
        let give_back = |refusal: Page| {
            let (app, bought) = (&app, &bought);
            async move {
                if let Err(e) = tokens::revoke_token(&self.http, app, bought).await {
                    tracing::warn!(%org, error = %e, "cannot revoke a token of a refused sign-in");
                }
                refusal
            }
        };
        let Some(refresh_token) = token.refresh_token.as_ref().map(|t| t.expose().clone()) else {
            return Err(give_back(page::no_refresh_token()).await);
        };
        let Some((signed_in_org, user_id)) = token.id.as_deref().and_then(tokens::identity) else {
            return Err(give_back(page::no_identity()).await);
        };
        if signed_in_org != *org {
            tracing::info!(reason = "another org", %org, "a Salesforce sign-in was refused");
            return Err(give_back(page::another_org(&name)).await);
        }
        let (username, full_name) =
            tokens::whoami(&self.http, &self.api_version, org, &token, &user_id)
                .await
                .map_err(|e| salesforce_trouble(&e, "reading the signed-in user"))?;
        if let Ok(Loaded::Live(previous)) = self.load(who, org).await
            && previous.refresh_token.as_deref() != Some(refresh_token.as_str())
            && let Err(e) = tokens::revoke(&self.http, &app, &previous).await
        {
            tracing::warn!(%org, error = %e, "cannot revoke the connection this one replaces");
        }
        let stored = Stored {
            username: username.clone(),
            user_id: user_id.to_string(),
            name: full_name,
            instance_url: token.instance_url.clone(),
            access_token: Some(token.token.expose().clone()),
            refresh_token: Some(refresh_token),
            expired: false,
            connected_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.save(who, org, &stored).await.map_err(store_trouble)?;
        metrics::counter!("sfrelay_people_connections_total").increment(1);
        tracing::info!(%org, user = %who.user, "a person connected their Salesforce account");
        Ok(page::connected(&name, &username))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_in_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; sfrelay_connect=n1.b2.T1.U1; c=d"),
        );
        assert_eq!(
            started_in(&headers),
            Some(Started {
                nonce: "n1".into(),
                browser: "b2".into(),
                team: "T1".into(),
                user: "U1".into(),
            })
        );
        for bad in [
            "sfrelay_connect=n1.b2.T1",
            "sfrelay_connect=n1.b2.T1.U:1",
            "x=1",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_static(bad));
            assert_eq!(started_in(&headers), None, "{bad}");
        }
    }
}
