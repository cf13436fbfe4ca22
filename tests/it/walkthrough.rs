//! The README's walk through the Slack surfaces (`make demo-people`), as a test: two orgs, each
//! a Salesforce emulator of its own, the Slack emulator, Redis and the real binary. Before
//! Riley chooses, a search runs in the Default org; Riley connects their own account to both
//! orgs, makes the second one Preferred (which then beats the Default for searches and bare
//! Ids), finds a deal with `/sf find`, pastes a link and sees it unfurled (a record Riley may
//! not see, pasted with it, is not), and opens Home to see both connections and both orgs' health.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use sfrelay_emulator::client::SlackControl;
use support::actions::{OPP, RILEY, SECRET, seed};
use support::browser::Browser;
use support::{App, ORG, Options, Redis, Salesforce, Slack, eventually};

const WAIT: Duration = Duration::from_secs(15);
const PUBLIC: &str = "https://sfrelay.test";
const ENCRYPTION_KEY: &str = "c2ZyZWxheS13YWxrdGhyb3VnaC1rZXktMzItYnl0ZXM=";
/// The second org ("uat", a sandbox) and its one deal.
const UAT: &str = "00D5g000007QRStEAO";
const UAT_DEAL: &str = "0065g00000DEMo2AAH";

/// An emulator playing `org`, whose connected app sends people back to sfrelay.
async fn emulated(org: &str, records: &Value) -> Salesforce {
    let sf = Salesforce::start_as(org, records, &[]);
    sf.control(
        "oauth/app",
        json!({"callback_urls": [format!("{PUBLIC}/oauth/salesforce/callback")]}),
    )
    .await;
    sf
}

struct World {
    _redis: Redis,
    _slack: Slack,
    prod: Salesforce,
    uat: Salesforce,
    app: App,
    control: SlackControl,
}

impl World {
    async fn start() -> World {
        let redis = Redis::start();
        let slack = Slack::start(&[]);
        let prod = emulated(ORG, &seed()).await;
        let mut records = seed();
        records["Opportunity"] = json!([{"Id": UAT_DEAL, "Name": "Acme Corp - Sandbox renewal",
                                         "StageName": "Proposal/Price Quote", "Amount": 42000}]);
        let uat = emulated(UAT, &records).await;
        let uat_section = uat.org_section().replace(
            "acme.my.salesforce.com",
            "acme--uat.sandbox.my.salesforce.com",
        );
        let app = App::spawn_with_env(
            Options {
                redis: Some(redis.url()),
                slack_api: Some(slack.api_base()),
                salesforce_section: Some(prod.org_section()),
                routes: Some(vec![(
                    "buttons",
                    support::actions::shipped_route("buttons"),
                )]),
                extra_toml: format!(
                    "[[orgs]]\nid = \"{UAT}\"\nname = \"uat\"\n{uat_section}\n\
                     [slack]\nadmins = [\"{}\"]\ndefault_org = \"production\"\n\n\
                     [cards.Opportunity]\nfields = [\"StageName\", \"Amount\"]\n",
                    RILEY.0
                ),
                ..Options::default()
            },
            [
                ("SLACK_SIGNING_SECRET", SECRET),
                ("SFRELAY_PUBLIC_URL", PUBLIC),
                ("SFRELAY_ENCRYPTION_KEY", ENCRYPTION_KEY),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .await;
        let control = SlackControl::new(slack.url.clone());
        World {
            _redis: redis,
            _slack: slack,
            prod,
            uat,
            app,
            control,
        }
    }

    /// Riley types `/sf text`; the answer that replaced the acknowledgement.
    async fn sf(&self, text: &str) -> Value {
        let url = format!("{}/slack/commands", self.app.url);
        let answer = self
            .control
            .command(&url, SECRET, RILEY.0, "C0DEALDESK", "/sf", text)
            .await
            .expect("command sent");
        assert_eq!(answer.status, 200, "{text}");
        assert!(answer.within_3s, "{text}");
        eventually("the answer", WAIT, || async {
            let replies = self.control.responses(&answer.response_id).await.ok()?;
            replies.into_iter().next()
        })
        .await
    }

    async fn said(&self, text: &str) -> String {
        self.sf(text).await["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `/sf connect <org>`, then Riley signs in to it in a browser: what the page says.
    async fn connect(&self, org: &str) -> String {
        let answer = self.sf(&format!("connect {org}")).await;
        let link = answer["blocks"][1]["elements"][0]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("a sign-in button in {answer}"))
            .to_owned();
        let page = Browser::new(&self.app.url, PUBLIC)
            .connect(&link, RILEY.2)
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        page.body
    }
}

/// Who ran each search an emulator received.
async fn searchers(sf: &Salesforce) -> Vec<String> {
    let searches: Value = reqwest::get(format!("{}/_emulator/searches", sf.url))
        .await
        .expect("emulator answers")
        .json()
        .await
        .expect("JSON");
    searches
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn two_orgs_connected_one_preferred_find_unfurl_and_home() {
    let world = World::start().await;

    // No Preferred org yet: the Default one (production) is searched, as the integration user.
    let found = world.sf("find Acme").await.to_string();
    assert!(found.contains("Acme Corp - Q3 Enterprise"), "{found}");
    assert_eq!(
        searchers(&world.prod).await,
        vec!["integration@acme.example"]
    );
    assert!(searchers(&world.uat).await.is_empty());

    // Riley connects both orgs.
    let page = world.connect("production").await;
    assert!(
        page.contains("Connected to production as riley@acme.example"),
        "{page}"
    );
    let page = world.connect("uat").await;
    assert!(
        page.contains("Connected to uat as riley@acme.example"),
        "{page}"
    );

    // And makes the sandbox Preferred: it beats the Default from now on.
    assert_eq!(
        world.said("org uat").await,
        "uat is now your Preferred org."
    );
    let orgs = world.said("orgs").await;
    assert!(
        orgs.contains("*production* (Default): connected as riley@acme.example"),
        "{orgs}"
    );
    assert!(
        orgs.contains("*uat* (Preferred): connected as riley@acme.example"),
        "{orgs}"
    );
    let found = world.sf("find Acme").await.to_string();
    assert!(found.contains("Acme Corp - Sandbox renewal"), "{found}");
    assert!(!found.contains("Q3 Enterprise"), "{found}");
    assert_eq!(searchers(&world.uat).await, vec![RILEY.2]);
    assert_eq!(searchers(&world.prod).await.len(), 1);
    // A bare Id is looked for in the Preferred org too; a link names its own org.
    let card = world.sf(UAT_DEAL).await.to_string();
    assert!(card.contains("Acme Corp - Sandbox renewal"), "{card}");
    let card = world
        .sf(&format!(
            "https://acme.lightning.force.com/lightning/r/Opportunity/{OPP}/view"
        ))
        .await
        .to_string();
    assert!(card.contains("Acme Corp - Q3 Enterprise"), "{card}");

    // A pasted sandbox link is unfurled, read as Riley in the sandbox; a production deal
    // Riley may not see, pasted with it, shows nothing.
    world
        .prod
        .control("visibility", json!({"user": RILEY.1, "hidden_ids": [OPP]}))
        .await;
    let link = format!(
        "https://acme--uat.sandbox.lightning.force.com/lightning/r/Opportunity/{UAT_DEAL}/view"
    );
    let hidden = format!("https://acme.lightning.force.com/lightning/r/Opportunity/{OPP}/view");
    let events = format!("{}/slack/events", world.app.url);
    world
        .control
        .link_shared(&events, SECRET, RILEY.0, "C0DEALDESK", &[&link, &hidden])
        .await
        .expect("event sent");
    let unfurls = eventually("the unfurl", WAIT, || async {
        let unfurls = world.control.unfurls().await.ok()?;
        (!unfurls.is_empty()).then_some(unfurls)
    })
    .await;
    let shown = unfurls[0].to_string();
    assert!(shown.contains("Acme Corp - Sandbox renewal"), "{shown}");
    assert!(shown.contains("42000"), "{shown}");
    assert!(!shown.contains("Q3 Enterprise"), "{shown}");
    assert!(!shown.contains(&hidden), "{shown}");

    // Home: both connections, and for an admin both orgs' health.
    world
        .control
        .app_home_opened(&events, SECRET, RILEY.0)
        .await
        .expect("event sent");
    let home = eventually("the Home view", WAIT, || async {
        world.control.home_view(RILEY.0).await.ok().flatten()
    })
    .await
    .to_string();
    for org in ["production", "uat"] {
        assert!(home.contains(&format!("*{org}* health")), "{home}");
    }
    assert_eq!(
        home.matches("Connected as riley@acme.example").count(),
        2,
        "{home}"
    );
    assert_eq!(home.matches("token valid").count(), 2, "{home}");
    assert!(home.contains("Default org"), "{home}");
}
