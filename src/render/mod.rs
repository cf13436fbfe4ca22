//! Rendering is pure: (what to say, the event) → Block Kit JSON within Slack's limits, with
//! every interpolated value escaped for mrkdwn so record data can never ping or link.

pub mod limits;
pub mod mrkdwn;

use serde_json::{Value, json};

use crate::event::Event;
use crate::slack::Message;
use mrkdwn::escape;

/// A record field as display text: strings as they are, numbers and booleans printed, nested
/// paths (`Account.Name`) followed; `None` when absent or null.
pub fn field_text(event: &Event, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut value = event.record.get(first)?;
    for part in parts {
        value = value.get(part)?;
    }
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// A money amount with thousands separators and the record's currency code when it has one
/// (`USD 75,000`, `640,000.50`).
pub fn money(event: &Event, path: &str) -> Option<String> {
    let amount = event.record.get(path)?.as_f64()?;
    let cents = (amount * 100.0).round() as i64;
    let (whole, frac) = (cents.abs() / 100, cents.abs() % 100);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if cents < 0 { "-" } else { "" };
    let number = if frac == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac:02}")
    };
    Some(match field_text(event, "CurrencyIsoCode") {
        Some(code) => format!("{code} {number}"),
        None => number,
    })
}

/// The Closed Won announcement: who won what, for how much, and when.
pub fn closed_won(event: &Event, channel: &str) -> Message {
    let name = field_text(event, "Name").unwrap_or_else(|| event.record_id.to_string());
    let account = field_text(event, "Account.Name").unwrap_or_else(|| "—".into());
    let amount = money(event, "Amount").unwrap_or_else(|| "—".into());
    let close_date = field_text(event, "CloseDate").unwrap_or_else(|| "—".into());
    let owner = field_text(event, "Owner.Name").unwrap_or_else(|| "—".into());
    let field = |label: &str, value: &str| json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", escape(value))});
    let mut message = json!({
        "text": format!("Closed Won: {} ({}) {}", escape(&name), escape(&account), escape(&amount)),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": format!("Closed Won: {}", escape(&name)), "emoji": true}},
            {"type": "section", "fields": [
                field("Account", &account),
                field("Amount", &amount),
                field("Close date", &close_date),
                field("Owner", &owner),
            ]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": format!("{} {} · org {}", escape(&event.object), event.record_id, event.org_id)}
            ]}
        ]
    });
    let cuts = limits::fit(&mut message);
    if !cuts.is_empty() {
        tracing::debug!(event_id = %event.id, ?cuts, "message cut to fit Slack's limits");
    }
    Message {
        channel: channel.to_string(),
        text: message["text"].as_str().unwrap_or("Closed Won").to_string(),
        blocks: message["blocks"].as_array().cloned().unwrap_or_default(),
        thread_ts: None,
        unfurl_links: false,
    }
}
