//! A route's approval gate (`[gate]`): when its condition holds, the route's actions wait for a
//! person's decision. Approvers get a card with Approve / Reject; the decision is taken once,
//! recorded, written to Salesforce where configured, and then the held actions run — or not.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::route::{ChannelRef, LoadError, line_of};
use crate::render::template::{Condition, Templates};

/// What happens when nobody decides in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The approvers are reminded, and the gate waits another timeout (at most
    /// [`MAX_REMINDERS`] times).
    Remind,
    /// `escalate_to` get the card too, and the gate waits another timeout.
    Escalate,
    /// The gate is rejected; the held actions never run.
    Reject,
}

/// How many times a gate reminds before it waits in silence.
pub const MAX_REMINDERS: u32 = 3;

/// Where the decision is written in Salesforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Nowhere: only on the card and in sfrelay's record of the gate.
    Nowhere,
    /// A field of the record set to "Approved" or "Rejected".
    Field(String),
    /// A completed Task on the record saying who decided, when and why.
    Task,
}

/// A checked `[gate]`.
#[derive(Debug)]
pub struct Gate {
    /// When the gate holds the actions (always, without one).
    pub when: Option<Condition>,
    /// Who decides: emails, or paths to them in the record (`record.Owner.Manager.Email`);
    /// each gets the card by DM...
    pub approvers: Vec<String>,
    /// ...or anyone in this channel (the card is posted there).
    pub channel: Option<ChannelRef>,
    /// The approvers' card; it carries `action("gate_approve")` and `action("gate_reject")`.
    pub template: String,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    /// Who is asked (emails or paths) when the gate escalates.
    pub escalate_to: Vec<String>,
    pub record: Recorded,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GateFile {
    when: Option<Spanned<String>>,
    #[serde(default)]
    approvers: Vec<String>,
    channel: Option<Spanned<String>>,
    template: Spanned<String>,
    timeout_secs: Option<u64>,
    on_timeout: Option<OnTimeout>,
    #[serde(default)]
    escalate_to: Vec<String>,
    record_field: Option<String>,
    #[serde(default)]
    record_task: bool,
}

/// Checks a route's `[gate]`.
pub(super) fn parse(
    file: &Path,
    text: &str,
    gate: &Spanned<GateFile>,
    templates: &Templates,
    errors: &mut Vec<LoadError>,
) -> Option<Gate> {
    let line = line_of(text, gate.span().start);
    let before = errors.len();
    let mut fail = |offset: Option<usize>, message: String| {
        errors.push(LoadError {
            file: file.to_path_buf(),
            line: offset.map_or(line, |o| line_of(text, o)),
            message: format!("gate: {message}"),
        });
    };
    let g = gate.get_ref();
    let when = match &g.when {
        None => None,
        Some(w) => match templates.compile_condition(w.get_ref()) {
            Ok(c) => Some(c),
            Err(message) => {
                fail(
                    Some(w.span().start),
                    format!("when {:?}: {message}", w.get_ref()),
                );
                None
            }
        },
    };
    let channel = match &g.channel {
        None => None,
        Some(c) => match ChannelRef::parse(c.get_ref()) {
            Ok(c) => Some(c),
            Err(message) => {
                fail(Some(c.span().start), format!("channel: {message}"));
                None
            }
        },
    };
    if g.approvers.is_empty() && g.channel.is_none() {
        fail(
            None,
            "say who decides: approvers = [\"record.Owner.Manager.Email\"] or channel = \"#…\""
                .into(),
        );
    }
    if !g.approvers.is_empty() && g.channel.is_some() {
        fail(
            None,
            "approvers and channel exclude each other: choose one".into(),
        );
    }
    for spec in g.approvers.iter().chain(&g.escalate_to) {
        let path = spec.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if !(spec.contains('@') || path) {
            fail(
                None,
                format!("{spec:?} is neither an email address nor a path like record.Owner.Email"),
            );
        }
    }
    let template = g.template.get_ref().clone();
    if !templates.contains(&template) {
        fail(
            Some(g.template.span().start),
            format!("unknown template {template:?}"),
        );
    }
    let timeout = Duration::from_secs(g.timeout_secs.unwrap_or(24 * 3600));
    if timeout.is_zero() {
        fail(None, "timeout_secs must be at least 1".into());
    }
    let on_timeout = g.on_timeout.unwrap_or(OnTimeout::Remind);
    if on_timeout == OnTimeout::Escalate && g.escalate_to.is_empty() {
        fail(
            None,
            "on_timeout = \"escalate\" needs escalate_to = [\"<email expression>\"]".into(),
        );
    }
    let record = match (&g.record_field, g.record_task) {
        (Some(_), true) => {
            fail(
                None,
                "record_field and record_task exclude each other".into(),
            );
            Recorded::Nowhere
        }
        (Some(field), false) => {
            let ok = field.starts_with(|c: char| c.is_ascii_alphabetic())
                && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                fail(
                    None,
                    format!("record_field {field:?} is not a field API name"),
                );
            }
            Recorded::Field(field.clone())
        }
        (None, true) => Recorded::Task,
        (None, false) => Recorded::Nowhere,
    };
    if errors.len() > before {
        return None;
    }
    Some(Gate {
        when,
        approvers: g.approvers.clone(),
        channel,
        template,
        timeout,
        on_timeout,
        escalate_to: g.escalate_to.clone(),
        record,
        line,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::render::template::{RenderOptions, Templates};
    use crate::routing::RouteSet;

    const CARD: &str = r#"{"text": "{{ record.Name }}", "blocks": [{"type": "actions", "elements": [
        {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "Approve"},
         "value": "{{ action('gate_approve') }}"},
        {"type": "button", "action_id": "b", "text": {"type": "plain_text", "text": "Later"},
         "value": "{{ action('nobody_declares_this') }}"}]}]}"#;

    fn load(route: &str) -> Result<RouteSet, Vec<String>> {
        let templates =
            Templates::from_sources(&[("card.json", CARD)], RenderOptions::default()).unwrap();
        let path = Path::new("routes/gated.toml");
        RouteSet::from_routes(&[(path, route)], templates)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect())
    }

    const ACTIONS: &str =
        "[[actions]]\ntype = \"post\"\nchannel = \"#deal-desk\"\ntemplate = \"card\"\n";

    #[test]
    fn a_gate_holds_its_routes_actions_unless_one_says_otherwise() {
        let text = format!(
            "object = \"Opportunity\"\n{ACTIONS}{ACTIONS}gated = false\n\n[gate]\nwhen = 'record.Amount >= 500000'\nchannel = \"#approvals\"\ntemplate = \"card\"\ntimeout_secs = 5\non_timeout = \"reject\"\nrecord_field = \"Approval_Status__c\"\n"
        );
        let set = load(&text).unwrap();
        let route = &set.routes[0];
        let gate = route.gate.as_ref().unwrap();
        assert_eq!(gate.timeout.as_secs(), 5);
        assert_eq!(gate.on_timeout, super::OnTimeout::Reject);
        assert_eq!(
            gate.record,
            super::Recorded::Field("Approval_Status__c".into())
        );
        assert!(route.actions[0].gated);
        assert!(!route.actions[1].gated);
        // The card places a button nobody declares: `sfrelay check` reports it.
        assert_eq!(
            set.undeclared_buttons(),
            vec![("card".to_string(), "nobody_declares_this".to_string())]
        );
    }

    #[test]
    fn gate_mistakes_are_named() {
        for (gate, says) in [
            ("template = \"card\"\n", "say who decides"),
            (
                "template = \"card\"\nchannel = \"#a\"\napprovers = [\"x@y.example\"]\n",
                "exclude each other",
            ),
            (
                "channel = \"#a\"\ntemplate = \"nope\"\n",
                "unknown template",
            ),
            (
                "channel = \"#a\"\ntemplate = \"card\"\non_timeout = \"escalate\"\n",
                "escalate_to",
            ),
            (
                "channel = \"#a\"\ntemplate = \"card\"\ntimeout_secs = 0\n",
                "at least 1",
            ),
            (
                "approvers = [\"record.Owner Email\"]\ntemplate = \"card\"\n",
                "neither an email",
            ),
        ] {
            let text = format!("object = \"Opportunity\"\n{ACTIONS}\n[gate]\n{gate}");
            let errors = load(&text).err().expect("refused");
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains("gate: ") && e.contains(says)),
                "{gate}: {errors:?}"
            );
        }
        let ungated = format!("object = \"Opportunity\"\n{ACTIONS}gated = false\n");
        let errors = load(&ungated).err().expect("refused");
        assert!(errors[0].contains("needs the route's [gate]"), "{errors:?}");
    }
}
