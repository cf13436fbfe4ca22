//! The OpenAPI 3.0 document of the ingest API, served at `GET /openapi.json`.
//!
//! Its first reader is Salesforce: an admin imports it as an External
//! Service so Flow can call `postEvents` as an action with typed inputs.
//! External Services accept only part of OpenAPI, so the document keeps to
//! it: version 3.0.3; `enum` (a supported data type), the validation
//! keywords `pattern`, `minLength`/`maxLength`, `minItems`/`maxItems`,
//! `minimum`/`maximum` and `additionalProperties` (true for free-form
//! records, false where unknown fields are refused); no `format` but
//! `date-time` (Flow cannot map `int64`, `float` or `double`); no response
//! headers (not supported: `Retry-After` is told in the description); no
//! `oneOf` (Flow handles it badly, so `POST /v1/events` documents the single
//! envelope and its description tells of batches); one `operationId` per
//! operation.
//!
//! It states every rule the server enforces that a schema can express, and
//! tells in words the one it cannot (the 18-character Id's checksum), so a
//! request the schema accepts is refused only for that, and one it refuses
//! is never accepted (tests/it/openapi_contract.rs checks both against the
//! server).
//!
//! It is written by hand as JSON rather than derived with `utoipa`: utoipa
//! 5 and later emit only OpenAPI 3.1 (`type: ["string", "null"]` and the
//! like), which External Services do not import.

use serde_json::{Value, json};

use super::flow::MAX_BATCH;

/// A Salesforce Id: 15 letters and digits, or 18 with the checksum suffix
/// (which a pattern cannot check; the server does).
const ID_PATTERN: &str = "^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$";
/// An org's Id: an Id with the Organization key prefix.
const ORG_ID_PATTERN: &str = "^00D[A-Za-z0-9]{12}([A-Za-z0-9]{3})?$";
/// The shape of every sObject API name (`flow::is_api_name`).
const API_NAME_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_]*$";

/// The OpenAPI 3.0 document served at `GET /openapi.json`, importable as a
/// Salesforce External Service.
///
/// `server_url` is the public base URL (e.g. `https://sfrelay.example.com`)
/// when configured: External Services need an absolute server to call, but
/// only the operator knows it, so without one the document names none and
/// the admin picks the Named Credential at import.
pub fn document(server_url: Option<&str>) -> Value {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {
                "application/problem+json": {
                    "schema": { "$ref": "#/components/schemas/Problem" }
                }
            }
        })
    };
    let unavailable = problem(
        "Nothing was queued: the queue is unavailable or over its high-water mark, or the server is shedding load (too many requests at once). The Retry-After header gives the seconds to wait before retrying.",
    );
    let accepted = json!({
        "description": "Every event was written durably (or was a duplicate of one already written).",
        "content": {
            "application/json": {
                "schema": { "$ref": "#/components/schemas/Accepted" }
            }
        }
    });
    let ingest_responses = json!({
        "202": accepted,
        "400": problem("The body is not valid; `errors` locates every problem by JSON Pointer. Besides what the schema states, an 18-character Salesforce Id (org_id, record.Id) must end in the checksum of its first 15 characters (3 characters, one per 5-character chunk, encoding which characters are uppercase; compared case-insensitively): a wrong one is answered here, naming the field. Nothing was queued."),
        "401": problem("No valid credential (the API key header or a bearer JWT)."),
        "403": problem("The org named in the body is not the credential's org, or is not configured; `errors` names the field."),
        "408": problem("The request body was not received within the server's body timeout. Nothing was queued."),
        "413": problem("The body is larger than the server's limit (ingest.max_body_bytes, 1 MiB by default). Nothing was queued."),
        "415": problem("The Content-Type is not application/json."),
        "503": unavailable,
    });
    let soap = |description: &str| {
        json!({
            "description": description,
            "content": { "text/xml": { "schema": { "type": "string" } } }
        })
    };
    let free_form = |description: &str| {
        json!({
            "type": "object",
            "additionalProperties": true,
            "description": description,
        })
    };

    let mut document = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sfrelay ingest API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Receives Salesforce record changes (Flow HTTP callouts, Change Data Capture events, Outbound Messages) and turns them into Slack messages. Every accepted change is written durably before the answer, and retries of one change are deduplicated."
        },
        "security": [{ "apiKey": [] }, { "bearerJwt": [] }],
        "paths": {
            "/healthz": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Liveness check",
                    "description": "Answers while the process serves; needs no credential.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The process is alive.",
                            "content": {
                                "application/json": {
                                    "schema": { "$ref": "#/components/schemas/Health" }
                                }
                            }
                        }
                    }
                }
            },
            "/v1/events": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Send one record change",
                    "description": "Queues one record change for routing to Slack. The same path also takes a batch, {\"events\": [envelope, ...]} with 1 to 200 envelopes (see the EventBatch schema), accepted or rejected whole; it is not declared here because Flow handles alternative bodies badly. Send the same event_id on retries so the change posts once.",
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {
                                "schema": { "$ref": "#/components/schemas/Envelope" }
                            }
                        }
                    },
                    "responses": ingest_responses.clone(),
                }
            },
            "/v1/cdc": {
                "post": {
                    "operationId": "postCdc",
                    "summary": "Send Change Data Capture events",
                    "description": "Takes one Change Data Capture event as Salesforce delivers it ({\"schema\", \"payload\": {\"ChangeEventHeader\", fields...}, \"event\": {\"replayId\"}}), the bare payload, or an array of up to 200 of them. The org is the credential's. Each record an event names becomes its own event; gap events are queued for the records to be read back.",
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {
                                "schema": free_form("A Change Data Capture event or an array of them, as Salesforce delivers them.")
                            }
                        }
                    },
                    "responses": ingest_responses,
                }
            },
            "/v1/outbound-messages/{token}": {
                "post": {
                    "operationId": "postOutboundMessage",
                    "summary": "Receive a Salesforce Outbound Message",
                    "description": "The endpoint URL of an Outbound Message (SOAP 1.1, up to 100 notifications). Outbound Messages cannot send headers, so the secret token in the path is the credential. Answers the acknowledgement Salesforce expects once every notification is written durably, or a SOAP fault, on which Salesforce retries. Not meant for External Services.",
                    "security": [],
                    "parameters": [{
                        "name": "token",
                        "in": "path",
                        "required": true,
                        "description": "The secret token configured for the org.",
                        "schema": { "type": "string" }
                    }],
                    "requestBody": {
                        "required": true,
                        "content": {
                            "text/xml": {
                                "schema": {
                                    "type": "string",
                                    "description": "A SOAP 1.1 notifications call (namespace http://soap.sforce.com/2005/09/outbound)."
                                }
                            }
                        }
                    },
                    "responses": {
                        "200": soap("A notificationsResponse with <Ack>true</Ack>: every notification was written durably."),
                        "400": soap("A SOAP fault (soapenv:Client): the message is malformed or invalid."),
                        "401": soap("A SOAP fault (soapenv:Client): the token is unknown."),
                        "500": soap("A SOAP fault (soapenv:Server): nothing was written; Salesforce will retry."),
                        "408": problem("The request body was not received within the server's body timeout; Salesforce will retry."),
                        "503": problem("The server is shedding load (too many requests at once); Salesforce will retry. The Retry-After header gives the seconds to wait."),
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Api-Key",
                    "description": "The org's API key (the header name is configurable per org; X-Api-Key by default). Set it on the Named Credential; External Services do not send it themselves."
                },
                "bearerJwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT signed with a key configured for the org, as an alternative to the API key."
                }
            },
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "description": "One record change. Unknown top-level fields are refused; unknown record fields are kept for templates. An optional field sent as null counts as absent (Flow sends unset variables so).",
                    "required": ["org_id", "object", "record"],
                    "additionalProperties": false,
                    "properties": {
                        "org_id": {
                            "type": "string",
                            "minLength": 15,
                            "maxLength": 18,
                            "pattern": ORG_ID_PATTERN,
                            "description": "The org's Id ($Organization.Id): 15 or 18 letters and digits starting with 00D; an 18-character Id must end in its checksum. Must be the credential's org.",
                            "example": "00D5g000004ABCdEAO"
                        },
                        "object": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 80,
                            "pattern": API_NAME_PATTERN,
                            "description": "sObject API name: letters, digits and underscores, starting with a letter, e.g. Opportunity or Invoice__c."
                        },
                        "record": {
                            "type": "object",
                            "additionalProperties": true,
                            "required": ["Id"],
                            "description": "The record's fields ($Record); must hold Id. Related records as nested objects, e.g. {\"Account\": {\"Name\": ...}}.",
                            "properties": {
                                "Id": {
                                    "type": "string",
                                    "minLength": 15,
                                    "maxLength": 18,
                                    "pattern": ID_PATTERN,
                                    "description": "The record's Id: 15 or 18 letters and digits; an 18-character Id must end in its checksum.",
                                    "example": "006Hs00000BkXyzIAF"
                                }
                            }
                        },
                        "change_type": {
                            "type": "string",
                            "enum": ["CREATE", "UPDATE", "DELETE", "UNDELETE"],
                            "description": "What happened to the record; UPDATE when absent."
                        },
                        "changed_fields": {
                            "type": "array",
                            "items": { "type": "string" },
                            "description": "API names of the fields that changed, when known."
                        },
                        "prior": free_form("The record before the change ($Record__Prior), when known."),
                        "event_id": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "description": "Idempotency key: retries of one change must carry the same value so it posts once."
                        },
                        "occurred_at": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When the change happened, RFC 3339 ($Flow.CurrentDateTime)."
                        }
                    },
                    "example": {
                        "org_id": "00D5g000004ABCdEAO",
                        "object": "Opportunity",
                        "change_type": "UPDATE",
                        "changed_fields": ["StageName"],
                        "event_id": "006Hs00000BkXyzIAF-2025-09-30T16:00:00Z",
                        "occurred_at": "2025-09-30T16:00:00Z",
                        "record": {
                            "Id": "006Hs00000BkXyzIAF",
                            "Name": "Acme Corp - Q3 Enterprise",
                            "StageName": "Closed Won",
                            "Amount": 75000
                        },
                        "prior": { "StageName": "Negotiation/Review" }
                    }
                },
                "EventBatch": {
                    "type": "object",
                    "description": "A batch body for POST /v1/events, accepted or rejected whole.",
                    "required": ["events"],
                    "additionalProperties": false,
                    "properties": {
                        "events": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": { "$ref": "#/components/schemas/Envelope" }
                        }
                    }
                },
                "Accepted": {
                    "type": "object",
                    "description": "What was queued.",
                    "required": ["accepted", "duplicates", "ids"],
                    "properties": {
                        "accepted": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Events newly queued."
                        },
                        "duplicates": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Events already queued earlier (retries), not queued again."
                        },
                        "ids": {
                            "type": "array",
                            "items": { "type": "string" },
                            "description": "sfrelay's id of each event in request order; for a duplicate, the id of the event first queued."
                        },
                        "gaps": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Change Data Capture gap events received (POST /v1/cdc only; absent when none)."
                        }
                    }
                },
                "Problem": {
                    "type": "object",
                    "description": "An RFC 9457 problem details body.",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": { "type": "string", "description": "Always about:blank." },
                        "title": { "type": "string" },
                        "status": {
                            "type": "integer",
                            "minimum": 400,
                            "maximum": 599,
                            "description": "The HTTP status code."
                        },
                        "detail": { "type": "string" },
                        "errors": {
                            "type": "array",
                            "items": { "$ref": "#/components/schemas/FieldError" },
                            "description": "Every problem found in the body, when it was invalid."
                        }
                    }
                },
                "FieldError": {
                    "type": "object",
                    "required": ["path", "message"],
                    "properties": {
                        "path": {
                            "type": "string",
                            "description": "JSON Pointer (RFC 6901) to the offending value; empty for the whole body."
                        },
                        "message": { "type": "string" }
                    }
                },
                "Health": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": { "type": "string", "description": "ok" }
                    }
                }
            }
        }
    });
    if let Some(url) = server_url {
        document["servers"] = json!([{ "url": url }]);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Walks every value, calling `check` with the key it sits under.
    /// Property names (children of `properties`) are names, not keywords,
    /// so they are not passed as keys.
    fn walk(value: &Value, key: Option<&str>, check: &mut dyn FnMut(&str, &Value)) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if key != Some("properties") {
                        check(k, v);
                    }
                    walk(v, Some(k), check);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, check)),
            _ => {}
        }
    }

    #[test]
    fn top_level_is_openapi_3_0() {
        let doc = document(None);
        assert_eq!(doc["openapi"], "3.0.3");
        assert!(doc["info"]["title"].is_string());
        assert!(doc["info"]["version"].is_string());
        assert!(doc["paths"].is_object());
        assert!(doc["components"]["schemas"].is_object());
        assert!(doc.get("servers").is_none());
        let allowed: HashSet<&str> = [
            "openapi",
            "info",
            "servers",
            "paths",
            "components",
            "security",
            "tags",
            "externalDocs",
        ]
        .into();
        for key in doc.as_object().unwrap().keys() {
            assert!(allowed.contains(key.as_str()), "{key}");
        }
        let doc = document(Some("https://sfrelay.example.com"));
        assert_eq!(
            doc["servers"],
            json!([{ "url": "https://sfrelay.example.com" }])
        );
    }

    #[test]
    fn every_ref_resolves_to_a_schema() {
        let doc = document(None);
        let mut refs = Vec::new();
        walk(&doc, None, &mut |k, v| {
            if k == "$ref" {
                refs.push(v.as_str().unwrap().to_owned());
            }
        });
        assert!(refs.len() >= 5, "{refs:?}");
        for r in refs {
            let target = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}"));
            assert!(target.starts_with("/components/schemas/"), "{r}");
            assert!(
                doc.pointer(target).is_some_and(Value::is_object),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn keeps_to_what_external_services_accept() {
        let doc = document(Some("https://x.example"));
        let mut seen_types = BTreeSet::new();
        walk(&doc, None, &mut |k, v| {
            assert!(
                !["oneOf", "anyOf", "allOf", "nullable", "const", "examples"].contains(&k),
                "{k} is used"
            );
            // External Services do not support response headers.
            if k == "responses" {
                for response in v.as_object().unwrap().values() {
                    assert!(response.get("headers").is_none(), "{response}");
                }
            }
            if k == "enum" {
                assert!(v.as_array().unwrap().iter().all(Value::is_string), "{v}");
            }
            if k == "format" {
                assert_eq!(v, "date-time");
            }
            if k == "type" {
                // 3.1's type arrays are not 3.0.
                seen_types.insert(v.as_str().unwrap().to_owned());
            }
        });
        let schema_types: BTreeSet<String> =
            ["array", "boolean", "integer", "number", "object", "string"]
                .map(String::from)
                .into();
        let scheme_types: BTreeSet<String> = ["apiKey", "http"].map(String::from).into();
        for t in &seen_types {
            assert!(schema_types.contains(t) || scheme_types.contains(t), "{t}");
        }

        let envelope = &doc["components"]["schemas"]["Envelope"];
        for free_form in ["record", "prior"] {
            assert_eq!(envelope["properties"][free_form]["type"], "object");
            assert_eq!(
                envelope["properties"][free_form]["additionalProperties"],
                true
            );
        }
        let properties: BTreeSet<&str> = envelope["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            properties,
            [
                "org_id",
                "object",
                "record",
                "change_type",
                "changed_fields",
                "prior",
                "event_id",
                "occurred_at"
            ]
            .into()
        );
        assert_eq!(envelope["required"], json!(["org_id", "object", "record"]));

        let scheme = &doc["components"]["securitySchemes"]["apiKey"];
        assert_eq!(
            (&scheme["type"], &scheme["in"], &scheme["name"]),
            (&json!("apiKey"), &json!("header"), &json!("X-Api-Key"))
        );
    }

    /// The rules `flow::parse_flow_request` enforces, as the schema states them.
    #[test]
    fn envelope_states_the_enforced_rules() {
        let doc = document(None);
        let envelope = &doc["components"]["schemas"]["Envelope"];
        let properties = &envelope["properties"];
        assert_eq!(envelope["additionalProperties"], false);
        assert_eq!(properties["org_id"]["pattern"], ORG_ID_PATTERN);
        assert_eq!(properties["object"]["pattern"], API_NAME_PATTERN);
        assert_eq!(properties["object"]["maxLength"], 80);
        assert_eq!(properties["record"]["required"], json!(["Id"]));
        assert_eq!(
            properties["record"]["properties"]["Id"]["pattern"],
            ID_PATTERN
        );
        assert_eq!(
            properties["change_type"]["enum"],
            json!(["CREATE", "UPDATE", "DELETE", "UNDELETE"])
        );
        assert_eq!(
            (
                &properties["event_id"]["minLength"],
                &properties["event_id"]["maxLength"]
            ),
            (&json!(1), &json!(255))
        );
        let batch = &doc["components"]["schemas"]["EventBatch"];
        assert_eq!(batch["properties"]["events"]["maxItems"], MAX_BATCH);
        assert_eq!(batch["additionalProperties"], false);
        let events = &doc["paths"]["/v1/events"]["post"]["responses"];
        for status in ["202", "400", "401", "403", "408", "413", "415", "503"] {
            assert!(events.get(status).is_some(), "{status}");
        }
        let bad_request = events["400"]["description"].as_str().unwrap();
        assert!(bad_request.contains("checksum"), "{bad_request}");
        let unavailable = events["503"]["description"].as_str().unwrap();
        assert!(unavailable.contains("Retry-After"), "{unavailable}");
    }

    #[test]
    fn operations_are_complete_and_unique() {
        let doc = document(None);
        let mut operation_ids = HashSet::new();
        let security_schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with('/'), "{path}");
            for (method, operation) in item.as_object().unwrap() {
                assert!(METHODS.contains(&method.as_str()), "{path} {method}");
                let id = operation["operationId"].as_str().unwrap();
                assert!(operation_ids.insert(id.to_owned()), "{id} repeated");
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{id}");
                for (status, response) in responses {
                    assert!(
                        status.len() == 3 && status.parse::<u16>().is_ok(),
                        "{id} {status}"
                    );
                    assert!(response["description"].is_string(), "{id} {status}");
                }
                if method == "get" {
                    assert!(operation.get("requestBody").is_none(), "{id}");
                }
                // Every templated segment is a required path parameter.
                let params: Vec<&Value> = operation
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map(|p| p.iter().collect())
                    .unwrap_or_default();
                for segment in path.split('/').filter(|s| s.starts_with('{')) {
                    let name = segment.trim_matches(['{', '}']);
                    assert!(
                        params.iter().any(|p| p["name"] == name
                            && p["in"] == "path"
                            && p["required"] == true),
                        "{id}: {name}"
                    );
                }
                for requirement in operation
                    .get("security")
                    .or(doc.get("security"))
                    .and_then(Value::as_array)
                    .unwrap()
                {
                    for scheme in requirement.as_object().unwrap().keys() {
                        assert!(security_schemes.contains_key(scheme), "{scheme}");
                    }
                }
            }
        }
        assert_eq!(
            operation_ids,
            ["getHealth", "postEvents", "postCdc", "postOutboundMessage"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn paths_are_exactly_the_served_ones() {
        let doc = document(None);
        let paths: BTreeMap<&str, Vec<&str>> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, item)| {
                (
                    path.as_str(),
                    item.as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            paths,
            BTreeMap::from([
                ("/healthz", vec!["get"]),
                ("/v1/cdc", vec!["post"]),
                ("/v1/events", vec!["post"]),
                ("/v1/outbound-messages/{token}", vec!["post"]),
            ])
        );
        let events = &doc["paths"]["/v1/events"]["post"];
        assert_eq!(
            events["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Envelope"
        );
        assert_eq!(
            events["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Accepted"
        );
        assert!(
            doc["paths"]["/v1/outbound-messages/{token}"]["post"]["requestBody"]["content"]
                .get("text/xml")
                .is_some()
        );
    }

    #[test]
    fn example_envelope_parses_as_a_flow_request() {
        let doc = document(None);
        let example = &doc["components"]["schemas"]["Envelope"]["example"];
        let events = super::super::flow::parse_flow_request(
            example.to_string().as_bytes(),
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(events[0].record_id.as_str(), "006Hs00000BkXyzIAF");
    }
}
