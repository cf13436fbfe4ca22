//! A queued slash command: worked out, then answered through its `response_url` (which
//! replaces the "Looking…" acknowledgement the person saw).

use serde_json::{Value, json};

use super::ask::{self, Ask};
use super::links::{self, OrgHosts};
use crate::actions::replies::respond;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs};
use crate::slack::inbound::SlashCommand;

pub async fn run(jobs: &Jobs, command: &SlashCommand) -> Result<(), JobError> {
    let reply = match Ask::parse(&command.text) {
        Ask::Record(text) => record(jobs, command, &text).await?,
        Ask::Help => ask::help(&command.command, None),
        Ask::Unknown(text) => ask::help(&command.command, Some(&text)),
    };
    respond(
        &jobs.replies,
        Some(&command.response_url),
        &replacing(reply),
    )
    .await
}

/// A reply that takes the acknowledgement's place.
fn replacing(mut reply: Value) -> Value {
    reply["replace_original"] = true.into();
    reply
}

/// The org a command without a record link works in: the org of the app it came through, else
/// the only org sfrelay can read Salesforce in.
pub(super) fn command_org(jobs: &Jobs, command: &SlashCommand) -> Result<SalesforceId, String> {
    if let Some(org) = &command.app_org {
        return Ok(org.clone());
    }
    let readable: Vec<&SalesforceId> = jobs
        .replies
        .orgs()
        .iter()
        .filter(|o| jobs.salesforce.as_ref().is_some_and(|sf| sf.has_org(o)))
        .collect();
    match readable.as_slice() {
        [only] => Ok((*only).clone()),
        [] => Err(
            "sfrelay reads no Salesforce org yet: its admin has not set API credentials.".into(),
        ),
        _ => Err("sfrelay serves several orgs: paste the record's link, so I know which.".into()),
    }
}

/// The card of the record a link or Id names, shown only to the person who asked.
async fn record(jobs: &Jobs, command: &SlashCommand, text: &str) -> Result<Value, JobError> {
    let hosts = OrgHosts::new(jobs.orgs.instance_urls().map(|(o, u)| (o, Some(u))));
    let found = match links::parse(text, &hosts) {
        Ok(found) => found,
        Err(why) => return Ok(ask::ephemeral(&why)),
    };
    let org = match found
        .org
        .clone()
        .map_or_else(|| command_org(jobs, command), Ok)
    {
        Ok(org) => org,
        Err(why) => return Ok(ask::ephemeral(&why)),
    };
    let fields = jobs.cards.fields(&found.object).to_vec();
    let row = super::card::read(jobs, &org, &found, &fields)
        .await
        .map_err(|e| JobError::of("record lookup", e))?;
    let Some(row) = row else {
        return Ok(ask::ephemeral(&format!(
            "No {} {} is visible in Salesforce.",
            found.object, found.id
        )));
    };
    let card = super::card::render(jobs, &org, &found, row, &fields)
        .map_err(|e| JobError::of("record card", e))?;
    Ok(json!({"response_type": "ephemeral", "text": card.text, "blocks": card.blocks}))
}
