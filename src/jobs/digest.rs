//! What a digest template sees: pure, so it is tested without Salesforce or Slack.

use serde_json::{Value, json};

use super::Caps;
use crate::salesforce::Record;

/// A digest's variables from what one run read: at most `caps.digest_max_records` of the
/// `total` records the query matched. A digest cut short still goes out, and says so plainly
/// (`truncated`, `total` and `note`: "showing the first N of M") — a reader would rather see
/// the first two thousand deals with that note than no forecast at all. A digest whose
/// variables still come to more than `caps.digest_max_bytes` is refused with the cap named.
pub fn capped_summary(mut records: Vec<Record>, total: u64, caps: &Caps) -> Result<Value, String> {
    let total = total.max(records.len() as u64);
    records.truncate(caps.digest_max_records);
    let shown = records.len();
    let mut summary = summary(records);
    let truncated = (shown as u64) < total;
    if let Some(fields) = summary.as_object_mut() {
        fields.insert("total".into(), total.into());
        fields.insert("truncated".into(), truncated.into());
        if truncated {
            fields.insert(
                "note".into(),
                format!("showing the first {shown} of {total} records").into(),
            );
        }
    }
    let bytes = serde_json::to_vec(&summary).map_or(0, |b| b.len());
    if bytes > caps.digest_max_bytes {
        return Err(format!(
            "the digest's {shown} records come to {bytes} bytes, over the \
             workers.digest_max_bytes cap of {}; narrow the route's query or raise the cap",
            caps.digest_max_bytes
        ));
    }
    Ok(summary)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn deals(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let deal =
                    json!({"Name": format!("Deal {i}"), "Amount": 1000, "StageName": "Proposal"});
                deal.as_object().cloned().unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn a_digest_over_the_record_cap_shows_the_first_n_of_m() {
        let caps = Caps {
            digest_max_records: 3,
            ..Caps::default()
        };
        let summary = capped_summary(deals(4), 7, &caps).unwrap();
        assert_eq!(summary["count"], 3);
        assert_eq!(summary["total"], 7);
        assert_eq!(summary["truncated"], true);
        assert_eq!(summary["note"], "showing the first 3 of 7 records");
        assert_eq!(summary["records"].as_array().map(Vec::len), Some(3));

        let whole = capped_summary(deals(3), 3, &caps).unwrap();
        assert_eq!(whole["truncated"], false);
        assert!(whole.get("note").is_none());
    }

    #[test]
    fn a_digest_over_the_byte_cap_is_refused_naming_the_cap() {
        let caps = Caps {
            digest_max_bytes: 2_000,
            ..Caps::default()
        };
        let error = capped_summary(deals(100), 100, &caps).unwrap_err();
        assert!(
            error.contains("workers.digest_max_bytes cap of 2000"),
            "{error}"
        );
        assert!(error.contains("100 records"), "{error}");
    }
}
