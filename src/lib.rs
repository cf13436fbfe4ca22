//! sfrelay turns Salesforce record changes into Slack messages people act on.
//!
//! Data flows one way: `ingest` (HTTP, auth, validation) → `queue` (Redis list) → `worker`
//! → `routing` (what to send) → `render` (Block Kit) → `slack`.

pub mod app;
pub mod check;
pub mod config;
pub mod deliver;
pub mod event;
pub mod ingest;
pub mod queue;
pub mod reconcile;
pub mod render;
pub mod retry;
pub mod routing;
pub mod salesforce;
pub mod schedule;
pub mod slack;
pub mod task;
pub mod telemetry;
pub mod worker;
