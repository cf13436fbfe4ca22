//! The HTTP edge for Salesforce: authenticate, validate, write durably, answer. It knows the wire
//! formats and turns each into the one internal `Event`; nothing after it knows which format an
//! event came in.

pub mod auth;
pub(crate) mod body;
pub mod cdc;
pub mod flow;
pub mod openapi;
pub mod outbound_message;
pub mod problem;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::config::Config;
use crate::event::{Event, GapEvent, SalesforceId};
use crate::lifecycle::Lifecycle;
use crate::queue::Queue;
use crate::queue::{Enqueued, QueueError, now_ms};
use crate::task::event_jobs;
use auth::Authenticator;
use auth::{AuthError, Caller};
use flow::FieldError;
use problem::Problem;

/// What the ingest handlers need. The application's state hands it out (axum's `FromRef`), so
/// the edge knows nothing of the rest of the app.
#[derive(Clone)]
pub struct IngestState {
    pub config: Arc<Config>,
    pub queue: Arc<dyn Queue>,
    pub auth: Arc<Authenticator>,
    pub lifecycle: Arc<Lifecycle>,
    /// Marks accepted events' records seen for reconciliation.
    pub seen: Arc<crate::jobs::reconcile::SeenAtIngest>,
}

/// Why an ingest request was refused; each maps to one status and a problem+json body.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{path}: org {org} is not the org this credential belongs to")]
    WrongOrg { path: String, org: SalesforceId },
    #[error("{path}: org {org} is not configured")]
    UnknownOrg { path: String, org: SalesforceId },
    #[error("Content-Type must be application/json, got {0:?}")]
    UnsupportedMediaType(String),
    #[error("the body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("cannot read the body: {0}")]
    Body(String),
    #[error("the body did not arrive within {} s", .after.as_secs())]
    BodyTimeout { after: Duration },
    #[error("{} invalid field(s); nothing was queued", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("the queue is unavailable; nothing was queued")]
    QueueUnavailable { retry_after: Duration },
    #[error("the queue is over its high-water mark ({depth} jobs waiting); nothing was queued")]
    QueueFull { depth: u64, retry_after: Duration },
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngestError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Auth(_) => StatusCode::UNAUTHORIZED,
            IngestError::WrongOrg { .. } | IngestError::UnknownOrg { .. } => StatusCode::FORBIDDEN,
            IngestError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Body(_) | IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
            IngestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            IngestError::QueueUnavailable { .. } | IngestError::QueueFull { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the answer may leave part of the body unread (refused from the head, or cut off
    /// while reading): the connection is then closed, so the client does not send its next
    /// request after the rest of this body.
    fn leaves_body_unread(&self) -> bool {
        matches!(
            self,
            IngestError::Auth(_)
                | IngestError::UnsupportedMediaType(_)
                | IngestError::TooLarge { .. }
                | IngestError::Body(_)
                | IngestError::BodyTimeout { .. }
        )
    }

    /// The `outcome` label of `sfrelay_events_received_total`.
    fn outcome(&self) -> &'static str {
        match self {
            IngestError::Auth(_) => "unauthenticated",
            IngestError::WrongOrg { .. } | IngestError::UnknownOrg { .. } => "forbidden",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Body(_) | IngestError::Invalid(_) => "invalid",
            IngestError::BodyTimeout { .. } => "body_timeout",
            IngestError::QueueUnavailable { .. } => "queue_unavailable",
            IngestError::QueueFull { .. } => "queue_full",
            IngestError::Internal(_) => "error",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let close = self.leaves_body_unread();
        let mut response = self.problem().into_response();
        if close {
            close_connection(&mut response);
        }
        response
    }
}

/// Asks the client (and hyper) to close the connection after this answer.
fn close_connection(response: &mut Response) {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
}

impl IngestError {
    fn problem(self) -> Problem {
        let detail = self.to_string();
        match self {
            IngestError::Auth(_) => Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail),
            IngestError::WrongOrg { path, .. } | IngestError::UnknownOrg { path, .. } => {
                let message = detail.clone();
                Problem::new(StatusCode::FORBIDDEN, "Forbidden", detail)
                    .with_errors(vec![FieldError { path, message }])
            }
            IngestError::UnsupportedMediaType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type",
                detail,
            ),
            IngestError::TooLarge { .. } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", detail)
            }
            IngestError::Body(_) => Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail),
            IngestError::BodyTimeout { .. } => {
                Problem::new(StatusCode::REQUEST_TIMEOUT, "Request Timeout", detail)
            }
            IngestError::Invalid(errors) => {
                Problem::new(StatusCode::BAD_REQUEST, "Invalid event", detail).with_errors(errors)
            }
            IngestError::QueueUnavailable { retry_after }
            | IngestError::QueueFull { retry_after, .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                detail,
            )
            .with_retry_after(retry_after),
            IngestError::Internal(_) => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                detail,
            ),
        }
    }
}

/// The 202 answer: how many events were queued, how many were repeats, and the id of each in
/// request order (for a repeat, the id of the event first queued).
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub duplicates: usize,
    pub ids: Vec<String>,
    /// CDC gap events received (header only, nothing to route).
    #[serde(skip_serializing_if = "is_zero")]
    pub gaps: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `POST /v1/events`: a Flow callout envelope, or a batch of up to 200.
pub async fn post_events(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), IngestError> {
    let result = accept_events(&state, &headers, body).await;
    record_outcome(&result);
    result.map(|accepted| (StatusCode::ACCEPTED, Json(accepted)))
}

async fn accept_events(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, IngestError> {
    let caller = state.auth.authenticate(headers)?;
    require_media(headers, MediaType::Json)?;
    let body = read_body(state, headers, body).await?;
    let events =
        flow::parse_flow_request(&body, chrono::Utc::now()).map_err(IngestError::Invalid)?;
    check_orgs(state, &caller, &events)?;
    enqueue(state, &events).await
}

/// The two body kinds Salesforce sends.
#[derive(Clone, Copy)]
enum MediaType {
    Json,
    Xml,
}

/// Salesforce sends `application/json` (Flow, CDC relays) or `text/xml` (Outbound Messages),
/// maybe with a charset; anything else is refused.
fn require_media(headers: &HeaderMap, want: MediaType) -> Result<(), IngestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = match want {
        MediaType::Json => {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        }
        MediaType::Xml => {
            essence == "text/xml"
                || essence == "application/xml"
                || essence == "application/soap+xml"
        }
    };
    if ok {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(content_type.to_string()))
    }
}

/// The body, read only now that the caller is authenticated: 413 over the size limit, 408
/// when it does not arrive within the body timeout.
async fn read_body(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, IngestError> {
    body::read_limited(
        headers,
        body,
        state.config.max_body_bytes,
        state.config.http.body_timeout,
    )
    .await
}

/// Records the outcome of one ingest request in the metrics and the log.
fn record_outcome(result: &Result<Accepted, IngestError>) {
    match result {
        Ok(accepted) => {
            metrics::counter!("sfrelay_events_received_total", "outcome" => "accepted")
                .increment(accepted.accepted as u64);
            metrics::counter!("sfrelay_events_received_total", "outcome" => "duplicate")
                .increment(accepted.duplicates as u64);
        }
        Err(e) => {
            metrics::counter!("sfrelay_events_received_total", "outcome" => e.outcome())
                .increment(1);
            tracing::info!(error = %e, "ingest request refused");
        }
    }
}

/// Query parameters of `POST /v1/cdc`.
#[derive(Debug, serde::Deserialize)]
pub struct CdcQuery {
    /// The org, needed only when no credential names it (sfrelay open on loopback).
    pub org_id: Option<String>,
}

/// `POST /v1/cdc`: Change Data Capture events, one or an array; the org is the credential's.
pub async fn post_cdc(
    State(state): State<IngestState>,
    Query(query): Query<CdcQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), IngestError> {
    let result = accept_cdc(&state, &query, &headers, body).await;
    record_outcome(&result);
    result.map(|accepted| (StatusCode::ACCEPTED, Json(accepted)))
}

async fn accept_cdc(
    state: &IngestState,
    query: &CdcQuery,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, IngestError> {
    let caller = state.auth.authenticate(headers)?;
    require_media(headers, MediaType::Json)?;
    let body = read_body(state, headers, body).await?;
    let org = match (&caller, &query.org_id) {
        (Caller::Org(org), _) => org.clone(),
        (Caller::Open, Some(org)) => SalesforceId::parse(org).map_err(|e| {
            IngestError::Invalid(vec![FieldError {
                path: "?org_id".into(),
                message: e.to_string(),
            }])
        })?,
        (Caller::Open, None) => {
            return Err(IngestError::Invalid(vec![FieldError {
                path: "?org_id".into(),
                message: "without a credential, name the org in the org_id query parameter".into(),
            }]));
        }
    };
    let batch =
        cdc::parse_cdc_request(&body, &org, chrono::Utc::now()).map_err(IngestError::Invalid)?;
    for gap in &batch.gaps {
        metrics::counter!("sfrelay_cdc_gap_events_total", "object" => gap.object.clone())
            .increment(1);
        tracing::warn!(object = %gap.object, change = %gap.change_type, records = gap.record_ids.len(), "CDC gap event: Salesforce sent no field values; routes see only later changes");
    }
    let mut accepted = enqueue(state, &batch.events).await?;
    accepted.gaps = batch.gaps.len();
    enqueue_gaps(state, &batch.gaps).await?;
    Ok(accepted)
}

/// Queues gap events that name records, so routes that ask for it can fetch and route them.
async fn enqueue_gaps(state: &IngestState, gaps: &[GapEvent]) -> Result<(), IngestError> {
    let jobs =
        crate::task::gap_jobs(gaps, now_ms()).map_err(|e| IngestError::Internal(e.to_string()))?;
    if jobs.is_empty() {
        return Ok(());
    }
    let retry_after = state.config.queue.retry_after;
    state
        .queue
        .enqueue_replicated(&jobs, state.config.dedupe_window)
        .await
        .map(|_| ())
        .map_err(|e| queue_refusal(e, retry_after))
}

/// What a queue failure means for the caller: 503 with `Retry-After`, nothing written.
fn queue_refusal(e: QueueError, retry_after: Duration) -> IngestError {
    match e {
        QueueError::Full { depth } => IngestError::QueueFull { depth, retry_after },
        QueueError::Unavailable(reason) => {
            tracing::warn!(%reason, "queue unavailable; answering 503");
            IngestError::QueueUnavailable { retry_after }
        }
        QueueError::Corrupt(reason) => IngestError::Internal(reason),
        QueueError::ReplicasShort { .. } => IngestError::QueueUnavailable { retry_after },
    }
}

/// `POST /v1/outbound-messages/{token}`: a Salesforce Outbound Message. Answered with the
/// SOAP Ack only after the write is durable; with a SOAP fault otherwise, so Salesforce
/// retries (it does for up to 24 hours).
pub async fn post_outbound_message(
    State(state): State<IngestState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = accept_outbound_message(&state, &token, &headers, body).await;
    record_outcome(&result);
    let xml = |status: StatusCode, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match result {
        Ok(_) => xml(StatusCode::OK, outbound_message::ack_response()),
        Err(e) => {
            let status = e.status();
            let fault = outbound_message::fault_response(status.is_client_error(), &e.to_string());
            let mut response = xml(status, fault);
            if e.leaves_body_unread() {
                close_connection(&mut response);
            }
            if let IngestError::QueueUnavailable { retry_after }
            | IngestError::QueueFull { retry_after, .. } = e
            {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            response
        }
    }
}

async fn accept_outbound_message(
    state: &IngestState,
    token: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, IngestError> {
    let caller = state.auth.authenticate_outbound_token(token)?;
    require_media(headers, MediaType::Xml)?;
    let body = read_body(state, headers, body).await?;
    let message =
        outbound_message::parse_outbound_message(&body, chrono::Utc::now()).map_err(|e| {
            IngestError::Invalid(vec![FieldError {
                path: "/notifications".into(),
                message: e.to_string(),
            }])
        })?;
    if let Caller::Org(org) = &caller
        && org != &message.organization_id
    {
        return Err(IngestError::WrongOrg {
            path: "/notifications/OrganizationId".into(),
            org: message.organization_id.clone(),
        });
    }
    let events: Vec<Event> = message.notifications.into_iter().map(|n| n.event).collect();
    enqueue(state, &events).await
}

/// `GET /openapi.json`: the ingest API, importable as a Salesforce External Service.
pub async fn get_openapi() -> Json<serde_json::Value> {
    Json(openapi::document(None))
}

/// A credential binds to its org: every event must name that org.
fn check_orgs(state: &IngestState, caller: &Caller, events: &[Event]) -> Result<(), IngestError> {
    let single = events.len() == 1;
    for (i, event) in events.iter().enumerate() {
        let path = if single {
            "/org_id".to_string()
        } else {
            format!("/events/{i}/org_id")
        };
        match caller {
            Caller::Open => {}
            Caller::Org(org) if org == &event.org_id => {}
            Caller::Org(_) if !state.auth.knows(&event.org_id) => {
                return Err(IngestError::UnknownOrg {
                    path,
                    org: event.org_id.clone(),
                });
            }
            Caller::Org(_) => {
                return Err(IngestError::WrongOrg {
                    path,
                    org: event.org_id.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Writes every event in one atomic, deduplicating round trip, and answers only once the
/// queue has acknowledged it.
async fn enqueue(state: &IngestState, events: &[Event]) -> Result<Accepted, IngestError> {
    if state.lifecycle.is_draining() && !state.queue.is_durable() {
        // The in-process queue dies with this process: do not take what cannot be delivered.
        return Err(IngestError::QueueUnavailable {
            retry_after: state.config.queue.retry_after,
        });
    }
    let now = now_ms();
    let jobs = event_jobs(events, now).map_err(|e| IngestError::Internal(e.to_string()))?;
    let retry_after = state.config.queue.retry_after;
    let outcome = state
        .queue
        .enqueue_replicated(&jobs, state.config.dedupe_window)
        .await
        .map_err(|e| queue_refusal(e, retry_after))?;
    state.seen.accepted(events).await;
    let mut accepted = Accepted {
        accepted: 0,
        duplicates: 0,
        ids: Vec::with_capacity(events.len()),
        gaps: 0,
    };
    for (event, result) in events.iter().zip(outcome.results) {
        match result {
            Enqueued::New(id) => {
                tracing::info!(event_id = %id, org = %event.org_id, object = %event.object, record = %event.record_id, change = event.change_type.as_str(), "event queued");
                accepted.accepted += 1;
                accepted.ids.push(id);
            }
            Enqueued::Duplicate(id) => {
                tracing::info!(event_id = %id, record = %event.record_id, "duplicate event ignored");
                accepted.duplicates += 1;
                accepted.ids.push(id);
            }
        }
    }
    Ok(accepted)
}
