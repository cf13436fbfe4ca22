//! `find <words>`: a SOSL search in the person's org, as them when they are connected (their
//! sharing decides what is found), else as the integration user; results are compact record
//! cards with the admin's fields and the same buttons as notifications.

use serde_json::{Value, json};

use super::account::{connect_prompt, org_for, person, told};
use super::ask;
use super::card::title_field;
use super::links::RecordRef;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs, WorkError};
use crate::people::PeopleError;
use crate::salesforce::search::Sosl;
use crate::salesforce::{Actor, SalesforceError};
use crate::slack::inbound::SlashCommand;

/// The most results shown.
const RESULTS: usize = 5;
/// What is searched when the admin listed no card.
const DEFAULT_OBJECTS: [&str; 5] = ["Opportunity", "Account", "Case", "Contact", "Lead"];

/// Who a person's reads run as in `org`: their connection, else the integration user; an
/// expired connection is answered with a prompt to reconnect.
pub async fn reader(
    jobs: &Jobs,
    command: &SlashCommand,
    org: &SalesforceId,
) -> Result<Result<Actor, Value>, JobError> {
    let who = person(command);
    match jobs.people.actor(&who, org).await {
        Ok(Some(actor)) => Ok(Ok(actor)),
        Ok(None) => Ok(Ok(Actor::Integration)),
        Err(PeopleError::Expired) => connect_prompt(
            jobs,
            &who,
            org,
            "Your Salesforce connection has expired or was revoked; sign in again to go on.",
        )
        .await
        .map(Err),
        Err(e) => told(&jobs.people, e).map(Err),
    }
}

pub async fn find(jobs: &Jobs, command: &SlashCommand, text: &str) -> Result<Value, JobError> {
    let org = match org_for(jobs, command, None).await? {
        Ok(org) => org,
        Err(reply) => return Ok(reply),
    };
    let actor = match reader(jobs, command, &org).await? {
        Ok(actor) => actor,
        Err(reply) => return Ok(reply),
    };
    let objects: Vec<String> = if jobs.cards.by_object.is_empty() {
        DEFAULT_OBJECTS.iter().map(|o| (*o).to_owned()).collect()
    } else {
        jobs.cards.by_object.keys().cloned().collect()
    };
    // Search results hold the object's own fields; related ones (Account.Name) are left out.
    let fields: Vec<(String, Vec<String>)> = objects
        .iter()
        .map(|object| {
            let mut fields = vec!["Id".to_owned(), title_field(object).to_owned()];
            for f in jobs.cards.fields(object) {
                if !f.contains('.') && !fields.contains(f) {
                    fields.push(f.clone());
                }
            }
            (object.clone(), fields)
        })
        .collect();
    let refs: Vec<Vec<&str>> = fields
        .iter()
        .map(|(_, f)| f.iter().map(String::as_str).collect())
        .collect();
    let returning: Vec<(&str, &[&str])> = fields
        .iter()
        .zip(&refs)
        .map(|((object, _), f)| (object.as_str(), f.as_slice()))
        .collect();
    let sosl = match Sosl::find(text, &returning, RESULTS) {
        Ok(sosl) => sosl,
        Err(SalesforceError::InvalidArgument(why)) => return Ok(ask::ephemeral(&why)),
        Err(e) => return Err(JobError::of("search", WorkError::Salesforce(e))),
    };
    let client = jobs.salesforce.as_ref().ok_or_else(|| {
        JobError::dead(format!(
            "org {org} has no [orgs.salesforce] API credentials"
        ))
    })?;
    let rows = client
        .search_as(&org, &actor, &sosl)
        .await
        .map_err(|e| JobError::of("search", WorkError::Salesforce(e)))?;
    let shown: String = text.chars().take(80).collect();
    let shown = crate::render::mrkdwn::escape(&shown).into_owned();
    if rows.is_empty() {
        return Ok(ask::ephemeral(&format!(
            "Nothing in Salesforce matches “{shown}”."
        )));
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn",
        "text": format!("{} result(s) for “{shown}”", rows.len().min(RESULTS))}})];
    for mut row in rows.into_iter().take(RESULTS) {
        let object = row
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let id = crate::salesforce::record_id(&row);
        let (Some(object), Some(id)) = (object, id) else {
            continue;
        };
        row.remove("attributes");
        let record = RecordRef {
            org: Some(org.clone()),
            object: object.clone(),
            id,
        };
        let card_fields: Vec<String> = jobs
            .cards
            .fields(&object)
            .iter()
            .filter(|f| !f.contains('.'))
            .cloned()
            .collect();
        let card = super::card::render(jobs, &org, &record, row, &card_fields)
            .map_err(|e| JobError::of("search result card", e))?;
        blocks.push(json!({"type": "divider"}));
        blocks.extend(card.blocks);
    }
    blocks.truncate(50);
    Ok(
        json!({"response_type": "ephemeral", "text": format!("Results for “{shown}”"), "blocks": blocks}),
    )
}
