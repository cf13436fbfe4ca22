//! People connecting their own Salesforce accounts, end to end: the real binary, Redis and the
//! Slack emulator, one Salesforce emulator per org. A person without a Salesforce user clicks
//! a card, is handed a sign-in link in the ephemeral answer, signs in (the emulator plays the
//! login page), and from then on writes as themselves; refused links (forged, expired, reused,
//! someone else's, another browser's) and a sign-in to another org; a refresh on 401; a connection revoked at Salesforce
//! asking the person to reconnect; and no token in Redis or the log in clear.
//!
//! The library itself is driven too (`People` in this process): searches and queries as the
//! person, what they may not see left out, and disconnecting, which revokes at Salesforce.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::actions::{DANA, MODIFIED, OPP, SECRET, seed, shipped_route};
use support::browser::{Browser, holds_a_token, link_in, redis_values, state_of};
use support::interact::InteractAnswer;
use support::{App, ORG, Options, Redis, Salesforce, Slack, eventually, fresh_namespace};

/// Where Slack and Salesforce reach sfrelay, as configured; the test's browser maps it onto the
/// app's real address.
const PUBLIC: &str = "https://sfrelay.test";
const CALLBACK: &str = "https://sfrelay.test/oauth/salesforce/callback";
/// The second org and its API key.
const SANDBOX: &str = "00D5g000007QRSt";
const SANDBOX_KEY: &str = "sandbox-api-key-0123456789abcdef";
const ENCRYPTION_KEY: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
/// In Slack (with an email no Salesforce user has), and signing in as `casey@acme.example`.
const CASEY: &str = "U0CASEY001";
const CASEY_SF: (&str, &str) = ("005000000000021AAA", "casey@acme.example");
/// Another person in Slack, signing in as `sam@acme.example`.
const SAM: &str = "U0SAM00001";
const SAM_SF: (&str, &str) = ("005000000000022AAA", "sam@acme.example");
const STAGES: [&str; 4] = [
    "Prospecting",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
];

/// A card for an open deal, with the stage select.
const DEAL_CARD: &str = r##"
object = "Opportunity"
change_types = ["CREATE", "UPDATE"]
when = 'record.StageName != "Closed Won"'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "renewal-risk-dm"
"##;

/// The emulators' records: the shipped test people plus the two who sign in.
fn records() -> Value {
    let mut data = seed();
    let users = data["User"].as_array_mut().expect("users");
    for (id, username) in [CASEY_SF, SAM_SF] {
        users.push(json!({"Id": id, "Username": username, "Name": username,
                          "Email": username, "IsActive": true}));
    }
    data
}

/// An emulator playing `org`, the one its sign-ins end in.
async fn emulated_org(org: &str) -> Salesforce {
    let sf = Salesforce::start_as(org, &records(), &[]);
    sf.control(
        "picklists",
        json!({"Opportunity": {"StageName": {"master": STAGES}}}),
    )
    .await;
    sf.control("oauth/app", json!({"callback_urls": [CALLBACK]}))
        .await;
    sf
}

struct World {
    redis: Redis,
    slack: Slack,
    prod: Salesforce,
    sandbox: Salesforce,
    app: App,
}

impl World {
    async fn start(state_ttl_secs: u64) -> World {
        World::start_playing(state_ttl_secs, ORG, SANDBOX).await
    }

    /// Like `start`, with the production and sandbox emulators playing these orgs.
    async fn start_playing(state_ttl_secs: u64, prod_org: &str, sandbox_org: &str) -> World {
        let redis = Redis::start();
        let slack = Slack::start(&[]);
        let (prod, sandbox) = (
            emulated_org(prod_org).await,
            emulated_org(sandbox_org).await,
        );
        let app = spawn(&redis, &slack, &prod, &sandbox, state_ttl_secs).await;
        World {
            redis,
            slack,
            prod,
            sandbox,
            app,
        }
    }

    /// A deal card for `org`, posted by sfrelay; answers its ts.
    async fn deal_card(&self, org: &str, event_id: &str) -> String {
        let event = json!({
            "event_id": event_id, "org_id": org, "object": "Opportunity", "change_type": "CREATE",
            "record": {"Id": OPP, "Name": "Acme Corp - Q3 Enterprise",
                       "StageName": "Negotiation/Review", "Amount": 75000,
                       "LastModifiedDate": MODIFIED,
                       "Owner": {"Name": "Dana Seller", "Email": DANA.3}}
        });
        let (header, key) = if org == ORG {
            ("X-Api-Key", support::API_KEY)
        } else {
            ("X-Api-Key", SANDBOX_KEY)
        };
        let response = self
            .app
            .post_events_with(event.to_string(), &[(header, key)])
            .await;
        assert_eq!(response.status(), 202);
        let before = self.slack.messages().await.len();
        eventually("the deal card", Duration::from_secs(20), || async {
            let messages = self.slack.messages().await;
            (messages.len() > before)
                .then(|| messages.last()?["ts"].as_str().map(str::to_owned))
                .flatten()
        })
        .await
    }

    /// `user` picks `stage` on the deal card of `org` at `ts`.
    async fn choose(&self, user: &str, org: &str, ts: &str, stage: &str) -> InteractAnswer {
        // Cards carry the 18-character form of the org Id.
        let org = sfrelay::event::SalesforceId::parse(org).expect("an org Id");
        let value = format!("sfrelay:v1:{org}:Opportunity:{OPP}:move_stage:{stage}");
        let url = format!("{}/slack/interactions", self.app.url);
        let answer = self
            .slack
            .choose(&url, SECRET, user, "C0DEALDESK", ts, "move_stage", &value)
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer
    }

    /// What the click's `response_url` was told (its first answer).
    async fn told(&self, answer: &InteractAnswer) -> String {
        let bodies = self
            .slack
            .wait_for_responses(&answer.response_id(), 1)
            .await;
        bodies[0]["text"].as_str().unwrap_or_default().to_owned()
    }

    /// The sign-in link `user` is handed when they pick a stage without a Salesforce user.
    async fn link_for(&self, user: &str, org: &str, ts: &str) -> String {
        let answer = self.choose(user, org, ts, "Closed Won").await;
        let text = self.told(&answer).await;
        link_in(&text, PUBLIC).unwrap_or_else(|| panic!("no sign-in link in {text:?}"))
    }
}

async fn spawn(
    redis: &Redis,
    slack: &Slack,
    prod: &Salesforce,
    sandbox: &Salesforce,
    state_ttl_secs: u64,
) -> App {
    let section = |sf: &Salesforce| format!("{}act_as = \"user\"\n", sf.org_section());
    let sandbox_section =
        section(sandbox).replace("acme.my.salesforce.com", "acme--sandbox.my.salesforce.com");
    let extra = format!(
        "[[orgs]]\nid = \"{SANDBOX}\"\nname = \"sandbox-two\"\napi_key_env = \"TEST_SANDBOX_KEY\"\n\
         {sandbox_section}\n[people]\nstate_ttl_secs = {state_ttl_secs}\n"
    );
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            salesforce_section: Some(section(prod)),
            routes: Some(vec![
                ("deal-card", DEAL_CARD.to_string()),
                ("buttons", shipped_route("buttons")),
            ]),
            extra_toml: extra,
            namespace: fresh_namespace(),
            ..Options::default()
        },
        vec![
            ("SLACK_SIGNING_SECRET".into(), SECRET.into()),
            ("SFRELAY_ENCRYPTION_KEY".into(), ENCRYPTION_KEY.into()),
            ("SFRELAY_PUBLIC_URL".into(), PUBLIC.into()),
            ("TEST_SANDBOX_KEY".into(), SANDBOX_KEY.into()),
        ],
    )
    .await
}

/// Who made each journalled write of `sf`.
async fn writers(sf: &Salesforce) -> Vec<String> {
    let state: Value = reqwest::get(format!("{}/_emulator/writes", sf.url))
        .await
        .expect("emulator answers")
        .json()
        .await
        .expect("JSON");
    state["journal"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn wait_for_writers(sf: &Salesforce, n: usize) -> Vec<String> {
    eventually(
        &format!("{n} write(s)"),
        Duration::from_secs(20),
        || async {
            let all = writers(sf).await;
            assert!(all.len() <= n, "more writes than expected: {all:?}");
            (all.len() == n).then_some(all)
        },
    )
    .await
}

#[tokio::test]
async fn a_person_connects_two_orgs_and_then_writes_as_themselves() {
    let world = World::start(600).await;
    let prod_card = world.deal_card(ORG, "deal-prod").await;

    // Without a Salesforce user Casey is told why, and handed a link.
    let answer = world.choose(CASEY, ORG, &prod_card, "Closed Won").await;
    let text = world.told(&answer).await;
    assert!(text.starts_with("Nothing was changed"), "{text}");
    let link = link_in(&text, PUBLIC).expect("a sign-in link");
    assert!(writers(&world.prod).await.is_empty());

    let mut browser = Browser::new(&world.app.url, PUBLIC);
    let back = browser.sign_in(&link, CASEY_SF.1).await;
    let code = reqwest::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let page = browser.open(&back).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("Connected to production as casey@acme.example. You can close this tab."),
        "{}",
        page.body
    );

    // Now the same pick writes, as Casey's own user.
    world.choose(CASEY, ORG, &prod_card, "Closed Won").await;
    assert_eq!(
        wait_for_writers(&world.prod, 1).await,
        vec![CASEY_SF.1.to_string()]
    );
    let card = eventually("the card to say who", Duration::from_secs(20), || async {
        let messages = world.slack.messages().await;
        messages.into_iter().find(|m| {
            m["ts"] == prod_card.as_str() && m["blocks"].to_string().contains("by <@U0CASEY001>")
        })
    })
    .await;
    assert!(
        !card["blocks"].to_string().contains("on their behalf"),
        "{card}"
    );

    // The second org is a connection of its own.
    let sandbox_card = world.deal_card(SANDBOX, "deal-sandbox").await;
    let link = world.link_for(CASEY, SANDBOX, &sandbox_card).await;
    let page = Browser::new(&world.app.url, PUBLIC)
        .connect(&link, SAM_SF.1)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("Connected to sandbox-two as sam@acme.example"),
        "{}",
        page.body
    );
    world
        .choose(CASEY, SANDBOX, &sandbox_card, "Closed Won")
        .await;
    assert_eq!(
        wait_for_writers(&world.sandbox, 1).await,
        vec![SAM_SF.1.to_string()]
    );
    assert_eq!(writers(&world.prod).await.len(), 1);

    // Neither Redis nor the log holds a token, the code, the state or the verifier in clear.
    let values = redis_values(&world.redis).await;
    assert!(
        values.iter().any(|(k, _)| k.contains(":person-conn:")),
        "{values:?}"
    );
    for (key, value) in &values {
        assert!(
            !holds_a_token(value),
            "{key} holds a token in clear: {value}"
        );
        assert!(!value.contains("casey@acme.example"), "{key}: {value}");
        assert!(!value.contains(&code), "{key}: {value}");
    }
    let logs = world.app.logs();
    assert!(!holds_a_token(&logs), "a token in the log:\n{logs}");
    assert!(!logs.contains(&code), "the code in the log");
    let nonce = state_of(&link).split('.').nth(1).unwrap().to_owned();
    assert!(!logs.contains(&nonce), "the state in the log");
}

#[tokio::test]
async fn forged_reused_foreign_and_elsewhere_opened_links_are_refused() {
    let world = World::start(600).await;
    let card = world.deal_card(ORG, "deal-refusals").await;
    let link = world.link_for(CASEY, ORG, &card).await;

    // Forged: the link made to name someone else, or its signature changed.
    let state = state_of(&link);
    let forged = state.replacen(CASEY, SAM, 1);
    let mut browser = Browser::new(&world.app.url, PUBLIC);
    let page = browser
        .open(&format!("{PUBLIC}/oauth/salesforce/start?state={forged}"))
        .await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.contains("not valid"), "{}", page.body);
    let page = browser
        .open(&format!("{CALLBACK}?code=x&state={forged}"))
        .await;
    assert_eq!(page.status, 400, "{page:?}");
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);

    // Sam has a link of his own; Casey's browser starts Casey's.
    let sams = world.link_for(SAM, ORG, &card).await;
    let mut casey = Browser::new(&world.app.url, PUBLIC);
    let caseys_way_back = casey.sign_in(&link, CASEY_SF.1).await;
    // The same link in another browser does not open.
    let page = Browser::new(&world.app.url, PUBLIC).open(&link).await;
    assert_eq!(page.status, 409, "{page:?}");
    assert!(page.body.contains("already opened"), "{}", page.body);

    // Sam's sign-in, finished in Casey's browser (Sam sent Casey his callback), is refused:
    // Casey's browser started a sign-in for Casey, not for Sam.
    let mut sam = Browser::new(&world.app.url, PUBLIC);
    let sams_way_back = sam.sign_in(&sams, SAM_SF.1).await;
    let page = casey.open(&sams_way_back).await;
    assert_eq!(page.status, 403, "{page:?}");
    assert!(page.body.contains("another Slack user"), "{}", page.body);
    // Opened with no cookie at all, it is refused too.
    let page = Browser::new(&world.app.url, PUBLIC)
        .open(&sams_way_back)
        .await;
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body.contains("did not start in this browser"),
        "{}",
        page.body
    );
    // Neither refusal used it up: in Sam's own browser it still works.
    let page = sam.open(&sams_way_back).await;
    assert_eq!(page.status, 200, "{page:?}");

    // Casey finishes; the same callback again is refused as used, and so is the start link.
    let page = casey.open(&caseys_way_back).await;
    assert_eq!(page.status, 200, "{page:?}");
    let page = casey.open(&caseys_way_back).await;
    assert_eq!(page.status, 409, "{page:?}");
    assert!(page.body.contains("already used"), "{}", page.body);
    let page = casey.open(&link).await;
    assert_eq!(page.status, 409, "{page:?}");
}

#[tokio::test]
async fn a_sign_in_to_another_org_than_the_links_is_refused() {
    // The sandbox's login URL leads to production: whoever signs in there is in another org.
    let world = World::start_playing(600, ORG, ORG).await;
    let card = world.deal_card(SANDBOX, "deal-wrong-org").await;
    let link = world.link_for(CASEY, SANDBOX, &card).await;
    let page = Browser::new(&world.app.url, PUBLIC)
        .connect(&link, CASEY_SF.1)
        .await;
    assert_eq!(page.status, 403, "{page:?}");
    assert!(
        page.body
            .contains("You signed in to another Salesforce org than sandbox-two"),
        "{}",
        page.body
    );

    // The tokens it bought were given back, and nothing was connected: the next pick
    // hands out a link again and writes nothing.
    let oauth: Value = reqwest::get(format!("{}/_emulator/oauth", world.sandbox.url))
        .await
        .expect("emulator answers")
        .json()
        .await
        .expect("JSON");
    let casey = oauth["people"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["user_id"] == CASEY_SF.0);
    assert!(
        casey.is_none_or(|p| p["access_tokens"] == 0 && p["refresh_tokens"] == 0),
        "{oauth:#}"
    );
    let text = world
        .told(&world.choose(CASEY, SANDBOX, &card, "Closed Won").await)
        .await;
    assert!(link_in(&text, PUBLIC).is_some(), "{text}");
    assert!(writers(&world.sandbox).await.is_empty());
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let world = World::start(1).await;
    let card = world.deal_card(ORG, "deal-expiry").await;
    let link = world.link_for(CASEY, ORG, &card).await;
    let expires: i64 = state_of(&link)
        .split('.')
        .nth(5)
        .and_then(|e| e.parse().ok())
        .expect("the state says when it expires");
    let mut browser = Browser::new(&world.app.url, PUBLIC);
    // Opened after it expired (the clock is polled, not slept on).
    eventually("the link to expire", Duration::from_secs(10), || async {
        (chrono::Utc::now().timestamp() > expires).then_some(())
    })
    .await;
    let page = browser.open(&link).await;
    assert_eq!(page.status, 410, "{page:?}");
    assert!(page.body.contains("expired"), "{}", page.body);
}

#[tokio::test]
async fn a_refused_session_is_refreshed_once_and_a_revoked_connection_asks_to_reconnect() {
    let world = World::start(600).await;
    let card = world.deal_card(ORG, "deal-refresh").await;
    let link = world.link_for(CASEY, ORG, &card).await;
    let page = Browser::new(&world.app.url, PUBLIC)
        .connect(&link, CASEY_SF.1)
        .await;
    assert_eq!(page.status, 200, "{page:?}");

    // Salesforce ends Casey's access tokens: the write is refused once (401), the refresh
    // token buys a new one, and the write goes through as Casey.
    world
        .prod
        .control(
            "oauth/tokens",
            json!({"user": CASEY_SF.1, "action": "expire"}),
        )
        .await;
    world
        .choose(CASEY, ORG, &card, "Proposal/Price Quote")
        .await;
    assert_eq!(
        wait_for_writers(&world.prod, 1).await,
        vec![CASEY_SF.1.to_string()]
    );
    let patches: Vec<Value> = world
        .prod
        .requests()
        .await
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(patches, vec![json!(401), json!(204)]);

    // Revoked at Salesforce: nothing is written and Casey is asked to connect again.
    world
        .prod
        .control(
            "oauth/tokens",
            json!({"user": CASEY_SF.1, "action": "revoke"}),
        )
        .await;
    let answer = world.choose(CASEY, ORG, &card, "Prospecting").await;
    let text = world.told(&answer).await;
    assert!(text.contains("has expired or was revoked"), "{text}");
    let again = link_in(&text, PUBLIC).expect("a link to connect again");
    // Marked expired: the next pick asks at once, without trying Salesforce.
    let requests = world.prod.requests().await.len();
    let answer = world.choose(CASEY, ORG, &card, "Prospecting").await;
    assert!(
        world
            .told(&answer)
            .await
            .contains("has expired or was revoked")
    );
    let patches_after = world
        .prod
        .requests()
        .await
        .iter()
        .skip(requests)
        .filter(|r| r["method"] == "PATCH")
        .count();
    assert_eq!(patches_after, 0);
    assert_eq!(writers(&world.prod).await.len(), 1);

    // Connected again, the pick writes.
    let page = Browser::new(&world.app.url, PUBLIC)
        .connect(&again, CASEY_SF.1)
        .await;
    assert_eq!(page.status, 200, "{page:?}");
    world.choose(CASEY, ORG, &card, "Prospecting").await;
    assert_eq!(wait_for_writers(&world.prod, 2).await[1], CASEY_SF.1);
}

/// The library in this process: `People` behind the two pages on a loopback port, and the
/// Salesforce client running requests with a connection.
mod in_process {
    use super::*;
    use sfrelay::config::{Config, Env};
    use sfrelay::event::SalesforceId;
    use sfrelay::people::{ConnectionStatus, People, PeopleError, Person};
    use sfrelay::salesforce::{
        Actor, ClientOptions, SalesforceClient, SalesforceError, Soql, Sosl,
    };
    use sfrelay::store::MemoryStore;

    struct Vars;
    impl Env for Vars {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "SFRELAY_ENCRYPTION_KEY" => Some(ENCRYPTION_KEY.into()),
                _ => None,
            }
        }
    }

    struct Local {
        people: Arc<People>,
        client: SalesforceClient,
        url: String,
        _server: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn local(sf: &Salesforce) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sfrelay.toml");
        std::fs::write(
            &path,
            format!(
                "public_url = \"{PUBLIC}\"\n[[orgs]]\nid = \"{ORG}\"\nname = \"production\"\n{}",
                sf.org_section()
            ),
        )
        .unwrap();
        let config = Config::load(Some(&path), &Vars).unwrap();
        let people = Arc::new(People::new(&config, Arc::new(MemoryStore::default())).unwrap());
        let client = SalesforceClient::new(config.salesforce.clone(), ClientOptions::default())
            .unwrap()
            .with_connections(people.clone());
        let router = axum::Router::new()
            .route(
                "/oauth/salesforce/start",
                axum::routing::get(sfrelay::people::get_start),
            )
            .route(
                "/oauth/salesforce/callback",
                axum::routing::get(sfrelay::people::get_callback),
            )
            .with_state(people.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Local {
            people,
            client,
            url,
            _server: server,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn a_connection_searches_and_reads_as_the_person_and_disconnecting_revokes_it() {
        let sf = emulated_org(ORG).await;
        sf.control(
            "records",
            json!({"Account": [
                {"Id": "001000000000001AAA", "Name": "Acme (EMEA) & Partners"},
                {"Id": "001000000000002AAA", "Name": "Acme (EMEA) & Secret"},
            ]}),
        )
        .await;
        sf.control(
            "visibility",
            json!({"user": CASEY_SF.1, "hidden_ids": ["001000000000002AAA"]}),
        )
        .await;
        let local = local(&sf).await;
        let org = SalesforceId::parse(ORG).unwrap();
        let casey = Person::new("T0EMULATED", CASEY);
        assert_eq!(
            local.people.status(&casey, &org).await.unwrap(),
            ConnectionStatus::NotConnected
        );
        let link = local.people.connect_link(&casey, &org).await.unwrap();
        let mut browser = Browser::new(&local.url, PUBLIC);
        let page = browser.connect(&link, CASEY_SF.1).await;
        assert_eq!(page.status, 200, "{page:?}");
        assert_eq!(
            local.people.status(&casey, &org).await.unwrap(),
            ConnectionStatus::Connected {
                username: CASEY_SF.1.into()
            }
        );
        let actor = local.people.actor(&casey, &org).await.unwrap().unwrap();

        // A search with every reserved character in it is escaped, and runs as Casey: what
        // Casey may not see is not found.
        let sosl = Sosl::find("Acme (EMEA) &", &[("Account", &["Id", "Name"])], 10).unwrap();
        let found = local.client.search_as(&org, &actor, &sosl).await.unwrap();
        let names: Vec<&str> = found.iter().filter_map(|r| r["Name"].as_str()).collect();
        assert_eq!(names, vec!["Acme (EMEA) & Partners"]);
        let everything = local.client.search(&org, &sosl).await.unwrap();
        assert_eq!(everything.len(), 2);
        let searches: Value = reqwest::get(format!("{}/_emulator/searches", sf.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let statuses: Vec<&Value> = searches
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["status"])
            .collect();
        assert!(statuses.iter().all(|s| **s == json!(200)), "{searches}");

        // Queries too; an expired session is refreshed once.
        sf.control(
            "oauth/tokens",
            json!({"user": CASEY_SF.1, "action": "expire"}),
        )
        .await;
        let soql = Soql::bind("SELECT Id, Name FROM Account", &serde_json::Map::new()).unwrap();
        let rows = local.client.query_as(&org, &actor, &soql).await.unwrap();
        assert_eq!(rows.len(), 1);

        // Disconnecting revokes at Salesforce, then forgets.
        assert!(local.people.disconnect(&casey, &org).await.unwrap());
        let oauth: Value = reqwest::get(format!("{}/_emulator/oauth", sf.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let holders: Vec<&Value> = oauth["people"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["username"] == CASEY_SF.1)
            .collect();
        assert!(
            holders
                .iter()
                .all(|p| p["refresh_tokens"] == 0 && p["access_tokens"] == 0),
            "{oauth}"
        );
        assert_eq!(
            local.people.status(&casey, &org).await.unwrap(),
            ConnectionStatus::NotConnected
        );
        // A request made with the connection after that is refused as expired.
        let err = local
            .client
            .query_as(&org, &actor, &soql)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SalesforceError::ConnectionExpired { .. }),
            "{err}"
        );

        // Revoked at Salesforce while connected: the refresh is refused, the connection is
        // marked expired, and the person is asked to reconnect.
        let link = local.people.connect_link(&casey, &org).await.unwrap();
        let page = browser.connect(&link, CASEY_SF.1).await;
        assert_eq!(page.status, 200, "{page:?}");
        sf.control(
            "oauth/tokens",
            json!({"user": CASEY_SF.1, "action": "revoke"}),
        )
        .await;
        let err = local
            .client
            .query_as(&org, &actor, &soql)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SalesforceError::ConnectionExpired { .. }),
            "{err}"
        );
        assert_eq!(
            local.people.status(&casey, &org).await.unwrap(),
            ConnectionStatus::Expired
        );
        assert!(matches!(
            local.people.actor(&casey, &org).await,
            Err(PeopleError::Expired)
        ));
        assert!(matches!(actor, Actor::Connection(_)));
    }
}
