use super::*;
use serde_json::json;

const CLOSED_WON: &str = include_str!("../../../tests/fixtures/cdc-opportunity-closed-won.json");
const MULTI_RECORD: &str = include_str!("../../../tests/fixtures/cdc-multi-record.json");
const GAP: &str = include_str!("../../../tests/fixtures/cdc-gap.json");

fn org() -> SalesforceId {
    SalesforceId::parse("00D5g000004ABCdEAO").unwrap()
}

fn now() -> DateTime<Utc> {
    "2025-09-30T16:00:05Z".parse().unwrap()
}

fn parse(body: &Value) -> Result<CdcBatch, Vec<FieldError>> {
    parse_cdc_request(body.to_string().as_bytes(), &org(), now())
}

/// The paths of the errors `body` must produce.
fn error_paths(body: &Value) -> Vec<String> {
    parse(body)
        .unwrap_err()
        .into_iter()
        .map(|e| e.path)
        .collect()
}

fn closed_won() -> Value {
    serde_json::from_str(CLOSED_WON).unwrap()
}

/// The closed-won message with one header field replaced (or removed
/// when `value` is None).
fn with_header(field: &str, value: Option<Value>) -> Value {
    let mut body = closed_won();
    let header = body["payload"]["ChangeEventHeader"]
        .as_object_mut()
        .unwrap();
    match value {
        Some(value) => header.insert(field.into(), value),
        None => header.remove(field),
    };
    body
}

#[test]
fn closed_won_fixture_parses() {
    let batch = parse_cdc_request(CLOSED_WON.as_bytes(), &org(), now()).unwrap();
    assert!(batch.gaps.is_empty());
    assert_eq!(batch.events.len(), 1);
    let e = &batch.events[0];
    assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
    assert_eq!(e.org_id, org());
    assert_eq!(e.object, "Opportunity");
    assert_eq!(e.record_id.as_str(), "006Hs00000BkXyzIAF");
    assert_eq!(e.change_type, ChangeType::Update);
    assert_eq!(
        e.record,
        json!({
            "Id": "006Hs00000BkXyzIAF",
            "StageName": "Closed Won",
            "Amount": 75000,
            "CloseDate": "2025-09-30",
            "AccountId": "001Hs00000CmAbcIAF",
            "OwnerId": "005Hs00000DnDefIAF",
            "LastModifiedDate": "2025-09-30T16:00:00.000Z",
        })
        .as_object()
        .unwrap()
        .clone()
    );
    assert_eq!(
        e.changed_fields,
        Some(vec!["StageName".to_owned(), "LastModifiedDate".to_owned()])
    );
    assert_eq!(e.prior, None);
    assert_eq!(e.event_id.as_deref(), Some("cdc:184221:006Hs00000BkXyzIAF"));
    assert_eq!(e.occurred_at, Some("2024-09-30T16:00:00Z".parse().unwrap()));
    assert_eq!(e.received_at, now());
}

#[test]
fn bare_payload_uses_transaction_key_and_sequence() {
    let body = closed_won()["payload"].clone();
    let batch = parse(&body).unwrap();
    assert_eq!(
        batch.events[0].event_id.as_deref(),
        Some("cdc:0002343d-9d90-e395-ed20-cf416ba652ad:1:006Hs00000BkXyzIAF")
    );
    assert_eq!(batch.events[0].record["StageName"], "Closed Won");
}

#[test]
fn cometd_data_wrapper_is_unwrapped() {
    let body = json!({ "channel": "/data/OpportunityChangeEvent", "data": closed_won() });
    let batch = parse(&body).unwrap();
    assert_eq!(
        batch.events[0].event_id.as_deref(),
        Some("cdc:184221:006Hs00000BkXyzIAF")
    );
    let mut body = body;
    body["data"]["payload"]["ChangeEventHeader"]["recordIds"] = json!(["bad"]);
    assert_eq!(
        error_paths(&body),
        ["/data/payload/ChangeEventHeader/recordIds/0"]
    );
}

#[test]
fn replay_id_may_be_a_string() {
    let mut body = closed_won();
    body["event"]["replayId"] = json!("AAAAAAAAJgE=");
    let batch = parse(&body).unwrap();
    assert_eq!(
        batch.events[0].event_id.as_deref(),
        Some("cdc:AAAAAAAAJgE=:006Hs00000BkXyzIAF")
    );
    body["event"]["replayId"] = json!(1.5);
    assert_eq!(error_paths(&body), ["/event/replayId"]);
    body["event"] = json!(7);
    assert_eq!(error_paths(&body), ["/event"]);
    // Without a replay id the transaction key is the fallback.
    body.as_object_mut().unwrap().remove("event");
    assert!(
        parse(&body).unwrap().events[0]
            .event_id
            .as_deref()
            .unwrap()
            .starts_with("cdc:0002343d-")
    );
}

#[test]
fn multi_record_fixture_fans_out() {
    let batch = parse_cdc_request(MULTI_RECORD.as_bytes(), &org(), now()).unwrap();
    assert!(batch.gaps.is_empty());
    let ids: Vec<&str> = batch.events.iter().map(|e| e.record_id.as_str()).collect();
    // The 15-character spelling is normalised, and its repeat dropped.
    assert_eq!(
        ids,
        [
            "003Hs00000AbCdEIAV",
            "003Hs00000AbCdFIAV",
            "003Hs00000AbCdGIAV",
            "006Hs00000BkXyzIAF",
        ]
    );
    let contacts = &batch.events[..3];
    let mut own_ids = std::collections::HashSet::new();
    let mut keys = std::collections::HashSet::new();
    for e in contacts {
        assert_eq!(e.object, "Contact");
        assert_eq!(e.change_type, ChangeType::Update);
        assert_eq!(e.record["Id"], e.record_id.as_str());
        assert_eq!(e.record["Title"], "VP Sales");
        // Nulled fields become null, compound ones inside their object.
        assert_eq!(e.record["Phone"], Value::Null);
        assert_eq!(
            e.record["Name"],
            json!({ "LastName": "Rivera", "FirstName": null })
        );
        assert_eq!(
            e.changed_fields,
            Some(
                [
                    "Title",
                    "Name.FirstName",
                    "LastModifiedDate",
                    "Phone",
                    "Description"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            e.event_id.as_deref().unwrap(),
            format!("cdc:5120:{}", e.record_id)
        );
        assert!(own_ids.insert(e.id.clone()));
        assert!(keys.insert(e.dedupe_key()));
    }
    // A create lists no changed fields: "not known", not "none".
    let created = &batch.events[3];
    assert_eq!(created.change_type, ChangeType::Create);
    assert_eq!(created.changed_fields, None);
    assert_eq!(
        created.event_id.as_deref(),
        Some("cdc:0002343d-9d90-e395-ed20-cf416ba65300:3:006Hs00000BkXyzIAF")
    );
}

#[test]
fn gap_fixture_becomes_gap_events() {
    let batch = parse_cdc_request(GAP.as_bytes(), &org(), now()).unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.events[0].change_type, ChangeType::Delete);
    assert_eq!(
        batch.gaps,
        [
            GapEvent {
                org_id: org(),
                object: "Event".into(),
                record_ids: vec![
                    SalesforceId::parse("00Uxx000000fvRQEAY").unwrap(),
                    SalesforceId::parse("00Uxx000000fvRR").unwrap(),
                ],
                change_type: "GAP_UPDATE".into(),
                commit_timestamp: Some("2017-11-01T02:08:08.161Z".parse().unwrap()),
                transaction_key: Some("0Mcxx000000000B".into()),
            },
            GapEvent {
                org_id: org(),
                object: "Account".into(),
                record_ids: vec![],
                change_type: "GAP_OVERFLOW".into(),
                commit_timestamp: Some("2019-01-29T23:45:06.297Z".parse().unwrap()),
                transaction_key: Some("0002343d-9d90-e395-ed20-cf416ba652ad".into()),
            },
        ]
    );
    // Gap events round-trip through JSON, for the fetch task.
    let json = serde_json::to_string(&batch.gaps).unwrap();
    assert_eq!(
        serde_json::from_str::<Vec<GapEvent>>(&json).unwrap(),
        batch.gaps
    );
}

#[test]
fn gap_header_may_lack_what_data_events_need() {
    let body = json!({ "ChangeEventHeader": {
        "entityName": "Account", "changeType": "GAP_OVERFLOW"
    }});
    let gap = &parse(&body).unwrap().gaps[0];
    assert_eq!(
        (
            gap.record_ids.len(),
            gap.commit_timestamp,
            &gap.transaction_key
        ),
        (0, None, &None)
    );
    let body =
        json!({ "ChangeEventHeader": { "entityName": "Account", "changeType": "GAP_CREATE" }});
    assert_eq!(error_paths(&body), ["/ChangeEventHeader/recordIds"]);
}

#[test]
fn commit_number_above_2_pow_53_is_accepted_but_must_be_an_integer() {
    let batch = parse(&closed_won()).unwrap();
    assert_eq!(batch.events.len(), 1);
    for bad in [json!(1.5), json!("1727712000123456789"), json!(1e30)] {
        assert_eq!(
            error_paths(&with_header("commitNumber", Some(bad))),
            ["/payload/ChangeEventHeader/commitNumber"]
        );
    }
    // Beyond u64 serde_json (without arbitrary_precision) has only a
    // float: refused rather than rounded.
    let body = CLOSED_WON.replace("1727712000123456789", "99999999999999999999999");
    let errors = parse_cdc_request(body.as_bytes(), &org(), now()).unwrap_err();
    assert_eq!(errors[0].path, "/payload/ChangeEventHeader/commitNumber");
}

#[test]
fn bad_record_id_is_located() {
    let body = with_header(
        "recordIds",
        Some(json!([
            "006Hs00000BkXyzIAF",
            "006Hs00000BkXyz",
            "006Hs00000BkXyzIAA"
        ])),
    );
    let errors = parse(&body).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "/payload/ChangeEventHeader/recordIds/2");
    assert_eq!(
        errors[0].message,
        "invalid Salesforce Id: checksum suffix should be IAF"
    );

    let good = closed_won();
    let body = json!([good, good, good, body]);
    assert_eq!(
        error_paths(&body),
        ["/3/payload/ChangeEventHeader/recordIds/2"]
    );
}

#[test]
fn header_field_rules() {
    let cases = [
        ("entityName", None, "entityName"),
        ("entityName", Some(json!("Bad-Name")), "entityName"),
        ("changeType", None, "changeType"),
        ("changeType", Some(json!("update")), "changeType"),
        ("recordIds", None, "recordIds"),
        ("recordIds", Some(json!([])), "recordIds"),
        ("recordIds", Some(json!("006Hs00000BkXyzIAF")), "recordIds"),
        ("recordIds", Some(json!([5])), "recordIds/0"),
        ("commitTimestamp", None, "commitTimestamp"),
        (
            "commitTimestamp",
            Some(json!("2025-09-30")),
            "commitTimestamp",
        ),
        ("commitTimestamp", Some(json!(1.5)), "commitTimestamp"),
        ("transactionKey", Some(json!(5)), "transactionKey"),
        ("transactionKey", Some(json!("")), "transactionKey"),
        ("sequenceNumber", Some(json!(-1)), "sequenceNumber"),
        ("changeOrigin", Some(json!(1)), "changeOrigin"),
        ("commitUser", Some(json!([])), "commitUser"),
        ("changedFields", Some(json!("StageName")), "changedFields"),
        ("nulledFields", Some(json!(["A", 1])), "nulledFields/1"),
        ("diffFields", Some(json!({})), "diffFields"),
    ];
    for (field, value, path) in cases {
        assert_eq!(
            error_paths(&with_header(field, value.clone())),
            [format!("/payload/ChangeEventHeader/{path}")],
            "{field} = {value:?}"
        );
    }
    let errors = parse(&with_header("commitTimestamp", Some(json!(1.5)))).unwrap_err();
    assert_eq!(
        errors[0].message,
        "expected milliseconds since the Unix epoch (an integer), got 1.5"
    );
    // With a replay id, the transaction key and sequence are not needed.
    assert!(parse(&with_header("transactionKey", None)).is_ok());
    assert!(parse(&with_header("sequenceNumber", None)).is_ok());
    // Without one, they make the dedupe key.
    let mut bare = with_header("sequenceNumber", None)["payload"].clone();
    assert_eq!(error_paths(&bare), ["/ChangeEventHeader/sequenceNumber"]);
    bare["ChangeEventHeader"]
        .as_object_mut()
        .unwrap()
        .remove("transactionKey");
    assert_eq!(
        error_paths(&bare),
        [
            "/ChangeEventHeader/transactionKey",
            "/ChangeEventHeader/sequenceNumber"
        ]
    );
    // Unused lists and unknown header fields are fine.
    for field in [
        "changedFields",
        "nulledFields",
        "diffFields",
        "changeOrigin",
    ] {
        assert!(parse(&with_header(field, None)).is_ok(), "{field}");
    }
    assert!(parse(&with_header("futureField", Some(json!(1)))).is_ok());
}

#[test]
fn every_error_is_reported_at_once() {
    let mut body = closed_won();
    let header = body["payload"]["ChangeEventHeader"]
        .as_object_mut()
        .unwrap();
    header.insert("entityName".into(), json!(3));
    header.insert("changeType".into(), json!("MERGE"));
    header.insert("recordIds".into(), json!(["x", "y"]));
    let paths = error_paths(&body);
    assert_eq!(
        paths,
        [
            "/payload/ChangeEventHeader/entityName",
            "/payload/ChangeEventHeader/changeType",
            "/payload/ChangeEventHeader/recordIds/0",
            "/payload/ChangeEventHeader/recordIds/1",
        ]
    );
}

#[test]
fn body_shape_rules() {
    let errors = parse_cdc_request(b"{\"payload\": ", &org(), now()).unwrap_err();
    assert_eq!(errors[0].path, "");
    assert!(errors[0].message.starts_with("invalid JSON"), "{errors:?}");

    assert_eq!(error_paths(&json!("x")), [""]);
    assert_eq!(error_paths(&json!([])), [""]);
    assert_eq!(error_paths(&json!([closed_won(), 3])), ["/1"]);
    assert_eq!(error_paths(&json!({ "payload": 3 })), ["/payload"]);
    assert_eq!(
        error_paths(&json!({ "payload": {} })),
        ["/payload/ChangeEventHeader"]
    );
    assert_eq!(error_paths(&json!({})), ["/ChangeEventHeader"]);
    assert_eq!(
        error_paths(&json!({ "payload": { "ChangeEventHeader": [] } })),
        ["/payload/ChangeEventHeader"]
    );
}

#[test]
fn batch_limit_and_all_or_nothing() {
    let many = json!(vec![closed_won(); MAX_BATCH]);
    assert_eq!(parse(&many).unwrap().events.len(), MAX_BATCH);
    let too_many = json!(vec![closed_won(); MAX_BATCH + 1]);
    let errors = parse(&too_many).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "");
    assert_eq!(
        errors[0].message,
        "holds 201 change events; at most 200 allowed"
    );

    // One bad event rejects the whole body.
    let bad = with_header("changeType", Some(json!("NOPE")));
    assert_eq!(
        error_paths(&json!([closed_won(), bad])),
        ["/1/payload/ChangeEventHeader/changeType"]
    );
}

#[test]
fn delete_has_only_the_id() {
    let body = json!({ "ChangeEventHeader": {
        "entityName": "Opportunity", "changeType": "DELETE",
        "recordIds": ["006Hs00000BkXyz"], "commitTimestamp": 1727712000000u64,
        "transactionKey": "k", "sequenceNumber": 2,
        "changedFields": [], "nulledFields": [], "diffFields": []
    }});
    let e = &parse(&body).unwrap().events[0];
    assert_eq!(e.change_type, ChangeType::Delete);
    assert_eq!(
        e.record,
        *json!({ "Id": "006Hs00000BkXyzIAF" }).as_object().unwrap()
    );
    assert_eq!(e.changed_fields, None);
    assert_eq!(e.event_id.as_deref(), Some("cdc:k:2:006Hs00000BkXyzIAF"));
}

#[test]
fn set_null_handles_compounds() {
    let mut record = json!({ "Name": { "LastName": "R" }, "Addr": "x", "Gone": null })
        .as_object()
        .unwrap()
        .clone();
    for field in [
        "Name.FirstName",
        "Addr.Street",
        "Gone.City",
        "Plain",
        "",
        "A..B",
    ] {
        set_null(&mut record, field);
    }
    assert_eq!(
        Value::Object(record),
        json!({
            "Name": { "LastName": "R", "FirstName": null },
            "Addr": "x",
            "Gone": { "City": null },
            "Plain": null,
        })
    );
}
