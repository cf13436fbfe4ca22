//! sObject writes: [`SalesforceClient::create`] and [`SalesforceClient::update`] as the
//! integration user, [`SalesforceClient::create_as`] and [`SalesforceClient::update_as`] as
//! any [`Actor`], on the same token caches, refresh and usage gauges as queries, with
//! Salesforce's refusals read into [`WriteError`]: typed reasons with a message the person who
//! clicked can act on.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::acting::{Actor, is_not_authorised};
use super::client::{SalesforceClient, is_api_name};
use super::error::SalesforceError;
use crate::event::SalesforceId;
use crate::retry::Retry;

/// The client name every write carries in `Sforce-Call-Options`; a change event's
/// `changeOrigin` then ends in `client=sfrelay`, so sfrelay can recognise its own changes.
pub const CALL_OPTIONS_CLIENT: &str = "sfrelay";

/// Options of [`SalesforceClient::update`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateOptions {
    /// Refuse the update (as [`WriteError::Stale`]) when the record changed after this time:
    /// the `LastModifiedDate` of the card the person acted on.
    pub if_unmodified_since: Option<DateTime<Utc>>,
    /// `Some(false)` sends `Sforce-Auto-Assign: FALSE`, so assignment rules cannot overwrite
    /// an owner set on purpose (they run by default on Case, Lead and Account updates).
    pub auto_assign: Option<bool>,
}

/// Why a write failed. [`WriteError::human_message`] is for the person who clicked; the
/// `Display` form is for logs and never holds a field value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    /// `If-Unmodified-Since` failed (412): someone changed the record since it was shown.
    #[error("{sobject} {id} changed in Salesforce after the given time; update refused")]
    Stale { sobject: String, id: String },
    /// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    #[error("value not allowed for restricted picklist field(s) {}", fields.join(", "))]
    RestrictedPicklist { fields: Vec<String> },
    /// `FIELD_CUSTOM_VALIDATION_EXCEPTION`: the org admin's own message.
    #[error("a validation rule refused the write: {message}")]
    Validation {
        message: String,
        fields: Vec<String>,
    },
    /// `REQUIRED_FIELD_MISSING`.
    #[error("required field(s) missing: {}", fields.join(", "))]
    RequiredFieldMissing { fields: Vec<String> },
    /// `ENTITY_IS_LOCKED`: typically a record in an approval process.
    #[error("the record is locked")]
    Locked,
    /// `ENTITY_IS_DELETED`, or `NOT_FOUND` (404) on an update.
    #[error("the record is deleted or does not exist")]
    Deleted,
    /// `INSUFFICIENT_ACCESS_OR_READONLY`, `INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY`.
    #[error("insufficient access ({code})")]
    NoAccess { code: String },
    /// `API_DISABLED_FOR_ORG`, `API_CURRENTLY_DISABLED`: the org or the acting user may not
    /// use the API.
    #[error("API access is disabled ({code})")]
    ApiDisabled { code: String },
    /// The token endpoint refused the person acting as themselves (`invalid_grant`: not
    /// pre-authorised on the connected app, or no such active user; `invalid_app_access`).
    /// Nothing was sent. The username is kept for the caller, never shown in logs.
    #[error("the acting Salesforce user may not use the connected app ({code})")]
    NotAuthorised { username: String, code: String },
    /// `INVALID_CROSS_REFERENCE_KEY` deciding an approval: the work item was already decided
    /// (or recalled), so it is no longer pending.
    #[error("the approval request is no longer pending")]
    AlreadyDecided,
    /// Anything else, including retryable trouble (`UNABLE_TO_LOCK_ROW`, 5xx, network).
    /// Shown without Salesforce's message, which may quote a refused value.
    #[error("{}", without_values(.0))]
    Salesforce(SalesforceError),
}

impl WriteError {
    /// Reads a failed write's error into its reason; `sobject`/`id` name the record updated.
    pub fn from_salesforce(e: SalesforceError, sobject: &str, id: Option<&str>) -> WriteError {
        let (status, code, message, fields) = match &e {
            SalesforceError::Api {
                status,
                code,
                message,
                fields,
                ..
            } => (*status, code.as_str(), message.as_str(), fields.clone()),
            SalesforceError::Http { status, .. } => (*status, "", "", Vec::new()),
            _ => return WriteError::Salesforce(e),
        };
        if status == 412 {
            return WriteError::Stale {
                sobject: sobject.to_owned(),
                id: id.unwrap_or_default().to_owned(),
            };
        }
        match code {
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => WriteError::RestrictedPicklist { fields },
            "FIELD_CUSTOM_VALIDATION_EXCEPTION" => WriteError::Validation {
                message: message.to_owned(),
                fields,
            },
            "REQUIRED_FIELD_MISSING" => WriteError::RequiredFieldMissing { fields },
            "ENTITY_IS_LOCKED" => WriteError::Locked,
            "ENTITY_IS_DELETED" => WriteError::Deleted,
            "NOT_FOUND" if id.is_some() => WriteError::Deleted,
            "INSUFFICIENT_ACCESS_OR_READONLY" | "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY" => {
                WriteError::NoAccess {
                    code: code.to_owned(),
                }
            }
            "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" => WriteError::ApiDisabled {
                code: code.to_owned(),
            },
            _ => WriteError::Salesforce(e),
        }
    }

    /// [`WriteError::from_salesforce`] for a write made as `actor`: a person the token
    /// endpoint turned away is [`WriteError::NotAuthorised`], while the same refusal of the
    /// integration user stays a configuration problem ([`WriteError::Salesforce`]).
    pub fn from_salesforce_as(
        e: SalesforceError,
        actor: &Actor,
        sobject: &str,
        id: Option<&str>,
    ) -> WriteError {
        match (actor.username(), &e) {
            (Some(username), SalesforceError::Auth { error, .. }) if is_not_authorised(&e) => {
                WriteError::NotAuthorised {
                    username: username.to_owned(),
                    code: error.clone(),
                }
            }
            _ => WriteError::from_salesforce(e, sobject, id),
        }
    }

    /// Whether repeating the same write later may succeed.
    pub fn retry(&self) -> Retry {
        match self {
            WriteError::Salesforce(e) => e.retry(),
            _ => Retry::Never,
        }
    }

    /// What to tell the person whose click made the write.
    pub fn human_message(&self) -> String {
        match self {
            WriteError::Stale { .. } => "Someone changed this record in Salesforce after this \
                message was posted. Nothing was changed; reload the record and try again."
                .into(),
            WriteError::RestrictedPicklist { fields } => format!(
                "That value is not one of the allowed choices for {}. Pick one from the list.",
                field_list(fields)
            ),
            WriteError::Validation { message, .. } => message.clone(),
            WriteError::RequiredFieldMissing { fields } => format!(
                "Salesforce needs a value for {} before it can save this.",
                field_list(fields)
            ),
            WriteError::Locked => "This record is locked (usually while it is in an approval \
                process), so it cannot be changed right now."
                .into(),
            WriteError::Deleted => "This record has been deleted in Salesforce.".into(),
            WriteError::NoAccess { .. } => "You do not have permission to make this change in \
                Salesforce. Ask your Salesforce admin for access."
                .into(),
            WriteError::ApiDisabled { .. } => "Your Salesforce user may not use the API (the \
                \"API Enabled\" permission is missing), so sfrelay cannot act for you. Ask \
                your Salesforce admin."
                .into(),
            WriteError::NotAuthorised { .. } => "Your Salesforce user is not allowed to use \
                sfrelay yet, so nothing was changed. Ask your Salesforce admin to pre-authorise \
                sfrelay's connected app for you."
                .into(),
            WriteError::AlreadyDecided => "This approval was already decided (or recalled) in \
                Salesforce, so nothing was changed."
                .into(),
            WriteError::Salesforce(e) if e.retry() == Retry::Later => {
                "Salesforce is busy right now; please try again in a moment.".into()
            }
            WriteError::Salesforce(e) => format!(
                "Salesforce refused the change ({}). Ask your Salesforce admin if this persists.",
                e.label()
            ),
        }
    }
}

/// A Salesforce error for logs: an API refusal by its code, fields and status only.
fn without_values(e: &SalesforceError) -> String {
    match e {
        SalesforceError::Api {
            org,
            status,
            code,
            fields,
            ..
        } if fields.is_empty() => {
            format!("Salesforce org {org} refused the write: {code} (HTTP {status})")
        }
        SalesforceError::Api {
            org,
            status,
            code,
            fields,
            ..
        } => format!(
            "Salesforce org {org} refused the write: {code} on {} (HTTP {status})",
            fields.join(", ")
        ),
        other => other.to_string(),
    }
}

fn field_list(fields: &[String]) -> String {
    match fields {
        [] => "a field".into(),
        [one] => one.clone(),
        many => many.join(", "),
    }
}

/// `Wed, 21 Oct 2015 07:28:00 GMT`, the form HTTP date headers take.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The fields checked before sending: an object name and field names, never their values.
fn check_names(sobject: &str, fields: &Map<String, Value>) -> Result<(), WriteError> {
    let invalid = |m: String| WriteError::Salesforce(SalesforceError::InvalidArgument(m));
    if !is_api_name(sobject) {
        return Err(invalid(format!("{sobject:?} is not an object API name")));
    }
    if let Some(bad) = fields.keys().find(|f| !is_api_name(f)) {
        return Err(invalid(format!("{bad:?} is not a field API name")));
    }
    Ok(())
}

fn call_options() -> (&'static str, String) {
    (
        "Sforce-Call-Options",
        format!("client={CALL_OPTIONS_CLIENT}"),
    )
}

impl SalesforceClient {
    /// Creates a `sobject` record with `fields` as the integration user and returns its Id.
    pub async fn create(
        &self,
        org: &SalesforceId,
        sobject: &str,
        fields: &Map<String, Value>,
    ) -> Result<SalesforceId, WriteError> {
        self.create_as(org, &Actor::Integration, sobject, fields)
            .await
    }

    /// Creates a `sobject` record with `fields` as `actor` and returns its Id:
    /// `POST /services/data/<version>/sobjects/<sobject>/`.
    pub async fn create_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        sobject: &str,
        fields: &Map<String, Value>,
    ) -> Result<SalesforceId, WriteError> {
        check_names(sobject, fields)?;
        let path = format!("/services/data/{}/sobjects/{sobject}/", self.api_version());
        let body = Value::Object(fields.clone());
        let answer = self
            .request_as(
                org,
                actor,
                reqwest::Method::POST,
                &path,
                &[call_options()],
                Some(&body),
            )
            .await
            .map_err(|e| WriteError::from_salesforce_as(e, actor, sobject, None))?;
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let decode = |message: String| {
            WriteError::Salesforce(SalesforceError::Decode {
                org: org.clone(),
                message,
            })
        };
        let created: Created = serde_json::from_slice(&answer.bytes)
            .map_err(|e| decode(format!("create answer: {e}")))?;
        SalesforceId::parse(&created.id)
            .map_err(|e| decode(format!("create answered Id {:?}: {e}", created.id)))
    }

    /// Updates `fields` of the `sobject` record `id` as the integration user.
    pub async fn update(
        &self,
        org: &SalesforceId,
        sobject: &str,
        id: &str,
        fields: &Map<String, Value>,
        options: UpdateOptions,
    ) -> Result<(), WriteError> {
        self.update_as(org, &Actor::Integration, sobject, id, fields, options)
            .await
    }

    /// Updates `fields` of the `sobject` record `id` as `actor`:
    /// `PATCH …/sobjects/<sobject>/<id>`.
    pub async fn update_as(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        sobject: &str,
        id: &str,
        fields: &Map<String, Value>,
        options: UpdateOptions,
    ) -> Result<(), WriteError> {
        check_names(sobject, fields)?;
        let id = SalesforceId::parse(id).map_err(|e| {
            WriteError::Salesforce(SalesforceError::InvalidArgument(format!(
                "record Id {id:?}: {e}"
            )))
        })?;
        let path = format!(
            "/services/data/{}/sobjects/{sobject}/{id}",
            self.api_version()
        );
        let mut headers = vec![call_options()];
        if let Some(at) = options.if_unmodified_since {
            headers.push(("If-Unmodified-Since", http_date(at)));
        }
        if let Some(assign) = options.auto_assign {
            let value = if assign { "TRUE" } else { "FALSE" };
            headers.push(("Sforce-Auto-Assign", value.to_owned()));
        }
        let body = Value::Object(fields.clone());
        self.request_as(
            org,
            actor,
            reqwest::Method::PATCH,
            &path,
            &headers,
            Some(&body),
        )
        .await
        .map(|_| ())
        .map_err(|e| WriteError::from_salesforce_as(e, actor, sobject, Some(id.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    fn api(status: u16, code: &str, message: &str, fields: &[&str]) -> SalesforceError {
        SalesforceError::Api {
            org: org(),
            status,
            code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn classify(e: SalesforceError) -> WriteError {
        WriteError::from_salesforce(e, "Case", Some("500000000000001"))
    }

    #[test]
    fn every_write_refusal_has_its_reason_and_message() {
        let secret_value = "Platinum-Customer-42";
        let picklist = classify(api(
            400,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            &format!("Status: bad value for restricted picklist field: {secret_value}"),
            &["Status"],
        ));
        assert_eq!(
            picklist,
            WriteError::RestrictedPicklist {
                fields: vec!["Status".into()]
            }
        );
        assert!(picklist.human_message().contains("Status"));
        assert!(!picklist.to_string().contains(secret_value));
        assert!(!picklist.human_message().contains(secret_value));

        let rule = "Close Date cannot be in the past.";
        let validation = classify(api(
            400,
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            rule,
            &["CloseDate"],
        ));
        assert_eq!(validation.human_message(), rule);
        let missing = classify(api(
            400,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Status, Subject]",
            &["Status", "Subject"],
        ));
        assert_eq!(
            missing,
            WriteError::RequiredFieldMissing {
                fields: vec!["Status".into(), "Subject".into()]
            }
        );
        assert!(missing.human_message().contains("Status, Subject"));
        assert_eq!(
            classify(api(400, "ENTITY_IS_LOCKED", "m", &[])),
            WriteError::Locked
        );
        assert_eq!(
            classify(api(404, "ENTITY_IS_DELETED", "m", &[])),
            WriteError::Deleted
        );
        assert_eq!(
            classify(api(404, "NOT_FOUND", "m", &[])),
            WriteError::Deleted
        );
        for code in [
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        ] {
            let e = classify(api(400, code, "m", &[]));
            assert!(matches!(e, WriteError::NoAccess { .. }), "{code}");
            assert!(e.human_message().contains("permission"));
        }
        for code in ["API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"] {
            let e = classify(api(403, code, "m", &[]));
            assert!(matches!(e, WriteError::ApiDisabled { .. }), "{code}");
            assert!(e.human_message().contains("API Enabled"));
        }
        let stale = classify(SalesforceError::Http {
            org: org(),
            status: 412,
        });
        assert!(matches!(stale, WriteError::Stale { ref id, .. } if id == "500000000000001"));
        assert_eq!(stale.retry(), Retry::Never);
    }

    #[test]
    fn lock_contention_and_outages_are_retryable_others_are_not() {
        let busy = classify(api(400, "UNABLE_TO_LOCK_ROW", "unable to obtain", &[]));
        assert!(matches!(busy, WriteError::Salesforce(_)));
        assert!(busy.to_string().contains("UNABLE_TO_LOCK_ROW"), "{busy}");
        let integrity = classify(api(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            "Related To ID: id value of incorrect type: 003SECRET",
            &["WhatId"],
        ));
        let logged = integrity.to_string();
        assert!(
            logged.contains("FIELD_INTEGRITY_EXCEPTION on WhatId"),
            "{logged}"
        );
        assert!(!logged.contains("003SECRET"), "{logged}");
        assert_eq!(busy.retry(), Retry::Later);
        assert!(busy.human_message().contains("try again"));
        let outage = classify(SalesforceError::Http {
            org: org(),
            status: 503,
        });
        assert_eq!(outage.retry(), Retry::Later);
        for e in [
            api(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "m", &[]),
            api(400, "ENTITY_IS_LOCKED", "m", &[]),
            api(400, "FIELD_INTEGRITY_EXCEPTION", "m", &[]),
        ] {
            assert_eq!(classify(e).retry(), Retry::Never);
        }
        // NOT_FOUND on a create means the object is unknown, not a deleted record.
        let create = WriteError::from_salesforce(api(404, "NOT_FOUND", "m", &[]), "Nope", None);
        assert!(matches!(create, WriteError::Salesforce(_)));
    }

    #[test]
    fn a_refused_person_is_not_authorised_a_refused_integration_user_is_not() {
        let refused = |error: &str| SalesforceError::Auth {
            org: org(),
            flow: "JWT bearer",
            status: 400,
            error: error.into(),
            description: "user hasn't approved this consumer".into(),
        };
        let ada = Actor::User {
            username: "ada@acme.example".into(),
        };
        for code in ["invalid_grant", "invalid_app_access"] {
            let e = WriteError::from_salesforce_as(refused(code), &ada, "Case", None);
            assert_eq!(
                e,
                WriteError::NotAuthorised {
                    username: "ada@acme.example".into(),
                    code: code.into()
                }
            );
            assert_eq!(e.retry(), Retry::Never);
            assert!(e.human_message().contains("pre-authorise"), "{code}");
            assert!(!e.to_string().contains("ada@"), "no username in logs: {e}");
        }
        let integration = WriteError::from_salesforce_as(
            refused("invalid_grant"),
            &Actor::Integration,
            "Case",
            None,
        );
        assert!(
            matches!(integration, WriteError::Salesforce(_)),
            "{integration:?}"
        );
        let other =
            WriteError::from_salesforce_as(refused("invalid_client_id"), &ada, "Case", None);
        assert!(matches!(other, WriteError::Salesforce(_)), "{other:?}");
        assert!(
            WriteError::AlreadyDecided
                .human_message()
                .contains("already decided")
        );
    }

    #[test]
    fn http_dates_are_formatted() {
        let at = DateTime::parse_from_rfc3339("2015-10-21T07:28:00.900Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(http_date(at), "Wed, 21 Oct 2015 07:28:00 GMT");
    }
}
