//! Routing is pure: (event, routes) → a `Plan` of Slack actions. No I/O, so it is tested
//! without any server and is what a dry run prints.

use serde::Serialize;

use crate::event::{ChangeType, Event};
use crate::render;
use crate::slack::Message;

/// One thing to do in Slack for an event, already rendered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `chat.postMessage` of `message` (its `channel` is a channel Id, never a name).
    PostMessage { route: String, message: Message },
}

/// Everything the routes decided for one event; empty when no route fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
}

/// Decides what an event becomes. The worker only knows this interface, so the route set can
/// be swapped (built-in today, files from `routes/` next) without touching delivery.
pub trait Routes: Send + Sync + 'static {
    fn plan(&self, event: &Event) -> Plan;
}

/// The route shipped built in: an Opportunity that became Closed Won is announced in one
/// configured channel.
#[derive(Debug, Clone)]
pub struct BuiltinRoutes {
    pub closed_won_channel: Option<String>,
}

impl Routes for BuiltinRoutes {
    fn plan(&self, event: &Event) -> Plan {
        let mut plan = Plan::default();
        if let Some(channel) = &self.closed_won_channel
            && became_closed_won(event)
        {
            plan.actions.push(Action::PostMessage {
                route: "closed-won".into(),
                message: render::closed_won(event, channel),
            });
        }
        plan
    }
}

/// True when this change moved an Opportunity into Closed Won (not every later edit of a won
/// deal): the stage is Closed Won now, the change touched it when we are told what changed,
/// and it was not Closed Won before when we are told what it was.
pub fn became_closed_won(event: &Event) -> bool {
    const WON: &str = "Closed Won";
    if event.object != "Opportunity" || event.change_type == ChangeType::Delete {
        return false;
    }
    if event.record.get("StageName").and_then(|v| v.as_str()) != Some(WON) {
        return false;
    }
    if let Some(changed) = &event.changed_fields
        && !changed.iter().any(|f| f == "StageName")
    {
        return false;
    }
    if let Some(prior) = &event.prior
        && prior.get("StageName").and_then(|v| v.as_str()) == Some(WON)
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::flow::parse_flow_request;

    fn event(body: serde_json::Value) -> Event {
        let bytes = serde_json::to_vec(&body).unwrap();
        parse_flow_request(&bytes, chrono::Utc::now())
            .unwrap()
            .remove(0)
    }

    fn opportunity(extra: serde_json::Value) -> serde_json::Value {
        let mut body = serde_json::json!({
            "org_id": "00D5g000004ABCdEAO", "object": "Opportunity",
            "record": {"Id": "006Hs00000BkXyzIAF", "Name": "Acme Corp - Q3 Enterprise", "StageName": "Closed Won",
                       "Amount": 75000, "CloseDate": "2025-09-30", "Account": {"Name": "Acme Corp"}, "Owner": {"Name": "Dana Seller"}}
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    }

    fn routes() -> BuiltinRoutes {
        BuiltinRoutes {
            closed_won_channel: Some("C0DEALDESK".into()),
        }
    }

    #[test]
    fn closed_won_fires_once_per_transition() {
        let fired = routes().plan(&event(opportunity(serde_json::json!({
            "changed_fields": ["StageName"], "prior": {"StageName": "Negotiation/Review"}
        }))));
        assert_eq!(fired.actions.len(), 1);
        let Action::PostMessage { route, message } = &fired.actions[0];
        assert_eq!(route, "closed-won");
        assert_eq!(message.channel, "C0DEALDESK");
        assert_eq!(
            message.text,
            "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) 75,000"
        );
        assert_eq!(
            message.blocks[0]["text"]["text"],
            "Closed Won: Acme Corp - Q3 Enterprise"
        );

        for extra in [
            serde_json::json!({"changed_fields": ["Amount"]}),
            serde_json::json!({"prior": {"StageName": "Closed Won"}}),
            serde_json::json!({"change_type": "DELETE"}),
            serde_json::json!({"object": "Case"}),
        ] {
            assert!(
                routes()
                    .plan(&event(opportunity(extra.clone())))
                    .actions
                    .is_empty(),
                "{extra}"
            );
        }
        let no_channel = BuiltinRoutes {
            closed_won_channel: None,
        };
        assert!(
            no_channel
                .plan(&event(opportunity(serde_json::json!({}))))
                .actions
                .is_empty()
        );
    }

    #[test]
    fn record_data_cannot_ping_or_link() {
        let mut body = opportunity(serde_json::json!({}));
        body["record"]["Name"] = "<!channel> free money <https://evil.example|click> & more".into();
        body["record"]["Account"]["Name"] = "*bold* `code` <@U00000001>".into();
        let plan = routes().plan(&event(body));
        let Action::PostMessage { message, .. } = &plan.actions[0];
        let all = serde_json::to_string(message).unwrap();
        assert!(!all.contains("<!channel>"), "{all}");
        assert!(!all.contains("<@U00000001>"), "{all}");
        assert!(!all.contains("<https://evil"), "{all}");
        assert!(message.text.contains("&lt;!channel&gt;"));
    }

    #[test]
    fn money_is_grouped() {
        let mut body = opportunity(serde_json::json!({}));
        body["record"]["Amount"] = serde_json::json!(1234567.5);
        body["record"]["CurrencyIsoCode"] = "EUR".into();
        assert_eq!(
            render::money(&event(body), "Amount").as_deref(),
            Some("EUR 1,234,567.50")
        );
    }
}
