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
//! - [`write`]: sObject create and update, their refusals read into [`WriteError`];
//! - [`acting`]: who a request runs as ([`Actor`]): the integration user, a person through
//!   the JWT bearer flow with their username (tokens cached per (org, username)), or a
//!   person's own connection;
//! - [`connection`]: what the client asks of `crate::people` for a connection's tokens;
//! - [`search`]: SOSL searches, the person's text escaped;
//! - [`approvals`]: pending approval work items of a record, approving or rejecting one;
//! - [`picklists`]: a field's picklist values per record type (UI API), cached;
//! - [`users`]: active Users by email, cached with negative caching.

pub mod acting;
pub mod approvals;
pub mod auth;
pub mod budget;
pub mod client;
pub mod connection;
pub mod error;
pub mod picklists;
pub mod pubsub;
pub mod search;
pub mod soql;
pub mod users;
pub mod vault;
pub mod write;

pub use crate::config::{Auth, DEFAULT_LOGIN_URL, OrgCredentials};
pub use crate::retry::Retry;
pub use acting::{Actor, MAX_CACHED_USERS, USER_TOKEN_TTL};
pub use approvals::{ApprovalAction, ApprovalOutcome, Workitem};
pub use auth::AccessToken;
pub use client::{
    ApiUsage, ClientOptions, DEFAULT_API_VERSION, DEFAULT_MAX_RECORDS, QueryPage, Record,
    SalesforceClient, parse_limit_info, record_id,
};
pub use connection::{Connection, ConnectionTokens};
pub use error::{REQUEST_LIMIT_BACKOFF, SalesforceError, classify_code};
pub use picklists::{MASTER_RECORD_TYPE_ID, PicklistValue, Picklists};
pub use search::{Sosl, sosl_escape};
pub use soql::{Soql, SoqlError};
pub use users::{SalesforceUser, UserDirectory, UserLookupError};
pub use write::{CALL_OPTIONS_CLIENT, UpdateOptions, WriteError};
