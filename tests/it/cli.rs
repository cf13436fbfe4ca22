//! `sfrelay check`, `sfrelay render` and reloading routes on SIGHUP, as an admin uses them.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{App, Options, Redis, Slack, eventually, fixture, fixture_path};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A config directory with the shipped templates and routes copied in, so a test can break one.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["routes", "templates"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(Path::new(ROOT).join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("sfrelay.toml"),
        format!(
            "fixtures_dir = \"{}\"\n[[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n",
            fixture_path("").display()
        ),
    )
    .unwrap();
    dir
}

fn sfrelay(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sfrelay"))
        .args(["--config"])
        .arg(dir.join("sfrelay.toml"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run sfrelay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn check_passes_on_the_shipped_routes_and_templates() {
    let dir = workspace();
    let (ok, out) = sfrelay(dir.path(), &["check"], &[]);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("ok: 12 route(s), 6 button(s), 12 template(s)"),
        "{out}"
    );
}

#[test]
fn check_names_file_and_line_of_each_problem() {
    let dir = workspace();
    let routes = dir.path().join("routes");
    std::fs::write(
        routes.join("broken.toml"),
        "object = \"Opportunity\"\nwhen = 'became(\"StageName\", '\n\n[[actions]]\ntype = \"post\"\nchannel = \"#deal-desk\"\ntemplate = \"no-such-template\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/bad-block.json"),
        "{\n  \"text\": \"x\",\n  \"blocks\": [\n    {\"type\": \"sectoin\", \"text\": {\"type\": \"mrkdwn\", \"text\": \"hi\"}}\n  ]\n}\n",
    )
    .unwrap();
    let (ok, out) = sfrelay(dir.path(), &["check"], &[]);
    assert!(!ok, "{out}");
    let bad_block = dir.path().join("templates/bad-block.json");
    assert!(
        out.contains(&format!("{}:4:", bad_block.display())) && out.contains("sectoin"),
        "{out}"
    );
    // Fix the template; now the route's problems show.
    std::fs::remove_file(&bad_block).unwrap();
    let (ok, out) = sfrelay(dir.path(), &["check"], &[]);
    assert!(!ok);
    let broken = routes.join("broken.toml");
    assert!(out.contains(&format!("{}:2:", broken.display())), "{out}");
    assert!(
        out.contains(&format!("{}:7:", broken.display())) && out.contains("no-such-template"),
        "{out}"
    );
}

#[tokio::test]
async fn check_finds_channel_names_slack_does_not_have() {
    let slack = Slack::start(&[]);
    let dir = workspace();
    std::fs::write(
        dir.path().join("routes/typo.toml"),
        "object = \"Lead\"\n\n[[actions]]\ntype = \"post\"\nchannel = \"#sales-alert\"\ntemplate = \"high-value-lead\"\n",
    )
    .unwrap();
    let api = slack.api_base();
    let (ok, out) = sfrelay(
        dir.path(),
        &["check"],
        &[
            ("SLACK_BOT_TOKEN", support::SLACK_TOKEN),
            ("SLACK_API_BASE", &api),
        ],
    );
    assert!(!ok, "{out}");
    let typo = dir.path().join("routes/typo.toml");
    assert!(
        out.contains(&format!(
            "{}:3: channel #sales-alert does not exist",
            typo.display()
        )),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("does not exist")).count(),
        1,
        "{out}"
    );
}

#[test]
fn render_prints_the_slack_calls_without_side_effects() {
    let dir = workspace();
    let event = fixture_path("flow-opportunity-closed-won.json");
    let (ok, out) = sfrelay(
        dir.path(),
        &["render", "--event", event.to_str().unwrap()],
        &[],
    );
    assert!(ok, "{out}");
    let runs: Value = serde_json::from_str(&out).expect("JSON");
    let routes: Vec<&str> = runs[0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["route"].as_str().unwrap())
        .collect();
    assert_eq!(
        routes,
        vec![
            "closed-won-by-segment",
            "closed-won-deal-desk",
            "closed-won-deal-room",
            "closed-won-owner-dm",
            "followed-opportunity"
        ]
    );
    assert_eq!(
        runs[0]["routes"][2]["calls"][0]["room"],
        "deal-acme-corp-q3-enterprise"
    );
    let desk = &runs[0]["routes"][1]["calls"][0];
    assert_eq!(desk["channel"], "#deal-desk");
    assert_eq!(desk["method"], "chat.postMessage");
    let emails = &runs[0]["routes"][1]["unresolved_emails"];
    assert_eq!(
        emails,
        &serde_json::json!([
            "casey.success@example.com",
            "dana.seller@example.com",
            "sam.engineer@example.com"
        ])
    );
    assert_eq!(
        runs[0]["routes"][3]["calls"][0]["dm_to"],
        "dana.seller@example.com"
    );

    let (ok, out) = sfrelay(
        dir.path(),
        &[
            "render",
            "--event",
            event.to_str().unwrap(),
            "--route",
            "nope",
        ],
        &[],
    );
    assert!(!ok && out.contains("no route named \"nope\""), "{out}");
}

#[tokio::test]
async fn sighup_reloads_a_valid_set_and_keeps_the_old_one_when_broken() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        slack_api: Some(slack.api_base()),
        routes: Some(vec![]),
        ..Options::default()
    })
    .await;
    let routes_dir = app.routes_dir();

    // No route: the lead posts nothing.
    assert_eq!(
        app.post_events(fixture("flow-lead-high-value.json"))
            .await
            .status(),
        202
    );
    // The worker has routed it (against no route) before the set changes; otherwise a slow
    // worker would route it against the new set.
    eventually("the lead routed", Duration::from_secs(10), || async {
        app.logs().contains("no route fired").then_some(())
    })
    .await;
    // A new route is two files dropped in and a SIGHUP (the template is shipped).
    std::fs::write(
        routes_dir.join("leads.toml"),
        "object = \"Lead\"\n[[actions]]\ntype = \"post\"\nchannel = \"#sales-alerts\"\ntemplate = \"high-value-lead\"\n",
    )
    .unwrap();
    app.signal("HUP");
    eventually("the reload", Duration::from_secs(10), || async {
        app.logs()
            .contains("routes and templates reloaded")
            .then_some(())
    })
    .await;
    let mut lead: Value = serde_json::from_slice(&fixture("flow-lead-high-value.json")).unwrap();
    lead["record"]["Id"] = "00Q5g00000AbCdFEAV".into();
    assert_eq!(app.post_events(lead.to_string()).await.status(), 202);
    slack.wait_for_messages(1).await;

    // A broken file is refused; the running set keeps working.
    std::fs::write(routes_dir.join("broken.toml"), "object = [\n").unwrap();
    app.signal("HUP");
    eventually("the refusal", Duration::from_secs(10), || async {
        app.logs().contains("reload refused").then_some(())
    })
    .await;
    lead["record"]["Id"] = "00Q5g00000AbCdGEAV".into();
    assert_eq!(app.post_events(lead.to_string()).await.status(), 202);
    slack.wait_for_messages(2).await;
}
