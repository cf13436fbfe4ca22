//! A `followers` action: the same message to each person following the record (`/sf follow`),
//! in their own DM. Each person's message has its own ledger entry, so a retry after one
//! failed DM sends only the ones still owed, and someone Slack will never reach (deactivated,
//! gone) is passed over rather than holding up everyone else.

use serde_json::Value;

use super::{DeliverError, Deliverer, Landed, cards};
use crate::event::Event;
use crate::keys::Key;
use crate::render::template::Rendered;
use crate::slack::{Message, Retry};

impl Deliverer {
    /// DMs `rendered` to each follower of `event`'s record; the last message landed, `None`
    /// when nobody follows it.
    pub(super) async fn message_followers(
        &self,
        route: &str,
        template: &str,
        event: &Event,
        extra: &Value,
        key: &Key,
        rendered: Rendered,
    ) -> Result<Option<Landed>, DeliverError> {
        let followers = self
            .store
            .members(Key::followers(&event.org_id, &event.record_id).as_str())
            .await?;
        let has_buttons = cards::has_buttons(&rendered.blocks);
        let mut last = None;
        for member in &followers {
            let Some((_team, user)) = member.split_once(':') else {
                continue;
            };
            let done = key.done_for(user);
            if let Some(landed) = self.store.get(done.as_str()).await? {
                metrics::counter!("sfrelay_ledger_hits_total").increment(1);
                last = serde_json::from_str(&landed).ok().or(last);
                continue;
            }
            let mut message = Message::new(
                String::new(),
                rendered.text.clone(),
                rendered.blocks.clone(),
            );
            let landed = async {
                message.channel = self.resolver.dm(user).await?;
                self.post(&mut message, &done).await
            }
            .await;
            let landed = match landed {
                Ok(landed) => landed,
                Err(e) if e.retry() == Retry::Never => {
                    tracing::warn!(%route, %user, error = %e, "cannot DM this follower; passing them over");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let value = serde_json::to_string(&landed).unwrap_or_default();
            self.store.set(done.as_str(), &value, done.ttl()).await?;
            if has_buttons {
                self.remember_card(route, template, event, extra, &landed)
                    .await?;
            }
            last = Some(landed);
        }
        if followers.is_empty() {
            tracing::info!(%route, "nobody follows this record");
        }
        Ok(last)
    }
}
