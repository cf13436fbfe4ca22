//! Load-time checks: syntax and structure problems reported as `file:line: message`, every
//! file checked (not just up to the first problem), and loading a directory.

use super::*;
use crate::render::located::without_positions;

fn errors(file: &str, text: &str) -> Vec<String> {
    match Templates::from_sources(&[(file, text)], RenderOptions::default()) {
        Ok(_) => panic!("{file} loaded without errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn bad_json_reports_the_line() {
    let text = "{\n  \"blocks\": [\n    {\"type\": \"divider\"},\n  ]\n}\n";
    assert_eq!(
        errors("bad.json", text),
        ["bad.json:4: invalid JSON: trailing comma"]
    );
}

#[test]
fn bad_yaml_reports_the_line() {
    let text = "blocks:\n  - type: divider\n  - type: section\n   text: oops\n";
    assert_eq!(
        errors("bad.yaml", text),
        [
            "bad.yaml:4: invalid YAML: did not find expected '-' indicator, \
              while parsing a block collection"
        ]
    );
    assert_eq!(
        errors("dup.yaml", "text: a\ntext: b\n"),
        ["dup.yaml:2: template: duplicate key \"text\""]
    );
    assert_eq!(
        without_positions("x at line 3 column 4, y at line 1 column 2"),
        "x, y"
    );
    assert_eq!(
        without_positions("look at line breaks at line 2"),
        "look at line breaks"
    );
}

#[test]
fn unclosed_expression_reports_the_line() {
    let text = r#"{
  "text": "fine {{ record.Name }}",
  "blocks": [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Amount* {{ record.Amount | money "}},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "{% if x %}no end"}]}
  ]
}"#;
    assert_eq!(
        errors("unclosed.json", text),
        [
            "unclosed.json:4: blocks[0].text.text: syntax error: unexpected end of input, expected end of variable block",
            "unclosed.json:5: blocks[1].elements[0].text: syntax error: unexpected end of input, expected end of block"
        ]
    );
    // In YAML the line inside a block scalar counts too.
    let text = "blocks:\n  - type: section\n    text:\n      type: mrkdwn\n      text: |\n        line one\n        line {{ two\n";
    assert_eq!(
        errors("unclosed.yaml", text),
        [
            "unclosed.yaml:7: blocks[0].text.text: syntax error: unexpected end of input, expected end of variable block"
        ]
    );
}

#[test]
fn unknown_block_type_and_key_report_the_line() {
    let text = r#"{
  "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Hi"}},
    {"type": "section",
     "text": {"type": "mrkdwn",
              "txt": "oops"}},
    {"type": "sectoin", "text": {"type": "mrkdwn", "text": "x"}}
  ]
}"#;
    assert_eq!(
        errors("typos.json", text),
        [
            "typos.json:6: blocks[1].text: unknown key \"txt\"",
            "typos.json:5: blocks[1].text: missing required key \"text\"",
            "typos.json:7: blocks[2]: unknown block type \"sectoin\"",
        ]
    );
    let text = "blocks:\n  - type: divider\n  - type: sectoin\n  - type: header\n    text: {type: mrkdwn, text: Hi}\n";
    assert_eq!(
        errors("typos.yml", text),
        [
            "typos.yml:3: blocks[1]: unknown block type \"sectoin\"",
            "typos.yml:5: blocks[2].text.type: must be \"plain_text\" here, got \"mrkdwn\"",
        ]
    );
}

#[test]
fn structure_checks() {
    let text = r#"{
  "txt": "x",
  "blocks": [
    {"type": "actions", "elements": [
      {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "style": "green"},
      {"type": "buton", "text": {"type": "plain_text", "text": "Go"}}
    ]},
    {"each": "rows", "item": {"type": "divider", "when": "row is defined and", "color": "red"}},
    {"type": "context", "elements": [{"type": "button", "action_id": "x", "text": {"type": "plain_text", "text": "Go"}}]},
    {"when": 3, "type": "divider"},
    "divider"
  ]
}"#;
    assert_eq!(
        errors("shape.json", text),
        [
            "shape.json:2: template: unknown key \"txt\"",
            "shape.json:5: blocks[0].elements[0].style: must be \"primary\" or \"danger\"",
            "shape.json:5: blocks[0].elements[0]: missing required key \"action_id\"",
            "shape.json:6: blocks[0].elements[1]: unknown element type \"buton\"",
            "shape.json:8: blocks[1].item.when: syntax error: unexpected end of input, expected expression",
            "shape.json:8: blocks[1].item: unknown key \"color\"",
            "shape.json:9: blocks[2].elements[0]: element type \"button\" is not allowed here (expected plain_text, mrkdwn, image)",
            "shape.json:10: blocks[3].when: expected an expression string, got a number",
            "shape.json:11: blocks[4]: expected an object (a block), got a string",
        ]
    );
}

#[test]
fn every_file_is_checked() {
    let result = Templates::from_sources(
        &[
            ("a.json", "{\"blocks\": [{\"type\": \"nope\"}]}"),
            ("b.yaml", "text: \"{{ oops\""),
            ("a.yml", "text: hi"),
            ("c.txt", "text: hi"),
            ("ok.json", "{\"text\": \"hi\"}"),
        ],
        RenderOptions::default(),
    );
    let errors: Vec<String> = result
        .err()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "a.json:1: blocks[0]: unknown block type \"nope\"",
            "b.yaml:1: text: syntax error: unexpected end of input, expected end of variable block",
            "a.yml:1: template \"a\" is also defined in a.json",
            "c.txt:1: expected a .json, .yaml or .yml file",
        ]
    );
}

#[test]
fn load_dir_reads_templates_and_ignores_other_files() {
    let dir = std::env::temp_dir().join(format!("sfrelay-templates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("closed-won.json"), CLOSED_WON_JSON).unwrap();
    std::fs::write(
        dir.join("escalated.yml"),
        "text: \"Escalated: {{ record.Subject }}\"",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "not a template").unwrap();
    let templates = Templates::load_dir(&dir, RenderOptions::default());
    std::fs::write(dir.join("broken.yaml"), "text: [\n").unwrap();
    let broken = Templates::load_dir(&dir, RenderOptions::default());
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(templates.unwrap().names(), ["closed-won", "escalated"]);
    let errors = broken.err().unwrap_or_default();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, dir.join("broken.yaml"));
    let missing = Templates::load_dir(&dir, RenderOptions::default());
    assert!(missing.is_err());
}
