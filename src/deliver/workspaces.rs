//! One deliverer per Slack workspace (Slack app): the default one, and one for each org with
//! its own bot token (`[orgs.slack]`). Callers say which org they act for; nothing picks the
//! default silently.

use std::collections::HashMap;
use std::sync::Arc;

use super::Deliverer;
use crate::event::SalesforceId;

pub struct Workspaces {
    default: Arc<Deliverer>,
    by_org: HashMap<SalesforceId, Arc<Deliverer>>,
}

impl Workspaces {
    pub fn new(default: Arc<Deliverer>, by_org: HashMap<SalesforceId, Arc<Deliverer>>) -> Self {
        Workspaces { default, by_org }
    }

    /// The deliverer that posts on behalf of `org`: its own app's, else the default one.
    pub fn for_org(&self, org: &SalesforceId) -> &Deliverer {
        self.by_org.get(org).unwrap_or(&self.default)
    }
}
