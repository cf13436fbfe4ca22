//! The slash command and the Events API against the real binary: help in the acknowledgement,
//! a record's card through `response_url` with only the admin's fields, an unfurl of a shared
//! record link (once, whatever Slack's retries), url_verification, and unsigned or forged
//! requests refused. Slack and Salesforce are emulated.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use sfrelay_emulator::client::{SalesforceControl, SlackControl};
use support::actions::{OPP, SECRET, seed};
use support::{App, Options, Redis, Salesforce, Slack, eventually};

const WAIT: Duration = Duration::from_secs(15);
const PERSON: &str = "U0RILEY001";
/// In `[slack] admins`.
const ADMIN: &str = "U0MORGAN01";
const ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

/// The Lightning link of the seeded deal.
fn deal_link() -> String {
    format!("https://acme.lightning.force.com/lightning/r/Opportunity/{OPP}/view")
}

struct World {
    _redis: Redis,
    slack: Slack,
    sf: Salesforce,
    app: App,
    control: SlackControl,
}

impl World {
    async fn start() -> World {
        World::start_with(&[]).await
    }

    /// With more environment (`SFRELAY_PUBLIC_URL` and `SFRELAY_ENCRYPTION_KEY` turn personal
    /// connections on).
    async fn start_with(env: &[(&str, &str)]) -> World {
        let redis = Redis::start();
        let slack = Slack::start(&[]);
        slack
            .add_user(json!({"id": ADMIN, "email": "morgan.manager@example.com"}))
            .await;
        let mut records = seed();
        records["Opportunity"][0]["Description"] = "internal: discount of 40% agreed".into();
        let sf = Salesforce::start(&records);
        let app = App::spawn_with_env(
            Options {
                redis: Some(redis.url()),
                slack_api: Some(slack.api_base()),
                salesforce_section: Some(sf.org_section()),
                routes: Some(vec![
                    ("buttons", support::actions::shipped_route("buttons")),
                    (
                        "followed-opportunity",
                        support::actions::shipped_route("followed-opportunity"),
                    ),
                ]),
                extra_toml: format!(
                    "\n[slack]\nadmins = [\"{ADMIN}\"]\n\n[cards.Opportunity]\nfields = [\"StageName\", \"Amount\"]\n"
                ),
                ..Options::default()
            },
            [("SLACK_SIGNING_SECRET", SECRET)]
                .iter()
                .chain(env)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .await;
        let control = SlackControl::new(slack.url.clone());
        World {
            _redis: redis,
            slack,
            sf,
            app,
            control,
        }
    }

    /// `PERSON` types `/sf text` in #deal-desk.
    async fn sf(&self, text: &str) -> sfrelay_emulator::client::CommandAnswer {
        self.sf_as(PERSON, text).await
    }

    async fn sf_as(&self, user: &str, text: &str) -> sfrelay_emulator::client::CommandAnswer {
        self.control
            .command(
                &self.commands_url(),
                SECRET,
                user,
                "C0DEALDESK",
                "/sf",
                text,
            )
            .await
            .expect("command sent")
    }

    /// What `user` was answered when typing `/sf text`, as text.
    async fn answer_to(&self, user: &str, text: &str) -> String {
        let answer = self.sf_as(user, text).await;
        assert_eq!(answer.status, 200);
        self.replies(&answer.response_id).await[0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The unfurls made, once there is one.
    async fn unfurls(&self) -> Vec<Value> {
        eventually("the unfurl", WAIT, || async {
            let unfurls = self.control.unfurls().await.ok()?;
            (!unfurls.is_empty()).then_some(unfurls)
        })
        .await
    }

    fn commands_url(&self) -> String {
        format!("{}/slack/commands", self.app.url)
    }

    fn events_url(&self) -> String {
        format!("{}/slack/events", self.app.url)
    }

    /// What the command's `response_url` received, once it received something.
    async fn replies(&self, response_id: &str) -> Vec<Value> {
        eventually("an answer through response_url", WAIT, || async {
            let replies = self.control.responses(response_id).await.ok()?;
            (!replies.is_empty()).then_some(replies)
        })
        .await
    }
}

#[tokio::test]
async fn help_comes_in_the_acknowledgement_and_unknown_input_gets_it_too() {
    let world = World::start().await;
    for text in ["", "help", "make me a sandwich"] {
        let answer = world.sf(text).await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert!(answer.within_3s);
        let shown = answer.body.to_string();
        assert!(shown.contains("/sf <record link or Id>"), "{text}: {shown}");
        assert_eq!(answer.body["response_type"], "ephemeral");
    }
    let answer = world.sf("make me a sandwich").await;
    assert!(answer.body.to_string().contains("did not understand"));
}

#[tokio::test]
async fn a_record_link_is_answered_with_its_card_and_only_the_admins_fields() {
    let world = World::start().await;
    let answer = world
        .control
        .command(
            &world.commands_url(),
            SECRET,
            PERSON,
            "C0DEALDESK",
            "/sf",
            &deal_link(),
        )
        .await
        .expect("command sent");
    assert_eq!(answer.status, 200);
    assert!(answer.within_3s);
    let replies = world.replies(&answer.response_id).await;
    let card = replies[0].to_string();
    assert!(card.contains("Acme Corp - Q3 Enterprise"), "{card}");
    assert!(card.contains("Negotiation/Review"), "{card}");
    assert!(card.contains("75000"), "{card}");
    // Not listed in [cards.Opportunity]: never read, never shown.
    assert!(!card.contains("discount"), "{card}");
    let queries = world.sf.requests().await;
    assert!(
        !queries
            .iter()
            .any(|q| q.to_string().contains("Description")),
        "{queries:?}"
    );
    // The same buttons as a notification's.
    assert!(card.contains("log_follow_up"), "{card}");
}

#[tokio::test]
async fn a_bare_id_and_a_stranger_link_are_answered_plainly() {
    let world = World::start().await;
    let url = world.commands_url();
    let answer = world.sf(OPP).await;
    let replies = world.replies(&answer.response_id).await;
    assert!(
        replies[0].to_string().contains("Acme Corp - Q3 Enterprise"),
        "{replies:?}"
    );
    let answer = world
        .control
        .command(
            &url,
            SECRET,
            PERSON,
            "C0DEALDESK",
            "/sf",
            &format!("https://evil.example/{OPP}"),
        )
        .await
        .unwrap();
    let replies = world.replies(&answer.response_id).await;
    assert!(
        replies[0].to_string().contains("not the domain of an org"),
        "{replies:?}"
    );
}

#[tokio::test]
async fn a_shared_record_link_is_unfurled_once_whatever_the_retries() {
    let world = World::start().await;
    let url = world.events_url();
    let sent = world
        .control
        .link_shared(&url, SECRET, PERSON, "C0DEALDESK", &[&deal_link()])
        .await
        .expect("event sent");
    assert_eq!(sent.status, 200);
    assert!(sent.within_3s);
    for n in 1..=2 {
        let retry = world
            .control
            .retry_event(&url, SECRET, &sent.event_id, n, "http_timeout")
            .await
            .unwrap();
        assert_eq!(retry.status, 200);
    }
    let unfurls = world.unfurls().await;
    let shown = unfurls[0].to_string();
    assert!(shown.contains("Acme Corp - Q3 Enterprise"), "{shown}");
    assert!(!shown.contains("discount"), "{shown}");
    // The retries queued nothing more.
    let deduped = eventually("the retries counted", WAIT, || async {
        world
            .app
            .metric("sfrelay_slack_inbound_total{outcome=\"duplicate\"}")
            .await
            .filter(|n| *n >= 2.0)
    })
    .await;
    assert_eq!(deduped, 2.0);
    assert_eq!(world.control.unfurls().await.unwrap().len(), 1);
}

#[tokio::test]
async fn url_verification_is_answered_and_forged_requests_are_refused() {
    let world = World::start().await;
    let verified = world
        .control
        .url_verification(&world.events_url(), SECRET, "challenge-4217")
        .await
        .unwrap();
    assert_eq!(verified.verified, Some(true), "{:?}", verified.body);
    let forged = world
        .control
        .url_verification(&world.events_url(), "not-the-secret", "challenge-1")
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    let tampered = world
        .control
        .send_command(
            json!({"url": world.commands_url(), "signing_secret": SECRET,
                             "user": PERSON, "channel": "C0DEALDESK", "text": OPP,
                             "tamper": true}),
        )
        .await
        .unwrap();
    assert_eq!(tampered.status, 401);
    let stale = world
        .control
        .send_command(
            json!({"url": world.commands_url(), "signing_secret": SECRET,
                             "user": PERSON, "channel": "C0DEALDESK", "text": OPP,
                             "timestamp": chrono::Utc::now().timestamp() - 600}),
        )
        .await
        .unwrap();
    assert_eq!(stale.status, 401);
    // Nothing was looked up for them.
    assert!(
        world
            .sf
            .requests()
            .await
            .iter()
            .all(|r| !r.to_string().contains("FROM Opportunity"))
    );
}

#[tokio::test]
async fn find_searches_with_the_text_escaped_and_answers_with_cards() {
    let world = World::start().await;
    let answer = world.sf("find Corp - Q3").await;
    assert!(answer.within_3s);
    assert!(answer.body.to_string().contains("Searching Salesforce"));
    let replies = world.replies(&answer.response_id).await;
    let shown = replies[0].to_string();
    assert!(shown.contains("Acme Corp - Q3 Enterprise"), "{shown}");
    assert!(shown.contains("Negotiation/Review"), "{shown}");
    let braces = world.sf("find Q3 {Enterprise} OR *").await;
    let replies = world.replies(&braces.response_id).await;
    assert!(
        replies[0]
            .to_string()
            .contains("Nothing in Salesforce matches"),
        "{replies:?}"
    );
    let searches = SalesforceControl::new(world.sf.url.clone())
        .searches()
        .await
        .unwrap();
    let sent: Vec<String> = searches.iter().map(|s| s.to_string()).collect();
    // SOSL's reserved characters reached Salesforce escaped, so they were searched as text:
    // neither a brace that ends the search early nor a wildcard.
    assert!(sent.iter().any(|s| s.contains(r"\\-")), "{sent:?}");
    assert!(
        sent.iter()
            .any(|s| s.contains(r"\\{Enterprise\\}") && s.contains(r"\\*")),
        "{sent:?}"
    );
}

#[tokio::test]
async fn orgs_lists_each_org_and_the_persons_connection() {
    let world = World::start().await;
    let answer = world.sf("orgs").await;
    let replies = world.replies(&answer.response_id).await;
    let shown = replies[0].to_string();
    assert!(shown.contains("production"), "{shown}");
    assert!(shown.contains("not connected"), "{shown}");
}

#[tokio::test]
async fn home_shows_the_persons_orgs_and_health_to_admins_only() {
    let world = World::start_with(&[
        ("SFRELAY_PUBLIC_URL", "https://sfrelay.example.com"),
        ("SFRELAY_ENCRYPTION_KEY", ENCRYPTION_KEY),
    ])
    .await;
    let url = world.events_url();
    for user in [PERSON, ADMIN] {
        let sent = world
            .control
            .app_home_opened(&url, SECRET, user)
            .await
            .unwrap();
        assert_eq!(sent.status, 200);
    }
    let view = |user: &'static str| {
        let control = world.control.clone();
        async move {
            eventually("a Home view", WAIT, || async {
                control.home_view(user).await.ok().flatten()
            })
            .await
            .to_string()
        }
    };
    let person = view(PERSON).await;
    assert!(person.contains("Your Salesforce orgs"), "{person}");
    assert!(person.contains("production"), "{person}");
    // A fresh single-use link to connect, under sfrelay's public URL.
    assert!(
        person.contains("https://sfrelay.example.com/oauth/salesforce/start?state="),
        "{person}"
    );
    assert!(!person.contains("health"), "{person}");
    assert!(!person.contains("Dead letters"), "{person}");
    let admin = view(ADMIN).await;
    assert!(admin.contains("Default org"), "{admin}");
    assert!(admin.contains("health"), "{admin}");
    assert!(admin.contains("token valid"), "{admin}");
    // The dead letters are the workspace's: one line of their own, in no org's health.
    let blocks: Value = serde_json::from_str(&admin).expect("a view");
    let blocks = blocks["blocks"].as_array().expect("blocks");
    let dead: Vec<&Value> = blocks
        .iter()
        .filter(|b| b.to_string().contains("Dead letters"))
        .collect();
    assert_eq!(dead.len(), 1, "{admin}");
    assert_eq!(dead[0]["text"]["text"], "*Dead letters*: 0", "{admin}");
    assert!(dead[0].get("fields").is_none(), "{admin}");
    let healths = blocks
        .iter()
        .filter(|b| b.to_string().contains(" health"))
        .count();
    assert!(healths > 1, "{admin}");
}

#[tokio::test]
async fn home_asks_salesforce_for_a_refused_token_once_a_minute_not_on_every_open() {
    let world = World::start().await;
    let stats_url = format!("{}/_emulator/stats", world.sf.url);
    let token_requests = || async {
        let stats: Value = reqwest::get(&stats_url)
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON");
        stats["token_requests"].as_u64().expect("a count")
    };
    world
        .sf
        .control(
            "faults",
            json!({"fail_next": 5, "endpoint": "token", "status": 400,
                   "error_code": "invalid_grant", "message": "expired access/refresh token"}),
        )
        .await;
    let before = token_requests().await;
    let url = world.events_url();
    for n in 1..=2 {
        let sent = world
            .control
            .app_home_opened(&url, SECRET, ADMIN)
            .await
            .unwrap();
        assert_eq!(sent.status, 200);
        let admin = eventually("the Home view", WAIT, || async {
            let publishes = world.control.home_publishes().await.ok()?;
            let mine: Vec<Value> = publishes
                .into_iter()
                .filter(|p| p["user"] == ADMIN)
                .collect();
            (mine.len() == n).then(|| mine[n - 1]["blocks"].to_string())
        })
        .await;
        assert!(admin.contains("token refused"), "{admin}");
        assert!(admin.contains("invalid_grant"), "{admin}");
    }
    assert_eq!(token_requests().await - before, 1);
}

#[tokio::test]
async fn an_unconnected_persons_link_gets_a_minimal_card_and_a_prompt_to_connect() {
    let world = World::start_with(&[
        ("SFRELAY_PUBLIC_URL", "https://sfrelay.example.com"),
        ("SFRELAY_ENCRYPTION_KEY", ENCRYPTION_KEY),
    ])
    .await;
    world
        .control
        .link_shared(
            &world.events_url(),
            SECRET,
            PERSON,
            "C0DEALDESK",
            &[&deal_link()],
        )
        .await
        .unwrap();
    let unfurls = world.unfurls().await;
    let shown = unfurls[0].to_string();
    assert!(shown.contains(OPP), "{shown}");
    // Nothing read from Salesforce reaches the channel for them.
    assert!(!shown.contains("Acme Corp"), "{shown}");
    assert!(!shown.contains("75000"), "{shown}");
    assert_eq!(unfurls[0]["user_auth_required"], true, "{shown}");
    assert!(
        unfurls[0]["user_auth_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://sfrelay.example.com/oauth/salesforce/start")),
        "{shown}"
    );
}

#[tokio::test]
async fn every_command_is_answered_while_salesforce_holds_its_replies() {
    let world = World::start().await;
    let salesforce = SalesforceControl::new(world.sf.url.clone());
    salesforce
        .hold(None, "/services/data/", None)
        .await
        .expect("hold");
    let mut answers = Vec::new();
    for text in ["find Acme", OPP, "orgs", "help"] {
        let answer = world.sf(text).await;
        assert_eq!(answer.status, 200, "{text}");
        assert!(answer.within_3s, "{text}: {} ms", answer.elapsed_ms);
        answers.push(answer);
    }
    salesforce.release().await.expect("release");
    // Once Salesforce answers, the search and the lookup are answered too.
    for answer in &answers[..2] {
        let replies = world.replies(&answer.response_id).await;
        assert!(
            replies[0].to_string().contains("Acme Corp - Q3 Enterprise"),
            "{replies:?}"
        );
    }
}

/// The deal's stage changes in Salesforce (a Flow callout with the prior value).
fn stage_change(event_id: &str, from: &str, to: &str) -> String {
    json!({
        "event_id": event_id, "org_id": support::ORG, "object": "Opportunity",
        "change_type": "UPDATE", "changed_fields": ["StageName"], "prior": {"StageName": from},
        "record": {"Id": OPP, "Name": "Acme Corp - Q3 Enterprise", "StageName": to}
    })
    .to_string()
}

/// The DMs sfrelay sent `user` (the emulator's DM channel of `U…` is `D…`).
async fn dms_to(world: &World, user: &str) -> Vec<Value> {
    let channel = format!("D{}", &user[1..]);
    world
        .slack
        .messages()
        .await
        .into_iter()
        .filter(|m| m["channel"] == channel.as_str())
        .collect()
}

#[tokio::test]
async fn followers_are_told_of_each_change_by_dm_until_they_unfollow() {
    let world = World::start().await;
    // By link, and by bare Id (in the only org).
    let told = world
        .answer_to(PERSON, &format!("follow {}", deal_link()))
        .await;
    assert!(
        told.contains("You follow *Acme Corp - Q3 Enterprise* now"),
        "{told}"
    );
    let told = world.answer_to(ADMIN, &format!("follow {OPP}")).await;
    assert!(told.contains("You follow"), "{told}");
    let listed = world.answer_to(PERSON, "follow").await;
    assert!(
        listed.contains("You follow 1 record:") && listed.contains(OPP),
        "{listed}"
    );
    // An object no route tells followers about cannot be followed.
    let told = world.answer_to(PERSON, "follow 001000000000001").await;
    assert!(
        told.contains("Account records cannot be followed"),
        "{told}"
    );

    let response = world
        .app
        .post_events(stage_change("stage-1", "Negotiation/Review", "Closed Won"))
        .await;
    assert_eq!(response.status(), 202);
    for user in [PERSON, ADMIN] {
        let dms = eventually("a DM to each follower", WAIT, || async {
            let dms = dms_to(&world, user).await;
            (!dms.is_empty()).then_some(dms)
        })
        .await;
        let shown = dms[0]["blocks"].to_string();
        assert!(shown.contains("Acme Corp - Q3 Enterprise"), "{shown}");
        assert!(shown.contains("Negotiation/Review → Closed Won"), "{shown}");
    }

    // Following only one record, a bare `unfollow` stops it.
    let told = world.answer_to(PERSON, "unfollow").await;
    assert!(told.contains("You no longer follow"), "{told}");
    assert!(
        world
            .answer_to(PERSON, "unfollow")
            .await
            .contains("You follow no records")
    );
    world
        .app
        .post_events(stage_change("stage-2", "Closed Won", "Negotiation/Review"))
        .await;
    eventually("the second DM to who still follows", WAIT, || async {
        (dms_to(&world, ADMIN).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(dms_to(&world, PERSON).await.len(), 1);

    // The same change sent again DMs nobody twice.
    world
        .app
        .post_events(stage_change("stage-2", "Closed Won", "Negotiation/Review"))
        .await;
    world
        .app
        .post_events(stage_change("stage-3", "Negotiation/Review", "Closed Won"))
        .await;
    eventually("the third change's DM", WAIT, || async {
        (dms_to(&world, ADMIN).await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(dms_to(&world, PERSON).await.len(), 1);
}
