//! Carrying out a click: the record is written (once, whatever the retries), the card redrawn
//! in place with what happened, and the person told when it could not be done.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::echo::{self, OwnWrite};
use super::modal::{self, Origin};
use super::who::{self, Clicker};
use super::{ActError, Declared, gate, replies, resolve};
use crate::deliver::Deliverer;
use crate::deliver::cards::Card;
use crate::event::{Event, SalesforceId, parse_salesforce_time};
use crate::jobs::{JobError, Jobs};
use crate::keys::Key;
use crate::routing::{ButtonKind, RouteSet};
use crate::salesforce::{Actor, ApprovalAction, SalesforceClient, Soql, UpdateOptions, WriteError};
use crate::slack::inbound::{ButtonValue, Interaction};

/// What a write's ledger entry holds once the write is made.
const WRITTEN: &str = "written";

/// A block action.
pub(super) async fn click(
    jobs: &Jobs,
    job_id: &str,
    interaction: &Interaction,
) -> Result<(), ActError> {
    let routes = jobs.routes.load_full();
    let (button, declared) = resolve(&routes, jobs.replies.orgs(), interaction.value.as_deref())
        .map_err(ActError::Refused)?;
    if declared.opens_modal() {
        // The request opened the modal; its submission does the work.
        return match interaction.opened_view {
            Some(_) => Ok(()),
            None => Err(ActError::Refused(
                "The form could not be opened in time; click the button again.".into(),
            )),
        };
    }
    let on = Target::of(jobs, &button, interaction).await?;
    match declared {
        Declared::Button(b) => match &b.kind {
            ButtonKind::SetField { field, value } => {
                let value = match (value, &button.choice) {
                    (Some(v), _) => v.clone(),
                    (None, Some(choice)) => Value::String(choice.clone()),
                    (None, None) => return Err(ActError::Refused("Nothing was chosen.".into())),
                };
                set_field(jobs, job_id, &routes, &on, field, value).await
            }
            ButtonKind::Take => take(jobs, job_id, &routes, &on).await,
            ButtonKind::Workitem { approve } => {
                workitem(jobs, job_id, &routes, &on, *approve).await
            }
            ButtonKind::LogTask { .. } => Ok(()),
        },
        Declared::GateApprove => gate::decide(jobs, job_id, &routes, &on, true, None).await,
        Declared::GateReject => Ok(()),
    }
}

/// A submitted modal.
pub(super) async fn submitted(
    jobs: &Jobs,
    job_id: &str,
    interaction: &Interaction,
) -> Result<(), ActError> {
    let callback = interaction.callback_id.as_deref().unwrap_or_default();
    if callback != modal::LOG_TASK && callback != modal::GATE_REJECT {
        tracing::info!(
            callback,
            "Slack interaction needs no answer (a form sfrelay did not open)"
        );
        return Ok(());
    }
    let origin = Origin::decode(interaction.private_metadata.as_deref().unwrap_or_default())
        .map_err(ActError::Refused)?;
    let routes = jobs.routes.load_full();
    let (button, declared) =
        resolve(&routes, jobs.replies.orgs(), Some(&origin.value)).map_err(ActError::Refused)?;
    let mut from = interaction.clone();
    from.channel = origin.channel.clone();
    from.message_ts = origin.ts.clone();
    let on = Target::of(jobs, &button, &from).await?;
    let values = interaction.values.clone().unwrap_or(Value::Null);
    match declared {
        Declared::GateReject => {
            let reason = modal::read_reason(&values)
                .map_err(|_| ActError::Refused("Say why it is rejected.".into()))?;
            // The card itself now says who rejected it and why.
            gate::decide(jobs, job_id, &routes, &on, false, Some(&reason)).await
        }
        Declared::Button(b) => match &b.kind {
            ButtonKind::LogTask { status, .. } => {
                let today = chrono::Utc::now().date_naive();
                let follow_up = modal::read_follow_up(&values, today).map_err(|errors| {
                    let first = errors.values().filter_map(Value::as_str).next();
                    ActError::Refused(first.unwrap_or("The form is not complete.").to_string())
                })?;
                let clicker = who::identify(
                    jobs,
                    &on.button.org,
                    interaction.team.as_deref(),
                    &interaction.user,
                )
                .await?;
                let actor = clicker.actor(jobs.orgs.act_as(&on.button.org))?;
                log_task(jobs, job_id, &on, &clicker, &actor, status, &follow_up).await?;
                let text = format!(
                    "✅ Logged *{}*, due {}.",
                    crate::render::mrkdwn::escape(&follow_up.subject),
                    follow_up.due.format("%Y-%m-%d")
                );
                told(&on, interaction, &text).await
            }
            _ => Ok(()),
        },
        Declared::GateApprove => Ok(()),
    }
}

/// What a click acts on: the record, the card it was on (when sfrelay remembers it) and the
/// Salesforce connection of the org.
pub(super) struct Target<'a> {
    pub button: ButtonValue,
    pub card: Option<Card>,
    pub interaction: &'a Interaction,
    pub deliverer: &'a Deliverer,
    pub salesforce: Option<Arc<SalesforceClient>>,
}

impl<'a> Target<'a> {
    async fn of(
        jobs: &'a Jobs,
        button: &ButtonValue,
        interaction: &'a Interaction,
    ) -> Result<Target<'a>, ActError> {
        let deliverer = jobs.slack.for_org(&button.org);
        let card = match (&interaction.channel, &interaction.message_ts) {
            (Some(channel), Some(ts)) => deliverer
                .card(channel, ts)
                .await?
                .filter(|c| c.event.record_id == button.record),
            _ => None,
        };
        if card.is_none() && just_posted(interaction) {
            // sfrelay remembers a card right after Slack has it: a click that quick waits.
            return Err(ActError::NotYet(CARD_POLL));
        }
        Ok(Target {
            button: button.clone(),
            card,
            interaction,
            deliverer,
            salesforce: jobs.salesforce.clone().filter(|sf| sf.has_org(&button.org)),
        })
    }

    pub fn salesforce(&self) -> Result<&SalesforceClient, ActError> {
        self.salesforce.as_deref().ok_or_else(|| {
            ActError::Refused(
                "sfrelay has no Salesforce API connection for this org, so it cannot change \
                 records there. Ask your admin to configure one."
                    .into(),
            )
        })
    }

    /// What decides "once" for this card: its message, else the record.
    pub fn scope(&self) -> String {
        match (&self.interaction.channel, &self.interaction.message_ts) {
            (Some(channel), Some(ts)) => format!("{channel}:{ts}"),
            _ => format!("{}:{}", self.button.org, self.button.record),
        }
    }
}

/// How often a click on a card posted moments ago looks for it again.
const CARD_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How long after its post a card sfrelay drew is surely remembered.
const CARD_REMEMBERED_WITHIN: f64 = 10.0;

/// Whether the click is on a message of sfrelay's (it carries sfrelay's buttons) posted
/// moments ago, so that it may not be remembered yet.
fn just_posted(interaction: &Interaction) -> bool {
    let ours = interaction
        .message_blocks
        .as_deref()
        .is_some_and(crate::deliver::cards::has_buttons);
    let posted = interaction
        .message_ts
        .as_deref()
        .and_then(|ts| ts.parse::<f64>().ok());
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    ours && posted.is_some_and(|at| (0.0..CARD_REMEMBERED_WITHIN).contains(&(now - at)))
}

/// The `LastModifiedDate` a card showed, for `If-Unmodified-Since`.
fn shown_version(card: Option<&Card>) -> Option<chrono::DateTime<chrono::Utc>> {
    let record = &card?.event.record;
    parse_salesforce_time(record.get("LastModifiedDate")?.as_str()?)
}

/// The card's event with the record as Salesforce has it now (the card's own fields read
/// again), else with `fields` written over it when it cannot be read.
async fn now_showing(on: &Target<'_>, card: &Card, fields: &Map<String, Value>) -> Event {
    let mut event = card.event.clone();
    for (k, v) in fields {
        event.record.insert(k.clone(), v.clone());
    }
    let Ok(sf) = on.salesforce() else {
        return event;
    };
    let mut wanted: Vec<&str> = card
        .event
        .record
        .iter()
        .filter(|(k, v)| !v.is_object() && k.as_str() != "attributes")
        .map(|(k, _)| k.as_str())
        .collect();
    wanted.extend(
        fields
            .iter()
            .filter(|(_, v)| !v.is_object())
            .map(|(k, _)| k.as_str()),
    );
    wanted.push("LastModifiedDate");
    wanted.sort_unstable();
    wanted.dedup();
    match sf
        .get_record(
            &on.button.org,
            &on.button.object,
            on.button.record.as_str(),
            &wanted,
        )
        .await
    {
        Ok(record) => {
            for (k, v) in &record {
                if k != "attributes" {
                    event.record.insert(k.clone(), v.clone());
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the record again; the card shows what was written")
        }
    }
    event
}

/// Redraws the card (without the buttons in `taken`, with `note`), or, for a card sfrelay
/// does not remember, tells the person.
async fn show(
    routes: &RouteSet,
    on: &Target<'_>,
    fields: &Map<String, Value>,
    taken: &[&str],
    note: &str,
) -> Result<(), ActError> {
    match &on.card {
        Some(card) => {
            let event = now_showing(on, card, fields).await;
            on.deliverer
                .redraw(routes, card, &event, taken, Some(note))
                .await?;
            Ok(())
        }
        None => Err(ActError::Refused(format!("Done. {note}"))),
    }
}

/// Whether the record shows every one of `fields` (an earlier attempt's write landed).
async fn record_shows(on: &Target<'_>, fields: &Map<String, Value>) -> Result<bool, ActError> {
    let sf = on.salesforce()?;
    let names: Vec<&str> = fields.keys().map(String::as_str).collect();
    let record = sf
        .get_record(
            &on.button.org,
            &on.button.object,
            on.button.record.as_str(),
            &names,
        )
        .await
        .map_err(|e| ActError::Work(crate::jobs::WorkError::Salesforce(e)))?;
    Ok(fields
        .iter()
        .all(|(k, v)| record.get(k).is_some_and(|have| echo::same(have, v))))
}

/// Updates the record once for this job: a retry after the write landed does not write (nor
/// report its own write as someone else's change).
async fn update_once(
    jobs: &Jobs,
    job_id: &str,
    routes: &RouteSet,
    on: &Target<'_>,
    actor: &Actor,
    fields: &Map<String, Value>,
    options: UpdateOptions,
) -> Result<(), ActError> {
    let sf = on.salesforce()?;
    let acted = Key::acted(job_id);
    let before = jobs
        .store
        .claim(acted.as_str(), "pending", acted.ttl())
        .await?;
    let landed = match before.as_deref() {
        Some(WRITTEN) => true,
        Some(_) => record_shows(on, fields).await?,
        None => false,
    };
    if !landed {
        let card_route = on.card.as_ref().map(|c| c.route.as_str());
        let write = OwnWrite {
            routes: card_route.map_or_else(Vec::new, |r| echo::card_routes(routes, r)),
            fields: fields.clone(),
        };
        echo::note(
            jobs.store.as_ref(),
            &on.button.org,
            &on.button.record,
            &write,
        )
        .await?;
        let written = sf
            .update_as(
                &on.button.org,
                actor,
                &on.button.object,
                on.button.record.as_str(),
                fields,
                options,
            )
            .await;
        if let Err(e) = written {
            if matches!(e, WriteError::Stale { .. }) {
                stale(routes, on).await;
            }
            if e.retry() == crate::retry::Retry::Never {
                jobs.store.delete(acted.as_str()).await?;
            }
            return Err(e.into());
        }
    }
    jobs.store.set(acted.as_str(), WRITTEN, acted.ttl()).await?;
    Ok(())
}

/// A stale card is drawn again with the record as it is now.
async fn stale(routes: &RouteSet, on: &Target<'_>) {
    if let Some(card) = &on.card {
        let event = now_showing(on, card, &Map::new()).await;
        if let Err(e) = on.deliverer.redraw(routes, card, &event, &[], None).await {
            tracing::warn!(error = %e, "cannot refresh the stale card");
        }
    }
}

/// Who acted, as the card says it.
fn by(clicker: &Clicker, actor: &Actor) -> String {
    match actor {
        Actor::Integration => format!("{} (written by sfrelay on their behalf)", clicker.mention()),
        Actor::User { .. } | Actor::Connection(_) => clicker.mention(),
    }
}

async fn set_field(
    jobs: &Jobs,
    job_id: &str,
    routes: &RouteSet,
    on: &Target<'_>,
    field: &str,
    value: Value,
) -> Result<(), ActError> {
    on.salesforce()?;
    let clicker = who::identify(
        jobs,
        &on.button.org,
        on.interaction.team.as_deref(),
        &on.interaction.user,
    )
    .await?;
    let actor = clicker.actor(jobs.orgs.act_as(&on.button.org))?;
    let mut fields = Map::new();
    fields.insert(field.to_string(), value.clone());
    let options = UpdateOptions {
        if_unmodified_since: shown_version(on.card.as_ref()),
        auto_assign: None,
    };
    update_once(jobs, job_id, routes, on, &actor, &fields, options).await?;
    let shown = match &value {
        Value::String(s) => crate::render::mrkdwn::escape(s).into_owned(),
        other => other.to_string(),
    };
    let note = format!("✏️ {field} set to *{shown}* by {}", by(&clicker, &actor));
    show(routes, on, &fields, &[], &note).await
}

/// Runs `work`, the decision `what` on this card, for the first job only: another click (a
/// double click, a second person) is told who `did` it; this job's own retry goes on. A
/// refusal lets the decision go, for the next person to take.
async fn once_per_card<T>(
    jobs: &Jobs,
    job_id: &str,
    on: &Target<'_>,
    what: &str,
    did: &str,
    work: impl std::future::Future<Output = Result<T, ActError>>,
) -> Result<T, ActError> {
    let lock = Key::decided(&format!("{what}:{}", on.scope()));
    let mine = format!("{job_id} {}", on.interaction.user);
    if let Some(holder) = jobs.store.claim(lock.as_str(), &mine, lock.ttl()).await?
        && holder != mine
    {
        let who = holder.rsplit(' ').next().unwrap_or_default();
        return Err(ActError::Refused(format!(
            "<@{who}> has already {did} this."
        )));
    }
    let done = work.await;
    if let Err(ActError::Refused(_) | ActError::Reconnect(_) | ActError::Unmapped { .. }) = &done {
        jobs.store.release(lock.as_str(), &mine).await?;
    }
    done
}

async fn take(
    jobs: &Jobs,
    job_id: &str,
    routes: &RouteSet,
    on: &Target<'_>,
) -> Result<(), ActError> {
    on.salesforce()?;
    let user = &on.interaction.user;
    let taken = once_per_card(jobs, job_id, on, "take", "taken", async {
        let clicker =
            who::identify(jobs, &on.button.org, on.interaction.team.as_deref(), user).await?;
        let Some(owner) = clicker.owner_id().cloned() else {
            return Err(clicker.unmapped("You cannot take this: "));
        };
        let actor = clicker.actor(jobs.orgs.act_as(&on.button.org))?;
        let mut fields = Map::new();
        fields.insert("OwnerId".into(), Value::String(owner.to_string()));
        let options = UpdateOptions {
            if_unmodified_since: None,
            auto_assign: Some(false),
        };
        update_once(jobs, job_id, routes, on, &actor, &fields, options).await?;
        Ok((clicker, actor, fields))
    })
    .await;
    let (clicker, actor, fields) = taken?;
    let note = format!("🙋 Taken by {}", by(&clicker, &actor));
    // The card shows its new owner by name, as the record's Owner would.
    let mut shown = fields;
    if let Some(user) = &clicker.salesforce {
        shown.insert("Owner".into(), serde_json::json!({"Name": user.name}));
    }
    show(routes, on, &shown, &[on.button.action.as_str()], &note).await
}

/// Approves or rejects the record's pending Salesforce approval work item.
async fn workitem(
    jobs: &Jobs,
    job_id: &str,
    routes: &RouteSet,
    on: &Target<'_>,
    approve: bool,
) -> Result<(), ActError> {
    let sf = on.salesforce()?;
    let user = &on.interaction.user;
    let decided = once_per_card(jobs, job_id, on, "workitem", "decided", async {
        let clicker =
            who::identify(jobs, &on.button.org, on.interaction.team.as_deref(), user).await?;
        let actor = clicker.actor(jobs.orgs.act_as(&on.button.org))?;
        let items = sf
            .pending_workitems(&on.button.org, &on.button.record)
            .await
            .map_err(|e| ActError::Work(crate::jobs::WorkError::Salesforce(e)))?;
        let Some(item) = items.first() else {
            return Err(ActError::Refused(
                "This record has no pending approval any more (it may have been decided in \
                 Salesforce)."
                    .into(),
            ));
        };
        let action = if approve {
            ApprovalAction::Approve
        } else {
            ApprovalAction::Reject
        };
        let comment = format!("Decided in Slack by {}", clicker.mention());
        sf.decide_workitem(&on.button.org, &actor, &item.id, action, Some(&comment))
            .await?;
        Ok((clicker, actor))
    })
    .await;
    let (clicker, actor) = decided?;
    let note = if approve {
        format!("✅ Approved by {}", by(&clicker, &actor))
    } else {
        format!("❌ Rejected by {}", by(&clicker, &actor))
    };
    let taken: Vec<&str> = routes
        .every_button()
        .filter(|b| matches!(b.kind, ButtonKind::Workitem { .. }))
        .map(|b| b.name.as_str())
        .collect();
    show(routes, on, &Map::new(), &taken, &note).await
}

/// The follow-up Task, created once for this job.
async fn log_task(
    jobs: &Jobs,
    job_id: &str,
    on: &Target<'_>,
    clicker: &Clicker,
    actor: &Actor,
    status: &str,
    follow_up: &modal::FollowUp,
) -> Result<SalesforceId, ActError> {
    let sf = on.salesforce()?;
    let mut fields = Map::new();
    fields.insert("Subject".into(), follow_up.subject.clone().into());
    fields.insert(
        "ActivityDate".into(),
        follow_up.due.format("%Y-%m-%d").to_string().into(),
    );
    fields.insert("Status".into(), status.into());
    // A Lead or Contact is who the Task is about; anything else is what.
    let relation = if matches!(on.button.object.as_str(), "Lead" | "Contact") {
        "WhoId"
    } else {
        "WhatId"
    };
    fields.insert(relation.into(), on.button.record.to_string().into());
    if let Some(owner) = clicker.owner_id() {
        fields.insert("OwnerId".into(), owner.to_string().into());
    }
    let mut description = follow_up.comment.clone().unwrap_or_default();
    if matches!(actor, Actor::Integration) {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        match &clicker.salesforce {
            Some(user) => description.push_str(&format!(
                "Logged from Slack by sfrelay on behalf of {}.",
                user.name
            )),
            None => description.push_str(&format!(
                "Logged from Slack by sfrelay on behalf of Slack user {}.",
                clicker.slack_user
            )),
        }
    }
    if !description.is_empty() {
        fields.insert("Description".into(), description.into());
    }
    let acted = Key::acted(job_id);
    let before = jobs
        .store
        .claim(acted.as_str(), "pending", acted.ttl())
        .await?;
    if let Some(before) = before {
        if let Some(id) = before.strip_prefix("created:")
            && let Ok(id) = SalesforceId::parse(id)
        {
            return Ok(id);
        }
        // An earlier attempt may have created it before it stopped: look for it.
        if let Some(id) = find_task(sf, on, relation, &follow_up.subject).await? {
            jobs.store
                .set(acted.as_str(), &format!("created:{id}"), acted.ttl())
                .await?;
            return Ok(id);
        }
    }
    let created = sf.create_as(&on.button.org, actor, "Task", &fields).await;
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            if e.retry() == crate::retry::Retry::Never {
                jobs.store.delete(acted.as_str()).await?;
            }
            return Err(e.into());
        }
    };
    jobs.store
        .set(acted.as_str(), &format!("created:{id}"), acted.ttl())
        .await?;
    tracing::info!(task = %id, record = %on.button.record, "follow-up Task created");
    Ok(id)
}

/// A Task on the record with this subject, made by an earlier attempt of the same job.
async fn find_task(
    sf: &SalesforceClient,
    on: &Target<'_>,
    relation: &str,
    subject: &str,
) -> Result<Option<SalesforceId>, ActError> {
    let mut params = Map::new();
    params.insert("record".into(), on.button.record.to_string().into());
    params.insert("subject".into(), subject.into());
    let query = format!(
        "SELECT Id FROM Task WHERE {relation} = :record AND Subject = :subject \
         ORDER BY CreatedDate DESC LIMIT 1"
    );
    let soql = Soql::bind(&query, &params)
        .map_err(|e| ActError::Refused(format!("cannot look for the Task: {e}")))?;
    let records = sf
        .query(&on.button.org, &soql)
        .await
        .map_err(|e| ActError::Work(crate::jobs::WorkError::Salesforce(e)))?;
    Ok(records.first().and_then(crate::salesforce::record_id))
}

/// Tells the person who submitted a form how it went, where they clicked.
async fn told(on: &Target<'_>, interaction: &Interaction, text: &str) -> Result<(), ActError> {
    match &on.interaction.channel {
        Some(channel) => {
            on.deliverer
                .post_ephemeral(channel, &interaction.user, text)
                .await?;
        }
        None => tracing::info!("the form came from no channel; nobody to tell"),
    }
    Ok(())
}

/// Tells the person `text`: after a form (closed by then), ephemerally in the channel of the
/// card they opened it from; after a click, through its `response_url`.
pub(super) async fn tell(
    jobs: &Jobs,
    interaction: &Interaction,
    text: &str,
) -> Result<(), JobError> {
    if interaction.kind == "view_submission" {
        let origin = interaction
            .private_metadata
            .as_deref()
            .and_then(|m| Origin::decode(m).ok());
        let Some((origin, button)) =
            origin.and_then(|o| ButtonValue::parse(&o.value).ok().map(|b| (o, b)))
        else {
            tracing::info!("a form not of sfrelay's; nobody to tell");
            return Ok(());
        };
        let Some(channel) = origin.channel else {
            tracing::info!("the form came from no channel; nobody to tell");
            return Ok(());
        };
        return jobs
            .slack
            .for_org(&button.org)
            .post_ephemeral(&channel, &interaction.user, &format!("Not saved: {text}"))
            .await
            .map_err(|e| JobError::later(format!("chat.postEphemeral: {e}")));
    }
    replies::respond(
        &jobs.replies,
        interaction.response_url.as_deref(),
        &replies::ephemeral(text),
    )
    .await
}
