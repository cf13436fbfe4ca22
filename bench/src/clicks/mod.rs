//! Measurement 8, click → Salesforce write → card updated: how long after someone presses
//! "Take it" on a case-escalation card the Case is theirs in Salesforce and the card says so.
//!
//! Each run escalates `--clicks` + 1 Cases (each its own record and Flow event; card `k` to
//! bench channel `k`, so with `--clicks` below `--channels` no two cards share a channel's
//! rate budget), then the Slack emulator plays one person clicking "Take it" once on each
//! card, `--click-rate` clicks per second. Card 0 is clicked first and awaited, unmeasured:
//! the first click pays for the Salesforce token and the clicker's user lookup, which later
//! clicks find cached. Per click, from the wall-clock time the bench asks the emulator to
//! click:
//!
//! - answered: the emulator's round trip (building and signing the payload, sfrelay's answer
//!   to `POST /slack/interactions`): an upper bound of the answer Slack waits for, 3 s at most;
//! - written: the Salesforce emulator's journal time of the Case's `PATCH` (ms);
//! - card: the Slack emulator's arrival time of the first `chat.update` showing "Taken by"
//!   (whole ms, so each figure is good to ±1 ms).
//!
//! Every Case must be written exactly once and every card redrawn. The click rate stays under
//! Slack's `users.info` tier (100/min, burst 10 in sfrelay's limiter; sfrelay asks it for the
//! clicker's e-mail on every click), so what is measured is sfrelay's own path.

pub mod timeline;
mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Settings;
use crate::delivery::metrics;
use crate::http::Conn;
use crate::report::{Row, le, percentiles};
use crate::stats::{Latency, histogram, median, record};
use world::{Answer, Card, World, case_id};

/// Reported, never enforced: a card should say who took it within a second on loopback…
const CARD_P99_TARGET_MS: f64 = 1000.0;
/// …and Slack shows the person an error when the answer takes longer than 3 s.
const ANSWER_P99_TARGET_MS: f64 = 3000.0;

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Click → card shows "Taken by".
    pub to_card: Latency,
    /// Click → the Case's write in Salesforce.
    pub to_write: Latency,
    /// Click → sfrelay's answer, through the emulator.
    pub answer: Latency,
    /// The slowest answer as the emulator timed it (whole ms).
    pub answer_emulator_max_ms: u64,
    /// Clicks sfrelay answered with anything but 200.
    pub answer_failed: u64,
    /// Cards that never showed who took them.
    pub cards_not_updated: u64,
    /// Cases clicked but never written.
    pub writes_missing: u64,
    /// Writes beyond the first to a clicked Case.
    pub writes_doubled: u64,
    /// Every write the Salesforce emulator journalled (the warm-up's included).
    pub writes_total: u64,
    /// The Slack emulator's counters at the end (`/_emulator/stats`): calls per method, 429s.
    pub slack_stats: serde_json::Value,
    /// The Salesforce emulator's counters at the end.
    pub salesforce_stats: serde_json::Value,
    /// sfrelay's own counters at the end (`/metrics`, histogram buckets left out).
    pub sfrelay_metrics: BTreeMap<String, f64>,
}

pub async fn measure(paths: &crate::procs::Paths, settings: &Settings) -> anyhow::Result<Run> {
    let cards = settings.clicks + 1;
    let world = World::start(paths, cards, settings.channels).await?;
    let posted = world.post_cards(cards, settings.channels).await?;
    let mut conn = Conn::open(world.slack.addr).await?;

    let warm = world.click(&mut conn, &posted[0]).await?;
    anyhow::ensure!(
        warm.status == 200,
        "the warm-up click was answered {}",
        warm.status
    );
    world
        .wait_taken(&posted[0], Instant::now() + Duration::from_secs(30))
        .await?;

    let interval = Duration::from_secs_f64(1.0 / settings.click_rate);
    let start = Instant::now();
    let mut answers = Vec::with_capacity(settings.clicks);
    for (i, card) in posted[1..].iter().enumerate() {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        answers.push(world.click(&mut conn, card).await?);
    }
    // Every card redrawn (bounded), then a little longer so a second write or redraw would be
    // counted too.
    let deadline = Instant::now() + Duration::from_secs(30);
    world
        .slack
        .wait_count("updates", cards as u64, deadline)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let requests = world.slack.requests().await?;
    let journal = world.salesforce.writes().await?;
    let mut run = tally(&posted[1..], &answers, &requests, &journal);
    run.slack_stats = world.slack.stats().await?;
    run.salesforce_stats = world.salesforce.stats().await?;
    run.sfrelay_metrics = metrics(world.relay.addr).await.unwrap_or_default();
    Ok(run)
}

/// The run's figures from each card's click and what the emulators journalled.
fn tally(
    cards: &[Card],
    answers: &[Answer],
    requests: &[serde_json::Value],
    journal: &[serde_json::Value],
) -> Run {
    let taken = timeline::taken_at(requests);
    let writes = timeline::writes_by_record(journal);
    let (mut to_card, mut to_write, mut answer) = (histogram(), histogram(), histogram());
    let mut run = Run {
        to_card: Latency::default(),
        to_write: Latency::default(),
        answer: Latency::default(),
        answer_emulator_max_ms: 0,
        answer_failed: 0,
        cards_not_updated: 0,
        writes_missing: 0,
        writes_doubled: 0,
        writes_total: journal.len() as u64,
        slack_stats: serde_json::Value::Null,
        salesforce_stats: serde_json::Value::Null,
        sfrelay_metrics: BTreeMap::new(),
    };
    let since = |sent: f64, at: f64| Duration::from_secs_f64((at - sent).max(0.0) / 1000.0);
    for (card, click) in cards.iter().zip(answers) {
        if click.status == 200 {
            record(&mut answer, click.round_trip);
        } else {
            run.answer_failed += 1;
        }
        run.answer_emulator_max_ms = run.answer_emulator_max_ms.max(click.emulator_elapsed_ms);
        match taken.get(&(card.channel.clone(), card.ts.clone())) {
            Some(&at) => record(&mut to_card, since(click.sent_unix_ms, at)),
            None => run.cards_not_updated += 1,
        }
        let written = writes.get(&case_id(card.k)).copied().unwrap_or_default();
        match written.count {
            0 => run.writes_missing += 1,
            n => run.writes_doubled += n - 1,
        }
        if let Some(at) = written.first_at_ms {
            record(&mut to_write, since(click.sent_unix_ms, at));
        }
    }
    run.to_card = Latency::of(&to_card);
    run.to_write = Latency::of(&to_write);
    run.answer = Latency::of(&answer);
    run
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub clicks: usize,
    pub click_rate: f64,
    pub to_card: Latency,
    pub to_write: Latency,
    pub answer: Latency,
    pub answer_failed: f64,
    /// Over all runs.
    pub cards_not_updated: u64,
    pub writes_missing: u64,
    pub writes_doubled: u64,
    pub runs: Vec<Run>,
}

pub fn summarize(runs: Vec<Run>, settings: &Settings) -> Summary {
    let of = |f: fn(&Run) -> Latency| Latency::median(&runs.iter().map(f).collect::<Vec<_>>());
    Summary {
        clicks: settings.clicks,
        click_rate: settings.click_rate,
        to_card: of(|r| r.to_card),
        to_write: of(|r| r.to_write),
        answer: of(|r| r.answer),
        answer_failed: median(runs.iter().map(|r| r.answer_failed as f64)),
        cards_not_updated: runs.iter().map(|r| r.cards_not_updated).sum(),
        writes_missing: runs.iter().map(|r| r.writes_missing).sum(),
        writes_doubled: runs.iter().map(|r| r.writes_doubled).sum(),
        runs,
    }
}

pub fn rows(s: &Summary) -> Vec<Row> {
    let failed = if s.answer_failed > 0.0 {
        format!("; {} not 200", s.answer_failed)
    } else {
        String::new()
    };
    vec![
        Row::new(
            format!(
                "8. click → card shows \"Taken by\", {} clicks at {}/s",
                s.clicks, s.click_rate
            ),
            percentiles(&s.to_card),
        )
        .target(
            format!("p99 ≤ {CARD_P99_TARGET_MS} ms"),
            le(s.to_card.p99_ms, CARD_P99_TARGET_MS),
        ),
        Row::new(
            "8. click → Salesforce write (PATCH Case)",
            percentiles(&s.to_write),
        ),
        Row::new(
            "8. click answered (via the emulator)",
            format!("{}{failed}", percentiles(&s.answer)),
        )
        .target(
            format!("p99 ≤ {ANSWER_P99_TARGET_MS} ms"),
            le(s.answer.p99_ms, ANSWER_P99_TARGET_MS),
        ),
        Row::new(
            "8. not redrawn / not written / doubled (all runs)",
            format!(
                "{} / {} / {}",
                s.cards_not_updated, s.writes_missing, s.writes_doubled
            ),
        )
        .target(
            "0 / 0 / 0",
            Some(s.cards_not_updated == 0 && s.writes_missing == 0 && s.writes_doubled == 0),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(k: usize) -> Card {
        Card {
            k,
            channel: crate::procs::channel_id(k),
            ts: format!("{k}.000100"),
        }
    }

    fn click(sent: f64, status: u16) -> Answer {
        Answer {
            sent_unix_ms: sent,
            round_trip: Duration::from_millis(2),
            status,
            emulator_elapsed_ms: 1,
        }
    }

    fn taken(k: usize, at: i64) -> serde_json::Value {
        json!({"method": "chat.update", "status": 200, "error": null,
               "channel": crate::procs::channel_id(k), "at_ms": at,
               "body": {"ts": format!("{k}.000100"), "blocks": "🙋 Taken by <@U0RILEY001>"}})
    }

    #[test]
    fn each_click_is_timed_to_its_own_card_and_write_and_once_is_checked() {
        let cards = [card(1), card(2), card(3)];
        let answers = [click(1000.0, 200), click(2000.0, 200), click(3000.0, 500)];
        let requests = [taken(1, 1100), taken(2, 2300)];
        let journal = [
            json!({"id": case_id(1), "at": "1970-01-01T00:00:01.050Z"}),
            json!({"id": case_id(2), "at": "1970-01-01T00:00:02.200Z"}),
            json!({"id": case_id(2), "at": "1970-01-01T00:00:02.900Z"}),
        ];
        let run = tally(&cards, &answers, &requests, &journal);
        assert_eq!(run.to_card.count, 2);
        assert!(
            (run.to_card.p50_ms - 100.0).abs() < 0.5,
            "{:?}",
            run.to_card
        );
        assert!(
            (run.to_card.max_ms - 300.0).abs() < 0.5,
            "{:?}",
            run.to_card
        );
        assert!(
            (run.to_write.max_ms - 200.0).abs() < 0.5,
            "{:?}",
            run.to_write
        );
        assert_eq!(run.answer.count, 2);
        assert_eq!(
            (run.answer_failed, run.cards_not_updated),
            (1, 1),
            "card 3 answered 500 and never redrawn"
        );
        assert_eq!((run.writes_missing, run.writes_doubled), (1, 1));
        assert_eq!(run.writes_total, 3);
    }
}
