//! `link_shared`: the record links of a message (or of a message being written) become cards
//! under it, through `chat.unfurl`. An unfurl is seen by the whole channel, so it shows only
//! the fields the admin listed for the object, and a link to a record nobody may read shows
//! nothing. Links on another org's domain than the app's own org, or that name no record, are
//! left alone.

use serde_json::{Map, Value, json};

use super::links::{self, OrgHosts};
use crate::jobs::{JobError, Jobs};
use crate::slack::inbound::events::{EventKind, SharedLink, SlackEvent};
use crate::slack::surfaces::{UnfurlTarget, unfurl_body};

/// Slack sends at most this many links per event; more are not looked at.
const MAX_LINKS: usize = 5;

pub async fn run(jobs: &Jobs, event: &SlackEvent) -> Result<(), JobError> {
    let EventKind::LinkShared {
        channel,
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
    let hosts = OrgHosts::new(jobs.orgs.instance_urls().map(|(o, u)| (o, Some(u))));
    let mut unfurls = Map::new();
    let mut app_org = None;
    for link in links.iter().take(MAX_LINKS) {
        if let Some((org, card)) = card_for(jobs, event, &hosts, link).await? {
            app_org.get_or_insert(org);
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
    let body = unfurl_body(&target, &Value::Object(unfurls), &Value::Null);
    jobs.slack
        .for_org(&org)
        .unfurl(&body)
        .await
        .map_err(|e| JobError::of("chat.unfurl", crate::jobs::WorkError::Deliver(e)))
}

/// The card of one link: `None` when it names no record of an org this app serves, or the
/// record is not there to be read.
async fn card_for(
    jobs: &Jobs,
    event: &SlackEvent,
    hosts: &OrgHosts,
    link: &SharedLink,
) -> Result<Option<(crate::event::SalesforceId, Value)>, JobError> {
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
    let fields = jobs.cards.fields(&found.object).to_vec();
    let row = super::card::read(jobs, &org, &found, &fields)
        .await
        .map_err(|e| JobError::of("unfurl lookup", e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let card = super::card::render(jobs, &org, &found, row, &fields)
        .map_err(|e| JobError::of("unfurl card", e))?;
    Ok(Some((org, json!({"blocks": card.blocks}))))
}
