//! sfrelay subscribing to Change Data Capture itself, over the Pub/Sub API of the Salesforce
//! emulator: every change reaches Slack exactly once, whatever happens to the stream, the
//! process or the cursor.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use sfrelay::queue::Queue;
use sfrelay::queue::redis::RedisQueue;
use support::{
    App, Options, Redis, Salesforce, Slack, deal_desk_only, eventually, fresh_namespace,
};

const WAIT: Duration = Duration::from_secs(20);
const TOPIC: &str = "/data/OpportunityChangeEvent";

/// Redis, both emulators and the settings that point sfrelay's first org at the emulator's
/// Pub/Sub API.
struct World {
    redis: Redis,
    slack: Slack,
    salesforce: Salesforce,
    namespace: String,
    http: reqwest::Client,
}

impl World {
    fn new() -> World {
        World::with_records(&json!({}))
    }

    /// A world whose Salesforce holds `records` (for sweeps, which read them back).
    fn with_records(records: &Value) -> World {
        World {
            redis: Redis::start(),
            slack: Slack::start(&[]),
            salesforce: Salesforce::start_with(records, &["--pubsub-keepalive-ms", "400"]),
            namespace: fresh_namespace(),
            http: reqwest::Client::new(),
        }
    }

    /// Options for an sfrelay subscribed to `topics` (first run from `start`), with fast
    /// timers.
    fn options(&self, topics: &[&str], start: &str) -> Options {
        let mut section = self.salesforce.org_section();
        section.push_str(&format!("pubsub_endpoint = \"{}\"\n", self.salesforce.url));
        for topic in topics {
            section.push_str(&format!(
                "\n[[orgs.subscribe]]\ntopic = \"{topic}\"\nstart = \"{start}\"\n"
            ));
        }
        Options {
            redis: Some(self.redis.url()),
            slack_api: Some(self.slack.api_base()),
            salesforce_section: Some(section),
            namespace: self.namespace.clone(),
            routes: deal_desk_only(),
            extra_toml: "\n[pubsub]\nwatchdog_secs = 1.5\nlease_secs = 1.5\nbackoff_min_secs = 0.05\nbackoff_max_secs = 0.2\n".into(),
            ..Options::default()
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_emulator/pubsub/{path}", self.salesforce.url))
            .json(&body)
            .send()
            .await
            .expect("emulator answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_emulator/pubsub/{path}", self.salesforce.url))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON")
    }

    /// Publishes an Opportunity becoming Closed Won.
    async fn close_won(&self, id: &str, name: &str) -> Value {
        self.post(
            "publish",
            json!({
                "entity": "Opportunity",
                "change_type": "UPDATE",
                "record_ids": [id],
                "fields": {
                    "Name": name,
                    "StageName": "Closed Won",
                    "Amount": 75000,
                    "CloseDate": "2025-09-30",
                    "LastModifiedDate": "2025-09-30T16:00:00.000Z"
                }
            }),
        )
        .await
    }

    async fn open_streams(&self) -> Vec<Value> {
        match self.get("streams").await {
            Value::Array(streams) => streams.into_iter().filter(|s| s["open"] == true).collect(),
            other => panic!("streams: {other}"),
        }
    }

    /// Waits until sfrelay has a stream open (so a change published now is not before a
    /// LATEST start).
    async fn wait_for_stream(&self) {
        eventually("an open Pub/Sub stream", WAIT, || async {
            (!self.open_streams().await.is_empty()).then_some(())
        })
        .await;
    }

    /// Waits until `app` has stored a cursor (from a keepalive), so a stream it reopens
    /// resumes there rather than at the newest event.
    async fn wait_for_cursor(&self, app: &App) {
        eventually("a stored cursor", WAIT, || async {
            let ready: Value = app.get("/readyz").await.json().await.ok()?;
            ready["checks"]["subscriptions"][0]["cursor_age_secs"]
                .is_number()
                .then_some(())
        })
        .await;
    }

    /// A change no route acts on, so the topic has a newest event a keepalive can name.
    async fn warm_up(&self) {
        self.post(
            "publish",
            json!({"entity": "Opportunity", "change_type": "UPDATE", "record_ids": [deal(9)],
                   "fields": {"StageName": "Prospecting"}}),
        )
        .await;
    }

    /// Messages posted to #deal-desk naming each of `names`, once they are all there.
    async fn wait_for_deals(&self, names: &[&str]) -> Vec<Value> {
        eventually("the deals in Slack", WAIT, || async {
            let messages = self.slack.messages().await;
            names
                .iter()
                .all(|name| messages.iter().any(|m| m.to_string().contains(name)))
                .then_some(messages)
        })
        .await
    }

    /// How many messages mention `name`.
    async fn count(&self, name: &str) -> usize {
        self.slack
            .messages()
            .await
            .iter()
            .filter(|m| m.to_string().contains(name))
            .count()
    }
}

/// The value of the series `name` whose labels include `labels` (in whatever order the
/// exporter writes them) and the first org's.
async fn metric(app: &App, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.ok()?;
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?.strip_prefix('{')?;
        let has = |k: &str, v: &str| rest.contains(&format!("{k}=\"{v}\""));
        (has("org", support::ORG) && labels.iter().all(|(k, v)| has(k, v)))
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// A valid Opportunity Id for deal `n` (1..=9).
fn deal(n: u32) -> String {
    // Digits only: the checksum suffix is AAA.
    format!("00600000000000{n}AAA")
}

#[tokio::test]
async fn a_change_reaches_slack_through_a_shipped_route_with_no_relay() {
    let world = World::new();
    let mut options = world.options(&[TOPIC], "latest");
    options.routes = None; // the shipped routes
    let app = App::spawn(options).await;
    world.wait_for_stream().await;
    world.close_won(&deal(1), "Acme Pub/Sub deal").await;
    let messages = world.wait_for_deals(&["Acme Pub/Sub deal"]).await;
    let posted = messages
        .iter()
        .find(|m| m.to_string().contains("Acme Pub/Sub deal"))
        .expect("posted");
    assert!(
        posted.to_string().contains("75,000") || posted.to_string().contains("75000"),
        "{posted}"
    );
    let ready: Value = app.get("/readyz").await.json().await.expect("JSON");
    let subs = &ready["checks"]["subscriptions"];
    assert_eq!(subs[0]["topic"], TOPIC, "{ready}");
    assert_eq!(subs[0]["state"], "connected", "{ready}");
    assert!(subs[0]["cursor_age_secs"].is_number(), "{ready}");
    let queued = metric(
        &app,
        "sfrelay_pubsub_events_total",
        &[
            ("outcome", "queued"),
            ("topic", "/data/OpportunityChangeEvent"),
        ],
    )
    .await;
    assert_eq!(queued, Some(1.0), "{}", app.logs());
}

#[tokio::test]
async fn after_kill_9_the_stream_resumes_at_the_cursor_with_nothing_lost_or_doubled() {
    let world = World::new();
    let mut app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_stream().await;
    for n in 1..=3 {
        world.close_won(&deal(n), &format!("Resume deal {n}")).await;
    }
    world
        .wait_for_deals(&["Resume deal 1", "Resume deal 2", "Resume deal 3"])
        .await;
    app.kill();
    // Published while sfrelay is down: only the cursor can find these.
    for n in 4..=6 {
        world.close_won(&deal(n), &format!("Resume deal {n}")).await;
    }
    let _app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world
        .wait_for_deals(&["Resume deal 4", "Resume deal 5", "Resume deal 6"])
        .await;
    let streams = world.get("streams").await;
    let last = streams
        .as_array()
        .and_then(|s| s.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["preset"], "CUSTOM", "{streams}");
    for n in 1..=6 {
        assert_eq!(
            world.count(&format!("Resume deal {n}")).await,
            1,
            "deal {n}"
        );
    }
}

#[tokio::test]
async fn a_stalled_stream_is_noticed_and_resumed() {
    let world = World::new();
    world.warm_up().await;
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_cursor(&app).await;
    world.post("faults", json!({"fault": "stall"})).await;
    world.close_won(&deal(1), "Stalled deal").await;
    world.wait_for_deals(&["Stalled deal"]).await;
    let streams = world.get("streams").await;
    assert!(
        streams.as_array().is_some_and(|s| s.len() >= 2),
        "{streams}"
    );
    assert_eq!(world.count("Stalled deal").await, 1);
}

#[tokio::test]
async fn an_expired_token_mid_stream_is_renewed_and_the_stream_resumed() {
    let world = World::new();
    world.warm_up().await;
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_cursor(&app).await;
    world.post("faults", json!({"fault": "auth_error"})).await;
    world.close_won(&deal(2), "Reauthorised deal").await;
    world.wait_for_deals(&["Reauthorised deal"]).await;
    let resubscribes = metric(
        &app,
        "sfrelay_pubsub_resubscribes_total",
        &[
            ("reason", "auth"),
            ("topic", "/data/OpportunityChangeEvent"),
        ],
    )
    .await;
    assert_eq!(resubscribes, Some(1.0), "{}", app.logs());
    assert_eq!(world.count("Reauthorised deal").await, 1);
}

#[tokio::test]
async fn a_cursor_past_retention_restarts_from_the_earliest_event_and_posts_nothing_twice() {
    let world = World::new();
    let mut app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_stream().await;
    for n in 1..=3 {
        world
            .close_won(&deal(n), &format!("Retained deal {n}"))
            .await;
    }
    world
        .wait_for_deals(&["Retained deal 1", "Retained deal 2", "Retained deal 3"])
        .await;
    app.kill();
    world.close_won(&deal(4), "Retained deal 4").await;
    // The stored cursor names an event Salesforce no longer has.
    let key = format!(
        "sfrelay:{{{}}}:pubsub-cursor:00D5g000004ABCdEAO:{TOPIC}",
        world.namespace
    );
    let value =
        json!({"replay_id": "00ffeeddccbbaa998877", "at": 1_700_000_000_000i64}).to_string();
    let client = redis::Client::open(world.redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(value)
        .query_async(&mut conn)
        .await
        .expect("set cursor");
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_deals(&["Retained deal 4"]).await;
    eventually("the expired cursor counted", WAIT, || async {
        metric(
            &app,
            "sfrelay_pubsub_cursor_expired_total",
            &[("topic", "/data/OpportunityChangeEvent")],
        )
        .await
        .filter(|n| *n >= 1.0)
    })
    .await;
    let streams = world.get("streams").await;
    assert!(
        streams
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["preset"] == "EARLIEST")),
        "{streams}"
    );
    // Every event was replayed from the earliest; the dedupe kept the first three from
    // posting again.
    eventually("the replay to be queued", WAIT, || async {
        metric(
            &app,
            "sfrelay_pubsub_events_total",
            &[
                ("outcome", "duplicate"),
                ("topic", "/data/OpportunityChangeEvent"),
            ],
        )
        .await
        .filter(|n| *n >= 3.0)
    })
    .await;
    for n in 1..=4 {
        assert_eq!(
            world.count(&format!("Retained deal {n}")).await,
            1,
            "deal {n}"
        );
    }
}

#[tokio::test]
async fn two_replicas_keep_one_stream_and_the_second_takes_over() {
    let world = World::new();
    let mut first = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_stream().await;
    let second = App::spawn(world.options(&[TOPIC], "latest")).await;
    eventually("the second replica on standby", WAIT, || async {
        let ready: Value = second.get("/readyz").await.json().await.ok()?;
        (ready["checks"]["subscriptions"][0]["state"] == "standby").then_some(())
    })
    .await;
    assert_eq!(world.open_streams().await.len(), 1);
    world.close_won(&deal(1), "Replica deal 1").await;
    world.wait_for_deals(&["Replica deal 1"]).await;
    first.kill();
    eventually("the second replica's stream", WAIT, || async {
        let ready: Value = second.get("/readyz").await.json().await.ok()?;
        (ready["checks"]["subscriptions"][0]["state"] == "connected").then_some(())
    })
    .await;
    world.close_won(&deal(2), "Replica deal 2").await;
    world.wait_for_deals(&["Replica deal 2"]).await;
    assert_eq!(world.count("Replica deal 1").await, 1);
    assert_eq!(world.count("Replica deal 2").await, 1);
    assert_eq!(world.open_streams().await.len(), 1);
}

#[tokio::test]
async fn credit_never_sits_at_zero_while_the_queue_holds_events_back() {
    let world = World::new();
    let mut options = world.options(&[TOPIC], "latest");
    // A queue that is full most of the time: the keeper waits, the receive loop does not.
    options.high_water_mark = 30;
    let app = App::spawn(options).await;
    world.wait_for_stream().await;
    let batch: Vec<Value> = (0..150)
        .map(|i| {
            json!({
                "entity": "Opportunity",
                "change_type": "UPDATE",
                "record_ids": [deal(1 + i % 9)],
                "fields": {"StageName": format!("Stage {i}")},
                "transaction_key": format!("tx-{i}")
            })
        })
        .collect();
    world.post("publish", Value::Array(batch)).await;
    eventually("every change queued", Duration::from_secs(60), || async {
        metric(
            &app,
            "sfrelay_pubsub_events_total",
            &[
                ("outcome", "queued"),
                ("topic", "/data/OpportunityChangeEvent"),
            ],
        )
        .await
        .filter(|n| *n >= 150.0)
    })
    .await;
    let streams = world.get("streams").await;
    // Credit may touch 0 for the moment a top-up is on its way, never for longer.
    for stream in streams.as_array().into_iter().flatten() {
        let longest = stream["longest_starved_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(longest < 500, "{streams}");
    }
}

#[tokio::test]
async fn a_backlog_spanning_two_schema_versions_and_several_entities_is_decoded() {
    let world = World::new();
    let mut options = world.options(&["/data/ChangeEvents"], "earliest");
    options.routes = Some(vec![
        (
            "cases",
            r##"
object = "Case"
when = 'changed("Status")'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "case-escalation"
"##
            .to_string(),
        ),
        (
            "deals",
            r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "closed-won-briefing"
"##
            .to_string(),
        ),
    ]);
    // Published before sfrelay starts: the first run reads from the earliest event.
    world.close_won(&deal(1), "Old schema deal").await;
    world
        .post(
            "fields",
            json!({"entity": "Opportunity", "name": "Region__c", "kind": "string"}),
        )
        .await;
    world
        .post(
            "publish",
            json!({
                "entity": "Opportunity",
                "change_type": "UPDATE",
                "record_ids": [deal(2)],
                "fields": {"Name": "New schema deal", "StageName": "Closed Won", "Region__c": "EMEA"}
            }),
        )
        .await;
    world
        .post(
            "publish",
            json!({
                "entity": "Case",
                "change_type": "UPDATE",
                "record_ids": ["500000000000001AAA"],
                "fields": {"Subject": "Printer on fire", "Status": "Escalated"}
            }),
        )
        .await;
    let _app = App::spawn(options).await;
    world
        .wait_for_deals(&["Old schema deal", "New schema deal", "Printer on fire"])
        .await;
    let topics = world.get("topics").await;
    assert!(topics.to_string().contains("ChangeEvents"), "{topics}");
}

#[tokio::test]
async fn duplicated_deliveries_and_dropped_connections_post_each_change_once() {
    let world = World::new();
    world.warm_up().await;
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_cursor(&app).await;
    for n in 1..=2 {
        world
            .close_won(&deal(n), &format!("Twice-sent deal {n}"))
            .await;
    }
    world
        .wait_for_deals(&["Twice-sent deal 1", "Twice-sent deal 2"])
        .await;
    // The server sends the last two events again on the same stream, then cuts it.
    world
        .post("faults", json!({"fault": "duplicate", "count": 2}))
        .await;
    eventually("the resent events seen as duplicates", WAIT, || async {
        metric(
            &app,
            "sfrelay_pubsub_events_total",
            &[("outcome", "duplicate"), ("topic", TOPIC)],
        )
        .await
        .filter(|n| *n >= 2.0)
    })
    .await;
    world.post("faults", json!({"fault": "drop"})).await;
    world.close_won(&deal(3), "Twice-sent deal 3").await;
    world.wait_for_deals(&["Twice-sent deal 3"]).await;
    for n in 1..=3 {
        assert_eq!(
            world.count(&format!("Twice-sent deal {n}")).await,
            1,
            "deal {n}"
        );
    }
}

#[tokio::test]
async fn a_change_lost_with_an_expired_cursor_is_recovered_by_the_sweep() {
    // In Salesforce the deal is Closed Won now; its change event will be gone.
    let just_now = (chrono::Utc::now() - chrono::Duration::seconds(10))
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let world = World::with_records(&json!({"Opportunity": [
        {"Id": deal(5), "Name": "Swept deal", "StageName": "Closed Won", "Amount": 50000,
         "LastModifiedDate": just_now}
    ]}));
    let options = || {
        let mut options = world.options(&[TOPIC], "latest");
        if let Some(section) = options.salesforce_section.as_mut() {
            // Periodic reconciliation never runs during the test: only the sweep can find it.
            section.push_str("\n[[orgs.reconcile]]\nobject = \"Opportunity\"\nfields = [\"StageName\"]\nalso = [\"Name\", \"Amount\"]\nevery_seconds = 3600\n");
        }
        options
    };
    let mut app = App::spawn(options()).await;
    world.wait_for_stream().await;
    // sfrelay hears of the deal while it is still in negotiation…
    world
        .post(
            "publish",
            json!({"entity": "Opportunity", "change_type": "UPDATE", "record_ids": [deal(5)],
                   "fields": {"Name": "Swept deal", "StageName": "Negotiation/Review"}}),
        )
        .await;
    world.close_won(&deal(1), "Streamed deal").await;
    world.wait_for_deals(&["Streamed deal"]).await;
    world.wait_for_cursor(&app).await;
    app.kill();
    // …and while it is down for longer than Salesforce keeps events, the deal closes: the
    // event of that change, and the one the cursor names, are gone.
    world.post("purge", json!({})).await;
    let app = App::spawn(options()).await;
    world.wait_for_deals(&["Swept deal"]).await;
    let swept = metric(&app, "sfrelay_pubsub_sweeps_total", &[("outcome", "ok")]).await;
    assert_eq!(swept, Some(1.0), "{}", app.logs());
    assert_eq!(world.count("Swept deal").await, 1);
    assert_eq!(world.count("Streamed deal").await, 1);
}

#[tokio::test]
async fn a_refused_resubscribe_backs_off_and_resumes_with_nothing_lost() {
    let world = World::new();
    world.warm_up().await;
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_cursor(&app).await;
    // The next two Subscribe calls are refused as unavailable; then the stream is cut.
    world
        .post("faults", json!({"fault": "unavailable", "times": 2}))
        .await;
    world.post("faults", json!({"fault": "drop"})).await;
    world.close_won(&deal(3), "Refused-then-resumed deal").await;
    world.wait_for_deals(&["Refused-then-resumed deal"]).await;
    let transient = metric(
        &app,
        "sfrelay_pubsub_resubscribes_total",
        &[("reason", "transient"), ("topic", TOPIC)],
    )
    .await;
    // The dropped stream and the two refusals.
    assert!(
        transient.is_some_and(|n| n >= 3.0),
        "{transient:?}\n{}",
        app.logs()
    );
    assert_eq!(world.count("Refused-then-resumed deal").await, 1);
}

#[tokio::test]
async fn an_undecodable_event_is_dead_lettered_and_the_stream_goes_on() {
    let world = World::new();
    world.warm_up().await;
    let app = App::spawn(world.options(&[TOPIC], "latest")).await;
    world.wait_for_cursor(&app).await;
    let broken = world
        .post(
            "publish",
            json!({"entity": "Opportunity", "change_type": "UPDATE", "record_ids": [deal(4)],
                   "fields": {"StageName": "Closed Won"}, "truncate_payload": 12}),
        )
        .await;
    world.close_won(&deal(5), "After the broken event").await;
    world.wait_for_deals(&["After the broken event"]).await;
    let queue = RedisQueue::new(&world.redis.url(), &world.namespace, 100).expect("queue");
    let replay_id = broken["replay_ids"][TOPIC].as_str().expect("replay id");
    let letter = eventually("the broken event in the dead-letter list", WAIT, || async {
        let letters = queue.dead_letters(10).await.ok()?;
        letters
            .into_iter()
            .find(|l| l.job.payload.get().contains(replay_id))
    })
    .await;
    assert!(
        letter.reason.starts_with("change event cannot be read"),
        "{}",
        letter.reason
    );
    // Replayed, it is read again: still broken, so it comes back with its reason.
    assert_eq!(queue.replay_dead(Some(&letter.job.id)).await.ok(), Some(1));
    eventually("the replayed event dead-lettered again", WAIT, || async {
        let letters = queue.dead_letters(10).await.ok()?;
        letters
            .iter()
            .any(|l| l.reason.contains("still cannot be read"))
            .then_some(())
    })
    .await;
    let undecodable = metric(
        &app,
        "sfrelay_pubsub_events_total",
        &[("outcome", "undecodable"), ("topic", TOPIC)],
    )
    .await;
    assert_eq!(undecodable, Some(1.0));
    assert_eq!(world.count("After the broken event").await, 1);
}
