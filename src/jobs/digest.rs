//! What a digest template sees: pure, so it is tested without Salesforce or Slack.

use serde_json::json;

use crate::salesforce::Record;

/// What a digest template sees: every record, the count and total amount, totals by stage
/// (largest first) and the ten largest records. Templates show the summaries, so a digest stays
/// inside Slack's limits however many records there are.
pub fn summary(mut records: Vec<Record>) -> serde_json::Value {
    for record in &mut records {
        record.remove("attributes");
    }
    let amount = |r: &Record| r.get("Amount").and_then(|a| a.as_f64()).unwrap_or(0.0);
    let total: f64 = records.iter().map(amount).sum();
    let mut stages: Vec<(String, usize, f64)> = Vec::new();
    for record in &records {
        let stage = record
            .get("StageName")
            .and_then(|s| s.as_str())
            .unwrap_or("(none)")
            .to_string();
        match stages.iter_mut().find(|(s, _, _)| *s == stage) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += amount(record);
            }
            None => stages.push((stage, 1, amount(record))),
        }
    }
    stages.sort_by(|a, b| b.2.total_cmp(&a.2));
    let mut largest = records.clone();
    largest.sort_by(|a, b| amount(b).total_cmp(&amount(a)));
    largest.truncate(10);
    json!({
        "count": records.len(),
        "total_amount": total,
        "by_stage": stages
            .iter()
            .map(|(stage, count, amount)| json!({"stage": stage, "count": count, "amount": amount}))
            .collect::<Vec<_>>(),
        "largest": largest,
        "records": records,
    })
}
