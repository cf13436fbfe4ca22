//! Fault tests: processes killed mid-delivery, Redis restarted under load, Slack failing,
//! storming 429s and answering slowly, two replicas sharing channels. Every accepted event must
//! reach Slack exactly once.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, eventually, fixture, fresh_namespace};

/// A Closed Won event for record `n`, unique by event id and record.
fn event(n: u32) -> String {
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    let id15 = format!("006{n:012}");
    body["event_id"] = format!("fault-{n}").into();
    body["record"]["Id"] = id15.into();
    body["record"]["Name"] = format!("Deal {n}").into();
    body.to_string()
}

/// Routes posting each Closed Won to one of `channels` channels by record number.
fn spread_routes(channels: &[&'static str]) -> Option<Vec<(&'static str, String)>> {
    let routes = channels
        .iter()
        .enumerate()
        .map(|(i, channel)| {
            let name: &'static str = Box::leak(format!("to-{i}").into_boxed_str());
            (
                name,
                format!(
                    r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won") and (record.Name[5:] | int) % {n} == {i}'
[[actions]]
type = "post"
channel = "{channel}"
template = "closed-won-briefing"
"##,
                    n = channels.len()
                ),
            )
        })
        .collect();
    Some(routes)
}

/// How often each deal was posted, by its name.
async fn posts_by_deal(slack: &Slack) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in slack.messages().await {
        let text = message["text"].as_str().unwrap_or_default();
        let deal = text
            .strip_prefix("Closed Won: ")
            .and_then(|t| t.split(" (").next())
            .unwrap_or(text)
            .to_string();
        *counts.entry(deal).or_insert(0) += 1;
    }
    counts
}

async fn all_delivered_once(slack: &Slack, expected: u32, within: Duration) {
    let counts = eventually("every accepted event in Slack", within, || async {
        let counts = posts_by_deal(slack).await;
        (counts.len() as u32 >= expected).then_some(counts)
    })
    .await;
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "posted more than once: {twice:?}");
    assert_eq!(counts.len() as u32, expected, "{counts:?}");
    let stats = slack.stats().await;
    assert_eq!(stats["posts_by_name"], 0, "{stats}");
    assert_eq!(stats["invalid_blocks"], 0, "{stats}");
}

const FAST_SLACK: &str = "[slack]\nchannel_messages_per_sec = 50.0\nchannel_burst = 10\n";

#[tokio::test]
async fn kill_9_during_delivery_twenty_times_loses_and_doubles_nothing() {
    let redis = Redis::start();
    let slack = Slack::start(&[
        "--rate-per-channel",
        "100",
        "--burst",
        "20",
        "--latency-ms",
        "30",
    ]);
    let namespace = fresh_namespace();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: spread_routes(&["#deal-desk", "#smb-wins", "#enterprise-wins"]),
        namespace: namespace.clone(),
        visibility_timeout_secs: 2,
        shutdown_grace_secs: 1,
        workers: 4,
        extra_toml: FAST_SLACK.into(),
        // Twenty kills on purpose: a job in flight at three of them is not a poison job.
        queue_toml: "max_recoveries = 100".into(),
        ..Options::default()
    };
    let total = 60;
    let mut app = App::spawn(options()).await;
    for n in 1..=total {
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    let mut kills = 0;
    while kills < 20 {
        // Kill as soon as this process has made a Slack call: mid-delivery.
        let before = slack.requests().await.len();
        eventually("a Slack call", Duration::from_secs(30), || async {
            (slack.requests().await.len() > before).then_some(())
        })
        .await;
        app.kill();
        kills += 1;
        if posts_by_deal(&slack).await.len() as u32 >= total {
            break;
        }
        app = App::spawn(options()).await;
    }
    // One last process finishes whatever is left, recovering the killed consumers' jobs.
    let _last = App::spawn(options()).await;
    all_delivered_once(&slack, total, Duration::from_secs(90)).await;
    assert!(
        kills >= 10,
        "only {kills} kills happened before everything was delivered"
    );
}

#[tokio::test]
async fn redis_restarted_under_load_answers_503_and_loses_nothing_accepted() {
    let mut redis = Redis::start();
    let slack = Slack::start(&["--rate-per-channel", "100", "--burst", "20"]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: spread_routes(&["#deal-desk", "#smb-wins"]),
        extra_toml: FAST_SLACK.into(),
        ..Options::default()
    })
    .await;
    let mut accepted = 0u32;
    let mut refused = 0u32;
    let mut n = 0u32;
    let post = async |n: u32, accepted: &mut u32, refused: &mut u32| {
        let response = app.post_events(event(n)).await;
        match response.status().as_u16() {
            202 => *accepted += 1,
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                *refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
        response.status().as_u16() == 202
    };
    // Accepted events are the only ones that must arrive: a refused one is not resent here.
    let mut delivered_expected = Vec::new();
    for _ in 0..20 {
        n += 1;
        if post(n, &mut accepted, &mut refused).await {
            delivered_expected.push(n);
        }
    }
    redis.stop();
    for _ in 0..20 {
        n += 1;
        if post(n, &mut accepted, &mut refused).await {
            delivered_expected.push(n);
        }
    }
    redis.restart();
    eventually("ready again", Duration::from_secs(15), || async {
        (app.get("/readyz").await.status() == 200).then_some(())
    })
    .await;
    for _ in 0..20 {
        n += 1;
        if post(n, &mut accepted, &mut refused).await {
            delivered_expected.push(n);
        }
    }
    assert!(
        refused >= 20,
        "every call while Redis was down must be refused: {refused}"
    );
    let counts = eventually(
        "accepted events delivered",
        Duration::from_secs(60),
        || async {
            let counts = posts_by_deal(&slack).await;
            (counts.len() >= delivered_expected.len()).then_some(counts)
        },
    )
    .await;
    for n in &delivered_expected {
        assert_eq!(
            counts.get(&format!("Deal {n}")),
            Some(&1),
            "Deal {n}: {counts:?}"
        );
    }
    assert_eq!(counts.len(), delivered_expected.len(), "{counts:?}");
    assert_eq!(accepted as usize, delivered_expected.len());
}

#[tokio::test]
async fn failing_storming_and_slow_slack_still_delivers_each_event_once() {
    let redis = Redis::start();
    let slack = Slack::start(&["--seed", "11"]);
    slack
        .set_faults(json!({
            "fail_rate": 0.3,
            "drop_response_after_effect_rate": 1.0,
            "force_429_for": {"count": 10, "retry_after": 1}
        }))
        .await;
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: spread_routes(&[
            "#deal-desk",
            "#smb-wins",
            "#enterprise-wins",
            "#sales-alerts",
        ]),
        workers: 4,
        ..Options::default()
    })
    .await;
    for n in 1..=16 {
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    all_delivered_once(&slack, 16, Duration::from_secs(90)).await;

    // Slow answers (2 s each) next.
    slack
        .set_faults(
            json!({"fail_rate": 0.0, "drop_response_after_effect_rate": 0.0, "latency_ms": 2000}),
        )
        .await;
    for n in 17..=24 {
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    all_delivered_once(&slack, 24, Duration::from_secs(90)).await;
    let stats = slack.stats().await;
    assert!(
        stats["failed_injected"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    // Every post of the first phase took effect but its answer was lost: only the history
    // check kept each of them single.
    assert!(
        stats["dropped_after_effect"].as_u64().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        slack
            .requests()
            .await
            .iter()
            .any(|r| r["method"] == "conversations.history"),
        "the history was never consulted"
    );
    assert!(stats["rate_limited"].as_u64().unwrap_or(0) >= 10, "{stats}");
}

#[tokio::test]
async fn two_replicas_share_the_channel_limits() {
    let redis = Redis::start();
    // Slack's own pace: 1 message per second per channel, bursts of 3.
    let slack = Slack::start(&["--rate-per-channel", "1", "--burst", "3"]);
    let namespace = fresh_namespace();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: spread_routes(&["#deal-desk", "#smb-wins"]),
        namespace: namespace.clone(),
        workers: 4,
        ..Options::default()
    };
    let one = App::spawn(options()).await;
    let two = App::spawn(options()).await;
    for n in 1..=12 {
        let app = if n % 2 == 0 { &one } else { &two };
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    all_delivered_once(&slack, 12, Duration::from_secs(60)).await;
    let stats = slack.stats().await;
    assert!(
        stats["rate_limited"].as_u64().unwrap_or(0) <= 1,
        "the replicas together exceeded Slack's pace: {stats}"
    );
    // 6 messages per channel at 1/s with a burst of 3 take at least 3 s: the limiter paced them.
    let messages = slack.messages().await;
    let first = messages
        .iter()
        .filter_map(|m| m["received_at_ms"].as_i64())
        .min()
        .unwrap();
    let last = messages
        .iter()
        .filter_map(|m| m["received_at_ms"].as_i64())
        .max()
        .unwrap();
    assert!(last - first >= 2_990, "{} ms", last - first);
}

#[tokio::test]
async fn when_slack_is_the_bottleneck_high_priority_goes_first_and_low_still_moves() {
    let redis = Redis::start();
    let slack = Slack::start(&["--rate-per-channel", "1", "--burst", "3"]);
    let route = |object: &str, priority: &str, template: &str| {
        format!(
            "object = \"{object}\"\npriority = \"{priority}\"\n[[actions]]\ntype = \"post\"\nchannel = \"#deal-desk\"\ntemplate = \"{template}\"\n"
        )
    };
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![
            (
                "deals",
                route("Opportunity", "normal", "closed-won-briefing"),
            ),
            ("leads", route("Lead", "low", "high-value-lead")),
            ("cases", route("Case", "high", "case-escalation")),
        ]),
        workers: 2,
        ..Options::default()
    })
    .await;
    for n in 1..=8 {
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    for suffix in ["F", "G"] {
        let mut lead: Value =
            serde_json::from_slice(&fixture("flow-lead-high-value.json")).unwrap();
        lead["record"]["Id"] = format!("00Q5g00000AbCd{suffix}").into();
        assert_eq!(app.post_events(lead.to_string()).await.status(), 202);
    }
    // Wait until the channel is saturated before the escalation arrives.
    eventually(
        "the first deals to go out",
        Duration::from_secs(10),
        || async { (slack.messages().await.len() >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        app.post_events(fixture("flow-case-escalated.json"))
            .await
            .status(),
        202
    );

    let messages = eventually("all eleven messages", Duration::from_secs(60), || async {
        let m = slack.messages().await;
        (m.len() >= 11).then_some(m)
    })
    .await;
    let position = |needle: &str| {
        messages
            .iter()
            .position(|m| m["text"].as_str().unwrap_or_default().contains(needle))
    };
    let case = position("Escalated case").expect("the case was posted");
    // Deals go out in no set order (two workers route them), but normal work still waiting
    // when the escalation came goes after it.
    let last_deal = messages
        .iter()
        .rposition(|m| m["text"].as_str().unwrap_or_default().contains("Deal "))
        .expect("the deals were posted");
    assert!(
        case < last_deal,
        "the escalation waited behind normal work: {case} vs {last_deal}"
    );
    assert!(case <= 4, "the escalation was posted {case}th");
    let leads = messages
        .iter()
        .filter(|m| {
            m["text"]
                .as_str()
                .unwrap_or_default()
                .starts_with("High-value lead")
        })
        .count();
    assert_eq!(leads, 2, "low-priority work starved");
    assert_eq!(messages.len(), 11);
}

#[tokio::test]
async fn deal_rooms_are_made_once_while_processes_are_killed() {
    let redis = Redis::start();
    let slack = Slack::start(&[
        "--rate-per-channel",
        "100",
        "--burst",
        "20",
        "--latency-ms",
        "30",
    ]);
    let namespace = fresh_namespace();
    let room_route = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("routes/closed-won-deal-room.toml"),
    )
    .unwrap();
    let options = || Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![("closed-won-deal-room", room_route.clone())]),
        namespace: namespace.clone(),
        visibility_timeout_secs: 2,
        shutdown_grace_secs: 1,
        workers: 4,
        extra_toml: FAST_SLACK.into(),
        // The kills are the test's own, not a job's doing: a job in flight at three of them
        // must not be taken for a poison job.
        queue_toml: "max_recoveries = 100".into(),
        ..Options::default()
    };
    let deals = 8;
    let mut app = App::spawn(options()).await;
    for n in 1..=deals {
        assert_eq!(app.post_events(event(n)).await.status(), 202);
    }
    for _ in 0..8 {
        let before = slack.requests().await.len();
        eventually("a Slack call", Duration::from_secs(30), || async {
            (slack.requests().await.len() > before).then_some(())
        })
        .await;
        app.kill();
        if slack.messages().await.len() as u32 >= deals {
            break;
        }
        app = App::spawn(options()).await;
    }
    let _last = App::spawn(options()).await;
    let messages = eventually("every briefing", Duration::from_secs(60), || async {
        let m = slack.messages().await;
        (m.len() as u32 >= deals).then_some(m)
    })
    .await;
    let channels: Vec<Value> = slack.get_json("/_emulator/channels").await;
    let rooms: Vec<&str> = channels
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|name| name.starts_with("deal-deal-"))
        .collect();
    assert_eq!(rooms.len() as u32, deals, "one room per deal: {rooms:?}");
    for n in 1..=deals {
        let name = format!("deal-deal-{n}");
        let room = channels
            .iter()
            .find(|c| c["name"] == name.as_str())
            .expect("the room");
        let briefings = messages
            .iter()
            .filter(|m| m["channel"] == room["id"])
            .count();
        assert_eq!(briefings, 1, "{name}");
    }
}
