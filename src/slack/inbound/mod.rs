//! Slack's signed requests to sfrelay. Each is read under the edge's size cap and body timeout,
//! verified (v0 signature over the raw bytes) before anything in it is decoded, and answered
//! 200 at once: the work is a queued job, so Slack's 3 s limit never depends on Salesforce.

pub mod commands;
pub mod events;
pub mod interactions;
mod modals;
pub mod signature;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::config::{Config, Secret};
use crate::event::SalesforceId;
use crate::ingest::IngestError;
use crate::ingest::problem::Problem;
use crate::keys::DedupeKey;
use crate::queue::{NewJob, Queue, QueueError, now_ms};
use crate::task::Task;
pub use commands::SlashCommand;
pub use events::SlackEvent;
pub use interactions::{ButtonValue, Interaction};
use signature::{SignatureError, Signed};

/// The signing secrets of the Slack apps sfrelay answers: the default app's, then each org's
/// own app's.
pub struct SigningApps {
    apps: Vec<(Option<SalesforceId>, Secret<String>)>,
}

impl SigningApps {
    pub fn from_config(config: &Config) -> Self {
        let default = config.slack.signing_secret.clone().map(|s| (None, s));
        let orgs = config.orgs.iter().filter_map(|org| {
            org.slack_signing_secret
                .clone()
                .map(|s| (Some(org.id.clone()), s))
        });
        SigningApps {
            apps: default.into_iter().chain(orgs).collect(),
        }
    }

    /// Without any secret, `/slack/*` is not served at all.
    pub fn is_off(&self) -> bool {
        self.apps.is_empty()
    }
}

/// What the inbound handlers need.
#[derive(Clone)]
pub struct InboundState {
    pub config: Arc<Config>,
    pub queue: Arc<dyn Queue>,
    pub apps: Arc<SigningApps>,
    /// The running routes: the buttons whose forms a click opens at once.
    pub routes: Arc<arc_swap::ArcSwap<crate::routing::RouteSet>>,
    /// Slack per workspace, for those forms.
    pub slack: Arc<crate::deliver::Workspaces>,
}

/// Why an inbound request was refused.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error(transparent)]
    Body(IngestError),
    #[error("the request is not signed by a Slack app sfrelay answers: {0}")]
    Signature(#[from] SignatureError),
    #[error("{0}")]
    Invalid(String),
    #[error("the queue is unavailable; nothing was queued")]
    Queue(QueueError),
}

impl IntoResponse for InboundError {
    fn into_response(self) -> Response {
        match self {
            InboundError::Body(e) => e.into_response(),
            InboundError::Signature(_) => {
                Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", self.to_string())
                    .into_response()
            }
            InboundError::Invalid(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "Bad Request", self.to_string())
                    .into_response()
            }
            InboundError::Queue(_) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                self.to_string(),
            )
            .into_response(),
        }
    }
}

/// `POST /slack/interactions`: a button clicked, a modal submitted or closed.
pub async fn post_interactions(
    State(state): State<InboundState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept_interaction(&state, &headers, body).await {
        Ok(modals::Answer::Empty) => StatusCode::OK.into_response(),
        Ok(modals::Answer::Refused(body)) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => refused("interaction", e),
    }
}

/// A request whose signature verified: its raw body, and whose app it came from.
pub(crate) struct Verified {
    pub body: axum::body::Bytes,
    /// `None` for the default app, else the org whose own app signed it.
    pub app_org: Option<SalesforceId>,
}

/// Reads a `/slack/*` body under the edge's limits and verifies its signature before anything
/// in it is decoded. `Ok(None)`: Slack's unsigned `ssl_check=1`, answered empty and not read.
pub(crate) async fn verify(
    state: &InboundState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Option<Verified>, InboundError> {
    let body = crate::ingest::body::read_limited(
        headers,
        body,
        state.config.max_body_bytes,
        state.config.http.body_timeout,
    )
    .await
    .map_err(InboundError::Body)?;
    // Slack's certificate check is unsigned: answered, and nothing else in it is looked at.
    if interactions::is_ssl_check(&body) {
        metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "ssl_check").increment(1);
        return Ok(None);
    }
    let signed = Signed::from_headers(headers, chrono::Utc::now().timestamp())?;
    let app = signed.first_verifying(state.apps.apps.iter().map(|(_, s)| s), &body)?;
    let app_org = state.apps.apps[app].0.clone();
    Ok(Some(Verified { body, app_org }))
}

/// The answer to a verified request: its JSON reply, or an empty 200, or the refusal.
pub(crate) fn answer(
    what: &str,
    outcome: Result<Option<serde_json::Value>, InboundError>,
) -> Response {
    match outcome {
        Ok(Some(reply)) => (StatusCode::OK, axum::Json(reply)).into_response(),
        Ok(None) => StatusCode::OK.into_response(),
        Err(e) => refused(what, e),
    }
}

/// Counts and logs a refused request, and answers it.
pub(crate) fn refused(what: &str, e: InboundError) -> Response {
    let outcome = match &e {
        InboundError::Signature(_) => "unauthenticated",
        InboundError::Body(_) | InboundError::Invalid(_) => "invalid",
        InboundError::Queue(_) => "queue_unavailable",
    };
    metrics::counter!("sfrelay_slack_inbound_total", "outcome" => outcome).increment(1);
    tracing::warn!(error = %e, "Slack {what} refused");
    e.into_response()
}

/// Queues one job for a verified request in the high lane (a person is waiting on the other
/// end), deduplicated by `key`, and answers only once the queue has it.
pub(crate) async fn queue_for_person(
    state: &InboundState,
    key: DedupeKey,
    task: &Task,
    dedupe_for: std::time::Duration,
) -> Result<crate::queue::Enqueued, InboundError> {
    let job = NewJob::with_lane(
        uuid::Uuid::now_v7().to_string(),
        key.into(),
        task,
        now_ms(),
        crate::queue::Lane::High,
    )
    .map_err(|e| InboundError::Invalid(e.to_string()))?;
    let mut outcome = state
        .queue
        .enqueue_replicated(&[job], dedupe_for)
        .await
        .map_err(InboundError::Queue)?;
    outcome
        .results
        .pop()
        .ok_or_else(|| InboundError::Invalid("the queue answered nothing".into()))
}

async fn accept_interaction(
    state: &InboundState,
    headers: &HeaderMap,
    body: Body,
) -> Result<modals::Answer, InboundError> {
    let Some(Verified { body, app_org }) = verify(state, headers, body).await? else {
        return Ok(modals::Answer::Empty);
    };
    let payload = interactions::payload_json(&body).map_err(InboundError::Invalid)?;
    let mut interaction =
        Interaction::from_payload(&payload, app_org).map_err(InboundError::Invalid)?;
    let answer = match interaction.kind.as_str() {
        "block_actions" => {
            modals::open_if_asked(state, &mut interaction).await;
            modals::Answer::Empty
        }
        "view_submission" => modals::check_submission(&interaction),
        _ => modals::Answer::Empty,
    };
    if let modals::Answer::Refused(_) = answer {
        metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "form_errors").increment(1);
        return Ok(answer);
    }
    // The same payload delivered again (a retry) is the same job.
    let canonical =
        serde_json::to_vec(&payload).map_err(|e| InboundError::Invalid(e.to_string()))?;
    let digest: String = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let task = Task::Interaction {
        interaction: Box::new(interaction),
    };
    queue_for_person(
        state,
        DedupeKey::interaction(&digest),
        &task,
        state.config.dedupe_window,
    )
    .await?;
    metrics::counter!("sfrelay_slack_inbound_total", "outcome" => "accepted").increment(1);
    Ok(answer)
}
