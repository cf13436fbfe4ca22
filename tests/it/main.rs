//! The integration tests: one binary, so the harness and the dependencies are linked once. Each
//! module is one area; every test spawns its own Redis, sfrelay and emulators on loopback.

mod api_budget;
mod approval_gates;
mod backpressure;
mod blackhole;
mod cli;
mod credentials;
mod delivery;
mod edge;
mod enrichment;
mod exactly_once;
mod faults;
mod golden;
mod ingest;
mod openapi_contract;
mod ordering;
mod people;
mod poison;
mod pubsub;
mod queue_redis;
mod redis_modes;
mod resilience;
mod salesforce;
mod salesforce_acting;
mod salesforce_ingest;
mod salesforce_write;
mod schedules;
mod shutdown;
mod slack_actions;
mod slack_inbound;
mod slack_interact;
mod slack_surfaces;
mod startup;
mod support;
mod walkthrough;
