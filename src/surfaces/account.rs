//! The commands about a person's own orgs: `orgs` (each org, which is Preferred and Default,
//! and whether they are connected), `org <name>` (set Preferred), `connect [org]` (a link to
//! sign in, only ever in a reply to them) and `disconnect [org]` (revoked at Salesforce).

use serde_json::{Value, json};

use super::ask;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs};
use crate::people::{ConnectionStatus, OrgChoice, People, PeopleError, Person};
use crate::slack::inbound::SlashCommand;

/// The person a command came from.
pub fn person(command: &SlashCommand) -> Person {
    Person::new(command.team.clone(), command.user.clone())
}

/// The org called `name` (its configured name, case aside, or its Id).
pub fn org_named<'a>(jobs: &'a Jobs, name: &str) -> Option<&'a SalesforceId> {
    let name = name.trim();
    jobs.replies.orgs().iter().find(|o| {
        o.as_str().eq_ignore_ascii_case(name)
            || SalesforceId::parse(name).is_ok_and(|id| id == **o)
            || jobs
                .people
                .org_name(o)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

fn name_of(people: &People, org: &SalesforceId) -> String {
    people.org_name(org).unwrap_or(org.as_str()).to_owned()
}

/// A people error in words for the person; trouble worth another try is the job's.
pub fn told(people: &People, e: PeopleError) -> Result<Value, JobError> {
    match e {
        PeopleError::Store(_) | PeopleError::Salesforce(_) => {
            Err(JobError::later(format!("people: {e}")))
        }
        PeopleError::UnknownOrg(org) => Ok(ask::ephemeral(&format!(
            "{org} is not an org sfrelay serves."
        ))),
        PeopleError::NoApiAccess(org) => Ok(ask::ephemeral(&format!(
            "sfrelay has no API access to {} yet: ask its admin.",
            name_of(people, &org)
        ))),
        other => Ok(ask::ephemeral(&other.to_string())),
    }
}

/// The org a command works in: named, else chosen (Preferred, Default, the only one); an
/// ambiguous choice is answered with the choices.
pub async fn org_for(
    jobs: &Jobs,
    command: &SlashCommand,
    named: Option<&str>,
) -> Result<Result<SalesforceId, Value>, JobError> {
    if let Some(name) = named {
        return Ok(match org_named(jobs, name) {
            Some(org) => Ok(org.clone()),
            None => Err(ask::ephemeral(&format!(
                "No org is called “{name}”: `{} orgs` lists them.",
                command.command
            ))),
        });
    }
    match jobs
        .people
        .choose_org(&person(command), command.app_org.as_ref())
        .await
    {
        Ok(OrgChoice::One(org)) => Ok(Ok(org)),
        Ok(OrgChoice::Ambiguous(orgs)) => {
            let names: Vec<String> = orgs.iter().map(|o| name_of(&jobs.people, o)).collect();
            Ok(Err(ask::ephemeral(&format!(
                "Which org? sfrelay serves {}. Name one (`{} org <name>` makes it your Preferred org).",
                names.join(", "),
                command.command
            ))))
        }
        Ok(OrgChoice::NoOrgs) => Ok(Err(ask::ephemeral(
            "sfrelay reads no Salesforce org yet: its admin has not set API credentials.",
        ))),
        Err(e) => told(&jobs.people, e).map(Err),
    }
}

/// `orgs`.
pub async fn orgs(jobs: &Jobs, command: &SlashCommand) -> Result<Value, JobError> {
    let who = person(command);
    let people = &jobs.people;
    let preferred = people.preferred(&who).await;
    let default = people.default_org().await;
    let (preferred, default) = match (preferred, default) {
        (Ok(p), Ok(d)) => (p, d),
        (Err(e), _) | (_, Err(e)) => return told(people, e),
    };
    let mut lines = Vec::new();
    for org in jobs.replies.orgs() {
        let status = match people.status(&who, org).await {
            Ok(ConnectionStatus::Connected { username }) => format!("connected as {username}"),
            Ok(ConnectionStatus::Expired) => "your connection expired: reconnect".to_owned(),
            Ok(ConnectionStatus::NotConnected) => "not connected".to_owned(),
            Err(e) => return told(people, e),
        };
        let mut marks = Vec::new();
        if preferred.as_ref() == Some(org) {
            marks.push("Preferred");
        }
        if default.as_ref() == Some(org) {
            marks.push("Default");
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!(" ({})", marks.join(", "))
        };
        lines.push(format!(
            "• *{}*{marks}: {status}",
            crate::render::mrkdwn::escape(&name_of(people, org))
        ));
    }
    let text = if lines.is_empty() {
        "sfrelay serves no org yet.".to_owned()
    } else {
        lines.join("\n")
    };
    Ok(ask::ephemeral_mrkdwn(text))
}

/// `org <name>`.
pub async fn set_preferred(
    jobs: &Jobs,
    command: &SlashCommand,
    name: &str,
) -> Result<Value, JobError> {
    let org = match org_for(jobs, command, Some(name)).await? {
        Ok(org) => org,
        Err(reply) => return Ok(reply),
    };
    match jobs.people.set_preferred(&person(command), &org).await {
        Ok(()) => Ok(ask::ephemeral(&format!(
            "{} is now your Preferred org.",
            name_of(&jobs.people, &org)
        ))),
        Err(e) => told(&jobs.people, e),
    }
}

/// A reply holding a sign-in link for `org` (the link is the person's alone).
pub async fn connect_prompt(
    jobs: &Jobs,
    who: &Person,
    org: &SalesforceId,
    why: &str,
) -> Result<Value, JobError> {
    let link = match jobs.people.connect_link(who, org).await {
        Ok(link) => link,
        Err(e) => return told(&jobs.people, e),
    };
    let name = name_of(&jobs.people, org);
    let text = format!("{why} The link works once, for you only, for 10 minutes.",);
    Ok(json!({
        "response_type": "ephemeral",
        "text": format!("Connect your Salesforce account to {name}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": crate::render::mrkdwn::escape(&text)}},
            {"type": "actions", "elements": [{"type": "button", "action_id": "connect_salesforce",
              "style": "primary", "text": {"type": "plain_text", "text": format!("Connect to {name}")},
              "url": link}]}
        ]
    }))
}

/// `connect [org]`.
pub async fn connect(
    jobs: &Jobs,
    command: &SlashCommand,
    named: Option<&str>,
) -> Result<Value, JobError> {
    let org = match org_for(jobs, command, named).await? {
        Ok(org) => org,
        Err(reply) => return Ok(reply),
    };
    let why = format!(
        "Sign in to {} to let sfrelay act as you there: searches, cards and buttons then show and do only what your own access allows.",
        name_of(&jobs.people, &org)
    );
    connect_prompt(jobs, &person(command), &org, &why).await
}

/// `disconnect [org]`.
pub async fn disconnect(
    jobs: &Jobs,
    command: &SlashCommand,
    named: Option<&str>,
) -> Result<Value, JobError> {
    let org = match org_for(jobs, command, named).await? {
        Ok(org) => org,
        Err(reply) => return Ok(reply),
    };
    let name = name_of(&jobs.people, &org);
    match jobs.people.disconnect(&person(command), &org).await {
        Ok(true) => Ok(ask::ephemeral(&format!(
            "Disconnected from {name}: sfrelay no longer holds your Salesforce tokens there."
        ))),
        Ok(false) => Ok(ask::ephemeral(&format!(
            "You were not connected to {name}."
        ))),
        Err(e) => told(&jobs.people, e),
    }
}
