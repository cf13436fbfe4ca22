//! People over the memory store and a configuration read from a file: choices, admins, links,
//! and the start and callback pages up to the point where Salesforce would answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;

use super::oauth::CallbackQuery;
use super::page::Page;
use super::*;
use crate::config::Env;
use crate::store::MemoryStore;

struct MapEnv(HashMap<&'static str, String>);
impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

const PROD: &str = "00D5g000004ABCdEAO";
const SANDBOX: &str = "00D5g000009XYZaEAO";
const NO_API: &str = "00D5g000001EcDsEAK";

fn id(s: &str) -> SalesforceId {
    SalesforceId::parse(s).unwrap()
}

fn ada() -> Person {
    Person::new("T0ACME001", "U0ADA0001")
}

/// Three orgs, two of them with API access (refresh-token flow), configured by `top` and
/// `slack` (lines for the top level and `[slack]`).
fn people(top: &str, slack: &str, key: bool) -> (People, Arc<MemoryStore>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sfrelay.toml");
    let text = format!(
        r#"{top}
[slack]
{slack}

[[orgs]]
id = "{PROD}"
name = "production"
[orgs.salesforce]
login_url = "http://127.0.0.1:9"
client_id = "3MVG9prod"
refresh_token_env = "PROD_RT"

[[orgs]]
id = "{SANDBOX}"
name = "sandbox"
[orgs.salesforce]
login_url = "http://127.0.0.1:9"
client_id = "3MVG9sandbox"
oauth_client_id = "3MVG9web"
oauth_client_secret_env = "WEB_SECRET"
refresh_token_env = "SANDBOX_RT"

[[orgs]]
id = "{NO_API}"
name = "no-api"
"#
    );
    std::fs::write(&path, text).unwrap();
    let mut vars = HashMap::from([
        ("PROD_RT", "5Aep-prod".to_string()),
        ("SANDBOX_RT", "5Aep-sandbox".to_string()),
        ("WEB_SECRET", "web-secret".to_string()),
    ]);
    if key {
        vars.insert(
            "SFRELAY_ENCRYPTION_KEY",
            base64::engine::general_purpose::STANDARD.encode((1u8..=32).collect::<Vec<_>>()),
        );
    }
    let config = Config::load(Some(&path), &MapEnv(vars)).unwrap();
    let store = Arc::new(MemoryStore::default());
    (People::new(&config, store.clone()).unwrap(), store)
}

fn connectable() -> (People, Arc<MemoryStore>) {
    people(
        "public_url = \"https://sfrelay.example.com/\"\n[people]\nstate_ttl_secs = 60",
        "admins = [\"U0ADMIN01\"]",
        true,
    )
}

#[tokio::test]
async fn the_card_then_preferred_then_default_then_the_only_org() {
    let (people, _) = people(
        "",
        "default_org = \"sandbox\"\nadmins = [\"U0ADMIN01\"]",
        false,
    );
    let card = id(NO_API);
    assert_eq!(
        people.choose_org(&ada(), Some(&card)).await.unwrap(),
        OrgChoice::One(card.clone())
    );
    // Nothing chosen: the configured Default.
    assert_eq!(
        people.choose_org(&ada(), None).await.unwrap(),
        OrgChoice::One(id(SANDBOX))
    );
    // An admin's choice from Home wins over the configured one.
    let admin = Person::new("T0ACME001", "U0ADMIN01");
    assert!(people.is_admin(&admin) && !people.is_admin(&ada()));
    assert!(matches!(
        people.set_default_org(&ada(), &id(PROD)).await,
        Err(PeopleError::NotAdmin)
    ));
    people.set_default_org(&admin, &id(PROD)).await.unwrap();
    assert_eq!(people.default_org().await.unwrap(), Some(id(PROD)));
    // The person's own choice wins over both.
    people.set_preferred(&ada(), &id(SANDBOX)).await.unwrap();
    assert_eq!(people.preferred(&ada()).await.unwrap(), Some(id(SANDBOX)));
    assert_eq!(
        people.choose_org(&ada(), None).await.unwrap(),
        OrgChoice::One(id(SANDBOX))
    );
    // Another person has no preference: the Default.
    let bob = Person::new("T0ACME001", "U0BOB0001");
    assert_eq!(
        people.choose_org(&bob, None).await.unwrap(),
        OrgChoice::One(id(PROD))
    );
    // Orgs sfrelay cannot call, or does not know, cannot be preferred.
    assert!(matches!(
        people.set_preferred(&ada(), &id(NO_API)).await,
        Err(PeopleError::NoApiAccess(_))
    ));
    assert!(matches!(
        people.set_preferred(&ada(), &id("00D000000000009")).await,
        Err(PeopleError::UnknownOrg(_))
    ));
    assert!(matches!(
        people.preferred(&Person::new("T0ACME001", "U0:ADA")).await,
        Err(PeopleError::InvalidPerson)
    ));
}

#[tokio::test]
async fn with_nothing_chosen_two_callable_orgs_are_ambiguous() {
    let (people, _) = people("", "", false);
    assert_eq!(people.default_org().await.unwrap(), None);
    assert_eq!(
        people.choose_org(&ada(), None).await.unwrap(),
        OrgChoice::Ambiguous(vec![id(PROD), id(SANDBOX)])
    );
    assert_eq!(
        people.status(&ada(), &id(PROD)).await.unwrap(),
        ConnectionStatus::NotConnected
    );
    assert_eq!(people.actor(&ada(), &id(PROD)).await.unwrap(), None);
}

#[tokio::test]
async fn links_need_a_public_url_a_key_and_api_access() {
    let (no_url, _) = people("", "", true);
    assert!(matches!(
        no_url.connect_link(&ada(), &id(PROD)).await,
        Err(PeopleError::NoPublicUrl)
    ));
    let (no_key, _) = people("public_url = \"https://sfrelay.example.com\"", "", false);
    assert!(matches!(
        no_key.connect_link(&ada(), &id(PROD)).await,
        Err(PeopleError::NoEncryptionKey)
    ));
    assert!(!no_key.connections_enabled());
    let (people, _) = connectable();
    assert!(matches!(
        people.connect_link(&ada(), &id(NO_API)).await,
        Err(PeopleError::NoApiAccess(_))
    ));
    let message = PeopleError::NoPublicUrl.to_string();
    assert!(message.contains("public_url"), "{message}");
}

fn state_of(link: &str) -> String {
    let url = reqwest::Url::parse(link).unwrap();
    assert_eq!(url.path(), "/oauth/salesforce/start");
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

fn cookie_of(set_cookie: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let pair = set_cookie.split(';').next().unwrap();
    headers.insert(header::COOKIE, HeaderValue::from_str(pair).unwrap());
    headers
}

fn callback(state: &str, code: &str) -> CallbackQuery {
    CallbackQuery {
        code: Some(code.into()),
        state: Some(state.into()),
        error: None,
        error_description: None,
    }
}

#[tokio::test]
async fn a_link_starts_one_sign_in_in_one_browser() {
    let (people, store) = connectable();
    let link = people.connect_link(&ada(), &id(SANDBOX)).await.unwrap();
    assert!(link.starts_with("https://sfrelay.example.com/oauth/salesforce/start?state=v1."));
    let state = state_of(&link);
    // The verifier is kept sealed; only its challenge leaves.
    let dump = store.dump();
    assert!(dump.iter().all(|(_, v)| v.starts_with("v1.")), "{dump:?}");

    let (location, cookie) = people.start(Some(&state), &HeaderMap::new()).await.unwrap();
    let authorize = reqwest::Url::parse(&location).unwrap();
    assert_eq!(authorize.path(), "/services/oauth2/authorize");
    let query: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "3MVG9web");
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(query["scope"], "api refresh_token");
    assert_eq!(query["state"], state);
    assert_eq!(
        query["redirect_uri"],
        "https://sfrelay.example.com/oauth/salesforce/callback"
    );
    assert!(!location.contains("verifier"));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/oauth/salesforce"), "{cookie}");

    // The same browser may open it again; another may not.
    let browser = cookie_of(&cookie);
    assert!(people.start(Some(&state), &browser).await.is_ok());
    let other = people
        .start(Some(&state), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(other.into_response().status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn forged_foreign_and_reused_callbacks_are_refused() {
    let (people, _) = connectable();
    let status = |page: Page| page.into_response().status();
    let link = people.connect_link(&ada(), &id(PROD)).await.unwrap();
    let state = state_of(&link);
    let (_, cookie) = people.start(Some(&state), &HeaderMap::new()).await.unwrap();
    let browser = cookie_of(&cookie);

    // Forged: one character of the signature changed.
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let page = people
        .callback(&callback(&forged, "c"), &browser)
        .await
        .unwrap_err();
    assert_eq!(status(page), StatusCode::BAD_REQUEST);
    assert!(
        people
            .start(Some(&forged), &HeaderMap::new())
            .await
            .is_err()
    );

    // Not the browser that started it.
    let page = people
        .callback(&callback(&state, "c"), &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(status(page), StatusCode::FORBIDDEN);

    // This browser started Ada's sign-in; Eve's callback is refused here.
    let eve = Person::new("T0ACME001", "U0EVE0001");
    let eve_state = state_of(&people.connect_link(&eve, &id(PROD)).await.unwrap());
    let page = people
        .callback(&callback(&eve_state, "eves-code"), &browser)
        .await
        .unwrap_err();
    assert_eq!(status(page), StatusCode::FORBIDDEN);
    let text = String::from_utf8(
        axum::body::to_bytes(
            page_body(people.callback(&callback(&eve_state, "x"), &browser).await),
            4096,
        )
        .await
        .unwrap()
        .to_vec(),
    )
    .unwrap();
    assert!(text.contains("another Slack user"), "{text}");

    // The right browser: the code goes to Salesforce (unreachable here: 502), and the state
    // is spent whatever the outcome.
    let page = people
        .callback(&callback(&state, "c"), &browser)
        .await
        .unwrap_err();
    assert_eq!(status(page), StatusCode::BAD_GATEWAY);
    let page = people
        .callback(&callback(&state, "c"), &browser)
        .await
        .unwrap_err();
    assert_eq!(status(page), StatusCode::CONFLICT);
    let reopened = people.start(Some(&state), &browser).await.unwrap_err();
    assert_eq!(status(reopened), StatusCode::CONFLICT);

    // Declined at Salesforce: told so, nothing spent.
    let declined = CallbackQuery {
        code: None,
        state: Some(eve_state.clone()),
        error: Some("access_denied".into()),
        error_description: Some("end-user denied authorization".into()),
    };
    let page = people.callback(&declined, &browser).await.unwrap_err();
    assert_eq!(status(page), StatusCode::FORBIDDEN);
}

fn page_body(result: Result<Page, Page>) -> axum::body::Body {
    match result {
        Ok(page) | Err(page) => page.into_response().into_body(),
    }
}

#[tokio::test]
async fn connections_are_sealed_and_read_back() {
    let (people, store) = connectable();
    let org = id(PROD);
    let stored = tokens::Stored {
        username: "ada@acme.example".into(),
        user_id: "005000000000011AAA".into(),
        name: "Ada Lovelace".into(),
        instance_url: "https://acme.my.salesforce.com".into(),
        access_token: Some("00D!access-secret".into()),
        refresh_token: Some("5Aep-refresh-secret".into()),
        expired: false,
        connected_ms: 0,
    };
    people.save(&ada(), &org, &stored).await.unwrap();
    for (_, value) in store.dump() {
        assert!(
            !value.contains("secret") && !value.contains("ada@"),
            "{value}"
        );
    }
    assert_eq!(
        people.status(&ada(), &org).await.unwrap(),
        ConnectionStatus::Connected {
            username: "ada@acme.example".into()
        }
    );
    let (actor, user) = people.acting(&ada(), &org).await.unwrap().unwrap();
    assert_eq!(actor.username(), Some("ada@acme.example"));
    assert_eq!(user.name, "Ada Lovelace");
    // Copied under another person's key, it does not open.
    let key = Key::person_connection("T0ACME001", "U0ADA0001", &org);
    let sealed = store.get(key.as_str()).await.unwrap().unwrap();
    let bob = Person::new("T0ACME001", "U0BOB0001");
    let bobs = Key::person_connection(&bob.team, &bob.user, &org);
    store.set(bobs.as_str(), &sealed, None).await.unwrap();
    assert_eq!(
        people.status(&bob, &org).await.unwrap(),
        ConnectionStatus::Expired
    );
    // Expired: asked to reconnect.
    let mut expired = stored.clone();
    expired.expired = true;
    people.save(&ada(), &org, &expired).await.unwrap();
    assert_eq!(
        people.status(&ada(), &org).await.unwrap(),
        ConnectionStatus::Expired
    );
    assert!(matches!(
        people.actor(&ada(), &org).await,
        Err(PeopleError::Expired)
    ));
    // Disconnecting an expired connection needs no Salesforce.
    assert!(people.disconnect(&ada(), &org).await.unwrap());
    assert!(!people.disconnect(&ada(), &org).await.unwrap());
    assert_eq!(
        people.status(&ada(), &org).await.unwrap(),
        ConnectionStatus::NotConnected
    );
}
