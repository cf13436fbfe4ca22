//! Which org handles a person's command or action, decided without I/O: the card's own org
//! when there is a card; else the org the person chose (Preferred); else the Default org (set
//! by an admin from Home, else `[slack] default_org`); else the only org sfrelay can call;
//! with several and nothing chosen, the person is asked.

use crate::event::SalesforceId;

/// The org to use, or why there is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgChoice {
    One(SalesforceId),
    /// Several orgs and nothing chosen: ask the person (these, in configuration order).
    Ambiguous(Vec<SalesforceId>),
    /// sfrelay can call no org at all.
    NoOrgs,
}

/// The choice, from what is known: the card's org, the person's Preferred org and the Default
/// org (each already checked to be one sfrelay serves), and the orgs sfrelay can call.
pub fn choose(
    card: Option<&SalesforceId>,
    preferred: Option<SalesforceId>,
    default: Option<SalesforceId>,
    orgs: &[SalesforceId],
) -> OrgChoice {
    if let Some(org) = card.cloned().or(preferred).or(default) {
        return OrgChoice::One(org);
    }
    match orgs {
        [] => OrgChoice::NoOrgs,
        [only] => OrgChoice::One(only.clone()),
        many => OrgChoice::Ambiguous(many.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> SalesforceId {
        SalesforceId::parse(&format!("00D00000000000{n}")).unwrap()
    }

    #[test]
    fn the_card_then_preferred_then_default_then_the_only_org() {
        let all = [id(1), id(2), id(3)];
        let one = |org| OrgChoice::One(org);
        assert_eq!(
            choose(Some(&id(3)), Some(id(1)), Some(id(2)), &all),
            one(id(3))
        );
        assert_eq!(choose(None, Some(id(1)), Some(id(2)), &all), one(id(1)));
        assert_eq!(choose(None, None, Some(id(2)), &all), one(id(2)));
        assert_eq!(
            choose(None, None, None, &all),
            OrgChoice::Ambiguous(all.to_vec())
        );
        assert_eq!(choose(None, None, None, &[id(7)]), one(id(7)));
        assert_eq!(choose(None, None, None, &[]), OrgChoice::NoOrgs);
        // A card's org wins even where sfrelay could call nothing else.
        assert_eq!(choose(Some(&id(9)), None, None, &[]), one(id(9)));
    }
}
