//! The per-org facts templates and actions need (record links, who writes), and the render
//! context built from them.

use std::collections::HashMap;

use crate::config::{ActAs, OrgConfig};
use crate::event::{Event, SalesforceId};
use crate::render::template::RenderContext;

/// Each org's instance URL and `act_as`, from the configuration.
#[derive(Debug, Default)]
pub struct OrgDirectory {
    instance_urls: HashMap<SalesforceId, String>,
    act_as: HashMap<SalesforceId, ActAs>,
}

impl OrgDirectory {
    pub fn new(orgs: &[OrgConfig]) -> Self {
        OrgDirectory {
            instance_urls: orgs
                .iter()
                .filter_map(|o| Some((o.id.clone(), o.instance_url.clone()?)))
                .collect(),
            act_as: orgs.iter().map(|o| (o.id.clone(), o.act_as)).collect(),
        }
    }

    /// Who writes to `org` for a person who clicked (the integration user by default).
    pub fn act_as(&self, org: &SalesforceId) -> ActAs {
        self.act_as.get(org).copied().unwrap_or_default()
    }

    /// Every org with an instance URL, and that URL.
    pub fn instance_urls(&self) -> impl Iterator<Item = (&SalesforceId, &str)> {
        self.instance_urls.iter().map(|(o, u)| (o, u.as_str()))
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
