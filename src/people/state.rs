//! The `state` of a sign-in link: what it was made for (Slack team, Slack user, org), when it
//! stops working, and a random nonce, signed with HMAC-SHA256 under a key derived from
//! `SFRELAY_ENCRYPTION_KEY`. Nothing in it is secret, but none of it can be changed: a state
//! naming another person or org, or living longer, does not verify. The nonce names the
//! server-side record (the PKCE verifier) and makes the link single-use.
//!
//! Form: `v1.<nonce>.<team>.<user>.<org>.<expires, Unix seconds>.<signature>`, URL-safe as is.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Secret;
use crate::event::SalesforceId;

const VERSION: &str = "v1";
/// What the signing key is derived for, so it never equals a key used for anything else.
const KEY_PURPOSE: &[u8] = b"sfrelay/people/oauth-state-signing/v1";

/// The key states are signed with. Its `Debug` shows nothing.
pub struct StateKey(Secret<[u8; 32]>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey([redacted])")
    }
}

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not made by sfrelay with this key, or changed since.
    #[error("the sign-in link is not valid (it was changed, or not made by sfrelay)")]
    Forged,
    #[error("the sign-in link has expired")]
    Expired,
}

/// What a state says, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub nonce: String,
    pub team: String,
    pub user: String,
    pub org: SalesforceId,
    /// Unix seconds after which the link no longer works.
    pub expires: i64,
}

/// A fresh random nonce: 16 bytes, hex.
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Letters and digits only, within a sane length: what Slack team and user Ids, org Ids,
/// nonces and numbers all are, so `.` can separate them.
pub fn is_plain(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl StateKey {
    /// Derives the signing key from the encryption key.
    pub fn derive(encryption_key: &Secret<[u8; 32]>) -> StateKey {
        let mut key = [0u8; 32];
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(encryption_key.expose()) {
            mac.update(KEY_PURPOSE);
            key.copy_from_slice(&mac.finalize().into_bytes());
        }
        StateKey(Secret::new(key))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; 32 bytes cannot fail.
        Hmac::<Sha256>::new_from_slice(self.0.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// The signed text of `state`.
    pub fn sign(&self, state: &State) -> String {
        let body = format!(
            "{VERSION}.{}.{}.{}.{}.{}",
            state.nonce, state.team, state.user, state.org, state.expires
        );
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Checks the signature (in constant time) and then the expiry against `now` (Unix
    /// seconds). A state that is both forged and old is called forged.
    pub fn verify(&self, text: &str, now: i64) -> Result<State, StateError> {
        let (body, signature) = text.rsplit_once('.').ok_or(StateError::Forged)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| StateError::Forged)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| StateError::Forged)?;
        let parts: Vec<&str> = body.split('.').collect();
        let [VERSION, nonce, team, user, org, expires] = parts[..] else {
            return Err(StateError::Forged);
        };
        let org = SalesforceId::parse(org).map_err(|_| StateError::Forged)?;
        let expires: i64 = expires.parse().map_err(|_| StateError::Forged)?;
        if ![nonce, team, user].iter().all(|p| is_plain(p, 64)) {
            return Err(StateError::Forged);
        }
        if now >= expires {
            return Err(StateError::Expired);
        }
        Ok(State {
            nonce: nonce.to_owned(),
            team: team.to_owned(),
            user: user.to_owned(),
            org,
            expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> StateKey {
        StateKey::derive(&Secret::new([seed; 32]))
    }

    fn state() -> State {
        State {
            nonce: nonce(),
            team: "T0123ABCD".into(),
            user: "U0123ABCD".into(),
            org: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            expires: 1_000,
        }
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let k = key(1);
        let s = state();
        let text = k.sign(&s);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{text}"
        );
        assert_eq!(k.verify(&text, 999), Ok(s));
        assert_eq!(k.verify(&text, 1_000), Err(StateError::Expired));
    }

    #[test]
    fn any_change_or_another_key_is_forged() {
        let k = key(1);
        let s = state();
        let text = k.sign(&s);
        assert_eq!(key(2).verify(&text, 0), Err(StateError::Forged));
        let mut other_user = s.clone();
        other_user.user = "U0EVE0001".into();
        let (_, signature) = text.rsplit_once('.').unwrap();
        let (body, _) = k
            .sign(&other_user)
            .rsplit_once('.')
            .map(|(b, s)| (b.to_owned(), s.to_owned()))
            .unwrap();
        // The victim's signature on the attacker's body.
        assert_eq!(
            k.verify(&format!("{body}.{signature}"), 0),
            Err(StateError::Forged)
        );
        let mut longer = s.clone();
        longer.expires = 99_999;
        let (body, _) = k
            .sign(&longer)
            .rsplit_once('.')
            .map(|(b, s)| (b.to_owned(), s.to_owned()))
            .unwrap();
        assert_eq!(
            k.verify(&format!("{body}.{signature}"), 0),
            Err(StateError::Forged)
        );
        for bad in ["", "v1", "v1.a.b.c.d.e", &text[..text.len() - 2], "x.y"] {
            assert_eq!(k.verify(bad, 0), Err(StateError::Forged), "{bad:?}");
        }
        assert!(!format!("{k:?}").contains('1'));
    }

    #[test]
    fn nonces_are_fresh_and_plain() {
        let n = nonce();
        assert_eq!(n.len(), 32);
        assert!(is_plain(&n, 64));
        assert_ne!(n, nonce());
        assert!(!is_plain("a.b", 64));
        assert!(!is_plain("", 64));
        assert!(!is_plain("abc", 2));
    }
}
