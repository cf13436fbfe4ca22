//! Approval gates: a big Closed Won waits for the owner's manager before its deal room opens;
//! one decision whatever the clicks, recorded on the deal; a rejection asks why; nobody
//! deciding in time; and a Salesforce approval request decided from its card.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::actions::{DANA, MORGAN, OPP, SECRET, World, offers, shipped_route, shows};
use support::{ORG, eventually};

const SMALL_OPP: &str = "006000000000002AAA";
const MORGAN_DM: &str = "D0MORGAN01";

fn closed_won(event_id: &str, id: &str, amount: u64) -> Value {
    json!({
        "event_id": event_id, "org_id": ORG, "object": "Opportunity", "change_type": "UPDATE",
        "changed_fields": ["StageName"],
        "record": {"Id": id, "Name": format!("Deal {id}"), "StageName": "Closed Won",
                   "Amount": amount, "CloseDate": "2025-09-30",
                   "Owner": {"Name": "Dana Seller", "Email": DANA.3,
                             "Manager": {"Email": MORGAN.3}}},
        "prior": {"StageName": "Negotiation/Review"}
    })
}

/// The shipped deal-room route with its gate's timer shortened.
fn gated_room(timeout_secs: u64, on_timeout: &str) -> String {
    shipped_route("closed-won-deal-room")
        .replace(
            "timeout_secs = 86400",
            &format!("timeout_secs = {timeout_secs}"),
        )
        .replace(
            "on_timeout = \"remind\"",
            &format!("on_timeout = \"{on_timeout}\""),
        )
}

async fn rooms(world: &World) -> Vec<Value> {
    let channels: Vec<Value> = world.slack.get_json("/_emulator/channels").await;
    channels
        .into_iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("deal-deal-"))
        })
        .collect()
}

async fn tasks(world: &World) -> Vec<Value> {
    world
        .writes()
        .await
        .into_iter()
        .filter(|w| w["object"] == "Task")
        .collect()
}

#[tokio::test]
async fn a_big_deal_waits_for_the_managers_approval_before_its_room_opens() {
    let world = World::start(
        vec![(
            "closed-won-deal-room",
            shipped_route("closed-won-deal-room"),
        )],
        "integration",
    )
    .await;
    // Below the gate's amount: the room opens at once, as before.
    world.event(closed_won("small-1", SMALL_OPP, 90_000)).await;
    eventually("the small deal's room", Duration::from_secs(20), || async {
        (rooms(&world).await.len() == 1).then_some(())
    })
    .await;

    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (ts, card) = world.card_in(MORGAN_DM).await;
    assert!(
        offers(&card, "gate_approve") && offers(&card, "gate_reject"),
        "{card}"
    );
    assert_eq!(
        rooms(&world).await.len(),
        1,
        "the big deal's room waits: {:#?}",
        rooms(&world).await
    );

    // A double click: two requests at once, one decision.
    let url = world.interactions();
    let (a, b) = tokio::join!(
        world
            .slack
            .click(&url, SECRET, MORGAN.0, MORGAN_DM, &ts, "gate_approve"),
        world
            .slack
            .click(&url, SECRET, MORGAN.0, MORGAN_DM, &ts, "gate_approve"),
    );
    assert_eq!((a.status, b.status), (200, 200));
    let card = world
        .card_when(&ts, "the card to say who approved", |m| {
            shows(m, "Approved by <@U0MORGAN01>")
        })
        .await;
    assert!(
        !offers(&card, "gate_approve") && !offers(&card, "gate_reject"),
        "{card}"
    );
    eventually("the big deal's room", Duration::from_secs(20), || async {
        (rooms(&world).await.len() == 2).then_some(())
    })
    .await;
    let tasks = eventually(
        "the decision on the deal",
        Duration::from_secs(20),
        || async {
            let tasks = tasks(&world).await;
            (!tasks.is_empty()).then_some(tasks)
        },
    )
    .await;
    assert_eq!(tasks.len(), 1, "one decision, one write: {tasks:#?}");
    let subject = tasks[0]["record"]["Subject"].as_str().unwrap();
    assert!(
        subject.contains("Approved in Slack by Morgan Manager"),
        "{subject}"
    );
    assert_eq!(tasks[0]["record"]["WhatId"], OPP);

    // The second click of the double click hears it is decided.
    let told = world.told(MORGAN.0, 1).await;
    assert!(told.contains("already approved"), "{told}");
}

#[tokio::test]
async fn a_rejection_asks_why_and_the_room_never_opens() {
    let world = World::start(
        vec![("gated-room", gated_room(3600, "remind"))],
        "integration",
    )
    .await;
    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (ts, _) = world.card_in(MORGAN_DM).await;
    let url = world.interactions();
    world
        .slack
        .click(&url, SECRET, MORGAN.0, MORGAN_DM, &ts, "gate_reject")
        .await;
    let views = world.slack.views().await;
    let view = views
        .iter()
        .find(|v| v["callback_id"] == "sfrelay:gate_reject")
        .unwrap_or_else(|| panic!("the reason form is open: {views:#?}"));
    let view_id = view["id"].as_str().unwrap().to_string();
    let answer = world
        .slack
        .submit(
            &url,
            SECRET,
            MORGAN.0,
            &view_id,
            json!({"reason": {"value": "Pricing not signed off"}}),
        )
        .await;
    assert_eq!(answer.body, "", "the form closes: {:?}", answer.body);
    world
        .card_when(&ts, "the card to say who rejected and why", |m| {
            shows(m, "Rejected by <@U0MORGAN01>: Pricing not signed off")
        })
        .await;
    let tasks = eventually(
        "the decision on the deal",
        Duration::from_secs(20),
        || async {
            let tasks = tasks(&world).await;
            (!tasks.is_empty()).then_some(tasks)
        },
    )
    .await;
    assert!(
        tasks[0]["record"]["Subject"]
            .as_str()
            .unwrap()
            .contains("Rejected")
    );
    assert_eq!(tasks[0]["record"]["Description"], "Pricing not signed off");
    assert!(
        rooms(&world).await.is_empty(),
        "a rejected deal opens no room"
    );
}

#[tokio::test]
async fn an_approval_nobody_decides_in_time_is_rejected_by_the_timeout() {
    let world = World::start(vec![("gated-room", gated_room(1, "reject"))], "integration").await;
    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (ts, _) = world.card_in(MORGAN_DM).await;
    let card = world
        .card_when(&ts, "the timeout to reject it", |m| {
            shows(m, "nobody decided in time")
        })
        .await;
    assert!(!offers(&card, "gate_approve"), "{card}");
    assert!(rooms(&world).await.is_empty());
}

#[tokio::test]
async fn an_approval_nobody_decides_in_time_reminds_the_approver() {
    let world = World::start(vec![("gated-room", gated_room(1, "remind"))], "integration").await;
    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (first, _) = world.card_in(MORGAN_DM).await;
    let reminder = eventually("a reminder card", Duration::from_secs(20), || async {
        let messages = world.slack.messages().await;
        messages.into_iter().find(|m| {
            m["channel"] == MORGAN_DM && m["ts"] != first.as_str() && shows(m, "Reminder 1")
        })
    })
    .await;
    assert!(offers(&reminder, "gate_approve"), "{reminder}");
    // Approving from the reminder decides the gate; both cards say so.
    let url = world.interactions();
    let ts = reminder["ts"].as_str().unwrap().to_string();
    world
        .slack
        .click(&url, SECRET, MORGAN.0, MORGAN_DM, &ts, "gate_approve")
        .await;
    world
        .card_when(&first, "the first card to say who approved", |m| {
            shows(m, "Approved by")
        })
        .await;
    eventually("the room", Duration::from_secs(20), || async {
        (rooms(&world).await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_salesforce_approval_request_is_decided_from_its_card() {
    let world = World::start(
        vec![("discount-approval", shipped_route("discount-approval"))],
        "integration",
    )
    .await;
    world
        .sf
        .control("approvals", json!({"record": OPP, "approver": MORGAN.1}))
        .await;
    world
        .event(json!({
            "event_id": "submitted-1", "org_id": ORG, "object": "Opportunity",
            "change_type": "UPDATE", "changed_fields": ["Approval_Status__c"],
            "record": {"Id": OPP, "Name": "Acme Corp - Q3 Enterprise", "Amount": 75000,
                       "Approval_Status__c": "Pending", "StageName": "Negotiation/Review"},
            "prior": {"Approval_Status__c": "Not Submitted"}
        }))
        .await;
    let (ts, card) = world.card_in("C0DEALDESK").await;
    assert!(offers(&card, "approve_request"), "{card}");
    let url = world.interactions();
    world
        .slack
        .click(&url, SECRET, MORGAN.0, "C0DEALDESK", &ts, "approve_request")
        .await;
    world
        .card_when(&ts, "the card to say who approved", |m| {
            shows(m, "Approved by <@U0MORGAN01>")
        })
        .await;
    let approvals: Value = reqwest::get(format!("{}/_emulator/approvals", world.sf.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = approvals.to_string();
    assert!(text.contains("Approved"), "{approvals:#}");
    assert!(
        text.contains("Decided in Slack by <@U0MORGAN01>"),
        "{approvals:#}"
    );
}

#[tokio::test]
async fn two_approvers_at_once_make_one_decision_and_one_write() {
    let route = gated_room(3600, "remind").replace(
        r#"approvers = ["record.Owner.Manager.Email"]"#,
        r#"approvers = ["record.Owner.Manager.Email", "record.Owner.Email"]"#,
    );
    let world = World::start(vec![("gated-room", route)], "integration").await;
    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (morgan_ts, _) = world.card_in(MORGAN_DM).await;
    let (dana_ts, _) = world.card_in("D0DANA0001").await;
    let url = world.interactions();
    let (a, b) = tokio::join!(
        world.slack.click(
            &url,
            SECRET,
            MORGAN.0,
            MORGAN_DM,
            &morgan_ts,
            "gate_approve"
        ),
        world
            .slack
            .click(&url, SECRET, DANA.0, "D0DANA0001", &dana_ts, "gate_approve"),
    );
    assert_eq!((a.status, b.status), (200, 200));
    let decided = |m: &Value| shows(m, "Approved by <@");
    let first = world
        .card_when(&morgan_ts, "Morgan's card decided", decided)
        .await;
    let second = world
        .card_when(&dana_ts, "Dana's card decided", decided)
        .await;
    let who = |card: &Value| {
        if shows(card, "Approved by <@U0MORGAN01>") {
            MORGAN.0
        } else {
            DANA.0
        }
    };
    assert_eq!(
        who(&first),
        who(&second),
        "both cards name the one who decided"
    );
    let loser = if who(&first) == MORGAN.0 {
        DANA.0
    } else {
        MORGAN.0
    };
    assert!(world.told(loser, 1).await.contains("already approved"));
    eventually("the room", Duration::from_secs(20), || async {
        (rooms(&world).await.len() == 1).then_some(())
    })
    .await;
    let tasks = eventually(
        "the decision on the deal",
        Duration::from_secs(20),
        || async {
            let tasks = tasks(&world).await;
            (!tasks.is_empty()).then_some(tasks)
        },
    )
    .await;
    assert_eq!(tasks.len(), 1, "one write: {tasks:#?}");
}

#[tokio::test]
async fn an_approval_nobody_decides_in_time_escalates_and_the_escalation_decides() {
    let route = gated_room(1, "escalate").replace(
        "record_task = true",
        "record_task = true\nescalate_to = [\"record.Owner.Email\"]",
    );
    let world = World::start(vec![("gated-room", route)], "integration").await;
    world.event(closed_won("big-1", OPP, 750_000)).await;
    let (first, _) = world.card_in(MORGAN_DM).await;
    let (escalated, card) = world.card_in("D0DANA0001").await;
    assert!(shows(&card, "Escalated"), "{card}");
    let url = world.interactions();
    world
        .slack
        .click(
            &url,
            SECRET,
            DANA.0,
            "D0DANA0001",
            &escalated,
            "gate_approve",
        )
        .await;
    world
        .card_when(&first, "the manager's card to say who approved", |m| {
            shows(m, "Approved by <@U0DANA0001>")
        })
        .await;
    eventually("the room", Duration::from_secs(20), || async {
        (rooms(&world).await.len() == 1).then_some(())
    })
    .await;
}
