//! Unit tests of the emulated org: tokens, sessions, faults, queries and single records.

use super::*;
use crate::salesforce::acting::DEFAULT_INTEGRATION_USERNAME as INTEGRATION;

const PUBLIC: &[u8] = include_bytes!("../../../../tests/fixtures/keys/rsa-public.pem");
const PRIVATE: &[u8] = include_bytes!("../../../../tests/fixtures/keys/rsa-private.pem");
const OWN: &str = "http://127.0.0.1:5555";

fn emulator(records: usize) -> Emulator {
    let mut store = Store::default();
    let opps: Vec<Value> = (0..records)
        .map(|i| {
            json!({
                "Id": format!("006{:012}", i),
                "Name": format!("Opp {i:03}"),
                "Amount": i * 10,
                "AccountId": "001000000000001",
            })
        })
        .collect();
    store
        .upsert_all(
            json!({
                "Opportunity": opps,
                "Account": [{"Id": "001000000000001", "Name": "Acme"}],
            }),
            &sf_now(),
        )
        .unwrap();
    Emulator::new(
        "client".into(),
        vec![DecodingKey::from_rsa_pem(PUBLIC).unwrap()],
        Some("refresh".into()),
        false,
        Duration::from_secs(60),
        2,
        100,
        store,
    )
}

fn sign(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE).unwrap(),
    )
    .unwrap()
}

fn jwt_form(claims: Value) -> HashMap<String, String> {
    HashMap::from([
        ("grant_type".to_string(), JWT_BEARER_GRANT.to_string()),
        ("assertion".to_string(), sign(claims)),
    ])
}

fn login(emu: &mut Emulator) -> String {
    let exp = Utc::now().timestamp() + 180;
    let reply = emu.token(
        &jwt_form(json!({"iss": "client", "sub": INTEGRATION, "aud": OWN, "exp": exp})),
        OWN,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    format!("Bearer {}", reply.body["access_token"].as_str().unwrap())
}

#[test]
fn jwt_bearer_checks_signature_issuer_audience_and_expiry() {
    let mut emu = emulator(1);
    let now = Utc::now().timestamp();
    let ok = login(&mut emu);
    assert!(ok.starts_with("Bearer 00D"));
    for (claims, error) in [
        (
            json!({"iss": "other", "sub": INTEGRATION, "aud": OWN, "exp": now + 60}),
            "invalid_client_id",
        ),
        (
            json!({"iss": "client", "sub": INTEGRATION, "aud": "https://evil", "exp": now + 60}),
            "invalid_grant",
        ),
        (
            json!({"iss": "client", "sub": INTEGRATION, "aud": OWN, "exp": now - 10}),
            "invalid_grant",
        ),
        (
            json!({"iss": "client", "sub": INTEGRATION, "aud": OWN, "exp": now + 3600}),
            "invalid_grant",
        ),
        (
            json!({"iss": "client", "aud": OWN, "exp": now + 60}),
            "invalid_grant",
        ),
    ] {
        let reply = emu.token(&jwt_form(claims.clone()), OWN);
        assert_eq!(reply.status, 400, "{claims}");
        assert_eq!(reply.body["error"], error, "{claims}: {}", reply.body);
    }
    let reply = emu.token(
        &jwt_form(json!({"iss": "client", "sub": INTEGRATION, "aud": "https://test.salesforce.com/", "exp": now + 60})),
        OWN,
    );
    assert_eq!(reply.status, 200);
    // A token signed by another key.
    let mut form =
        jwt_form(json!({"iss": "client", "sub": INTEGRATION, "aud": OWN, "exp": now + 60}));
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &json!({"iss": "client", "sub": INTEGRATION, "aud": OWN, "exp": now + 60}),
        &jsonwebtoken::EncodingKey::from_secret(PUBLIC),
    )
    .unwrap();
    form.insert("assertion".into(), forged);
    assert_eq!(emu.token(&form, OWN).body["error"], "invalid_grant");
    assert_eq!(emu.stats.tokens_issued, 2);
}

#[test]
fn refresh_tokens_are_checked_and_rotated() {
    let mut emu = emulator(1);
    let form = |rt: &str, client: &str| {
        HashMap::from([
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), rt.to_string()),
            ("client_id".to_string(), client.to_string()),
        ])
    };
    assert_eq!(emu.token(&form("refresh", "client"), OWN).status, 200);
    assert_eq!(
        emu.token(&form("wrong", "client"), OWN).body["error"],
        "invalid_grant"
    );
    assert_eq!(
        emu.token(&form("refresh", "x"), OWN).body["error"],
        "invalid_client_id"
    );
    emu.rotate_refresh_tokens = true;
    let reply = emu.token(&form("refresh", "client"), OWN);
    let next = reply.body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(emu.token(&form("refresh", "client"), OWN).status, 400);
    assert_eq!(emu.token(&form(&next, "client"), OWN).status, 200);
    assert_eq!(
        emu.token(&form(&next, "client"), OWN).status,
        400,
        "rotated again"
    );
    let mut bad = form("x", "client");
    bad.insert("grant_type".into(), "password".into());
    assert_eq!(emu.token(&bad, OWN).body["error"], "unsupported_grant_type");
}

#[test]
fn sessions_expire_and_faults_fire() {
    let mut emu = emulator(3);
    let auth = login(&mut emu);
    let q = "SELECT Id FROM Opportunity";
    assert_eq!(emu.api(None, |e| e.query("v62.0", Some(q))).status, 401);
    assert_eq!(
        emu.api(Some(&auth), |e| e.query("v62.0", Some(q))).status,
        200
    );
    emu.expire_tokens();
    let reply = emu.api(Some(&auth), |e| e.query("v62.0", Some(q)));
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body[0]["errorCode"], "INVALID_SESSION_ID");
    let auth = login(&mut emu);
    emu.faults = Faults {
        fail_next: 1,
        status: 400,
        error_code: "UNABLE_TO_LOCK_ROW".into(),
        ..Faults::default()
    };
    let reply = emu.api(Some(&auth), |e| e.query("v62.0", Some(q)));
    assert_eq!(
        (reply.status, reply.body[0]["errorCode"].clone()),
        (400, json!("UNABLE_TO_LOCK_ROW"))
    );
    assert_eq!(
        emu.api(Some(&auth), |e| e.query("v62.0", Some(q))).status,
        200
    );
    assert_eq!(emu.api_used, 3);
    emu.api_limit = 3;
    let reply = emu.api(Some(&auth), |e| e.query("v62.0", Some(q)));
    assert_eq!(
        (reply.status, reply.body[0]["errorCode"].clone()),
        (403, json!("REQUEST_LIMIT_EXCEEDED"))
    );
    assert_eq!(emu.limit_info(), "api-usage=3/3");
}

#[test]
fn queries_filter_order_page_and_project() {
    let mut emu = emulator(5);
    let reply = emu.query(
        "v62.0",
        Some("SELECT Id, Name, Account.Name FROM Opportunity WHERE Amount >= 10 ORDER BY Amount DESC"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["totalSize"], 4);
    assert_eq!(reply.body["done"], false);
    let records = reply.body["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Name"], "Opp 004");
    assert_eq!(records[0]["Account"]["Name"], "Acme");
    assert_eq!(records[0]["Account"]["attributes"]["type"], "Account");
    assert_eq!(records[0]["attributes"]["type"], "Opportunity");
    assert!(records[0].get("Amount").is_none());
    let next = reply.body["nextRecordsUrl"].as_str().unwrap();
    let cursor = next.rsplit('/').next().unwrap();
    let page2 = emu.query_more("v62.0", cursor);
    assert_eq!(page2.body["done"], true, "{}", page2.body);
    assert_eq!(page2.body["records"][1]["Name"], "Opp 001");
    assert!(page2.body.get("nextRecordsUrl").is_none());
    assert_eq!(
        emu.query_more("v62.0", "nope-2").body[0]["errorCode"],
        "INVALID_QUERY_LOCATOR"
    );

    let injected = emu.query(
        "v62.0",
        Some(r"SELECT Id FROM Opportunity WHERE Name = 'x\' OR Name != \''"),
    );
    assert_eq!(
        (injected.status, injected.body["totalSize"].clone()),
        (200, json!(0))
    );
    let broken = emu.query(
        "v62.0",
        Some("SELECT Id FROM Opportunity WHERE Name = 'x' OR Name != ''"),
    );
    assert_eq!(
        (broken.status, broken.body[0]["errorCode"].clone()),
        (400, json!("MALFORMED_QUERY"))
    );
    assert_eq!(
        emu.query("v62.0", Some("SELECT Id FROM Nope")).body[0]["errorCode"],
        "INVALID_TYPE"
    );
    assert_eq!(
        emu.query("v62.0", Some("SELECT Nope FROM Opportunity"))
            .body[0]["errorCode"],
        "INVALID_FIELD"
    );
    let limited = emu.query("v62.0", Some("SELECT Id FROM Opportunity WHERE Id IN ('006000000000001', '006000000000003AAA') LIMIT 1"));
    assert_eq!(limited.body["totalSize"], 1);
    let recent = emu.query(
        "v62.0",
        Some("SELECT Id FROM Opportunity WHERE LastModifiedDate >= LAST_N_MINUTES:5"),
    );
    assert_eq!(recent.body["totalSize"], 5, "{}", recent.body);
}

#[test]
fn single_records_by_id() {
    let mut emu = emulator(2);
    let reply = emu.sobject(
        "v62.0",
        "opportunity",
        "006000000000001AAA",
        Some("Name,Amount"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["Name"], "Opp 001");
    assert_eq!(reply.body["Amount"], 10);
    assert!(reply.body.get("AccountId").is_none());
    let all = emu.sobject("v62.0", "Opportunity", "006000000000001", None);
    assert_eq!(all.body["AccountId"], "001000000000001");
    assert_eq!(
        emu.sobject("v62.0", "Opportunity", "006000000000009", None)
            .status,
        404
    );
    assert_eq!(
        emu.sobject("v62.0", "Nope", "006000000000001", None).status,
        404
    );
    assert_eq!(
        emu.sobject("v62.0", "Opportunity", "006000000000001", Some("Nope"))
            .status,
        400
    );
    let added =
        emu.add_records(json!({"Opportunity": [{"Id": "006000000000001", "Name": "Renamed"}]}));
    assert_eq!(added.body["upserted"], 1);
    assert_eq!(
        emu.sobject("v62.0", "Opportunity", "006000000000001", Some("Name"))
            .body["Name"],
        "Renamed"
    );
    assert_eq!(emu.add_records(json!({"Opportunity": [{}]})).status, 400);
}
