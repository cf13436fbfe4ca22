//! The one internal record-change type every ingest path produces, and
//! Salesforce Id handling.
//!
//! Every wire format (Flow callout, CDC, Outbound Message) is turned into an
//! [`Event`] at the edge, so routing, rendering and deduplication only ever
//! see validated, normalised data.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::keys::DedupeKey;

/// Characters Salesforce maps the 5-bit case pattern of each chunk onto.
const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A validated Salesforce record or org Id, always stored in its
/// 18-character form.
///
/// Salesforce hands out both the case-sensitive 15-character form and the
/// case-insensitive 18-character form of the same Id; keeping only the
/// 18-character form means equal records compare and hash equal whichever
/// form the sender used.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SalesforceId(String);

/// Why a string is not a Salesforce Id; the message is shown to API callers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    /// Neither 15 nor 18 characters long.
    #[error("must be 15 or 18 alphanumeric characters, got {0}")]
    Length(usize),
    /// Holds something other than ASCII letters and digits.
    #[error("must contain only the letters A-Z, a-z and the digits 0-9")]
    NotAlphanumeric,
    /// An 18-character Id whose suffix does not match its first 15
    /// characters, usually a typo or a truncated copy.
    #[error("checksum suffix should be {expected}")]
    Checksum {
        /// The suffix computed from the first 15 characters.
        expected: String,
    },
}

impl SalesforceId {
    /// Validates `s` and normalises it to 18 characters, so that a 15- and
    /// an 18-character spelling of one Id become the same value.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let len = s.chars().count();
        if len != 15 && len != 18 {
            return Err(IdError::Length(len));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IdError::NotAlphanumeric);
        }
        let (base, given) = s.split_at(15);
        let expected = checksum_suffix(base);
        if given.is_empty() || given.eq_ignore_ascii_case(&expected) {
            return Ok(Self(format!("{base}{expected}")));
        }
        // A copy that went through something case-insensitive (all lower or all upper case):
        // the suffix says which characters were upper case. A mixed-case base kept its case,
        // so there a different suffix is a typo, not lost case.
        let letters = || base.bytes().filter(u8::is_ascii_alphabetic);
        let one_case =
            letters().all(|b| b.is_ascii_lowercase()) || letters().all(|b| b.is_ascii_uppercase());
        match restore_case(base, given) {
            Some(restored) if one_case => {
                Ok(Self(format!("{restored}{}", given.to_ascii_uppercase())))
            }
            _ => Err(IdError::Checksum { expected }),
        }
    }

    /// The 18-character form, for logs, keys and Salesforce API calls.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 3-character key prefix, which tells the sObject type
    /// (e.g. `006` Opportunity, `00D` Organization) without a lookup.
    pub fn key_prefix(&self) -> &str {
        &self.0[..3]
    }
}

/// Salesforce's 3-character suffix for a 15-character Id: one character per
/// 5-character chunk, encoding which characters are uppercase.
fn checksum_suffix(base: &str) -> String {
    base.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX_ALPHABET[bits])
        })
        .collect()
}

/// The 15 characters whose case `suffix` describes, or `None` when no Id has that suffix (a
/// character outside the suffix alphabet, or a digit marked upper case).
fn restore_case(base: &str, suffix: &str) -> Option<String> {
    let mut restored = String::with_capacity(15);
    for (chunk, code) in base.as_bytes().chunks(5).zip(suffix.bytes()) {
        let code = code.to_ascii_uppercase();
        let bits = SUFFIX_ALPHABET.iter().position(|&c| c == code)?;
        for (i, &b) in chunk.iter().enumerate() {
            if bits & (1 << i) != 0 {
                if !b.is_ascii_alphabetic() {
                    return None;
                }
                restored.push(char::from(b.to_ascii_uppercase()));
            } else {
                restored.push(char::from(b.to_ascii_lowercase()));
            }
        }
    }
    Some(restored)
}

impl TryFrom<String> for SalesforceId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<SalesforceId> for String {
    fn from(id: SalesforceId) -> String {
        id.0
    }
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What happened to the record; routing rules and message templates branch
/// on it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    /// The record was inserted.
    Create,
    /// The record was edited; the default because most Flow callouts fire on
    /// edits and senders often omit the field.
    #[default]
    Update,
    /// The record was deleted (moved to the recycle bin).
    Delete,
    /// The record was restored from the recycle bin.
    Undelete,
}

impl ChangeType {
    /// The wire spelling, for logs, templates and the dedupe key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Undelete => "UNDELETE",
        }
    }
}

/// One record change, whatever wire format it came in (Flow callout, CDC,
/// Outbound Message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// sfrelay's own id (UUID v7 string), on every log line so one change
    /// can be followed from ingest to Slack.
    pub id: String,
    /// The org the change happened in; scopes routing and deduplication.
    pub org_id: SalesforceId,
    /// sObject API name, e.g. `Opportunity` or `Custom__c`.
    pub object: String,
    /// Equal to `record["Id"]`, in the 18-character form.
    pub record_id: SalesforceId,
    /// The record's fields, with `Id` rewritten to the 18-character form;
    /// unknown fields are kept because templates may use any of them.
    pub record: Map<String, Value>,
    /// What happened to the record.
    pub change_type: ChangeType,
    /// Fields the sender says changed, when it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<String>>,
    /// The record before the change (Flow's `$Record__Prior`), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<Map<String, Value>>,
    /// The sender's idempotency key; retries of one change carry the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// When the change happened in Salesforce, when the sender says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// When sfrelay accepted the request.
    pub received_at: DateTime<Utc>,
}

impl Event {
    /// Key that identifies "the same change" for deduplication, so retried
    /// or duplicated deliveries post to Slack once.
    ///
    /// It is stable across processes and versions (SHA-256 of a fixed
    /// serialisation): with the sender's `event_id` it is
    /// `e:<org_id>:<sha256hex(event_id)>`; without, it is `c:` and the
    /// SHA-256 of a JSON array of org, object, record Id, change type,
    /// sorted changed fields, the first present of
    /// `record.LastModifiedDate`, `record.SystemModstamp` and `occurred_at`,
    /// and a SHA-256 of the record's values (its fields in key order), so a
    /// later change saved within the same timestamp, or sent with none, is
    /// not taken for a resend of the first.
    pub fn dedupe_key(&self) -> String {
        if let Some(event_id) = &self.event_id {
            return DedupeKey::event(&self.org_id, &sha256_hex(event_id)).into();
        }
        let changed_fields = self.changed_fields.as_ref().map(|fields| {
            let mut fields = fields.clone();
            fields.sort();
            fields
        });
        let when = ["LastModifiedDate", "SystemModstamp"]
            .iter()
            .filter_map(|field| match self.record.get(*field) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            })
            .next()
            .or_else(|| {
                self.occurred_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            })
            .unwrap_or_default();
        let canonical = serde_json::json!([
            self.org_id.as_str(),
            self.object,
            self.record_id.as_str(),
            self.change_type.as_str(),
            changed_fields,
            when,
            // Serialised in place (a map of strings to values cannot fail to serialise).
            sha256_hex(&serde_json::to_string(&self.record).unwrap_or_default()),
        ]);
        DedupeKey::content(&sha256_hex(&canonical.to_string())).into()
    }
}

impl Event {
    /// The record version this event carries, in Unix ms: the latest of `SystemModstamp`,
    /// `LastModifiedDate` and `occurred_at` (a CDC event's commit timestamp), so two events of
    /// one record can be put in the order Salesforce saved them whatever order they came in.
    /// `None` when the event says nothing of when the change was made.
    pub fn version(&self) -> Option<i64> {
        ["SystemModstamp", "LastModifiedDate"]
            .iter()
            .filter_map(|field| parse_salesforce_time(self.record.get(*field)?.as_str()?))
            .chain(self.occurred_at)
            .map(|t| t.timestamp_millis())
            .max()
    }
}

/// A Salesforce timestamp: `2025-09-30T16:00:00.000+0000` as the API writes it, or RFC 3339.
pub fn parse_salesforce_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A `GAP_*` or `GAP_OVERFLOW` event: Salesforce could not include field
/// values, so the records must be read back before a message can say
/// anything useful about them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapEvent {
    /// The org the credential belongs to; the payload names none.
    pub org_id: SalesforceId,
    /// sObject API name (`entityName`), needed to query the records back.
    pub object: String,
    /// The records to fetch; empty for `GAP_OVERFLOW`, whose header only
    /// holds Salesforce's empty Id because the records are not known.
    pub record_ids: Vec<SalesforceId>,
    /// The wire spelling, `GAP_CREATE` … `GAP_OVERFLOW`, kept as a string
    /// because it is not a [`ChangeType`] until the records are fetched.
    pub change_type: String,
    /// When the change was committed, when the header says.
    pub commit_timestamp: Option<DateTime<Utc>>,
    /// The transaction, to group the gap with its siblings when the header
    /// says.
    pub transaction_key: Option<String>,
}

/// Lowercase hex SHA-256, the fixed hash behind dedupe keys.
fn sha256_hex(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(s.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_15_to_18() {
        let id = SalesforceId::parse("00558000001N0Ke").unwrap();
        assert_eq!(id.as_str(), "00558000001N0KeAAK");
        assert_eq!(id.to_string(), "00558000001N0KeAAK");
        assert_eq!(id.key_prefix(), "005");
    }

    #[test]
    fn accepts_valid_18() {
        for s in [
            "00558000001N0KeAAK",
            "006Hs00000BkXyzIAF",
            "00D5g000004ABCdEAO",
            "500Hs00000EfGhiIAF",
            "00Q5g00000AbCdEEAV",
            "006000000000001AAA",
        ] {
            assert_eq!(SalesforceId::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn suffix_is_case_insensitive_and_stored_uppercase() {
        let id = SalesforceId::parse("006Hs00000BkXyziaf").unwrap();
        assert_eq!(id.as_str(), "006Hs00000BkXyzIAF");
        assert_eq!(id, SalesforceId::parse("006Hs00000BkXyz").unwrap());
    }

    #[test]
    fn eighteen_char_id_whose_case_was_lost_is_restored_by_its_suffix() {
        for s in [
            "006hs00000bkxyziaf",
            "006HS00000BKXYZIAF",
            "006hs00000bkxyzIAF",
        ] {
            let id = SalesforceId::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(id.as_str(), "006Hs00000BkXyzIAF", "{s}");
        }
        let org = SalesforceId::parse("00d5g000004abcdeao").unwrap();
        assert_eq!(org.as_str(), "00D5g000004ABCdEAO");
        // 15 characters become the 18 whose suffix encodes their case.
        assert_eq!(
            SalesforceId::parse("00D5g000004ABCd").unwrap().as_str(),
            "00D5g000004ABCdEAO"
        );
    }

    #[test]
    fn suffix_that_cannot_be_a_checksum_is_refused() {
        // A suffix that marks a digit as upper case can belong to no Id.
        assert!(matches!(
            SalesforceId::parse("000000000000000BAA"),
            Err(IdError::Checksum { .. })
        ));
        // 6-9 are not in the suffix alphabet.
        assert!(matches!(
            SalesforceId::parse("006hs00000bkxyz9af"),
            Err(IdError::Checksum { .. })
        ));
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            SalesforceId::parse("006Hs00000BkXyzIAA"),
            Err(IdError::Checksum {
                expected: "IAF".into()
            })
        );
        assert_eq!(
            IdError::Checksum {
                expected: "IAF".into()
            }
            .to_string(),
            "checksum suffix should be IAF"
        );
        assert_eq!(
            SalesforceId::parse("006Hs00000BkXyzIA"),
            Err(IdError::Length(17))
        );
        assert_eq!(
            IdError::Length(17).to_string(),
            "must be 15 or 18 alphanumeric characters, got 17"
        );
        assert_eq!(SalesforceId::parse(""), Err(IdError::Length(0)));
        assert_eq!(
            SalesforceId::parse("006Hs00000BkX-z"),
            Err(IdError::NotAlphanumeric)
        );
        assert_eq!(
            SalesforceId::parse("006Hs00000BkXyé"),
            Err(IdError::NotAlphanumeric)
        );
    }

    #[test]
    fn serde_is_a_validated_string() {
        let id: SalesforceId = serde_json::from_str(r#""00558000001N0Ke""#).unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            r#""00558000001N0KeAAK""#
        );
        let err = serde_json::from_str::<SalesforceId>(r#""006Hs00000BkXyzIAA""#).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        assert_eq!(format!("{id:?}"), r#""00558000001N0KeAAK""#);
    }

    #[test]
    fn change_type_spelling() {
        assert_eq!(ChangeType::default(), ChangeType::Update);
        for ct in [
            ChangeType::Create,
            ChangeType::Update,
            ChangeType::Delete,
            ChangeType::Undelete,
        ] {
            let json = serde_json::to_string(&ct).unwrap();
            assert_eq!(json, format!("\"{}\"", ct.as_str()));
            assert_eq!(serde_json::from_str::<ChangeType>(&json).unwrap(), ct);
        }
    }

    fn sample() -> Event {
        let record = serde_json::json!({
            "Id": "006Hs00000BkXyzIAF",
            "StageName": "Closed Won",
            "LastModifiedDate": "2025-09-30T16:00:00.000+0000",
        });
        let Value::Object(record) = record else {
            unreachable!()
        };
        Event {
            id: "0199a0a0-0000-7000-8000-000000000000".into(),
            org_id: SalesforceId::parse("00D5g000004ABCdEAO").unwrap(),
            object: "Opportunity".into(),
            record_id: SalesforceId::parse("006Hs00000BkXyzIAF").unwrap(),
            record,
            change_type: ChangeType::Update,
            changed_fields: Some(vec!["StageName".into(), "Amount".into()]),
            prior: None,
            event_id: None,
            occurred_at: Some("2025-09-30T16:00:00Z".parse().unwrap()),
            received_at: "2025-09-30T16:00:01Z".parse().unwrap(),
        }
    }

    #[test]
    fn dedupe_key_with_event_id() {
        let mut e = sample();
        e.event_id = Some("abc".into());
        assert_eq!(
            e.dedupe_key(),
            "e:00D5g000004ABCdEAO:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut other_org = e.clone();
        other_org.org_id = SalesforceId::parse("00D000000000001EAA").unwrap();
        assert_ne!(other_org.dedupe_key(), e.dedupe_key());
    }

    #[test]
    fn dedupe_key_is_stable() {
        let e = sample();
        let key = e.dedupe_key();
        assert!(key.starts_with("c:") && key.len() == 2 + 64, "{key}");
        // Pinned so a change to the canonical form is noticed: keys must
        // stay equal across versions or in-flight duplicates slip through.
        let values = sha256_hex(
            r#"{"Id":"006Hs00000BkXyzIAF","LastModifiedDate":"2025-09-30T16:00:00.000+0000","StageName":"Closed Won"}"#,
        );
        assert_eq!(
            key,
            "c:".to_owned()
                + &sha256_hex(&format!(
                    r#"["00D5g000004ABCdEAO","Opportunity","006Hs00000BkXyzIAF","UPDATE",["Amount","StageName"],"2025-09-30T16:00:00.000+0000","{values}"]"#
                ))
        );
        // Not part of the change: sfrelay's id, arrival time, the prior
        // values, the order of the changed fields.
        let mut same = e.clone();
        same.id = "other".into();
        same.received_at = Utc::now();
        same.prior = Some(Map::new());
        same.changed_fields = Some(vec!["Amount".into(), "StageName".into()]);
        assert_eq!(same.dedupe_key(), key);
    }

    #[test]
    fn version_is_the_latest_save_time_the_event_names() {
        let mut e = sample();
        e.occurred_at = None;
        let modified = "2025-09-30T16:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(e.version(), Some(modified.timestamp_millis()));
        e.record.insert(
            "SystemModstamp".into(),
            "2025-09-30T16:00:05.250+0000".into(),
        );
        assert_eq!(e.version(), Some(modified.timestamp_millis() + 5_250));
        e.occurred_at = Some("2025-09-30T16:01:00Z".parse().unwrap());
        assert_eq!(e.version(), Some(modified.timestamp_millis() + 60_000));
        e.record.clear();
        e.occurred_at = None;
        assert_eq!(e.version(), None);
    }

    #[test]
    fn dedupe_key_tells_apart_changes_with_one_timestamp_by_their_values() {
        let first = sample();
        // A later change saved within the same timestamp, touching the same fields.
        let mut later = sample();
        later.record.insert("Amount".into(), 250_000.into());
        assert_ne!(later.dedupe_key(), first.dedupe_key());
        // Without any timestamp, two different changes are still two.
        let mut bare = sample();
        bare.record.remove("LastModifiedDate");
        bare.occurred_at = None;
        let mut bare_later = bare.clone();
        bare_later
            .record
            .insert("StageName".into(), "Negotiation/Review".into());
        assert_ne!(bare_later.dedupe_key(), bare.dedupe_key());
        // An identical resend is the same change, whatever sfrelay stamped on it.
        let mut resend = first.clone();
        resend.id = "another-arrival".into();
        resend.received_at = Utc::now();
        assert_eq!(resend.dedupe_key(), first.dedupe_key());
        // The sender's own id stays the whole key: values do not enter it.
        let mut named = first.clone();
        named.event_id = Some("abc".into());
        let mut named_other_values = later.clone();
        named_other_values.event_id = Some("abc".into());
        assert_eq!(named_other_values.dedupe_key(), named.dedupe_key());
    }

    #[test]
    fn dedupe_key_changes_with_each_component() {
        let base = sample();
        let key = base.dedupe_key();
        let variants: Vec<fn(&mut Event)> = vec![
            |e| e.org_id = SalesforceId::parse("00D000000000001EAA").unwrap(),
            |e| e.object = "Account".into(),
            |e| e.record_id = SalesforceId::parse("006000000000001AAA").unwrap(),
            |e| e.change_type = ChangeType::Delete,
            |e| e.changed_fields = None,
            |e| e.changed_fields = Some(vec!["StageName".into()]),
            |e| {
                e.record
                    .insert("LastModifiedDate".into(), "2025-10-01".into());
            },
            |e| {
                e.record
                    .insert("SystemModstamp".into(), "2025-10-02".into());
                e.record.remove("LastModifiedDate");
            },
            |e| {
                e.record.remove("LastModifiedDate");
            },
            |e| e.event_id = Some("abc".into()),
        ];
        let mut seen = std::collections::HashSet::from([key]);
        for change in variants {
            let mut e = base.clone();
            change(&mut e);
            assert!(seen.insert(e.dedupe_key()), "{e:?}");
        }
        // occurred_at counts only when the record has no timestamp.
        let mut e = base.clone();
        e.record.remove("LastModifiedDate");
        let without = e.dedupe_key();
        e.occurred_at = Some("2025-10-01T00:00:00Z".parse().unwrap());
        assert_ne!(e.dedupe_key(), without);
        e.occurred_at = None;
        assert!(seen.insert(e.dedupe_key()));
    }
}
