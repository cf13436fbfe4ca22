//! Unit tests of the web-server flow: authorize, the code grant with PKCE, people's refresh
//! tokens, revocation and the control calls.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::salesforce::emulator::sf_now;
use crate::salesforce::store::Store;

const ADA: &str = "005000000000011AAA";
const CALLBACK: &str = "http://127.0.0.1:8080/oauth/salesforce/callback";
const OWN: &str = "http://127.0.0.1:5555";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn emulator() -> Emulator {
    let mut store = Store::default();
    store
        .upsert_all(
            json!({"User": [
                {"Id": ADA, "Username": "ada@acme.example"},
                {"Id": "005000000000013AAA", "Username": "old@acme.example", "IsActive": false},
            ]}),
            &sf_now(),
        )
        .unwrap();
    Emulator::new(
        "client".into(),
        vec![],
        Some("integration-refresh".into()),
        false,
        Duration::from_secs(60),
        10,
        100,
        store,
    )
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn authorize_params(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let challenge = s256(VERIFIER);
    let mut params = map(&[
        ("response_type", "code"),
        ("client_id", "client"),
        ("redirect_uri", CALLBACK),
        ("state", "signed-state"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("scope", "api refresh_token"),
        ("login_as", "Ada@acme.example"),
    ]);
    for (k, v) in extra {
        params.insert((*k).to_owned(), (*v).to_owned());
    }
    params
}

/// The query parameters of the redirect.
fn redirected(answer: Authorize) -> HashMap<String, String> {
    let Authorize::Redirect(location) = answer else {
        panic!("{answer:?}")
    };
    assert!(location.starts_with(CALLBACK), "{location}");
    Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn code_form(code: &str, verifier: &str) -> HashMap<String, String> {
    map(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", "client"),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ])
}

fn connect(emu: &mut Emulator) -> Value {
    let query = redirected(emu.authorize(&authorize_params(&[])));
    let reply = emu.token(&code_form(&query["code"], VERIFIER), OWN);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[test]
fn pkce_matches_the_rfc_example() {
    assert_eq!(
        s256(VERIFIER),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn a_person_logs_in_approves_and_gets_their_own_tokens() {
    let mut emu = emulator();
    let query = redirected(emu.authorize(&authorize_params(&[])));
    assert_eq!(query["state"], "signed-state");
    assert!(query["code"].starts_with("aPrx"));
    let reply = emu.token(&code_form(&query["code"], VERIFIER), OWN);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = &reply.body;
    assert_eq!(body["instance_url"], OWN);
    assert_eq!(body["id"], format!("{OWN}/id/00D000000000001EAA/{ADA}"));
    assert_eq!(body["scope"], "api refresh_token");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("5Aep"));
    let issued_at = body["issued_at"].as_str().unwrap();
    assert_eq!(
        body["signature"],
        signature("client", body["id"].as_str().unwrap(), issued_at)
    );
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(emu.tokens[token].caller.user_id, ADA);

    // The code works once.
    let again = emu.token(&code_form(&query["code"], VERIFIER), OWN);
    assert_eq!(
        (again.status, again.body["error"].clone()),
        (400, json!("invalid_grant"))
    );

    // The refresh token buys more tokens as the same person.
    let refresh = body["refresh_token"].as_str().unwrap();
    let form = map(&[
        ("grant_type", "refresh_token"),
        ("client_id", "client"),
        ("refresh_token", refresh),
    ]);
    let refreshed = emu.token(&form, OWN);
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert!(refreshed.body.get("refresh_token").is_none());
    let token = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(emu.tokens[token].caller.username, "ada@acme.example");
    assert_eq!(emu.web_state()["people"][0]["access_tokens"], 2);
}

#[test]
fn identity_urls_name_the_configured_org() {
    let mut emu = emulator();
    emu.org_id = "00D5g000007QRSt".into();
    let body = connect(&mut emu);
    assert_eq!(body["id"], format!("{OWN}/id/00D5g000007QRStEAO/{ADA}"));
}

#[test]
fn the_code_grant_checks_client_redirect_verifier_and_age() {
    let mut emu = emulator();
    emu.web.client_secret = Some("s3cret".into());
    let code =
        |emu: &mut Emulator| redirected(emu.authorize(&authorize_params(&[])))["code"].clone();
    for (change, error) in [
        (("code_verifier", "wrong"), "invalid_grant"),
        (("client_id", "other"), "invalid_client_id"),
        (("client_secret", "nope"), "invalid_client"),
        (
            ("redirect_uri", "http://127.0.0.1:8080/other"),
            "redirect_uri_mismatch",
        ),
        (("code", "aPrxunknown"), "invalid_grant"),
    ] {
        let mut form = code_form(&code(&mut emu), VERIFIER);
        form.insert(change.0.to_owned(), change.1.to_owned());
        let reply = emu.token(&form, OWN);
        assert_eq!(reply.body["error"], error, "{change:?}: {}", reply.body);
    }
    let mut form = code_form(&code(&mut emu), VERIFIER);
    form.remove("code_verifier");
    assert_eq!(
        emu.token(&form, OWN).body["error_description"],
        "invalid code verifier"
    );
    let mut right = code_form(&code(&mut emu), VERIFIER);
    right.insert("client_secret".into(), "s3cret".into());
    assert_eq!(emu.token(&right, OWN).status, 200);

    emu.web.code_ttl = Duration::ZERO;
    let stale_code = code(&mut emu);
    let stale = emu.token(&code_form(&stale_code, VERIFIER), OWN);
    assert_eq!(
        stale.body["error_description"],
        "expired authorization code"
    );

    // Without a challenge, no verifier is asked for; without refresh scope, no refresh token.
    emu.web.code_ttl = Duration::from_secs(60);
    let plain = authorize_params(&[("code_challenge", ""), ("scope", "api")]);
    let query = redirected(emu.authorize(&plain));
    let mut form = code_form(&query["code"], "");
    form.remove("code_verifier");
    let reply = emu.token(&form, OWN);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.get("refresh_token").is_none());
}

#[test]
fn authorize_refuses_or_redirects_errors_like_salesforce() {
    let mut emu = emulator();
    for (extra, error) in [
        (vec![("client_id", "other")], "invalid_client_id"),
        (
            vec![("redirect_uri", "https://evil.example/cb")],
            "redirect_uri_mismatch",
        ),
        (vec![("login_as", "nobody@acme.example")], "login_failed"),
        (vec![("login_as", "old@acme.example")], "login_failed"),
    ] {
        match emu.authorize(&authorize_params(&extra)) {
            Authorize::Refused(reply) => {
                assert_eq!(
                    (reply.status, reply.body["error"].clone()),
                    (400, json!(error))
                );
            }
            other => panic!("{extra:?}: {other:?}"),
        }
    }
    for (extra, error) in [
        (vec![("decision", "deny")], "access_denied"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
    ] {
        let query = redirected(emu.authorize(&authorize_params(&extra)));
        assert_eq!(query["error"], error, "{extra:?}");
        assert_eq!(query["state"], "signed-state");
        assert!(!query.contains_key("code"));
    }
    let mut nobody = authorize_params(&[]);
    nobody.remove("login_as");
    assert_eq!(emu.authorize(&nobody), Authorize::LoginPage);
    emu.set_login(&json!({"login_as": ADA})).unwrap();
    assert!(redirected(emu.authorize(&nobody)).contains_key("code"));
    emu.set_login(&json!({"login_as": ADA, "decision": "deny"}))
        .unwrap();
    assert_eq!(redirected(emu.authorize(&nobody))["error"], "access_denied");
    emu.set_login(&json!({"login_as": null})).unwrap();
    assert_eq!(emu.authorize(&nobody), Authorize::LoginPage);

    emu.set_web_app(&json!({"callback_urls": ["https://sfrelay.example/cb"]}))
        .unwrap();
    assert!(matches!(
        emu.authorize(&authorize_params(&[])),
        Authorize::Refused(_)
    ));
    let listed = authorize_params(&[("redirect_uri", "https://sfrelay.example/cb")]);
    assert!(matches!(emu.authorize(&listed), Authorize::Redirect(_)));
    let outcomes: Vec<Value> = emu.web_state()["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].clone())
        .collect();
    assert_eq!(outcomes[0], "invalid_client_id");
    assert_eq!(outcomes.last(), Some(&json!("code")));
    assert!(emu.set_web_app(&json!({"bogus": 1})).is_err());
    assert!(
        emu.set_login(&json!({"login_as": "x", "decision": "maybe"}))
            .is_err()
    );
}

#[test]
fn revoking_ends_tokens_as_salesforce_does() {
    let mut emu = emulator();
    let first = connect(&mut emu);
    let access = first["access_token"].as_str().unwrap().to_owned();
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let form = map(&[
        ("grant_type", "refresh_token"),
        ("client_id", "client"),
        ("refresh_token", &refresh),
    ]);
    let second = emu.token(&form, OWN).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(emu.revoke(Some(&access)).status, 200);
    assert!(!emu.tokens.contains_key(&access) && emu.tokens.contains_key(&second));
    assert_eq!(emu.revoke(Some(&refresh)).status, 200);
    assert!(
        !emu.tokens.contains_key(&second),
        "its access tokens go too"
    );
    assert_eq!(emu.token(&form, OWN).body["error"], "invalid_grant");
    assert_eq!(emu.revoke(Some(&refresh)).body["error"], "invalid_token");
    assert_eq!(emu.revoke(None).body["error"], "unsupported_token_type");

    // Ending a person's tokens from the control API.
    let third = connect(&mut emu);
    let ended = emu
        .end_person_tokens(&json!({"user": "ada@acme.example", "action": "expire"}))
        .unwrap();
    assert_eq!(
        ended,
        json!({"access_tokens_ended": 1, "refresh_tokens_revoked": 0})
    );
    let form = map(&[
        ("grant_type", "refresh_token"),
        ("client_id", "client"),
        ("refresh_token", third["refresh_token"].as_str().unwrap()),
    ]);
    assert_eq!(
        emu.token(&form, OWN).status,
        200,
        "the refresh token still works"
    );
    let ended = emu
        .end_person_tokens(&json!({"user": ADA, "action": "revoke"}))
        .unwrap();
    assert_eq!(ended["refresh_tokens_revoked"], 1);
    assert_eq!(emu.token(&form, OWN).status, 400);
    assert!(
        emu.end_person_tokens(&json!({"user": ADA, "action": "x"}))
            .is_err()
    );

    // The integration user's refresh token can be revoked too.
    let form = map(&[
        ("grant_type", "refresh_token"),
        ("client_id", "client"),
        ("refresh_token", "integration-refresh"),
    ]);
    let integration = emu.token(&form, OWN).body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(emu.revoke(Some("integration-refresh")).status, 200);
    assert!(!emu.tokens.contains_key(&integration));
    assert_eq!(emu.token(&form, OWN).status, 400);
}

#[test]
fn rotation_replaces_a_persons_refresh_token() {
    let mut emu = emulator();
    emu.rotate_refresh_tokens = true;
    let first = connect(&mut emu);
    let old = first["refresh_token"].as_str().unwrap();
    let form = |token: &str| {
        map(&[
            ("grant_type", "refresh_token"),
            ("client_id", "client"),
            ("refresh_token", token),
        ])
    };
    let rotated = emu.token(&form(old), OWN);
    let next = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, old);
    assert_eq!(emu.token(&form(old), OWN).status, 400);
    assert_eq!(emu.token(&form(&next), OWN).status, 200);
}
