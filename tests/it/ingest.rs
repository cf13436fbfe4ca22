//! `POST /v1/events` at the HTTP edge: validation, authentication, limits. Real binary, real
//! Redis.

use crate::support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{API_KEY, App, ORG, OTHER_API_KEY, OTHER_ORG, Options, Redis, fixture};

async fn app(redis: &Redis) -> App {
    App::spawn(Options {
        redis: Some(redis.url()),
        ..Options::default()
    })
    .await
}

async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

fn paths(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["path"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn closed_won(org: &str) -> Value {
    let mut body: Value =
        serde_json::from_slice(&fixture("flow-opportunity-closed-won.json")).unwrap();
    body["org_id"] = org.into();
    body["event_id"] = uuid::Uuid::now_v7().to_string().into();
    body
}

#[tokio::test]
async fn invalid_events_are_refused_naming_each_field_and_nothing_is_queued() {
    let redis = Redis::start();
    let app = app(&redis).await;

    let cases: &[(&str, &[&str])] = &[
        ("invalid/bad-record-id.json", &["/record/Id"]),
        ("invalid/missing-org.json", &["/org_id"]),
        (
            "invalid/wrong-types.json",
            &["/object", "/record", "/changed_fields"],
        ),
    ];
    for (file, expected) in cases {
        let body = problem(app.post_events(fixture(file)).await, 400).await;
        let mut got = paths(&body);
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "{file}: {body}");
    }

    // One bad event in a batch: the whole request is refused, errors carry the batch path.
    let mut batch: Value =
        serde_json::from_slice(&fixture("flow-batch-opportunities.json")).unwrap();
    batch["events"][1]["record"]["Id"] = "006Hs00000BkXyzIAA".into();
    batch["events"][1]["typo_field"] = true.into();
    let body = problem(app.post_events(batch.to_string()).await, 400).await;
    let mut got = paths(&body);
    got.sort();
    assert_eq!(got, vec!["/events/1/record/Id", "/events/1/typo_field"]);

    let too_many = json!({"events": vec![closed_won(ORG); 201]});
    let body = problem(app.post_events(too_many.to_string()).await, 400).await;
    assert_eq!(paths(&body), vec!["/events"]);

    let body = problem(app.post_events("{not json").await, 400).await;
    assert_eq!(paths(&body), vec![""]);

    assert_eq!(
        app.metric("sfrelay_queue_depth{state=\"ready\"}").await,
        Some(0.0)
    );
    let accepted = app
        .metric("sfrelay_events_received_total{outcome=\"accepted\"}")
        .await;
    assert!(accepted.is_none() || accepted == Some(0.0), "{accepted:?}");
}

#[tokio::test]
async fn batch_is_accepted_whole_and_15_char_ids_are_normalised() {
    let redis = Redis::start();
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let response = app
        .post_events(fixture("flow-batch-opportunities.json"))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["duplicates"], 0);
    assert_eq!(body["ids"].as_array().map(Vec::len), Some(2));

    let mut short = closed_won(ORG);
    short["org_id"] = "00D5g000004ABCd".into();
    short["record"]["Id"] = "006Hs00000BkXyz".into();
    let response = app.post_events(short.to_string()).await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn limits_and_media_type() {
    let redis = Redis::start();
    let app = app(&redis).await;

    // 413: over the default 1 MiB.
    let mut big = closed_won(ORG);
    big["record"]["Description"] = "x".repeat(1_100_000).into();
    problem(app.post_events(big.to_string()).await, 413).await;

    // 415: not JSON.
    let response = app
        .http
        .post(format!("{}/v1/events", app.url))
        .header("X-Api-Key", API_KEY)
        .header("Content-Type", "text/plain")
        .body(closed_won(ORG).to_string())
        .send()
        .await
        .unwrap();
    problem(response, 415).await;
}

#[tokio::test]
async fn api_keys_bind_to_their_org() {
    let redis = Redis::start();
    let app = app(&redis).await;
    let body = closed_won(ORG).to_string();

    problem(app.post_events_with(body.clone(), &[]).await, 401).await;
    problem(
        app.post_events_with(body.clone(), &[("X-Api-Key", "wrong-key-wrong-key-wrong")])
            .await,
        401,
    )
    .await;
    // The other org's key, in that org's own header, for this org's event: 403.
    let forbidden = problem(
        app.post_events_with(body.clone(), &[("X-Sandbox-Key", OTHER_API_KEY)])
            .await,
        403,
    )
    .await;
    assert_eq!(paths(&forbidden), vec!["/org_id"]);
    // An org nobody configured: 403.
    let unknown = problem(
        app.post_events(closed_won("00D000000000001EAA").to_string())
            .await,
        403,
    )
    .await;
    assert!(
        unknown["detail"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{unknown}"
    );
    // The other org's key with its own events is fine.
    let ok = app
        .post_events_with(
            closed_won(OTHER_ORG).to_string(),
            &[("X-Sandbox-Key", OTHER_API_KEY)],
        )
        .await;
    assert_eq!(ok.status(), 202);
    assert_eq!(app.post_events(body).await.status(), 202);
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(support::JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

async fn post_bearer(app: &App, body: &Value, token: &str) -> reqwest::Response {
    let auth = format!("Bearer {token}");
    app.post_events_with(body.to_string(), &[("Authorization", &auth)])
        .await
}

#[tokio::test]
async fn jwt_algorithms_are_pinned_and_claims_checked() {
    let redis = Redis::start();
    let app = app(&redis).await;
    let body = closed_won(ORG);
    let good = json!({"iss": "salesforce-prod", "aud": "sfrelay", "exp": now() + 120});

    assert_eq!(post_bearer(&app, &body, &hs256(&good)).await.status(), 202);

    let expired = json!({"iss": "salesforce-prod", "aud": "sfrelay", "exp": now() - 600});
    problem(post_bearer(&app, &body, &hs256(&expired)).await, 401).await;
    let no_exp = json!({"iss": "salesforce-prod", "aud": "sfrelay"});
    problem(post_bearer(&app, &body, &hs256(&no_exp)).await, 401).await;
    let wrong_iss = json!({"iss": "someone", "aud": "sfrelay", "exp": now() + 120});
    problem(post_bearer(&app, &body, &hs256(&wrong_iss)).await, 401).await;
    let wrong_aud = json!({"iss": "salesforce-prod", "aud": "other", "exp": now() + 120});
    problem(post_bearer(&app, &body, &hs256(&wrong_aud)).await, 401).await;
    problem(post_bearer(&app, &body, "not.a.jwt").await, 401).await;

    // alg=none: an unsigned token.
    let none = format!(
        "{}.{}.",
        base64_url(&json!({"alg": "none", "typ": "JWT"})),
        base64_url(&good)
    );
    problem(post_bearer(&app, &body, &none).await, 401).await;

    // Algorithm confusion: HS256 "signed" with the RSA public key of the other org.
    let public_pem = fixture("keys/rsa-public.pem");
    let other = closed_won(OTHER_ORG);
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": now() + 120}),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    problem(post_bearer(&app, &other, &confused).await, 401).await;

    // RS256 for the org whose key is RSA; ES256 for the EC org.
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"exp": now() + 120}),
        &EncodingKey::from_rsa_pem(&fixture("keys/rsa-private.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(post_bearer(&app, &other, &rs).await.status(), 202);
    // …but that org's token cannot post for the first org.
    problem(post_bearer(&app, &closed_won(ORG), &rs).await, 403).await;

    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &json!({"exp": now() + 120}),
        &EncodingKey::from_ec_pem(&fixture("keys/ec-private.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        post_bearer(&app, &closed_won("00D5g000001EcDsEAK"), &es)
            .await
            .status(),
        202
    );
    // An RS256 token is not accepted by the EC org's key, nor vice versa.
    problem(
        post_bearer(&app, &closed_won("00D5g000001EcDsEAK"), &rs).await,
        403,
    )
    .await;
}

fn base64_url(value: &Value) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = serde_json::to_vec(value).unwrap();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn health_readiness_and_openness() {
    let redis = Redis::start();
    let app = app(&redis).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["queue"], "ok");
    assert_eq!(body["checks"]["queue_durable"], true);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("sfrelay_queue_depth"), "{metrics}");
}
