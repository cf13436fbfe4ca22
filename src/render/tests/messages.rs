//! Whole messages rendered from templates: the closed-won example in JSON and YAML, `when` on
//! blocks, `each` loops, cutting to Slack's limits, escaping hostile record data, and render
//! errors that name the place.

use std::collections::BTreeSet;

use super::*;

const HOSTILE: &str = "<!channel> free money <https://evil.example|click> & more";
const HOSTILE_ESCAPED: &str =
    "&lt;!channel&gt; free money &lt;https://evil.example|click&gt; &amp; more";

fn expected_closed_won() -> Rendered {
    Rendered {
        text: "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) USD 75,000".into(),
        blocks: vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": "Closed Won: Acme Corp - Q3 Enterprise", "emoji": true}}),
            json!({"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Account*\nAcme Corp"},
                {"type": "mrkdwn", "text": "*Amount*\nUSD 75,000"},
                {"type": "mrkdwn", "text": "*Close date*\n30 Sep 2025"},
                {"type": "mrkdwn", "text": "*Owner*\n<@U0DANA0001>"},
            ]}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": "*Stakeholders:* <@U0DANA0001>, <@U0SAMSE002>, eve.exec@example.com"}}),
            json!({"type": "context", "elements": [
                {"type": "mrkdwn", "text": "Opportunity 006Hs00000BkXyzIAF · was Negotiation/Review · 2 Oct 2025 13:12 UTC"}
            ]}),
            json!({"type": "actions", "elements": [
                {"type": "button", "action_id": "open_record", "style": "primary",
                 "text": {"type": "plain_text", "text": "View in Salesforce"},
                 "url": "https://acme.my.salesforce.com/lightning/r/Opportunity/006Hs00000BkXyzIAF/view"}
            ]}),
        ],
        wanted_emails: BTreeSet::from(["eve.exec@example.com".to_owned()]),
        cuts: vec![],
    }
}

#[test]
fn renders_closed_won() {
    let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
    assert!(templates.contains("closed-won"));
    assert_eq!(templates.names(), ["closed-won"]);
    let (event, users) = (closed_won_event(), users());
    let rendered = templates
        .render("closed-won", &ctx(&event, &users, &NULL))
        .unwrap();
    assert_eq!(rendered, expected_closed_won());

    // Once the caller has resolved the third email, the mention appears.
    let mut users = users;
    users.insert("eve.exec@example.com".into(), "U0EVEX0003".into());
    let rendered = templates
        .render("closed-won", &ctx(&event, &users, &NULL))
        .unwrap();
    assert!(rendered.wanted_emails.is_empty());
    assert_eq!(
        rendered.blocks[2]["text"]["text"],
        "*Stakeholders:* <@U0DANA0001>, <@U0SAMSE002>, <@U0EVEX0003>"
    );
}

#[test]
fn yaml_renders_the_same_as_json() {
    let templates = load(&[
        ("closed-won.json", CLOSED_WON_JSON),
        ("closed-won-yaml.yaml", CLOSED_WON_YAML),
    ]);
    assert_eq!(templates.names(), ["closed-won", "closed-won-yaml"]);
    let (event, users) = (closed_won_event(), users());
    let json = templates.render("closed-won", &ctx(&event, &users, &NULL));
    let yaml = templates.render("closed-won-yaml", &ctx(&event, &users, &NULL));
    assert_eq!(yaml.unwrap(), json.unwrap());
}

#[test]
fn when_on_a_block() {
    let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
    let mut event = closed_won_event();
    event.record.insert("Amount".into(), json!(1_250_000.5));
    let users = users();
    let rendered = templates
        .render("closed-won", &ctx(&event, &users, &NULL))
        .unwrap();
    assert_eq!(rendered.blocks.len(), 6);
    assert_eq!(
        rendered.blocks[3],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": ":rotating_light: Seven figures!"}})
    );
    assert_eq!(
        rendered.text,
        "Closed Won: Acme Corp - Q3 Enterprise (Acme Corp) USD 1,250,000.50"
    );
}

#[test]
fn without_instance_url_the_button_has_no_url() {
    let templates = load(&[("closed-won.json", CLOSED_WON_JSON)]);
    let (event, users) = (closed_won_event(), users());
    let mut context = ctx(&event, &users, &NULL);
    context.instance_url = None;
    let rendered = templates.render("closed-won", &context).unwrap();
    assert_eq!(
        rendered.blocks[4]["elements"][0],
        json!({"type": "button", "action_id": "open_record", "style": "primary",
               "text": {"type": "plain_text", "text": "View in Salesforce"}})
    );
}

#[test]
fn each_over_80_line_items_fits_in_50_blocks() {
    let template = r#"{"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Name }}: {{ line_items | length }} items"}},
            {"each": "line_items", "as": "li", "item": {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "{{ loop.index }}. {{ li.Name }} × {{ li.Quantity }} @ {{ li.UnitPrice | money }}"}
            }},
            {"each": "nothing_here", "item": {"type": "divider"}}
        ]}"#;
    let templates = load(&[("items.json", template)]);
    let items: Vec<serde_json::Value> = (1..=80)
        .map(|i| json!({"Name": format!("Widget {i}"), "Quantity": i, "UnitPrice": 1000.5}))
        .collect();
    let extra = json!({"line_items": items});
    let (event, users) = (closed_won_event(), users());
    let rendered = templates
        .render("items", &ctx(&event, &users, &extra))
        .unwrap();
    assert_eq!(rendered.blocks.len(), 50);
    assert_eq!(
        rendered.blocks[0]["text"]["text"],
        "Acme Corp - Q3 Enterprise: 80 items"
    );
    assert_eq!(
        rendered.blocks[1]["text"]["text"],
        "1. Widget 1 × 1 @ 1,000.50"
    );
    assert_eq!(
        rendered.blocks[48]["text"]["text"],
        "48. Widget 48 × 48 @ 1,000.50"
    );
    assert_eq!(
        rendered.blocks[49],
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "…and 32 more not shown"}]})
    );
    assert_eq!(
        rendered.cuts,
        [
            "blocks: 81 over 50, kept the first 49 and noted 32 more not shown",
            "text: missing or empty, built from the header and section texts"
        ]
    );
    assert!(
        rendered
            .text
            .starts_with("Acme Corp - Q3 Enterprise: 80 items\n1. Widget 1")
    );
}

#[test]
fn each_item_may_hold_when() {
    let template = r#"
blocks:
  - each: record.Contacts
    as: c
    item:
      when: c.Role == "Decision Maker"
      type: section
      text: {type: mrkdwn, text: "{{ loop.index }}/{{ loop.length }} {{ c.Name }}"}
"#;
    let templates = load(&[("contacts.yml", template)]);
    let mut event = closed_won_event();
    event.record.insert(
        "Contacts".into(),
        json!([
            {"Name": "Ann", "Role": "Decision Maker"},
            {"Name": "Bob", "Role": "Influencer"},
            {"Name": "Cy <x>", "Role": "Decision Maker"}
        ]),
    );
    let users = users();
    let rendered = templates
        .render("contacts", &ctx(&event, &users, &NULL))
        .unwrap();
    let texts: Vec<_> = rendered
        .blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["1/3 Ann", "3/3 Cy &lt;x&gt;"]);
    assert_eq!(rendered.text, "1/3 Ann\n3/3 Cy &lt;x&gt;");

    // No list at all: no blocks, and a text Slack accepts.
    event.record.remove("Contacts");
    let rendered = templates
        .render("contacts", &ctx(&event, &users, &NULL))
        .unwrap();
    assert!(rendered.blocks.is_empty());
    assert_eq!(rendered.text, "…");
}

#[test]
fn long_field_is_cut_within_limits() {
    let template = r#"{"text": "{{ record.Description }}", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Description }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Description }}"}}
        ]}"#;
    let templates = load(&[("long.json", template)]);
    let mut event = closed_won_event();
    event
        .record
        .insert("Description".into(), json!("x".repeat(10_000)));
    let users = users();
    let rendered = templates
        .render("long", &ctx(&event, &users, &NULL))
        .unwrap();
    assert_eq!(
        rendered.blocks[0]["text"]["text"],
        format!("{}…", "x".repeat(149))
    );
    assert_eq!(
        rendered.blocks[1]["text"]["text"],
        format!("{}…", "x".repeat(2999))
    );
    assert_eq!(rendered.text, "x".repeat(10_000));
    assert_eq!(
        rendered.cuts,
        [
            "blocks[0].text: cut from 10000 to 150 chars",
            "blocks[1].text: cut from 10000 to 3000 chars"
        ]
    );
}

#[test]
fn hostile_record_data_is_escaped_everywhere() {
    let template = r##"{"blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "{{ record.Name }}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Name }}"},
             "fields": [{"type": "mrkdwn", "text": "{{ record.Name }}"}, {"type": "plain_text", "text": "{{ record.Name | upper | lower }}"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "{{ record.Name }}"}]},
            {"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "{{ record.Name }}"}, "value": "{{ record.Name }}"}]},
            {"type": "section", "text": {"type": "mrkdwn", "text": "<!here> {{ slack_user(record.Owner.Email) }} {{ record.Name | safe }} {{ [slack_user(record.Owner.Email), record.Name] | join(' ') }}"}}
        ]}"##;
    let with_text = template.replacen(
        r#"{"blocks""#,
        r#"{"text": "{{ record.Name }}", "blocks""#,
        1,
    );
    let templates = load(&[
        ("hostile.json", template),
        ("hostile-text.json", with_text.as_str()),
    ]);
    let mut event = closed_won_event();
    event.record.insert("Name".into(), json!(HOSTILE));
    let users = users();
    for name in ["hostile", "hostile-text"] {
        let r = templates.render(name, &ctx(&event, &users, &NULL)).unwrap();
        let b = &r.blocks;
        for text in [
            &b[0]["text"]["text"],
            &b[1]["text"]["text"],
            &b[1]["fields"][0]["text"],
            &b[1]["fields"][1]["text"],
            &b[2]["elements"][0]["text"],
            &b[3]["elements"][0]["text"]["text"],
            &b[3]["elements"][0]["value"],
        ] {
            assert_eq!(text, HOSTILE_ESCAPED, "{name}");
        }
        assert_eq!(
            b[4]["text"]["text"],
            format!("<!here> <@U0DANA0001> {HOSTILE} <@U0DANA0001> {HOSTILE_ESCAPED}")
        );
        if name == "hostile" {
            // Built from the header and the sections, each escaped once.
            assert!(
                r.text
                    .starts_with(&format!("{HOSTILE_ESCAPED}\n{HOSTILE_ESCAPED}\n<!here>")),
                "{}",
                r.text
            );
        } else {
            assert_eq!(r.text, HOSTILE_ESCAPED);
        }
    }
}

#[test]
fn render_errors_name_the_place() {
    let t = load(&[(
        "bad.json",
        r#"{"blocks": [{"type": "divider"}, {"type": "section", "text": {"type": "mrkdwn", "text": "{{ record.Amount | money(1, 2, 3) }}"}}]}"#,
    )]);
    let (event, users) = (closed_won_event(), users());
    let err = t.render("bad", &ctx(&event, &users, &NULL)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("template bad: blocks[1].text.text: too many arguments"),
        "{err}"
    );
    assert!(matches!(
        t.render("nope", &ctx(&event, &users, &NULL)),
        Err(RenderError::Unknown(name)) if name == "nope"
    ));
}
