//! `link_shared`: the record links of a message (or of a message being written) become cards
//! under it, through `chat.unfurl`. An unfurl is seen by the whole channel, so it shows only
//! the fields the admin listed for the object, read as the person who shared the link (their
//! access decides what shows); a link to a record they may not read shows nothing. Someone
//! who has not connected their account gets a minimal card, read from nothing, and Slack's
//! prompt to connect (`user_auth_required`). Where connections are off (no `public_url`), the
//! integration user reads, still only the admin's fields. Links on another org's domain than the app's own org, or that name no record, are
//! left alone.

use serde_json::{Map, Value, json};

use super::links::{self, OrgHosts};
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs};
use crate::people::{PeopleError, Person};
use crate::salesforce::Actor;
use crate::slack::inbound::events::{EventKind, SharedLink, SlackEvent};
use crate::slack::surfaces::{UnfurlTarget, unfurl_body};

/// Slack sends at most this many links per event; more are not looked at.
const MAX_LINKS: usize = 5;

pub async fn run(jobs: &Jobs, event: &SlackEvent) -> Result<(), JobError> {
    let EventKind::LinkShared {
        channel,
        user: sharer,
        message_ts,
        unfurl_id,
        source,
        links,
        ..
    } = &event.event
    else {
        return Ok(());
    };
    let target = match (unfurl_id, source, message_ts) {
        (Some(unfurl_id), Some(source), _) => UnfurlTarget::Composer {
            unfurl_id: unfurl_id.clone(),
            source: source.clone(),
        },
        (_, _, Some(ts)) => UnfurlTarget::Message {
            channel: channel.clone(),
            ts: ts.clone(),
        },
        _ => {
            return Err(JobError::dead(
                "link_shared names no message and no composer".into(),
            ));
        }
    };
    let hosts = OrgHosts::of(&jobs.orgs);
    let mut unfurls = Map::new();
    let mut app_org = None;
    let mut needs_connection = false;
    for link in links.iter().take(MAX_LINKS) {
        if let Some((org, card, minimal)) = card_for(jobs, event, &hosts, link).await? {
            app_org.get_or_insert(org);
            needs_connection |= minimal;
            unfurls.insert(link.url.clone(), card);
        }
    }
    let Some(org) = app_org else {
        tracing::info!(
            links = links.len(),
            "no shared link names a record sfrelay may show"
        );
        return Ok(());
    };
    let mut extra = Value::Null;
    if needs_connection {
        let who = Person::new(event.team.clone(), sharer.clone());
        if let Ok(link) = jobs.people.connect_link(&who, &org).await {
            extra = json!({
                "user_auth_required": true,
                "user_auth_url": link,
                "user_auth_message": "Connect your Salesforce account, and sfrelay shows the records you share, as you can see them.",
            });
        }
    }
    let body = unfurl_body(&target, &Value::Object(unfurls), &extra);
    jobs.slack
        .for_org(&org)
        .unfurl(&body)
        .await
        .map_err(|e| JobError::of("chat.unfurl", crate::jobs::WorkError::Deliver(e)))
}

/// Who reads for the person who shared: their live connection; the integration user when
/// connections are off here; `None` when they could connect but have not (or it expired).
async fn reader(
    jobs: &Jobs,
    event: &SlackEvent,
    org: &SalesforceId,
) -> Result<Option<Actor>, JobError> {
    let EventKind::LinkShared { user, .. } = &event.event else {
        return Ok(None);
    };
    if !jobs.people.connections_enabled() {
        return Ok(Some(Actor::Integration));
    }
    let who = Person::new(event.team.clone(), user.clone());
    match jobs.people.actor(&who, org).await {
        Ok(actor) => Ok(actor),
        Err(PeopleError::Expired) => Ok(None),
        Err(e) => Err(JobError::later(format!("who shared the link: {e}"))),
    }
}

/// The card of a record the sharer has not connected to see: what the link itself says, and
/// nothing read from Salesforce.
fn minimal(found: &super::links::RecordRef) -> Value {
    json!({"blocks": [{"type": "section", "text": {"type": "mrkdwn",
        "text": format!("*{}* {}\n_Whoever shared this can connect their Salesforce account to show it here._", found.object, found.id)}}]})
}

/// The card of one link: `None` when it names no record of an org this app serves, or the
/// record is not there to be read.
async fn card_for(
    jobs: &Jobs,
    event: &SlackEvent,
    hosts: &OrgHosts,
    link: &SharedLink,
) -> Result<Option<(SalesforceId, Value, bool)>, JobError> {
    let Ok(found) = links::parse(&link.url, hosts) else {
        return Ok(None);
    };
    let Some(org) = found.org.clone() else {
        return Ok(None);
    };
    // An org with its own Slack app unfurls its own links only.
    if event.app_org.as_ref().is_some_and(|own| *own != org) {
        return Ok(None);
    }
    let Some(actor) = reader(jobs, event, &org).await? else {
        return Ok(Some((org, minimal(&found), true)));
    };
    let fields = jobs.cards.fields(&found.object).to_vec();
    let row = super::card::read(jobs, &org, &actor, &found, &fields)
        .await
        .map_err(|e| JobError::of("unfurl lookup", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let card = super::card::render(jobs, &org, &found, row, &fields)
        .map_err(|e| JobError::of("unfurl card", e))?;
    Ok(Some((org, json!({"blocks": card.blocks}), false)))
}
