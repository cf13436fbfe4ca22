//! Logs and metrics, set up in one place.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Log output format (`SFRELAY_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Reads `SFRELAY_LOG_FORMAT` (`json` or `text`; text when unset).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("SFRELAY_LOG_FORMAT").ok().as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!(
                "SFRELAY_LOG_FORMAT must be `json` or `text`, got {other:?}"
            )),
        }
    }
}

/// Installs the tracing subscriber: filter from `SFRELAY_LOG` (else `default_level`), to stderr.
pub fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_env("SFRELAY_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process-wide Prometheus recorder (installed once; later calls get the same handle).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("sfrelay_delivery_latency_seconds".into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                        300.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "sfrelay_events_received_total",
        "Events received by outcome"
    );
    describe_gauge!(
        "sfrelay_queue_depth",
        "Jobs in the queue by state (ready, in_flight, delayed, dead)"
    );
    describe_histogram!(
        "sfrelay_delivery_latency_seconds",
        Unit::Seconds,
        "Time from an event's receipt to its Slack post"
    );
    describe_counter!(
        "sfrelay_slack_calls_total",
        "Slack Web API calls by method and result"
    );
    describe_counter!(
        "sfrelay_rate_limit_waits_total",
        "Deliveries postponed by a rate limit"
    );
    describe_counter!(
        "sfrelay_jobs_retried_total",
        "Delivery attempts that failed and were scheduled again"
    );
    describe_counter!(
        "sfrelay_jobs_dead_lettered_total",
        "Jobs moved to the dead-letter list"
    );
    describe_gauge!(
        "sfrelay_slack_token_valid",
        "1 when auth.test accepted the bot token, 0 when it did not"
    );
    describe_gauge!(
        "sfrelay_queue_durable",
        "1 on Redis, 0 on the in-process queue"
    );
}
