//! Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` keyed
//! with the app's signing secret, checked over the raw bytes before anything is decoded.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

/// How far a request's timestamp may be from now, either way (Slack's replay window).
pub const MAX_SKEW_SECS: i64 = 300;

pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// Why a request's signature was refused. The messages say what was wrong in general terms and
/// never what the expected signature would have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is given more than once")]
    Repeated(&'static str),
    #[error("the X-Slack-Request-Timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the request timestamp is more than {MAX_SKEW_SECS} s away from now")]
    Stale,
    #[error("the X-Slack-Signature header is not v0= followed by 64 hex digits")]
    BadSignature,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The one value of header `name`: missing and repeated are both refused.
fn single<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    display: &'static str,
) -> Result<&'a [u8], SignatureError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or(SignatureError::Missing(display))?;
    if values.next().is_some() {
        return Err(SignatureError::Repeated(display));
    }
    Ok(first.as_bytes())
}

/// The headers of a signed request, read and checked for form (not yet against a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    timestamp: String,
    mac: [u8; 32],
}

impl Signed {
    /// Reads both headers and checks the timestamp is within the window around `now_secs`.
    pub fn from_headers(headers: &HeaderMap, now_secs: i64) -> Result<Self, SignatureError> {
        let timestamp = single(headers, TIMESTAMP_HEADER, "X-Slack-Request-Timestamp")?;
        let signature = single(headers, SIGNATURE_HEADER, "X-Slack-Signature")?;
        let timestamp = std::str::from_utf8(timestamp)
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(SignatureError::BadTimestamp)?;
        let seconds: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::BadTimestamp)?;
        if (now_secs.saturating_sub(seconds)).abs() > MAX_SKEW_SECS {
            return Err(SignatureError::Stale);
        }
        let hex = signature
            .strip_prefix(b"v0=")
            .ok_or(SignatureError::BadSignature)?;
        let mac = decode_hex(hex).ok_or(SignatureError::BadSignature)?;
        Ok(Signed {
            timestamp: timestamp.to_string(),
            mac,
        })
    }

    /// Whether `body` was signed with `secret` (constant-time comparison).
    pub fn verifies(&self, secret: &Secret<String>, body: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            return false;
        };
        mac.update(b"v0:");
        mac.update(self.timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&self.mac).is_ok()
    }

    /// The index of the first of `secrets` that signed `body`. Every secret is tried, so the
    /// time taken does not say which one matched.
    pub fn first_verifying<'a>(
        &self,
        secrets: impl IntoIterator<Item = &'a Secret<String>>,
        body: &[u8],
    ) -> Result<usize, SignatureError> {
        let mut found = None;
        for (i, secret) in secrets.into_iter().enumerate() {
            if self.verifies(secret, body) && found.is_none() {
                found = Some(i);
            }
        }
        found.ok_or(SignatureError::Mismatch)
    }
}

/// 64 lower- or upper-case hex digits as 32 bytes.
fn decode_hex(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    // Slack's documented example request.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: i64 = 1_531_420_618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(TIMESTAMP_HEADER, HeaderValue::from_str(timestamp).unwrap());
        headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        headers
    }

    fn secret(s: &str) -> Secret<String> {
        Secret::new(s.to_string())
    }

    #[test]
    fn slacks_documented_example_verifies() {
        let signed = Signed::from_headers(&headers("1531420618", SIGNATURE), TIMESTAMP).unwrap();
        assert!(signed.verifies(&secret(SECRET), BODY));
    }

    #[test]
    fn a_tampered_body_or_another_secret_does_not_verify() {
        let signed = Signed::from_headers(&headers("1531420618", SIGNATURE), TIMESTAMP).unwrap();
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        assert!(!signed.verifies(&secret(SECRET), &tampered));
        assert!(!signed.verifies(&secret("another-secret"), BODY));
        assert_eq!(
            signed.first_verifying([&secret("another-secret")], BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_secret_that_signed_is_found_among_several() {
        let signed = Signed::from_headers(&headers("1531420618", SIGNATURE), TIMESTAMP).unwrap();
        let secrets = [secret("one"), secret(SECRET), secret("three")];
        assert_eq!(signed.first_verifying(&secrets, BODY), Ok(1));
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_either_way_are_refused() {
        for now in [TIMESTAMP + 301, TIMESTAMP - 301] {
            assert_eq!(
                Signed::from_headers(&headers("1531420618", SIGNATURE), now),
                Err(SignatureError::Stale)
            );
        }
        for now in [TIMESTAMP + 300, TIMESTAMP - 300] {
            assert!(Signed::from_headers(&headers("1531420618", SIGNATURE), now).is_ok());
        }
    }

    #[test]
    fn missing_repeated_and_garbled_headers_are_refused() {
        let mut only_signature = HeaderMap::new();
        only_signature.insert(SIGNATURE_HEADER, HeaderValue::from_static(SIGNATURE));
        assert_eq!(
            Signed::from_headers(&only_signature, TIMESTAMP),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        let mut only_timestamp = HeaderMap::new();
        only_timestamp.insert(TIMESTAMP_HEADER, HeaderValue::from_static("1531420618"));
        assert_eq!(
            Signed::from_headers(&only_timestamp, TIMESTAMP),
            Err(SignatureError::Missing("X-Slack-Signature"))
        );
        let mut twice = headers("1531420618", SIGNATURE);
        twice.append(SIGNATURE_HEADER, HeaderValue::from_static(SIGNATURE));
        assert_eq!(
            Signed::from_headers(&twice, TIMESTAMP),
            Err(SignatureError::Repeated("X-Slack-Signature"))
        );
        for bad in ["-1531420618", "15314x0618", ""] {
            assert_eq!(
                Signed::from_headers(&headers(bad, SIGNATURE), TIMESTAMP),
                Err(SignatureError::BadTimestamp)
            );
        }
        for bad in [
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=a2114d57",
            "v0=z2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ] {
            assert_eq!(
                Signed::from_headers(&headers("1531420618", bad), TIMESTAMP),
                Err(SignatureError::BadSignature)
            );
        }
    }
}
