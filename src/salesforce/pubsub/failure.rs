//! Why a stream ended, and what the subscriber does about it. Salesforce says why in the
//! `error-code` trailer; the gRPC status alone is too coarse (a corrupted replay id and a
//! malformed request are both INVALID_ARGUMENT).

use std::time::Duration;

use sfrelay_pubsub_wire::{error_codes, headers};
use tonic::Code;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The access token was refused: get a new one and resume.
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The stored replay id is past retention or invalid: start from the earliest event
    /// and sweep the window since the cursor.
    #[error("replay id no longer valid: {0}")]
    ReplayIdCorrupted(String),
    /// Unknown topic, no permission, a limit, a license: nothing a reconnect fixes soon.
    #[error("configuration or allocation error ({code}): {message}")]
    Config { code: String, message: String },
    /// Nothing arrived within the watchdog's time.
    #[error("no message or keepalive for {0:?}")]
    Stalled(Duration),
    /// The server ended the stream, or the network failed: back off and resume.
    #[error("transient: {0}")]
    Transient(String),
    /// The queue or the store could not take what arrived; resume once they answer.
    #[error("cannot keep what arrived: {0}")]
    Local(String),
    /// The lease went to another replica (or could not be renewed).
    #[error("lease lost")]
    LeaseLost,
    /// sfrelay is shutting down.
    #[error("stopped")]
    Stopped,
}

impl Failure {
    /// The `reason` label of `sfrelay_pubsub_resubscribes_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Auth(_) => "auth",
            Failure::ReplayIdCorrupted(_) => "replay_id_corrupted",
            Failure::Config { .. } => "config",
            Failure::Stalled(_) => "stalled",
            Failure::Transient(_) => "transient",
            Failure::Local(_) => "local",
            Failure::LeaseLost => "lease_lost",
            Failure::Stopped => "stopped",
        }
    }
}

/// Salesforce's code from a status's metadata, when it sent one.
fn error_code(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(headers::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The codes that say the subscription cannot work as configured.
const CONFIG_CODES: [&str; 5] = [
    error_codes::TOPIC_NOT_FOUND,
    error_codes::CANNOT_SUBSCRIBE,
    error_codes::SUBSCRIPTION_LIMIT,
    error_codes::CONCURRENT_CLIENT_LIMIT,
    error_codes::TENANT_LICENSE,
];

/// What a failed call means.
pub fn classify(status: &tonic::Status) -> Failure {
    let code = error_code(status);
    let message = status.message().to_owned();
    let detail = match &code {
        Some(code) => format!("{code}: {message}"),
        None => format!("{:?}: {message}", status.code()),
    };
    match code.as_deref() {
        Some(error_codes::REPLAY_ID_CORRUPTED) => return Failure::ReplayIdCorrupted(detail),
        Some(error_codes::AUTH_ERROR) => return Failure::Auth(detail),
        Some(c) if CONFIG_CODES.contains(&c) || c.ends_with(".validation.failed") => {
            return Failure::Config {
                code: c.to_owned(),
                message,
            };
        }
        _ => {}
    }
    match status.code() {
        Code::Unauthenticated => Failure::Auth(detail),
        Code::NotFound | Code::PermissionDenied | Code::InvalidArgument => Failure::Config {
            code: code.unwrap_or_else(|| format!("{:?}", status.code())),
            message,
        },
        _ => Failure::Transient(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, error_code: Option<&str>) -> tonic::Status {
        let mut meta = tonic::metadata::MetadataMap::new();
        if let Some(c) = error_code {
            meta.insert(headers::ERROR_CODE, c.parse().unwrap());
        }
        tonic::Status::with_metadata(code, "m", meta)
    }

    #[test]
    fn salesforces_code_decides_before_the_grpc_status() {
        assert!(matches!(
            classify(&status(
                Code::InvalidArgument,
                Some(error_codes::REPLAY_ID_CORRUPTED)
            )),
            Failure::ReplayIdCorrupted(_)
        ));
        assert!(matches!(
            classify(&status(
                Code::Unauthenticated,
                Some(error_codes::AUTH_ERROR)
            )),
            Failure::Auth(_)
        ));
        assert!(matches!(
            classify(&status(Code::Internal, Some(error_codes::UNAVAILABLE))),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&status(Code::NotFound, Some(error_codes::TOPIC_NOT_FOUND))),
            Failure::Config { .. }
        ));
        assert!(matches!(
            classify(&status(Code::Unavailable, None)),
            Failure::Transient(_)
        ));
        assert!(matches!(
            classify(&status(Code::Unauthenticated, None)),
            Failure::Auth(_)
        ));
    }
}
