//! Requests made with a person's own connection ([`Actor::Connection`]): the person signed in
//! to Salesforce through the web-server flow, and their tokens are kept (sealed, in the store)
//! by `crate::people`. The client knows only this trait: it asks for the current access
//! token, and after a 401 for a refreshed one, so the integration path is untouched and the
//! tokens' storage stays in one place.
//!
//! [`Actor::Connection`]: super::Actor::Connection

use std::sync::Arc;

use async_trait::async_trait;

use super::auth::AccessToken;
use super::error::SalesforceError;
use crate::event::SalesforceId;

/// Whose connection: the Slack workspace and user it belongs to, and the Salesforce username
/// it signed in as (for messages; it is not what finds the tokens).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub team: String,
    pub user: String,
    pub username: String,
}

/// Where the tokens of people's connections come from.
#[async_trait]
pub trait ConnectionTokens: Send + Sync + 'static {
    /// The connection's current access token; [`SalesforceError::ConnectionExpired`] when it
    /// has expired (or is gone) and the person must connect again.
    async fn access_token(
        &self,
        org: &SalesforceId,
        who: &Connection,
    ) -> Result<Arc<AccessToken>, SalesforceError>;

    /// A token to replace `stale`, which Salesforce refused: another request's refresh when
    /// one happened meanwhile, else one refresh with the refresh token. A refused refresh
    /// marks the connection expired and answers [`SalesforceError::ConnectionExpired`].
    async fn refresh(
        &self,
        org: &SalesforceId,
        who: &Connection,
        stale: &Arc<AccessToken>,
    ) -> Result<Arc<AccessToken>, SalesforceError>;
}
