//! The emulator plays the person in Slack against the real binary: a click on a card's button
//! arrives signed like Slack's and is answered through the click's `response_url`; a modal
//! opened with a click's trigger is submitted and closed by sfrelay's answer. And sfrelay's
//! Slack client against the emulator's modal, ephemeral and `users.info` methods.

use crate::support;

use std::time::Duration;

use serde_json::{Value, json};
use sfrelay::config::Secret;
use sfrelay::slack::{SlackClient, SlackError};
use support::{App, Options, Redis, SLACK_TOKEN, Slack};

const SECRET: &str = "test-signing-secret-0123456789abcdef";

async fn spawn(redis: &Redis, slack: &Slack) -> App {
    App::spawn_with_env(
        Options {
            redis: Some(redis.url()),
            slack_api: Some(slack.api_base()),
            workers: 1,
            routes: support::deal_desk_only(),
            ..Options::default()
        },
        vec![("SLACK_SIGNING_SECRET".into(), SECRET.into())],
    )
    .await
}

fn interactions(app: &App) -> String {
    format!("{}/slack/interactions", app.url)
}

/// A card with one button whose value sfrelay never wrote.
fn card() -> Value {
    json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Acme* — approve the discount?"}},
        {"type": "actions", "block_id": "decide", "elements": [
            {"type": "button", "action_id": "approve", "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": "approve-everything"}
        ]}
    ])
}

fn client(slack: &Slack) -> SlackClient {
    SlackClient::new(
        &slack.api_base(),
        Secret::new(SLACK_TOKEN.into()),
        Duration::from_secs(5),
    )
    .expect("client")
}

#[tokio::test]
async fn a_signed_click_on_a_button_sfrelay_did_not_write_is_answered_not_valid() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, &slack).await;
    let ts = slack.post_card("C0DEALDESK", "Approve?", card()).await;

    let click = slack
        .click(
            &interactions(&app),
            SECRET,
            "U0DANA0001",
            "C0DEALDESK",
            &ts,
            "approve",
        )
        .await;
    assert_eq!(click.status, 200, "{:?}", click.body);
    assert!(click.elapsed_ms < 3000, "Slack's 3 s: {}", click.elapsed_ms);
    assert_eq!(click.payload["actions"][0]["value"], "approve-everything");
    assert!(click.trigger_id.is_some());

    let answers = slack.wait_for_responses(&click.response_id(), 1).await;
    assert_eq!(answers[0]["response_type"], "ephemeral");
    let text = answers[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("not valid"), "{text}");
    // The response_url was the click's: the answer is shown to the clicker alone, and the
    // card is left as it was.
    let shown = slack.wait_for_ephemerals("U0DANA0001", 1).await;
    assert_eq!(shown[0]["channel"], "C0DEALDESK");
    assert_eq!(shown[0]["via"], "response_url");
    assert!(
        shown[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid")
    );
    let messages = slack.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["blocks"], card());
    assert_eq!(messages[0]["updated"], false);

    // Signed with another secret, signed long ago, or altered after signing: 401, no answer.
    let now = chrono::Utc::now().timestamp();
    for (what, extra) in [
        ("wrong secret", json!({"signing_secret": "not-the-secret"})),
        ("stale", json!({"timestamp": now - 301})),
        ("tampered", json!({"tamper": true})),
    ] {
        let mut request = json!({
            "url": interactions(&app), "signing_secret": SECRET, "type": "block_actions",
            "user": "U0DANA0001", "channel": "C0DEALDESK", "ts": ts, "action_id": "approve",
        });
        if let (Some(request), Value::Object(extra)) = (request.as_object_mut(), extra) {
            request.extend(extra);
        }
        let refused = slack.interact(request).await;
        assert_eq!(refused.status, 401, "{what}: {:?}", refused.body);
        assert!(
            slack.responses(&refused.response_id()).await.is_empty(),
            "{what}: nobody is answered"
        );
    }
}

#[tokio::test]
async fn a_modal_opened_with_a_clicks_trigger_closes_on_sfrelays_answer_to_its_submission() {
    let redis = Redis::start();
    let slack = Slack::start(&[]);
    let app = spawn(&redis, &slack).await;
    let ts = slack.post_card("C0DEALDESK", "Approve?", card()).await;
    let click = slack
        .click(
            &interactions(&app),
            SECRET,
            "U0DANA0001",
            "C0DEALDESK",
            &ts,
            "approve",
        )
        .await;
    let trigger = click.trigger_id.expect("a click carries a trigger");

    let modal = json!({
        "type": "modal", "callback_id": "sfrelay-note",
        "title": {"type": "plain_text", "text": "Add a note"},
        "submit": {"type": "plain_text", "text": "Save"},
        "blocks": [{"type": "input", "block_id": "note",
                    "label": {"type": "plain_text", "text": "Note"},
                    "element": {"type": "plain_text_input", "action_id": "text"}}]
    });
    let view_id = client(&slack)
        .open_view(&trigger, &modal)
        .await
        .expect("views.open");
    let submitted = slack
        .submit(
            &interactions(&app),
            SECRET,
            "U0DANA0001",
            &view_id,
            json!({"note": {"text": "Called, they will sign Friday"}}),
        )
        .await;
    assert_eq!(submitted.status, 200, "{:?}", submitted.body);
    assert_eq!(submitted.body, "", "an empty 200");
    assert_eq!(submitted.applied, json!({"outcome": "closed"}));
    assert_eq!(
        submitted.payload["view"]["state"]["values"]["note"]["text"]["value"],
        "Called, they will sign Friday"
    );
    let views = slack.views().await;
    assert_eq!(views.len(), 1);
    assert_eq!(views[0]["callback_id"], "sfrelay-note");
    assert_eq!(views[0]["closed"], true);
}

#[tokio::test]
async fn the_client_opens_and_updates_modals_posts_ephemerals_and_reads_emails() {
    let slack = Slack::start(&[]);
    let client = client(&slack);
    let modal = json!({
        "type": "modal", "callback_id": "sfrelay-task",
        "title": {"type": "plain_text", "text": "Log a task"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Loading…"}}]
    });

    let trigger = slack.trigger("U0SAM00001").await;
    let view_id = client.open_view(&trigger, &modal).await.expect("open");
    assert!(view_id.starts_with('V'), "{view_id}");
    assert_eq!(
        client.open_view(&trigger, &modal).await,
        Err(SlackError::Api {
            code: "exchanged_trigger_id".into()
        }),
        "a trigger opens one modal"
    );
    assert_eq!(
        client.open_view("12345.98765.abcd2358fdea", &modal).await,
        Err(SlackError::Api {
            code: "invalid_trigger_id".into()
        })
    );
    let too_long = json!({"type": "modal", "title": {"type": "plain_text", "text": "x".repeat(25)},
                          "blocks": []});
    let fresh = slack.trigger("U0SAM00001").await;
    assert_eq!(
        client.open_view(&fresh, &too_long).await,
        Err(SlackError::Api {
            code: "invalid_arguments".into()
        })
    );

    let filled = json!({
        "type": "modal", "callback_id": "sfrelay-task",
        "title": {"type": "plain_text", "text": "Log a task"},
        "submit": {"type": "plain_text", "text": "Save"},
        "blocks": [{"type": "input", "block_id": "subject",
                    "label": {"type": "plain_text", "text": "Subject"},
                    "element": {"type": "plain_text_input", "action_id": "value"}}]
    });
    client.update_view(&view_id, &filled).await.expect("update");
    let views = slack.views().await;
    assert_eq!(views[0]["user"], "U0SAM00001");
    assert_eq!(views[0]["blocks"][0]["block_id"], "subject");
    assert_eq!(
        client.update_view("V0NOPE0000", &filled).await,
        Err(SlackError::Api {
            code: "not_found".into()
        })
    );

    let blocks =
        [json!({"type": "section", "text": {"type": "mrkdwn", "text": "Only you see this"}})];
    client
        .post_ephemeral("C0DEALDESK", "U0SAM00001", "Only you", &blocks)
        .await
        .expect("ephemeral");
    client
        .post_ephemeral("C0DEALDESK", "U0DANA0001", "Plain", &[])
        .await
        .expect("ephemeral without blocks");
    assert_eq!(
        client
            .post_ephemeral("C0NOWHERE1", "U0SAM00001", "x", &[])
            .await,
        Err(SlackError::Api {
            code: "channel_not_found".into()
        })
    );
    let shown = slack.ephemerals().await;
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[0]["user"], "U0SAM00001");
    assert_eq!(shown[0]["blocks"], json!(blocks));
    assert_eq!(shown[1]["blocks"], Value::Null);
    assert!(slack.messages().await.is_empty(), "never in history");

    slack
        .add_user(json!({"id": "U0NOMAIL01", "name": "no-mail"}))
        .await;
    slack
        .add_user(json!({"id": "U0GONE0001", "email": "gone@example.com", "deleted": true}))
        .await;
    slack
        .add_user(json!({"id": "U0BOT00001", "email": "bot@example.com", "is_bot": true}))
        .await;
    assert_eq!(
        client.user_email("U0DANA0001").await,
        Ok(Some("dana.seller@example.com".into()))
    );
    for nobody in ["U0NOMAIL01", "U0GONE0001", "U0BOT00001", "U0SFRELAY1"] {
        assert_eq!(client.user_email(nobody).await, Ok(None), "{nobody}");
    }
    assert_eq!(
        client.user_email("U0GHOST001").await,
        Err(SlackError::Api {
            code: "user_not_found".into()
        })
    );
    let stats = slack.stats().await;
    assert_eq!(stats["by_method"]["views.open"], 4);
    assert_eq!(stats["by_method"]["users.info"], 6);
    assert_eq!(stats["ephemerals"], 2);
}
