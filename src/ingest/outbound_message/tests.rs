use super::*;
use serde_json::json;

const OPPORTUNITY: &str = include_str!("../../../tests/fixtures/outbound-message-opportunity.xml");
const THREE: &str = include_str!("../../../tests/fixtures/outbound-message-three.xml");

fn now() -> DateTime<Utc> {
    "2025-09-30T16:00:05Z".parse().unwrap()
}

fn parse(body: &str) -> Result<OutboundMessage, SoapError> {
    parse_outbound_message(body.as_bytes(), now())
}

/// A message around `notifications` (the XML of the Notification
/// elements).
fn message(notifications: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5g000004ABCdEAO</OrganizationId>
   <ActionId>04k5g000000TestAAA</ActionId>
   {notifications}
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#
    )
}

fn notification(id: &str, fields: &str) -> String {
    format!(
        r#"<Notification><Id>{id}</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{fields}</sObject></Notification>"#
    )
}

fn invalid_message(body: &str) -> String {
    match parse(body) {
        Err(SoapError::Invalid(message)) => message,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn xml_message(body: &[u8]) -> String {
    match parse_outbound_message(body, now()) {
        Err(SoapError::Xml(message)) => message,
        other => panic!("expected Xml, got {other:?}"),
    }
}

#[test]
fn opportunity_fixture_parses() {
    let message = parse(OPPORTUNITY).unwrap();
    assert_eq!(message.organization_id.as_str(), "00D5g000004ABCdEAO");
    assert_eq!(message.action_id, "04k5g000000TestAAA");
    assert_eq!(message.notifications.len(), 1);
    let n = &message.notifications[0];
    assert_eq!(n.id, "04l5g00000AbCdEAAA");
    let e = &n.event;
    assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
    assert_eq!(e.org_id, message.organization_id);
    assert_eq!(e.object, "Opportunity");
    assert_eq!(e.record_id.as_str(), "006Hs00000BkXyzIAF");
    assert_eq!(
        Value::Object(e.record.clone()),
        json!({
            "Id": "006Hs00000BkXyzIAF",
            "Amount": 75000,
            "CloseDate": "2025-09-30",
            "Name": "Acme Corp - Q3 Enterprise",
            "OwnerId": "005Hs00000DnDefIAF",
            "StageName": "Closed Won",
        })
    );
    assert!(e.record["Amount"].is_i64());
    assert_eq!(e.change_type, ChangeType::Update);
    assert_eq!(e.event_id.as_deref(), Some("om:04l5g00000AbCdEAAA"));
    assert_eq!(
        (&e.changed_fields, &e.prior, &e.occurred_at),
        (&None, &None, &None)
    );
    assert_eq!(e.received_at, now());
}

#[test]
fn three_notifications_with_nil_boolean_and_nested_objects() {
    let message = parse(THREE).unwrap();
    // The 15-character org Id is normalised.
    assert_eq!(message.organization_id.as_str(), "00D5g000004ABCdEAO");
    let ids: Vec<&str> = message
        .notifications
        .iter()
        .map(|n| n.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "04l5g00000AbCdEAAA",
            "04l5g00000AbCdFAAA",
            "04l5g00000AbCdGAAA"
        ]
    );

    let opportunity = &message.notifications[0].event;
    assert_eq!(opportunity.object, "Opportunity");
    assert_eq!(opportunity.record_id.as_str(), "006Hs00000BkXyzIAF");
    assert_eq!(
        Value::Object(opportunity.record.clone()),
        json!({
            "Id": "006Hs00000BkXyzIAF",
            "Account": {
                "Id": "001Hs00000CmAbcIAF",
                "Name": "Acme Corp & Sons",
                "AnnualRevenue": 15_000_000,
            },
            "AccountId": "001Hs00000CmAbcIAF",
            "Amount": 75000,
            "Discount__c": 12.5,
            "IsClosed": true,
            "IsWon": true,
            "CloseDate": "2025-09-30",
            "LastModifiedDate": "2025-09-30T16:00:00.000Z",
            "NextStep": null,
            "Name": "Acme Corp - Q3 Enterprise",
            "Owner": { "Email": "dana.seller@example.com", "Name": "Dana Seller" },
            "StageName": "Closed Won",
        })
    );

    let case = &message.notifications[1].event;
    assert_eq!(case.object, "Case");
    assert_eq!(
        Value::Object(case.record.clone()),
        json!({
            "Id": "500Hs00000EfGhiIAF",
            "CaseNumber": "00001026",
            "IsEscalated": false,
            "Priority": "High",
            "Subject": "Printer <on fire>",
            "Description": null,
            "Notes__c": "line 1\nline 2 \u{e9}",
        })
    );

    // Another prefix for the same namespace is the same thing.
    let invoice = &message.notifications[2].event;
    assert_eq!(invoice.object, "Invoice__c");
    assert_eq!(
        Value::Object(invoice.record.clone()),
        json!({
            "Id": "a015g00000XyZ12AAF",
            "Total__c": -1200,
            "Paid__c": false,
            "Due_Date__c": "2025-10-31",
            "Account__r": null,
            "Empty__c": "",
        })
    );

    let mut event_ids = std::collections::HashSet::new();
    for n in &message.notifications {
        assert_eq!(
            n.event.event_id.as_deref(),
            Some(format!("om:{}", n.id).as_str())
        );
        assert_eq!(n.event.change_type, ChangeType::Update);
        assert!(event_ids.insert(n.event.dedupe_key()));
    }
}

#[test]
fn number_rules() {
    let cases = [
        ("75000.0", Some(json!(75000))),
        ("0", Some(json!(0))),
        ("-0.0", Some(json!(0))),
        ("-12", Some(json!(-12))),
        ("0.25", Some(json!(0.25))),
        ("1.5E7", Some(json!(15_000_000))),
        ("1.0E-4", Some(json!(0.0001))),
        ("2.5e+3", Some(json!(2500))),
        (
            "123456789012345678",
            Some(json!(123_456_789_012_345_678_i64)),
        ),
        ("1.0E30", Some(json!(1.0e30))),
        ("007", None),
        ("00001026", None),
        (".5", None),
        ("5.", None),
        ("+5", None),
        ("1,000", None),
        ("1E", None),
        ("1E99999", None),
        ("2025-09-30", None),
        ("NaN", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(number(text).map(Value::Number), want, "{text}");
    }
}

#[test]
fn missing_parts_are_named() {
    let cases = [
        (
            message(&notification("", "<sf:Id>006Hs00000BkXyzIAF</sf:Id>")),
            "notifications/Notification[1] has no Id",
        ),
        (
            message("<Notification><Id>04l5g00000AbCdEAAA</Id></Notification>"),
            "notifications/Notification[1] has no sObject",
        ),
        (
            message(&notification("04l5g00000AbCdEAAA", "<sf:Name>x</sf:Name>")),
            "notifications/Notification[1]/sObject has no sf:Id",
        ),
        (
            message(&notification(
                "04l5g00000AbCdEAAA",
                "<sf:Id>006Hs00000BkXyzIAA</sf:Id>",
            )),
            "notifications/Notification[1]/sObject/sf:Id: invalid Salesforce Id: checksum suffix should be IAF",
        ),
        (
            message(
                "<Notification><Id>x</Id><sObject><Id>006Hs00000BkXyzIAF</Id></sObject></Notification>",
            ),
            "notifications/Notification[1]/sObject has no xsi:type",
        ),
        (message(""), "notifications holds no Notification"),
        (
            message(&notification("x", "<sf:Id>006Hs00000BkXyzIAF</sf:Id>"))
                .replace("<OrganizationId>00D5g000004ABCdEAO</OrganizationId>", ""),
            "notifications has no OrganizationId",
        ),
        (
            message(&notification("x", "<sf:Id>006Hs00000BkXyzIAF</sf:Id>"))
                .replace("00D5g000004ABCdEAO", "006Hs00000BkXyzIAF"),
            "notifications/OrganizationId: not an org Id (must start with 00D)",
        ),
        (
            message(&notification("x", "<sf:Id>006Hs00000BkXyzIAF</sf:Id>"))
                .replace("<ActionId>04k5g000000TestAAA</ActionId>", ""),
            "notifications has no ActionId",
        ),
        (
            message(&notification(
                &"x".repeat(201),
                "<sf:Id>006Hs00000BkXyzIAF</sf:Id>",
            )),
            "notifications/Notification[1]/Id is longer than 200 characters",
        ),
        (
            OPPORTUNITY.replace("http://soap.sforce.com/2005/09/outbound", "urn:other"),
            "the soapenv:Body has no notifications element in namespace http://soap.sforce.com/2005/09/outbound",
        ),
        (
            "<Envelope/>".into(),
            "the root element must be a SOAP 1.1 Envelope (http://schemas.xmlsoap.org/soap/envelope/), got <Envelope>",
        ),
        (
            r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>"#.into(),
            "the Envelope has no soapenv:Body",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(invalid_message(&body), want);
    }
    let second_bad = message(&format!(
        "{}{}",
        notification("a", "<sf:Id>006Hs00000BkXyzIAF</sf:Id>"),
        notification("b", "")
    ));
    assert_eq!(
        invalid_message(&second_bad),
        "notifications/Notification[2]/sObject has no sf:Id"
    );
}

#[test]
fn at_most_100_notifications() {
    let many = |count: usize| {
        message(
            &(0..count)
                .map(|i| notification(&format!("04l{i:015}"), "<sf:Id>006Hs00000BkXyzIAF</sf:Id>"))
                .collect::<String>(),
        )
    };
    assert_eq!(parse(&many(100)).unwrap().notifications.len(), 100);
    assert_eq!(
        invalid_message(&many(101)),
        "notifications holds 101 Notification elements; at most 100 allowed"
    );
}

#[test]
fn malformed_xml_is_refused() {
    let truncated = OPPORTUNITY.split("</soapenv:Body>").next().unwrap();
    let cases: [(&[u8], &str); 11] = [
        (
            b"<soapenv:Envelope xmlns:soapenv=\"x\"><a></b></soapenv:Envelope>",
            "expected `</a>`",
        ),
        (
            &OPPORTUNITY.as_bytes()[..OPPORTUNITY.len() - 5],
            "not closed",
        ),
        (truncated.as_bytes(), "the body ends inside <soapenv:Body>"),
        (b"", "holds no element"),
        (b"just text", "text outside the root"),
        (b"<a/><b/>", "follows the root element"),
        (b"<a>&xxe;</a>", "undefined entity &xxe;"),
        (b"<a>&#0;</a>", "invalid character reference &#0;"),
        (b"<x:a/>", "undeclared namespace prefix"),
        (b"<a>\xff</a>", "not UTF-8"),
        (b"<a b=\"1\" b=\"2\"/>", "bad attribute"),
    ];
    for (body, want) in cases {
        let message = xml_message(body);
        assert!(message.contains(want), "{want:?} not in {message:?}");
    }
    let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
    assert!(xml_message(deep.as_bytes()).contains("deeper than 32"));
}

#[test]
fn doctype_and_entities_are_refused() {
    let xxe = OPPORTUNITY.replace(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#,
    )
    .replace("Closed Won", "&xxe;");
    assert_eq!(
        xml_message(xxe.as_bytes()),
        "DOCTYPE declarations are not allowed in SOAP messages"
    );
    let error = parse(&xxe).unwrap_err();
    assert_eq!(
        error.to_string(),
        "malformed XML: DOCTYPE declarations are not allowed in SOAP messages"
    );
}

#[test]
fn foreign_fields_are_skipped_and_bom_accepted() {
    let body = format!(
        "\u{feff}{}",
        message(&notification(
            "x",
            r#"<sf:Id>006Hs00000BkXyzIAF</sf:Id><other xmlns="urn:x">1</other><!-- c --><sf:Name>N</sf:Name>"#
        ))
    );
    let event = &parse(&body).unwrap().notifications[0].event;
    assert_eq!(
        Value::Object(event.record.clone()),
        json!({ "Id": "006Hs00000BkXyzIAF", "Name": "N" })
    );
}

#[test]
fn ack_is_well_formed_and_what_salesforce_expects() {
    let ack = ack_response();
    let root = parse_document(ack.as_bytes()).unwrap();
    assert!(root.is(SOAP_ENV_NS, "Envelope"));
    let response = root
        .child(SOAP_ENV_NS, "Body")
        .unwrap()
        .child(OUTBOUND_NS, "notificationsResponse")
        .unwrap();
    assert_eq!(response.child(OUTBOUND_NS, "Ack").unwrap().text, "true");
}

#[test]
fn faults_are_well_formed_and_escaped() {
    let message = "bad <Id> & \"quotes\" 'x' \u{0}\u{1b} é\nend";
    for (client, code) in [(true, "soapenv:Client"), (false, "soapenv:Server")] {
        let fault = fault_response(client, message);
        let root = parse_document(fault.as_bytes()).unwrap();
        let fault = root
            .child(SOAP_ENV_NS, "Body")
            .unwrap()
            .child(SOAP_ENV_NS, "Fault")
            .unwrap();
        // faultcode and faultstring are unqualified, as SOAP 1.1 says.
        let faultcode = fault
            .children
            .iter()
            .find(|c| c.local == "faultcode")
            .unwrap();
        assert_eq!(faultcode.namespace, None);
        assert_eq!(faultcode.text, code);
        let faultstring = fault
            .children
            .iter()
            .find(|c| c.local == "faultstring")
            .unwrap();
        assert_eq!(
            faultstring.text,
            "bad <Id> & \"quotes\" 'x' \u{fffd}\u{fffd} é\nend"
        );
    }
}

#[test]
fn error_messages() {
    assert_eq!(
        SoapError::Invalid("notifications has no ActionId".into()).to_string(),
        "invalid Outbound Message: notifications has no ActionId"
    );
    assert!(
        xml_message(b"<a></b>").starts_with("ill-formed document"),
        "{}",
        xml_message(b"<a></b>")
    );
}
