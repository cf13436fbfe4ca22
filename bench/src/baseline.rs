//! The baseline sfrelay's ingest is compared with: the least a durable JSON-to-Redis endpoint
//! can do — a bare axum 0.8 handler that parses the body as `serde_json::Value`, does one
//! `LPUSH` over a multiplexed redis `ConnectionManager` and answers 202. No auth, no
//! validation, no dedupe, no metrics, no logging: the ratio sfrelay/baseline is what all of
//! those cost.
//!
//! It runs as its own process (`sfrelay-bench baseline`) on tokio's default multi-threaded
//! runtime, like sfrelay, so both get the same cores and the same measurement.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

/// `sfrelay-bench baseline`: serve the baseline (loopback only).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    pub listen: SocketAddr,
    /// `redis://127.0.0.1:PORT`
    #[arg(long)]
    pub redis: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.listen.ip().is_loopback(),
        "the baseline listens on loopback only"
    );
    tokio::runtime::Runtime::new()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let redis = ConnectionManager::new(redis::Client::open(args.redis)?).await?;
    let app = Router::new()
        .route("/v1/events", post(ingest))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(redis);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn ingest(State(mut redis): State<ConnectionManager>, body: Bytes) -> StatusCode {
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    match redis
        .lpush::<_, _, i64>("bench:baseline", body.as_ref())
        .await
    {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}
