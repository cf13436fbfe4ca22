//! The Redis sfrelay is given: version and eviction policy checked at start.

use crate::support;

use support::redis_topologies::{FakeRedis, Server, serve_until_up_or_exit};
use support::{App, Options, free_port};

const INFO_6_2: &str = "# Server\nredis_version:6.2.14\nredis_mode:standalone\n\n# Memory\nmaxmemory_policy:noeviction\n";

#[tokio::test]
async fn redis_older_than_7_0_is_refused_naming_the_version_found() {
    let fake = FakeRedis::start(INFO_6_2).await;
    let start = serve_until_up_or_exit(&fake.url(), "127.0.0.1").await;
    assert!(
        start.exited && !start.success,
        "started on Redis 6.2:\n{}",
        start.log
    );
    assert!(
        start.log.contains("Redis 6.2.14 found") && start.log.contains("7.0 or later"),
        "{}",
        start.log
    );
}

#[tokio::test]
async fn an_evicting_redis_is_refused_on_a_public_address_and_warned_about_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Server::start(
        free_port(),
        dir.path(),
        &["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"],
    );
    let public = serve_until_up_or_exit(&redis.url(), "0.0.0.0").await;
    assert!(public.exited && !public.success, "started:\n{}", public.log);
    assert!(
        public.log.contains("maxmemory-policy allkeys-lru")
            && public.log.contains("maxmemory-policy noeviction"),
        "{}",
        public.log
    );

    let app = App::spawn(Options {
        redis: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let logs = app.logs();
    assert!(
        logs.contains("maxmemory-policy is not noeviction") && logs.contains("allkeys-lru"),
        "{logs}"
    );
}

fn closed_won(record_id: &str) -> String {
    let mut body: serde_json::Value =
        serde_json::from_slice(&support::fixture("flow-opportunity-closed-won.json")).unwrap();
    body["event_id"] = format!("evt-{record_id}").into();
    body["record"]["Id"] = record_id.into();
    body["record"]["Name"] = format!("Deal {record_id}").into();
    body.to_string()
}

/// How many times each deal was posted, by title.
async fn posted(slack: &support::Slack) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for message in slack.messages().await {
        let title = message["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *counts.entry(title).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn sentinel_failover_under_load_loses_and_doubles_nothing_accepted() {
    use std::time::{Duration, Instant};
    use support::redis_topologies::{SENTINEL_MASTER, SentinelSet};

    let mut set = SentinelSet::start();
    let slack = support::Slack::start(&["--rate-per-channel", "100", "--burst", "100"]);
    let app = App::spawn(Options {
        redis: Some(format!("redis://127.0.0.1:{}", set.sentinel.port)),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        queue_toml: format!(
            "redis = \"sentinel\"\nsentinel_master = \"{SENTINEL_MASTER}\"\nmin_replicas_acked = 1\n"
        ),
        extra_toml: "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 100\n".into(),
        ..Options::default()
    })
    .await;
    let old_primary = set.primary.port;
    let mut accepted = Vec::new();
    let mut accepted_after_failover = 0;
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 0;
    while accepted_after_failover < 10 {
        assert!(
            Instant::now() < deadline,
            "no 202s after the failover:\n{}",
            app.logs()
        );
        n += 1;
        let record = format!("006{n:012}AAA");
        let status = app.post_events(closed_won(&record)).await.status();
        assert!(status == 202 || status == 503, "{status}");
        if status == 202 {
            accepted.push(record);
            if killed && set.primary_port().is_some_and(|p| p != old_primary) {
                accepted_after_failover += 1;
            }
        }
        if accepted.len() == 20 && !killed {
            set.primary.kill();
            killed = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(set.primary_port(), Some(old_primary), "no failover");
    support::eventually(
        "every accepted event posted",
        Duration::from_secs(30),
        || async {
            let counts = posted(&slack).await;
            accepted
                .iter()
                .all(|r| counts.contains_key(&format!("🏆 Closed Won: Deal {r}")))
                .then_some(())
        },
    )
    .await;
    let counts = posted(&slack).await;
    for record in &accepted {
        let title = format!("🏆 Closed Won: Deal {record}");
        assert_eq!(counts.get(&title), Some(&1), "{title}: {counts:#?}");
    }
    assert!(counts.values().all(|c| *c == 1), "doubled: {counts:#?}");
    println!(
        "sentinel: {} accepted ({} before the kill), {} posts, {} requests",
        accepted.len(),
        20,
        counts.len(),
        n
    );
}

#[tokio::test]
async fn a_cluster_reached_through_a_node_that_does_not_own_the_slot_delivers_every_event() {
    use std::time::Duration;
    use support::redis_topologies::{ClusterSet, cli};

    let cluster = ClusterSet::start();
    let namespace = support::fresh_namespace();
    let owner = cluster.owner(&format!("sfrelay:{{{namespace}}}:ready"));
    let seed = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| *p != owner)
        .unwrap();
    let slack = support::Slack::start(&["--rate-per-channel", "100", "--burst", "100"]);
    let app = App::spawn(Options {
        redis: Some(format!("redis://127.0.0.1:{seed}")),
        slack_api: Some(slack.api_base()),
        routes: support::deal_desk_only(),
        namespace: namespace.clone(),
        queue_toml: "redis = \"cluster\"".into(),
        extra_toml: "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 100\n".into(),
        ..Options::default()
    })
    .await;
    support::eventually("readiness", Duration::from_secs(10), || async {
        (app.get("/readyz").await.status() == 200).then_some(())
    })
    .await;
    let records: Vec<String> = (1..=5).map(|i| format!("006{i:012}AAA")).collect();
    for record in &records {
        assert_eq!(app.post_events(closed_won(record)).await.status(), 202);
    }
    slack.wait_for_messages(5).await;
    let counts = posted(&slack).await;
    for record in &records {
        assert_eq!(
            counts.get(&format!("🏆 Closed Won: Deal {record}")),
            Some(&1),
            "{counts:#?}"
        );
    }
    let pattern = format!("sfrelay:{{{namespace}}}:*");
    for node in &cluster.nodes {
        let keys = cli(node.port, &["KEYS", &pattern]);
        if node.port == owner {
            assert!(keys.contains("dedupe"), "owner has no keys: {keys}");
        } else {
            assert!(
                keys.trim().is_empty(),
                "keys outside the slot's node: {keys}"
            );
        }
    }
}
