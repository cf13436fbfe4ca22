//! [`SalesforceControl`] against a running Salesforce emulator: a person connects, sees only
//! what they may, searches, is held up, revoked and refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const CALLBACK: &str = "http://127.0.0.1:9/oauth/salesforce/callback";
const VERIFIER: &str = "a-verifier-of-enough-length-for-pkce-0123456789";
const CLIENT: &str = crate::DEFAULT_CLIENT_ID;

async fn seed(http: &reqwest::Client, base: &str) {
    let records = json!({
        "User": [{"Id": "005000000000011AAA", "Username": "ada@acme.example"}],
        "Opportunity": [
            {"Id": "006000000000001AAA", "Name": "Acme renewal"},
            {"Id": "006000000000002AAA", "Name": "Acme expansion"},
        ],
    });
    let status = http
        .post(format!("{base}/_emulator/records"))
        .json(&records)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
}

async fn get_with(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_person_connects_searches_and_is_revoked() {
    let sf = crate::spawn_salesforce(["--listen", "127.0.0.1:0"]).unwrap();
    let base = sf.url();
    let http = reqwest::Client::new();
    seed(&http, &base).await;
    let control = SalesforceControl::new(&base);

    let tokens = control
        .connect(CLIENT, CALLBACK, "ada@acme.example", VERIFIER)
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(
        tokens["id"]
            .as_str()
            .unwrap()
            .ends_with("/005000000000011AAA")
    );

    control
        .set_visibility("ada@acme.example", &["006000000000002AAA"], &[])
        .await
        .unwrap();
    let query = format!("{base}/services/data/v62.0/query?q=SELECT+Id+FROM+Opportunity");
    let (status, body) = get_with(&http, &query, &access).await;
    assert_eq!(
        (status, body["totalSize"].clone()),
        (200, json!(1)),
        "{body}"
    );
    let search = format!(
        "{base}/services/data/v62.0/search?q=FIND+%7Bacme%7D+RETURNING+Opportunity(Id,Name)"
    );
    let (status, found) = get_with(&http, &search, &access).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["searchRecords"][0]["Name"], "Acme renewal");
    let malformed = format!("{base}/services/data/v62.0/search?q=FIND+%7Bacme-corp%7D");
    let (status, refused) = get_with(&http, &malformed, &access).await;
    assert_eq!(
        (status, refused[0]["errorCode"].clone()),
        (400, json!("MALFORMED_SEARCH"))
    );
    let searches = control.searches().await.unwrap();
    assert_eq!(searches.len(), 2);
    assert_eq!(searches[0]["username"], "ada@acme.example");
    assert_eq!(searches[1]["error"], "MALFORMED_SEARCH");

    // A slow token endpoint and a slow search.
    control
        .hold(Some("POST"), "/services/oauth2/token", Some(300))
        .await
        .unwrap();
    control.hold(None, "/search", Some(300)).await.unwrap();
    let started = Instant::now();
    let refreshed: Value = http
        .post(format!("{base}/services/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&client_id={CLIENT}&refresh_token={refresh}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = get_with(&http, &search, &access).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    control.release().await.unwrap();
    let second = refreshed["access_token"].as_str().unwrap().to_owned();

    // Revoking the access token, then the person's tokens from the control API.
    let revoked = http
        .post(format!("{base}/services/oauth2/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(revoked.text().await.unwrap(), "");
    let (status, _) = get_with(&http, &query, &access).await;
    assert_eq!(status, 401);
    let (status, _) = get_with(&http, &query, &second).await;
    assert_eq!(status, 200);
    let ended = control
        .end_tokens("ada@acme.example", TokenAction::Revoke)
        .await
        .unwrap();
    assert_eq!(ended["refresh_tokens_revoked"], 1);
    let (status, _) = get_with(&http, &query, &second).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn authorize_answers_denials_and_refusals() {
    let sf =
        crate::spawn_salesforce(["--listen", "127.0.0.1:0", "--client-secret", "s3cret"]).unwrap();
    let control = SalesforceControl::new(sf.url());
    seed(&reqwest::Client::new(), &sf.url()).await;
    let params = |login: &'static str, decision: &'static str| {
        vec![
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("redirect_uri", CALLBACK),
            ("state", "st"),
            ("login_as", login),
            ("decision", decision),
        ]
    };
    let denied = control
        .authorize(&params("ada@acme.example", "deny"))
        .await
        .unwrap();
    assert_eq!(
        (denied.status, denied.error(), denied.state()),
        (302, Some("access_denied"), Some("st"))
    );
    let page = control.authorize(&params("", "approve")).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("login_as"), "{}", page.body);
    let mut bad = params("ada@acme.example", "approve");
    bad[1] = ("client_id", "someone-else");
    let refused = control.authorize(&bad).await.unwrap();
    assert_eq!((refused.status, refused.location), (400, None));

    control
        .set_login(Some("ada@acme.example"), true)
        .await
        .unwrap();
    let approved = control.authorize(&params("", "approve")).await.unwrap();
    assert!(approved.code().is_some(), "{approved:?}");
    let state = control.oauth_state().await.unwrap();
    assert_eq!(state["client_secret_set"], true);
    assert_eq!(state["authorizations"].as_array().map(Vec::len), Some(4));
    let err = control.set_web_app(json!({"nope": 1})).await.unwrap_err();
    assert!(
        matches!(err, ControlError::Refused { status: 400, .. }),
        "{err}"
    );
}
