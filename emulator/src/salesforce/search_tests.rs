//! Unit tests of search: SOSL and parameterized, per-person visibility, and the journal.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::salesforce::emulator::sf_now;
use crate::salesforce::store::Store;

fn emulator() -> Emulator {
    let mut store = Store::default();
    store
        .upsert_all(
            json!({
                "User": [{"Id": "005000000000011AAA", "Username": "ada@acme.example"}],
                "Account": [{"Id": "001000000000001AAA", "Name": "Acme Corp"}],
                "Opportunity": [
                    {"Id": "006000000000001AAA", "Name": "Acme renewal", "StageName": "Prospecting",
                     "AccountId": "001000000000001AAA", "Amount": 100},
                    {"Id": "006000000000002AAA", "Name": "Acme expansion", "StageName": "Closed Lost",
                     "AccountId": "001000000000001AAA", "Amount": 300},
                    {"Id": "006000000000003AAA", "Name": "Globex", "StageName": "Prospecting",
                     "Description": "Competes with ACME"},
                ],
                "Case": [{"Id": "500000000000001AAA", "Subject": "Acme portal down",
                          "SuppliedEmail": "ops@acme.example"}],
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

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["searchRecords"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.body))
        .iter()
        .map(|r| r["Id"].as_str().unwrap_or_default()[..15].to_owned())
        .collect()
}

#[test]
fn finds_words_in_string_fields_per_object() {
    let mut emu = emulator();
    let reply = emu.search(
        "v62.0",
        Some(
            "FIND {acme} IN ALL FIELDS RETURNING Opportunity(Id, Name, Account.Name \
             ORDER BY Amount DESC), Case(Id, Subject)",
        ),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        ids(&reply),
        [
            "006000000000002",
            "006000000000001",
            "006000000000003",
            "500000000000001"
        ]
    );
    let first = &reply.body["searchRecords"][0];
    assert_eq!(first["attributes"]["type"], "Opportunity");
    assert_eq!(first["Account"]["Name"], "Acme Corp");
    assert_eq!(
        reply.body["searchRecords"][3]["Subject"],
        "Acme portal down"
    );

    let named = emu.search(
        "v62.0",
        Some(
            "FIND {acme} IN NAME FIELDS RETURNING Opportunity(Id WHERE StageName != 'Closed Lost')",
        ),
    );
    assert_eq!(ids(&named), ["006000000000001"]);
    let both_words = emu.search(
        "v62.0",
        Some("FIND {acme portal} RETURNING Case, Opportunity"),
    );
    assert_eq!(ids(&both_words), ["500000000000001"]);
    let everywhere = emu.search("v62.0", Some("FIND {acme} LIMIT 2"));
    assert_eq!(ids(&everywhere).len(), 2);
    let email = emu.search(
        "v62.0",
        Some(r"FIND {ops@acme.example} IN EMAIL FIELDS RETURNING Case"),
    );
    assert_eq!(ids(&email), ["500000000000001"]);
    let limited = emu.search(
        "v62.0",
        Some("FIND {acme} RETURNING Opportunity(Id LIMIT 1), Case"),
    );
    assert_eq!(ids(&limited).len(), 2);
}

#[test]
fn refuses_malformed_searches_with_salesforces_errors() {
    let mut emu = emulator();
    for (q, code) in [
        (Some("FIND {acme-corp}"), "MALFORMED_SEARCH"),
        (Some("FIND {O'Brien}"), "MALFORMED_SEARCH"),
        (Some("FIND acme"), "MALFORMED_SEARCH"),
        (None, "MALFORMED_SEARCH"),
        (Some("FIND {a}"), "INVALID_SEARCH"),
        (Some("FIND {acme} RETURNING Widget__c"), "INVALID_TYPE"),
        (
            Some("FIND {acme} RETURNING Opportunity(Nope)"),
            "INVALID_FIELD",
        ),
    ] {
        let reply = emu.search("v62.0", q);
        assert_eq!(reply.status, 400, "{q:?}");
        assert_eq!(reply.body[0]["errorCode"], code, "{q:?}: {}", reply.body);
    }
    let escaped = emu.search("v62.0", Some(r"FIND {acme\-corp} RETURNING Account"));
    assert_eq!(escaped.status, 200);
    let journal = emu.searches.to_json();
    assert_eq!(journal.as_array().map(Vec::len), Some(8));
    assert_eq!(journal[0]["error"], "MALFORMED_SEARCH");
    assert_eq!(journal[7]["status"], 200);
    assert_eq!(journal[7]["username"], "integration@acme.example");
}

#[test]
fn a_person_finds_only_what_they_may_see() {
    let mut emu = emulator();
    emu.set_visibility(&json!({"user": "ada@acme.example",
                               "hidden_ids": ["006000000000002AAA"],
                               "hidden_objects": ["Case"]}))
        .unwrap();
    emu.acting.caller = emu.person("ada@acme.example").unwrap();
    let reply = emu.search("v62.0", Some("FIND {acme} RETURNING Opportunity, Case"));
    assert_eq!(ids(&reply), ["006000000000001", "006000000000003"]);
    let query = emu.query("v62.0", Some("SELECT Id FROM Opportunity"));
    assert_eq!(query.body["totalSize"], 2);
    let case = emu.query("v62.0", Some("SELECT Id FROM Case"));
    assert_eq!(case.body[0]["errorCode"], "INVALID_TYPE");
    let hidden = emu.sobject("v62.0", "Opportunity", "006000000000002", None);
    assert_eq!(hidden.status, 404);
    let update = emu.update(
        "Opportunity",
        "006000000000002AAA",
        None,
        true,
        br#"{"Name": "x"}"#,
    );
    assert_eq!(update.status, 404);
    let create = emu.create("Case", br#"{"Subject": "x"}"#);
    assert_eq!(create.status, 404);
    assert_eq!(emu.searches.to_json()[0]["user_id"], "005000000000011AAA");

    emu.acting.caller = emu.integration_caller();
    let all = emu.search("v62.0", Some("FIND {acme} RETURNING Opportunity, Case"));
    assert_eq!(ids(&all).len(), 4, "the rules are Ada's only");
}

#[test]
fn parameterized_search_takes_plain_text() {
    let mut emu = emulator();
    let pairs = |raw: &[(&str, &str)]| -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let reply = emu.parameterized_search(
        "v62.0",
        &pairs(&[
            ("q", "Acme"),
            ("sobject", "Opportunity"),
            ("Opportunity.fields", "Id,Name"),
            ("Opportunity.where", "StageName = 'Prospecting'"),
            ("sobject", "Case"),
            ("defaultLimit", "5"),
            ("in", "ALL"),
        ]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        ids(&reply),
        ["006000000000001", "006000000000003", "500000000000001"]
    );
    assert_eq!(reply.body["searchRecords"][0]["Name"], "Acme renewal");
    let special = emu.parameterized_search(
        "v62.0",
        &pairs(&[("q", "acme-corp"), ("sobject", "Account")]),
    );
    assert_eq!(
        special.status, 200,
        "no SOSL escaping in a parameterized search"
    );
    for bad in [
        pairs(&[("q", "a")]),
        pairs(&[("sobject", "Account")]),
        pairs(&[("q", "acme"), ("in", "BODY")]),
        pairs(&[("q", "acme"), ("overallLimit", "x")]),
        pairs(&[
            ("q", "acme"),
            ("sobject", "Account"),
            ("Account.fields", "Id Name"),
        ]),
    ] {
        assert_eq!(
            emu.parameterized_search("v62.0", &bad).status,
            400,
            "{bad:?}"
        );
    }
    let overall =
        emu.parameterized_search("v62.0", &pairs(&[("q", "acme"), ("overallLimit", "1")]));
    assert_eq!(ids(&overall).len(), 1);
    let kinds: Vec<Value> = emu
        .searches
        .to_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].clone())
        .collect();
    assert!(kinds.iter().all(|k| k == "parameterized"));
}
