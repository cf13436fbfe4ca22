//! Helpers for tests that drive the emulators' control APIs from Rust: a person typing a slash
//! command or sharing a link, Slack's Events API callbacks and retries, the Home tab and
//! unfurls the app produced ([`SlackControl`]); a person connecting their Salesforce account
//! through the web-server flow, what they may see, their tokens and the searches made
//! ([`SalesforceControl`]). Each call is one control request; what the emulator refuses comes
//! back as [`ControlError::Refused`] with its answer.

mod salesforce;
mod slack;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use salesforce::{Authorized, SalesforceControl, TokenAction, pkce_challenge};
pub use slack::{CommandAnswer, EventAnswer, SlackControl};

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The emulator could not be reached, or its answer not read.
    #[error("{what}: {source}")]
    Http {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The emulator answered with an error status.
    #[error("{what}: the emulator answered {status}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: Value,
    },
    /// The answer was not what the control API promises.
    #[error("{what}: unexpected answer: {detail}")]
    Unexpected { what: String, detail: String },
}

/// The JSON of an answer, or the refusal it stands for.
async fn json_of<T: DeserializeOwned>(
    what: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ControlError> {
    let http = |source| ControlError::Http {
        what: what.to_owned(),
        source,
    };
    let response = sent.map_err(http)?;
    let status = response.status();
    let body: Value = response.json().await.map_err(http)?;
    if !status.is_success() {
        return Err(ControlError::Refused {
            what: what.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_value(body).map_err(|err| ControlError::Unexpected {
        what: what.to_owned(),
        detail: err.to_string(),
    })
}

/// `pairs` as `application/x-www-form-urlencoded`.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |value: &str| {
        let mut out = String::with_capacity(value.len());
        for byte in value.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(byte));
                }
                b' ' => out.push('+'),
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `base` + `path` with `pairs` as its query string.
fn with_query(base: &str, path: &str, pairs: &[(&str, &str)]) -> Result<Url, ControlError> {
    let mut url = Url::parse(&format!("{base}{path}")).map_err(|err| ControlError::Unexpected {
        what: path.to_owned(),
        detail: format!("{base}{path} is not a URL: {err}"),
    })?;
    url.query_pairs_mut().extend_pairs(pairs);
    Ok(url)
}
