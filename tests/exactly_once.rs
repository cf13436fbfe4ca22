//! Exactly-once keys: what makes two deliveries "the same change", a CDC gap fetch that runs
//! again, reconciliation meeting a backlog, and once-per-record routes whose first attempt does
//! not land. The real binary, real Redis and the emulators.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{App, Options, Redis, Slack, eventually};

/// A Flow callout without an `event_id`: only its content says which change it is.
fn unnamed_change(amount: u64) -> Value {
    json!({
        "org_id": support::ORG, "object": "Opportunity", "change_type": "UPDATE",
        "changed_fields": ["Amount"],
        "record": {"Id": "006Hs00000BkXyzIAF", "Name": "Acme", "Amount": amount,
                   "LastModifiedDate": "2025-09-30T16:00:00.000+0000"}
    })
}

#[tokio::test]
async fn without_an_event_id_a_different_change_with_the_same_timestamp_is_not_a_duplicate() {
    let redis = Redis::start();
    let app = App::spawn(Options {
        redis: Some(redis.url()),
        routes: Some(Vec::new()),
        ..Options::default()
    })
    .await;
    let send = |body: Value| {
        let app = &app;
        async move {
            let response = app.post_events(body.to_string()).await;
            assert_eq!(response.status(), 202);
            response.json::<Value>().await.expect("JSON answer")
        }
    };
    let first = send(unnamed_change(100)).await;
    assert_eq!(
        (first["accepted"].clone(), first["duplicates"].clone()),
        (json!(1), json!(0))
    );
    // Same record, timestamp and changed fields, other values: a change of its own.
    let other = send(unnamed_change(200)).await;
    assert_eq!(
        (other["accepted"].clone(), other["duplicates"].clone()),
        (json!(1), json!(0))
    );
    // The first one sent again, unchanged: a resend.
    let resend = send(unnamed_change(100)).await;
    assert_eq!(
        (resend["accepted"].clone(), resend["duplicates"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(resend["ids"], first["ids"]);
    // With no timestamp at all, values still tell changes apart and resends alike.
    let mut bare = unnamed_change(300);
    bare["record"]
        .as_object_mut()
        .unwrap()
        .remove("LastModifiedDate");
    assert_eq!(send(bare.clone()).await["accepted"], 1);
    bare["record"]["Amount"] = 301.into();
    assert_eq!(send(bare.clone()).await["accepted"], 1);
    assert_eq!(send(bare).await["duplicates"], 1);
}
