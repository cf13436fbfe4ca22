//! What templates and route conditions can use: the variables of one event (`record`,
//! `prior`, `changed_fields`, extra data…), the functions (`changed`, `became`, `was`,
//! `slack_user`, `sf_url`) and filters (`money`, `date`, `datetime`), and the minijinja
//! environment they are all compiled in, which escapes every printed value for mrkdwn.
//!
//! Apart from the parser and the Block Kit compiler because it is about an event's data, not a
//! template's structure: route conditions and expressions use it without any template.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Object, ObjectRepr, ValueKind};
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior, Value,
};

use super::mrkdwn::escape;
use crate::event::{ChangeType, Event};

/// Name of the auto-escape mode every template renders in.
const MRKDWN: &str = "mrkdwn";

/// Context key of the per-render [`Scope`] the helpers read; not meant for template authors.
const SCOPE_KEY: &str = "__sfrelay__";

/// Rendering options fixed at load time.
///
/// They are baked into the filters when the templates are compiled, so one process renders
/// every message the same way and a render call cannot forget them.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Zone the `date` and `datetime` filters show times in (Salesforce sends UTC).
    pub time_zone: Tz,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { time_zone: Tz::UTC }
    }
}

/// Everything a template can see.
///
/// Borrowed, so a render costs no copy of the event; the caller keeps ownership and can render
/// again after resolving `wanted_emails`.
pub struct RenderContext<'a> {
    /// The change being announced.
    pub event: &'a Event,
    /// The org's instance URL (`https://acme.my.salesforce.com`) for record links; None when not configured.
    pub instance_url: Option<&'a str>,
    /// Emails already resolved to Slack user ids (keys lowercase).
    pub users: &'a HashMap<String, String>,
    /// Extra top-level variables (enrichment results, digest rows…); a JSON object or Null.
    pub extra: &'a serde_json::Value,
}

/// The variables of one render (or one loop iteration), as a map and as the minijinja value
/// built from it.
pub(super) struct Vars {
    map: BTreeMap<String, Value>,
    /// The variables as the context a template renders in.
    pub(super) value: Value,
    scope: Arc<Scope>,
}

impl Vars {
    /// The variables of one render of `ctx`.
    pub(super) fn new(ctx: &RenderContext<'_>) -> Self {
        let event = ctx.event;
        let record = Value::from(
            event
                .record
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        );
        let prior = event.prior.as_ref().map(|prior| {
            Value::from(
                prior
                    .iter()
                    .map(|(k, v)| (k.clone(), to_value(v)))
                    .collect::<BTreeMap<String, Value>>(),
            )
        });
        let scope = Arc::new(Scope {
            record: record.clone(),
            prior: prior.clone(),
            changed_fields: event.changed_fields.clone(),
            change_type: event.change_type,
            object: event.object.clone(),
            org: event.org_id.as_str().to_owned(),
            instance_url: ctx.instance_url.map(str::to_owned),
            users: ctx.users.clone(),
            wanted: Mutex::new(BTreeSet::new()),
        });
        let mut map = BTreeMap::new();
        // Extra first, so it cannot shadow the event's own variables.
        if let serde_json::Value::Object(extra) = ctx.extra {
            for (k, v) in extra {
                map.insert(k.clone(), to_value(v));
            }
        }
        let time = |t: &chrono::DateTime<chrono::Utc>| {
            Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        };
        map.insert("record".into(), record);
        if let Some(prior) = prior {
            map.insert("prior".into(), prior);
        } else {
            map.remove("prior");
        }
        match &event.changed_fields {
            Some(fields) => {
                map.insert(
                    "changed_fields".into(),
                    fields.iter().map(Value::from).collect(),
                );
            }
            None => {
                map.remove("changed_fields");
            }
        }
        map.insert("org_id".into(), Value::from(event.org_id.as_str()));
        map.insert("object".into(), Value::from(event.object.as_str()));
        map.insert(
            "change_type".into(),
            Value::from(event.change_type.as_str()),
        );
        match &event.event_id {
            Some(id) => map.insert("event_id".into(), Value::from(id.as_str())),
            None => map.remove("event_id"),
        };
        map.insert("id".into(), Value::from(event.id.as_str()));
        match &event.occurred_at {
            Some(t) => map.insert("occurred_at".into(), time(t)),
            None => map.remove("occurred_at"),
        };
        map.insert("received_at".into(), time(&event.received_at));
        map.insert(SCOPE_KEY.into(), Value::from_dyn_object(Arc::clone(&scope)));
        let value = Value::from(map.clone());
        Self { map, value, scope }
    }

    /// These variables plus `bindings` (a loop's item and `loop`).
    pub(super) fn with(&self, bindings: &[(&str, Value)]) -> Self {
        let mut map = self.map.clone();
        for (k, v) in bindings {
            map.insert((*k).to_owned(), v.clone());
        }
        let value = Value::from(map.clone());
        Self {
            map,
            value,
            scope: Arc::clone(&self.scope),
        }
    }

    /// The emails `slack_user()` could not resolve, in this render so far.
    pub(super) fn wanted(&self) -> BTreeSet<String> {
        self.scope.wanted()
    }
}

/// What the helpers need from the event, plus the emails `slack_user()` could not resolve.
///
/// Reached through a context variable rather than the `record`/`prior` variables so a loop
/// binding `as: record` cannot change what `changed()` sees.
#[derive(Debug)]
struct Scope {
    record: Value,
    prior: Option<Value>,
    changed_fields: Option<Vec<String>>,
    change_type: ChangeType,
    object: String,
    org: String,
    instance_url: Option<String>,
    users: HashMap<String, String>,
    wanted: Mutex<BTreeSet<String>>,
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl Scope {
    fn wanted(&self) -> BTreeSet<String> {
        self.wanted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Value of `field` in `map`; None when the map lacks it.
    fn field(map: &Value, field: &str) -> Option<Value> {
        map.get_attr(field).ok().filter(|v| !v.is_undefined())
    }

    fn changed(&self, field: &str) -> bool {
        if let Some(fields) = &self.changed_fields {
            return fields.iter().any(|f| f == field);
        }
        if let Some(before) = self.prior.as_ref().and_then(|p| Self::field(p, field)) {
            let now = Self::field(&self.record, field).unwrap_or_else(|| Value::from(()));
            return before != now;
        }
        // Neither list nor prior value: we cannot tell, and a missed alert is worse than an
        // extra one.
        !matches!(self.change_type, ChangeType::Delete)
    }

    fn became(&self, field: &str, value: &Value) -> bool {
        let now_equal = Self::field(&self.record, field).is_some_and(|v| &v == value);
        let was_equal = self
            .prior
            .as_ref()
            .and_then(|p| Self::field(p, field))
            .is_some_and(|v| &v == value);
        now_equal && !was_equal && self.changed(field)
    }
}

fn scope(state: &State) -> Result<Arc<Scope>, Error> {
    state
        .lookup(SCOPE_KEY)
        .and_then(|v| v.downcast_object::<Scope>())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "this helper needs an event to look at",
            )
        })
}

/// JSON data as a template value (numbers keep their integer/float kind).
fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => items.iter().map(to_value).collect(),
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// The environment every template and condition is compiled in.
pub(super) fn environment(options: &RenderOptions) -> Environment<'static> {
    let mut env = Environment::new();
    // `record.Account.Name` on a record without an Account renders empty instead of failing.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|_| AutoEscape::Custom(Cow::Borrowed(MRKDWN)));
    env.set_formatter(mrkdwn_formatter);
    // Statements on their own lines in multi-line YAML strings leave no blank lines; a
    // trailing newline is kept so templated and literal strings come out the same.
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build();
    if let Ok(syntax) = syntax {
        env.set_syntax(syntax);
    }
    let tz = options.time_zone;
    env.add_function("changed", changed);
    env.add_function("became", became);
    env.add_function("was", was);
    env.add_function("slack_user", slack_user);
    env.add_function("sf_url", sf_url);
    env.add_function("action", action);
    env.add_filter("sf_url", sf_url);
    env.add_filter("money", money);
    env.add_filter("date", move |value: Value| format_when(value, tz, false));
    env.add_filter("datetime", move |value: Value| format_when(value, tz, true));
    env
}

/// Escapes every printed value for mrkdwn unless it is a safe string; none prints as nothing.
fn mrkdwn_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    if value.is_safe() || !matches!(state.auto_escape(), AutoEscape::Custom(_)) {
        // Safe strings, or `{% autoescape false %}` written by the admin.
        return minijinja::escape_formatter(out, state, value);
    }
    let text = match value.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(value.to_string()),
    };
    out.write_str(&escape(&text)).map_err(Error::from)
}

/// `changed(field)`: whether the change touched `field` (see [`Scope::changed`]).
fn changed(state: &State, field: &str) -> Result<bool, Error> {
    Ok(scope(state)?.changed(field))
}

/// `became(field, value)`: whether `field` is `value` now and was not before.
fn became(state: &State, field: &str, value: Value) -> Result<bool, Error> {
    Ok(scope(state)?.became(field, &value))
}

/// `was(field)`: the value before the change, none when unknown.
fn was(state: &State, field: &str) -> Result<Value, Error> {
    let scope = scope(state)?;
    Ok(scope
        .prior
        .as_ref()
        .and_then(|p| Scope::field(p, field))
        .unwrap_or_else(|| Value::from(())))
}

/// `slack_user(email)`: a mention when the email is resolved, otherwise the email as text and
/// a note for the caller to resolve it.
fn slack_user(state: &State, email: Option<Value>) -> Result<Value, Error> {
    let scope = scope(state)?;
    let email = match &email {
        None => return Ok(Value::from("")),
        Some(v) if v.is_none() || v.is_undefined() => return Ok(Value::from("")),
        Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_owned),
    };
    let email = email.trim();
    if email.is_empty() {
        return Ok(Value::from(""));
    }
    let key = email.to_lowercase();
    match scope.users.get(&key) {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Ok(Value::from_safe_string(format!("<@{id}>")))
        }
        _ => {
            scope
                .wanted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key);
            Ok(Value::from(email))
        }
    }
}

/// `sf_url(id, object?)`: the Lightning URL of a record, or "" when it cannot be built safely.
/// `action("take")`: the value of a button that runs the declared button `take` on this card's
/// record; `action("stage", "Closed Won")`: a select option's value choosing "Closed Won";
/// `action("take", id=row.Id)` for another record of the same object (a digest's rows).
/// Names and Ids are checked here; what the name does is looked up when it is clicked.
fn action(
    state: &State,
    name: &str,
    choice: Option<Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<Value, Error> {
    let scope = scope(state)?;
    let invalid = |message: String| Error::new(ErrorKind::InvalidOperation, message);
    if !crate::routing::buttons::is_button_name(name) {
        return Err(invalid(format!(
            "action({name:?}): a button name is letters, digits, - and _"
        )));
    }
    let id: Option<Value> = kwargs.get("id")?;
    kwargs.assert_all_used()?;
    let id = match id {
        Some(id) => id.as_str().map(str::to_owned),
        None => scope
            .record
            .get_attr("Id")
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
    };
    let Some(record) = id.and_then(|id| crate::event::SalesforceId::parse(&id).ok()) else {
        return Err(invalid(format!(
            "action({name:?}): the record has no valid Id to act on"
        )));
    };
    let org = crate::event::SalesforceId::parse(&scope.org)
        .map_err(|e| invalid(format!("action({name:?}): org: {e}")))?;
    let choice = match choice {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(match v.as_str() {
            Some(s) => s.to_owned(),
            None => v.to_string(),
        }),
    };
    let value = crate::slack::inbound::ButtonValue {
        org,
        object: scope.object.clone(),
        record,
        action: name.to_owned(),
        choice: choice.filter(|c| !c.is_empty()),
    };
    // Built from checked parts only, so it is printed as is, not escaped.
    Ok(Value::from_safe_string(value.render()))
}

fn sf_url(state: &State, id: Option<Value>, object: Option<Value>) -> Result<Value, Error> {
    let scope = scope(state)?;
    let id = id.as_ref().and_then(Value::as_str).unwrap_or_default();
    let object = match object.as_ref() {
        Some(v) if !v.is_none() && !v.is_undefined() => v.as_str().unwrap_or_default(),
        _ => scope.object.as_str(),
    };
    let url = scope
        .instance_url
        .as_deref()
        .and_then(|base| record_url(base, object, id));
    Ok(url.map_or_else(|| Value::from(""), Value::from_safe_string))
}

/// A record's Lightning address on `instance_url`; `None` unless the address, object and Id
/// all look like what they are (so nothing in them can break the markup they go into).
pub fn record_url(instance_url: &str, object: &str, id: &str) -> Option<String> {
    let base = instance_url.trim_end_matches('/');
    let base_ok = (base.starts_with("https://") || base.starts_with("http://"))
        && base.len() > "https://".len()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:/_".contains(&b));
    let id_ok = (1..=18).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let object_ok = object.starts_with(|c: char| c.is_ascii_alphabetic())
        && object.len() <= 80
        && object
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (base_ok && id_ok && object_ok).then(|| format!("{base}/lightning/r/{object}/{id}/view"))
}

/// `money` filter: thousands separators and two decimals when there are cents; an optional
/// currency code goes in front. Numeric strings (Outbound Messages send every value as text)
/// are formatted too; anything else passes through.
pub(super) fn money(value: Value, currency: Option<Value>) -> Value {
    let amount = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => value
            .as_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite()),
        _ => None,
    };
    let Some(amount) = amount else {
        return value;
    };
    let number = format_money(amount);
    match currency {
        Some(code) if !code.is_none() && !code.is_undefined() => {
            let code = code.to_string();
            if code.trim().is_empty() {
                Value::from(number)
            } else {
                Value::from(format!("{} {number}", code.trim()))
            }
        }
        _ => Value::from(number),
    }
}

/// An amount with thousands separators, rounded to cents, decimals shown only when there are
/// cents (`75,000`, `1,234,567.50`); shared with the built-in messages.
pub fn format_money(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i64;
    let (whole, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if cents < 0 { "-" } else { "" };
    if frac == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac:02}")
    }
}

/// A date or date-time Salesforce sent, in one of the forms it uses.
enum When {
    Date(NaiveDate),
    DateTime(DateTime<FixedOffset>),
}

fn parse_when(s: &str) -> Option<When> {
    let s = s.trim();
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(When::Date(date));
    }
    DateTime::parse_from_rfc3339(s)
        // Salesforce's own form: 2025-09-30T16:00:00.000+0000
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(When::DateTime)
}

/// `date` / `datetime` filters: `30 Sep 2025`, `2 Oct 2025 15:12 CEST` in the configured zone;
/// text that is not a date passes through.
pub(super) fn format_when(value: Value, tz: Tz, with_time: bool) -> Value {
    let Some(when) = value.as_str().and_then(parse_when) else {
        return value;
    };
    Value::from(match when {
        When::Date(date) => date.format("%-d %b %Y").to_string(),
        When::DateTime(t) => {
            let local = t.with_timezone(&tz);
            if with_time {
                local.format("%-d %b %Y %H:%M %Z").to_string()
            } else {
                local.format("%-d %b %Y").to_string()
            }
        }
    })
}

/// A minijinja error in words, without the internal template name it carries.
pub(super) fn describe(e: &Error) -> String {
    let mut message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(&format!(" ({inner})"));
        source = inner.source();
    }
    message
}

/// Compiles `source` as an expression and evaluates it with the variables `ctx`.
pub(super) fn eval_expression(
    env: &Environment<'static>,
    source: &str,
    ctx: &Value,
) -> Result<Value, Error> {
    env.compile_expression_owned(source.to_owned())?.eval(ctx)
}
