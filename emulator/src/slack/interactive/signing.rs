//! Slack's request signing, as the emulator applies it to what it sends: `v0=` and the
//! lower-case hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the app's signing secret; and
//! the form encoding of the one `payload` field the signed body holds.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `X-Slack-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length, so this never fails; an empty key is still a key.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v0={hex}")
}

/// `payload=<json>` as `application/x-www-form-urlencoded`, the way Slack sends interactions.
pub fn form_body(payload: &str) -> String {
    format!("payload={}", form_encode(payload))
}

/// Form-encodes one value: letters, digits and `*-._` stay, a space is `+`, every other byte
/// is `%XX`.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Params;

    #[test]
    fn matches_slacks_published_example() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        assert_ne!(
            signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420619, body),
            signature("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body)
        );
    }

    #[test]
    fn a_form_body_decodes_back_to_the_payload() {
        let payload = r#"{"type":"block_actions","text":"Hé & co = 100% + more","x":"/a?b"}"#;
        let body = form_body(payload);
        assert!(body.starts_with("payload=%7B%22type%22"), "{body}");
        assert!(!body.contains(' ') && !body.contains('"'), "{body}");
        let decoded = Params::from_body(None, body.as_bytes()).unwrap();
        assert_eq!(decoded.str("payload").unwrap(), Some(payload));
    }
}
