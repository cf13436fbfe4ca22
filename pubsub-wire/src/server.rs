//! The server side, for the emulator: a trait with the three methods and the tower service
//! that routes gRPC paths to them (what tonic's code generator would write).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{Body, BoxFuture, StdError, http};

use crate::{FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest};

/// The stream of batches `Subscribe` answers with.
pub type SubscribeStream = Pin<
    Box<
        dyn tonic::codegen::tokio_stream::Stream<Item = Result<FetchResponse, tonic::Status>>
            + Send
            + 'static,
    >,
>;

/// What a Pub/Sub server implements.
#[tonic::async_trait]
pub trait PubSub: Send + Sync + 'static {
    async fn subscribe(
        &self,
        request: tonic::Request<tonic::Streaming<FetchRequest>>,
    ) -> Result<tonic::Response<SubscribeStream>, tonic::Status>;

    async fn get_schema(
        &self,
        request: tonic::Request<SchemaRequest>,
    ) -> Result<tonic::Response<SchemaInfo>, tonic::Status>;

    async fn get_topic(
        &self,
        request: tonic::Request<TopicRequest>,
    ) -> Result<tonic::Response<TopicInfo>, tonic::Status>;
}

/// A [`PubSub`] as a tower service, ready for `tonic::transport::Server::add_service`.
#[derive(Debug)]
pub struct PubSubServer<T> {
    inner: Arc<T>,
}

impl<T> PubSubServer<T> {
    pub fn new(inner: T) -> Self {
        PubSubServer {
            inner: Arc::new(inner),
        }
    }

    pub fn from_arc(inner: Arc<T>) -> Self {
        PubSubServer { inner }
    }
}

impl<T> Clone for PubSubServer<T> {
    fn clone(&self) -> Self {
        PubSubServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> tonic::server::NamedService for PubSubServer<T> {
    const NAME: &'static str = crate::SERVICE;
}

struct SubscribeSvc<T>(Arc<T>);

impl<T: PubSub> tonic::server::StreamingService<FetchRequest> for SubscribeSvc<T> {
    type Response = FetchResponse;
    type ResponseStream = SubscribeStream;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<FetchRequest>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.subscribe(request).await })
    }
}

struct SchemaSvc<T>(Arc<T>);

impl<T: PubSub> tonic::server::UnaryService<SchemaRequest> for SchemaSvc<T> {
    type Response = SchemaInfo;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<SchemaRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.get_schema(request).await })
    }
}

struct TopicSvc<T>(Arc<T>);

impl<T: PubSub> tonic::server::UnaryService<TopicRequest> for TopicSvc<T> {
    type Response = TopicInfo;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<TopicRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.get_topic(request).await })
    }
}

impl<T, B> tonic::codegen::Service<http::Request<B>> for PubSubServer<T>
where
    T: PubSub,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        match request.uri().path() {
            "/eventbus.v1.PubSub/Subscribe" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.streaming(SubscribeSvc(inner), request).await)
            }),
            "/eventbus.v1.PubSub/GetSchema" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(SchemaSvc(inner), request).await)
            }),
            "/eventbus.v1.PubSub/GetTopic" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(TopicSvc(inner), request).await)
            }),
            _ => Box::pin(
                async move { Ok(tonic::Status::unimplemented("no such method").into_http()) },
            ),
        }
    }
}
