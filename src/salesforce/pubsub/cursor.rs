//! The cursor: where a subscription resumes. Kept in the store as the replay id's bytes in
//! hex (replay ids are opaque: never parsed, never computed) with the time it was stored, so a
//! cursor past Salesforce's 72-hour retention can say which window a sweep must cover.

use serde::{Deserialize, Serialize};

use crate::event::SalesforceId;
use crate::keys::Key;
use crate::store::{Store, StoreError};

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub replay_id: Vec<u8>,
    /// Unix ms when it was stored.
    pub stored_at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    replay_id: String,
    at: i64,
}

pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The stored cursor of `topic`, if any. A value that cannot be read is reported as an
/// error rather than taken for "no cursor", which would silently restart from the
/// configured start.
pub async fn load(
    store: &dyn Store,
    org: &SalesforceId,
    topic: &str,
) -> Result<Option<Cursor>, StoreError> {
    let key = Key::pubsub_cursor(org, topic);
    let Some(text) = store.get(key.as_str()).await? else {
        return Ok(None);
    };
    let stored: Stored = serde_json::from_str(&text)
        .map_err(|e| StoreError(format!("cursor {} unreadable: {e}", key.as_str())))?;
    let replay_id = from_hex(&stored.replay_id)
        .ok_or_else(|| StoreError(format!("cursor {} holds no hex replay id", key.as_str())))?;
    Ok(Some(Cursor {
        replay_id,
        stored_at_ms: stored.at,
    }))
}

/// Stores `replay_id` as the place to resume after.
pub async fn save(
    store: &dyn Store,
    org: &SalesforceId,
    topic: &str,
    replay_id: &[u8],
    now_ms: i64,
) -> Result<(), StoreError> {
    let key = Key::pubsub_cursor(org, topic);
    let value = serde_json::json!({"replay_id": to_hex(replay_id), "at": now_ms}).to_string();
    store.set(key.as_str(), &value, key.ttl()).await
}

/// Forgets the cursor (Salesforce no longer knows it).
pub async fn clear(store: &dyn Store, org: &SalesforceId, topic: &str) -> Result<(), StoreError> {
    store.delete(Key::pubsub_cursor(org, topic).as_str()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_cursor_round_trips_its_bytes_exactly() {
        let store = MemoryStore::default();
        let org = SalesforceId::parse("00D000000000001AAA").unwrap();
        let topic = "/data/OpportunityChangeEvent";
        assert_eq!(load(&store, &org, topic).await.unwrap(), None);
        let id = vec![0x00, 0x0a, 0xff, 0x10, 0, 0, 0, 0, 0, 7];
        save(&store, &org, topic, &id, 1_700_000_000_000)
            .await
            .unwrap();
        let cursor = load(&store, &org, topic).await.unwrap().unwrap();
        assert_eq!(cursor.replay_id, id);
        assert_eq!(cursor.stored_at_ms, 1_700_000_000_000);
        store
            .set(
                Key::pubsub_cursor(&org, topic).as_str(),
                "{\"replay_id\":\"0g\",\"at\":1}",
                None,
            )
            .await
            .unwrap();
        assert!(load(&store, &org, topic).await.is_err());
    }
}
