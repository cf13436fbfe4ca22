//! From callout to Slack with the shipped routes and templates: the real binary, real Redis and
//! the Slack emulator.

use crate::support;

use std::time::Duration;

use serde_json::Value;
use support::{App, Options, Redis, Slack, eventually, fixture};

async fn stack_with(
    slack_args: &[&str],
    routes: Option<Vec<(&'static str, String)>>,
) -> (Redis, Slack, App) {
    let redis = Redis::start();
    let slack = Slack::start(slack_args);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes,
        ..Options::default()
    })
    .await;
    (redis, slack, app)
}

async fn stack() -> (Redis, Slack, App) {
    stack_with(&[], None).await
}

fn in_channel<'a>(messages: &'a [Value], channel: &str) -> Vec<&'a Value> {
    messages
        .iter()
        .filter(|m| m["channel"] == channel)
        .collect()
}

fn all_text(message: &Value) -> String {
    serde_json::to_string(message).unwrap()
}

/// Waits until the queue holds nothing ready, in flight or delayed.
async fn settled(app: &App) {
    eventually("the queue to settle", Duration::from_secs(15), || async {
        let mut total = 0.0;
        for state in ["ready", "in_flight", "delayed"] {
            total += app
                .metric(&format!("sfrelay_queue_depth{{state=\"{state}\"}}"))
                .await?;
        }
        (total == 0.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn closed_won_reaches_the_deal_desk_its_segment_and_its_owner() {
    let (_redis, slack, app) = stack().await;
    let response = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await;
    assert_eq!(response.status(), 202);

    let messages = slack.wait_for_messages(4).await;
    // 1. The briefing in #deal-desk, by channel Id.
    let desk = in_channel(&messages, "C0DEALDESK");
    assert_eq!(desk.len(), 1, "{messages:#?}");
    let desk = desk[0];
    assert_eq!(
        desk["text"],
        "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) 75,000"
    );
    let blocks = desk["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    let text = all_text(desk);
    for expected in [
        "*Account*\\nAcme Corp",
        "*ARR*\\n75,000",
        "*Close date*\\n30 Sep 2025",
        "*Contract start*\\n15 Oct 2025",
        "<@U0DANA0001>",
        "<@U0SAM00001>",
        "<@U0CASEY001>",
        "https://acme.my.salesforce.com/lightning/r/Opportunity/006Hs00000BkXyzIAF/view",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }
    // 2. 75,000 is below 100,000: #smb-wins, not #enterprise-wins.
    assert_eq!(in_channel(&messages, "C0SMBWINS1").len(), 1);
    assert!(in_channel(&messages, "C0ENTWINS1").is_empty());
    // 3. The owner's DM.
    let dms: Vec<Value> = slack.get_json("/_emulator/dms").await;
    let dana = dms
        .iter()
        .find(|d| d["user"] == "U0DANA0001")
        .expect("a DM with Dana");
    let dm = in_channel(&messages, dana["channel"].as_str().unwrap());
    assert_eq!(dm.len(), 1);
    assert!(
        dm[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Congratulations, Dana Seller")
    );

    let stats = slack.stats().await;
    assert_eq!(stats["invalid_blocks"], 0, "{stats}");
    assert_eq!(stats["posts_by_name"], 0, "{stats}");
}

#[tokio::test]
async fn a_deal_is_announced_once_per_record_and_an_event_once() {
    let (_redis, slack, app) = stack().await;
    let first: Value = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await
        .json()
        .await
        .unwrap();
    let again: Value = app
        .post_events(fixture("flow-opportunity-closed-won.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicates"], 1);
    assert_eq!(first["ids"], again["ids"]);
    slack.wait_for_messages(4).await;

    // Another event for the same deal becoming Closed Won again (reopened and won): the
    // once-per-record routes do not fire twice.
    let mut later: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    later["event_id"] = "a-later-event".into();
    assert_eq!(app.post_events(later.to_string()).await.status(), 202);
    settled(&app).await;
    assert_eq!(slack.messages().await.len(), 4);
}

#[tokio::test]
async fn a_batch_is_routed_by_segment_and_hostile_values_render_inert() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-batch-opportunities.json"))
            .await
            .status(),
        202
    );
    let mut hostile: Value =
        serde_json::from_slice(&fixture("hostile/mrkdwn-injection.json")).unwrap();
    hostile["record"]["Id"] = "006000000000009AAA".into();
    assert_eq!(app.post_events(hostile.to_string()).await.status(), 202);

    // 3 deals × (deal desk + segment + owner DM + deal room).
    let messages = slack.wait_for_messages(12).await;
    let enterprise = in_channel(&messages, "C0ENTWINS1");
    assert_eq!(enterprise.len(), 1);
    assert!(all_text(enterprise[0]).contains("Big deal"));
    assert_eq!(in_channel(&messages, "C0SMBWINS1").len(), 2);
    let all = serde_json::to_string(&messages).unwrap();
    for needle in ["<!channel>", "<@U00000001>", "<https://evil"] {
        assert!(!all.contains(needle), "{needle} reached Slack: {all}");
    }
    assert!(all.contains("&lt;!channel&gt;"));
}

#[tokio::test]
async fn an_escalated_case_pages_on_call_and_its_card_is_updated_in_place() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-case-escalated.json"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    let card = &messages[0];
    assert_eq!(card["channel"], "C0SUPESC01");
    let text = all_text(card);
    for expected in [
        "Case 00001042 escalated",
        "Checkout API returns 500 for all EU customers",
        "Globex GmbH",
        "<@U0ONCALL01>",
        "2 Oct 2025 13:12 UTC",
        "https://acme.my.salesforce.com/lightning/r/Case/500Hs00000EfGhiIAF/view",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }

    // The case moves on: the same card shows the new status, no second card.
    let mut update: Value = serde_json::from_slice(&fixture("flow-case-escalated.json")).unwrap();
    update["event_id"] = "case-500Hs00000EfGhiIAF-status-2".into();
    update["changed_fields"] = serde_json::json!(["Status"]);
    update["record"]["Status"] = "Working".into();
    update["prior"] = serde_json::json!({"Status": "Escalated"});
    assert_eq!(app.post_events(update.to_string()).await.status(), 202);
    let updated = eventually(
        "the card to be updated",
        Duration::from_secs(10),
        || async {
            let m = slack.messages().await;
            (m.len() == 1 && m[0]["updated"] == true).then_some(m)
        },
    )
    .await;
    assert_eq!(updated[0]["ts"], card["ts"]);
    assert!(all_text(&updated[0]).contains("*Status*\\nWorking"));
}

#[tokio::test]
async fn a_hot_lead_alerts_sales_and_other_events_post_nothing() {
    let (_redis, slack, app) = stack().await;
    assert_eq!(
        app.post_events(fixture("flow-lead-high-value.json"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0SALESALR");
    assert!(all_text(&messages[0]).contains("Initech"));

    // A cold, small lead and an opportunity that is not Closed Won fire nothing.
    let mut cold: Value = serde_json::from_slice(&fixture("flow-lead-high-value.json")).unwrap();
    cold["record"]["Id"] = "00Q5g00000AbCdFEAV".into();
    cold["record"]["Rating"] = "Cold".into();
    cold["record"]["AnnualRevenue"] = 5000.into();
    let mut open: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    open["record"]["StageName"] = "Prospecting".into();
    open["event_id"] = "still-open".into();
    assert_eq!(app.post_events(cold.to_string()).await.status(), 202);
    assert_eq!(app.post_events(open.to_string()).await.status(), 202);
    settled(&app).await;
    assert_eq!(slack.messages().await.len(), 1);
}

#[tokio::test]
async fn unknown_owner_email_falls_back_to_the_channel_with_a_note() {
    let (_redis, slack, app) = stack().await;
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["record"]["Owner"]["Email"] = "new.hire@example.com".into();
    assert_eq!(app.post_events(body.to_string()).await.status(), 202);
    let messages = slack.wait_for_messages(4).await;
    let desk = in_channel(&messages, "C0DEALDESK");
    assert_eq!(desk.len(), 2, "briefing and the fallback DM: {messages:#?}");
    assert!(
        desk.iter()
            .any(|m| all_text(m).contains("Slack has no user with that email")),
        "{desk:#?}"
    );
}

#[tokio::test]
async fn channel_names_resolve_across_pages_and_unknown_ones_dead_letter() {
    let routes = vec![
        (
            "ok",
            r##"
object = "Opportunity"
[[actions]]
type = "post"
channel = "#sales-alerts"
template = "closed-won-win"
"##
            .to_string(),
        ),
        (
            "missing",
            r##"
object = "Opportunity"
[[actions]]
type = "post"
channel = "#no-such-channel"
template = "closed-won-win"
"##
            .to_string(),
        ),
    ];
    let (_redis, slack, app) = stack_with(&["--page-size", "2"], Some(routes)).await;
    assert_eq!(
        app.post_events(fixture("flow-opportunity-closed-won.json"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0SALESALR");
    eventually("a dead letter", Duration::from_secs(10), || async {
        (app.metric("sfrelay_queue_depth{state=\"dead\"}").await? == 1.0).then_some(())
    })
    .await;
    assert!(app.logs().contains("channel #no-such-channel not found"));
    let requests = slack.requests().await;
    let pages = requests
        .iter()
        .filter(|r| r["method"] == "conversations.list")
        .count();
    assert!(pages >= 3, "expected several pages, got {pages}");
    assert_eq!(slack.stats().await["posts_by_name"], 0);

    // Another event for the missing channel is refused from the cache: no scan again.
    let mut again: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    again["event_id"] = "closed-won-again".into();
    assert_eq!(app.post_events(again.to_string()).await.status(), 202);
    eventually("a second dead letter", Duration::from_secs(10), || async {
        (app.metric("sfrelay_queue_depth{state=\"dead\"}").await? == 2.0).then_some(())
    })
    .await;
    slack.wait_for_messages(2).await;
    let scans = |requests: Vec<Value>| {
        requests
            .iter()
            .filter(|r| r["method"] == "conversations.list")
            .count()
    };
    assert_eq!(scans(slack.requests().await), pages);

    // The operator sees why, creates the channel, and replays the dead letter.
    let (ok, out) = app.cli(&["dlq", "list"]);
    assert!(ok, "{out}");
    let line = out.lines().next().unwrap_or_default().to_string();
    assert!(
        line.contains("/missing\t") && line.contains("channel #no-such-channel not found"),
        "{out}"
    );
    let id = line.split('\t').next().unwrap().to_string();
    let (ok, shown) = app.cli(&["dlq", "show", &id]);
    assert!(ok, "{shown}");
    let letter: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(letter["job"]["id"], id.as_str());
    assert!(
        letter["job"]["first_error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    assert!(letter["dead_at_ms"].as_i64().unwrap() > 0);

    let created = reqwest::Client::new()
        .post(format!("{}/_emulator/channels", slack.url))
        .json(&serde_json::json!({"id": "C0NEWCHAN1", "name": "no-such-channel"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    // Replaying looks for channels found missing again: the new one is found at once.
    let (ok, out) = app.cli(&["dlq", "replay", &id]);
    assert!(ok && out.contains("1 dead letter(s) replayed"), "{out}");
    let messages = slack.wait_for_messages(3).await;
    assert_eq!(messages[2]["channel"], "C0NEWCHAN1");
    assert_eq!(
        app.metric("sfrelay_queue_depth{state=\"dead\"}").await,
        Some(1.0)
    );
    let (ok, out) = app.cli(&["dlq", "replay", &id]);
    assert!(!ok && out.contains("0 dead letter(s)"), "{out}");
    let (ok, out) = app.cli(&["dlq", "purge", "--all"]);
    assert!(ok && out.contains("1 dead letter(s) purged"), "{out}");
}

/// Only the deal-room route, so a test sees rooms alone.
fn rooms_only() -> Option<Vec<(&'static str, String)>> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("routes/closed-won-deal-room.toml"),
    )
    .unwrap();
    Some(vec![("closed-won-deal-room", text)])
}

#[tokio::test]
async fn a_won_deal_gets_one_room_with_its_people_and_the_briefing() {
    let (_redis, slack, app) = stack_with(&[], rooms_only()).await;
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["record"]["CSM_Email__c"] = "nobody.here@example.com".into();
    assert_eq!(app.post_events(body.to_string()).await.status(), 202);
    let messages = slack.wait_for_messages(1).await;
    let room: Value = slack
        .get_json::<Vec<Value>>("/_emulator/channels")
        .await
        .into_iter()
        .find(|c| c["name"] == "deal-acme-corp-q3-enterprise")
        .expect("the room exists");
    assert_eq!(room["is_private"], true);
    assert_eq!(messages[0]["channel"], room["id"]);
    let members = room["members"].to_string();
    for user in ["U0DANA0001", "U0SAM00001"] {
        assert!(members.contains(user), "{user} not in {members}");
    }
    let text = all_text(&messages[0]);
    assert!(
        text.contains("nobody.here@example.com"),
        "the unknown CSM is listed: {text}"
    );
    assert!(text.contains("<@U0DANA0001>"));

    // The same deal won again (another event): no second room, no second briefing.
    let mut again = body.clone();
    again["event_id"] = "won-again".into();
    assert_eq!(app.post_events(again.to_string()).await.status(), 202);
    settled(&app).await;
    assert_eq!(slack.messages().await.len(), 1);
    let creates = slack
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "conversations.create")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn a_room_name_someone_else_has_gets_a_suffix() {
    let (_redis, slack, app) = stack_with(&[], rooms_only()).await;
    // Someone already has a channel with the room's name.
    let taken = reqwest::Client::new()
        .post(format!("{}/_emulator/channels", slack.url))
        .json(&serde_json::json!({"id": "C0HUMANS01", "name": "deal-acme-corp-q3-enterprise"}))
        .send()
        .await
        .unwrap();
    assert!(taken.status().is_success());
    assert_eq!(
        app.post_events(fixture("flow-opportunity-closed-won.json"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    let channels: Vec<Value> = slack.get_json("/_emulator/channels").await;
    let room = channels
        .iter()
        .find(|c| c["name"] == "deal-acme-corp-q3-enterprise-2")
        .expect("a suffixed room");
    assert_eq!(messages[0]["channel"], room["id"]);
}

#[tokio::test]
async fn a_room_made_before_a_crash_is_found_and_reused() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let namespace = support::fresh_namespace();
    // An earlier attempt claimed the name and Slack made the room, but the process died
    // before it noted the room's Id.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("sfrelay:{{{namespace}}}:roomname:deal-beta-ltd"))
        .arg("room:closed-won-deal-room:00D5g000004ABCdEAO:006000000000005AAA")
        .query_async(&mut conn)
        .await
        .unwrap();
    let made = reqwest::Client::new()
        .post(format!("{}/_emulator/channels", slack.url))
        .json(&serde_json::json!({"id": "C0BETAROOM", "name": "deal-beta-ltd", "is_private": true}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: rooms_only(),
        namespace,
        ..Options::default()
    })
    .await;
    let mut deal: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    deal["record"]["Id"] = "006000000000005AAA".into();
    deal["record"]["Name"] = "Beta Ltd".into();
    assert_eq!(app.post_events(deal.to_string()).await.status(), 202);
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0BETAROOM");
    let channels: Vec<Value> = slack.get_json("/_emulator/channels").await;
    assert!(!channels.iter().any(|c| c["name"] == "deal-beta-ltd-2"));
}

#[tokio::test]
async fn an_org_with_its_own_slack_token_posts_with_it() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    // The last configured org (the EC one) gets its own bot token; the emulator knows only
    // the default one, so that org's app is refused with invalid_auth (and paused, its jobs
    // waiting) while the others' go through: proof that each org posts with its own token.
    let app = App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            routes: support::deal_desk_only(),
            extra_toml: "[orgs.slack]\nbot_token_env = \"EC_ORG_SLACK_TOKEN\"\n".into(),
            ..Options::default()
        },
        vec![("EC_ORG_SLACK_TOKEN".into(), "xoxb-another-workspace".into())],
    )
    .await;
    let ec_org = "00D5g000001EcDsEAK";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &serde_json::json!({"exp": now + 120}),
        &jsonwebtoken::EncodingKey::from_ec_pem(&fixture("keys/ec-private.pem")).unwrap(),
    )
    .unwrap();
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["org_id"] = ec_org.into();
    let auth = format!("Bearer {token}");
    let response = app
        .post_events_with(body.to_string(), &[("Authorization", &auth)])
        .await;
    assert_eq!(response.status(), 202);
    eventually(
        "the other org's app to be paused",
        Duration::from_secs(10),
        || async {
            let ready: Value = app.get("/readyz").await.json().await.ok()?;
            let apps = ready["checks"]["slack_apps"].as_array()?.clone();
            apps.iter()
                .any(|a| {
                    a["app"] == ec_org
                        && a["state"] == "paused"
                        && a["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("invalid_auth"))
                })
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        app.metric("sfrelay_queue_depth{state=\"dead\"}").await,
        Some(0.0)
    );

    // The default org still posts with the default token.
    assert_eq!(
        app.post_events(fixture("flow-opportunity-closed-won.json"))
            .await
            .status(),
        202
    );
    let messages = slack.wait_for_messages(1).await;
    assert_eq!(messages[0]["channel"], "C0DEALDESK");
}
