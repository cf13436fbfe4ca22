//! The published contract is the enforced one: a property-based fuzzer that reads
//! `GET /openapi.json` from the real server, generates requests from its schemas (valid ones and
//! mutated ones), sends them, and checks both directions:
//!
//! - a request the schema accepts is answered 202, or 400 only for what the schema says it
//!   cannot express (an 18-character Id whose checksum is wrong, the error naming that field),
//!   or 403 for another org's Id;
//! - a request the schema refuses is never accepted;
//! - every answer's status is one the operation declares, with the declared media type, and its
//!   body validates against the declared response schema.
//!
//! Bounded (a few hundred cases), seeded by proptest; a failure prints the request and answer.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::cell::Cell;
use support::{API_KEY, App, ORG, Options, Redis};

/// How many requests each property sends.
const CASES: u32 = 150;

/// Salesforce's checksum alphabet: one character per 5-character chunk of the Id.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

fn checksum(base: &str) -> String {
    base.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX[bits])
        })
        .collect()
}

/// Whether an Id (already matching the schema's pattern) has a right checksum; 15-character Ids
/// have none to check.
fn checksum_ok(id: &str) -> bool {
    id.len() != 18 || id[15..].eq_ignore_ascii_case(&checksum(&id[..15]))
}

/// The document served, with `#/components/...` references resolvable from any schema built
/// with [`schema_at`].
struct Contract {
    doc: Value,
}

impl Contract {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{r} does not resolve")),
            None => schema,
        }
    }

    /// A JSON Schema validator for `schema`, with the document's components beside it so its
    /// references resolve; formats (date-time) are asserted, as the server enforces them.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        jsonschema::draft4::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{root}"))
    }

    /// A strategy for values that the schema accepts.
    fn generate(&self, schema: &Value) -> BoxedStrategy<Value> {
        let schema = self.resolve(schema).clone();
        let with_example = |strategy: BoxedStrategy<Value>| match schema.get("example") {
            Some(example) => prop_oneof![1 => Just(example.clone()), 2 => strategy].boxed(),
            None => strategy,
        };
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            return proptest::sample::select(choices.clone()).boxed();
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string") => with_example(string_strategy(&schema)),
            Some("integer") => {
                let min = schema["minimum"].as_i64().unwrap_or(-1000);
                let max = schema["maximum"].as_i64().unwrap_or(1000);
                (min..=max).prop_map(Value::from).boxed()
            }
            Some("boolean") => any::<bool>().prop_map(Value::from).boxed(),
            Some("array") => {
                let items = self.generate(&schema["items"]);
                let min = schema["minItems"].as_u64().unwrap_or(0) as usize;
                let max = (schema["maxItems"].as_u64().unwrap_or(4) as usize).min(min + 4);
                proptest::collection::vec(items, min..=max)
                    .prop_map(Value::Array)
                    .boxed()
            }
            Some("object") => self.object_strategy(&schema),
            other => panic!("no generator for schema type {other:?}: {schema}"),
        }
    }

    fn object_strategy(&self, schema: &Value) -> BoxedStrategy<Value> {
        let required: BTreeSet<String> = schema["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
        if let Some(properties) = schema["properties"].as_object() {
            for (name, property) in properties {
                let name = name.clone();
                let value = self.generate(property);
                fields.push(if required.contains(&name) {
                    value.prop_map(move |v| Some((name.clone(), v))).boxed()
                } else {
                    proptest::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
                });
            }
        }
        // Free-form objects get a few fields of their own.
        let extra = if schema["additionalProperties"] == true {
            proptest::collection::btree_map("[A-Z][A-Za-z0-9_]{0,12}", scalar(), 0..3).boxed()
        } else {
            Just(Default::default()).boxed()
        };
        (fields, extra)
            .prop_map(|(fields, extra)| {
                let mut map: Map<String, Value> = extra.into_iter().collect();
                map.extend(fields.into_iter().flatten());
                Value::Object(map)
            })
            .boxed()
    }
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::from),
        Just(Value::Null),
    ]
    .boxed()
}

/// Strings for a string schema: from its pattern when it has one (anchors dropped: proptest
/// generates whole matches), else any printable text within its lengths; RFC 3339 for
/// `date-time`.
fn string_strategy(schema: &Value) -> BoxedStrategy<Value> {
    let min = schema["minLength"].as_u64().unwrap_or(0) as usize;
    let max = schema["maxLength"].as_u64().unwrap_or(40) as usize;
    if schema["format"] == "date-time" {
        return (0i64..4_000_000_000, proptest::option::of(-720i32..720))
            .prop_map(|(secs, offset_min)| {
                let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
                Value::from(match offset_min {
                    None => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    Some(m) => t
                        .with_timezone(
                            &chrono::FixedOffset::east_opt(m * 60)
                                .unwrap_or(chrono::FixedOffset::east_opt(0).expect("zero offset")),
                        )
                        .to_rfc3339(),
                })
            })
            .boxed();
    }
    let regex = match schema["pattern"].as_str() {
        Some(p) => p.trim_start_matches('^').trim_end_matches('$').to_owned(),
        None => format!("[ -~\u{e9}\u{4e2d}]{{{min},{}}}", max.min(min + 40)),
    };
    proptest::string::string_regex(&regex)
        .unwrap_or_else(|e| panic!("pattern {regex}: {e}"))
        .prop_filter("within the schema's lengths", move |s| {
            (min..=max).contains(&s.chars().count())
        })
        .prop_map(Value::from)
        .boxed()
}

/// Makes the generated Ids' checksums right or wrong, each at random, so both directions of
/// the rule the schema cannot state are exercised.
fn set_checksums(body: &mut Value, fix: &mut impl Iterator<Item = bool>) {
    let mut set = |id: &mut Value| {
        if let Some(s) = id.as_str().filter(|s| s.len() == 18)
            && fix.next().unwrap_or(true)
        {
            *id = Value::from(format!("{}{}", &s[..15], checksum(&s[..15])));
        }
    };
    let envelopes: Vec<&mut Value> = if body.get("events").is_some() {
        body["events"]
            .as_array_mut()
            .map(|events| events.iter_mut().collect())
            .unwrap_or_default()
    } else {
        vec![body]
    };
    for envelope in envelopes {
        if let Some(org) = envelope.get_mut("org_id") {
            set(org);
        }
        if let Some(id) = envelope.pointer_mut("/record/Id") {
            set(id);
        }
    }
}

/// One way to break a schema-valid envelope.
#[derive(Debug, Clone)]
enum Mutation {
    DropRequired(usize),
    WrongType(usize, Value),
    Unknown(String),
    BreakPattern(usize),
    TooLong(usize),
    RecordWithoutId,
    BadEnum,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..8).prop_map(Mutation::DropRequired),
        (
            0usize..8,
            prop_oneof![Just(json!(7)), Just(json!([])), Just(json!(true))]
        )
            .prop_map(|(i, v)| Mutation::WrongType(i, v)),
        "[a-z]{1,8}".prop_map(Mutation::Unknown),
        (0usize..8).prop_map(Mutation::BreakPattern),
        (0usize..8).prop_map(Mutation::TooLong),
        Just(Mutation::RecordWithoutId),
        Just(Mutation::BadEnum),
    ]
}

/// Applies `m` to one envelope, guided by its schema; the oracle later asks the validator
/// whether the result is really invalid rather than trusting the mutation.
fn mutate(envelope: &mut Value, schema: &Value, m: &Mutation) {
    let names: Vec<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let pick = |i: usize| names[i % names.len()].clone();
    let Some(map) = envelope.as_object_mut() else {
        return;
    };
    match m {
        Mutation::DropRequired(i) => {
            let required = schema["required"].as_array().cloned().unwrap_or_default();
            if let Some(name) = required[i % required.len()].as_str() {
                map.remove(name);
            }
        }
        Mutation::WrongType(i, v) => {
            map.insert(pick(*i), v.clone());
        }
        Mutation::Unknown(name) => {
            map.insert(format!("x_{name}"), json!(1));
        }
        Mutation::BreakPattern(i) => {
            let name = pick(*i);
            if let Some(Value::String(s)) = map.get_mut(&name) {
                s.insert(0, '-');
            }
        }
        Mutation::TooLong(i) => {
            let name = pick(*i);
            if let Some(max) = schema["properties"][&name]["maxLength"].as_u64() {
                map.insert(name, Value::from("A".repeat(max as usize + 1)));
            }
        }
        Mutation::RecordWithoutId => {
            if let Some(Value::Object(record)) = map.get_mut("record") {
                record.remove("Id");
            }
        }
        Mutation::BadEnum => {
            map.insert("change_type".into(), json!("update"));
        }
    }
}

/// What a request carried besides its body.
#[derive(Debug, Clone)]
enum Head {
    Good,
    NoKey,
    WrongKey,
    TextPlain,
}

fn head() -> impl Strategy<Value = Head> {
    prop_oneof![
        12 => Just(Head::Good),
        1 => Just(Head::NoKey),
        1 => Just(Head::WrongKey),
        1 => Just(Head::TextPlain),
    ]
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(app: &App, path: &str, head: &Head, body: Vec<u8>) -> Answer {
    let mut request = app.http.post(format!("{}{path}", app.url)).body(body);
    request = match head {
        Head::TextPlain => request.header("Content-Type", "text/plain"),
        _ => request.header("Content-Type", "application/json"),
    };
    request = match head {
        Head::NoKey => request,
        Head::WrongKey => request.header("X-Api-Key", "not-the-key-0123456789abcdef"),
        _ => request.header("X-Api-Key", API_KEY),
    };
    let response = request.send().await.expect("sfrelay answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        body,
    }
}

/// The answer is one the operation declares, with that media type and a body its schema
/// accepts.
fn check_declared(
    contract: &Contract,
    operation: &Value,
    answer: &Answer,
) -> Result<(), TestCaseError> {
    let status = answer.status.to_string();
    let Some(declared) = operation["responses"].get(&status) else {
        return Err(TestCaseError::fail(format!(
            "status {status} is not declared for {}: {}",
            operation["operationId"], answer.body
        )));
    };
    let content = declared["content"].as_object().cloned().unwrap_or_default();
    let media = answer.content_type.split(';').next().unwrap_or("").trim();
    let Some(entry) = content.get(media) else {
        return Err(TestCaseError::fail(format!(
            "{status} answered as {media:?}; declared {:?}",
            content.keys().collect::<Vec<_>>()
        )));
    };
    let validator = contract.validator(&entry["schema"]);
    let errors: Vec<String> = validator
        .iter_errors(&answer.body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    prop_assert!(
        errors.is_empty(),
        "{status} body does not match its schema: {errors:?}\n{}",
        answer.body
    );
    Ok(())
}

/// Everything the test needs across cases.
struct Bench {
    rt: tokio::runtime::Runtime,
    app: App,
    contract: Arc<Contract>,
    _redis: Redis,
}

fn bench() -> Bench {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let redis = Redis::start();
    let app = rt.block_on(App::spawn(Options {
        redis: Some(redis.url()),
        ..Options::default()
    }));
    let doc: Value = rt.block_on(async {
        app.get("/openapi.json")
            .await
            .json()
            .await
            .expect("openapi.json is JSON")
    });
    Bench {
        rt,
        app,
        contract: Arc::new(Contract { doc }),
        _redis: redis,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// What the server must answer a request with the right credential and media type whose body
/// the schema accepts: 202, or 400 naming only Ids with a wrong checksum, or 403 for another
/// org's Id.
fn expect_for_valid(body: &Value, answer: &Answer) -> Result<(), TestCaseError> {
    let envelopes: Vec<&Value> = match body.get("events").and_then(Value::as_array) {
        Some(events) => events.iter().collect(),
        None => vec![body],
    };
    let mut bad_checksums = BTreeSet::new();
    let mut other_org = false;
    for (i, e) in envelopes.iter().enumerate() {
        let base = if body.get("events").is_some() {
            format!("/events/{i}")
        } else {
            String::new()
        };
        let org = e["org_id"].as_str().unwrap_or_default();
        let record_id = e["record"]["Id"].as_str().unwrap_or_default();
        if !checksum_ok(org) {
            bad_checksums.insert(format!("{base}/org_id"));
        } else if org.get(..15) != ORG.get(..15) {
            // Ids are case-sensitive in their first 15 characters; the suffix only encodes them.
            other_org = true;
        }
        if !checksum_ok(record_id) {
            bad_checksums.insert(format!("{base}/record/Id"));
        }
    }
    match answer.status {
        202 => prop_assert!(
            bad_checksums.is_empty() && !other_org,
            "accepted despite {bad_checksums:?} / another org"
        ),
        400 => {
            let paths: BTreeSet<String> = answer.body["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|x| x["path"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            prop_assert!(
                !paths.is_empty() && paths.is_subset(&bad_checksums),
                "a schema-valid body refused for {paths:?} (checksum problems: {bad_checksums:?}): {}",
                answer.body
            );
        }
        403 => prop_assert!(
            other_org && bad_checksums.is_empty(),
            "403 without another org: {}",
            answer.body
        ),
        other => prop_assert!(false, "{other} for a schema-valid body: {}", answer.body),
    }
    Ok(())
}

/// One `POST /v1/events` case: `body` sent with `head`, checked against the contract.
fn check_events_case(bench: &Bench, head: &Head, body: &Value) -> Result<u16, TestCaseError> {
    let contract = &bench.contract;
    let operation = &contract.doc["paths"]["/v1/events"]["post"];
    let declared = &operation["requestBody"]["content"]["application/json"]["schema"];
    let batch = json!({ "$ref": "#/components/schemas/EventBatch" });
    // The operation declares the single envelope; its description and EventBatch document the
    // batch form of the same path.
    let valid =
        contract.validator(declared).is_valid(body) || contract.validator(&batch).is_valid(body);
    let answer = bench.rt.block_on(send(
        &bench.app,
        "/v1/events",
        head,
        body.to_string().into_bytes(),
    ));
    check_declared(contract, operation, &answer)?;
    match head {
        Head::NoKey | Head::WrongKey => prop_assert_eq!(answer.status, 401),
        Head::TextPlain => prop_assert_eq!(answer.status, 415),
        Head::Good if valid => expect_for_valid(body, &answer)?,
        Head::Good => prop_assert_eq!(
            answer.status,
            400,
            "a body the schema refuses was answered {}: {}",
            answer.status,
            answer.body
        ),
    }
    Ok(answer.status)
}

/// Schema-valid envelopes (Ids with right and wrong checksums), sent as they are.
#[test]
fn generated_envelopes_get_the_documented_answers() {
    let bench = bench();
    let envelope = json!({ "$ref": "#/components/schemas/Envelope" });
    let strategy = (
        bench.contract.generate(&envelope),
        proptest::collection::vec(any::<bool>(), 2),
        head(),
    );
    let statuses = std::cell::RefCell::new(BTreeSet::new());
    let result = runner().run(&strategy, |(mut body, fix, head)| {
        set_checksums(&mut body, &mut fix.into_iter());
        let status = check_events_case(&bench, &head, &body)?;
        statuses.borrow_mut().insert(status);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n--- sfrelay log ---\n{}", bench.app.logs());
    }
    // Both sides of every rule were reached: accepted, refused for a checksum, another org,
    // no credential, the wrong media type.
    let statuses = statuses.into_inner();
    assert_eq!(
        statuses,
        BTreeSet::from([202, 400, 401, 403, 415]),
        "answers seen"
    );
}

/// Envelopes broken in one way each: whatever the validator says of them decides the answer.
#[test]
fn mutated_envelopes_are_refused_as_the_schema_says() {
    let bench = bench();
    let envelope_ref = json!({ "$ref": "#/components/schemas/Envelope" });
    let envelope_schema = bench.contract.resolve(&envelope_ref).clone();
    let strategy = (
        bench.contract.generate(&envelope_ref),
        mutation(),
        proptest::collection::vec(any::<bool>(), 2),
    );
    let refused = Cell::new(0);
    let result = runner().run(&strategy, |(mut body, m, fix)| {
        set_checksums(&mut body, &mut fix.into_iter());
        mutate(&mut body, &envelope_schema, &m);
        if !bench.contract.validator(&envelope_ref).is_valid(&body) {
            refused.set(refused.get() + 1);
        }
        check_events_case(&bench, &Head::Good, &body).map(drop)
    });
    if let Err(e) = result {
        panic!("{e}\n--- sfrelay log ---\n{}", bench.app.logs());
    }
    let refused = refused.get();
    assert!(
        refused > CASES / 2,
        "only {refused} of {CASES} mutations broke the schema: the mutations are too weak"
    );
}

/// Batches from the EventBatch schema, and one past its maxItems.
#[test]
fn generated_batches_get_the_documented_answers() {
    let bench = bench();
    let batch = json!({ "$ref": "#/components/schemas/EventBatch" });
    let strategy = (
        bench.contract.generate(&batch),
        proptest::collection::vec(any::<bool>(), 16),
    );
    let result = runner().run(&strategy, |(mut body, fix)| {
        set_checksums(&mut body, &mut fix.into_iter().cycle());
        check_events_case(&bench, &Head::Good, &body).map(drop)
    });
    if let Err(e) = result {
        panic!("{e}\n--- sfrelay log ---\n{}", bench.app.logs());
    }
    // One more than maxItems: the schema refuses it, so must the server.
    let max = bench.contract.doc["components"]["schemas"]["EventBatch"]["properties"]["events"]
        ["maxItems"]
        .as_u64()
        .expect("maxItems") as usize;
    let tree = bench
        .contract
        .generate(&json!({ "$ref": "#/components/schemas/Envelope" }))
        .new_tree(&mut runner())
        .expect("an envelope");
    let mut one = tree.current();
    set_checksums(&mut one, &mut std::iter::repeat(true));
    let too_many = json!({ "events": vec![one; max + 1] });
    check_events_case(&bench, &Head::Good, &too_many).expect("a batch past maxItems");
}

/// An oversized body is answered 413 as declared.
#[test]
fn oversized_body_is_the_declared_413() {
    let bench = bench();
    let operation = &bench.contract.doc["paths"]["/v1/events"]["post"];
    let body = json!({ "org_id": ORG, "object": "Opportunity",
        "record": { "Id": "006Hs00000BkXyzIAF", "Notes": "x".repeat(1_100_000) } });
    let answer = bench.rt.block_on(send(
        &bench.app,
        "/v1/events",
        &Head::Good,
        body.to_string().into_bytes(),
    ));
    assert_eq!(answer.status, 413, "{}", answer.body);
    check_declared(&bench.contract, operation, &answer).expect("413 as declared");
}
