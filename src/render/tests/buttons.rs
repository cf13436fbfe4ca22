//! Buttons and selects a template places: `action()` values, select options from
//! `picklists`, Slack's limits on options, and the picklist fields a template names.

use super::*;

fn render(template: &str, extra: &serde_json::Value) -> Rendered {
    let templates = load(&[("card.json", template)]);
    let event = closed_won_event();
    let users = users();
    templates
        .render("card", &ctx(&event, &users, extra))
        .unwrap()
}

#[test]
fn a_button_carries_org_object_record_and_action() {
    let rendered = render(
        r#"{"blocks": [{"type": "actions", "elements": [
            {"type": "button", "action_id": "take", "text": {"type": "plain_text", "text": "Take"},
             "value": "{{ action('take_case') }}"}]}]}"#,
        &NULL,
    );
    assert_eq!(
        rendered.blocks[0]["elements"][0]["value"],
        format!("sfrelay:v1:{ORG}:Opportunity:{OPP}:take_case")
    );
}

#[test]
fn select_options_come_from_picklists_and_are_not_escaped() {
    let template = r#"{"blocks": [{"type": "actions", "elements": [{
        "type": "static_select", "action_id": "move_stage",
        "placeholder": {"type": "plain_text", "text": "Move stage"},
        "options": [{"each": "picklists.StageName", "as": "s", "item": {
            "text": {"type": "plain_text", "text": "{{ s.label }}"},
            "value": "{{ action('move_stage', s.value) }}"}}]}]}]}"#;
    let extra = json!({"picklists": {"StageName": [
        {"label": "Prospecting", "value": "Prospecting"},
        {"label": "Won & done", "value": "Closed Won"}
    ]}});
    let rendered = render(template, &extra);
    let options = rendered.blocks[0]["elements"][0]["options"]
        .as_array()
        .unwrap();
    assert_eq!(options.len(), 2);
    assert_eq!(
        options[1]["value"],
        format!("sfrelay:v1:{ORG}:Opportunity:{OPP}:move_stage:Closed Won")
    );
    let templates = load(&[("card.json", template)]);
    assert_eq!(
        templates.picklist_fields("card"),
        std::collections::BTreeSet::from(["StageName".to_string()])
    );
    // Without picklist values the select has no options and is dropped, the card still goes.
    let rendered = render(template, &NULL);
    assert!(rendered.blocks.is_empty(), "{:?}", rendered.blocks);
    assert!(
        rendered.cuts.iter().any(|c| c.contains("select dropped")),
        "{:?}",
        rendered.cuts
    );
}

#[test]
fn a_select_keeps_at_most_100_options_and_drops_values_slack_refuses() {
    let template = r#"{"blocks": [{"type": "actions", "elements": [{
        "type": "static_select", "action_id": "pick",
        "options": [{"each": "choices", "as": "c", "item": {
            "text": {"type": "plain_text", "text": "{{ c }}"},
            "value": "{{ action('pick', c) }}"}}]}]}]}"#;
    let mut choices: Vec<String> = (0..120).map(|i| format!("choice {i}")).collect();
    choices.insert(0, "x".repeat(200));
    let rendered = render(template, &json!({ "choices": choices }));
    let options = rendered.blocks[0]["elements"][0]["options"]
        .as_array()
        .unwrap();
    assert_eq!(options.len(), 100);
    assert!(
        options[0]["value"]
            .as_str()
            .unwrap()
            .ends_with(":pick:choice 0")
    );
}

#[test]
fn a_bad_action_name_or_a_select_without_options_is_reported() {
    let errors = Templates::from_sources(
        &[(
            "card.json",
            r#"{"blocks": [{"type": "actions", "elements": [{"type": "static_select", "action_id": "x"}]}]}"#,
        )],
        RenderOptions::default(),
    )
    .unwrap_err();
    assert!(errors[0].message.contains("options"), "{errors:?}");
    let templates = load(&[(
        "card.json",
        r#"{"blocks": [{"type": "actions", "elements": [{"type": "button", "action_id": "x",
            "text": {"type": "plain_text", "text": "X"}, "value": "{{ action('no way') }}"}]}]}"#,
    )]);
    let event = closed_won_event();
    let users = users();
    let error = templates
        .render("card", &ctx(&event, &users, &NULL))
        .unwrap_err();
    assert!(error.to_string().contains("button name"), "{error}");
}
