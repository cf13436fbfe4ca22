//! Which org and record a link names. An org's hosts come from its instance URL: a My Domain
//! `acme.my.salesforce.com` also answers as `acme.lightning.force.com`, a sandbox
//! `acme--uat.sandbox.my.salesforce.com` as `acme--uat.sandbox.lightning.force.com`. The org is
//! the one whose host the link is on — never guessed from the record.
//!
//! Record links: Lightning `/lightning/r/<Object>/<Id>/view` (and `/related/…`, or with no
//! object), Classic `/<Id>`. A bare Id names no org and no object; the object is then read
//! from the Id's key prefix for the standard objects cards know.

use reqwest::Url;

use crate::event::SalesforceId;

/// A record a link or Id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// The org whose host the link is on; `None` for a bare Id.
    pub org: Option<SalesforceId>,
    pub object: String,
    pub id: SalesforceId,
}

/// The hosts each org answers on.
#[derive(Debug, Clone, Default)]
pub struct OrgHosts {
    hosts: Vec<(String, SalesforceId)>,
}

impl OrgHosts {
    /// The hosts of every org with an instance URL.
    pub fn of(orgs: &crate::deliver::OrgDirectory) -> Self {
        OrgHosts::new(orgs.instance_urls().map(|(o, u)| (o, Some(u))))
    }

    pub fn new<'a>(orgs: impl IntoIterator<Item = (&'a SalesforceId, Option<&'a str>)>) -> Self {
        let mut hosts = Vec::new();
        for (org, instance_url) in orgs {
            let Some(host) = instance_url
                .and_then(|u| Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            else {
                continue;
            };
            if let Some(name) = host.strip_suffix(".my.salesforce.com") {
                hosts.push((format!("{name}.lightning.force.com"), org.clone()));
            }
            hosts.push((host, org.clone()));
        }
        OrgHosts { hosts }
    }

    /// The org answering on `host`.
    pub fn org_of(&self, host: &str) -> Option<&SalesforceId> {
        let host = host.to_ascii_lowercase();
        self.hosts.iter().find(|(h, _)| *h == host).map(|(_, o)| o)
    }

    /// Every host, for the app manifest's unfurl domains and for the README.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|(h, _)| h.as_str())
    }
}

/// The object of a standard record Id's key prefix.
fn object_of_prefix(id: &SalesforceId) -> Option<&'static str> {
    Some(match &id.as_str()[..3] {
        "001" => "Account",
        "003" => "Contact",
        "005" => "User",
        "006" => "Opportunity",
        "00Q" => "Lead",
        "500" => "Case",
        "00T" => "Task",
        "701" => "Campaign",
        "800" => "Contract",
        _ => return None,
    })
}

/// Reads a link (as Slack writes it, maybe in `<…>` or `<…|label>`) or a bare Id.
pub fn parse(text: &str, hosts: &OrgHosts) -> Result<RecordRef, String> {
    let text = text.trim().trim_start_matches('<').trim_end_matches('>');
    let text = text.split('|').next().unwrap_or(text);
    if !text.contains('/') {
        let id =
            SalesforceId::parse(text).map_err(|e| format!("“{text}” is not a record Id: {e}"))?;
        let object = object_of_prefix(&id).ok_or_else(|| {
            format!("sfrelay cannot tell which object {id} is; paste the record's Lightning link instead")
        })?;
        return Ok(RecordRef {
            org: None,
            object: object.to_owned(),
            id,
        });
    }
    let url = Url::parse(text).map_err(|_| format!("“{text}” is not a link"))?;
    if url.scheme() != "https" {
        return Err("only https Salesforce links are looked up".into());
    }
    let host = url.host_str().unwrap_or_default();
    let org = hosts
        .org_of(host)
        .ok_or_else(|| format!("{host} is not the domain of an org sfrelay serves"))?
        .clone();
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    let (object, id) = match segments.as_slice() {
        ["lightning", "r", object, id, ..] if SalesforceId::parse(id).is_ok() => {
            (Some((*object).to_owned()), *id)
        }
        ["lightning", "r", id, ..] => (None, *id),
        [id, ..] => (None, *id),
        [] => return Err("the link names no record".into()),
    };
    let id = SalesforceId::parse(id).map_err(|_| "the link names no record".to_string())?;
    let object = match object {
        Some(o) if o.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => o,
        Some(_) => return Err("the link's object is not an API name".into()),
        None => object_of_prefix(&id)
            .ok_or_else(|| format!("sfrelay cannot tell which object {id} is from this link"))?
            .to_owned(),
    };
    Ok(RecordRef {
        org: Some(org),
        object,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> (SalesforceId, SalesforceId, OrgHosts) {
        let prod = SalesforceId::parse("00D5g000004ABCdEAO").unwrap();
        let sandbox = SalesforceId::parse("00D000000000001AAA").unwrap();
        let hosts = OrgHosts::new([
            (&prod, Some("https://acme.my.salesforce.com")),
            (
                &sandbox,
                Some("https://acme--uat.sandbox.my.salesforce.com"),
            ),
        ]);
        (prod, sandbox, hosts)
    }

    #[test]
    fn lightning_classic_and_sandbox_links_name_their_org() {
        let (prod, sandbox, hosts) = hosts();
        let r = parse(
            "https://acme.lightning.force.com/lightning/r/Opportunity/006000000000001AAA/view",
            &hosts,
        )
        .unwrap();
        assert_eq!(
            (r.org.as_ref(), r.object.as_str()),
            (Some(&prod), "Opportunity")
        );
        let r = parse(
            "<https://acme.my.salesforce.com/500000000000001AAA|Case 42>",
            &hosts,
        )
        .unwrap();
        assert_eq!((r.org.as_ref(), r.object.as_str()), (Some(&prod), "Case"));
        let r = parse(
            "https://acme--uat.sandbox.lightning.force.com/lightning/r/Invoice__c/a01000000000001AAA/view",
            &hosts,
        )
        .unwrap();
        assert_eq!(
            (r.org.as_ref(), r.object.as_str()),
            (Some(&sandbox), "Invoice__c")
        );
    }

    #[test]
    fn bare_ids_and_strangers_are_told_apart() {
        let (_, _, hosts) = hosts();
        let r = parse("006000000000001AAA", &hosts).unwrap();
        assert_eq!((r.org, r.object.as_str()), (None, "Opportunity"));
        for bad in [
            "https://evil.example/006000000000001AAA",
            "http://acme.my.salesforce.com/006000000000001AAA",
            "https://acme.my.salesforce.com/",
            "a01000000000001AAA",
            "006000000000001AAB",
        ] {
            assert!(parse(bad, &hosts).is_err(), "{bad}");
        }
    }
}
