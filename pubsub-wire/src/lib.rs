//! The Salesforce Pub/Sub API (`eventbus.v1.PubSub`) as sfrelay speaks it: the messages
//! declared by hand with their wire field numbers (so no `protoc` is needed anywhere), a
//! client for the three methods sfrelay calls, and the server plumbing the emulator serves
//! them with. One definition on both ends keeps the two from drifting apart.

mod client;
mod messages;
mod server;

pub use client::PubSubClient;
pub use messages::*;
pub use server::{PubSub, PubSubServer, SubscribeStream};

/// The gRPC service name.
pub const SERVICE: &str = "eventbus.v1.PubSub";

/// The metadata keys every call carries (lower case, as gRPC metadata is).
pub mod headers {
    /// An OAuth access token of the org.
    pub const ACCESS_TOKEN: &str = "accesstoken";
    /// `https://<mydomain>.my.salesforce.com`.
    pub const INSTANCE_URL: &str = "instanceurl";
    /// The org Id.
    pub const TENANT_ID: &str = "tenantid";
    /// Salesforce's own error code, in the trailers of a failed call.
    pub const ERROR_CODE: &str = "error-code";
    /// The id of the failed call, for Salesforce support.
    pub const RPC_ID: &str = "rpc-id";
}

/// Salesforce's error codes (the `error-code` trailer), prefix included.
pub mod error_codes {
    pub const REPLAY_ID_CORRUPTED: &str =
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
    pub const REPLAY_ID_VALIDATION_FAILED: &str =
        "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
    pub const AUTH_ERROR: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
    pub const UNAVAILABLE: &str = "sfdc.platform.eventbus.grpc.service.unavailable";
    pub const TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
    pub const CANNOT_SUBSCRIBE: &str =
        "sfdc.platform.eventbus.grpc.subscription.topic.cannot.subscribe";
    pub const SUBSCRIPTION_LIMIT: &str = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded";
    pub const CONCURRENT_CLIENT_LIMIT: &str =
        "sfdc.platform.eventbus.grpc.concurrent.client.limit.exceeded";
    pub const TENANT_LICENSE: &str = "sfdc.platform.eventbus.grpc.service.tenant.license";
}
