//! When things happened, read from the emulators' journals: the first `chat.update` that made
//! a card show who took it (the Slack emulator's `at_ms`, whole milliseconds), and every write
//! to a record (the Salesforce emulator's `at`, RFC 3339 to the millisecond).

use std::collections::HashMap;

use serde_json::Value;

/// What a card says once taken (`🙋 Taken by <@U…>`).
pub const TAKEN: &str = "Taken by <@";

/// For each card (channel, ts): when the first successful `chat.update` showing who took it
/// arrived, in Unix ms.
pub fn taken_at(requests: &[Value]) -> HashMap<(String, String), f64> {
    let mut first = HashMap::new();
    for call in requests {
        let ok =
            call["method"] == "chat.update" && call["status"] == 200 && call["error"].is_null();
        let (Some(channel), Some(ts), Some(at)) = (
            call["channel"].as_str(),
            call["body"]["ts"].as_str(),
            call["at_ms"].as_f64(),
        ) else {
            continue;
        };
        if ok && call["body"].to_string().contains(TAKEN) {
            first
                .entry((channel.to_string(), ts.to_string()))
                .or_insert(at);
        }
    }
    first
}

/// The writes made to one record.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Writes {
    pub count: u64,
    /// When the first was made, Unix ms.
    pub first_at_ms: Option<f64>,
}

/// Writes per record Id, from the Salesforce emulator's journal.
pub fn writes_by_record(journal: &[Value]) -> HashMap<String, Writes> {
    let mut by_id: HashMap<String, Writes> = HashMap::new();
    for write in journal {
        let Some(id) = write["id"].as_str() else {
            continue;
        };
        let entry = by_id.entry(id.to_string()).or_default();
        entry.count += 1;
        if entry.first_at_ms.is_none() {
            entry.first_at_ms = write["at"].as_str().and_then(rfc3339_unix_ms);
        }
    }
    by_id
}

/// `2026-05-09T07:25:21.123Z` (or with an offset, `+02:00`) as Unix milliseconds.
pub fn rfc3339_unix_ms(text: &str) -> Option<f64> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-');
    let year: i64 = ymd.next()?.parse().ok()?;
    let month: u32 = ymd.next()?.parse().ok()?;
    let day: u32 = ymd.next()?.parse().ok()?;
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let mut hms = clock.splitn(3, ':');
    let hours: f64 = hms.next()?.parse().ok()?;
    let minutes: f64 = hms.next()?.parse().ok()?;
    let seconds: f64 = hms.next()?.parse().ok()?;
    let offset_minutes = match zone.as_bytes().first()? {
        b'Z' | b'z' => 0.0,
        sign => {
            let (h, m) = zone[1..].split_once(':')?;
            let minutes = h.parse::<f64>().ok()? * 60.0 + m.parse::<f64>().ok()?;
            if *sign == b'-' { -minutes } else { minutes }
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day) as f64;
    let secs = days * 86_400.0 + hours * 3_600.0 + minutes * 60.0 + seconds - offset_minutes * 60.0;
    Some(secs * 1000.0)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_times_are_read_to_the_millisecond() {
        assert_eq!(rfc3339_unix_ms("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            rfc3339_unix_ms("2000-03-01T00:00:00.000Z"),
            Some(951_868_800_000.0)
        );
        // `date -u -d 2026-05-09T07:25:21Z +%s` = 1778311521
        let at = rfc3339_unix_ms("2026-05-09T07:25:21.123Z").unwrap();
        assert!((at - 1_778_311_521_123.0).abs() < 0.01, "{at}");
        let east = rfc3339_unix_ms("2026-05-09T09:25:21.123+02:00").unwrap();
        assert!((east - at).abs() < 0.01, "{east} vs {at}");
        assert_eq!(rfc3339_unix_ms("2026-13-09T07:25:21Z"), None);
        assert_eq!(rfc3339_unix_ms("yesterday"), None);
    }

    #[test]
    fn a_card_counts_as_taken_at_its_first_good_update_that_says_so() {
        let update = |ts: &str, at: i64, status: u16, text: &str| {
            json!({"method": "chat.update", "status": status, "error": null,
                   "channel": "C0BENCH0001", "at_ms": at,
                   "body": {"channel": "C0BENCH0001", "ts": ts, "blocks": [{"text": text}]}})
        };
        let requests = vec![
            json!({"method": "chat.postMessage", "status": 200, "error": null,
                   "channel": "C0BENCH0001", "at_ms": 5, "body": {"text": "Taken by <@U1>"}}),
            update("1.1", 10, 429, "🙋 Taken by <@U0RILEY001>"),
            update("1.1", 20, 200, "🙋 Taken by <@U0RILEY001>"),
            update("1.1", 30, 200, "🙋 Taken by <@U0RILEY001>"),
            update("2.2", 40, 200, "refreshed"),
        ];
        let taken = taken_at(&requests);
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert_eq!(taken[&("C0BENCH0001".into(), "1.1".into())], 20.0);
    }

    #[test]
    fn writes_are_counted_per_record_with_the_first_time() {
        let journal = vec![
            json!({"id": "500000000000001AAA", "at": "1970-01-01T00:00:01.000Z"}),
            json!({"id": "500000000000002AAA", "at": "1970-01-01T00:00:02.500Z"}),
            json!({"id": "500000000000001AAA", "at": "1970-01-01T00:00:03.000Z"}),
        ];
        let writes = writes_by_record(&journal);
        assert_eq!(
            writes["500000000000001AAA"],
            Writes {
                count: 2,
                first_at_ms: Some(1000.0)
            }
        );
        assert_eq!(writes["500000000000002AAA"].first_at_ms, Some(2500.0));
    }
}
