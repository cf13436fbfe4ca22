//! Acting from Slack: what a click on a card, or a submitted modal, does in Salesforce, and
//! how the person hears about it. The request handler has already verified the click, opened
//! any modal it needed and answered Slack; this is the queued job that follows, with the same
//! retries and dead letters as a post.
//!
//! - [`modal`]: the modals (follow-up, reason to reject), built and read;
//! - [`who`]: the person who clicked, as a Salesforce user (their own connection first, else
//!   their email), and who the write is made as;
//! - [`perform`]: the buttons that change the record (set a field, take it, decide a
//!   Salesforce approval) and the follow-up Task;
//! - [`gate`]: approval gates that hold a route's actions until someone decides;
//! - [`echo`]: recognising sfrelay's own writes when they come back;
//! - [`replies`]: answering through a click's `response_url`.

pub mod echo;
pub mod gate;
pub mod modal;
mod perform;
pub mod replies;
pub mod who;

use crate::deliver::DeliverError;
use crate::jobs::{JobError, Jobs, WorkError};
use crate::retry::Retry;
use crate::routing::RouteSet;
use crate::routing::buttons::{self, Button, ButtonKind};
use crate::salesforce::{SalesforceError, WriteError};
use crate::slack::inbound::{ButtonValue, Interaction};

/// Why an action stopped short.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The person is told this (their click cannot be carried out); nothing is retried.
    #[error("{0}")]
    Refused(String),
    /// Trouble worth another attempt, or a failure of the job itself.
    #[error(transparent)]
    Work(#[from] WorkError),
    /// Not yet: what the click needs is about to be there (a card just posted, not yet
    /// remembered). Put off, not counted as an attempt.
    #[error("put off for {0:?}")]
    NotYet(std::time::Duration),
    /// The person's own connection to this org has expired (or was revoked): nothing was
    /// written, and they are asked to connect again with a fresh link. Not retried.
    #[error("the person's Salesforce connection to org {0} has expired")]
    Reconnect(crate::event::SalesforceId),
    /// The action needs the person's own Salesforce user and nothing maps them to one: they
    /// are told `text`, with a sign-in link to connect their account (made only then, and
    /// never logged). Not retried.
    #[error("{text}")]
    Unmapped {
        text: String,
        org: crate::event::SalesforceId,
    },
}

impl From<WriteError> for ActError {
    fn from(e: WriteError) -> Self {
        if let WriteError::Salesforce(SalesforceError::ConnectionExpired { org }) = &e {
            return ActError::Reconnect(org.clone());
        }
        match e.retry() {
            Retry::Never => ActError::Refused(e.human_message()),
            _ => ActError::Work(WorkError::Write(e)),
        }
    }
}

impl From<DeliverError> for ActError {
    fn from(e: DeliverError) -> Self {
        ActError::Work(WorkError::Deliver(e))
    }
}

impl From<crate::store::StoreError> for ActError {
    fn from(e: crate::store::StoreError) -> Self {
        ActError::Work(WorkError::Store(e))
    }
}

/// What a click runs: a declared button, or an approval gate's own.
#[derive(Debug, Clone, PartialEq)]
pub enum Declared {
    Button(Button),
    GateApprove,
    GateReject,
}

impl Declared {
    /// Whether the click opens a modal in the request itself.
    pub fn opens_modal(&self) -> bool {
        match self {
            Declared::Button(b) => b.kind.opens_modal(),
            Declared::GateReject => true,
            Declared::GateApprove => false,
        }
    }
}

/// The button a value names and what it runs, checked against the running routes and the
/// orgs sfrelay serves; the error is what the person is told.
pub fn resolve(
    routes: &RouteSet,
    orgs: &[crate::event::SalesforceId],
    value: Option<&str>,
) -> Result<(ButtonValue, Declared), String> {
    let value = value.ok_or("This button is not valid: it carries no value.")?;
    let button =
        ButtonValue::parse(value).map_err(|why| format!("This button is not valid ({why})."))?;
    if !orgs.contains(&button.org) {
        return Err(format!(
            "This button is not valid (org {} is not one sfrelay serves).",
            button.org
        ));
    }
    let declared = match button.action.as_str() {
        buttons::GATE_APPROVE => Declared::GateApprove,
        buttons::GATE_REJECT => Declared::GateReject,
        name => match routes.button(name) {
            Some(b) => Declared::Button(b.clone()),
            None => {
                return Err(format!(
                    "The action \"{}\" on {} {} is not available (no route declares it).",
                    button.action, button.object, button.record
                ));
            }
        },
    };
    if let Declared::Button(Button {
        kind: ButtonKind::SetField { value: None, field },
        ..
    }) = &declared
        && button.choice.is_none()
    {
        return Err(format!(
            "This control sets {field} but carries no value to set."
        ));
    }
    Ok((button, declared))
}

/// One verified interaction's job.
pub async fn run(jobs: &Jobs, job_id: &str, interaction: &Interaction) -> Result<(), JobError> {
    let outcome = match interaction.kind.as_str() {
        // A link button ("Open in Salesforce", "Connect") carries no value: Slack tells the
        // app it was clicked, and its URL already did what it does.
        "block_actions" if interaction.value.is_none() => {
            tracing::debug!(action = ?interaction.action_id, "a link button was clicked");
            Ok(())
        }
        "block_actions"
            if interaction
                .action_id
                .as_deref()
                .is_some_and(|a| a.starts_with("home_")) =>
        {
            return crate::surfaces::home::act(jobs, interaction).await;
        }
        "block_actions" => perform::click(jobs, job_id, interaction).await,
        "view_submission" => perform::submitted(jobs, job_id, interaction).await,
        _ => {
            tracing::info!(kind = %interaction.kind, "Slack interaction needs no answer");
            Ok(())
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(ActError::Refused(text)) => {
            tracing::info!(user = %interaction.user, reason = %text, "action refused; the person is told");
            perform::tell(jobs, interaction, &text).await
        }
        Err(ActError::Work(e)) => {
            let error = JobError::of("Slack action", e);
            if let JobError::Failed {
                error: reason,
                retry: Retry::Never,
            } = &error
            {
                // It goes to the dead letters; the person is not left waiting in silence.
                let text = format!("This could not be done, and will not be tried again: {reason}");
                if let Err(e) = perform::tell(jobs, interaction, &text).await {
                    tracing::warn!(error = ?e, "cannot tell the person their action failed");
                }
            }
            Err(error)
        }
        Err(ActError::NotYet(delay)) => Err(JobError::Postponed { delay, held: false }),
        Err(ActError::Unmapped { text, org }) => {
            tracing::info!(user = %interaction.user, reason = %text, "action refused; the person is told and offered to connect");
            let text = who::with_connect_link(
                &jobs.people,
                interaction.team.as_deref(),
                &interaction.user,
                &org,
                &text,
            )
            .await;
            perform::tell(jobs, interaction, &text).await
        }
        Err(ActError::Reconnect(org)) => {
            tracing::info!(user = %interaction.user, %org, "the person's connection expired; they are asked to connect again");
            let text = who::reconnect_prompt(
                &jobs.people,
                interaction.team.as_deref(),
                &interaction.user,
                &org,
            )
            .await;
            perform::tell(jobs, interaction, &text).await
        }
    }
}
