//! The application: `AppState`, the router built in one place, and `serve`, which wires the
//! queue, workers and HTTP server together and drains them on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use arc_swap::ArcSwap;

use crate::config::Auth;
use crate::config::{Config, ConfigError};
use crate::crypto::Cipher;
use crate::deliver::{Deliverer, OrgDirectory, Workspaces};
use crate::edge::{self, ConcurrencyLimit, RequestTimeout};
use crate::ingest::{self, IngestState, auth::Authenticator};
use crate::jobs::Jobs;
use crate::keys::Workspace;
pub use crate::lifecycle::Lifecycle;
use crate::people::People;
use crate::queue::redis::{RedisQueue, ReplicaAck};
use crate::queue::{Queue, QueueError, memory::MemoryQueue, stall::TakeWatch};
use crate::render::template::RenderOptions;
use crate::routing::{LoadError, RouteSet};
use crate::salesforce::vault::RefreshTokenVault;
use crate::salesforce::{ClientOptions, SalesforceClient};
use crate::slack::inbound::{self, InboundState, SigningApps};
use crate::slack::{AppPause, Rate, SlackClient, SlackError, SlackSink};
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
    #[error("{0}")]
    Redis(#[from] crate::queue::checks::CheckError),
    #[error("slack client: {0}")]
    Slack(#[from] SlackError),
    #[error("salesforce client: {0}")]
    Salesforce(String),
    #[error("people: {0}")]
    People(#[from] crate::people::PeopleError),
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
    /// Each Slack app's state (paused or not), for `/readyz`.
    pub slack_apps: Arc<Workspaces>,
    /// Each worker's take clock: a worker stuck on Redis makes the process not ready.
    pub takes: Arc<TakeWatch>,
    pub seen: Arc<crate::jobs::reconcile::SeenAtIngest>,
    /// The signing secrets `/slack/*` is verified with; none: not served.
    pub slack_inbound: Arc<SigningApps>,
    /// The running routes (their buttons, for the modals a click opens at once).
    pub routes: Arc<ArcSwap<RouteSet>>,
    /// Each Pub/Sub subscription's state, for `/readyz`.
    pub subscriptions: Arc<crate::salesforce::pubsub::Statuses>,
    /// People's own connections, Preferred and Default orgs (the sign-in pages, and the
    /// Slack surfaces).
    pub people: Arc<People>,
    /// The Salesforce client (each org's API budget, for `/readyz`); `None` without API
    /// credentials.
    pub salesforce: Option<Arc<SalesforceClient>>,
}

impl FromRef<AppState> for Arc<People> {
    fn from_ref(state: &AppState) -> Self {
        state.people.clone()
    }
}

impl FromRef<AppState> for InboundState {
    fn from_ref(state: &AppState) -> Self {
        InboundState {
            config: state.config.clone(),
            queue: state.queue.clone(),
            apps: state.slack_inbound.clone(),
            routes: state.routes.clone(),
            slack: state.slack_apps.clone(),
        }
    }
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

/// The HTTP API, built in one place. Ingest requests share the concurrency limit; every request
/// has the whole-request timeout. `/metrics` is here unless it has a listener of its own.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let mut ingest = Router::new().route("/v1/events", post(ingest::post_events));
    if !state.slack_inbound.is_off() {
        ingest = ingest
            .route("/slack/interactions", post(inbound::post_interactions))
            .route("/slack/commands", post(inbound::commands::post_commands))
            .route("/slack/events", post(inbound::events::post_events));
    }
    let ingest = ingest
        .route("/v1/cdc", post(ingest::post_cdc))
        .route(
            "/v1/outbound-messages/{token}",
            post(ingest::post_outbound_message),
        )
        .route_layer(from_fn_with_state(
            ConcurrencyLimit::new(config.http.max_concurrent_requests),
            edge::limit_concurrency,
        ));
    let mut router = Router::new()
        .merge(ingest)
        .route("/openapi.json", get(ingest::get_openapi))
        .route("/oauth/salesforce/start", get(crate::people::get_start))
        .route(
            "/oauth/salesforce/callback",
            get(crate::people::get_callback),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    if config.metrics_listen.is_none() {
        router = router.route("/metrics", get(metrics));
    }
    with_edge_layers(router.with_state(state), &config)
}

/// `/metrics` alone, for `metrics_listen`.
pub fn metrics_router(state: AppState) -> Router {
    let config = state.config.clone();
    with_edge_layers(
        Router::new()
            .route("/metrics", get(metrics))
            .with_state(state),
        &config,
    )
}

fn with_edge_layers(router: Router, config: &Config) -> Router {
    router
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(from_fn_with_state(
            RequestTimeout(config.http.request_timeout),
            edge::time_out_requests,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
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
    let workers = state.takes.verdict().err();
    let ready = queue == "ok" && !draining && workers.is_none();
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "queue": queue,
            "queue_durable": state.queue.is_durable(),
            "workers": workers.as_deref().unwrap_or("ok"),
            "config": "ok",
            "shutdown": if draining { "draining" } else { "running" },
            // A paused app is named here without failing readiness: its jobs wait.
            "slack_apps": state.slack_apps.status(),
            // A stream that is down is named without failing readiness: its changes wait in
            // Salesforce (72 hours) and are fetched from the cursor once it is back.
            "subscriptions": state.subscriptions.json(),
            // An org whose API allowance runs short is named without failing readiness: the
            // work it holds back waits.
            "salesforce_budget": budget_detail(state.salesforce.as_deref()),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Each org whose API usage holds work back, and what waits; `{}` when none does.
fn budget_detail(client: Option<&SalesforceClient>) -> serde_json::Value {
    let mut held = serde_json::Map::new();
    for (org, usage, need) in client.map(|c| c.budget_holding()).unwrap_or_default() {
        let waits = match need {
            crate::salesforce::budget::Need::Low => "low-priority work waits",
            _ => "only high-priority work runs",
        };
        held.insert(
            org,
            json!({"used": usage.used, "limit": usage.limit, "holding": waits}),
        );
    }
    serde_json::Value::Object(held)
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
            let redis = Arc::new(RedisQueue::with_mode(
                url.expose(),
                &config.queue.redis,
                &config.queue.namespace,
                config.queue.high_water_mark,
                ReplicaAck {
                    replicas: config.queue.min_replicas_acked,
                    timeout: config.queue.replica_ack_timeout,
                },
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

/// Where messages go: the log when `[slack] dry_run` is on or there is no token, else Slack.
pub fn build_slack_sink(config: &Config) -> Result<SlackSink, SlackError> {
    if config.slack.dry_run {
        return Ok(SlackSink::Log);
    }
    SlackSink::from_config(&config.slack)
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
    let mut pauses = Vec::new();
    let mut make = |slack: SlackSink, workspace: Workspace, app: String| {
        let pause = match &slack {
            SlackSink::Api(client) => {
                let pause = Arc::new(AppPause::new(
                    app,
                    &workspace,
                    store.clone(),
                    config.slack.token_check_interval,
                ));
                pauses.push((pause.clone(), client.clone()));
                Some(pause)
            }
            SlackSink::Log => None,
        };
        Arc::new(Deliverer::new(
            slack,
            store.clone(),
            orgs.clone(),
            rate,
            workspace,
            pause,
        ))
    };
    let mut by_org = std::collections::HashMap::new();
    for org in &config.orgs {
        if let Some(token) = org.slack_token.as_ref().filter(|_| !config.slack.dry_run) {
            let sink = SlackSink::Api(SlackClient::new(
                &config.slack.api_base,
                token.clone(),
                config.slack.timeout,
            )?);
            let deliverer = make(sink, Workspace::of_org(&org.id), org.id.to_string());
            by_org.insert(org.id.clone(), deliverer);
        }
    }
    let default = make(slack, Workspace::default_app(), "default".into());
    Ok(Workspaces::new(default, by_org).with_pauses(pauses))
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
    let people = Arc::new(People::new(config, store.clone())?);
    let salesforce = build_salesforce(config, store.clone(), people.clone())?;
    let users = salesforce
        .clone()
        .map(|sf| Arc::new(crate::salesforce::UserDirectory::new(sf)));
    let picklists = salesforce
        .clone()
        .map(|sf| Arc::new(crate::salesforce::Picklists::new(sf)));
    Ok(Jobs {
        queue,
        store,
        routes,
        orgs,
        salesforce,
        slack: Arc::new(workspaces),
        watched: Arc::new(crate::jobs::reconcile::Watched::new(&config.orgs)),
        dedupe_window: config.dedupe_window,
        max_age: config.queue.max_age,
        caps: config.workers.caps,
        // Half the workers may wait in place for a batch; the rest keep taking jobs, which is
        // what fills it.
        enrich_batches: (!config.workers.enrich_batch_window.is_zero()).then(|| {
            crate::jobs::enrich::batch::Batcher::new(
                config.workers.enrich_batch_window,
                config.workers.count / 2,
            )
        }),
        cards: Arc::new(config.cards.clone()),
        last_events: Arc::default(),
        topics: Arc::new(
            config
                .orgs
                .iter()
                .map(|o| {
                    (
                        o.id.clone(),
                        o.subscribe.iter().map(|s| s.topic.clone()).collect(),
                    )
                })
                .collect(),
        ),
        replies: Arc::new(crate::actions::replies::Replies::new(
            &config.slack.api_base,
            config.orgs.iter().map(|o| o.id.clone()).collect(),
            config.slack.timeout,
        )),
        users,
        picklists,
        people,
    })
}

/// The Salesforce API client for the orgs that have credentials (none: `None`), keeping
/// rotated refresh tokens in `store`, encrypted, when `SFRELAY_ENCRYPTION_KEY` is set, and
/// running people's own connections with the tokens `connections` keeps.
pub fn build_salesforce(
    config: &Config,
    store: Arc<dyn Store>,
    connections: Arc<dyn crate::salesforce::ConnectionTokens>,
) -> Result<Option<Arc<SalesforceClient>>, ServeError> {
    if config.salesforce.is_empty() {
        return Ok(None);
    }
    let cipher = config
        .encryption_key
        .as_ref()
        .map(|key| Arc::new(Cipher::new(key)));
    let refreshing = config
        .salesforce
        .iter()
        .any(|c| matches!(c.auth, Auth::RefreshToken { .. }));
    if refreshing && cipher.is_none() {
        tracing::warn!(
            "SFRELAY_ENCRYPTION_KEY is not set: a refresh token that Salesforce rotates is kept \
             in this process only. After a restart, or on another replica, the configured one \
             is presented again, which Salesforce may have revoked. Set SFRELAY_ENCRYPTION_KEY \
             (32 random bytes, base64) to keep rotated tokens in Redis, encrypted."
        );
    }
    let client = SalesforceClient::new(config.salesforce.clone(), ClientOptions::default())
        .map_err(|e| ServeError::Salesforce(e.to_string()))?
        .with_vault(RefreshTokenVault::new(store, cipher))
        .with_connections(connections);
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
    config.refuse_silent_fallbacks()?;
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
    if let Some(url) = &config.redis_url {
        let public = !config.listen.ip().is_loopback();
        crate::queue::checks::verify(url.expose(), &config.queue.redis, public).await?;
    }
    let auth = Arc::new(Authenticator::new(&config.orgs)?);
    if auth.is_open() {
        tracing::warn!(
            "no org has a credential: accepting events for any org without authentication \
             (allowed only because sfrelay listens on loopback)"
        );
    }
    let slack = build_slack_sink(&config)?;
    say_if_log_only(&slack, &config);
    let jobs = Arc::new(build_jobs(
        &config,
        (queue.clone(), store.clone()),
        slack,
        routes.clone(),
    )?);
    spawn_reload_on_sighup(config.clone(), routes.clone());

    let listener = bind(config.listen).await?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let lifecycle = Arc::new(Lifecycle::default());
    let takes = Arc::new(TakeWatch::new(
        config.workers.count,
        config.queue.take_stuck_after,
    ));
    let slack_inbound = Arc::new(SigningApps::from_config(&config));
    if slack_inbound.is_off() {
        tracing::info!("Slack inbound is off (no signing secret)");
    }
    let subscriptions = Arc::new(crate::salesforce::pubsub::Statuses::default());
    let seen = Arc::new(crate::jobs::reconcile::SeenAtIngest::new(
        jobs.store.clone(),
        jobs.watched.clone(),
    ));
    let state = AppState {
        people: jobs.people.clone(),
        salesforce: jobs.salesforce.clone(),
        subscriptions: subscriptions.clone(),
        slack_inbound,
        routes: jobs.routes.clone(),
        takes: takes.clone(),
        config: config.clone(),
        queue: queue.clone(),
        auth,
        lifecycle: lifecycle.clone(),
        metrics,
        slack_apps: jobs.slack.clone(),
        seen: seen.clone(),
    };

    let stop = CancellationToken::new();
    let abandon = CancellationToken::new();
    // Each app's token is checked now and, while it is refused, probed until it works.
    jobs.slack.watch(&stop);
    let subs = crate::salesforce::pubsub::subscriptions(&config.orgs);
    if let (Some(client), false) = (jobs.salesforce.clone(), subs.is_empty()) {
        let ctx = crate::salesforce::pubsub::Context::new(
            client,
            store.clone(),
            queue.clone(),
            seen,
            config.pubsub.clone(),
            config.dedupe_window,
            config.orgs.clone(),
            subscriptions,
        );
        crate::salesforce::pubsub::spawn_all(Arc::new(ctx), subs, stop.clone());
    }
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
            takes,
        },
        config.workers.count,
        stop.clone(),
        abandon.clone(),
    );

    // Serve HTTP until the workers have drained, so readiness can say 503 meanwhile.
    let http_stop = CancellationToken::new();
    let header_read_timeout = config.http.header_read_timeout;
    let drain = config.http.request_timeout;
    let metrics_server = match metrics_listener {
        Some(listener) => {
            let local = listener.local_addr().map_err(ServeError::Server)?;
            tracing::info!(addr = %local, "metrics listening");
            Some(tokio::spawn(edge::serve_http(
                listener,
                metrics_router(state.clone()),
                header_read_timeout,
                http_stop.clone(),
                drain,
            )))
        }
        None => None,
    };
    let local = listener.local_addr().map_err(ServeError::Server)?;
    tracing::info!(addr = %local, workers = config.workers.count, "sfrelay listening");
    let server = tokio::spawn(edge::serve_http(
        listener,
        router(state),
        header_read_timeout,
        http_stop.clone(),
        drain,
    ));

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
    for task in std::iter::once(server).chain(metrics_server) {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "HTTP server task failed");
        }
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

/// Says when nothing is posted at all. (Each app's token is checked by its pause's watch.)
fn say_if_log_only(slack: &SlackSink, config: &Config) {
    if let SlackSink::Log = slack {
        if config.slack.dry_run {
            tracing::warn!("slack.dry_run is on: messages are written to the log, not posted");
        } else {
            tracing::warn!(
                "SLACK_BOT_TOKEN is not set: messages are written to the log, not posted"
            );
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
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
