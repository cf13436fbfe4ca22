//! A thin typed client for the Salesforce REST API, by concern:
//!
//! - [`client`]: [`SalesforceClient`], SOQL queries with paging, single records, API-usage
//!   metrics (`Sforce-Limit-Info`) and [`ClientOptions`];
//! - [`auth`]: OAuth tokens per org (JWT bearer and refresh-token flows), cached, fetched one
//!   at a time and refreshed once on `INVALID_SESSION_ID`;
//! - [`error`]: [`SalesforceError`] and its classification for the retry logic;
//! - [`soql`]: SOQL with values bound safely;
//! - [`vault`]: rotated refresh tokens kept in the store, encrypted.
//!
//! The credentials are configuration: [`crate::config`] reads and checks `[orgs.salesforce]`
//! into [`OrgCredentials`], which this module only consumes.
//!
//! Writes (sObject create and update) will sit next to the query client, in a module of their
//! own (`records.rs`) on the same token cache and error classification.

pub mod auth;
pub mod client;
pub mod error;
pub mod soql;
pub mod vault;

pub use crate::config::{Auth, DEFAULT_LOGIN_URL, OrgCredentials};
pub use crate::retry::Retry;
pub use auth::AccessToken;
pub use client::{
    ApiUsage, ClientOptions, DEFAULT_API_VERSION, DEFAULT_MAX_RECORDS, QueryPage, Record,
    SalesforceClient, parse_limit_info,
};
pub use error::{REQUEST_LIMIT_BACKOFF, SalesforceError, classify_code};
pub use soql::{Soql, SoqlError};
