//! The messages, field numbers exactly as Salesforce's `pubsub_api.proto` numbers them: the
//! numbers are the wire format, the names are only ours.

/// Where a new subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReplayPreset {
    /// Only events published from now on.
    Latest = 0,
    /// The oldest event still retained (72 hours for change events).
    Earliest = 1,
    /// The events after `replay_id`.
    Custom = 2,
}

/// Asks for events: the first on a stream names topic and start; later ones only add credit.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchRequest {
    #[prost(string, tag = "1")]
    pub topic_name: String,
    #[prost(enumeration = "ReplayPreset", tag = "2")]
    pub replay_preset: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub replay_id: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub num_requested: i32,
    #[prost(string, tag = "5")]
    pub auth_refresh: String,
}

/// A batch of events, or an empty keepalive that still moves `latest_replay_id`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchResponse {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<ConsumerEvent>,
    #[prost(bytes = "vec", tag = "2")]
    pub latest_replay_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub rpc_id: String,
    /// The credit the server still owes the client.
    #[prost(int32, tag = "4")]
    pub pending_num_requested: i32,
}

/// One event with its place in the topic's log.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumerEvent {
    #[prost(message, optional, tag = "1")]
    pub event: Option<ProducerEvent>,
    #[prost(bytes = "vec", tag = "2")]
    pub replay_id: Vec<u8>,
}

/// The event itself: one raw Avro datum, written with the schema `schema_id` names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProducerEvent {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub schema_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<EventHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EventHeader {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaRequest {
    #[prost(string, tag = "1")]
    pub schema_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaInfo {
    /// The Avro schema as JSON.
    #[prost(string, tag = "1")]
    pub schema_json: String,
    #[prost(string, tag = "2")]
    pub schema_id: String,
    #[prost(string, tag = "3")]
    pub rpc_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicRequest {
    #[prost(string, tag = "1")]
    pub topic_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicInfo {
    #[prost(string, tag = "1")]
    pub topic_name: String,
    #[prost(string, tag = "2")]
    pub tenant_guid: String,
    #[prost(bool, tag = "3")]
    pub can_publish: bool,
    #[prost(bool, tag = "4")]
    pub can_subscribe: bool,
    #[prost(string, tag = "5")]
    pub schema_id: String,
    #[prost(string, tag = "6")]
    pub rpc_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Bytes written by hand from the field numbers: tag = number << 3 | wire type.
    #[test]
    fn field_numbers_are_salesforces() {
        let request = FetchRequest {
            topic_name: "/t".into(),
            replay_preset: ReplayPreset::Custom as i32,
            replay_id: vec![0xAB],
            num_requested: 100,
            auth_refresh: String::new(),
        };
        assert_eq!(
            request.encode_to_vec(),
            vec![0x0A, 2, b'/', b't', 0x10, 2, 0x1A, 1, 0xAB, 0x20, 100]
        );
        let response = FetchResponse {
            events: vec![ConsumerEvent {
                event: Some(ProducerEvent {
                    id: "i".into(),
                    schema_id: "s".into(),
                    payload: vec![7],
                    headers: vec![],
                }),
                replay_id: vec![9],
            }],
            latest_replay_id: vec![9],
            rpc_id: String::new(),
            pending_num_requested: 99,
        };
        let bytes = response.encode_to_vec();
        // events (1, length-delimited) → event (1) → id (1), schema_id (2), payload (3); then
        // replay_id (2); then latest_replay_id (2) and pending_num_requested (4, varint).
        assert_eq!(
            bytes,
            vec![
                0x0A, 14, 0x0A, 9, 0x0A, 1, b'i', 0x12, 1, b's', 0x1A, 1, 7, 0x12, 1, 9, 0x12, 1,
                9, 0x20, 99
            ]
        );
        let info = TopicInfo {
            topic_name: "t".into(),
            schema_id: "s".into(),
            can_subscribe: true,
            ..Default::default()
        };
        assert_eq!(
            info.encode_to_vec(),
            vec![0x0A, 1, b't', 0x20, 1, 0x2A, 1, b's']
        );
    }
}
