//! Approval gates at run time. A route job whose gate holds posts the approvers' cards and runs
//! only the actions the gate does not hold; a timer job waits out the timeout (reminding,
//! escalating or rejecting); the first decision wins (a lock per gate, whatever the clicks), is
//! recorded and written to Salesforce where configured, every approver's card says who decided,
//! and on approval the held actions run for the event that opened the gate.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ActError;
use super::perform::Target;
use super::who;
use crate::deliver::{DeliverError, Wait};
use crate::event::{Event, SalesforceId};
use crate::jobs::{JobError, Jobs, WorkError, lane_of};
use crate::keys::{DedupeKey, Key};
use crate::queue::{NewJob, now_ms};
use crate::routing::gate::{Gate, MAX_REMINDERS, OnTimeout, Recorded};
use crate::routing::{PlannedAction, Route, RouteSet, buttons, plan_gate_cards};
use crate::salesforce::{Actor, UpdateOptions};
use crate::task::Task;

/// Ledger numbers of the gate's cards, apart from the route's own actions: the approvers',
/// the escalation's, and each reminder round's.
const APPROVER_CARDS: usize = 1000;
const ESCALATION_CARDS: usize = 2000;
const REMINDER_CARDS: usize = 3000;
const PER_ROUND: usize = 100;

/// Where a gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

/// A decision: who (a Slack user, or `timeout`), when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The job that took it: its own retry finishes it, anyone else's click is refused.
    #[serde(default)]
    pub job: String,
    pub by: String,
    /// The Slack workspace of `by`, so their own connection can write the decision.
    #[serde(default)]
    pub team: Option<String>,
    pub at_ms: i64,
    pub approved: bool,
    pub comment: Option<String>,
}

/// One gate of one route for one record, as kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    pub route: String,
    /// The event that opened it: the held actions run for it.
    pub event: Event,
    #[serde(default)]
    pub extra: Value,
    pub opened_ms: i64,
    pub deadline_ms: i64,
    pub status: Status,
    #[serde(default)]
    pub reminders: u32,
    #[serde(default)]
    pub escalated: bool,
    pub decision: Option<Decision>,
}

/// What a route job runs for an event, given its gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Every action (no gate applies, or it was approved).
    All,
    /// Only the actions the gate does not hold (pending or rejected).
    Ungated,
}

fn key_of(route: &str, event: &Event) -> Key {
    Key::gate(route, &event.org_id, &event.record_id)
}

async fn load(jobs: &Jobs, key: &Key) -> Result<Option<GateState>, WorkError> {
    Ok(jobs
        .store
        .get(key.as_str())
        .await?
        .and_then(|v| serde_json::from_str(&v).ok()))
}

async fn save(jobs: &Jobs, key: &Key, state: &GateState) -> Result<(), WorkError> {
    let value = serde_json::to_string(state).map_err(|e| WorkError::Permanent(e.to_string()))?;
    jobs.store.set(key.as_str(), &value, key.ttl()).await?;
    Ok(())
}

/// The route job of a gated route: opens the gate when its condition holds (posting the
/// approvers' cards and starting its timer), then delivers what the gate lets through.
pub async fn deliver_gated(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    gate: &Gate,
    event: &Event,
    extra: &Value,
    wait: Wait,
) -> Result<(), WorkError> {
    let deliverer = jobs.slack.for_org(&event.org_id);
    let users = HashMap::new();
    let ctx = jobs.orgs.context(event, &users, extra);
    let key = key_of(&route.name, event);
    let verdict = match load(jobs, &key).await? {
        Some(state) if state.status == Status::Approved && state.event.id == event.id => {
            Verdict::All
        }
        Some(state) => {
            if state.status == Status::Pending && state.event.id == event.id {
                // This event opened it: make sure its cards are out and its timer runs.
                open(jobs, routes, route, gate, &state, wait).await?;
            }
            Verdict::Ungated
        }
        None => {
            let holds = match &gate.when {
                Some(when) => when
                    .eval(&ctx)
                    .map_err(|e| WorkError::Permanent(format!("gate condition: {e}")))?,
                None => true,
            };
            if holds {
                let now = now_ms();
                let fresh = GateState {
                    route: route.name.clone(),
                    event: event.clone(),
                    extra: extra.clone(),
                    opened_ms: now,
                    deadline_ms: now + millis(gate.timeout),
                    status: Status::Pending,
                    reminders: 0,
                    escalated: false,
                    decision: None,
                };
                let value = serde_json::to_string(&fresh)
                    .map_err(|e| WorkError::Permanent(e.to_string()))?;
                let state = match jobs.store.claim(key.as_str(), &value, key.ttl()).await? {
                    None => fresh,
                    Some(held) => serde_json::from_str(&held)
                        .map_err(|e| WorkError::Permanent(format!("gate state: {e}")))?,
                };
                if state.event.id == event.id && state.status == Status::Pending {
                    tracing::info!(route = %route.name, record = %event.record_id, "approval gate opened");
                    open(jobs, routes, route, gate, &state, wait).await?;
                }
                Verdict::Ungated
            } else {
                Verdict::All
            }
        }
    };
    let planned = routes
        .plan(route, &ctx)
        .map_err(|e| WorkError::Permanent(format!("route {}: {e}", route.name)))?;
    let planned: Vec<PlannedAction> = planned
        .into_iter()
        .filter(|a| verdict == Verdict::All || !route.actions[a.index].gated)
        .collect();
    deliverer
        .deliver_planned(routes, &route.name, event, extra, wait, &planned)
        .await?;
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Posts the approvers' cards (the ledger skips those already out) and queues the timer.
async fn open(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    gate: &Gate,
    state: &GateState,
    wait: Wait,
) -> Result<(), WorkError> {
    post_cards(
        jobs,
        routes,
        route,
        gate,
        state,
        &gate.approvers,
        APPROVER_CARDS,
        wait,
    )
    .await?;
    open_timer(jobs, route, state).await
}

#[allow(clippy::too_many_arguments)]
async fn post_cards(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    gate: &Gate,
    state: &GateState,
    who: &[String],
    first: usize,
    wait: Wait,
) -> Result<(), WorkError> {
    let extra = gate_vars(state, gate);
    let users = HashMap::new();
    let ctx = jobs.orgs.context(&state.event, &users, &extra);
    let cards = plan_gate_cards(route, gate, who, first, &ctx);
    if cards.is_empty() {
        return Err(WorkError::Permanent(format!(
            "route {}: the gate found nobody to ask (no approver email on the record)",
            route.name
        )));
    }
    jobs.slack
        .for_org(&state.event.org_id)
        .deliver_planned(routes, &route.name, &state.event, &extra, wait, &cards)
        .await?;
    Ok(())
}

/// What the approvers' card template sees besides the record: `gate.deadline`,
/// `gate.reminder` (0 for the first card) and the route's own variables.
fn gate_vars(state: &GateState, gate: &Gate) -> Value {
    let mut extra = match &state.extra {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let deadline = chrono::DateTime::from_timestamp_millis(state.deadline_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    extra.insert(
        "gate".into(),
        serde_json::json!({
            "deadline": deadline,
            "reminder": state.reminders,
            "escalated": state.escalated,
            "timeout_secs": gate.timeout.as_secs(),
        }),
    );
    Value::Object(extra)
}

/// The ledger numbers of every card this gate has posted.
fn card_indices(gate: &Gate, state: &GateState) -> Vec<usize> {
    let approvers = gate.approvers.len().max(1);
    let mut indices: Vec<usize> = (0..approvers).map(|i| APPROVER_CARDS + i).collect();
    if state.escalated {
        indices.extend((0..gate.escalate_to.len()).map(|i| ESCALATION_CARDS + i));
    }
    for round in 0..state.reminders as usize {
        indices.extend((0..approvers).map(|i| REMINDER_CARDS + round * PER_ROUND + i));
    }
    indices
}

/// The gate's timer job: waits until the deadline, then reminds, escalates or rejects.
pub async fn timer(
    jobs: &Jobs,
    route_name: &str,
    org: &SalesforceId,
    record: &SalesforceId,
) -> Result<(), JobError> {
    let routes = jobs.routes.load_full();
    let Some(route) = routes.get(route_name) else {
        return Ok(()); // the route is gone: nothing to time
    };
    let Some(gate) = &route.gate else {
        return Ok(());
    };
    let key = Key::gate(route_name, org, record);
    let fail = |e: WorkError| JobError::of("approval gate timer", e);
    let Some(mut state) = load(jobs, &key).await.map_err(fail)? else {
        return Ok(());
    };
    if state.status != Status::Pending {
        return Ok(());
    }
    let now = now_ms();
    if now < state.deadline_ms {
        let wait = u64::try_from(state.deadline_ms - now).unwrap_or(0);
        return Err(JobError::Postponed {
            delay: Duration::from_millis(wait),
            held: true,
        });
    }
    let wait = Wait {
        just_queued: false,
        max_age: jobs.max_age,
    };
    let action = match gate.on_timeout {
        OnTimeout::Escalate if !state.escalated => OnTimeout::Escalate,
        OnTimeout::Reject => OnTimeout::Reject,
        _ => OnTimeout::Remind,
    };
    match action {
        OnTimeout::Reject => {
            let decision = Decision {
                job: format!("gate-timer:{route_name}:{org}:{record}"),
                by: "timeout".into(),
                team: None,
                at_ms: now,
                approved: false,
                comment: Some(format!(
                    "nobody decided within {} s",
                    gate.timeout.as_secs()
                )),
            };
            settle(jobs, &routes, route, gate, &key, state, decision)
                .await
                .map_err(|e| match e {
                    ActError::Work(e) => fail(e),
                    ActError::Refused(why) => JobError::dead(why),
                    ActError::NotYet(delay) => JobError::Postponed { delay, held: false },
                    ActError::Reconnect(org) => JobError::dead(format!(
                        "a connection to org {org} expired while the timeout was recorded"
                    )),
                    ActError::Unmapped { text, .. } => JobError::dead(text),
                })?;
            return Ok(());
        }
        OnTimeout::Escalate => {
            state.escalated = true;
            state.deadline_ms = now + millis(gate.timeout);
            save(jobs, &key, &state).await.map_err(fail)?;
            post_cards(
                jobs,
                &routes,
                route,
                gate,
                &state,
                &gate.escalate_to,
                ESCALATION_CARDS,
                wait,
            )
            .await
            .map_err(fail)?;
        }
        OnTimeout::Remind => {
            if state.reminders >= MAX_REMINDERS {
                tracing::info!(route = %route_name, record = %record, "approval still pending after every reminder; waiting in silence");
                return Ok(());
            }
            let round = state.reminders as usize;
            state.reminders += 1;
            state.deadline_ms = now + millis(gate.timeout);
            save(jobs, &key, &state).await.map_err(fail)?;
            let first = REMINDER_CARDS + round * PER_ROUND;
            post_cards(
                jobs,
                &routes,
                route,
                gate,
                &state,
                &gate.approvers,
                first,
                wait,
            )
            .await
            .map_err(fail)?;
        }
    }
    // The next round's timer.
    open_timer(jobs, route, &state).await.map_err(fail)
}

async fn open_timer(jobs: &Jobs, route: &Route, state: &GateState) -> Result<(), WorkError> {
    let round = u32::from(state.escalated) + state.reminders;
    let task = Task::GateTimer {
        route: route.name.clone(),
        org: state.event.org_id.clone(),
        record: state.event.record_id.clone(),
    };
    follow_up(jobs, route, state, &format!("gate-timer-r{round}"), &task).await
}

/// Queues work that follows from the gate (its timer's next round, the approved actions),
/// once: keyed by the opening event and `what`.
async fn follow_up(
    jobs: &Jobs,
    route: &Route,
    state: &GateState,
    what: &str,
    task: &Task,
) -> Result<(), WorkError> {
    let job = NewJob::with_lane(
        format!("{}/{}/{what}", state.event.id, route.name),
        DedupeKey::route(&format!("{}+{what}", state.event.id), &route.name).into(),
        task,
        now_ms(),
        lane_of(route.priority),
    )
    .map_err(|e| WorkError::Permanent(format!("cannot queue {what}: {e}")))?;
    jobs.queue
        .enqueue_internal(&[job], jobs.dedupe_window)
        .await
        .map(|_| ())
        .map_err(WorkError::Queue)
}

/// A click on Approve, or a submitted rejection with its reason.
pub(super) async fn decide(
    jobs: &Jobs,
    job_id: &str,
    routes: &RouteSet,
    on: &Target<'_>,
    approve: bool,
    reason: Option<&str>,
) -> Result<(), ActError> {
    let card = on.card.as_ref().ok_or_else(|| {
        ActError::Refused(
            "sfrelay no longer knows this approval card; decide in Salesforce.".into(),
        )
    })?;
    let route = routes.get(&card.route).ok_or_else(|| {
        ActError::Refused(format!("The route {:?} no longer exists.", card.route))
    })?;
    let gate = route.gate.as_ref().ok_or_else(|| {
        ActError::Refused(format!(
            "The route {:?} no longer has an approval gate.",
            route.name
        ))
    })?;
    let key = Key::gate(&route.name, &on.button.org, &on.button.record);
    let state = load(jobs, &key)
        .await?
        .ok_or_else(|| ActError::Refused("This approval is no longer pending.".into()))?;
    let decision = Decision {
        job: job_id.to_string(),
        by: on.interaction.user.clone(),
        team: on.interaction.team.clone(),
        at_ms: now_ms(),
        approved: approve,
        comment: reason.map(str::to_string),
    };
    settle(jobs, routes, route, gate, &key, state, decision).await
}

/// Takes `decision` unless another was taken first, records it, writes it to Salesforce
/// where configured, redraws every card and, on approval, queues the held actions.
async fn settle(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    gate: &Gate,
    key: &Key,
    mut state: GateState,
    decision: Decision,
) -> Result<(), ActError> {
    let lock = Key::decided(&format!(
        "gate:{}:{}:{}",
        route.name, state.event.org_id, state.event.record_id
    ));
    let mine = serde_json::to_string(&decision).map_err(|e| ActError::Refused(e.to_string()))?;
    let decision = match jobs.store.claim(lock.as_str(), &mine, lock.ttl()).await? {
        None => decision,
        Some(taken) => {
            let first: Decision = serde_json::from_str(&taken)
                .map_err(|e| ActError::Refused(format!("the decision kept is unreadable: {e}")))?;
            if first.job != decision.job {
                let verb = if first.approved {
                    "approved"
                } else {
                    "rejected"
                };
                return Err(ActError::Refused(match first.by.as_str() {
                    "timeout" => format!("This was already {verb}: nobody decided in time."),
                    by => format!("<@{by}> already {verb} this."),
                }));
            }
            first // this decision's own retry: finish what it began
        }
    };
    state.status = if decision.approved {
        Status::Approved
    } else {
        Status::Rejected
    };
    state.decision = Some(decision.clone());
    save(jobs, key, &state).await?;
    tracing::info!(route = %route.name, record = %state.event.record_id, approved = decision.approved, by = %decision.by, "approval gate decided");
    record(jobs, route, gate, &state, &decision).await?;
    redraw_cards(jobs, routes, route, gate, &state, &decision).await?;
    if decision.approved {
        release(jobs, route, &state).await?;
    }
    Ok(())
}

/// Writes the decision to Salesforce where the gate says (once: a retry finds it done).
async fn record(
    jobs: &Jobs,
    route: &Route,
    gate: &Gate,
    state: &GateState,
    decision: &Decision,
) -> Result<(), ActError> {
    let Some(sf) = jobs
        .salesforce
        .clone()
        .filter(|sf| sf.has_org(&state.event.org_id))
    else {
        return Ok(());
    };
    let org = &state.event.org_id;
    let acted = Key::acted(&format!(
        "gate:{}:{}:{}",
        route.name, org, state.event.record_id
    ));
    if jobs.store.get(acted.as_str()).await?.is_some() {
        return Ok(());
    }
    let verdict = if decision.approved {
        "Approved"
    } else {
        "Rejected"
    };
    let (actor, who) = if decision.by == "timeout" {
        (Actor::Integration, "nobody (timed out)".to_string())
    } else {
        let clicker = who::identify(jobs, org, decision.team.as_deref(), &decision.by).await?;
        let name = clicker
            .salesforce
            .as_ref()
            .map_or_else(|| format!("Slack user {}", decision.by), |u| u.name.clone());
        (clicker.actor(jobs.orgs.act_as(org))?, name)
    };
    match &gate.record {
        Recorded::Nowhere => return Ok(()),
        Recorded::Field(field) => {
            let mut fields = Map::new();
            fields.insert(field.clone(), verdict.into());
            sf.update_as(
                org,
                &actor,
                &state.event.object,
                state.event.record_id.as_str(),
                &fields,
                UpdateOptions::default(),
            )
            .await?;
        }
        Recorded::Task => {
            let mut fields = Map::new();
            fields.insert(
                "Subject".into(),
                format!("{verdict} in Slack by {who}").into(),
            );
            fields.insert("Status".into(), "Completed".into());
            fields.insert(
                "ActivityDate".into(),
                chrono::Utc::now()
                    .date_naive()
                    .format("%Y-%m-%d")
                    .to_string()
                    .into(),
            );
            fields.insert("WhatId".into(), state.event.record_id.to_string().into());
            if let Some(comment) = &decision.comment {
                fields.insert("Description".into(), comment.clone().into());
            }
            sf.create_as(org, &actor, "Task", &fields).await?;
        }
    }
    jobs.store.set(acted.as_str(), verdict, acted.ttl()).await?;
    Ok(())
}

/// Every card of the gate now says who decided, without its buttons.
async fn redraw_cards(
    jobs: &Jobs,
    routes: &RouteSet,
    route: &Route,
    gate: &Gate,
    state: &GateState,
    decision: &Decision,
) -> Result<(), ActError> {
    let deliverer = jobs.slack.for_org(&state.event.org_id);
    let who = match decision.by.as_str() {
        "timeout" => "nobody decided in time".to_string(),
        by => format!("<@{by}>"),
    };
    let mut note = if decision.approved {
        format!("✅ Approved by {who}")
    } else {
        format!("❌ Rejected by {who}")
    };
    if let Some(comment) = &decision.comment {
        note.push_str(": ");
        note.push_str(&crate::render::mrkdwn::escape(comment));
    }
    for index in card_indices(gate, state) {
        let Some(landed) = deliverer
            .landed(&state.event.id, &route.name, index)
            .await?
        else {
            continue;
        };
        let Some(card) = deliverer.card(&landed.channel, &landed.ts).await? else {
            continue;
        };
        let taken = [buttons::GATE_APPROVE, buttons::GATE_REJECT];
        match deliverer
            .redraw(routes, &card, &card.event, &taken, Some(&note))
            .await
        {
            Ok(()) => {}
            Err(DeliverError::Permanent(why)) => {
                tracing::warn!(%why, "cannot redraw an approval card");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Queues the held actions for the event that opened the gate.
async fn release(jobs: &Jobs, route: &Route, state: &GateState) -> Result<(), ActError> {
    let task = Task::Route {
        route: route.name.clone(),
        event: state.event.clone(),
    };
    Ok(follow_up(jobs, route, state, "approved", &task).await?)
}
