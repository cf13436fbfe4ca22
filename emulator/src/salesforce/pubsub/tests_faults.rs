//! Faults, schema changes mid-backlog, gap events and channels, through a real client.

use std::time::Duration;

use serde_json::{Value, json};
use sfrelay_pubsub_wire::{ReplayPreset, TopicRequest, error_codes};
use tonic::Code;

use super::tests::{OPP, Org, code, opp_update};

#[tokio::test]
async fn stall_silences_open_streams_keepalives_included() {
    let org = Org::start(&["--pubsub-keepalive-ms", "50"]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    assert!(
        sub.next().await.unwrap().events.is_empty(),
        "a keepalive first"
    );
    assert_eq!(
        org.ok("faults", json!({"fault": "stall", "topic": OPP}))
            .await["streams"],
        1
    );
    org.ok("publish", opp_update("A")).await;
    // Drain a keepalive that may have been on its way before the stall took hold.
    let mut quiet = sub.quiet_for(Duration::from_millis(300)).await;
    if !quiet {
        quiet = sub.quiet_for(Duration::from_millis(300)).await;
    }
    assert!(quiet, "a stalled stream sent something");
    let record = org.wait_stream(|s| s["open"] == true).await;
    assert_eq!(record["events_sent"], 0);
    // A new stream is not stalled.
    let mut fresh = org
        .subscribe(OPP, ReplayPreset::Earliest, vec![], 10)
        .await
        .unwrap();
    assert_eq!(fresh.next().await.unwrap().events.len(), 1);
}

#[tokio::test]
async fn drop_ends_open_streams_with_unavailable() {
    let org = Org::start(&[]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    org.ok("faults", json!({"fault": "drop"})).await;
    let err = sub.next().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    org.wait_stream(|s| s["open"] == false).await;
}

#[tokio::test]
async fn unavailable_refuses_the_next_subscribes() {
    let org = Org::start(&[]).await;
    org.ok(
        "faults",
        json!({"fault": "unavailable", "times": 2, "topic": OPP}),
    )
    .await;
    // Another topic is not affected.
    org.subscribe("/data/CaseChangeEvent", ReplayPreset::Latest, vec![], 1)
        .await
        .unwrap();
    for _ in 0..2 {
        let err = org
            .subscribe(OPP, ReplayPreset::Latest, vec![], 1)
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(code(&err), Some(error_codes::UNAVAILABLE));
    }
    org.subscribe(OPP, ReplayPreset::Latest, vec![], 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn auth_error_ends_streams_and_invalidates_tokens() {
    let mut org = Org::start(&[]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    org.ok("faults", json!({"fault": "auth_error"})).await;
    let err = sub.next().await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(code(&err), Some(error_codes::AUTH_ERROR));
    let err = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), Some(error_codes::AUTH_ERROR));
    org.token = org.new_token().await;
    org.subscribe(OPP, ReplayPreset::Latest, vec![], 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn duplicate_sends_delivered_events_again() {
    let org = Org::start(&[]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    org.ok(
        "publish",
        json!([opp_update("A"), opp_update("B"), opp_update("C")]),
    )
    .await;
    let mut first = Vec::new();
    while first.len() < 3 {
        first.extend(sub.next().await.unwrap().events);
    }
    org.ok("faults", json!({"fault": "duplicate", "count": 2}))
        .await;
    let again = sub.next().await.unwrap();
    let ids: Vec<_> = again.events.iter().map(|e| e.replay_id.clone()).collect();
    assert_eq!(
        ids,
        vec![first[1].replay_id.clone(), first[2].replay_id.clone()]
    );
    assert_eq!(again.pending_num_requested, 5);
}

#[tokio::test]
async fn a_backlog_spans_schema_versions() {
    let org = Org::start(&[]).await;
    let before = org.ok("publish", opp_update("A")).await;
    let added = org
        .ok(
            "fields",
            json!({"entity": "Opportunity", "name": "NextStep", "kind": "string"}),
        )
        .await;
    let mut later = opp_update("B");
    later["fields"]["NextStep"] = json!("Call");
    let after = org.ok("publish", later).await;
    assert_ne!(before["schema_id"], after["schema_id"]);
    assert_eq!(added["schema_id"], after["schema_id"]);
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Earliest, vec![], 10)
        .await
        .unwrap();
    let batch = sub.next().await.unwrap();
    let schemas: Vec<_> = batch
        .events
        .iter()
        .map(|e| e.event.as_ref().unwrap().schema_id.clone())
        .collect();
    assert_eq!(
        schemas,
        vec![
            before["schema_id"].as_str().unwrap(),
            after["schema_id"].as_str().unwrap()
        ]
    );
    let old = org.decode(&batch.events[0]).await;
    assert!(old.get("NextStep").is_none());
    let new = org.decode(&batch.events[1]).await;
    assert_eq!(new["NextStep"], "Call");
    // StageName 4, NextStep 10.
    assert_eq!(new["ChangeEventHeader"]["changedFields"], json!(["0x0410"]));
}

#[tokio::test]
async fn gap_and_overflow_events_carry_only_the_header() {
    let org = Org::start(&[]).await;
    org.ok(
        "publish",
        json!([
            {"entity": "Case", "change_type": "GAP_UPDATE", "record_ids": ["500000000000001AAA"]},
            {"entity": "Case", "change_type": "GAP_OVERFLOW"},
        ]),
    )
    .await;
    let (status, _) = org
        .post(
            "publish",
            json!({"entity": "Case", "change_type": "GAP_UPDATE", "record_ids": ["500"],
                   "fields": {"Status": "New"}}),
        )
        .await;
    assert_eq!(status, 400);
    let mut sub = org
        .subscribe("/data/CaseChangeEvent", ReplayPreset::Earliest, vec![], 10)
        .await
        .unwrap();
    let batch = sub.next().await.unwrap();
    let gap = org.decode(&batch.events[0]).await;
    assert_eq!(gap["ChangeEventHeader"]["changeType"], "GAP_UPDATE");
    assert_eq!(
        gap["ChangeEventHeader"]["recordIds"],
        json!(["500000000000001AAA"])
    );
    assert_eq!(gap["ChangeEventHeader"]["changedFields"], json!([]));
    assert_eq!(gap["Status"], Value::Null);
    let overflow = org.decode(&batch.events[1]).await;
    assert_eq!(overflow["ChangeEventHeader"]["changeType"], "GAP_OVERFLOW");
    assert_eq!(
        overflow["ChangeEventHeader"]["recordIds"],
        json!(["000000000000000AAA"])
    );
}

#[tokio::test]
async fn channels_and_all_changes_receive_their_entities() {
    let org = Org::start(&[]).await;
    org.ok(
        "channels",
        json!({"name": "/data/Sales__chn", "entities": ["Opportunity"]}),
    )
    .await;
    let mut channel = org
        .subscribe("/data/Sales__chn", ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    let mut all = org
        .subscribe("/data/ChangeEvents", ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    let opp = org.ok("publish", opp_update("A")).await;
    org.ok(
        "publish",
        json!({"entity": "Case", "record_ids": ["500000000000001AAA"], "fields": {"Status": "New"}}),
    )
    .await;
    assert_eq!(opp["replay_ids"].as_object().unwrap().len(), 3);
    let got = channel.next().await.unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(
        org.decode(&got.events[0]).await["ChangeEventHeader"]["entityName"],
        "Opportunity"
    );
    let mut entities = Vec::new();
    while entities.len() < 2 {
        for e in all.next().await.unwrap().events {
            entities.push(org.decode(&e).await["ChangeEventHeader"]["entityName"].clone());
        }
    }
    assert_eq!(entities, vec![json!("Opportunity"), json!("Case")]);
    let mut client = org.client().await;
    for topic in ["/data/Sales__chn", "/data/ChangeEvents"] {
        let info = client
            .get_topic(org.request(TopicRequest {
                topic_name: topic.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.schema_id, "");
    }
    let err = client
        .get_topic(org.request(TopicRequest {
            topic_name: "/data/Nope__chn".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(code(&err), Some(error_codes::TOPIC_NOT_FOUND));
}

#[test]
fn the_rust_control_api_is_reachable_from_running() {
    let emu = crate::spawn_salesforce(["--listen", "127.0.0.1:0"]).unwrap();
    let bus = emu.pubsub().unwrap();
    let answer = bus.publish(opp_update("A")).unwrap();
    assert_eq!(bus.schema_id("Opportunity").unwrap(), answer["schema_id"]);
    assert_eq!(bus.topics()[OPP]["retained"], 1);
    assert!(bus.schema(answer["schema_id"].as_str().unwrap()).is_some());
    assert_eq!(bus.purge(None, 0, None).unwrap(), 2);
}
