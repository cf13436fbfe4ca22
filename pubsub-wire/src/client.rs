//! The client side: the three methods sfrelay calls, over any tonic channel.

use tonic::codegen::http::uri::PathAndQuery;
use tonic::codegen::{Body, Bytes, GrpcMethod, StdError};

use crate::{
    FetchRequest, FetchResponse, SERVICE, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};

/// A Pub/Sub API client; the caller puts the three auth headers on each request.
#[derive(Debug, Clone)]
pub struct PubSubClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> PubSubClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    pub fn new(inner: T) -> Self {
        PubSubClient {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    /// Raises the largest message accepted (tonic's default is 4 MiB; a batch of change
    /// events with long text fields can be bigger).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.inner = self.inner.max_decoding_message_size(limit);
        self
    }

    async fn ready(&mut self) -> Result<(), tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {}", e.into())))
    }

    /// `Subscribe`: a bidirectional stream of fetch requests (credit) and event batches.
    pub async fn subscribe(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Message = FetchRequest>,
    ) -> Result<tonic::Response<tonic::codec::Streaming<FetchResponse>>, tonic::Status> {
        self.ready().await?;
        let mut request = request.into_streaming_request();
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Subscribe"));
        let path = PathAndQuery::from_static("/eventbus.v1.PubSub/Subscribe");
        self.inner
            .streaming(request, path, tonic_prost::ProstCodec::default())
            .await
    }

    /// `GetSchema`: the Avro schema an event's `schema_id` names.
    pub async fn get_schema(
        &mut self,
        request: tonic::Request<SchemaRequest>,
    ) -> Result<tonic::Response<SchemaInfo>, tonic::Status> {
        self.ready().await?;
        let mut request = request;
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "GetSchema"));
        let path = PathAndQuery::from_static("/eventbus.v1.PubSub/GetSchema");
        self.inner
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
    }

    /// `GetTopic`: whether the topic exists and may be subscribed to.
    pub async fn get_topic(
        &mut self,
        request: tonic::Request<TopicRequest>,
    ) -> Result<tonic::Response<TopicInfo>, tonic::Status> {
        self.ready().await?;
        let mut request = request;
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "GetTopic"));
        let path = PathAndQuery::from_static("/eventbus.v1.PubSub/GetTopic");
        self.inner
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
    }
}
