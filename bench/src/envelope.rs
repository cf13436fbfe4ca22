//! Request bodies: the realistic Closed Won callout from `tests/fixtures`, with a fresh
//! `event_id` per event (so no request is a duplicate), a record name carrying the sequence
//! number (so a Slack message can be traced back to its event), and optionally the bench
//! channel the bench route should post it to.
//!
//! The fixture is serialised once with placeholders and spliced per event: building a body
//! must cost the load generator next to nothing.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;

const EVENT_ID: &str = "@@EVENT_ID@@";
const NAME: &str = "@@NAME@@";
const CHANNEL: &str = "@@CHANNEL@@";

/// Which value fills a placeholder.
#[derive(Debug, Clone, Copy)]
enum Slot {
    EventId,
    Name,
    Channel,
}

/// The fixture, cut at its placeholders.
#[derive(Debug, Clone)]
pub struct Envelopes {
    /// Text between placeholders: `slots.len() + 1` pieces.
    pieces: Vec<String>,
    slots: Vec<Slot>,
    /// Makes event ids unique across bench invocations.
    nonce: String,
}

impl Envelopes {
    /// Reads `tests/fixtures/flow-opportunity-closed-won.json` under `repo`.
    pub fn load(repo: &Path) -> anyhow::Result<Envelopes> {
        let path = repo.join("tests/fixtures/flow-opportunity-closed-won.json");
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        let fixture: Value = serde_json::from_str(&text)?;
        Envelopes::new(fixture)
    }

    pub fn new(mut fixture: Value) -> anyhow::Result<Envelopes> {
        fixture["event_id"] = EVENT_ID.into();
        let record = fixture
            .get_mut("record")
            .and_then(Value::as_object_mut)
            .context("fixture has no record")?;
        record.insert("Name".into(), NAME.into());
        record.insert("Bench_Channel__c".into(), CHANNEL.into());
        let text = serde_json::to_string(&fixture)?;

        let mut found: Vec<(usize, &str, Slot)> = [
            (EVENT_ID, Slot::EventId),
            (NAME, Slot::Name),
            (CHANNEL, Slot::Channel),
        ]
        .into_iter()
        .filter_map(|(marker, slot)| text.find(marker).map(|at| (at, marker, slot)))
        .collect();
        found.sort_by_key(|(at, _, _)| *at);
        let mut pieces = Vec::new();
        let mut slots = Vec::new();
        let mut from = 0;
        for (at, marker, slot) in found {
            pieces.push(text[from..at].to_string());
            slots.push(slot);
            from = at + marker.len();
        }
        pieces.push(text[from..].to_string());
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        Ok(Envelopes {
            pieces,
            slots,
            nonce: format!("{nonce:x}"),
        })
    }

    /// One envelope, appended to `out`. Without a channel, `Bench_Channel__c` is empty and
    /// the event fires no route.
    pub fn write(&self, out: &mut Vec<u8>, seq: u64, channel: Option<&str>) {
        for (piece, slot) in self.pieces.iter().zip(&self.slots) {
            out.extend_from_slice(piece.as_bytes());
            match slot {
                Slot::EventId => {
                    out.extend_from_slice(format!("bench-{}-{seq}", self.nonce).as_bytes())
                }
                Slot::Name => out.extend_from_slice(name(seq).as_bytes()),
                Slot::Channel => out.extend_from_slice(channel.unwrap_or("").as_bytes()),
            }
        }
        out.extend_from_slice(self.pieces.last().map_or(&b""[..], |p| p.as_bytes()));
    }

    /// One envelope as a request body.
    pub fn single(&self, seq: u64, channel: Option<&str>) -> Bytes {
        let mut out = Vec::with_capacity(1024);
        self.write(&mut out, seq, channel);
        out.into()
    }

    /// `{"events": [...]}` with `n` envelopes numbered from `first`.
    pub fn batch(&self, first: u64, n: u64) -> Bytes {
        let mut out = Vec::with_capacity(1024 * n as usize);
        out.extend_from_slice(b"{\"events\":[");
        for seq in first..first + n {
            if seq > first {
                out.push(b',');
            }
            self.write(&mut out, seq, None);
        }
        out.extend_from_slice(b"]}");
        out.into()
    }
}

/// The record name of event `seq`; it appears in the Slack message's text.
pub fn name(seq: u64) -> String {
    format!("bench-{seq}")
}

/// The event a Slack message is about, from the record name in its text.
pub fn seq_in(text: &str) -> Option<u64> {
    let rest = &text[text.find("bench-")? + "bench-".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_fresh_ids_names_and_channels() {
        let fixture = serde_json::json!({
            "event_id": "x", "org_id": "00D5g000004ABCdEAO", "object": "Opportunity",
            "record": {"Id": "006Hs00000BkXyzIAF", "Name": "Acme"}
        });
        let envelopes = Envelopes::new(fixture).unwrap();
        let one: Value = serde_json::from_slice(&envelopes.single(7, Some("C0BENCH0001"))).unwrap();
        assert!(one["event_id"].as_str().unwrap().ends_with("-7"));
        assert_eq!(one["record"]["Name"], "bench-7");
        assert_eq!(one["record"]["Bench_Channel__c"], "C0BENCH0001");
        let batch: Value = serde_json::from_slice(&envelopes.batch(10, 3)).unwrap();
        assert_eq!(batch["events"].as_array().unwrap().len(), 3);
        assert_eq!(batch["events"][2]["record"]["Name"], "bench-12");
        assert_eq!(seq_in("Closed Won: bench-12 (Acme Corp) 75,000"), Some(12));
    }
}
