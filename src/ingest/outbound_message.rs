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
mod tests;
