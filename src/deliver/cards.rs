//! Cards: messages that carry sfrelay's buttons. Each is remembered where it landed (the route
//! and template that drew it, the event it showed and its template variables), so a click on
//! it can be acted on and the card redrawn in place afterwards.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{DeliverError, Deliverer, Landed};
use crate::event::Event;
use crate::keys::Key;
use crate::routing::RouteSet;
use crate::slack::Message;
use crate::slack::inbound::interactions::VALUE_PREFIX;

/// Template variables larger than this are not kept with a card (a digest's rows): it is
/// redrawn from its record alone.
const MAX_KEPT_EXTRA: usize = 64 * 1024;

/// What a card on Slack shows and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub route: String,
    pub template: String,
    pub event: Event,
    #[serde(default)]
    pub extra: Value,
    pub channel: String,
    pub ts: String,
}

/// Whether any element of `blocks` carries a value sfrelay made (a button to act on).
pub fn has_buttons(blocks: &[Value]) -> bool {
    fn walk(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(k, v)| {
                (k == "value" && v.as_str().is_some_and(|s| s.starts_with(VALUE_PREFIX))) || walk(v)
            }),
            Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    blocks.iter().any(walk)
}

/// `blocks` without the elements that run `action` (a decision taken is not offered again);
/// an actions block left empty goes too.
pub fn without_action(blocks: Vec<Value>, action: &str) -> Vec<Value> {
    let runs = |element: &Value| {
        let value = element.get("value").and_then(Value::as_str);
        let option_values = element
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("value").and_then(Value::as_str));
        value
            .into_iter()
            .chain(option_values)
            .any(|v| crate::slack::inbound::ButtonValue::parse(v).is_ok_and(|b| b.action == action))
    };
    blocks
        .into_iter()
        .filter_map(|mut block| {
            if block.get("type").and_then(Value::as_str) == Some("actions")
                && let Some(Value::Array(elements)) = block.get_mut("elements")
            {
                elements.retain(|e| !runs(e));
                if elements.is_empty() {
                    return None;
                }
            }
            if block.get("accessory").is_some_and(runs)
                && let Some(map) = block.as_object_mut()
            {
                map.remove("accessory");
            }
            Some(block)
        })
        .collect()
}

/// A context block saying what happened on the card (mrkdwn written by sfrelay, mentions
/// included on purpose).
pub fn note_block(note: &str) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
}

impl Deliverer {
    /// Remembers the card that landed at `landed`.
    pub(super) async fn remember_card(
        &self,
        route: &str,
        template: &str,
        event: &Event,
        extra: &Value,
        landed: &Landed,
    ) -> Result<(), DeliverError> {
        let extra_size = serde_json::to_vec(extra).map_or(usize::MAX, |v| v.len());
        let card = Card {
            route: route.to_string(),
            template: template.to_string(),
            event: event.clone(),
            extra: if extra_size <= MAX_KEPT_EXTRA {
                extra.clone()
            } else {
                Value::Null
            },
            channel: landed.channel.clone(),
            ts: landed.ts.clone(),
        };
        self.keep_card(&card).await
    }

    async fn keep_card(&self, card: &Card) -> Result<(), DeliverError> {
        let key = Key::card_of(&card.channel, &card.ts);
        let value = serde_json::to_string(card)
            .map_err(|e| DeliverError::Permanent(format!("card: {e}")))?;
        self.store.set(key.as_str(), &value, key.ttl()).await?;
        Ok(())
    }

    /// Where action `index` of `route` landed for `event_id`, as the ledger says.
    pub async fn landed(
        &self,
        event_id: &str,
        route: &str,
        index: usize,
    ) -> Result<Option<Landed>, DeliverError> {
        self.read_json(&Key::done(event_id, route, index)).await
    }

    /// The card at `ts` in `channel`, when sfrelay drew it.
    pub async fn card(&self, channel: &str, ts: &str) -> Result<Option<Card>, DeliverError> {
        self.read_json(&Key::card_of(channel, ts)).await
    }

    /// Draws `card` again for `event` (the record as it is now), without the buttons that
    /// run the actions in `taken` and with `note` under it, in place; the card is remembered with the new event.
    pub async fn redraw(
        &self,
        routes: &RouteSet,
        card: &Card,
        event: &Event,
        taken: &[&str],
        note: Option<&str>,
    ) -> Result<(), DeliverError> {
        let rendered = self
            .render(routes, event, &card.extra, &card.template)
            .await?;
        let mut blocks = rendered.blocks;
        for action in taken {
            blocks = without_action(blocks, action);
        }
        if let Some(note) = note {
            blocks.push(note_block(note));
        }
        self.rewrite(&card.channel, &card.ts, &rendered.text, blocks)
            .await?;
        let mut redrawn = card.clone();
        redrawn.event = event.clone();
        self.keep_card(&redrawn).await
    }

    /// Replaces the message at `ts` in `channel` with `text` and `blocks`.
    pub async fn rewrite(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: Vec<Value>,
    ) -> Result<(), DeliverError> {
        let message = Message::new(channel.to_string(), text.to_string(), blocks);
        self.call("chat.update", Some(channel), || {
            self.slack.update_message(ts, &message)
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAKE: &str = "sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:take";
    const STAGE: &str = "sfrelay:v1:00D5g000004ABCdEAO:Case:5005g00000AbCdEAAV:stage:New";

    #[test]
    fn cards_are_told_by_their_values() {
        let button = json!({"type": "actions", "elements": [{"type": "button", "value": TAKE}]});
        assert!(has_buttons(&[button]));
        let link = json!({"type": "actions", "elements": [{"type": "button", "url": "https://x", "value": "other"}]});
        assert!(!has_buttons(&[link]));
    }

    #[test]
    fn a_taken_action_leaves_the_card_and_an_empty_block_goes() {
        let blocks = vec![
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "x"}}),
            json!({"type": "actions", "elements": [
                {"type": "button", "value": TAKE},
                {"type": "static_select", "options": [{"value": STAGE}]}
            ]}),
            json!({"type": "actions", "elements": [{"type": "button", "value": TAKE}]}),
        ];
        let left = without_action(blocks.clone(), "take");
        assert_eq!(left.len(), 2);
        assert_eq!(left[1]["elements"].as_array().unwrap().len(), 1);
        let left = without_action(blocks, "stage");
        assert_eq!(left.len(), 3);
        assert_eq!(left[1]["elements"][0]["value"], TAKE);
    }
}
