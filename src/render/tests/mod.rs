//! Tests of loading and rendering templates, one file per concern: `messages` renders whole
//! messages (the closed-won example, `when`, `each`, Slack's limits, escaping), `helpers`
//! covers route conditions and the functions and filters templates call, `loading` the
//! load-time checks and their `file:line` reports. Shared here: events, users, the closed-won
//! template in JSON and YAML, and loading templates from text.

mod buttons;
mod helpers;
mod loading;
mod messages;

use std::collections::HashMap;

use serde_json::json;

use super::{Condition, RenderContext, RenderError, RenderOptions, Rendered, Templates};
use crate::event::Event;

const ORG: &str = "00D5g000004ABCdEAO";
const OPP: &str = "006Hs00000BkXyzIAF";

/// An event as the Flow endpoint would produce it.
fn event(envelope: serde_json::Value) -> Event {
    let mut envelope = envelope;
    let defaults = json!({"org_id": ORG, "object": "Opportunity"});
    for (k, v) in defaults.as_object().into_iter().flatten() {
        if envelope.get(k).is_none() {
            envelope[k] = v.clone();
        }
    }
    let received_at = "2025-09-30T16:00:05Z".parse().unwrap();
    let mut events =
        crate::ingest::flow::parse_flow_request(envelope.to_string().as_bytes(), received_at)
            .unwrap();
    events.remove(0)
}

fn closed_won_event() -> Event {
    event(json!({
        "change_type": "UPDATE",
        "changed_fields": ["StageName"],
        "occurred_at": "2025-10-02T13:12:00Z",
        "record": {
            "Id": OPP,
            "Name": "Acme Corp - Q3 Enterprise",
            "StageName": "Closed Won",
            "Amount": 75000,
            "CurrencyIsoCode": "USD",
            "CloseDate": "2025-09-30",
            "Account": {"Name": "Acme Corp"},
            "Owner": {"Name": "Dana Seller", "Email": "Dana.Seller@example.com"},
            "Sales_Engineer_Email__c": "sam.se@example.com",
            "Executive_Sponsor_Email__c": "eve.exec@example.com"
        },
        "prior": {"StageName": "Negotiation/Review"}
    }))
}

fn users() -> HashMap<String, String> {
    HashMap::from([
        ("dana.seller@example.com".into(), "U0DANA0001".into()),
        ("sam.se@example.com".into(), "U0SAMSE002".into()),
    ])
}

const NULL: serde_json::Value = serde_json::Value::Null;

fn ctx<'a>(
    event: &'a Event,
    users: &'a HashMap<String, String>,
    extra: &'a serde_json::Value,
) -> RenderContext<'a> {
    RenderContext {
        event,
        instance_url: Some("https://acme.my.salesforce.com"),
        users,
        extra,
    }
}

fn load(sources: &[(&str, &str)]) -> Templates {
    match Templates::from_sources(sources, RenderOptions::default()) {
        Ok(t) => t,
        Err(errors) => panic!("{errors:#?}"),
    }
}

const CLOSED_WON_JSON: &str = r#"{
  "text": "Closed Won: {{ record.Name }} ({{ record.Account.Name }}) {{ record.Amount | money(record.CurrencyIsoCode) }}",
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Closed Won: {{ record.Name }}", "emoji": true}},
    {"type": "section", "fields": [
      {"type": "mrkdwn", "text": "*Account*\n{{ record.Account.Name }}"},
      {"type": "mrkdwn", "text": "*Amount*\n{{ record.Amount | money(record.CurrencyIsoCode) }}"},
      {"type": "mrkdwn", "text": "*Close date*\n{{ record.CloseDate | date }}"},
      {"type": "mrkdwn", "text": "*Owner*\n{{ slack_user(record.Owner.Email) }}"}
    ]},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Stakeholders:* {{ slack_user(record.Owner.Email) }}, {{ slack_user(record.Sales_Engineer_Email__c) }}, {{ slack_user(record.Executive_Sponsor_Email__c) }}"}},
    {"when": "record.Amount >= 1000000", "type": "section", "text": {"type": "mrkdwn", "text": ":rotating_light: Seven figures!"}},
    {"type": "context", "elements": [
      {"type": "mrkdwn", "text": "{{ object }} {{ record.Id }} · was {{ was('StageName') }} · {{ occurred_at | datetime }}"}
    ]},
    {"type": "actions", "elements": [
      {"type": "button", "action_id": "open_record", "style": "primary",
       "text": {"type": "plain_text", "text": "View in Salesforce"}, "url": "{{ record.Id | sf_url }}"}
    ]}
  ]
}"#;

const CLOSED_WON_YAML: &str = r#"
# Same message as closed-won.json, the way most admins will write it.
text: "Closed Won: {{ record.Name }} ({{ record.Account.Name }}) {{ record.Amount | money(record.CurrencyIsoCode) }}"
blocks:
  - type: header
    text:
      type: plain_text
      text: "Closed Won: {{ record.Name }}"
      emoji: true
  - type: section
    fields:
      - type: mrkdwn
        text: "*Account*\n{{ record.Account.Name }}"
      - type: mrkdwn
        text: "*Amount*\n{{ record.Amount | money(record.CurrencyIsoCode) }}"
      - type: mrkdwn
        text: "*Close date*\n{{ record.CloseDate | date }}"
      - {type: mrkdwn, text: "*Owner*\n{{ slack_user(record.Owner.Email) }}"}
  - type: section
    text:
      type: mrkdwn
      text: >-
        *Stakeholders:* {{ slack_user(record.Owner.Email) }},
        {{ slack_user(record.Sales_Engineer_Email__c) }},
        {{ slack_user(record.Executive_Sponsor_Email__c) }}
  - when: record.Amount >= 1000000
    type: section
    text: {type: mrkdwn, text: ":rotating_light: Seven figures!"}
  - type: context
    elements:
      - type: mrkdwn
        text: "{{ object }} {{ record.Id }} · was {{ was('StageName') }} · {{ occurred_at | datetime }}"
  - type: actions
    elements:
      - type: button
        action_id: open_record
        style: primary
        text: {type: plain_text, text: View in Salesforce}
        url: "{{ record.Id | sf_url }}"
"#;

#[test]
fn shared_across_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Templates>();
    send_sync::<Condition>();
    send_sync::<Rendered>();
    send_sync::<RenderError>();
}
