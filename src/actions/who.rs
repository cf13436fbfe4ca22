//! Who clicked, in Salesforce's terms, and so who a write is made as. A person's own live
//! connection to the org comes first: they act as the user they signed in as, whatever
//! `[orgs.salesforce] act_as` says. An expired one is not passed over in silence: the person
//! is asked to connect again ([`ActError::Reconnect`]). Without a connection: the Slack user's
//! verified email (`users.info`), the one active Salesforce User of the org with that email
//! (cached), and `act_as`: the integration user on the person's behalf, or the person.

use crate::config::ActAs;
use crate::event::SalesforceId;
use crate::jobs::{Jobs, WorkError};
use crate::people::{People, PeopleError, Person};
use crate::salesforce::{Actor, SalesforceUser, UserLookupError};

use super::ActError;

/// The person who clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clicker {
    pub slack_user: String,
    /// Their Salesforce user in the card's org: the one their connection signed in as, else
    /// the one their email maps to.
    pub salesforce: Option<SalesforceUser>,
    /// Why there is none, in words for them.
    pub unmapped: Option<String>,
    /// Their own live connection to the org; writes run with it.
    pub connection: Option<Actor>,
    /// The org they are identified in.
    pub org: SalesforceId,
}

impl Clicker {
    /// How a card names them.
    pub fn mention(&self) -> String {
        format!("<@{}>", self.slack_user)
    }

    /// Who the write is made as: their connection, else as `act_as` says; as themselves only
    /// with a Salesforce user.
    pub fn actor(&self, act_as: ActAs) -> Result<Actor, ActError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        match (act_as, &self.salesforce) {
            (ActAs::Integration, _) => Ok(Actor::Integration),
            (ActAs::User, Some(user)) => Ok(Actor::User {
                username: user.username.clone(),
            }),
            (ActAs::User, None) => Err(self
                .unmapped("Nothing was changed: sfrelay acts as you in this Salesforce org, and ")),
        }
    }

    /// The refusal for an action that needs their Salesforce user: `head`, then why they have
    /// none. The person is also offered a sign-in link ([`ActError::Unmapped`]).
    pub fn unmapped(&self, head: &str) -> ActError {
        ActError::Unmapped {
            text: format!(
                "{head}{}",
                self.unmapped
                    .as_deref()
                    .unwrap_or("no Salesforce user matches your Slack account.")
            ),
            org: self.org.clone(),
        }
    }

    /// The Salesforce user Id the record should belong to (a Task's owner, a Case's new owner).
    pub fn owner_id(&self) -> Option<&SalesforceId> {
        self.salesforce.as_ref().map(|u| &u.id)
    }
}

/// Finds who `slack_user` (of workspace `team`, when known) is in `org`. No connection, no
/// email, or no single active user with it, is not an error: the person is then unmapped, and
/// what that means depends on the action.
pub async fn identify(
    jobs: &Jobs,
    org: &SalesforceId,
    team: Option<&str>,
    slack_user: &str,
) -> Result<Clicker, ActError> {
    let person = team.map(|team| Person::new(team, slack_user));
    if let Some(person) = &person {
        match jobs.people.acting(person, org).await {
            Ok(Some((actor, user))) => {
                return Ok(Clicker {
                    slack_user: slack_user.to_string(),
                    salesforce: Some(user),
                    unmapped: None,
                    connection: Some(actor),
                    org: org.clone(),
                });
            }
            Ok(None) => {}
            Err(PeopleError::Expired) => return Err(ActError::Reconnect(org.clone())),
            Err(PeopleError::Store(e)) => return Err(ActError::Work(WorkError::Store(e))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the person's connection; going by their email")
            }
        }
    }
    by_email(jobs, org, slack_user).await
}

/// The person by their Slack email.
async fn by_email(jobs: &Jobs, org: &SalesforceId, slack_user: &str) -> Result<Clicker, ActError> {
    let unmapped = |why: &str| Clicker {
        slack_user: slack_user.to_string(),
        salesforce: None,
        unmapped: Some(why.to_string()),
        connection: None,
        org: org.clone(),
    };
    let Some(users) = &jobs.users else {
        return Ok(unmapped("this org has no Salesforce API connection."));
    };
    let email = jobs
        .slack
        .for_org(org)
        .user_email(slack_user)
        .await
        .map_err(|e| ActError::Work(WorkError::Deliver(e)))?;
    let Some(email) = email else {
        return Ok(unmapped(
            "your Slack profile shows no email to match a Salesforce user with.",
        ));
    };
    match users.by_email(org, &email).await {
        Ok(user) => Ok(Clicker {
            slack_user: slack_user.to_string(),
            salesforce: Some(user),
            unmapped: None,
            connection: None,
            org: org.clone(),
        }),
        Err(UserLookupError::NotFound | UserLookupError::InvalidEmail) => {
            Ok(unmapped("no active Salesforce user has your Slack email."))
        }
        Err(UserLookupError::Ambiguous) => Ok(unmapped(
            "more than one active Salesforce user has your Slack email; ask your admin to fix that.",
        )),
        Err(UserLookupError::Salesforce(e)) => Err(ActError::Work(WorkError::Salesforce(e))),
    }
}

/// What a person whose connection to `org` expired is told: connect again, with a fresh
/// link when one can be made. The link is made here, at the last moment, and never logged.
pub async fn reconnect_prompt(
    people: &People,
    team: Option<&str>,
    user: &str,
    org: &SalesforceId,
) -> String {
    let name = people
        .org_name(org)
        .map_or_else(|| org.to_string(), str::to_owned);
    let head = format!(
        "Nothing was changed: your Salesforce connection to {name} has expired or was revoked."
    );
    match link(people, team, user, org).await {
        Ok(link) => format!("{head}\n<{link}|Connect again>, then click once more."),
        Err(e) => {
            tracing::warn!(error = %e, "cannot make a link to reconnect");
            format!("{head} A link to connect again cannot be made: {e}.")
        }
    }
}

/// `text` (why the person has no Salesforce user), with a sign-in link when connections are
/// set up, so they can act as themselves next time. Never logged.
pub async fn with_connect_link(
    people: &People,
    team: Option<&str>,
    user: &str,
    org: &SalesforceId,
    text: &str,
) -> String {
    if !people.connections_enabled() {
        return text.to_owned();
    }
    match link(people, team, user, org).await {
        Ok(link) => format!(
            "{text}\n<{link}|Connect your Salesforce account>, then click again to act as yourself."
        ),
        Err(e) => {
            tracing::info!(error = %e, "no sign-in link offered");
            text.to_owned()
        }
    }
}

async fn link(
    people: &People,
    team: Option<&str>,
    user: &str,
    org: &SalesforceId,
) -> Result<String, PeopleError> {
    let team = team.ok_or(PeopleError::InvalidPerson)?;
    people.connect_link(&Person::new(team, user), org).await
}
