//! One change event as the stream gave it, and the way from its bytes to the events `/v1/cdc`
//! would make. The keeper reads each event this way; an event it cannot read is kept whole in
//! the dead-letter list (its bytes and its writer schema), so replaying that letter after a fix
//! reads it again, with the same event ids and so nothing posted twice.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decode::{self, Schema};
use crate::event::SalesforceId;
use crate::ingest::cdc::{CdcBatch, parse_cdc_value};

/// A change event that could not be read when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawChange {
    pub org: SalesforceId,
    pub topic: String,
    /// Its replay id, in hex.
    pub replay_id: String,
    /// The event's own UUID (`ProducerEvent.id`).
    pub event_id: String,
    pub schema_id: String,
    /// The writer schema's JSON, so the letter needs nothing from the stream to be read again.
    pub schema: String,
    /// The Avro datum, base64.
    pub payload: String,
}

impl RawChange {
    /// Reads the kept bytes again with the kept schema.
    pub fn read(&self, received_at: DateTime<Utc>) -> Result<CdcBatch, String> {
        let schema = Schema::parse(&self.schema).map_err(|e| e.to_string())?;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| format!("the kept payload is not base64: {e}"))?;
        read(&schema, &payload, &self.org, received_at)
    }
}

/// One event's datum, read with its writer schema and parsed as `/v1/cdc` parses a body.
pub fn read(
    schema: &Schema,
    payload: &[u8],
    org: &SalesforceId,
    received_at: DateTime<Utc>,
) -> Result<CdcBatch, String> {
    let body = decode::decode(schema, payload).map_err(|e| e.to_string())?;
    parse_cdc_value(Value::Object(body), org, received_at).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}
