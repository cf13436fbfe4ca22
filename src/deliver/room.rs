//! Deal rooms: a private channel per record and route, made once whatever crashes, people
//! invited by email; and the notes a message gets when someone could not be reached.

use serde_json::json;

use super::{DeliverError, Deliverer};
use crate::keys::Key;
use crate::render::limits::max;
use crate::render::mrkdwn;
use crate::routing::ChannelRef;
use crate::slack::{Message, SlackError};

impl Deliverer {
    /// The record's room: the one made before (by any attempt, on any replica), or a new
    /// private channel. Each name is claimed in the store before Slack is asked, so after a
    /// crash between Slack's answer and ours, `name_taken` is recognised as our own room and
    /// reused; a name taken by anything else gets a suffix (`-2`, `-3`, …).
    pub(super) async fn room(&self, name: &str, room_key: &Key) -> Result<String, DeliverError> {
        if let Some(id) = self.store.get(room_key.as_str()).await? {
            return Ok(id);
        }
        for n in 1..=10 {
            let candidate = if n == 1 {
                name.to_string()
            } else {
                let suffix = format!("-{n}");
                let stem: String = name.chars().take(80 - suffix.len()).collect();
                format!("{}{suffix}", stem.trim_end_matches('-'))
            };
            let claim_key = self.workspace.room_name(&candidate);
            let holder = self
                .store
                .claim(claim_key.as_str(), room_key.as_str(), claim_key.ttl())
                .await?;
            if holder.as_deref().is_some_and(|h| h != room_key.as_str()) {
                continue; // another record's room, or known to be someone else's channel
            }
            let created = self
                .call("conversations.create", None, || {
                    self.slack.create_private_channel(&candidate)
                })
                .await;
            let id = match created {
                Ok(id) => id,
                Err(DeliverError::Slack(SlackError::Api { code })) if code == "name_taken" => {
                    if holder.is_none() {
                        // Claimed just now, so not made by us: someone else's channel.
                        self.store
                            .set(claim_key.as_str(), "taken", claim_key.ttl())
                            .await?;
                        continue;
                    }
                    // Claimed by an earlier attempt for this record: our room, made before
                    // that attempt could note its Id.
                    self.resolver
                        .channel(&ChannelRef::Name(candidate.clone()))
                        .await?
                }
                Err(e) => return Err(e),
            };
            self.store
                .set(room_key.as_str(), &id, room_key.ttl())
                .await?;
            tracing::info!(room = %candidate, channel = %id, "deal room ready");
            return Ok(id);
        }
        Err(DeliverError::Permanent(format!(
            "no free channel name for the room {name:?} (tried 10)"
        )))
    }

    /// Invites these people (by email) to `channel`, at most 100 per call; being in the channel
    /// already is success. Returns the emails that could not be invited, so the room says so
    /// instead of failing.
    pub(super) async fn invite(
        &self,
        channel: &str,
        emails: &[String],
    ) -> Result<Vec<String>, DeliverError> {
        let mut missing = Vec::new();
        let mut users = Vec::new();
        for email in emails {
            match self.resolver.user(email).await? {
                Some(id) => users.push((email.clone(), id)),
                None => missing.push(email.clone()),
            }
        }
        for batch in users.chunks(100) {
            let ids: Vec<String> = batch.iter().map(|(_, id)| id.clone()).collect();
            match self.invite_call(channel, &ids).await {
                Ok(()) => continue,
                // One refusal can sink the whole call: invite one by one to know who.
                Err(DeliverError::Slack(SlackError::Api { .. })) if batch.len() > 1 => {
                    for (email, id) in batch {
                        match self.invite_call(channel, std::slice::from_ref(id)).await {
                            Ok(()) => {}
                            Err(DeliverError::Slack(SlackError::Api { code })) => {
                                tracing::warn!(%email, %code, "cannot invite to the room");
                                missing.push(email.clone());
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(DeliverError::Slack(SlackError::Api { code })) => {
                    tracing::warn!(email = %batch[0].0, %code, "cannot invite to the room");
                    missing.push(batch[0].0.clone());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(missing)
    }

    async fn invite_call(&self, channel: &str, users: &[String]) -> Result<(), DeliverError> {
        match self
            .call("conversations.invite", None, || {
                self.slack.invite(channel, users)
            })
            .await
        {
            Err(DeliverError::Slack(SlackError::Api { code }))
                if code == "already_in_channel" || code == "cant_invite_self" =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

/// Lists, at the end of a room's briefing, the people who could not be invited.
pub(super) fn note_missing_people(message: &mut Message, missing: &[String]) {
    let list = missing
        .iter()
        .map(|m| mrkdwn::escape(m).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    let note = format!("Not in Slack or could not be invited: {list}");
    if message.blocks.len() >= max::BLOCKS {
        message.blocks.pop();
    }
    let text: String = note.chars().take(max::SECTION_TEXT).collect();
    message
        .blocks
        .push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
}

/// Says, at the top of a message sent to a fallback channel, whom it was meant for.
pub(super) fn note_unknown_person(message: &mut Message, who: &str) {
    let note = format!(
        "Meant as a direct message to {}, but Slack has no user with that email.",
        mrkdwn::escape(who)
    );
    message.blocks.insert(
        0,
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}),
    );
    if message.blocks.len() > max::BLOCKS {
        message.blocks.pop();
    }
    message.text = format!("{note}\n{}", message.text);
}
