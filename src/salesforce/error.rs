//! Why a Salesforce call failed: [`SalesforceError`] and its classification for the retry
//! logic (error codes, HTTP statuses, the wait an API limit implies), plus the reading of
//! transport failures and REST API error bodies into it.

use std::time::Duration;

use serde::Deserialize;

use crate::event::SalesforceId;
use crate::retry::Retry;

/// How long to wait after `REQUEST_LIMIT_EXCEEDED`: the daily API allowance is a rolling
/// 24-hour window, so hammering it does not help.
pub const REQUEST_LIMIT_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// Why a Salesforce call failed, in the terms delivery decides on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SalesforceError {
    /// The client holds no credentials for this org.
    #[error("no Salesforce API credentials are configured for org {0}")]
    UnknownOrg(SalesforceId),
    /// The token endpoint refused (`invalid_grant`, `invalid_client_id`, …).
    #[error(
        "Salesforce refused the {flow} token request for org {org}: {error}: {description} (HTTP {status})"
    )]
    Auth {
        org: SalesforceId,
        flow: &'static str,
        status: u16,
        error: String,
        description: String,
    },
    /// The REST API answered an error (`[{"errorCode": …, "message": …, "fields": […]}]`).
    #[error("Salesforce org {org} answered {code} (HTTP {status}): {message}")]
    Api {
        org: SalesforceId,
        status: u16,
        code: String,
        message: String,
        /// The fields the error names (writes: the missing or refused fields), often empty.
        fields: Vec<String>,
    },
    /// An HTTP failure without a readable Salesforce error.
    #[error("Salesforce org {org} answered HTTP {status}")]
    Http { org: SalesforceId, status: u16 },
    #[error("cannot reach Salesforce for org {org}: {message}")]
    Transport { org: SalesforceId, message: String },
    #[error("unexpected answer from Salesforce for org {org}: {message}")]
    Decode { org: SalesforceId, message: String },
    /// A query matched more records than the client is configured to collect.
    #[error("the query for org {org} matches {total} records, more than the limit of {limit}")]
    TooManyRecords {
        org: SalesforceId,
        total: u64,
        limit: usize,
    },
    /// A caller passed a malformed object name, field name or record Id.
    #[error("invalid Salesforce request: {0}")]
    InvalidArgument(String),
    /// Credentials that cannot be used (a key that does not sign, a bad API version…).
    #[error("Salesforce client configuration for org {org}: {message}")]
    Config { org: String, message: String },
    /// A person's own connection has expired or was revoked (its refresh was refused): they
    /// must connect again. Nothing was sent.
    #[error("the person's connection to Salesforce org {org} has expired; they must connect again")]
    ConnectionExpired { org: SalesforceId },
}

/// Salesforce `errorCode`s worth repeating; other codes with a 4xx status are permanent.
pub fn classify_code(code: &str) -> Retry {
    match code {
        "UNABLE_TO_LOCK_ROW" | "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" => Retry::Later,
        _ => Retry::Never,
    }
}

fn transient_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

impl SalesforceError {
    /// Classifies every failure: network trouble, 5xx, lock contention, API limits and
    /// Salesforce's "retry your request" are retried; everything else (bad query, missing
    /// field or record, no access, a refused grant, a session still invalid after one refresh)
    /// is permanent.
    pub fn retry(&self) -> Retry {
        match self {
            SalesforceError::Transport { .. } | SalesforceError::Decode { .. } => Retry::Later,
            SalesforceError::Http { status, .. } => {
                if transient_status(*status) {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::Api { status, code, .. } => {
                if classify_code(code) == Retry::Later || *status >= 500 {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::Auth { status, error, .. } => {
                if *status >= 500 || error == "unknown_error" {
                    Retry::Later
                } else {
                    Retry::Never
                }
            }
            SalesforceError::UnknownOrg(_)
            | SalesforceError::TooManyRecords { .. }
            | SalesforceError::InvalidArgument(_)
            | SalesforceError::Config { .. }
            | SalesforceError::ConnectionExpired { .. } => Retry::Never,
        }
    }

    /// The least wait before a retry is worth it, when Salesforce's answer implies one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SalesforceError::Api { code, .. } if code == "REQUEST_LIMIT_EXCEEDED" => {
                Some(REQUEST_LIMIT_BACKOFF)
            }
            _ => None,
        }
    }

    /// A short label for metrics (`result` label).
    pub fn label(&self) -> &str {
        match self {
            SalesforceError::UnknownOrg(_) => "unknown_org",
            SalesforceError::Auth { error, .. } => error,
            SalesforceError::Api { code, .. } => code,
            SalesforceError::Http { .. } => "http_error",
            SalesforceError::Transport { .. } => "transport_error",
            SalesforceError::Decode { .. } => "decode_error",
            SalesforceError::TooManyRecords { .. } => "too_many_records",
            SalesforceError::InvalidArgument(_) => "invalid_argument",
            SalesforceError::Config { .. } => "config_error",
            SalesforceError::ConnectionExpired { .. } => "connection_expired",
        }
    }

    /// Whether Salesforce said the session is expired or invalid.
    pub(crate) fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            SalesforceError::Api { status: 401, .. } | SalesforceError::Http { status: 401, .. }
        )
    }
}

/// reqwest errors print the URL, which may hold a query; the kind and cause are enough.
pub(crate) fn transport_error(org: &SalesforceId, e: reqwest::Error) -> SalesforceError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    };
    SalesforceError::Transport {
        org: org.clone(),
        message: format!("{kind} error: {}", e.without_url()),
    }
}

/// Keeps error messages from Salesforce to a log-friendly length.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 500;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Reads Salesforce's error answer: `[{"message": …, "errorCode": …}]` (or one such object).
pub(crate) fn api_error(org: &SalesforceId, status: u16, bytes: &[u8]) -> SalesforceError {
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        message: String,
        #[serde(rename = "errorCode", default)]
        error_code: String,
        #[serde(default)]
        fields: Vec<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Body {
        Many(Vec<Item>),
        One(Item),
    }
    let first = match serde_json::from_slice::<Body>(bytes) {
        Ok(Body::Many(items)) => items.into_iter().next(),
        Ok(Body::One(item)) => Some(item),
        Err(_) => None,
    };
    match first {
        Some(item) if !item.error_code.is_empty() => SalesforceError::Api {
            org: org.clone(),
            status,
            code: item.error_code,
            message: clip(&item.message),
            fields: item.fields,
        },
        _ => SalesforceError::Http {
            org: org.clone(),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    fn api(status: u16, code: &str) -> SalesforceError {
        SalesforceError::Api {
            org: org(),
            status,
            code: code.into(),
            message: "m".into(),
            fields: Vec::new(),
        }
    }

    #[test]
    fn every_class_of_failure_is_classified() {
        for (status, code) in [
            (400, "UNABLE_TO_LOCK_ROW"),
            (403, "REQUEST_LIMIT_EXCEEDED"),
            (503, "SERVER_UNAVAILABLE"),
            (500, "UNKNOWN_EXCEPTION"),
        ] {
            assert_eq!(api(status, code).retry(), Retry::Later, "{code}");
        }
        for (status, code) in [
            (400, "MALFORMED_QUERY"),
            (400, "INVALID_FIELD"),
            (400, "INVALID_TYPE"),
            (401, "INVALID_SESSION_ID"),
            (404, "NOT_FOUND"),
            (403, "INSUFFICIENT_ACCESS"),
            (400, "INVALID_QUERY_LOCATOR"),
            (400, "SOMETHING_NEW"),
        ] {
            assert_eq!(api(status, code).retry(), Retry::Never, "{code}");
        }
        assert_eq!(
            api(403, "REQUEST_LIMIT_EXCEEDED").retry_after(),
            Some(REQUEST_LIMIT_BACKOFF)
        );
        assert_eq!(api(400, "UNABLE_TO_LOCK_ROW").retry_after(), None);
        let http = |status| SalesforceError::Http { org: org(), status };
        assert_eq!(http(502).retry(), Retry::Later);
        assert_eq!(http(429).retry(), Retry::Later);
        assert_eq!(http(404).retry(), Retry::Never);
        assert_eq!(http(302).retry(), Retry::Never);
        let transport = SalesforceError::Transport {
            org: org(),
            message: "x".into(),
        };
        assert_eq!(transport.retry(), Retry::Later);
        let grant = SalesforceError::Auth {
            org: org(),
            flow: "JWT bearer",
            status: 400,
            error: "invalid_grant".into(),
            description: "expired access/refresh token".into(),
        };
        assert_eq!(grant.retry(), Retry::Never);
        assert_eq!(grant.label(), "invalid_grant");
        assert_eq!(
            SalesforceError::TooManyRecords {
                org: org(),
                total: 9,
                limit: 1
            }
            .retry(),
            Retry::Never
        );
    }

    #[test]
    fn error_bodies_are_read() {
        let e = api_error(
            &org(),
            400,
            br#"[{"message":"unexpected token: OR","errorCode":"MALFORMED_QUERY"}]"#,
        );
        assert_eq!(
            e,
            api(400, "MALFORMED_QUERY").with_message("unexpected token: OR")
        );
        let e = api_error(
            &org(),
            404,
            br#"{"errorCode":"NOT_FOUND","message":"gone"}"#,
        );
        assert!(matches!(e, SalesforceError::Api { ref code, .. } if code == "NOT_FOUND"));
        assert_eq!(
            api_error(&org(), 502, b"<html>bad gateway</html>"),
            SalesforceError::Http {
                org: org(),
                status: 502
            }
        );
        assert!(api_error(&org(), 401, b"[]").is_unauthorized());
        assert!(
            api_error(
                &org(),
                401,
                br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#
            )
            .is_unauthorized()
        );
        let long = "é".repeat(400);
        assert!(clip(&long).len() <= 504);
    }

    impl SalesforceError {
        fn with_message(self, m: &str) -> Self {
            match self {
                SalesforceError::Api {
                    org,
                    status,
                    code,
                    fields,
                    ..
                } => SalesforceError::Api {
                    org,
                    status,
                    code,
                    message: m.into(),
                    fields,
                },
                other => other,
            }
        }
    }
}
