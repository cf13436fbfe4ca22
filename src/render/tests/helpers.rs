//! Route conditions and the helpers templates call: `became`, `changed` and `was` on the
//! change, the `money`, `date` and `datetime` filters, `sf_url` and `slack_user`.

use std::collections::BTreeSet;

use chrono_tz::Tz;
use minijinja::Value;

use super::*;
use crate::render::format_money;
use crate::render::helpers::{format_when, money};

fn condition(expr: &str, event: &Event) -> bool {
    let templates = load(&[]);
    let condition = templates.compile_condition(expr).unwrap();
    let users = users();
    condition.eval(&ctx(event, &users, &NULL)).unwrap()
}

#[test]
fn became_stage() {
    let expr = r#"became("StageName", "Closed Won")"#;
    assert!(condition(expr, &closed_won_event()));
    // Already Closed Won before: an edit of another field does not fire again.
    let mut e = closed_won_event();
    e.changed_fields = Some(vec!["Amount".into()]);
    e.prior = Some(serde_json::from_value(json!({"StageName": "Closed Won"})).unwrap());
    assert!(!condition(expr, &e));
    // Listed as changed but the prior value says it was already Closed Won.
    e.changed_fields = Some(vec!["StageName".into()]);
    assert!(!condition(expr, &e));
    // Another stage.
    let mut e = closed_won_event();
    e.record.insert("StageName".into(), json!("Closed Lost"));
    assert!(!condition(expr, &e));
    // Nothing known about the change: fire.
    let mut e = closed_won_event();
    e.changed_fields = None;
    e.prior = None;
    assert!(condition(expr, &e));
}

#[test]
fn became_with_booleans_and_or() {
    let expr = r#"became("IsEscalated", true) or became("Priority", "Critical")"#;
    let case = |record: serde_json::Value, prior: serde_json::Value| {
        let mut record = record;
        record["Id"] = json!("500Hs00000EfGhiIAF");
        event(json!({"object": "Case", "record": record, "prior": prior}))
    };
    assert!(condition(
        expr,
        &case(json!({"IsEscalated": true}), json!({"IsEscalated": false}))
    ));
    assert!(!condition(
        expr,
        &case(json!({"IsEscalated": true}), json!({"IsEscalated": true}))
    ));
    assert!(condition(
        expr,
        &case(
            json!({"IsEscalated": false, "Priority": "Critical"}),
            json!({"IsEscalated": false, "Priority": "High"})
        )
    ));
    assert!(!condition(
        expr,
        &case(
            json!({"IsEscalated": false, "Priority": "High"}),
            json!({"IsEscalated": false, "Priority": "High"})
        )
    ));
    // A string "true" is not the boolean true.
    assert!(!condition(
        expr,
        &case(
            json!({"IsEscalated": "true"}),
            json!({"IsEscalated": false})
        )
    ));
}

#[test]
fn numeric_comparison() {
    let expr = "record.AnnualRevenue >= 10000000";
    let account = |revenue: serde_json::Value| {
        event(
            json!({"object": "Account", "record": {"Id": "001Hs00000AbCdE", "AnnualRevenue": revenue}}),
        )
    };
    assert!(condition(expr, &account(json!(25_000_000))));
    assert!(condition(expr, &account(json!(10_000_000.0))));
    assert!(!condition(expr, &account(json!(9_999_999.99))));
    assert!(!condition(expr, &account(json!(null))));
    let missing = event(json!({"object": "Account", "record": {"Id": "001Hs00000AbCdE"}}));
    assert!(!condition(expr, &missing));
}

#[test]
fn changed_status() {
    let expr = r#"changed("Status")"#;
    let case = |changed: Option<&[&str]>, prior: Option<serde_json::Value>, ct: &str| {
        let mut envelope = json!({"object": "Case", "change_type": ct,
            "record": {"Id": "500Hs00000EfGhiIAF", "Status": "Escalated"}});
        if let Some(changed) = changed {
            envelope["changed_fields"] = json!(changed);
        }
        if let Some(prior) = prior {
            envelope["prior"] = prior;
        }
        event(envelope)
    };
    // changed_fields decides when present.
    assert!(condition(expr, &case(Some(&["Status"]), None, "UPDATE")));
    assert!(!condition(expr, &case(Some(&["Subject"]), None, "UPDATE")));
    assert!(!condition(
        expr,
        &case(Some(&[]), Some(json!({"Status": "New"})), "UPDATE")
    ));
    // Otherwise the prior value.
    assert!(condition(
        expr,
        &case(None, Some(json!({"Status": "New"})), "UPDATE")
    ));
    assert!(!condition(
        expr,
        &case(None, Some(json!({"Status": "Escalated"})), "UPDATE")
    ));
    // Neither: fire, except for deletes.
    assert!(condition(expr, &case(None, None, "UPDATE")));
    assert!(condition(expr, &case(None, None, "CREATE")));
    assert!(condition(expr, &case(None, None, "UNDELETE")));
    assert!(!condition(expr, &case(None, None, "DELETE")));
    // A prior without the field says nothing about it.
    assert!(condition(
        expr,
        &case(None, Some(json!({"Subject": "x"})), "UPDATE")
    ));
    // was() reads the prior value.
    assert!(condition(
        r#"was("Status") == "New" and record.Status == "Escalated""#,
        &case(None, Some(json!({"Status": "New"})), "UPDATE")
    ));
    assert!(condition(
        r#"was("Status") is none"#,
        &case(None, None, "UPDATE")
    ));
}

#[test]
fn condition_variables_and_errors() {
    let e = closed_won_event();
    assert!(condition(
        r#"object == "Opportunity" and change_type == "UPDATE" and "StageName" in changed_fields"#,
        &e
    ));
    assert!(condition("event_id is undefined and id | length == 36", &e));
    assert!(condition(r#"occurred_at == "2025-10-02T13:12:00Z""#, &e));
    // Multi-line conditions, as TOML's triple-quoted strings give them.
    assert!(condition(
        "\n(change_type == \"CREATE\")\nor became(\"StageName\", \"Closed Won\")\n",
        &e
    ));
    let templates = load(&[]);
    let err = templates.compile_condition("record.Amount >").unwrap_err();
    assert_eq!(
        err,
        "syntax error: unexpected end of input, expected expression"
    );
    assert_eq!(
        templates.compile_condition(" ").unwrap_err(),
        "empty condition"
    );
    let users = users();
    let extra = json!({"account_tier": "Gold"});
    let c = templates
        .compile_condition(r#"account_tier == "Gold""#)
        .unwrap();
    assert!(c.eval(&ctx(&e, &users, &extra)).unwrap());
    // extra cannot shadow the event.
    let extra = json!({"record": {"StageName": "Prospecting"}});
    let c = templates
        .compile_condition(r#"record.StageName == "Closed Won""#)
        .unwrap();
    assert!(c.eval(&ctx(&e, &users, &extra)).unwrap());
    let c = templates
        .compile_condition("record.Amount | money(1, 2)")
        .unwrap();
    assert!(c.eval(&ctx(&e, &users, &NULL)).is_err());
}

#[test]
fn money_filter() {
    assert_eq!(money(Value::from(75000), None), Value::from("75,000"));
    assert_eq!(
        money(Value::from(75000), Some(Value::from("EUR"))),
        Value::from("EUR 75,000")
    );
    assert_eq!(
        money(Value::from(1234567.5), None),
        Value::from("1,234,567.50")
    );
    assert_eq!(money(Value::from(-1234.5), None), Value::from("-1,234.50"));
    assert_eq!(money(Value::from(0.5), None), Value::from("0.50"));
    assert_eq!(money(Value::from(999), None), Value::from("999"));
    assert_eq!(
        money(Value::from("640000.5"), None),
        Value::from("640,000.50")
    );
    assert_eq!(money(Value::from("n/a"), None), Value::from("n/a"));
    assert!(money(Value::from(()), None).is_none());
    assert_eq!(
        money(Value::from(12), Some(Value::from(()))),
        Value::from("12")
    );
    assert_eq!(format_money(1e6), "1,000,000");
    // Through a template, with the currency read from the record.
    let t = load(&[(
        "m.json",
        r#"{"text": "{{ record.Amount | money }} / {{ record.Amount | money(\"EUR\") }} / {{ 1234567.5 | money }} / {{ record.Name | money }}"}"#,
    )]);
    let (event, users) = (closed_won_event(), users());
    let r = t.render("m", &ctx(&event, &users, &NULL)).unwrap();
    assert_eq!(
        r.text,
        "75,000 / EUR 75,000 / 1,234,567.50 / Acme Corp - Q3 Enterprise"
    );
}

#[test]
fn date_and_datetime_filters() {
    let text = r#"{"text": "{{ d | date }}|{{ t | date }}|{{ t | datetime }}|{{ sf | datetime }}|{{ d | datetime }}|{{ x | date }}|{{ missing | date }}"}"#;
    let extra = json!({
        "d": "2025-09-30",
        "t": "2025-10-02T03:12:00Z",
        "sf": "2025-10-02T13:12:00.000+0000",
        "x": "soon"
    });
    let (event, users) = (closed_won_event(), users());
    let render = |tz: Tz| {
        let t =
            Templates::from_sources(&[("d.json", text)], RenderOptions { time_zone: tz }).unwrap();
        t.render("d", &ctx(&event, &users, &extra)).unwrap().text
    };
    assert_eq!(
        render(Tz::UTC),
        "30 Sep 2025|2 Oct 2025|2 Oct 2025 03:12 UTC|2 Oct 2025 13:12 UTC|30 Sep 2025|soon|"
    );
    // 03:12 UTC is still the evening before in New York.
    assert_eq!(
        render(chrono_tz::America::New_York),
        "30 Sep 2025|1 Oct 2025|1 Oct 2025 23:12 EDT|2 Oct 2025 09:12 EDT|30 Sep 2025|soon|"
    );
    assert_eq!(
        format_when(
            Value::from("2025-10-02T13:12:00Z"),
            chrono_tz::Europe::Berlin,
            true
        ),
        Value::from("2 Oct 2025 15:12 CEST")
    );
    assert_eq!(
        format_when(
            Value::from("2025-12-02T13:12:00Z"),
            chrono_tz::America::New_York,
            true
        ),
        Value::from("2 Dec 2025 08:12 EST")
    );
}

#[test]
fn sf_url_only_for_safe_ids() {
    let text = r#"{"text": "{{ record.Id | sf_url }}|{{ sf_url(record.Account.Id, 'Account') }}|{{ 'abc<def' | sf_url }}|{{ record.Id | sf_url('Bad-Name') }}|{{ missing | sf_url }}"}"#;
    let t = load(&[("u.json", text)]);
    let mut event = closed_won_event();
    event.record["Account"]["Id"] = json!("001Hs00000AbCdEIAV");
    let users = users();
    let mut c = ctx(&event, &users, &NULL);
    c.instance_url = Some("https://acme.my.salesforce.com/");
    assert_eq!(
        t.render("u", &c).unwrap().text,
        "https://acme.my.salesforce.com/lightning/r/Opportunity/006Hs00000BkXyzIAF/view|\
             https://acme.my.salesforce.com/lightning/r/Account/001Hs00000AbCdEIAV/view|||"
    );
    c.instance_url = Some("javascript:alert(1)//");
    assert_eq!(t.render("u", &c).unwrap().text, "||||");
}

#[test]
fn slack_user_edge_cases() {
    let text = r#"{"text": "[{{ slack_user('') }}][{{ slack_user(none) }}][{{ slack_user(missing) }}][{{ slack_user('  DANA.SELLER@example.com ') }}][{{ slack_user('<b>@x.com') }}]"}"#;
    let t = load(&[("s.json", text)]);
    let (event, users) = (closed_won_event(), users());
    let r = t.render("s", &ctx(&event, &users, &NULL)).unwrap();
    assert_eq!(r.text, "[][][][<@U0DANA0001>][&lt;b&gt;@x.com]");
    assert_eq!(r.wanted_emails, BTreeSet::from(["<b>@x.com".to_owned()]));
}
