//! Rotated refresh tokens, kept in the store (Redis) sealed with `SFRELAY_ENCRYPTION_KEY`, so a
//! restart or another replica presents the newest one instead of the configured original that
//! Salesforce revoked when it rotated it.
//!
//! Each stored value also names (by a short fingerprint) the configured token it descends from:
//! when an operator puts a new refresh token in the configuration, that one wins over what was
//! rotated from the old one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::crypto::Cipher;
use crate::event::SalesforceId;
use crate::keys::Key;
use crate::store::Store;

/// Where rotated refresh tokens are kept. Without a cipher nothing is stored: rotation then
/// lives in this process only.
#[derive(Clone)]
pub struct RefreshTokenVault {
    store: Arc<dyn Store>,
    cipher: Option<Arc<Cipher>>,
}

impl RefreshTokenVault {
    pub fn new(store: Arc<dyn Store>, cipher: Option<Arc<Cipher>>) -> Self {
        RefreshTokenVault { store, cipher }
    }

    /// Whether rotated tokens are persisted (a key is configured).
    pub fn persists(&self) -> bool {
        self.cipher.is_some()
    }

    /// Takes the org's refresh turn across replicas: two replicas presenting the same token at
    /// once would see the second refused, the token having been rotated by the first. Waits
    /// up to [`TURN_WAIT`] for another replica's turn to end; `Some(holder)` is this turn,
    /// to be given back with [`RefreshTokenVault::end_turn`].
    pub async fn take_turn(&self, org: &SalesforceId) -> Option<String> {
        self.cipher.as_ref()?;
        let key = Key::refresh_turn(org);
        let holder = uuid::Uuid::now_v7().simple().to_string();
        let deadline = Instant::now() + TURN_WAIT;
        loop {
            match self.store.claim(key.as_str(), &holder, key.ttl()).await {
                Ok(None) => return Some(holder),
                Ok(Some(current)) if current == holder => return Some(holder),
                Ok(Some(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Some(_)) => {
                    tracing::warn!(%org, "another replica's token refresh is taking long; refreshing anyway");
                    return None;
                }
                Err(e) => {
                    tracing::debug!(%org, error = %e, "cannot take the refresh turn");
                    return None;
                }
            }
        }
    }

    /// Ends a turn [`RefreshTokenVault::take_turn`] gave.
    pub async fn end_turn(&self, org: &SalesforceId, holder: Option<String>) {
        if holder.is_some()
            && let Err(e) = self.store.delete(Key::refresh_turn(org).as_str()).await
        {
            tracing::debug!(%org, error = %e, "cannot end the refresh turn; it expires by itself");
        }
    }

    /// The newest refresh token rotated from `configured`, if one is stored and opens. A value
    /// that does not open (another key, damaged) or descends from another configured token is
    /// passed over with a warning that never shows it.
    pub async fn load(
        &self,
        org: &SalesforceId,
        configured: &Secret<String>,
    ) -> Option<Secret<String>> {
        let cipher = self.cipher.as_ref()?;
        let key = Key::refresh_token(org);
        let stored = match self.store.get(key.as_str()).await {
            Ok(stored) => stored?,
            Err(e) => {
                tracing::warn!(%org, error = %e, "cannot read the stored refresh token; using the one in memory or the configuration");
                return None;
            }
        };
        let Some((origin, sealed)) = stored.split_once(' ') else {
            tracing::warn!(%org, "the stored refresh token is not in a known format; ignoring it");
            return None;
        };
        if origin != fingerprint(configured) {
            tracing::info!(%org, "the configured refresh token changed since the stored one was rotated; using the configured one");
            return None;
        }
        match cipher.open(sealed, &context(org)) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(token) if !token.is_empty() => Some(Secret::new(token)),
                _ => {
                    tracing::warn!(%org, "the stored refresh token is not text; ignoring it");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(%org, error = %e, key_id = cipher.key_id(), "cannot open the stored refresh token (SFRELAY_ENCRYPTION_KEY changed?); using the one in memory or the configuration");
                None
            }
        }
    }

    /// Stores `rotated`, sealed, as the newest token descending from `configured`. A failure
    /// is logged loudly: this process keeps the token in memory, but a restart would not have it.
    pub async fn save(
        &self,
        org: &SalesforceId,
        configured: &Secret<String>,
        rotated: &Secret<String>,
    ) {
        let Some(cipher) = &self.cipher else {
            return;
        };
        let key = Key::refresh_token(org);
        let sealed = cipher.seal(rotated.expose().as_bytes(), &context(org));
        let value = format!("{} {sealed}", fingerprint(configured));
        match self.store.set(key.as_str(), &value, key.ttl()).await {
            Ok(()) => {
                metrics::counter!("sfrelay_salesforce_refresh_tokens_stored_total", "org" => org.to_string()).increment(1);
                tracing::info!(%org, key_id = cipher.key_id(), "stored the rotated refresh token (encrypted)");
            }
            Err(e) => {
                tracing::error!(%org, error = %e, "cannot store the rotated refresh token: this process keeps it, but a restart or another replica would present a revoked one");
            }
        }
    }
}

/// How long a replica waits for another one's refresh before refreshing anyway.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// What a sealed refresh token is for: binds it to its org.
fn context(org: &SalesforceId) -> String {
    format!("sf-refresh-token:{org}")
}

/// A short fingerprint of a configured token (not reversible, and too short to test guesses
/// against with any confidence of a unique match).
fn fingerprint(token: &Secret<String>) -> String {
    Sha256::digest(token.expose().as_bytes())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    fn cipher(byte: u8) -> Arc<Cipher> {
        let mut key = [byte; 32];
        key[0] = 1;
        Arc::new(Cipher::new(&Secret::new(key)))
    }

    #[tokio::test]
    async fn rotated_tokens_are_stored_sealed_and_read_back() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let vault = RefreshTokenVault::new(store.clone(), Some(cipher(9)));
        let configured = Secret::new("5Aep-original".to_string());
        assert!(vault.load(&org(), &configured).await.is_none());
        vault
            .save(&org(), &configured, &Secret::new("5Aep-rotated-1".into()))
            .await;
        let raw = store
            .get(Key::refresh_token(org()).as_str())
            .await
            .unwrap()
            .unwrap();
        assert!(!raw.contains("5Aep"), "{raw}");
        assert_eq!(
            vault.load(&org(), &configured).await.unwrap().expose(),
            "5Aep-rotated-1"
        );
        // Another key does not open it; a new configured token wins over it.
        let other = RefreshTokenVault::new(store.clone(), Some(cipher(8)));
        assert!(other.load(&org(), &configured).await.is_none());
        let replaced = Secret::new("5Aep-new-from-admin".to_string());
        assert!(vault.load(&org(), &replaced).await.is_none());
        // Without a key nothing is stored or read.
        let keyless = RefreshTokenVault::new(store, None);
        assert!(!keyless.persists());
        assert!(keyless.load(&org(), &configured).await.is_none());
    }
}
