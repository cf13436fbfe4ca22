use apache_avro::types::Value as Datum;
use serde_json::json;

use super::*;

/// An Account change event schema shaped like Salesforce's: the header, then every field a
/// nullable union; a compound address, a name union holding a record, dates as documented
/// longs.
fn schema_json(with_region: bool) -> String {
    let region = if with_region {
        r#",{"name": "Region__c", "type": ["null", "string"], "default": null}"#
    } else {
        ""
    };
    format!(
        r#"{{
  "type": "record", "name": "AccountChangeEvent", "namespace": "com.sforce.eventbus",
  "fields": [
    {{"name": "ChangeEventHeader", "type": {{"type": "record", "name": "ChangeEventHeader", "fields": [
      {{"name": "entityName", "type": "string"}},
      {{"name": "recordIds", "type": {{"type": "array", "items": "string"}}}},
      {{"name": "changeType", "type": {{"type": "enum", "name": "ChangeType", "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]}}}},
      {{"name": "changeOrigin", "type": "string"}},
      {{"name": "transactionKey", "type": "string"}},
      {{"name": "sequenceNumber", "type": "int"}},
      {{"name": "commitTimestamp", "type": "long"}},
      {{"name": "commitNumber", "type": "long"}},
      {{"name": "commitUser", "type": "string"}},
      {{"name": "nulledFields", "type": {{"type": "array", "items": "string"}}}},
      {{"name": "diffFields", "type": {{"type": "array", "items": "string"}}}},
      {{"name": "changedFields", "type": {{"type": "array", "items": "string"}}}}
    ]}}}},
    {{"name": "Name", "type": ["null", "string", {{"type": "record", "name": "Switchable_PersonName", "fields": [
      {{"name": "FirstName", "type": ["null", "string"], "default": null}},
      {{"name": "LastName", "type": ["null", "string"], "default": null}}
    ]}}], "default": null}},
    {{"name": "Type", "type": ["null", "string"], "default": null}},
    {{"name": "AnnualRevenue", "type": ["null", "double"], "default": null}},
    {{"name": "BillingAddress", "type": ["null", {{"type": "record", "name": "Address", "fields": [
      {{"name": "Street", "type": ["null", "string"], "default": null}},
      {{"name": "City", "type": ["null", "string"], "default": null}}
    ]}}], "default": null}},
    {{"name": "SLAExpirationDate__c", "type": ["null", "long"], "doc": "Data:Date", "default": null}},
    {{"name": "LastModifiedDate", "type": ["null", "long"], "doc": "Audit:DateTime", "default": null}},
    {{"name": "ShippingAddress", "type": ["null", "Address"], "default": null}}{region}
  ]
}}"#
    )
}

fn strings(items: &[&str]) -> Datum {
    Datum::Array(items.iter().map(|s| Datum::String(s.to_string())).collect())
}

fn header(changed: &[&str], commit_number: i64) -> Datum {
    Datum::Record(vec![
        ("entityName".into(), Datum::String("Account".into())),
        ("recordIds".into(), strings(&["001000000000001AAA"])),
        ("changeType".into(), Datum::Enum(1, "UPDATE".into())),
        (
            "changeOrigin".into(),
            Datum::String("com/salesforce/api/rest/62.0;client=sfrelay".into()),
        ),
        ("transactionKey".into(), Datum::String("tx-1".into())),
        ("sequenceNumber".into(), Datum::Int(2)),
        ("commitTimestamp".into(), Datum::Long(1_759_248_000_000)),
        ("commitNumber".into(), Datum::Long(commit_number)),
        (
            "commitUser".into(),
            Datum::String("005000000000001AAA".into()),
        ),
        ("nulledFields".into(), strings(&["0x04"])),
        ("diffFields".into(), strings(&[])),
        ("changedFields".into(), strings(changed)),
    ])
}

fn null() -> Datum {
    Datum::Union(0, Box::new(Datum::Null))
}

fn some(index: u32, value: Datum) -> Datum {
    Datum::Union(index, Box::new(value))
}

fn datum(changed: &[&str], commit_number: i64, region: Option<&str>) -> Datum {
    let mut fields = vec![
        ("ChangeEventHeader".into(), header(changed, commit_number)),
        (
            "Name".into(),
            some(
                2,
                Datum::Record(vec![
                    ("FirstName".into(), null()),
                    ("LastName".into(), some(1, Datum::String("Lovelace".into()))),
                ]),
            ),
        ),
        ("Type".into(), null()),
        ("AnnualRevenue".into(), some(1, Datum::Double(1.5e6))),
        (
            "BillingAddress".into(),
            some(
                1,
                Datum::Record(vec![
                    ("Street".into(), null()),
                    ("City".into(), some(1, Datum::String("Paris".into()))),
                ]),
            ),
        ),
        (
            "SLAExpirationDate__c".into(),
            some(1, Datum::Long(1_759_190_400_000)),
        ),
        (
            "LastModifiedDate".into(),
            some(1, Datum::Long(1_759_248_000_000)),
        ),
        ("ShippingAddress".into(), null()),
    ];
    if let Some(region) = region {
        fields.push(("Region__c".into(), some(1, Datum::String(region.into()))));
    }
    Datum::Record(fields)
}

fn encode(schema_json: &str, datum: Datum) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema_json).unwrap();
    let mut out = Vec::new();
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value(&mut out, datum)
        .unwrap();
    out
}

#[test]
fn a_change_event_becomes_the_body_the_cdc_endpoint_takes() {
    let text = schema_json(false);
    let schema = Schema::parse(&text).unwrap();
    assert_eq!(schema.entity(), Some("Account"));
    let commit_number = (1_i64 << 53) + 1;
    let payload = encode(
        &text,
        datum(&["0x68", "4-0x02", "1-0x02"], commit_number, None),
    );
    let body = decode(&schema, &payload).unwrap();
    assert_eq!(
        Value::Object(body),
        json!({
            "ChangeEventHeader": {
                "entityName": "Account",
                "recordIds": ["001000000000001AAA"],
                "changeType": "UPDATE",
                "changeOrigin": "com/salesforce/api/rest/62.0;client=sfrelay",
                "transactionKey": "tx-1",
                "sequenceNumber": 2,
                "commitTimestamp": 1_759_248_000_000_i64,
                "commitNumber": commit_number,
                "commitUser": "005000000000001AAA",
                "nulledFields": ["Type"],
                "diffFields": [],
                "changedFields": ["AnnualRevenue", "SLAExpirationDate__c", "LastModifiedDate", "BillingAddress.City", "Name.LastName"]
            },
            "Name": {"LastName": "Lovelace"},
            "AnnualRevenue": 1.5e6,
            "BillingAddress": {"City": "Paris"},
            "SLAExpirationDate__c": "2025-09-30",
            "LastModifiedDate": "2025-09-30T16:00:00.000Z"
        })
    );
}

#[test]
fn two_schema_versions_decode_with_their_own_schema() {
    let old = schema_json(false);
    let new = schema_json(true);
    let old_schema = Schema::parse(&old).unwrap();
    let new_schema = Schema::parse(&new).unwrap();
    let before = decode(&old_schema, &encode(&old, datum(&["0x08"], 1, None))).unwrap();
    let after = decode(
        &new_schema,
        &encode(&new, datum(&["0x108"], 2, Some("EMEA"))),
    )
    .unwrap();
    assert_eq!(
        before["ChangeEventHeader"]["changedFields"],
        json!(["AnnualRevenue"])
    );
    assert_eq!(
        after["ChangeEventHeader"]["changedFields"],
        json!(["AnnualRevenue", "Region__c"])
    );
    assert_eq!(after["Region__c"], "EMEA");
    // The new field's position is past the old schema: read with the wrong one, it is flagged.
    let wrong = decode(&old_schema, &encode(&old, datum(&["0x108"], 3, None))).unwrap_err();
    assert!(matches!(wrong, DecodeError::Bitmap(_)), "{wrong}");
}

#[test]
fn a_payload_that_does_not_match_its_schema_is_an_error() {
    let schema = Schema::parse(&schema_json(false)).unwrap();
    assert!(matches!(
        decode(&schema, &[0xff, 0x01]),
        Err(DecodeError::Datum(_))
    ));
    assert!(Schema::parse("{\"type\": \"string\"}").is_err());
    assert!(Schema::parse("not json").is_err());
}

#[test]
fn a_kept_change_reads_again_into_the_same_events_as_when_it_arrived() {
    use crate::salesforce::pubsub::RawChange;
    let text = schema_json(false);
    let schema = Schema::parse(&text).unwrap();
    let payload = encode(&text, datum(&["0x68"], 7, None));
    let org = crate::event::SalesforceId::parse("00D5g000004ABCdEAO").unwrap();
    let now = chrono::Utc::now();
    let live = crate::salesforce::pubsub::change_read(&schema, &payload, &org, now).unwrap();
    let kept = RawChange {
        org: org.clone(),
        topic: "/data/AccountChangeEvent".into(),
        replay_id: "0a0b".into(),
        event_id: "e-1".into(),
        schema_id: "s-1".into(),
        schema: schema.json().to_owned(),
        payload: base64::engine::general_purpose::STANDARD.encode(&payload),
    };
    let again = kept.read(now).unwrap();
    assert_eq!(again.events.len(), 1);
    let (first, second) = (&live.events[0], &again.events[0]);
    assert_eq!(second.dedupe_key(), first.dedupe_key());
    assert_eq!(
        second.event_id.as_deref(),
        Some("cdc:tx-1:2:001000000000001AAA")
    );
    assert_eq!(second.record, first.record);
    // Bytes cut short stay unreadable, with the reason.
    let cut = RawChange {
        payload: base64::engine::general_purpose::STANDARD.encode(&payload[..10]),
        ..kept
    };
    assert!(
        cut.read(now)
            .unwrap_err()
            .contains("does not match its schema")
    );
}
