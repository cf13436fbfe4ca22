//! sfrelay turns Salesforce record changes into Slack messages people act on.
//!
//! Data flows one way: `ingest` (HTTP, auth, validation) → `queue` (Redis list) → `worker`
//! → `jobs` (one handler per task kind) → `routing` (what to send) → `render` (Block Kit) →
//! `deliver` (Slack effects, through `slack`). `docs/architecture.md` has the picture.

pub mod actions;
pub mod app;
pub mod check;
pub mod config;
pub mod crypto;
pub mod deliver;
pub mod edge;
pub mod event;
pub mod ingest;
pub mod jobs;
pub mod keys;
pub mod lifecycle;
pub mod people;
pub mod queue;
pub mod render;
pub mod retry;
pub mod routing;
pub mod salesforce;
pub mod slack;
pub mod store;
pub mod surfaces;
pub mod task;
pub mod telemetry;
pub mod worker;
