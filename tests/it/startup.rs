//! Start-up refuses silent degradation: on an address other machines can reach, sfrelay does
//! not fall back to the in-process queue or the log sink unless told to, and an empty value
//! for a required variable is an error naming it. On loopback the embedded defaults still run.
//! Real binary.

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{API_KEY, ORG, Redis, Slack, eventually, listening};

/// A `sfrelay serve` started with exactly `env` and (when given) a config file.
struct Started {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// An org with an API key, the shipped routes and templates, and `extra` appended.
fn config_text(extra: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    format!(
        "routes_dir = \"{}\"\ntemplates_dir = \"{}\"\n{extra}\n\n[[orgs]]\nid = \"{ORG}\"\napi_key_env = \"TEST_API_KEY\"\n",
        root.join("routes").display(),
        root.join("templates").display(),
    )
}

fn start(config: Option<&str>, env: &[(&str, &str)]) -> Started {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sfrelay.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfrelay"));
    command.arg("serve");
    if let Some(text) = config {
        let path = dir.path().join("sfrelay.toml");
        std::fs::write(&path, text).expect("write config");
        command.arg("--config").arg(path);
    }
    let child = command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SFRELAY_LOG_FORMAT", "json")
        .env("TEST_API_KEY", API_KEY)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn sfrelay");
    Started {
        child,
        log,
        _dir: dir,
    }
}

impl Started {
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the process exits (returning its log) or starts serving (panicking).
    async fn refused(mut self) -> String {
        let child = &mut self.child;
        let log = self.log.clone();
        let status = eventually("sfrelay to exit or serve", Duration::from_secs(15), || {
            let exited = child.try_wait().ok().flatten();
            let serving = listening::logged_addr(&log, "sfrelay listening").is_some();
            async move {
                match (exited, serving) {
                    (Some(status), _) => Some(Ok(status)),
                    (None, true) => Some(Err(())),
                    (None, false) => None,
                }
            }
        })
        .await;
        let logs = self.logs();
        match status {
            Ok(status) => assert!(!status.success(), "exited with success:\n{logs}"),
            Err(()) => panic!("sfrelay started when it must refuse:\n{logs}"),
        }
        logs
    }

    /// Waits until the process serves `/healthz`; returns its base URL.
    async fn serving(&mut self) -> String {
        let log = self.log.clone();
        let child = &mut self.child;
        let addr = eventually("sfrelay to listen", Duration::from_secs(15), || {
            let exited = child.try_wait().ok().flatten();
            let addr = listening::logged_addr(&log, "sfrelay listening");
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                assert!(exited.is_none(), "sfrelay exited with {exited:?}:\n{logs}");
                addr
            }
        })
        .await;
        let url = format!("http://{}", addr.replace("0.0.0.0", "127.0.0.1"));
        let http = reqwest::Client::new();
        eventually("/healthz", Duration::from_secs(10), || async {
            let ok = http.get(format!("{url}/healthz")).send().await.ok()?;
            ok.status().is_success().then_some(())
        })
        .await;
        url
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Slack is never reached in these tests: a closed loopback port.
const NO_SLACK: (&str, &str) = ("SLACK_API_BASE", "http://127.0.0.1:1/api");

#[tokio::test]
async fn public_listen_with_an_empty_redis_url_refuses_to_start_naming_it() {
    let app = start(
        Some(&config_text("")),
        &[
            ("SFRELAY_LISTEN", "0.0.0.0:0"),
            ("REDIS_URL", ""),
            ("SLACK_BOT_TOKEN", "xoxb-startup-test"),
            NO_SLACK,
        ],
    );
    let logs = app.refused().await;
    assert!(logs.contains("REDIS_URL"), "{logs}");
}

#[tokio::test]
async fn public_listen_without_redis_url_refuses_the_in_process_queue() {
    let app = start(
        Some(&config_text("")),
        &[
            ("SFRELAY_LISTEN", "0.0.0.0:0"),
            ("SLACK_BOT_TOKEN", "xoxb-startup-test"),
            NO_SLACK,
        ],
    );
    let logs = app.refused().await;
    assert!(
        logs.contains("REDIS_URL") && logs.contains("queue.backend"),
        "{logs}"
    );
}

#[tokio::test]
async fn public_listen_with_an_empty_slack_token_refuses_to_start_naming_it() {
    let redis = Redis::start();
    let app = start(
        Some(&config_text("")),
        &[
            ("SFRELAY_LISTEN", "0.0.0.0:0"),
            ("REDIS_URL", &redis.url()),
            ("SLACK_BOT_TOKEN", ""),
            NO_SLACK,
        ],
    );
    let logs = app.refused().await;
    assert!(logs.contains("SLACK_BOT_TOKEN"), "{logs}");
}

#[tokio::test]
async fn public_listen_starts_with_memory_and_dry_run_configured_explicitly() {
    let mut app = start(
        Some(&config_text(
            "[queue]\nbackend = \"memory\"\n\n[slack]\ndry_run = true",
        )),
        &[
            ("SFRELAY_LISTEN", "0.0.0.0:0"),
            ("REDIS_URL", ""),
            ("SLACK_BOT_TOKEN", ""),
            NO_SLACK,
        ],
    );
    let url = app.serving().await;
    let ready: serde_json::Value = reqwest::get(format!("{url}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON");
    assert_eq!(ready["checks"]["queue_durable"], false, "{ready}");
}

#[tokio::test]
async fn redis_backend_without_redis_url_is_refused_on_loopback_too() {
    let app = start(
        Some(&config_text("[queue]\nbackend = \"redis\"")),
        &[("SFRELAY_LISTEN", "127.0.0.1:0"), NO_SLACK],
    );
    let logs = app.refused().await;
    assert!(
        logs.contains("queue.backend") && logs.contains("REDIS_URL"),
        "{logs}"
    );
}

#[tokio::test]
async fn loopback_with_empty_values_starts_on_the_embedded_defaults() {
    // The repository's own sfrelay.toml, as `cargo run --bin sfrelay -- serve` finds it.
    let mut app = start(
        None,
        &[
            ("SFRELAY_LISTEN", "127.0.0.1:0"),
            ("REDIS_URL", ""),
            ("SLACK_BOT_TOKEN", ""),
        ],
    );
    let url = app.serving().await;
    let ready: serde_json::Value = reqwest::get(format!("{url}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON");
    assert_eq!(ready["checks"]["queue_durable"], false, "{ready}");
    let logs = app.logs();
    assert!(logs.contains("IN-PROCESS queue"), "{logs}");
}

#[tokio::test]
async fn dry_run_logs_messages_instead_of_posting_them_even_with_a_token() {
    let slack = Slack::start(&[]);
    let mut app = start(
        Some(&config_text("[slack]\ndry_run = true")),
        &[
            ("SFRELAY_LISTEN", "127.0.0.1:0"),
            ("SLACK_API_BASE", &slack.api_base()),
            ("SLACK_BOT_TOKEN", support::SLACK_TOKEN),
        ],
    );
    let url = app.serving().await;
    let mut event: serde_json::Value =
        serde_json::from_slice(&support::fixture("flow-opportunity-closed-won.json")).unwrap();
    event["org_id"] = ORG.into();
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .header("Content-Type", "application/json")
        .header("X-Api-Key", API_KEY)
        .body(event.to_string())
        .send()
        .await
        .expect("sfrelay answers");
    assert_eq!(response.status().as_u16(), 202);
    let log = app.log.clone();
    eventually("the message in the log", Duration::from_secs(15), || {
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        async move { logs.contains("\"action\":\"post\"").then_some(()) }
    })
    .await;
    assert!(
        slack.messages().await.is_empty(),
        "dry_run must not post to Slack"
    );
}
