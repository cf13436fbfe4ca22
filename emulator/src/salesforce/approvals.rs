//! Approval processes, as far as deciding them from Slack needs: a record is put into approval
//! by the control API (`POST /_emulator/approvals`), which creates a `ProcessInstance` and a
//! `ProcessInstanceWorkitem` queryable by SOQL; while it is pending the record is locked
//! (`ENTITY_IS_LOCKED` on updates). `POST /services/data/<v>/process/approvals/` approves or
//! rejects a work item as the REST API does, step by step for multi-step processes; every
//! decision is journalled (`GET /_emulator/approvals`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::emulator::{Emulator, Reply, now_rfc3339, sf_now};
use super::soql::looks_like_id;
use super::store::{Store, record_id, same_id};
use super::writes::with_checksum;

pub const INSTANCE_OBJECT: &str = "ProcessInstance";
pub const WORKITEM_OBJECT: &str = "ProcessInstanceWorkitem";
/// The most steps one emulated process may have.
const MAX_STEPS: u32 = 10;

/// One record's run through an approval process.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    pub target: String,
    /// `Pending`, `Approved` or `Rejected`.
    pub status: String,
    pub steps: u32,
    /// The step now pending (1-based).
    pub step: u32,
    pub approver: String,
}

/// One approval request assigned to a user.
#[derive(Debug, Clone, Serialize)]
pub struct Workitem {
    pub id: String,
    pub instance: String,
    pub actor_id: String,
    /// `Pending`, or the decision taken on it.
    pub status: String,
}

/// A decision taken through the REST API.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub at: String,
    pub workitem: String,
    pub instance: String,
    pub action: String,
    pub comments: Option<String>,
    pub actor_id: String,
    pub actor_username: String,
}

#[derive(Debug, Default)]
pub struct Approvals {
    pub instances: Vec<Instance>,
    pub workitems: Vec<Workitem>,
    pub decisions: Vec<Decision>,
    next_id: u64,
}

/// `POST /_emulator/approvals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    record: String,
    approver: String,
    #[serde(default = "one_step")]
    steps: u32,
}

fn one_step() -> u32 {
    1
}

/// One entry of a `process/approvals` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessRequest {
    action_type: String,
    #[serde(default)]
    context_id: String,
    #[serde(default)]
    comments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProcessBody {
    requests: Vec<ProcessRequest>,
}

/// The objects exist (empty) before anything is in approval, as in every org.
pub fn register_objects(store: &mut Store) {
    let empty = json!({ INSTANCE_OBJECT: [], WORKITEM_OBJECT: [] });
    // Two valid object names with no records cannot fail.
    let _ = store.upsert_all(empty, &sf_now());
}

impl Approvals {
    fn next_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        with_checksum(&format!("{prefix}EMU{:09}", self.next_id))
    }

    /// The refusal an update of `record` gets while it is in a pending approval.
    pub fn lock_refusal(&self, record: &str) -> Option<Reply> {
        self.instances
            .iter()
            .any(|i| i.status == "Pending" && same_id(&i.target, record))
            .then(|| Reply::api_error(400, "ENTITY_IS_LOCKED", "the entity is locked for editing"))
    }
}

fn control_error(message: impl Into<String>) -> Reply {
    Reply {
        status: 400,
        body: json!({ "error": message.into() }),
    }
}

impl Emulator {
    /// `POST /_emulator/approvals` `{"record", "approver", "steps"?}`: puts the record into an
    /// approval process of `steps` steps, each assigned to `approver`.
    pub fn submit_for_approval(&mut self, body: &[u8]) -> Reply {
        let submission: Submission = match serde_json::from_slice(body) {
            Ok(s) => s,
            Err(e) => return control_error(format!("approvals: {e}")),
        };
        let Some((_, record)) = self.store.find_by_id(&submission.record) else {
            return control_error(format!("approvals: no record {}", submission.record));
        };
        let target = record_id(record).to_owned();
        if !(looks_like_id(&submission.approver) && submission.approver.starts_with("005")) {
            return control_error("approvals: approver must be a User Id (005…)");
        }
        if !(1..=MAX_STEPS).contains(&submission.steps) {
            return control_error(format!("approvals: steps must be 1-{MAX_STEPS}"));
        }
        if self.approvals.lock_refusal(&target).is_some() {
            return control_error(format!("approvals: {target} is already in approval"));
        }
        let instance = Instance {
            id: self.approvals.next_id("04g"),
            target,
            status: "Pending".into(),
            steps: submission.steps,
            step: 1,
            approver: submission.approver,
        };
        let instance_record = json!({
            "Id": instance.id,
            "TargetObjectId": instance.target,
            "Status": instance.status,
        });
        if let Err(message) = self
            .store
            .upsert_all(json!({ INSTANCE_OBJECT: [instance_record] }), &sf_now())
        {
            return control_error(format!("approvals: {message}"));
        }
        let workitem = self.open_workitem(&instance);
        let answer = json!({ "instance": instance.id, "workitem": workitem });
        self.approvals.instances.push(instance);
        Reply::ok(answer)
    }

    /// A pending work item on `instance`'s current step; its Id.
    fn open_workitem(&mut self, instance: &Instance) -> String {
        let id = self.approvals.next_id("04i");
        let record = json!({
            "Id": id,
            "ActorId": instance.approver,
            "OriginalActorId": instance.approver,
            "ProcessInstanceId": instance.id,
        });
        // A record of literal Ids always normalises.
        let _ = self
            .store
            .upsert_all(json!({ WORKITEM_OBJECT: [record] }), &sf_now());
        self.approvals.workitems.push(Workitem {
            id: id.clone(),
            instance: instance.id.clone(),
            actor_id: instance.approver.clone(),
            status: "Pending".into(),
        });
        id
    }

    /// `POST /services/data/<version>/process/approvals/`: approves or rejects work items as
    /// the calling user. Requests that succeed are committed; if any fails, the answer is 400
    /// with the failures' errors.
    pub fn process_approvals(&mut self, body: &[u8]) -> Reply {
        let parsed: ProcessBody = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return Reply::api_error(400, "JSON_PARSER_ERROR", &format!("{e}"));
            }
        };
        if parsed.requests.is_empty() {
            return Reply::api_error(400, "INVALID_INPUT", "no process requests");
        }
        let mut results = Vec::with_capacity(parsed.requests.len());
        let mut errors = Vec::new();
        for request in parsed.requests {
            match self.decide(request) {
                Ok(result) => results.push(result),
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Reply::ok(Value::Array(results))
        } else {
            Reply {
                status: 400,
                body: Value::Array(errors),
            }
        }
    }

    /// One decision: the work item's result, or an error item.
    fn decide(&mut self, request: ProcessRequest) -> Result<Value, Value> {
        let error = |code: &str, message: &str| json!({ "errorCode": code, "message": message });
        let approve = match request.action_type.as_str() {
            "Approve" => true,
            "Reject" => false,
            "Submit" => {
                return Err(error(
                    "INVALID_OPERATION",
                    "the emulator puts records into approval with POST /_emulator/approvals",
                ));
            }
            other => {
                return Err(error(
                    "JSON_PARSER_ERROR",
                    &format!("actionType {other:?} is not Submit, Approve or Reject"),
                ));
            }
        };
        let Some(index) = self
            .approvals
            .workitems
            .iter()
            .position(|w| w.status == "Pending" && same_id(&w.id, &request.context_id))
        else {
            return Err(error(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            ));
        };
        let caller = self.acting.caller.clone();
        let integration = self.integration_caller();
        let workitem = self.approvals.workitems[index].clone();
        if caller != integration && !same_id(&caller.user_id, &workitem.actor_id) {
            return Err(error(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            ));
        }
        let Some(at) = self
            .approvals
            .instances
            .iter()
            .position(|i| i.id == workitem.instance)
        else {
            return Err(error(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            ));
        };
        let action = if approve { "Approved" } else { "Rejected" };
        self.approvals.workitems[index].status = action.into();
        self.store.remove(WORKITEM_OBJECT, &workitem.id);
        let mut new_workitems = Vec::new();
        let instance = {
            let instance = &mut self.approvals.instances[at];
            if approve && instance.step < instance.steps {
                instance.step += 1;
            } else {
                instance.status = action.into();
            }
            instance.clone()
        };
        if instance.status == "Pending" {
            new_workitems.push(self.open_workitem(&instance));
        }
        let instance_record = json!({
            "Id": instance.id,
            "TargetObjectId": instance.target,
            "Status": instance.status,
        });
        let _ = self
            .store
            .upsert_all(json!({ INSTANCE_OBJECT: [instance_record] }), &sf_now());
        self.approvals.decisions.push(Decision {
            at: now_rfc3339(),
            workitem: workitem.id,
            instance: instance.id.clone(),
            action: request.action_type,
            comments: request.comments,
            actor_id: caller.user_id,
            actor_username: caller.username,
        });
        let actors: Vec<&str> = if instance.status == "Pending" {
            vec![instance.approver.as_str()]
        } else {
            Vec::new()
        };
        Ok(json!({
            "actorIds": actors,
            "entityId": instance.target,
            "errors": null,
            "instanceId": instance.id,
            "instanceStatus": instance.status,
            "newWorkitemIds": new_workitems,
            "success": true,
        }))
    }

    /// `GET /_emulator/approvals`.
    pub fn approvals_state(&self) -> Value {
        json!({
            "instances": self.approvals.instances,
            "workitems": self.approvals.workitems,
            "decisions": self.approvals.decisions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::acting::Caller;
    use std::time::Duration;

    const CASE: &str = "500000000000001AAA";
    const ADA: &str = "005000000000011AAA";
    const PENDING_ITEMS: &str = "SELECT Id, ActorId, ProcessInstance.TargetObjectId \
        FROM ProcessInstanceWorkitem WHERE ProcessInstance.TargetObjectId = '500000000000001'";

    fn emulator() -> Emulator {
        let mut store = Store::default();
        store
            .upsert_all(
                json!({
                    "Case": [{"Id": CASE, "Status": "Escalated"}],
                    "User": [
                        {"Id": ADA, "Username": "ada@acme.example"},
                        {"Id": "005000000000012AAA", "Username": "bob@acme.example"},
                    ],
                }),
                &sf_now(),
            )
            .unwrap();
        Emulator::new(
            "c".into(),
            vec![],
            None,
            false,
            Duration::from_secs(60),
            10,
            100,
            store,
        )
    }

    fn submit(emu: &mut Emulator, steps: u32) -> (String, String) {
        let body = json!({"record": "500000000000001", "approver": ADA, "steps": steps});
        let reply = emu.submit_for_approval(body.to_string().as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.body);
        let id = |k: &str| reply.body[k].as_str().unwrap().to_owned();
        (id("instance"), id("workitem"))
    }

    fn decide(emu: &mut Emulator, action: &str, workitem: &str, comments: &str) -> Reply {
        let body = json!({"requests": [
            {"actionType": action, "contextId": workitem, "comments": comments}
        ]});
        emu.process_approvals(body.to_string().as_bytes())
    }

    fn as_user(emu: &mut Emulator, id: &str, username: &str) {
        emu.acting.caller = Caller {
            user_id: id.into(),
            username: username.into(),
        };
    }

    #[test]
    fn nothing_is_pending_before_a_record_enters_approval() {
        let mut emu = emulator();
        let reply = emu.query("v62.0", Some(PENDING_ITEMS));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["totalSize"], 0);
        let reply = emu.update("Case", CASE, None, true, br#"{"Status": "Working"}"#);
        assert_eq!(reply.status, 204);
    }

    #[test]
    fn a_pending_record_is_queryable_locked_and_unlocked_once_approved() {
        let mut emu = emulator();
        let (instance, workitem) = submit(&mut emu, 1);
        assert!(
            instance.starts_with("04g") && instance.len() == 18,
            "{instance}"
        );
        assert!(
            workitem.starts_with("04i") && workitem.len() == 18,
            "{workitem}"
        );

        let reply = emu.query("v62.0", Some(PENDING_ITEMS));
        assert_eq!(reply.body["totalSize"], 1, "{}", reply.body);
        let item = &reply.body["records"][0];
        assert_eq!(item["Id"], workitem.as_str());
        assert_eq!(item["ActorId"], ADA);
        assert_eq!(item["ProcessInstance"]["TargetObjectId"], CASE);
        assert_eq!(
            item["ProcessInstance"]["attributes"]["type"],
            "ProcessInstance"
        );

        let locked = emu.update("Case", CASE, None, true, br#"{"Status": "Working"}"#);
        assert_eq!(
            (locked.status, locked.body[0]["errorCode"].clone()),
            (400, json!("ENTITY_IS_LOCKED"))
        );
        let again = emu.submit_for_approval(
            json!({"record": CASE, "approver": ADA})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(again.status, 400, "already in approval");

        as_user(&mut emu, ADA, "ada@acme.example");
        let reply = decide(&mut emu, "Approve", &workitem, "fine by me");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let result = &reply.body[0];
        assert_eq!(result["success"], true);
        assert_eq!(result["instanceStatus"], "Approved");
        assert_eq!(result["instanceId"], instance.as_str());
        assert_eq!(result["entityId"], CASE);
        assert_eq!(result["newWorkitemIds"], json!([]));
        assert_eq!(result["actorIds"], json!([]));
        assert_eq!(result["errors"], Value::Null);

        assert_eq!(emu.query("v62.0", Some(PENDING_ITEMS)).body["totalSize"], 0);
        let status = emu.query(
            "v62.0",
            Some("SELECT Status FROM ProcessInstance WHERE TargetObjectId = '500000000000001AAA'"),
        );
        assert_eq!(status.body["records"][0]["Status"], "Approved");
        let unlocked = emu.update("Case", CASE, None, true, br#"{"Status": "Working"}"#);
        assert_eq!(unlocked.status, 204, "{}", unlocked.body);

        let journal = emu.approvals_state();
        let decision = &journal["decisions"][0];
        assert_eq!(decision["action"], "Approve");
        assert_eq!(decision["comments"], "fine by me");
        assert_eq!(decision["actor_id"], ADA);
        assert_eq!(decision["actor_username"], "ada@acme.example");
        assert_eq!(journal["instances"][0]["status"], "Approved");
        assert_eq!(journal["workitems"][0]["status"], "Approved");
    }

    #[test]
    fn a_decided_or_unknown_work_item_is_an_invalid_cross_reference() {
        let mut emu = emulator();
        let (_, workitem) = submit(&mut emu, 1);
        let reply = decide(&mut emu, "Reject", &workitem, "no budget");
        assert_eq!(reply.body[0]["instanceStatus"], "Rejected");
        for id in [workitem.as_str(), "04iEMU000000099", CASE] {
            let reply = decide(&mut emu, "Approve", id, "");
            assert_eq!(reply.status, 400, "{id}");
            assert_eq!(
                reply.body[0]["errorCode"], "INVALID_CROSS_REFERENCE_KEY",
                "{id}"
            );
            assert!(reply.body[0]["message"].is_string());
        }
        let reply = decide(&mut emu, "Escalate", &workitem, "");
        assert_eq!(reply.body[0]["errorCode"], "JSON_PARSER_ERROR");
        assert_eq!(emu.process_approvals(b"{\"requests\": []}").status, 400);
        assert_eq!(
            emu.approvals_state()["decisions"].as_array().unwrap().len(),
            1
        );
        // Rejected: unlocked.
        let reply = emu.update("Case", CASE, None, true, br#"{"Status": "Working"}"#);
        assert_eq!(reply.status, 204);
    }

    #[test]
    fn only_the_assigned_approver_or_the_integration_user_decides() {
        let mut emu = emulator();
        let (_, workitem) = submit(&mut emu, 3);
        as_user(&mut emu, "005000000000012AAA", "bob@acme.example");
        let reply = decide(&mut emu, "Approve", &workitem, "");
        assert_eq!(
            reply.body[0]["errorCode"],
            "INSUFFICIENT_ACCESS_OR_READONLY"
        );

        as_user(&mut emu, ADA, "ada@acme.example");
        let step1 = decide(&mut emu, "Approve", &workitem, "step 1");
        let result = &step1.body[0];
        assert_eq!(result["instanceStatus"], "Pending");
        assert_eq!(result["actorIds"], json!([ADA]));
        let next = result["newWorkitemIds"][0].as_str().unwrap().to_owned();
        assert_ne!(next, workitem);
        let pending = emu.query("v62.0", Some(PENDING_ITEMS));
        assert_eq!(pending.body["records"][0]["Id"], next.as_str());
        assert_eq!(
            emu.update("Case", CASE, None, true, b"{}").body[0]["errorCode"],
            "ENTITY_IS_LOCKED"
        );

        emu.acting.caller = emu.integration_caller();
        let step2 = decide(&mut emu, "Approve", &next, "");
        let last = step2.body[0]["newWorkitemIds"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let step3 = decide(&mut emu, "Reject", &last, "not this quarter");
        assert_eq!(step3.body[0]["instanceStatus"], "Rejected");
        let decisions = &emu.approvals_state()["decisions"];
        assert_eq!(
            decisions[1]["actor_id"],
            crate::salesforce::emulator::USER_ID
        );
        assert_eq!(decisions[2]["comments"], "not this quarter");
    }

    #[test]
    fn submissions_are_checked() {
        let mut emu = emulator();
        for bad in [
            json!({"record": "500000000000009", "approver": ADA}),
            json!({"record": CASE, "approver": "00G000000000001"}),
            json!({"record": CASE, "approver": ADA, "steps": 0}),
            json!({"record": CASE, "approver": ADA, "extra": 1}),
        ] {
            let reply = emu.submit_for_approval(bad.to_string().as_bytes());
            assert_eq!(reply.status, 400, "{bad}");
            assert!(reply.body["error"].is_string(), "{bad}");
        }
    }
}
