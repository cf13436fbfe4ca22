//! The Redis sfrelay is given: version and eviction policy checked at start.

mod support;

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
