//! The event bus through a real tonic client over plaintext HTTP/2 to a spawned emulator.

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use sfrelay_pubsub_wire::{
    FetchRequest, FetchResponse, PubSubClient, ReplayPreset, SchemaRequest, TopicRequest,
    error_codes, headers,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::{DEFAULT_CLIENT_ID, Running, spawn_salesforce};

pub const OPP: &str = "/data/OpportunityChangeEvent";
/// The longest a test waits for something that should come.
const PATIENCE: Duration = Duration::from_secs(2);

pub struct Org {
    pub emu: Running,
    http: reqwest::Client,
    pub token: String,
}

pub struct Sub {
    tx: mpsc::Sender<FetchRequest>,
    rx: tonic::Streaming<FetchResponse>,
}

impl Sub {
    /// The next batch; a test failure if none comes in time.
    pub async fn next(&mut self) -> Result<FetchResponse, Status> {
        match tokio::time::timeout(PATIENCE, self.rx.message()).await {
            Ok(Ok(Some(batch))) => Ok(batch),
            Ok(Ok(None)) => Err(Status::cancelled("stream ended")),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("no batch within {PATIENCE:?}"),
        }
    }

    /// Whether anything arrives within `wait` (for checking that nothing does).
    pub async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.rx.message()).await.is_err()
    }

    pub async fn credit(&self, n: i32) {
        self.tx
            .send(FetchRequest {
                num_requested: n,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

pub fn code(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get(headers::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
}

impl Org {
    pub async fn start(extra: &[&str]) -> Org {
        let mut args = vec!["--refresh-token", "rt"];
        args.extend_from_slice(extra);
        let emu = spawn_salesforce(args).unwrap();
        let http = reqwest::Client::new();
        let mut org = Org {
            emu,
            http,
            token: String::new(),
        };
        org.token = org.new_token().await;
        org
    }

    pub async fn new_token(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/services/oauth2/token", self.emu.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=refresh_token&client_id={DEFAULT_CLIENT_ID}&refresh_token=rt"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/_emulator/pubsub/{path}", self.emu.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }

    pub async fn get(&self, path: &str) -> Value {
        let url = format!("{}/_emulator/pubsub/{path}", self.emu.url());
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> PubSubClient<Channel> {
        let channel = Endpoint::from_shared(self.emu.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        PubSubClient::new(channel)
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let meta = request.metadata_mut();
        meta.insert(headers::ACCESS_TOKEN, self.token.parse().unwrap());
        meta.insert(headers::INSTANCE_URL, self.emu.url().parse().unwrap());
        meta.insert(headers::TENANT_ID, "00D000000000001AAA".parse().unwrap());
        request
    }

    pub async fn subscribe(
        &self,
        topic: &str,
        preset: ReplayPreset,
        replay_id: Vec<u8>,
        n: i32,
    ) -> Result<Sub, Status> {
        let (tx, rx) = mpsc::channel(8);
        tx.send(FetchRequest {
            topic_name: topic.into(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: n,
            auth_refresh: String::new(),
        })
        .await
        .unwrap();
        let mut client = self.client().await;
        let response = client
            .subscribe(self.request(ReceiverStream::new(rx)))
            .await?;
        Ok(Sub {
            tx,
            rx: response.into_inner(),
        })
    }

    pub async fn schema(&self, id: &str) -> Schema {
        let info = self
            .client()
            .await
            .get_schema(self.request(SchemaRequest {
                schema_id: id.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.schema_id, id);
        Schema::parse_str(&info.schema_json).unwrap()
    }

    /// Decodes an event with the schema GetSchema gives for its own schema id.
    pub async fn decode(&self, event: &sfrelay_pubsub_wire::ConsumerEvent) -> Value {
        let event = event.event.as_ref().unwrap();
        let schema = self.schema(&event.schema_id).await;
        let reader = GenericDatumReader::builder(&schema).build().unwrap();
        let value = reader.read_value(&mut event.payload.as_slice()).unwrap();
        to_json(value)
    }

    /// Polls the streams list until `check` holds for the newest stream.
    pub async fn wait_stream(&self, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let streams = self.get("streams").await;
            let last = streams.as_array().and_then(|s| s.last()).cloned();
            if let Some(last) = last.filter(&check) {
                return last;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "streams never matched: {streams}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An Avro value as plain JSON (unions unwrapped), for asserting on.
pub fn to_json(value: Avro) -> Value {
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(i) => json!(i),
        Avro::Long(l) => json!(l),
        Avro::Double(d) => json!(d),
        Avro::String(s) => json!(s),
        Avro::Enum(_, s) => json!(s),
        Avro::Union(_, v) => to_json(*v),
        Avro::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Avro::Record(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

pub fn opp_update(stage: &str) -> Value {
    json!({
        "entity": "Opportunity",
        "change_type": "UPDATE",
        "record_ids": ["006000000000001AAA"],
        "fields": {"StageName": stage},
    })
}

#[tokio::test]
async fn refuses_calls_without_valid_auth() {
    let org = Org::start(&[]).await;
    let mut client = org.client().await;
    let bare = client
        .get_topic(tonic::Request::new(TopicRequest {
            topic_name: OPP.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated);
    assert_eq!(code(&bare), Some(error_codes::AUTH_ERROR));

    let mut wrong_org = org.request(TopicRequest {
        topic_name: OPP.into(),
    });
    wrong_org
        .metadata_mut()
        .insert(headers::TENANT_ID, "00D000000000999".parse().unwrap());
    let refused = client.get_topic(wrong_org).await.unwrap_err();
    assert_eq!(code(&refused), Some(error_codes::AUTH_ERROR));

    let forged = Org {
        token: "00D000000000001!forged".into(),
        ..org
    };
    let refused = forged
        .subscribe(OPP, ReplayPreset::Latest, vec![], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(code(&refused), Some(error_codes::AUTH_ERROR));
}

#[tokio::test]
async fn latest_delivers_a_decodable_event_with_salesforces_bitmaps() {
    let org = Org::start(&[]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 10)
        .await
        .unwrap();
    let published = org
        .ok(
            "publish",
            json!({
                "entity": "Opportunity", "change_type": "UPDATE",
                "record_ids": ["006000000000001AAA"],
                "fields": {"StageName": "Closed Won", "Amount": 75000, "CloseDate": "2025-09-30",
                           "LastModifiedDate": "2025-09-30T16:00:00.000Z"},
                "nulled": ["Description"],
                "transaction_key": "tx-1", "sequence_number": 3,
                "commit_timestamp": 1_759_248_000_000_i64,
            }),
        )
        .await;
    let batch = sub.next().await.unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(batch.pending_num_requested, 9);
    let event = &batch.events[0];
    assert_eq!(batch.latest_replay_id, event.replay_id);
    assert_eq!(
        published["replay_ids"][OPP],
        json!(super::state::hex(&event.replay_id))
    );
    let schema_id = &event.event.as_ref().unwrap().schema_id;
    assert_eq!(published["schema_id"], json!(schema_id));
    let topic = org
        .client()
        .await
        .get_topic(org.request(TopicRequest {
            topic_name: OPP.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&topic.schema_id, schema_id);
    assert!(topic.can_subscribe && !topic.can_publish);
    let unknown = org
        .client()
        .await
        .get_schema(org.request(SchemaRequest {
            schema_id: "nope".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let value = org.decode(event).await;
    let header = &value["ChangeEventHeader"];
    assert_eq!(header["entityName"], "Opportunity");
    assert_eq!(header["changeType"], "UPDATE");
    assert_eq!(header["recordIds"], json!(["006000000000001AAA"]));
    assert_eq!(header["transactionKey"], "tx-1");
    assert_eq!(header["sequenceNumber"], 3);
    assert_eq!(header["commitTimestamp"], 1_759_248_000_000_i64);
    // Amount 3, StageName 4, CloseDate 5, LastModifiedDate 8; Description 9.
    assert_eq!(header["changedFields"], json!(["0x0138"]));
    assert_eq!(header["nulledFields"], json!(["0x0200"]));
    assert_eq!(header["diffFields"], json!([]));
    assert_eq!(value["StageName"], "Closed Won");
    assert_eq!(value["Amount"], 75000.0);
    assert_eq!(value["CloseDate"], 1_759_190_400_000_i64);
    assert_eq!(value["LastModifiedDate"], 1_759_248_000_000_i64);
    assert_eq!(value["Name"], Value::Null);
}

#[tokio::test]
async fn compound_fields_nest_and_name_their_bitmaps() {
    let org = Org::start(&[]).await;
    let published = org
        .ok(
            "publish",
            json!({
                "entity": "Account", "record_ids": ["001000000000001AAA"],
                "fields": {"Name": "Acme", "BillingAddress": {"City": "Paris"}},
                "nulled": ["BillingAddress.Street"],
            }),
        )
        .await;
    let topic = "/data/AccountChangeEvent";
    assert!(published["replay_ids"][topic].is_string());
    let mut sub = org
        .subscribe(topic, ReplayPreset::Earliest, vec![], 5)
        .await
        .unwrap();
    let batch = sub.next().await.unwrap();
    let value = org.decode(&batch.events[0]).await;
    assert_eq!(value["BillingAddress"]["City"], "Paris");
    assert_eq!(value["BillingAddress"]["Street"], Value::Null);
    let header = &value["ChangeEventHeader"];
    // Name 1 and BillingAddress 3 (its City, subfield 1).
    assert_eq!(header["changedFields"], json!(["0x0A", "3-0x02"]));
    assert_eq!(header["nulledFields"], json!(["3-0x01"]));
}

#[tokio::test]
async fn earliest_replays_all_and_custom_resumes_after() {
    let org = Org::start(&[]).await;
    let batch: Vec<Value> = (0..5).map(|i| opp_update(&format!("S{i}"))).collect();
    let answers = org.ok("publish", Value::Array(batch)).await;
    assert_eq!(answers.as_array().unwrap().len(), 5);
    assert!(answers[0]["replay_ids"]["/data/ChangeEvents"].is_string());

    let mut all = org
        .subscribe(OPP, ReplayPreset::Earliest, vec![], 100)
        .await
        .unwrap();
    let batch = all.next().await.unwrap();
    assert_eq!(batch.events.len(), 5);
    for (i, e) in batch.events.iter().enumerate() {
        assert_eq!(org.decode(e).await["StageName"], format!("S{i}"));
    }

    let after = batch.events[1].replay_id.clone();
    let mut resumed = org
        .subscribe(OPP, ReplayPreset::Custom, after.clone(), 100)
        .await
        .unwrap();
    let batch = resumed.next().await.unwrap();
    assert_eq!(batch.events.len(), 3);
    assert_eq!(org.decode(&batch.events[0]).await["StageName"], "S2");
    let streams = org.get("streams").await;
    assert_eq!(streams[1]["preset"], "CUSTOM");
    assert_eq!(streams[1]["replay_id"], json!(super::state::hex(&after)));

    let err = org
        .subscribe(OPP, ReplayPreset::Custom, vec![], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(code(&err), Some(error_codes::REPLAY_ID_VALIDATION_FAILED));
    let err = org
        .subscribe(OPP, ReplayPreset::Custom, b"12345".to_vec(), 1)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), Some(error_codes::REPLAY_ID_CORRUPTED));
    let err = org
        .subscribe("/data/NopeChangeEvent", ReplayPreset::Latest, vec![], 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(code(&err), Some(error_codes::TOPIC_NOT_FOUND));
}

#[tokio::test]
async fn a_purged_replay_id_is_corrupted() {
    let org = Org::start(&[]).await;
    let first = org.ok("publish", opp_update("A")).await;
    org.ok("publish", opp_update("B")).await;
    let purged = org.ok("purge", json!({"topic": OPP, "keep_last": 1})).await;
    assert_eq!(purged["purged"], 1);
    let id = super::state::unhex(first["replay_ids"][OPP].as_str().unwrap()).unwrap();
    let err = org
        .subscribe(OPP, ReplayPreset::Custom, id, 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(code(&err), Some(error_codes::REPLAY_ID_CORRUPTED));
    let topics = org.get("topics").await;
    assert_eq!(topics[OPP]["retained"], 1);
    assert_eq!(topics["/data/ChangeEvents"]["retained"], 2);
    let mut earliest = org
        .subscribe(OPP, ReplayPreset::Earliest, vec![], 10)
        .await
        .unwrap();
    let batch = earliest.next().await.unwrap();
    assert_eq!(batch.events.len(), 1);
    assert_eq!(org.decode(&batch.events[0]).await["StageName"], "B");
}

#[tokio::test]
async fn credit_and_batch_size_are_respected() {
    let org = Org::start(&["--pubsub-batch-max", "4"]).await;
    let batch: Vec<Value> = (0..12).map(|i| opp_update(&format!("S{i}"))).collect();
    org.ok("publish", Value::Array(batch)).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Earliest, vec![], 6)
        .await
        .unwrap();
    let a = sub.next().await.unwrap();
    assert_eq!((a.events.len(), a.pending_num_requested), (4, 2));
    let b = sub.next().await.unwrap();
    assert_eq!((b.events.len(), b.pending_num_requested), (2, 0));
    // Out of credit with events waiting: starved, and nothing more is sent.
    let record = org.wait_stream(|s| s["starved"] == 1).await;
    assert_eq!(record["events_sent"], 6);
    assert!(sub.quiet_for(Duration::from_millis(100)).await);
    sub.credit(500).await;
    let c = sub.next().await.unwrap();
    assert_eq!(c.events.len(), 4);
    let d = sub.next().await.unwrap();
    assert_eq!(d.events.len(), 2);
    // Capped at 100 owed: 100 - 6 delivered.
    assert_eq!(d.pending_num_requested, 94);
    let record = org
        .wait_stream(|s| s["credit_requested_total"] == 506)
        .await;
    assert_eq!(record["events_sent"], 12);
    assert!(record["longest_starved_ms"].as_u64().unwrap() >= 100);
}

#[tokio::test]
async fn keepalives_carry_the_newest_replay_id() {
    let org = Org::start(&["--pubsub-keepalive-ms", "100"]).await;
    let published = org.ok("publish", opp_update("A")).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 5)
        .await
        .unwrap();
    let keepalive = sub.next().await.unwrap();
    assert!(keepalive.events.is_empty());
    assert_eq!(keepalive.pending_num_requested, 5);
    assert_eq!(
        super::state::hex(&keepalive.latest_replay_id),
        published["replay_ids"][OPP].as_str().unwrap()
    );
    org.wait_stream(|s| s["keepalives_sent"].as_u64() >= Some(1))
        .await;
}

#[tokio::test]
async fn zero_credit_for_too_long_ends_the_stream() {
    let org = Org::start(&["--pubsub-zero-credit-timeout-ms", "150"]).await;
    let mut sub = org
        .subscribe(OPP, ReplayPreset::Latest, vec![], 0)
        .await
        .unwrap();
    let err = sub.next().await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    org.wait_stream(|s| s["open"] == false).await;
}

#[tokio::test]
async fn control_refuses_bad_publishes_naming_the_field() {
    let org = Org::start(&[]).await;
    let (status, body) = org
        .post(
            "publish",
            json!({"entity": "Opportunity", "record_ids": ["006"], "fields": {"Amount": "lots"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("Amount"), "{body}");
    let (status, body) = org
        .post(
            "publish",
            json!({"entity": "Opportunity", "record_ids": ["006"], "fields": {"Colour": "red"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("Colour"), "{body}");
    let (status, body) = org
        .post(
            "publish",
            json!({"entity": "Account", "record_ids": ["001"],
                   "fields": {"BillingAddress": {"Planet": "Mars"}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("BillingAddress.Planet")
    );
    let (status, _) = org
        .post(
            "publish",
            json!({"entity": "Opportunity", "record_ids": ["006"], "fields": {"CloseDate": "30/09/2025"}}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = org.post("faults", json!({"fault": "explode"})).await;
    assert_eq!(status, 400);
    let (status, _) = org
        .post("channels", json!({"name": "Sales", "entities": []}))
        .await;
    assert_eq!(status, 400);
    let timing = org.ok("timing", json!({"batch_max": 7})).await;
    assert_eq!(timing["batch_max"], 7);
    assert_eq!(timing["keepalive_ms"], 270_000);
    assert_eq!(org.get("topics").await[OPP]["retained"], 0);
}
