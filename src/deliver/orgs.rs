//! The per-org facts templates need (record links), and the render context built from them.

use std::collections::HashMap;

use crate::config::OrgConfig;
use crate::event::{Event, SalesforceId};
use crate::render::template::RenderContext;

/// Each org's instance URL, from the configuration.
#[derive(Debug, Default)]
pub struct OrgDirectory {
    instance_urls: HashMap<SalesforceId, String>,
}

impl OrgDirectory {
    pub fn new(orgs: &[OrgConfig]) -> Self {
        OrgDirectory {
            instance_urls: orgs
                .iter()
                .filter_map(|o| Some((o.id.clone(), o.instance_url.clone()?)))
                .collect(),
        }
    }

    pub fn instance_url(&self, org: &SalesforceId) -> Option<&str> {
        self.instance_urls.get(org).map(String::as_str)
    }

    /// A render context for `event` with the given resolved users and extra variables.
    pub fn context<'a>(
        &'a self,
        event: &'a Event,
        users: &'a HashMap<String, String>,
        extra: &'a serde_json::Value,
    ) -> RenderContext<'a> {
        RenderContext {
            event,
            instance_url: self.instance_url(&event.org_id),
            users,
            extra,
        }
    }
}
