//! The emulator playing a person against a small loopback app: clicks, picks, modals opened
//! with the click's trigger, submissions answered every way Slack knows, closes, and answers
//! through the click's `response_url`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::signing::signature;
use crate::gcra::Rate;
use crate::params::Params;
use crate::slack::emulator::Emulator;
use crate::slack::faults::Faults;
use crate::slack::journal::Journal;
use crate::slack::limits::Limits;
use crate::slack::workspace::{Channel, User, Workspace};

const SECRET: &str = "app-signing-secret";
const TOKEN: &str = "xoxb-t";

/// What the app saw of one request, and whether its signature held.
#[derive(Debug, Clone)]
struct Seen {
    timestamp: String,
    signature_ok: bool,
    payload: Value,
}

#[derive(Default)]
struct App {
    seen: Vec<Seen>,
    /// Answers to give, in order; an empty 200 once they run out.
    answers: VecDeque<(StatusCode, String)>,
}

type AppState = Arc<Mutex<App>>;

/// The app: checks the v0 signature, records the payload, answers what it was told to
/// (401 when the signature does not hold, as a real app must).
async fn app_endpoint(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let timestamp = header("x-slack-request-timestamp");
    let body = String::from_utf8_lossy(&body).into_owned();
    let expected = signature(SECRET, timestamp.parse().unwrap_or_default(), &body);
    let signature_ok = header("x-slack-signature") == expected;
    let form = Params::from_body(None, body.as_bytes()).unwrap();
    let payload = serde_json::from_str(form.str("payload").unwrap().unwrap()).unwrap();
    let mut app = app.lock().unwrap();
    app.seen.push(Seen {
        timestamp,
        signature_ok,
        payload,
    });
    if !signature_ok {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    app.answers
        .pop_front()
        .unwrap_or((StatusCode::OK, String::new()))
}

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

struct Setup {
    emulator: String,
    app_url: String,
    app: AppState,
    http: reqwest::Client,
}

impl Setup {
    async fn start() -> Setup {
        let mut private = Channel::new("G0PRIVATE1", "private", true);
        private.members.insert("U0DANA0001".into());
        let emu = Emulator {
            token: TOKEN.into(),
            token_states: Default::default(),
            page_size: 100,
            workspace: Workspace::new(
                vec![Channel::new("C0DEALDESK", "deal-desk", false), private],
                vec![
                    User::new("U0DANA0001", "dana.seller@example.com"),
                    User::new("U0SAM00001", "sam.engineer@example.com"),
                ],
            ),
            journal: Journal::default(),
            faults: Faults::new(0.0, 0.0, Duration::ZERO, 1),
            limits: Limits::new(Rate::new(10.0, 10).unwrap(), Rate::new(10.0, 20).unwrap()),
            interactive: Default::default(),
        };
        let emulator = serve(crate::slack::http::router(Arc::new(Mutex::new(emu)))).await;
        let app = AppState::default();
        let app_addr = serve(
            Router::new()
                .route("/slack/interactions", post(app_endpoint))
                .with_state(app.clone()),
        )
        .await;
        Setup {
            emulator: format!("http://{emulator}"),
            app_url: format!("http://{app_addr}/slack/interactions"),
            app,
            http: reqwest::Client::new(),
        }
    }

    async fn api(&self, method: &str, args: Value) -> Value {
        self.http
            .post(format!("{}/api/{method}", self.emulator))
            .bearer_auth(TOKEN)
            .json(&args)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.emulator))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `/_emulator/interact` with the app's URL and secret filled in; status and answer.
    async fn interact(&self, mut request: Value) -> (u16, Value) {
        request["url"] = self.app_url.clone().into();
        if request.get("signing_secret").is_none() {
            request["signing_secret"] = SECRET.into();
        }
        let response = self
            .http
            .post(format!("{}/_emulator/interact", self.emulator))
            .json(&request)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    fn answer_next(&self, status: StatusCode, body: Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.app.lock().unwrap().answers.push_back((status, body));
    }

    fn last_seen(&self) -> Seen {
        self.app.lock().unwrap().seen.last().cloned().unwrap()
    }
}

fn card() -> Value {
    json!([
        {"type": "section", "block_id": "summary", "text": {"type": "mrkdwn", "text": "*Acme* needs approval"},
         "accessory": {"type": "overflow", "action_id": "more", "options": [
            {"text": {"type": "plain_text", "text": "Snooze"}, "value": "snooze"}]}},
        {"type": "actions", "block_id": "decide", "elements": [
            {"type": "button", "action_id": "approve", "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}, "value": "not-an-sfrelay-value"},
            {"type": "static_select", "action_id": "stage",
             "placeholder": {"type": "plain_text", "text": "Stage"},
             "option_groups": [{"label": {"type": "plain_text", "text": "Open"}, "options": [
                {"text": {"type": "plain_text", "text": "Negotiation"}, "value": "Negotiation"}]}]},
            {"type": "datepicker", "action_id": "when"}
        ]}
    ])
}

fn task_modal() -> Value {
    json!({
        "type": "modal", "callback_id": "sfrelay-task", "private_metadata": "006A",
        "title": {"type": "plain_text", "text": "Log a task"},
        "submit": {"type": "plain_text", "text": "Save"},
        "blocks": [
            {"type": "input", "block_id": "subject", "label": {"type": "plain_text", "text": "Subject"},
             "element": {"type": "plain_text_input", "action_id": "value"}},
            {"type": "input", "block_id": "due", "label": {"type": "plain_text", "text": "Due"},
             "element": {"type": "datepicker", "action_id": "date"}},
            {"type": "input", "block_id": "status", "optional": true, "label": {"type": "plain_text", "text": "Status"},
             "element": {"type": "static_select", "action_id": "pick", "options": [
                {"text": {"type": "plain_text", "text": "Not Started"}, "value": "Not Started"}]}}
        ]
    })
}

#[tokio::test]
async fn a_click_is_a_signed_block_actions_payload_with_a_trigger_and_a_response_url() {
    let s = Setup::start().await;
    let posted = s
        .api(
            "chat.postMessage",
            json!({"channel": "C0DEALDESK", "text": "Approve?", "blocks": card()}),
        )
        .await;
    let ts = posted["ts"].as_str().unwrap().to_owned();

    let click = json!({"type": "block_actions", "user": "U0DANA0001", "channel": "C0DEALDESK",
                       "ts": ts, "action_id": "approve"});
    let (status, answer) = s.interact(click.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["body"], "");
    assert!(answer["elapsed_ms"].as_u64().is_some());
    let seen = s.last_seen();
    assert!(seen.signature_ok, "signed with Slack's v0 scheme");
    assert_eq!(
        seen.payload, answer["payload"],
        "what was sent is what is reported"
    );
    let payload = &seen.payload;
    assert_eq!(payload["type"], "block_actions");
    assert_eq!(payload["api_app_id"], "A0EMULATOR");
    assert_eq!(
        payload["user"],
        json!({"id": "U0DANA0001", "username": "dana.seller", "name": "dana.seller", "team_id": "T0EMULATED"})
    );
    assert_eq!(
        payload["team"],
        json!({"id": "T0EMULATED", "domain": "emulated"})
    );
    assert_eq!(
        payload["container"],
        json!({"type": "message", "message_ts": ts, "channel_id": "C0DEALDESK", "is_ephemeral": false})
    );
    assert_eq!(
        payload["channel"],
        json!({"id": "C0DEALDESK", "name": "deal-desk"})
    );
    assert_eq!(payload["message"]["ts"], ts.as_str());
    assert_eq!(payload["message"]["blocks"], card());
    assert_eq!(payload["trigger_id"], answer["trigger_id"]);
    let action = &payload["actions"][0];
    assert_eq!(action["type"], "button");
    assert_eq!(action["action_id"], "approve");
    assert_eq!(action["block_id"], "decide");
    assert_eq!(action["value"], "not-an-sfrelay-value");
    assert!(action["action_ts"].as_str().unwrap().contains('.'));
    let response_url = answer["response_url"].as_str().unwrap().to_owned();
    assert!(
        response_url.starts_with(&format!("{}/_emulator/response/", s.emulator)),
        "{response_url}"
    );
    assert_eq!(payload["response_url"], response_url.as_str());

    // A second click is another request: new trigger, new response_url, new action_ts.
    let (_, again) = s.interact(click).await;
    assert_ne!(again["trigger_id"], answer["trigger_id"]);
    assert_ne!(again["response_url"], answer["response_url"]);

    // Picks from selects and overflows carry the option.
    let pick = json!({"type": "block_actions", "user": "U0SAM00001", "channel": "C0DEALDESK",
                      "ts": ts, "action_id": "stage", "option": "Negotiation"});
    let (status, picked) = s.interact(pick.clone()).await;
    assert_eq!(status, 200, "{picked}");
    assert_eq!(
        picked["payload"]["actions"][0]["selected_option"],
        json!({"text": {"type": "plain_text", "text": "Negotiation"}, "value": "Negotiation"})
    );
    let overflow = json!({"type": "block_actions", "user": "U0SAM00001", "channel": "C0DEALDESK",
                          "ts": ts, "action_id": "more", "option": "snooze"});
    let (_, more) = s.interact(overflow).await;
    assert_eq!(more["payload"]["actions"][0]["block_id"], "summary");
    assert_eq!(
        more["payload"]["actions"][0]["selected_option"]["value"],
        "snooze"
    );

    let with = |patch: Value| {
        let mut request = pick.clone();
        if let (Some(r), Value::Object(patch)) = (request.as_object_mut(), patch) {
            r.extend(patch);
        }
        request
    };
    for (request, status, error) in [
        (
            with(json!({"option": "Closed Won"})),
            404,
            "option_not_found",
        ),
        (with(json!({"option": null})), 400, "option_required"),
        (with(json!({"action_id": "nope"})), 404, "action_not_found"),
        (
            with(json!({"action_id": "when"})),
            400,
            "unsupported_element",
        ),
        (with(json!({"ts": "1.000001"})), 404, "message_not_found"),
        (with(json!({"user": "U0GHOST001"})), 404, "user_not_found"),
        (with(json!({"channel": null})), 400, "invalid_arguments"),
        (with(json!({"type": "shortcut"})), 400, "invalid_arguments"),
    ] {
        let (got, answer) = s.interact(request.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{request}"
        );
    }
    let mut foreign = pick.clone();
    foreign["url"] = "http://192.0.2.1/slack/interactions".into();
    foreign["signing_secret"] = SECRET.into();
    let response = s
        .http
        .post(format!("{}/_emulator/interact", s.emulator))
        .json(&foreign)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["error"], "url_not_loopback");

    // The click's response_url acts on the clicked message.
    let reply = |body: Value| {
        let url = response_url.clone();
        let http = s.http.clone();
        async move {
            let response = http.post(url).json(&body).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    assert_eq!(
        reply(json!({"text": "This button is not valid."})).await.0,
        200
    );
    let ephemerals = s.get("/_emulator/ephemerals?user=U0DANA0001").await;
    assert_eq!(ephemerals[0]["text"], "This button is not valid.");
    assert_eq!(ephemerals[0]["via"], "response_url");
    assert_eq!(ephemerals[0]["channel"], "C0DEALDESK");
    let approved = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U0DANA0001>"}}]);
    let (status, _) =
        reply(json!({"replace_original": true, "text": "Approved", "blocks": approved})).await;
    assert_eq!(status, 200);
    let messages = s.get("/_emulator/messages?channel=C0DEALDESK").await;
    assert_eq!(messages[0]["blocks"], approved);
    assert_eq!(messages[0]["updated"], true);
    for _ in 0..3 {
        assert_eq!(reply(json!({"text": "again"})).await.0, 200);
    }
    assert_eq!(
        reply(json!({"text": "sixth"})).await,
        (404, json!({"ok": false, "error": "used_url"}))
    );
    let received = s
        .get(&format!(
            "/_emulator/response/{}",
            response_url.rsplit('/').next().unwrap()
        ))
        .await;
    assert_eq!(received.as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn stale_and_tampered_signatures_reach_the_app_as_such() {
    let s = Setup::start().await;
    let posted = s
        .api(
            "chat.postMessage",
            json!({"channel": "G0PRIVATE1", "text": "x", "blocks": card()}),
        )
        .await;
    let click = json!({"type": "block_actions", "user": "U0DANA0001", "channel": "G0PRIVATE1",
                       "ts": posted["ts"], "action_id": "approve"});
    let mut stale = click.clone();
    stale["timestamp"] = 1_531_420_618.into();
    let (_, answer) = s.interact(stale).await;
    assert_eq!(answer["status"], 200, "signed correctly, just long ago");
    assert_eq!(s.last_seen().timestamp, "1531420618");
    assert!(s.last_seen().signature_ok);

    let mut tampered = click.clone();
    tampered["tamper"] = true.into();
    let (_, answer) = s.interact(tampered).await;
    assert_eq!(answer["status"], 401);
    assert!(!s.last_seen().signature_ok);
    assert_eq!(
        s.last_seen().payload["type"],
        "block_actions",
        "still readable"
    );

    let mut wrong = click;
    wrong["signing_secret"] = "another-apps-secret".into();
    let (_, answer) = s.interact(wrong).await;
    assert_eq!(answer["status"], 401);
}

#[tokio::test]
async fn a_modal_opened_with_the_clicks_trigger_answers_submissions_like_slack() {
    let s = Setup::start().await;
    let posted = s
        .api(
            "chat.postMessage",
            json!({"channel": "C0DEALDESK", "text": "x", "blocks": card()}),
        )
        .await;
    let click = json!({"type": "block_actions", "user": "U0DANA0001", "channel": "C0DEALDESK",
                       "ts": posted["ts"], "action_id": "approve"});
    let (_, clicked) = s.interact(click).await;
    let opened = s
        .api(
            "views.open",
            json!({"trigger_id": clicked["trigger_id"], "view": task_modal()}),
        )
        .await;
    assert_eq!(opened["ok"], true, "{opened}");
    let view_id = opened["view"]["id"].as_str().unwrap().to_owned();
    let views = s.get("/_emulator/views").await;
    assert_eq!(views[0]["id"], view_id.as_str());
    assert_eq!(views[0]["user"], "U0DANA0001");
    assert_eq!(views[0]["callback_id"], "sfrelay-task");
    assert_eq!(views[0]["private_metadata"], "006A");
    assert_eq!(views[0]["closed"], false);

    let submit = |values: Value| json!({"type": "view_submission", "user": "U0DANA0001", "view_id": view_id, "values": values});
    let values = json!({"subject": {"value": "Call back"}, "due": {"date": "2030-01-31"}});
    for (request, status, error) in [
        (
            submit(json!({"subject": {"value": "Call back"}})),
            400,
            "required_input_missing",
        ),
        (
            submit(
                json!({"nope": {"value": "x"}, "due": {"date": "2030-01-31"}, "subject": {"value": "x"}}),
            ),
            400,
            "unknown_input",
        ),
        (
            submit(
                json!({"subject": {"value": "x"}, "due": {"date": "2030-01-31"}, "status": {"pick": "Done"}}),
            ),
            404,
            "option_not_found",
        ),
        (
            json!({"type": "view_submission", "user": "U0SAM00001", "view_id": view_id, "values": values}),
            403,
            "not_view_owner",
        ),
        (
            json!({"type": "view_submission", "user": "U0DANA0001", "view_id": "V0NOPE", "values": values}),
            404,
            "view_not_found",
        ),
    ] {
        let (got, answer) = s.interact(request.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{request}"
        );
    }

    s.answer_next(
        StatusCode::OK,
        json!({"response_action": "errors", "errors": {"subject": "Say what the task is"}}),
    );
    let (status, answer) = s.interact(submit(values.clone())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["applied"], json!({"outcome": "errors"}));
    let payload = &s.last_seen().payload;
    assert_eq!(payload["type"], "view_submission");
    assert_eq!(payload["view"]["id"], view_id.as_str());
    assert_eq!(payload["view"]["callback_id"], "sfrelay-task");
    assert_eq!(payload["view"]["private_metadata"], "006A");
    assert!(payload["trigger_id"].as_str().is_some());
    assert_eq!(
        payload["view"]["state"]["values"],
        json!({
            "subject": {"value": {"type": "plain_text_input", "value": "Call back"}},
            "due": {"date": {"type": "datepicker", "selected_date": "2030-01-31"}},
            "status": {"pick": {"type": "static_select", "selected_option": null}},
        })
    );
    let views = s.get("/_emulator/views").await;
    assert_eq!(views[0]["closed"], false, "errors keep it open");
    assert_eq!(
        views[0]["errors"],
        json!({"subject": "Say what the task is"})
    );

    let saving = json!({"type": "modal", "title": {"type": "plain_text", "text": "Saving…"},
                        "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "Saving the task"}}]});
    s.answer_next(
        StatusCode::OK,
        json!({"response_action": "update", "view": saving}),
    );
    let with_status = json!({"subject": {"value": "Call back"}, "due": {"date": "2030-01-31"},
                             "status": {"pick": "Not Started"}});
    let (_, answer) = s.interact(submit(with_status)).await;
    assert_eq!(answer["applied"], json!({"outcome": "updated"}));
    assert_eq!(
        s.last_seen().payload["view"]["state"]["values"]["status"]["pick"]["selected_option"]["value"],
        "Not Started"
    );
    let (status, refused) = s.interact(submit(json!({}))).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (409, Some("no_submit_button")),
        "\"Saving…\" has nothing to press"
    );
    let views = s.get("/_emulator/views").await;
    assert_eq!(views[0]["title"]["text"], "Saving…");
    assert_eq!(views[0]["errors"], Value::Null);
    assert_ne!(views[0]["hash"], opened["view"]["hash"]);

    // The app fills it in later, then the person submits the filled view: an empty 200 closes it.
    let done = json!({"type": "modal", "title": {"type": "plain_text", "text": "Saved"},
                      "close": {"type": "plain_text", "text": "Done"},
                      "submit": {"type": "plain_text", "text": "OK"},
                      "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Task logged"}}]});
    let updated = s
        .api("views.update", json!({"view_id": view_id, "view": done}))
        .await;
    assert_eq!(updated["ok"], true, "{updated}");
    s.answer_next(StatusCode::INTERNAL_SERVER_ERROR, Value::Null);
    let (_, answer) = s.interact(submit(json!({}))).await;
    assert_eq!(answer["applied"]["outcome"], "kept_open");
    let (_, answer) = s.interact(submit(json!({}))).await;
    assert_eq!(answer["applied"], json!({"outcome": "closed"}));
    assert_eq!(s.get("/_emulator/views").await[0]["closed"], true);
    let (status, answer) = s.interact(submit(json!({}))).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("view_closed"))
    );
    let gone = s
        .api("views.update", json!({"view_id": view_id, "view": done}))
        .await;
    assert_eq!(gone["error"], "not_found");
}

#[tokio::test]
async fn a_close_sends_view_closed_and_triggers_come_on_demand() {
    let s = Setup::start().await;
    let issued = s
        .http
        .post(format!("{}/_emulator/triggers", s.emulator))
        .json(&json!({"user": "U0SAM00001"}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let trigger = issued["trigger_id"].as_str().unwrap();
    let mut modal = task_modal();
    modal["notify_on_close"] = true.into();
    let opened = s
        .api("views.open", json!({"trigger_id": trigger, "view": modal}))
        .await;
    let view_id = opened["view"]["id"].as_str().unwrap().to_owned();
    let again = s
        .api(
            "views.open",
            json!({"trigger_id": trigger, "view": task_modal()}),
        )
        .await;
    assert_eq!(again["error"], "exchanged_trigger_id");

    let close = json!({"type": "view_closed", "user": "U0SAM00001", "view_id": view_id});
    let (status, answer) = s.interact(close.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let payload = s.last_seen().payload;
    assert_eq!(payload["type"], "view_closed");
    assert_eq!(payload["view"]["id"], view_id.as_str());
    assert_eq!(payload["view"]["notify_on_close"], true);
    assert_eq!(payload["is_cleared"], false);
    assert_eq!(s.get("/_emulator/views").await[0]["closed"], true);
    let (status, _) = s.interact(close).await;
    assert_eq!(status, 409);

    let unknown = s
        .http
        .post(format!("{}/_emulator/triggers", s.emulator))
        .json(&json!({"user": "U0GHOST001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // Ephemeral messages by API show up beside the ones answered through response_urls.
    let sent = s
        .api(
            "chat.postEphemeral",
            json!({"channel": "G0PRIVATE1", "user": "U0DANA0001", "text": "Only Dana"}),
        )
        .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let refused = s
        .api(
            "chat.postEphemeral",
            json!({"channel": "G0PRIVATE1", "user": "U0SAM00001", "text": "Sam is not in"}),
        )
        .await;
    assert_eq!(refused["error"], "user_not_in_channel");
    let shown = s.get("/_emulator/ephemerals?channel=G0PRIVATE1").await;
    assert_eq!(shown.as_array().map(Vec::len), Some(1));
    assert_eq!(shown[0]["via"], "chat.postEphemeral");
    assert_eq!(
        s.get("/_emulator/messages").await,
        json!([]),
        "never in history"
    );
    let info = s.api("users.info", json!({"user": "U0SAM00001"})).await;
    assert_eq!(info["user"]["profile"]["email"], "sam.engineer@example.com");
}
