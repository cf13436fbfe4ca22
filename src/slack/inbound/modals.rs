//! What the interactivity request does itself, before answering: a click that needs a form
//! opens it now (its `trigger_id` lasts about 3 s and works once), and a submitted form is
//! checked now, because field errors can only be shown as the answer to the submission.

use std::time::Duration;

use serde_json::{Value, json};

use super::{InboundState, Interaction};
use crate::actions::modal::{self, Origin};
use crate::actions::{Declared, resolve};
use crate::routing::ButtonKind;

/// How long the request waits for `views.open`: Slack expects the answer within 3 s.
const OPEN_WITHIN: Duration = Duration::from_millis(2000);

/// What the request answers Slack besides the empty 200.
pub enum Answer {
    /// Empty 200: acknowledged (a submitted form is closed).
    Empty,
    /// Nothing is queued (the form was refused field by field).
    Refused(Value),
}

/// Opens the modal a click asks for, noting it on the interaction; a failure is left to the
/// job, which tells the person to click again.
pub async fn open_if_asked(state: &InboundState, interaction: &mut Interaction) {
    let routes = state.routes.load_full();
    let orgs: Vec<_> = state.config.orgs.iter().map(|o| o.id.clone()).collect();
    let Ok((button, declared)) = resolve(&routes, &orgs, interaction.value.as_deref()) else {
        return;
    };
    if !declared.opens_modal() {
        return;
    }
    let Some(trigger) = interaction.trigger_id.clone() else {
        return;
    };
    let origin = Origin {
        value: button.render(),
        channel: interaction.channel.clone(),
        ts: interaction.message_ts.clone(),
    };
    let deliverer = state.slack.for_org(&button.org);
    let card = match (&interaction.channel, &interaction.message_ts) {
        (Some(channel), Some(ts)) => deliverer.card(channel, ts).await.ok().flatten(),
        _ => None,
    };
    let name = card.as_ref().and_then(|c| {
        ["Name", "Subject", "CaseNumber"]
            .iter()
            .find_map(|f| c.event.record.get(*f).and_then(Value::as_str))
            .map(str::to_string)
    });
    let about = match &name {
        Some(name) => format!("{} · {name}", button.object),
        None => format!("{} {}", button.object, button.record),
    };
    let view = match &declared {
        Declared::Button(b) => match &b.kind {
            ButtonKind::LogTask {
                subject,
                due_in_days,
                ..
            } => {
                let due = chrono::Utc::now().date_naive()
                    + chrono::Duration::days(i64::from(due_in_days.unwrap_or(1)));
                let subject = subject
                    .clone()
                    .or_else(|| name.as_ref().map(|n| format!("Follow up: {n}")));
                modal::log_task(&origin, &about, subject.as_deref(), due)
            }
            _ => return,
        },
        Declared::GateReject => modal::gate_reject(&origin, &about),
        Declared::GateApprove => return,
    };
    match tokio::time::timeout(OPEN_WITHIN, deliverer.open_view(&trigger, &view)).await {
        Ok(Ok(id)) => interaction.opened_view = Some(id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "views.open failed; the person is asked to click again")
        }
        Err(_) => tracing::warn!("views.open took too long; the person is asked to click again"),
    }
}

/// Checks a submitted sfrelay form: its field errors are the answer (nothing is queued); a
/// good one closes, and the person hears how the write went where they clicked.
pub fn check_submission(interaction: &Interaction) -> Answer {
    let values = interaction.values.clone().unwrap_or(Value::Null);
    let checked = match interaction.callback_id.as_deref() {
        Some(modal::LOG_TASK) => {
            modal::read_follow_up(&values, chrono::Utc::now().date_naive()).map(|_| ())
        }
        Some(modal::GATE_REJECT) => modal::read_reason(&values).map(|_| ()),
        _ => return Answer::Empty,
    };
    match checked {
        Ok(()) => Answer::Empty,
        Err(errors) => Answer::Refused(json!({"response_action": "errors", "errors": errors})),
    }
}
