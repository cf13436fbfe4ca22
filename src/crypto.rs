//! Encryption at rest for the secrets sfrelay keeps in Redis (rotated Salesforce refresh
//! tokens): ChaCha20-Poly1305 with the 32-byte key of `SFRELAY_ENCRYPTION_KEY`, a random nonce
//! per write, and associated data that binds a value to what it is for (the org), so a sealed
//! value copied under another org's key does not open.
//!
//! A sealed value is text: `v1.<key id>.<base64 of nonce and ciphertext>`. The version says how
//! it was sealed; the key id (the start of a SHA-256 of the key) says which key sealed it, so a
//! value sealed under another key is told apart from a damaged one, and a key can be rotated.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::config::Secret;

/// How values are sealed now.
const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;

/// Why a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not a sealed value (expected {VERSION}.<key id>.<data>)")]
    Malformed,
    #[error("sealed with another key (key id {found}, this key's is {expected})")]
    OtherKey { found: String, expected: String },
    #[error("does not open with this key: tampered with, or sealed for something else")]
    Unopenable,
}

/// Seals and opens values with one key. Its `Debug` shows only the key id.
pub struct Cipher {
    aead: ChaCha20Poly1305,
    key_id: String,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    pub fn new(key: &Secret<[u8; 32]>) -> Cipher {
        let digest = Sha256::digest(key.expose());
        Cipher {
            aead: ChaCha20Poly1305::new(&Key::from(*key.expose())),
            key_id: digest[..4].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Which key this is, safe to log: the start of its SHA-256.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Seals `plaintext` for `context` (e.g. `sf-refresh-token:<org id>`) under a fresh random
    /// nonce.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.aad(context),
                },
            )
            // Encryption fails only for inputs of gigabytes; nothing sealed here comes close.
            .unwrap_or_default();
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", self.key_id, STANDARD.encode(data))
    }

    /// Opens a value [`Cipher::seal`] made for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Malformed);
        };
        if key_id != self.key_id {
            return Err(CryptoError::OtherKey {
                found: key_id.chars().take(8).collect(),
                expected: self.key_id.clone(),
            });
        }
        let data = STANDARD.decode(data).map_err(|_| CryptoError::Malformed)?;
        if data.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = data.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        self.aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad(context),
                },
            )
            .map_err(|_| CryptoError::Unopenable)
    }

    /// The associated data: the format version and the context, so neither can be swapped.
    fn aad(&self, context: &str) -> Vec<u8> {
        format!("sfrelay/{VERSION}/{context}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(seed: u8) -> Cipher {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        Cipher::new(&Secret::new(key))
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_context() {
        let c = cipher(1);
        let sealed = c.seal(b"5Aep-refresh-token", "sf-refresh-token:00D1");
        assert!(sealed.starts_with("v1."), "{sealed}");
        assert!(!sealed.contains("5Aep"), "{sealed}");
        assert_eq!(
            c.open(&sealed, "sf-refresh-token:00D1").unwrap(),
            b"5Aep-refresh-token"
        );
        // A fresh nonce per write: the same value never seals the same way twice.
        assert_ne!(
            sealed,
            c.seal(b"5Aep-refresh-token", "sf-refresh-token:00D1")
        );
        // Another org's context, another key, a flipped byte: each fails cleanly.
        assert_eq!(
            c.open(&sealed, "sf-refresh-token:00D2"),
            Err(CryptoError::Unopenable)
        );
        assert!(matches!(
            cipher(2).open(&sealed, "sf-refresh-token:00D1"),
            Err(CryptoError::OtherKey { .. })
        ));
        let (head, data) = sealed.rsplit_once('.').unwrap();
        let mut bytes = STANDARD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}.{}", STANDARD.encode(bytes));
        assert_eq!(
            c.open(&tampered, "sf-refresh-token:00D1"),
            Err(CryptoError::Unopenable)
        );
        for bad in ["", "plain-token", "v2.x.y", "v1.", "v1.abc", "v1.abc.!!!"] {
            assert!(c.open(bad, "x").is_err(), "{bad}");
        }
        assert!(!format!("{c:?}").contains(&format!("{:?}", [0u8; 4])));
    }
}
