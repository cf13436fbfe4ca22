//! Parsing of Salesforce Outbound Messages (SOAP 1.1) and the answers
//! Salesforce expects back.
//!
//! An Outbound Message is a `notifications` call holding up to 100
//! `Notification`s, each the fields of one record. The body is first read
//! into a small namespace-resolved element tree (quick-xml's `NsReader`), so
//! names are matched by namespace URI rather than by whatever prefix the
//! sender picked, and only then walked. DOCTYPEs are refused outright: SOAP
//! forbids them, and refusing them closes the door on entity expansion (XXE,
//! "billion laughs") whatever the XML library does.
//!
//! Salesforce keeps resending a message until it gets the exact
//! [`ack_response`], so the caller acks only after a durable write, and
//! answers [`fault_response`] otherwise.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use quick_xml::NsReader;
use quick_xml::XmlVersion;
use quick_xml::escape::{escape, resolve_xml_entity};
use quick_xml::events::{BytesRef, BytesStart, Event as XmlEvent};
use quick_xml::name::{Namespace, NamespaceResolver, QName, ResolveResult};
use serde_json::{Map, Number, Value};

use crate::event::{ChangeType, Event, SalesforceId};

/// SOAP 1.1, the only envelope Salesforce sends.
const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The `notifications` call and its parts.
const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
/// The record fields (`sf:` in Salesforce's messages).
const SOBJECT_NS: &str = "urn:sobject.enterprise.soap.sforce.com";
/// `xsi:type` and `xsi:nil`.
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Most notifications one message may hold: Salesforce's own limit, so more
/// means the body is not from Salesforce.
pub const MAX_NOTIFICATIONS: usize = 100;

/// Deepest element nesting accepted. A message is five levels deep plus one
/// per related object; the limit keeps a hostile body from exhausting the
/// stack of the recursive walk.
const MAX_DEPTH: usize = 32;

/// Longest notification Id accepted, so `om:<Id>` stays a valid event id
/// (at most 255 characters).
const MAX_NOTIFICATION_ID: usize = 200;

/// A parsed Outbound Message: who sent it and one event per notification.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The sending org, to check against the credential the URL token
    /// belongs to.
    pub organization_id: SalesforceId,
    /// The workflow rule or flow action that sent the message, for logs
    /// when an admin asks "which rule sent this?".
    pub action_id: String,
    /// One per `Notification`, in message order.
    pub notifications: Vec<Notification>,
}

/// One `Notification` of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The notification Id: the dedupe key, since Salesforce resends the
    /// same notification (same Id) until acknowledged. NOT
    /// checksum-validated: it is opaque, and refusing a retry over a
    /// checksum would make Salesforce retry for 24 hours.
    pub id: String,
    /// The record change the notification carries.
    pub event: Event,
}

/// Why a body is not an Outbound Message; the caller answers a SOAP fault
/// with the message.
#[derive(Debug, thiserror::Error)]
pub enum SoapError {
    /// The body is not well-formed XML (or is refused XML, like a DOCTYPE).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// Well-formed XML but not a valid Outbound Message; the text names the
    /// element.
    #[error("invalid Outbound Message: {0}")]
    Invalid(String),
}

/// Parses a `notifications` SOAP call into one event per notification.
///
/// Each event has `change_type` UPDATE, because an Outbound Message does not
/// say what happened (the rule that fires it may run on create or edit);
/// `event_id` is `om:<notification Id>`, so Salesforce's resends
/// deduplicate; `occurred_at` is None because the message carries no time
/// of its own (templates can use the record's `LastModifiedDate`).
///
/// Field values are typed by their text, because the message carries no
/// types for plain fields: `true`/`false` become booleans, plain decimals
/// (and Java's `1.5E7` form, which Salesforce uses for large doubles) become
/// numbers (integral values as integers: `75000.0` → 75000),
/// `xsi:nil="true"` becomes null, related objects become nested objects, and
/// everything else, dates included, stays a string. Numbers with a leading
/// zero (`00001026`) and fields named `Id` or ending in `Id` stay strings,
/// since those are codes, not quantities.
pub fn parse_outbound_message(
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<OutboundMessage, SoapError> {
    let root = parse_document(body)?;
    if !root.is(SOAP_ENV_NS, "Envelope") {
        return Err(invalid(format!(
            "the root element must be a SOAP 1.1 Envelope ({SOAP_ENV_NS}), got <{}>",
            root.qname
        )));
    }
    let body = root
        .child(SOAP_ENV_NS, "Body")
        .ok_or_else(|| invalid("the Envelope has no soapenv:Body"))?;
    let notifications = body.child(OUTBOUND_NS, "notifications").ok_or_else(|| {
        invalid(format!(
            "the soapenv:Body has no notifications element in namespace {OUTBOUND_NS}"
        ))
    })?;

    let organization_id = notifications
        .child(OUTBOUND_NS, "OrganizationId")
        .ok_or_else(|| invalid("notifications has no OrganizationId"))?;
    let organization_id = SalesforceId::parse(organization_id.text.trim()).map_err(|e| {
        invalid(format!(
            "notifications/OrganizationId: invalid Salesforce Id: {e}"
        ))
    })?;
    if organization_id.key_prefix() != "00D" {
        return Err(invalid(
            "notifications/OrganizationId: not an org Id (must start with 00D)",
        ));
    }
    let action_id = notifications
        .child(OUTBOUND_NS, "ActionId")
        .map(|e| e.text.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("notifications has no ActionId"))?
        .to_owned();

    let list: Vec<&Element> = notifications
        .children
        .iter()
        .filter(|e| e.is(OUTBOUND_NS, "Notification"))
        .collect();
    if list.len() > MAX_NOTIFICATIONS {
        return Err(invalid(format!(
            "notifications holds {} Notification elements; at most {MAX_NOTIFICATIONS} allowed",
            list.len()
        )));
    }
    if list.is_empty() {
        return Err(invalid("notifications holds no Notification"));
    }
    let notifications = list
        .into_iter()
        .enumerate()
        .map(|(i, n)| parse_notification(n, i + 1, &organization_id, received_at))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OutboundMessage {
        organization_id,
        action_id,
        notifications,
    })
}

/// Turns the `index`th (1-based, as in XPath) `Notification` into an event.
fn parse_notification(
    notification: &Element,
    index: usize,
    org_id: &SalesforceId,
    received_at: DateTime<Utc>,
) -> Result<Notification, SoapError> {
    let at = format!("notifications/Notification[{index}]");
    let id = notification
        .child(OUTBOUND_NS, "Id")
        .map(|e| e.text.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(format!("{at} has no Id")))?;
    if id.chars().count() > MAX_NOTIFICATION_ID {
        return Err(invalid(format!(
            "{at}/Id is longer than {MAX_NOTIFICATION_ID} characters"
        )));
    }
    let sobject = notification
        .child(OUTBOUND_NS, "sObject")
        .ok_or_else(|| invalid(format!("{at} has no sObject")))?;
    let object = sobject
        .xsi_type
        .as_ref()
        .ok_or_else(|| invalid(format!("{at}/sObject has no xsi:type")))?
        .local
        .clone();
    if !is_api_name(&object) {
        return Err(invalid(format!(
            "{at}/sObject: xsi:type {object:?} is not an sObject API name"
        )));
    }

    let mut record = fields(sobject);
    let raw_id = sobject
        .child(SOBJECT_NS, "Id")
        .filter(|e| !e.nil)
        .ok_or_else(|| invalid(format!("{at}/sObject has no sf:Id")))?;
    let record_id = SalesforceId::parse(raw_id.text.trim())
        .map_err(|e| invalid(format!("{at}/sObject/sf:Id: invalid Salesforce Id: {e}")))?;
    record.insert("Id".into(), Value::String(record_id.as_str().into()));

    Ok(Notification {
        id: id.to_owned(),
        event: Event {
            id: uuid::Uuid::now_v7().to_string(),
            org_id: org_id.clone(),
            object,
            record_id,
            record,
            change_type: ChangeType::Update,
            changed_fields: None,
            prior: None,
            event_id: Some(format!("om:{id}")),
            occurred_at: None,
            received_at,
        },
    })
}

/// The fields of an sObject (or of a related object inside one). Children
/// in other namespaces are not fields and are skipped.
fn fields(element: &Element) -> Map<String, Value> {
    element
        .children
        .iter()
        .filter(|child| child.namespace.as_deref() == Some(SOBJECT_NS))
        .map(|child| (child.local.clone(), field_value(child)))
        .collect()
}

/// One field's JSON value; see [`parse_outbound_message`] for the rules.
fn field_value(element: &Element) -> Value {
    if element.nil {
        return Value::Null;
    }
    let typed_as_sobject = element
        .xsi_type
        .as_ref()
        .is_some_and(|t| t.namespace.as_deref() == Some(SOBJECT_NS));
    if !element.children.is_empty() || typed_as_sobject {
        return Value::Object(fields(element));
    }
    let text = element.text.as_str();
    if element.local.ends_with("Id") {
        return Value::String(text.into());
    }
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => number(text).map_or_else(|| Value::String(text.into()), Value::Number),
    }
}

/// `text` as a JSON number when it is a plain decimal (`-12`, `75000.0`,
/// `0.25`) or Java's scientific form (`1.5E7`), integral values as
/// integers; None for anything else, including leading-zero codes.
fn number(text: &str) -> Option<Number> {
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['E', 'e']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (mantissa.contains('.') && !all_digits(frac)) {
        return None;
    }
    // "007" is a code, not seven.
    if int.len() > 1 && int.starts_with('0') {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !all_digits(digits) || digits.len() > 4 {
                return None;
            }
            e.parse().ok()?
        }
    };

    // The value is significand × 10^scale; exact integer arithmetic on the
    // digits decides whether it is integral, with no float in between.
    let digits = format!("{int}{frac}");
    let significand = digits.trim_end_matches('0');
    let scale = exponent - frac.len() as i64 + (digits.len() - significand.len()) as i64;
    let significand = significand.trim_start_matches('0');
    if significand.is_empty() {
        return Some(Number::from(0));
    }
    if scale >= 0 && significand.len() as i64 + scale <= 18 {
        let sign = if negative { "-" } else { "" };
        let integer = format!("{sign}{significand}{}", "0".repeat(scale as usize));
        return integer.parse::<i64>().ok().map(Number::from);
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// The SOAP answer Salesforce expects after a durable write; anything else
/// (even a 200 with another body) makes it resend the message.
pub fn ack_response() -> String {
    concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
        "<soapenv:Body>",
        r#"<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
        "<Ack>true</Ack>",
        "</notificationsResponse>",
        "</soapenv:Body>",
        "</soapenv:Envelope>",
    )
    .to_owned()
}

/// A SOAP 1.1 fault, which Salesforce answers by retrying with back-off
/// for up to 24 hours; `client_error` picks `soapenv:Client` (the message
/// itself is wrong, so an admin must fix the sender) over `soapenv:Server`
/// (try again later). Characters XML 1.0 cannot carry are replaced so the
/// fault is always well-formed.
pub fn fault_response(client_error: bool, message: &str) -> String {
    let code = if client_error {
        "soapenv:Client"
    } else {
        "soapenv:Server"
    };
    let printable: String = message
        .chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => '\u{fffd}',
            _ => c,
        })
        .collect();
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
            "<soapenv:Body>",
            "<soapenv:Fault>",
            "<faultcode>{code}</faultcode>",
            "<faultstring>{message}</faultstring>",
            "</soapenv:Fault>",
            "</soapenv:Body>",
            "</soapenv:Envelope>",
        ),
        code = code,
        message = escape(printable.as_str()),
    )
}

/// One element of the parsed document, names resolved to namespace URIs.
#[derive(Debug)]
struct Element {
    /// The namespace URI, None when unbound.
    namespace: Option<String>,
    /// The local name.
    local: String,
    /// The name as written, for error messages.
    qname: String,
    /// `xsi:type`, resolved like an element name.
    xsi_type: Option<TypeName>,
    /// `xsi:nil="true"`.
    nil: bool,
    /// The text content, entities and CDATA resolved.
    text: String,
    children: Vec<Element>,
}

/// An `xsi:type` value (a QName) resolved against the namespaces in scope.
#[derive(Debug)]
struct TypeName {
    namespace: Option<String>,
    local: String,
}

impl Element {
    /// Whether this element is `local` in `namespace`.
    fn is(&self, namespace: &str, local: &str) -> bool {
        self.namespace.as_deref() == Some(namespace) && self.local == local
    }

    /// The first child named `local` in `namespace`.
    fn child(&self, namespace: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(namespace, local))
    }
}

/// Reads `body` into an element tree, refusing anything that is not one
/// well-formed, UTF-8, DOCTYPE-free XML document.
fn parse_document(body: &[u8]) -> Result<Element, SoapError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| SoapError::Xml(format!("the body is not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| SoapError::Xml(format!("{e} (near byte {})", reader.error_position())))?;
        match event {
            XmlEvent::DocType(_) => {
                return Err(SoapError::Xml(
                    "DOCTYPE declarations are not allowed in SOAP messages".into(),
                ));
            }
            XmlEvent::Start(start) => {
                let element = open(reader.resolver(), &start, &stack, &root)?;
                stack.push(element);
            }
            XmlEvent::Empty(start) => {
                let element = open(reader.resolver(), &start, &stack, &root)?;
                close(element, &mut stack, &mut root);
            }
            XmlEvent::End(_) => {
                // quick-xml has already checked the end tag matches.
                let element = stack
                    .pop()
                    .ok_or_else(|| SoapError::Xml("end tag without a start tag".into()))?;
                close(element, &mut stack, &mut root);
            }
            XmlEvent::Text(text) => append(&mut stack, &text.xml10_content())?,
            XmlEvent::CData(data) => append(&mut stack, &data.xml10_content())?,
            XmlEvent::GeneralRef(reference) => append(&mut stack, &resolve(&reference)?)?,
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(SoapError::Xml(format!(
            "the body ends inside <{}>",
            open.qname
        )));
    }
    root.ok_or_else(|| SoapError::Xml("the body holds no element".into()))
}

/// Builds the element a start tag opens, with its namespaces resolved.
fn open(
    resolver: &NamespaceResolver,
    start: &BytesStart<'_>,
    stack: &[Element],
    root: &Option<Element>,
) -> Result<Element, SoapError> {
    let qname = start.name().as_ref().to_owned();
    if stack.is_empty() && root.is_some() {
        return Err(SoapError::Xml(format!(
            "<{qname}> follows the root element; a document has one"
        )));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(SoapError::Xml(format!(
            "elements nest deeper than {MAX_DEPTH} levels"
        )));
    }
    let (namespace, local) = resolver.resolve_element(start.name());
    let namespace = bound(namespace, &qname)?;
    let mut element = Element {
        namespace,
        local: local.as_ref().to_owned(),
        qname,
        xsi_type: None,
        nil: false,
        text: String::new(),
        children: Vec::new(),
    };
    for attribute in start.attributes() {
        let attribute = attribute
            .map_err(|e| SoapError::Xml(format!("bad attribute in <{}>: {e}", element.qname)))?;
        let (namespace, local) = resolver.resolve_attribute(attribute.key);
        if !matches!(namespace, ResolveResult::Bound(Namespace(XSI_NS))) {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| SoapError::Xml(format!("bad attribute in <{}>: {e}", element.qname)))?;
        let value = value.trim();
        match local.as_ref() {
            "nil" => element.nil = value == "true" || value == "1",
            "type" => {
                // A QName value: its prefix resolves like an element's.
                let (namespace, local) = resolver.resolve_element(QName(value));
                element.xsi_type = Some(TypeName {
                    namespace: bound(namespace, value)?,
                    local: local.as_ref().to_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(element)
}

/// The namespace URI of a resolved name, or an error for an undeclared
/// prefix (not namespace-well-formed).
fn bound(result: ResolveResult<'_>, name: &str) -> Result<Option<String>, SoapError> {
    match result {
        ResolveResult::Bound(Namespace(uri)) => Ok(Some(uri.to_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(SoapError::Xml(format!(
            "{name:?} uses the undeclared namespace prefix {prefix:?}"
        ))),
    }
}

/// Attaches a finished element to its parent, or makes it the root.
fn close(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Adds text to the open element; outside the root only whitespace may
/// appear.
fn append(stack: &mut [Element], text: &str) -> Result<(), SoapError> {
    match stack.last_mut() {
        Some(open) => {
            open.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(SoapError::Xml("text outside the root element".into())),
    }
}

/// A character reference or one of XML's five predefined entities; any
/// other entity would need a DTD, which is refused.
fn resolve(reference: &BytesRef<'_>) -> Result<Cow<'static, str>, SoapError> {
    let name = reference.xml10_content();
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(Cow::Owned(c.to_string())),
            _ => Err(SoapError::Xml(format!(
                "invalid character reference &{name};"
            ))),
        };
    }
    resolve_xml_entity(&name)
        .map(Cow::Borrowed)
        .ok_or_else(|| SoapError::Xml(format!("undefined entity &{name};")))
}

/// Letters, digits and underscores, starting with a letter, at most 80
/// characters: the shape of every sObject API name.
fn is_api_name(name: &str) -> bool {
    name.len() <= 80
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Builds a [`SoapError::Invalid`].
fn invalid(message: impl Into<String>) -> SoapError {
    SoapError::Invalid(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPPORTUNITY: &str = include_str!("../../tests/fixtures/outbound-message-opportunity.xml");
    const THREE: &str = include_str!("../../tests/fixtures/outbound-message-three.xml");

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
                    .map(|i| {
                        notification(&format!("04l{i:015}"), "<sf:Id>006Hs00000BkXyzIAF</sf:Id>")
                    })
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
}
