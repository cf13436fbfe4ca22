//! The application: `AppState`, the router built in one place, and `serve`, which wires the
//! queue, workers and HTTP server together and drains them on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::future::IntoFuture;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError};
use crate::deliver::{Deliverer, OrgDirectory, Workspaces};
use crate::ingest::{self, IngestState, auth::Authenticator};
use crate::jobs::Jobs;
use crate::keys::Workspace;
pub use crate::lifecycle::Lifecycle;
use crate::queue::{Queue, QueueError, memory::MemoryQueue, redis::RedisQueue};
use crate::render::template::RenderOptions;
use crate::routing::{LoadError, RouteSet};
use crate::salesforce::{ClientOptions, SalesforceClient};
use crate::slack::{Rate, SlackClient, SlackError, SlackSink};
use crate::store::{MemoryStore, RedisStore, Store};
use crate::telemetry;
use crate::worker::{WorkerContext, WorkerPool};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    #[error("slack client: {0}")]
    Slack(#[from] SlackError),
    #[error("salesforce client: {0}")]
    Salesforce(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Server(std::io::Error),
    #[error("routes and templates have {} problem(s):\n{}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Routes(Vec<LoadError>),
}

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub queue: Arc<dyn Queue>,
    pub auth: Arc<Authenticator>,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: PrometheusHandle,
    pub seen: Arc<crate::jobs::reconcile::SeenAtIngest>,
}

impl FromRef<AppState> for IngestState {
    fn from_ref(state: &AppState) -> Self {
        IngestState {
            config: state.config.clone(),
            queue: state.queue.clone(),
            auth: state.auth.clone(),
            lifecycle: state.lifecycle.clone(),
            seen: state.seen.clone(),
        }
    }
}

/// The HTTP API, built in one place.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route("/v1/cdc", post(ingest::post_cdc))
        .route(
            "/v1/outbound-messages/{token}",
            post(ingest::post_outbound_message),
        )
        .route("/openapi.json", get(ingest::get_openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

/// Liveness: the process serves.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: the queue answers, configuration is loaded, no shutdown is under way.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let queue = match tokio::time::timeout(Duration::from_secs(2), state.queue.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    let draining = state.lifecycle.is_draining();
    let ready = queue == "ok" && !draining;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "queue": queue,
            "queue_durable": state.queue.is_durable(),
            "config": "ok",
            "shutdown": if draining { "draining" } else { "running" },
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text format; queue depth is read at scrape time.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok(Ok(depth)) = tokio::time::timeout(Duration::from_secs(2), state.queue.depth()).await {
        for (name, value) in [
            ("ready", depth.ready),
            ("in_flight", depth.in_flight),
            ("delayed", depth.delayed),
            ("dead", depth.dead),
        ] {
            metrics::gauge!("sfrelay_queue_depth", "state" => name).set(value as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The queue and the delivery state store that lives beside it (same Redis, or both memory).
pub type Backends = (Arc<dyn Queue>, Arc<dyn Store>);

/// Builds the queue (and the delivery state store beside it) the configuration asks for,
/// saying loudly when it is not durable.
pub fn build_queue(config: &Config) -> Result<Backends, QueueError> {
    let (queue, store): (Arc<dyn Queue>, Arc<dyn Store>) = match &config.redis_url {
        Some(url) => {
            let redis = Arc::new(RedisQueue::new(
                url.expose(),
                &config.queue.namespace,
                config.queue.high_water_mark,
            )?);
            (redis.clone(), Arc::new(RedisStore::new(redis)))
        }
        None => {
            tracing::warn!(
                "REDIS_URL is not set: using the IN-PROCESS queue. It is NOT durable (events \
                 queued but not yet posted are lost if the process stops) and serves ONE \
                 replica only. Set REDIS_URL for production."
            );
            (
                Arc::new(MemoryQueue::new(config.queue.high_water_mark)),
                Arc::new(MemoryStore::default()),
            )
        }
    };
    metrics::gauge!("sfrelay_queue_durable").set(if queue.is_durable() { 1.0 } else { 0.0 });
    Ok((queue, store))
}

/// The Slack side: the default workspace, and one per org with its own bot token.
pub fn build_workspaces(
    config: &Config,
    slack: SlackSink,
    store: Arc<dyn Store>,
    orgs: Arc<OrgDirectory>,
) -> Result<Workspaces, ServeError> {
    let rate = Rate {
        interval: config.slack.channel_interval,
        burst: config.slack.channel_burst,
    };
    let make = |slack: SlackSink, workspace: Workspace| {
        Arc::new(Deliverer::new(
            slack,
            store.clone(),
            orgs.clone(),
            rate,
            workspace,
        ))
    };
    let mut by_org = std::collections::HashMap::new();
    for org in &config.orgs {
        if let Some(token) = &org.slack_token {
            let sink = SlackSink::Api(SlackClient::new(
                &config.slack.api_base,
                token.clone(),
                config.slack.timeout,
            )?);
            check_slack_token(&sink);
            by_org.insert(org.id.clone(), make(sink, Workspace::of_org(&org.id)));
        }
    }
    Ok(Workspaces::new(
        make(slack, Workspace::default_app()),
        by_org,
    ))
}

/// What the job handlers share: the queue and store, routes, Slack per workspace, and
/// Salesforce for the orgs with API credentials.
pub fn build_jobs(
    config: &Config,
    backends: Backends,
    slack: SlackSink,
    routes: Arc<ArcSwap<RouteSet>>,
) -> Result<Jobs, ServeError> {
    let (queue, store) = backends;
    let orgs = Arc::new(OrgDirectory::new(&config.orgs));
    let workspaces = build_workspaces(config, slack, store.clone(), orgs.clone())?;
    Ok(Jobs {
        queue,
        store,
        routes,
        orgs,
        salesforce: build_salesforce(config)?,
        slack: Arc::new(workspaces),
        watched: Arc::new(crate::jobs::reconcile::Watched::new(&config.orgs)),
        dedupe_window: config.dedupe_window,
        max_age: config.queue.max_age,
    })
}

/// The Salesforce API client for the orgs that have credentials (none: `None`).
pub fn build_salesforce(config: &Config) -> Result<Option<Arc<SalesforceClient>>, ServeError> {
    if config.salesforce.is_empty() {
        return Ok(None);
    }
    let client = SalesforceClient::new(config.salesforce.clone(), ClientOptions::default())
        .map_err(|e| ServeError::Salesforce(e.to_string()))?;
    tracing::info!(
        orgs = config.salesforce.len(),
        "Salesforce API access configured"
    );
    Ok(Some(Arc::new(client)))
}

/// Loads every route and template the configuration names.
pub fn load_routes(config: &Config) -> Result<RouteSet, Vec<LoadError>> {
    RouteSet::load(
        &config.routes_dir,
        &config.templates_dir,
        RenderOptions {
            time_zone: config.time_zone,
        },
    )
}

/// Runs the service until SIGTERM or SIGINT, then drains: readiness turns 503, workers stop
/// taking jobs, jobs in flight get the grace period to finish or go back to the queue.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let metrics = telemetry::metrics();
    let routes = load_routes(&config).map_err(ServeError::Routes)?;
    tracing::info!(
        routes = routes.routes.len(),
        templates = routes.templates.names().len(),
        "routes and templates loaded"
    );
    let routes = Arc::new(ArcSwap::from_pointee(routes));
    let (queue, store) = build_queue(&config)?;
    let auth = Arc::new(Authenticator::new(&config.orgs)?);
    if auth.is_open() {
        tracing::warn!(
            "no org has a credential: accepting events for any org without authentication \
             (allowed only because sfrelay listens on loopback)"
        );
    }
    let slack = SlackSink::from_config(&config.slack)?;
    check_slack_token(&slack);
    let jobs = Arc::new(build_jobs(
        &config,
        (queue.clone(), store.clone()),
        slack,
        routes.clone(),
    )?);
    spawn_reload_on_sighup(config.clone(), routes.clone());

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let lifecycle = Arc::new(Lifecycle::default());
    let state = AppState {
        config: config.clone(),
        queue: queue.clone(),
        auth,
        lifecycle: lifecycle.clone(),
        metrics,
        seen: Arc::new(crate::jobs::reconcile::SeenAtIngest::new(
            jobs.store.clone(),
            jobs.watched.clone(),
        )),
    };

    let stop = CancellationToken::new();
    let abandon = CancellationToken::new();
    if let Some(client) = jobs.salesforce.clone() {
        tokio::spawn(crate::jobs::reconcile::run(
            client,
            store.clone(),
            queue.clone(),
            config.orgs.clone(),
            config.dedupe_window,
            stop.clone(),
        ));
    }
    tokio::spawn(crate::jobs::clock::run(
        queue.clone(),
        store,
        routes,
        config.salesforce.iter().map(|c| c.org_id.clone()).collect(),
        config.dedupe_window,
        stop.clone(),
    ));
    let pool = WorkerPool::spawn(
        WorkerContext {
            queue,
            jobs,
            queue_config: config.queue.clone(),
        },
        config.workers.count,
        stop.clone(),
        abandon.clone(),
    );

    let local = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!(addr = %local, workers = config.workers.count, "sfrelay listening");

    // Serve HTTP until the workers have drained, so readiness can say 503 meanwhile.
    let http_stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router(state))
            .with_graceful_shutdown(http_stop.clone().cancelled_owned())
            .into_future(),
    );

    wait_for_signal().await;
    tracing::info!("shutdown requested: readiness is now 503, draining workers");
    lifecycle.start_draining();
    stop.cancel();

    let grace = config.workers.shutdown_grace;
    let joined = tokio::spawn(pool.join());
    let abort = joined.abort_handle();
    tokio::select! {
        _ = joined => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over: returning unfinished jobs to the queue");
            abandon.cancel();
            // Workers release their job and stop at once now; wait briefly for the writes.
            tokio::time::sleep(Duration::from_millis(500)).await;
            abort.abort();
        }
    }
    http_stop.cancel();
    match server.await {
        Ok(result) => result.map_err(ServeError::Server)?,
        Err(e) => tracing::error!(error = %e, "HTTP server task failed"),
    }
    tracing::info!("sfrelay stopped");
    Ok(())
}

/// On SIGHUP (a ConfigMap changed under the pod), loads routes and templates again: a valid
/// set replaces the running one at once; an invalid one is refused with its reasons and the
/// running set stays.
fn spawn_reload_on_sighup(config: Arc<Config>, routes: Arc<ArcSwap<RouteSet>>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; routes reload only on restart");
            return;
        };
        while hangup.recv().await.is_some() {
            match load_routes(&config) {
                Ok(set) => {
                    let count = set.routes.len();
                    routes.store(Arc::new(set));
                    metrics::counter!("sfrelay_config_reloads_total", "result" => "ok")
                        .increment(1);
                    tracing::info!(routes = count, "routes and templates reloaded");
                }
                Err(errors) => {
                    metrics::counter!("sfrelay_config_reloads_total", "result" => "refused")
                        .increment(1);
                    for e in &errors {
                        tracing::error!(problem = %e, "reload refused");
                    }
                    tracing::error!(
                        problems = errors.len(),
                        "reload refused: the running routes and templates stay"
                    );
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (config, routes);
}

/// Checks the bot token at start-up without holding up ingest: a wrong token is said clearly
/// in the log and kept visible as a metric.
fn check_slack_token(slack: &SlackSink) {
    let SlackSink::Api(client) = slack else {
        tracing::warn!("SLACK_BOT_TOKEN is not set: messages are written to the log, not posted");
        return;
    };
    let client = client.clone();
    tokio::spawn(async move {
        match client.auth_test().await {
            Ok(identity) => {
                metrics::gauge!("sfrelay_slack_token_valid").set(1.0);
                tracing::info!(team = %identity.team, bot = %identity.user, "Slack token accepted");
            }
            Err(e) => {
                metrics::gauge!("sfrelay_slack_token_valid").set(0.0);
                tracing::error!(error = %e, "the Slack bot token was NOT accepted (auth.test failed); events are still queued and will be posted once the token works");
            }
        }
    });
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
