//! Golden tests: each shipped route, fed each project fixture, makes exactly the Slack calls
//! recorded in `tests/golden/`. After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sfrelay::config::{Config, Env};
use sfrelay::deliver::OrgDirectory;
use sfrelay::ingest::flow::parse_flow_request;
use sfrelay::render::limits::max;

struct NoEnv;
impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped routes and templates, with an org whose instance URL makes record links.
fn config() -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sfrelay.toml");
    std::fs::write(
        &path,
        format!(
            "routes_dir = \"{}\"\ntemplates_dir = \"{}\"\ntime_zone = \"America/New_York\"\n\
             [[orgs]]\nid = \"00D5g000004ABCdEAO\"\n[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n",
            root().join("routes").display(),
            root().join("templates").display()
        ),
    )
    .unwrap();
    Config::load(Some(&path), &NoEnv).unwrap()
}

fn render(config: &Config, body: &[u8]) -> Value {
    let routes = sfrelay::app::load_routes(config).expect("shipped routes load");
    let orgs = OrgDirectory::new(&config.orgs);
    let events = parse_flow_request(body, chrono::Utc::now()).expect("fixture parses");
    let runs = sfrelay::check::render(&routes, &orgs, &events, None).expect("renders");
    let mut value = serde_json::to_value(runs).unwrap();
    for run in value.as_array_mut().unwrap() {
        run.as_object_mut().unwrap().remove("event_id");
    }
    value
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["", "hostile"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(root().join("tests/fixtures").join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()) == Some("json")
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("flow-") || p.parent().unwrap().ends_with("hostile")
                })
        })
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_routes_make_exactly_the_recorded_calls() {
    let config = config();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = root().join("tests/golden");
    let mut checked = 0;
    for fixture in fixtures() {
        let name = fixture.file_name().unwrap().to_str().unwrap().to_string();
        let actual = render(&config, &std::fs::read(&fixture).unwrap());
        let golden = golden_dir.join(&name);
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(
                &golden,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
            continue;
        }
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(&golden).unwrap_or_else(|_| {
                panic!("{} is missing: run with UPDATE_GOLDEN=1", golden.display())
            }))
            .unwrap();
        assert_eq!(
            actual,
            expected,
            "{name}: rendered calls differ from {}",
            golden.display()
        );
        checked += 1;
    }
    assert!(update || checked >= 6, "only {checked} fixtures checked");
}

fn text_lengths_within_limits(call: &Value) {
    let blocks = call["blocks"].as_array().unwrap();
    assert!(blocks.len() <= max::BLOCKS);
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    assert!(chars(&call["text"]) <= max::MESSAGE_TEXT);
    let mut total = 0;
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => assert!(chars(&block["text"]["text"]) <= max::HEADER_TEXT),
            "section" => {
                assert!(chars(&block["text"]["text"]) <= max::SECTION_TEXT);
                let fields = block["fields"].as_array().map_or(&[][..], |f| &f[..]);
                assert!(fields.len() <= max::SECTION_FIELDS);
                for f in fields {
                    assert!(chars(&f["text"]) <= max::FIELD_TEXT);
                    total += chars(&f["text"]);
                }
                total += chars(&block["text"]["text"]);
            }
            "actions" => {
                for e in block["elements"].as_array().unwrap() {
                    assert!(chars(&e["text"]["text"]) <= max::BUTTON_TEXT);
                    assert!(chars(&e["url"]) <= max::URL);
                }
            }
            _ => {}
        }
    }
    assert!(total <= max::BLOCKS_TOTAL_TEXT, "{total}");
}

#[test]
fn huge_and_hostile_values_stay_inert_and_within_limits() {
    let config = config();
    let long = "<!channel> ".repeat(1000); // 11,000 characters
    let body = serde_json::json!({
        "org_id": "00D5g000004ABCdEAO", "object": "Opportunity", "changed_fields": ["StageName"],
        "record": {
            "Id": "006Hs00000BkXyzIAF", "Name": long, "StageName": "Closed Won", "Amount": 1e12,
            "Account": {"Name": "<https://evil.example|click> & <@U00000001>"},
            "Owner": {"Name": "x".repeat(10_000), "Email": "dana.seller@example.com"},
            "Sales_Engineer_Email__c": "<!here>@example.com",
            "LineItems": (0..80).map(|i| serde_json::json!({"Name": format!("Item {i}")})).collect::<Vec<_>>()
        }
    });
    let runs = render(&config, body.to_string().as_bytes());
    let routes = runs[0]["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 5);
    for route in routes {
        for call in route["calls"].as_array().unwrap() {
            let text = serde_json::to_string(call).unwrap();
            for needle in ["<!channel>", "<!here>", "<@U00000001>", "<https://evil"] {
                assert!(!text.contains(needle), "{needle} in {text}");
            }
            text_lengths_within_limits(call);
        }
    }
}
