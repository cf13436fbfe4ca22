//! The picklist values a person may choose for a field and record type, from the UI API
//! (`GET …/ui-api/object-info/<sobject>/picklist-values/<recordTypeId>/<field>`), cached in
//! memory per process: they change only when an admin edits the field, and a stale list costs
//! at most a refused write ([`super::write::WriteError::RestrictedPicklist`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::{SalesforceClient, is_api_name};
use super::error::SalesforceError;
use crate::event::SalesforceId;

/// The record type of objects (or records) that have none.
pub const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";
/// How long a fetched list is used before it is fetched again.
pub const PICKLIST_CACHE_TTL: Duration = Duration::from_secs(60 * 60);

/// One choice: what people see and what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PicklistValue {
    pub label: String,
    pub value: String,
}

/// (org, object, record type, field), names lower-cased.
type Key = (SalesforceId, String, String, String);
/// When a list was fetched, and the list.
type Cached = (Instant, Arc<Vec<PicklistValue>>);

/// Picklist values per org, object, record type and field, cached for a TTL.
pub struct Picklists {
    client: Arc<SalesforceClient>,
    ttl: Duration,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl Picklists {
    pub fn new(client: Arc<SalesforceClient>) -> Picklists {
        Picklists::with_ttl(client, PICKLIST_CACHE_TTL)
    }

    pub fn with_ttl(client: Arc<SalesforceClient>, ttl: Duration) -> Picklists {
        Picklists {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The values of `sobject.field` for `record_type_id` (the master record type when
    /// `None`), from the cache while fresh.
    pub async fn values(
        &self,
        org: &SalesforceId,
        sobject: &str,
        record_type_id: Option<&str>,
        field: &str,
    ) -> Result<Arc<Vec<PicklistValue>>, SalesforceError> {
        for (what, name) in [("object", sobject), ("field", field)] {
            if !is_api_name(name) {
                return Err(SalesforceError::InvalidArgument(format!(
                    "{name:?} is not an {what} API name"
                )));
            }
        }
        let record_type = match record_type_id {
            None => SalesforceId::parse(MASTER_RECORD_TYPE_ID),
            Some(id) => SalesforceId::parse(id),
        }
        .map_err(|e| SalesforceError::InvalidArgument(format!("record type Id: {e}")))?;
        let key = (
            org.clone(),
            sobject.to_ascii_lowercase(),
            record_type.as_str().to_owned(),
            field.to_ascii_lowercase(),
        );
        if let Some((at, values)) = self.lock().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(values));
        }
        let path = format!(
            "/services/data/{}/ui-api/object-info/{sobject}/picklist-values/{record_type}/{field}",
            self.client.api_version()
        );
        let answer = self
            .client
            .request(org, reqwest::Method::GET, &path, &[], None)
            .await?;
        #[derive(Deserialize)]
        struct Answer {
            values: Vec<PicklistValue>,
        }
        let parsed: Answer =
            serde_json::from_slice(&answer.bytes).map_err(|e| SalesforceError::Decode {
                org: org.clone(),
                message: format!("picklist values of {sobject}.{field}: {e}"),
            })?;
        let values = Arc::new(parsed.values);
        self.lock()
            .insert(key, (Instant::now(), Arc::clone(&values)));
        Ok(values)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
