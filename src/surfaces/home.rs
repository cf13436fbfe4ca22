//! The Home tab (`app_home_opened` → `views.publish`): each org with the person's connection to it
//! (connect, disconnect, make it Preferred), and for admins (`[slack] admins`) the Default org,
//! changeable here, the dead letters waiting and each org's health. A connect button carries a
//! fresh single-use link each time the tab is opened; the view is the person's alone.

use serde_json::{Value, json};

use super::health;
use crate::event::SalesforceId;
use crate::jobs::{JobError, Jobs, WorkError};
use crate::people::{ConnectionStatus, Person};
use crate::slack::inbound::Interaction;

/// The action ids of the Home tab's own controls.
pub const PREFER: &str = "home_prefer";
pub const DISCONNECT: &str = "home_disconnect";
pub const DEFAULT: &str = "home_default";

fn later(e: impl std::fmt::Display) -> JobError {
    JobError::later(format!("Home tab: {e}"))
}

/// Builds and publishes `who`'s Home view through the app they opened it in.
pub async fn publish(
    jobs: &Jobs,
    app_org: Option<&SalesforceId>,
    who: &Person,
) -> Result<(), JobError> {
    let view = build(jobs, who).await?;
    let deliverer = match app_org {
        Some(org) => jobs.slack.for_org(org),
        None => jobs.slack.default_app(),
    };
    deliverer
        .publish_view(&who.user, &view)
        .await
        .map_err(|e| JobError::of("views.publish", WorkError::Deliver(e)))
}

async fn build(jobs: &Jobs, who: &Person) -> Result<Value, JobError> {
    let people = &jobs.people;
    let esc = |s: &str| crate::render::mrkdwn::escape(s).into_owned();
    let preferred = people.preferred(who).await.map_err(later)?;
    let default = people.default_org().await.map_err(later)?;
    let orgs: Vec<SalesforceId> = jobs.replies.orgs().to_vec();
    let name = |org: &SalesforceId| people.org_name(org).unwrap_or(org.as_str()).to_owned();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": "Your Salesforce orgs"}}),
    ];
    if !people.connections_enabled() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": "Personal connections are off here (sfrelay has no public_url or encryption key): sfrelay reads as its integration user."}]}));
    }
    for org in &orgs {
        let status = people.status(who, org).await.map_err(later)?;
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
            format!("  _{}_", marks.join(", "))
        };
        let (line, connected) = match &status {
            ConnectionStatus::Connected { username } => {
                (format!("Connected as {}", esc(username)), true)
            }
            ConnectionStatus::Expired => (
                "Your connection expired or was revoked: connect again".to_owned(),
                false,
            ),
            ConnectionStatus::NotConnected => (
                "Not connected: sfrelay reads as its integration user".to_owned(),
                false,
            ),
        };
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("*{}*{marks}\n{line}", esc(&name(org)))}}));
        let mut buttons = Vec::new();
        if connected {
            buttons.push(json!({"type": "button", "action_id": DISCONNECT, "value": org.as_str(),
                "text": {"type": "plain_text", "text": "Disconnect"},
                "confirm": {"title": {"type": "plain_text", "text": "Disconnect?"},
                            "text": {"type": "mrkdwn", "text": "sfrelay forgets your Salesforce tokens for this org and revokes them."},
                            "confirm": {"type": "plain_text", "text": "Disconnect"},
                            "deny": {"type": "plain_text", "text": "Keep"}}}));
        } else if people.connections_enabled()
            && let Ok(link) = people.connect_link(who, org).await
        {
            buttons.push(
                json!({"type": "button", "action_id": "connect_salesforce", "style": "primary",
                "text": {"type": "plain_text", "text": "Connect"}, "url": link}),
            );
        }
        if preferred.as_ref() != Some(org) {
            buttons.push(
                json!({"type": "button", "action_id": PREFER, "value": org.as_str(),
                "text": {"type": "plain_text", "text": "Make Preferred"}}),
            );
        }
        if !buttons.is_empty() {
            blocks.push(json!({"type": "actions", "elements": buttons}));
        }
    }
    if people.is_admin(who) {
        blocks.push(json!({"type": "divider"}));
        blocks.push(json!({"type": "header", "text": {"type": "plain_text", "text": "Admin"}}));
        let options: Vec<Value> = orgs
            .iter()
            .map(|o| json!({"text": {"type": "plain_text", "text": name(o).chars().take(75).collect::<String>()}, "value": o.as_str()}))
            .collect();
        if !options.is_empty() {
            let mut select = json!({"type": "static_select", "action_id": DEFAULT, "options": options,
                "placeholder": {"type": "plain_text", "text": "Choose the Default org"}});
            if let Some(d) = &default {
                select["initial_option"] = json!({"text": {"type": "plain_text", "text": name(d).chars().take(75).collect::<String>()}, "value": d.as_str()});
            }
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
                "text": "*Default org*: used for people with no Preferred org"}, "accessory": select}));
        }
        // One queue serves every org: its dead letters are the workspace's, shown before the
        // orgs so that many orgs cannot push them past the view's block limit.
        let dead = jobs.queue.depth().await.ok().map(|d| d.dead);
        blocks.push(health::dead_letters(dead));
        let subscribed: Vec<(SalesforceId, String, Vec<String>)> = orgs
            .iter()
            .map(|o| (o.clone(), name(o), jobs.topics_of(o)))
            .collect();
        let now = crate::queue::now_ms();
        for h in health::gather(jobs, &subscribed).await.iter() {
            blocks.extend(health::blocks(h, now));
        }
    }
    blocks.truncate(100);
    Ok(json!({"type": "home", "blocks": blocks}))
}

/// A click on one of the Home tab's own controls; the tab is drawn again after it.
pub async fn act(jobs: &Jobs, interaction: &Interaction) -> Result<(), JobError> {
    let team = interaction.team.clone().unwrap_or_default();
    let who = Person::new(team, interaction.user.clone());
    let org = interaction
        .value
        .as_deref()
        .and_then(|v| SalesforceId::parse(v).ok())
        .filter(|o| jobs.replies.orgs().contains(o));
    let Some(org) = org else {
        tracing::warn!(action = ?interaction.action_id, "a Home tab control named no org sfrelay serves");
        return Ok(());
    };
    let done = match interaction.action_id.as_deref() {
        Some(PREFER) => jobs.people.set_preferred(&who, &org).await.map(|_| ()),
        Some(DISCONNECT) => jobs.people.disconnect(&who, &org).await.map(|_| ()),
        Some(DEFAULT) => jobs.people.set_default_org(&who, &org).await,
        _ => Ok(()),
    };
    if let Err(e) = done {
        tracing::info!(user = %who.user, error = %e, "a Home tab control was refused");
    }
    publish(jobs, interaction.app_org.as_ref(), &who).await
}
