//! A queued slash command: worked out, then answered through its `response_url` (which
//! replaces the "Looking…" acknowledgement the person saw).

use serde_json::{Value, json};

use super::ask::{self, Ask};
use super::links::{self, OrgHosts, RecordRef};
use crate::actions::replies::respond;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs};
use crate::slack::inbound::SlashCommand;

pub async fn run(jobs: &Jobs, command: &SlashCommand) -> Result<(), JobError> {
    let reply = match Ask::parse(&command.text) {
        Ask::Record(text) => record(jobs, command, &text).await?,
        Ask::Find(text) => super::find::find(jobs, command, &text).await?,
        Ask::Orgs => super::account::orgs(jobs, command).await?,
        Ask::Org(name) => super::account::set_preferred(jobs, command, &name).await?,
        Ask::Connect(name) => super::account::connect(jobs, command, name.as_deref()).await?,
        Ask::Disconnect(name) => super::account::disconnect(jobs, command, name.as_deref()).await?,
        Ask::Follow(text) => super::follow::follow(jobs, command, text.as_deref()).await?,
        Ask::Unfollow(text) => super::follow::unfollow(jobs, command, text.as_deref()).await?,
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

/// The card of the record a link or Id names, shown only to the person who asked.
async fn record(jobs: &Jobs, command: &SlashCommand, text: &str) -> Result<Value, JobError> {
    let (org, found) = match named_record(jobs, command, text).await? {
        Ok(named) => named,
        Err(reply) => return Ok(reply),
    };
    let actor = match super::find::reader(jobs, command, &org).await? {
        Ok(actor) => actor,
        Err(reply) => return Ok(reply),
    };
    let fields = jobs.cards.fields(&found.object).to_vec();
    let row = super::card::read(jobs, &org, &actor, &found, &fields)
        .await
        .map_err(|e| JobError::of("record lookup", e))?;
    let Some(row) = row else {
        return Ok(not_visible(&found));
    };
    let card = super::card::render(jobs, &org, &found, row, &fields)
        .map_err(|e| JobError::of("record card", e))?;
    Ok(json!({"response_type": "ephemeral", "text": card.text, "blocks": card.blocks}))
}

/// The org and record a typed link or Id names: a link's org is its host's; a bare Id is
/// looked for in the org the person works in. A reply instead when it names nothing usable.
pub(super) async fn named_record(
    jobs: &Jobs,
    command: &SlashCommand,
    text: &str,
) -> Result<Result<(SalesforceId, RecordRef), Value>, JobError> {
    let found = match links::parse(text, &OrgHosts::of(&jobs.orgs)) {
        Ok(found) => found,
        Err(why) => return Ok(Err(ask::ephemeral(&why))),
    };
    let org = match found.org.clone() {
        Some(org) => org,
        None => match super::account::org_for(jobs, command, None).await? {
            Ok(org) => org,
            Err(reply) => return Ok(Err(reply)),
        },
    };
    Ok(Ok((org, found)))
}

/// The answer for a record Salesforce did not show the reader.
pub(super) fn not_visible(record: &RecordRef) -> Value {
    ask::ephemeral(&format!(
        "No {} {} is visible in Salesforce.",
        record.object, record.id
    ))
}
