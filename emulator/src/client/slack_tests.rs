//! [`SlackControl`] against a running Slack emulator and a small app that echoes what it got.

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::*;

const SECRET: &str = "app-secret";

/// Answers a command with an ephemeral text, and a `url_verification` with its challenge.
async fn app(body: Bytes) -> String {
    match serde_json::from_slice::<Value>(&body) {
        Ok(event) if event["type"] == "url_verification" => {
            json!({"challenge": event["challenge"]}).to_string()
        }
        Ok(_) => String::new(),
        Err(_) => json!({"text": "On it"}).to_string(),
    }
}

async fn serve_app() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/slack/commands", post(app))
        .route("/slack/events", post(app));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn drives_commands_events_and_reads_what_the_app_did() {
    let slack = crate::spawn_slack(["--channel", "C0DEALDESK:deal-desk"]).unwrap();
    let control = SlackControl::new(slack.url());
    let app = serve_app().await;
    let commands = format!("{app}/slack/commands");
    let events = format!("{app}/slack/events");

    let answer = control
        .command(
            &commands,
            SECRET,
            "U0DANA0001",
            "C0DEALDESK",
            "/sf",
            "find Acme",
        )
        .await
        .unwrap();
    assert_eq!((answer.status, answer.within_3s), (200, true));
    assert_eq!(answer.applied["outcome"], "ephemeral");
    assert_eq!(answer.payload["text"], "find Acme");
    let posted = reqwest::Client::new()
        .post(&answer.response_url)
        .json(&json!({"text": "Found 2"}))
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_success());
    let responses = control.responses(&answer.response_id).await.unwrap();
    assert_eq!(responses, [json!({"text": "Found 2"})]);
    assert_eq!(control.commands().await.unwrap().len(), 1);

    let verified = control
        .url_verification(&events, SECRET, "chal")
        .await
        .unwrap();
    assert_eq!(verified.verified, Some(true));
    let shared = control
        .link_shared(
            &events,
            SECRET,
            "U0DANA0001",
            "C0DEALDESK",
            &["https://acme.example/x"],
        )
        .await
        .unwrap();
    assert_eq!(
        shared.payload["event"]["links"][0]["domain"],
        "acme.example"
    );
    let typed = control
        .link_typed(&events, SECRET, "U0DANA0001", &["https://acme.example/y"])
        .await
        .unwrap();
    assert_eq!(typed.payload["event"]["channel"], "COMPOSER");
    let retried = control
        .retry_event(&events, SECRET, &shared.event_id, 1, "http_timeout")
        .await
        .unwrap();
    assert_eq!((retried.retry_num, retried.event_id), (1, shared.event_id));
    let opened = control
        .app_home_opened(&events, SECRET, "U0DANA0001")
        .await
        .unwrap();
    assert_eq!(opened.payload["event"]["type"], "app_home_opened");
    assert_eq!(control.events().await.unwrap().len(), 4);
    assert!(control.unfurls().await.unwrap().is_empty());
    assert_eq!(control.home_view("U0DANA0001").await.unwrap(), None);
    control.set_home_tab(false).await.unwrap();
    assert!(control.home_publishes().await.unwrap().is_empty());

    let refused = control
        .command(&commands, SECRET, "U0GHOST001", "C0DEALDESK", "/sf", "")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ControlError::Refused { status: 404, .. }),
        "{refused}"
    );
}
