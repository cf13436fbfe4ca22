//! The `eventbus.v1.PubSub` methods: the three auth headers checked against the emulator's
//! issued tokens and org Id, then Subscribe, GetSchema and GetTopic over the bus's state.

use std::sync::Arc;
use std::time::Instant;

use sfrelay_pubsub_wire::{
    FetchRequest, PubSub, ReplayPreset, SchemaInfo, SchemaRequest, SubscribeStream, TopicInfo,
    TopicRequest, error_codes, headers,
};
use tokio::sync::mpsc;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::Hub;
use super::state::{StreamRecord, hex};
use super::stream::{self, Cursor};
use crate::salesforce::emulator::{ORG_ID, now_rfc3339};
use crate::salesforce::writes::with_checksum;

/// A status carrying Salesforce's `error-code` (when given) and an `rpc-id`.
pub fn status(code: Code, message: &str, error_code: Option<&str>) -> Status {
    let mut metadata = MetadataMap::new();
    if let Some(c) = error_code.and_then(|c| MetadataValue::try_from(c).ok()) {
        metadata.insert(headers::ERROR_CODE, c);
    }
    if let Ok(id) = MetadataValue::try_from(super::publish::uuid()) {
        metadata.insert(headers::RPC_ID, id);
    }
    Status::with_metadata(code, message, metadata)
}

fn auth_error(message: &str) -> Status {
    status(
        Code::Unauthenticated,
        message,
        Some(error_codes::AUTH_ERROR),
    )
}

fn topic_not_found(topic: &str) -> Status {
    status(
        Code::NotFound,
        &format!("topic {topic} does not exist"),
        Some(error_codes::TOPIC_NOT_FOUND),
    )
}

/// The gRPC face of a [`Hub`].
pub struct Service(pub Arc<Hub>);

impl Service {
    fn authorise(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let get = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(token) = get(headers::ACCESS_TOKEN) else {
            return Err(auth_error("missing accesstoken"));
        };
        if get(headers::INSTANCE_URL).is_none() {
            return Err(auth_error("missing instanceurl"));
        }
        let tenant = get(headers::TENANT_ID).unwrap_or_default();
        let org = self
            .0
            .emulator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .org_id
            .clone();
        let org_ok =
            tenant == org || tenant == format!("{org}AAA") || tenant == with_checksum(&org);
        if !org_ok {
            return Err(auth_error("tenantid is not this org's Id"));
        }
        let valid = self
            .0
            .emulator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .access_token_valid(token);
        if !valid {
            return Err(auth_error("the access token is invalid or expired"));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl PubSub for Service {
    async fn subscribe(
        &self,
        request: Request<tonic::Streaming<FetchRequest>>,
    ) -> Result<Response<SubscribeStream>, Status> {
        self.authorise(request.metadata())?;
        let mut inbound = request.into_inner();
        let first = match inbound.message().await {
            Ok(Some(first)) => first,
            Ok(None) => return Err(Status::invalid_argument("no fetch request was sent")),
            Err(e) => return Err(e),
        };
        let hub = Arc::clone(&self.0);
        let cursor = {
            let mut state = hub.lock();
            let topic_name = first.topic_name.clone();
            if state.take_refusal(&topic_name) {
                return Err(status(
                    Code::Unavailable,
                    "the event bus is unavailable",
                    Some(error_codes::UNAVAILABLE),
                ));
            }
            let Some(topic) = state.topics.get(&topic_name) else {
                return Err(topic_not_found(&topic_name));
            };
            let preset = ReplayPreset::try_from(first.replay_preset)
                .map_err(|_| Status::invalid_argument("unknown replay preset"))?;
            let (next, preset_name) = match preset {
                ReplayPreset::Latest => (topic.end(), "LATEST"),
                ReplayPreset::Earliest => (topic.start(), "EARLIEST"),
                ReplayPreset::Custom if first.replay_id.is_empty() => {
                    return Err(status(
                        Code::InvalidArgument,
                        "a CUSTOM subscription needs a replay id",
                        Some(error_codes::REPLAY_ID_VALIDATION_FAILED),
                    ));
                }
                ReplayPreset::Custom => match topic.position_of(&first.replay_id) {
                    Ok(position) => (position + 1, "CUSTOM"),
                    Err(_) => {
                        return Err(status(
                            Code::InvalidArgument,
                            "the replay id is invalid or past retention",
                            Some(error_codes::REPLAY_ID_CORRUPTED),
                        ));
                    }
                },
            };
            let id = state.next_stream;
            state.next_stream += 1;
            state.streams.push(StreamRecord {
                id,
                topic: topic_name.clone(),
                preset: preset_name,
                replay_id: (preset == ReplayPreset::Custom).then(|| hex(&first.replay_id)),
                open: true,
                opened_at: now_rfc3339(),
                closed_at: None,
                closed_because: None,
                events_sent: 0,
                keepalives_sent: 0,
                credit_requested_total: 0,
                starved: 0,
                longest_starved: Default::default(),
                starving_since: None,
                delivered: Default::default(),
                stall: false,
                drop: false,
                auth_error: false,
                duplicate: 0,
            });
            let mut cursor = Cursor::new(id, topic_name, next, 0, Instant::now());
            cursor.add_credit(&mut state, first.num_requested);
            cursor
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(stream::run(hub, cursor, inbound, tx));
        let out: SubscribeStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(out))
    }

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        self.authorise(request.metadata())?;
        let id = request.into_inner().schema_id;
        let state = self.0.lock();
        match state.schemas.get(&id) {
            Some(json) => Ok(Response::new(SchemaInfo {
                schema_json: json.clone(),
                schema_id: id,
                rpc_id: super::publish::uuid(),
            })),
            None => Err(status(Code::NotFound, &format!("no schema {id}"), None)),
        }
    }

    async fn get_topic(
        &self,
        request: Request<TopicRequest>,
    ) -> Result<Response<TopicInfo>, Status> {
        self.authorise(request.metadata())?;
        let name = request.into_inner().topic_name;
        let state = self.0.lock();
        if !state.topics.contains_key(&name) {
            return Err(topic_not_found(&name));
        }
        Ok(Response::new(TopicInfo {
            schema_id: state.topic_schema(&name).unwrap_or_default().to_owned(),
            topic_name: name,
            tenant_guid: ORG_ID.to_owned(),
            can_publish: false,
            can_subscribe: true,
            rpc_id: super::publish::uuid(),
        }))
    }
}
