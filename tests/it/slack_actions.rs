//! Acting from a card: take a Case, log a follow-up from its form, move a stage from a select
//! (and be refused on a stale card), the refusals people read, who the write is made as, and a
//! change made from Slack coming back. Real binary and Redis; Slack and Salesforce emulated.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use support::actions::{
    CASE, CASEY, DANA, MODIFIED, OPP, QUEUE, RILEY, SECRET, World, offers, option, shipped_route,
    shows,
};
use support::{ORG, eventually};

fn escalated_case(event_id: &str) -> Value {
    json!({
        "event_id": event_id, "org_id": ORG, "object": "Case", "change_type": "UPDATE",
        "changed_fields": ["IsEscalated", "Priority"],
        "record": {"Id": CASE, "CaseNumber": "00001042", "Subject": "Checkout API returns 500",
                   "Priority": "Critical", "IsEscalated": true, "Status": "Escalated",
                   "OwnerId": QUEUE, "LastModifiedDate": MODIFIED,
                   "Owner": {"Name": "Tier 2 queue"}},
        "prior": {"IsEscalated": false, "Priority": "High"}
    })
}

/// A card for an open deal, with the stage select and the follow-up button.
const DEAL_CARD: &str = r##"
object = "Opportunity"
change_types = ["CREATE", "UPDATE"]
when = 'record.StageName != "Closed Won"'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "renewal-risk-dm"
"##;

/// Another route on every stage change: it must still fire for a change made from a card.
const STAGE_WATCH: &str = r##"
object = "Opportunity"
change_types = ["UPDATE"]
when = 'changed("StageName")'
[[actions]]
type = "post"
channel = "#sales-alerts"
template = "closed-won-win"
"##;

fn open_deal(event_id: &str, stage: &str, modified: &str) -> Value {
    json!({
        "event_id": event_id, "org_id": ORG, "object": "Opportunity", "change_type": "CREATE",
        "record": {"Id": OPP, "Name": "Acme Corp - Q3 Enterprise", "StageName": stage,
                   "Amount": 75000, "LastModifiedDate": modified, "CloseDate": "2025-12-31",
                   "Owner": {"Name": "Dana Seller", "Email": DANA.3}}
    })
}

async fn case_world(act_as: &str) -> (World, String) {
    let world = World::start(
        vec![("case-escalation", shipped_route("case-escalation"))],
        act_as,
    )
    .await;
    world.event(escalated_case("esc-1")).await;
    let (ts, card) = world.card_in("C0SUPESC01").await;
    assert!(
        offers(&card, "take_case") && offers(&card, "log_follow_up"),
        "{card}"
    );
    (world, ts)
}

#[tokio::test]
async fn a_case_is_taken_once_by_the_first_click_and_its_card_says_who() {
    let (world, ts) = case_world("integration").await;
    let url = world.interactions();
    // Two people at once: the first click wins, the other is told who has it.
    let (first, second) = tokio::join!(
        world
            .slack
            .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "take_case"),
        async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            world
                .slack
                .click(&url, SECRET, DANA.0, "C0SUPESC01", &ts, "take_case")
                .await
        },
    );
    assert_eq!(
        (first.status, second.status),
        (200, 200),
        "{:?}",
        first.body
    );
    assert!(
        first.elapsed_ms < 3000,
        "answered in {} ms",
        first.elapsed_ms
    );
    let card = world
        .card_when(&ts, "the card to say who took it", |m| {
            shows(m, "Taken by <@")
        })
        .await;
    let winner = if shows(&card, "Taken by <@U0RILEY001>") {
        RILEY
    } else {
        DANA
    };
    let loser = if winner == RILEY { DANA } else { RILEY };
    assert!(
        !offers(&card, "take_case"),
        "the take button is gone: {card}"
    );
    assert!(offers(&card, "log_follow_up"), "the rest stays: {card}");
    let owner = if winner == RILEY {
        "Riley Support"
    } else {
        "Dana Seller"
    };
    assert!(
        shows(&card, &format!("*Owner*\\n{owner}")),
        "the new owner by name: {card}"
    );
    let told = world.told(loser.0, 1).await;
    assert!(
        told.contains(&format!("<@{}> has already taken", winner.0)),
        "{told}"
    );
    let writes = world.wait_for_writes(1).await;
    assert_eq!(writes[0]["operation"], "update");
    assert_eq!(writes[0]["record"]["OwnerId"], winner.1);
    assert_eq!(writes[0]["username"], "integration@acme.example");
    let patch = world.sf_requests("PATCH", CASE).await;
    assert_eq!(patch.len(), 1);
    let headers = patch[0]["headers"].to_string().to_ascii_lowercase();
    assert!(
        headers.contains("sforce-auto-assign") && headers.contains("false"),
        "{headers}"
    );
    assert!(headers.contains("client=sfrelay"), "{headers}");
}

#[tokio::test]
async fn a_follow_up_is_logged_from_its_form_with_field_errors_shown_in_it() {
    let (world, ts) = case_world("integration").await;
    let url = world.interactions();
    let click = world
        .slack
        .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "log_follow_up")
        .await;
    assert_eq!(click.status, 200);
    let views = world.slack.views().await;
    let view = views
        .iter()
        .find(|v| v["callback_id"] == "sfrelay:log_task")
        .unwrap_or_else(|| panic!("the form is open: {views:#?}"));
    let view_id = view["id"].as_str().unwrap().to_string();

    let blank = world
        .slack
        .submit(
            &url,
            SECRET,
            RILEY.0,
            &view_id,
            json!({"subject": {"value": " "}, "due": {"value": "2020-01-01"}}),
        )
        .await;
    assert_eq!(blank.body["response_action"], "errors", "{:?}", blank.body);
    assert!(blank.body["errors"]["subject"].is_string());
    assert!(
        blank.body["errors"]["due"]
            .as_str()
            .unwrap()
            .contains("past")
    );

    let due = (chrono::Utc::now().date_naive() + chrono::Duration::days(3))
        .format("%Y-%m-%d")
        .to_string();
    let good = world
        .slack
        .submit(
            &url,
            SECRET,
            RILEY.0,
            &view_id,
            json!({"subject": {"value": "Call Globex back"}, "due": {"value": due},
                   "comment": {"value": "They want a root cause."}}),
        )
        .await;
    assert_eq!(good.body, "", "a good form closes");
    let writes = world.wait_for_writes(1).await;
    let task = &writes[0]["record"];
    assert_eq!(writes[0]["object"], "Task");
    assert_eq!(task["WhatId"], CASE);
    assert_eq!(task["OwnerId"], RILEY.1, "the clicker owns it");
    assert_eq!(task["Subject"], "Call Globex back");
    assert_eq!(task["ActivityDate"], due.as_str());
    let description = task["Description"].as_str().unwrap();
    assert!(
        description.contains("root cause") && description.contains("on behalf of Riley Support")
    );
    let told = world.told(RILEY.0, 1).await;
    assert!(told.contains("Logged *Call Globex back*"), "{told}");
}

#[tokio::test]
async fn a_stage_moved_from_a_card_is_written_and_a_stale_card_is_refused_and_redrawn() {
    let world = World::start(vec![("deal-card", DEAL_CARD.into())], "integration").await;
    world
        .event(open_deal("deal-1", "Negotiation/Review", MODIFIED))
        .await;
    let (ts, card) = world.card_in("C0DEALDESK").await;
    assert!(offers(&card, "move_stage"), "{card}");
    assert!(
        card["blocks"].to_string().contains("Proposal/Price Quote"),
        "options from the UI API"
    );
    world
        .choose_stage(RILEY.0, &ts, "Proposal/Price Quote")
        .await;
    world
        .card_when(&ts, "the card to show the move", |m| {
            shows(m, "StageName set to *Proposal/Price Quote*")
        })
        .await;
    let writes = world.wait_for_writes(1).await;
    assert_eq!(writes[0]["record"]["StageName"], "Proposal/Price Quote");
    let patch = world.sf_requests("PATCH", OPP).await;
    assert!(
        patch[0]["headers"]
            .to_string()
            .contains("If-Unmodified-Since")
            || patch[0]["headers"]
                .to_string()
                .to_ascii_lowercase()
                .contains("if-unmodified-since")
    );

    // Someone else changes the deal in Salesforce: the card is now out of date.
    world
        .sf
        .control(
            "records",
            json!({"Opportunity": [{"Id": OPP, "StageName": "Prospecting",
                                    "LastModifiedDate": "2099-01-01T00:00:00.000+0000"}]}),
        )
        .await;
    world.choose_stage(RILEY.0, &ts, "Closed Won").await;
    assert!(
        world
            .told(RILEY.0, 1)
            .await
            .contains("Someone changed this record")
    );
    assert_eq!(
        world.writes().await.len(),
        1,
        "the stale click wrote nothing"
    );
    world
        .card_when(&ts, "the card to be redrawn as the record is", |m| {
            shows(m, "Prospecting") && !shows(m, "set to")
        })
        .await;
}

#[tokio::test]
async fn salesforce_refusals_reach_the_clicker_in_their_words() {
    let world = World::start(vec![("deal-card", DEAL_CARD.into())], "integration").await;
    world
        .event(open_deal("deal-1", "Negotiation/Review", MODIFIED))
        .await;
    let (ts, _) = world.card_in("C0DEALDESK").await;
    let rule = "Closed Won needs a signed contract attached.";
    world
        .sf
        .control(
            "validation-rules",
            json!([{"object": "Opportunity", "field": "StageName", "value": "Closed Won", "message": rule}]),
        )
        .await;
    let url = world.interactions();
    world.choose_stage(RILEY.0, &ts, "Closed Won").await;
    assert_eq!(world.told(RILEY.0, 1).await, rule);

    for (code, says) in [
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "allowed choices"),
        ("ENTITY_IS_LOCKED", "locked"),
        ("ENTITY_IS_DELETED", "deleted"),
        ("INSUFFICIENT_ACCESS_OR_READONLY", "access"),
        ("API_DISABLED_FOR_ORG", "API"),
    ] {
        world
            .sf
            .control(
                "write-faults",
                json!([{"object": "Opportunity", "error_code": code}]),
            )
            .await;
        let before = world.slack.ephemerals().await.len();
        let proposal = option("Opportunity", OPP, "move_stage", "Proposal/Price Quote");
        world
            .slack
            .choose(
                &url,
                SECRET,
                RILEY.0,
                "C0DEALDESK",
                &ts,
                "move_stage",
                &proposal,
            )
            .await;
        let text = world.told(RILEY.0, before + 1).await;
        assert!(
            text.to_lowercase().contains(&says.to_lowercase()),
            "{code}: {text}"
        );
    }
    assert!(
        world.writes().await.is_empty(),
        "every refusal left the deal as it was"
    );
    let lookups = world
        .slack
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "users.info")
        .count();
    assert_eq!(
        lookups, 1,
        "who Riley is was asked of Slack once, for six clicks"
    );
}

#[tokio::test]
async fn acting_as_the_person_writes_as_them_and_refuses_people_salesforce_does_not_know() {
    let (world, ts) = case_world("user").await;
    let url = world.interactions();
    world
        .slack
        .click(&url, SECRET, CASEY, "C0SUPESC01", &ts, "take_case")
        .await;
    let told = world.told(CASEY, 1).await;
    assert!(told.contains("no active Salesforce user"), "{told}");
    assert!(
        world.writes().await.is_empty(),
        "nothing written for an unmapped person"
    );

    world
        .slack
        .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "take_case")
        .await;
    let writes = world.wait_for_writes(1).await;
    assert_eq!(
        writes[0]["username"], RILEY.2,
        "written as the person who clicked"
    );
    assert_eq!(writes[0]["record"]["OwnerId"], RILEY.1);
    let card = world
        .card_when(&ts, "the card to say who took it", |m| {
            shows(m, "Taken by <@U0RILEY001>")
        })
        .await;
    assert!(!shows(&card, "on their behalf"), "{card}");
}

#[tokio::test]
async fn a_stage_moved_from_slack_skips_only_the_cards_own_route_when_it_comes_back() {
    let world = World::start(
        vec![
            ("deal-card", DEAL_CARD.into()),
            ("stage-watch", STAGE_WATCH.into()),
        ],
        "integration",
    )
    .await;
    world
        .event(open_deal("deal-1", "Negotiation/Review", MODIFIED))
        .await;
    let (ts, _) = world.card_in("C0DEALDESK").await;
    world
        .choose_stage(RILEY.0, &ts, "Proposal/Price Quote")
        .await;
    world.wait_for_writes(1).await;
    // The Flow on the deal calls back with the change sfrelay made.
    let mut back = open_deal(
        "deal-2",
        "Proposal/Price Quote",
        "2025-10-03T10:00:00.000+0000",
    );
    back["change_type"] = "UPDATE".into();
    back["changed_fields"] = json!(["StageName"]);
    back["prior"] = json!({"StageName": "Negotiation/Review"});
    world.event(back).await;
    let messages = world.slack.wait_for_messages(2).await;
    assert_eq!(
        messages[1]["channel"], "C0SALESALR",
        "the other route fired: {messages:#?}"
    );
    let logs = world.app.logs();
    assert!(
        logs.contains("these routes skip it"),
        "the card's route skipped its own write"
    );
}

#[tokio::test]
async fn a_click_is_answered_while_salesforce_still_holds_its_reply() {
    let (world, ts) = case_world("integration").await;
    world.hold("PATCH", "/sobjects/Case/").await;
    let url = world.interactions();
    let click = world
        .slack
        .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "take_case")
        .await;
    assert_eq!(click.status, 200);
    assert!(
        click.elapsed_ms < 3000,
        "answered in {} ms",
        click.elapsed_ms
    );
    eventually(
        "Salesforce to hold the write's reply",
        Duration::from_secs(20),
        || async { (world.held().await == 1).then_some(()) },
    )
    .await;
    let card = world.slack.messages().await;
    assert!(
        !shows(&card[0], "Taken by"),
        "nothing said before Salesforce answers"
    );
    world.release().await;
    world
        .card_when(&ts, "the card to say who took it", |m| {
            shows(m, "Taken by <@U0RILEY001>")
        })
        .await;
}

#[tokio::test]
async fn a_take_retried_after_kill_9_mid_write_does_not_write_twice() {
    let (mut world, ts) = case_world("integration").await;
    world.hold("PATCH", "/sobjects/Case/").await;
    let url = world.interactions();
    world
        .slack
        .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "take_case")
        .await;
    eventually(
        "the write to be made and its reply held",
        Duration::from_secs(20),
        || async { (world.held().await == 1).then_some(()) },
    )
    .await;
    // The process dies with the write made in Salesforce and its answer never read.
    world.kill_and_restart().await;
    world.release().await;
    world
        .card_when(&ts, "the retried job to finish the card", |m| {
            shows(m, "Taken by <@U0RILEY001>")
        })
        .await;
    let writes = world.writes().await;
    assert_eq!(writes.len(), 1, "written once: {writes:#?}");
    assert_eq!(
        world.sf_requests("PATCH", CASE).await.len(),
        1,
        "never sent twice"
    );
}

#[tokio::test]
async fn a_row_lock_is_retried_until_the_write_goes_through_once() {
    let world = World::start(vec![("deal-card", DEAL_CARD.into())], "integration").await;
    world
        .event(open_deal("deal-1", "Negotiation/Review", MODIFIED))
        .await;
    let (ts, _) = world.card_in("C0DEALDESK").await;
    world
        .sf
        .control(
            "write-faults",
            json!([{"object": "Opportunity", "error_code": "UNABLE_TO_LOCK_ROW", "times": 2}]),
        )
        .await;
    world
        .choose_stage(RILEY.0, &ts, "Proposal/Price Quote")
        .await;
    world
        .card_when(&ts, "the card to show the move", |m| {
            shows(m, "set to *Proposal/Price Quote*")
        })
        .await;
    assert_eq!(world.wait_for_writes(1).await.len(), 1);
    assert_eq!(
        world.sf_requests("PATCH", OPP).await.len(),
        3,
        "two refused, one written"
    );
    assert!(
        world.slack.ephemerals().await.is_empty(),
        "nobody is told of a retried lock"
    );
}

#[tokio::test]
async fn a_lead_status_set_from_the_shipped_alert_is_written_and_shown() {
    const LEAD: &str = "00Q000000000001EAA";
    let world = World::start(
        vec![("high-value-lead", shipped_route("high-value-lead"))],
        "integration",
    )
    .await;
    world
        .sf
        .control(
            "picklists",
            json!({"Lead": {"Status": {"master": ["Open - Not Contacted", "Working - Contacted", "Closed - Converted"]}}}),
        )
        .await;
    world
        .sf
        .control(
            "records",
            json!({"Lead": [{"Id": LEAD, "LastName": "Ng", "Company": "Initech",
                             "Status": "Open - Not Contacted", "Rating": "Hot",
                             "LastModifiedDate": MODIFIED}]}),
        )
        .await;
    world
        .event(json!({
            "event_id": "lead-1", "org_id": ORG, "object": "Lead", "change_type": "CREATE",
            "record": {"Id": LEAD, "FirstName": "Ada", "LastName": "Ng", "Company": "Initech",
                       "Rating": "Hot", "Status": "Open - Not Contacted",
                       "LastModifiedDate": MODIFIED}
        }))
        .await;
    let (ts, card) = world.card_in("C0SALESALR").await;
    assert!(
        offers(&card, "set_lead_status") && offers(&card, "log_follow_up"),
        "{card}"
    );
    let url = world.interactions();
    let working = option("Lead", LEAD, "set_lead_status", "Working - Contacted");
    world
        .slack
        .choose(
            &url,
            SECRET,
            DANA.0,
            "C0SALESALR",
            &ts,
            "set_lead_status",
            &working,
        )
        .await;
    world
        .card_when(&ts, "the card to show the new status", |m| {
            shows(m, "Status set to *Working - Contacted* by <@U0DANA0001>")
        })
        .await;
    let writes = world.wait_for_writes(1).await;
    assert_eq!(writes[0]["object"], "Lead");
    assert_eq!(writes[0]["record"]["Status"], "Working - Contacted");
}

#[tokio::test]
async fn a_follow_up_salesforce_refuses_is_told_where_the_form_was_opened() {
    let (world, ts) = case_world("integration").await;
    let rule = "Follow-ups on escalated cases need a named customer contact.";
    world
        .sf
        .control(
            "validation-rules",
            json!([{"object": "Task", "field": "Subject", "value": "Call them", "message": rule}]),
        )
        .await;
    let url = world.interactions();
    world
        .slack
        .click(&url, SECRET, RILEY.0, "C0SUPESC01", &ts, "log_follow_up")
        .await;
    let views = world.slack.views().await;
    let view = views
        .iter()
        .find(|v| v["callback_id"] == "sfrelay:log_task")
        .unwrap_or_else(|| panic!("the form is open: {views:#?}"));
    let due = (chrono::Utc::now().date_naive() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let answer = world
        .slack
        .submit(
            &url,
            SECRET,
            RILEY.0,
            view["id"].as_str().unwrap(),
            json!({"subject": {"value": "Call them"}, "due": {"value": due}}),
        )
        .await;
    assert_eq!(answer.body, "", "the form closes");
    let told = world.told(RILEY.0, 1).await;
    assert_eq!(told, format!("Not saved: {rule}"));
    assert!(world.writes().await.is_empty());
}
