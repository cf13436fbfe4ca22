//! Who clicked, in Salesforce's terms: the Slack user's verified email (`users.info`), the one
//! active Salesforce User of the org with that email (cached), and so who a write is made as
//! (`[orgs.salesforce] act_as`): the integration user on the person's behalf, or the person.

use crate::config::ActAs;
use crate::event::SalesforceId;
use crate::jobs::{Jobs, WorkError};
use crate::salesforce::{Actor, SalesforceUser, UserLookupError};

use super::ActError;

/// The person who clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clicker {
    pub slack_user: String,
    /// Their Salesforce user in the card's org, when their email maps to one.
    pub salesforce: Option<SalesforceUser>,
    /// Why there is none, in words for them.
    pub unmapped: Option<String>,
}

impl Clicker {
    /// How a card names them.
    pub fn mention(&self) -> String {
        format!("<@{}>", self.slack_user)
    }

    /// Who the write is made as under `act_as`; as themselves only with a Salesforce user.
    pub fn actor(&self, act_as: ActAs) -> Result<Actor, ActError> {
        match (act_as, &self.salesforce) {
            (ActAs::Integration, _) => Ok(Actor::Integration),
            (ActAs::User, Some(user)) => Ok(Actor::User {
                username: user.username.clone(),
            }),
            (ActAs::User, None) => Err(ActError::Refused(format!(
                "Nothing was changed: sfrelay acts as you in this Salesforce org, and {}",
                self.unmapped
                    .as_deref()
                    .unwrap_or("no Salesforce user matches your Slack account.")
            ))),
        }
    }

    /// The Salesforce user Id the record should belong to (a Task's owner, a Case's new owner).
    pub fn owner_id(&self) -> Option<&SalesforceId> {
        self.salesforce.as_ref().map(|u| &u.id)
    }
}

/// Finds who `slack_user` is in `org`. No email, or no single active user with it, is not an
/// error: the person is then unmapped, and what that means depends on the action.
pub async fn identify(
    jobs: &Jobs,
    org: &SalesforceId,
    slack_user: &str,
) -> Result<Clicker, ActError> {
    let unmapped = |why: &str| Clicker {
        slack_user: slack_user.to_string(),
        salesforce: None,
        unmapped: Some(why.to_string()),
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
