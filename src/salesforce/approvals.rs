//! Approvals: the pending work items of a record in an approval process (SOQL on
//! `ProcessInstanceWorkitem`, the record Id bound safely), and approving or rejecting one
//! through the Process Approvals REST resource as an [`Actor`]. The work item, not the record,
//! is what a decision names; a multi-step process stays `Pending` with a new work item.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::acting::Actor;
use super::client::SalesforceClient;
use super::error::SalesforceError;
use super::soql::Soql;
use super::write::WriteError;
use crate::event::SalesforceId;

const PENDING_WORKITEMS: &str = "SELECT Id, ActorId, ProcessInstance.TargetObjectId \
    FROM ProcessInstanceWorkitem WHERE ProcessInstance.TargetObjectId = :record";

/// A pending approval request on a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workitem {
    pub id: SalesforceId,
    /// The user (or queue) asked to decide; `None` when Salesforce shows none.
    pub actor_id: Option<SalesforceId>,
}

/// What to do with a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalAction {
    Approve,
    Reject,
}

impl ApprovalAction {
    /// The `actionType` of the request.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAction::Approve => "Approve",
            ApprovalAction::Reject => "Reject",
        }
    }
}

/// Where the approval process stands after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalOutcome {
    /// `Approved`, `Rejected`, `Removed`, or `Pending` (a further step awaits a decision).
    pub instance_status: String,
    /// The work items the next step opened.
    pub new_workitems: Vec<SalesforceId>,
}

/// One entry of the Process Approvals answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    instance_status: Option<String>,
    #[serde(default)]
    new_workitem_ids: Option<Vec<String>>,
    #[serde(default)]
    errors: Option<Vec<ResultError>>,
}

/// A failed entry's error (`statusCode` in the SOAP-style shape, `errorCode` in REST's).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultError {
    #[serde(default, alias = "statusCode")]
    error_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// Reads the answer to a single decision.
fn outcome(
    org: &SalesforceId,
    workitem: &SalesforceId,
    bytes: &[u8],
) -> Result<ApprovalOutcome, WriteError> {
    let decode = |message: String| {
        WriteError::Salesforce(SalesforceError::Decode {
            org: org.clone(),
            message,
        })
    };
    let results: Vec<ProcessResult> =
        serde_json::from_slice(bytes).map_err(|e| decode(format!("approval answer: {e}")))?;
    let Some(result) = results.into_iter().next() else {
        return Err(decode("approval answer without a result".into()));
    };
    if !result.success {
        let first = result.errors.unwrap_or_default().into_iter().next();
        let (code, message, fields) = first
            .map(|e| (e.error_code, e.message, e.fields))
            .unwrap_or_default();
        let refused = SalesforceError::Api {
            org: org.clone(),
            status: 400,
            code,
            message,
            fields,
        };
        return Err(decision_error(refused, workitem));
    }
    let new_workitems = result
        .new_workitem_ids
        .unwrap_or_default()
        .iter()
        .map(|id| {
            SalesforceId::parse(id).map_err(|e| decode(format!("new work item Id {id:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(ApprovalOutcome {
        instance_status: result.instance_status.unwrap_or_default(),
        new_workitems,
    })
}

/// A decision's refusal: an unknown or decided work item is [`WriteError::AlreadyDecided`].
fn decision_error(e: SalesforceError, workitem: &SalesforceId) -> WriteError {
    match &e {
        SalesforceError::Api { code, .. } if code == "INVALID_CROSS_REFERENCE_KEY" => {
            WriteError::AlreadyDecided
        }
        _ => WriteError::from_salesforce(e, "ProcessInstanceWorkitem", Some(workitem.as_str())),
    }
}

fn workitem_from(
    org: &SalesforceId,
    record: &Map<String, Value>,
) -> Result<Workitem, SalesforceError> {
    let id = record.get("Id").and_then(Value::as_str).unwrap_or_default();
    let id = SalesforceId::parse(id).map_err(|e| SalesforceError::Decode {
        org: org.clone(),
        message: format!("ProcessInstanceWorkitem without a valid Id: {e}"),
    })?;
    let actor_id = record
        .get("ActorId")
        .and_then(Value::as_str)
        .and_then(|a| SalesforceId::parse(a).ok());
    Ok(Workitem { id, actor_id })
}

impl SalesforceClient {
    /// The pending approval requests on `record`, asked as the integration user.
    pub async fn pending_workitems(
        &self,
        org: &SalesforceId,
        record: &SalesforceId,
    ) -> Result<Vec<Workitem>, SalesforceError> {
        let mut params = Map::new();
        params.insert("record".into(), Value::String(record.to_string()));
        let soql = Soql::bind(PENDING_WORKITEMS, &params)
            .map_err(|e| SalesforceError::InvalidArgument(format!("work item query: {e}")))?;
        self.query(org, &soql)
            .await?
            .iter()
            .map(|r| workitem_from(org, r))
            .collect()
    }

    /// Approves or rejects `workitem` as `actor`, with `comments` for the approval history:
    /// `POST /services/data/<version>/process/approvals/`.
    pub async fn decide_workitem(
        &self,
        org: &SalesforceId,
        actor: &Actor,
        workitem: &SalesforceId,
        action: ApprovalAction,
        comments: Option<&str>,
    ) -> Result<ApprovalOutcome, WriteError> {
        let mut request = json!({
            "actionType": action.as_str(),
            "contextId": workitem.as_str(),
        });
        if let Some(comments) = comments {
            request["comments"] = Value::String(comments.to_owned());
        }
        let body = json!({ "requests": [request] });
        let path = format!("/services/data/{}/process/approvals/", self.api_version());
        let answer = self
            .request_as(org, actor, reqwest::Method::POST, &path, &[], Some(&body))
            .await
            .map_err(|e| match e {
                SalesforceError::Auth { .. } => WriteError::from_salesforce_as(
                    e,
                    actor,
                    "ProcessInstanceWorkitem",
                    Some(workitem.as_str()),
                ),
                other => decision_error(other, workitem),
            })?;
        outcome(org, workitem, &answer.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> SalesforceId {
        SalesforceId::parse("00D000000000001EAA").unwrap()
    }

    fn workitem() -> SalesforceId {
        SalesforceId::parse("04i000000000001").unwrap()
    }

    #[test]
    fn decisions_are_read() {
        let approved = outcome(
            &org(),
            &workitem(),
            br#"[{"actorIds":[],"entityId":"500000000000001AAA","errors":null,
                 "instanceId":"04g000000000001AAA","instanceStatus":"Approved",
                 "newWorkitemIds":[],"success":true}]"#,
        )
        .unwrap();
        assert_eq!(approved.instance_status, "Approved");
        assert!(approved.new_workitems.is_empty());
        let next = outcome(
            &org(),
            &workitem(),
            br#"[{"instanceStatus":"Pending","newWorkitemIds":["04i000000000002AAA"],"success":true}]"#,
        )
        .unwrap();
        assert_eq!(next.instance_status, "Pending");
        assert_eq!(next.new_workitems[0].as_str(), "04i000000000002AAA");

        let decided = outcome(
            &org(),
            &workitem(),
            br#"[{"success":false,"errors":[{"statusCode":"INVALID_CROSS_REFERENCE_KEY","message":"invalid cross reference id"}]}]"#,
        );
        assert_eq!(decided, Err(WriteError::AlreadyDecided));
        let locked = outcome(
            &org(),
            &workitem(),
            br#"[{"success":false,"errors":[{"errorCode":"ENTITY_IS_LOCKED","message":"m"}]}]"#,
        );
        assert_eq!(locked, Err(WriteError::Locked));
        for bad in [
            &b"[]"[..],
            b"{}",
            b"[{\"success\":true,\"newWorkitemIds\":[\"x\"]}]",
        ] {
            let e = outcome(&org(), &workitem(), bad).unwrap_err();
            assert!(
                matches!(e, WriteError::Salesforce(SalesforceError::Decode { .. })),
                "{e:?}"
            );
        }
    }

    #[test]
    fn refusals_of_a_decision_are_classified() {
        let api = |code: &str| SalesforceError::Api {
            org: org(),
            status: 400,
            code: code.into(),
            message: "m".into(),
            fields: Vec::new(),
        };
        assert_eq!(
            decision_error(api("INVALID_CROSS_REFERENCE_KEY"), &workitem()),
            WriteError::AlreadyDecided
        );
        assert!(matches!(
            decision_error(api("INSUFFICIENT_ACCESS_OR_READONLY"), &workitem()),
            WriteError::NoAccess { .. }
        ));
        assert_eq!(ApprovalAction::Reject.as_str(), "Reject");
    }

    #[test]
    fn work_items_are_read_from_query_records() {
        let record = |v: Value| match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let item = workitem_from(
            &org(),
            &record(json!({"Id": "04i000000000001AAA", "ActorId": "005000000000011AAA"})),
        )
        .unwrap();
        assert_eq!(item.id, workitem());
        assert_eq!(item.actor_id.unwrap().as_str(), "005000000000011AAA");
        let no_actor = workitem_from(
            &org(),
            &record(json!({"Id": "04i000000000001", "ActorId": null})),
        );
        assert_eq!(no_actor.unwrap().actor_id, None);
        assert!(workitem_from(&org(), &record(json!({"ActorId": "x"}))).is_err());
    }
}
