//! Request layers: a whole-request timeout, and a concurrency limit that sheds what is over it
//! with 503 + `Retry-After` instead of queueing it behind the rest.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::ingest::problem::Problem;

/// How long a client is told to wait before trying again after being shed.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most this many requests are served at once; the rest are answered 503 at once.
#[derive(Clone)]
pub struct ConcurrencyLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConcurrencyLimit {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware: takes a slot for the request's whole life, or sheds it.
pub async fn limit_concurrency(
    State(limit): State<ConcurrencyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(slot) = limit.permits.clone().try_acquire_owned() else {
        metrics::counter!("sfrelay_http_requests_shed_total").increment(1);
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            format!(
                "sfrelay is already serving {} requests; nothing was queued, try again shortly",
                limit.max
            ),
        )
        .with_retry_after(SHED_RETRY_AFTER)
        .into_response();
    };
    limit.report_in_flight();
    let response = next.run(request).await;
    drop(slot);
    limit.report_in_flight();
    response
}

impl ConcurrencyLimit {
    /// `sfrelay_http_requests_in_flight`: how close ingest is to shedding.
    fn report_in_flight(&self) {
        let in_flight = self.max - self.permits.available_permits();
        metrics::gauge!("sfrelay_http_requests_in_flight").set(in_flight as f64);
    }
}

/// The longest a request may take from its head to its answer.
#[derive(Clone, Copy)]
pub struct RequestTimeout(pub Duration);

/// Middleware: answers 503 when the request has not been answered within the timeout. The
/// write it may have been waiting on is not undone; a repeat of the request is recognised as a
/// duplicate, so the sender can simply retry.
pub async fn time_out_requests(
    State(RequestTimeout(limit)): State<RequestTimeout>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("sfrelay_http_requests_timed_out_total").increment(1);
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                format!(
                    "the request was not answered within {} s; send it again (a repeat is \
                     recognised as a duplicate)",
                    limit.as_secs()
                ),
            )
            .with_retry_after(SHED_RETRY_AFTER)
            .into_response()
        }
    }
}
