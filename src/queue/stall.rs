//! Which workers are stuck on the queue. Each worker notes when it last finished a take (with
//! or without a job) or finished running a job (settling it is a queue write); a worker that is
//! not running a job and has not finished a take or a settle for longer than the limit is
//! waiting on a queue that does not answer, and readiness names it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Marks a worker busy with a job rather than waiting on the queue.
const RUNNING_A_JOB: u64 = u64::MAX;

/// The take clock of every worker of this process.
#[derive(Debug)]
pub struct TakeWatch {
    started: Instant,
    stuck_after: Duration,
    /// Per worker: milliseconds since `started` of its last finished take, or
    /// [`RUNNING_A_JOB`].
    waiting_since: Vec<AtomicU64>,
}

impl TakeWatch {
    pub fn new(workers: usize, stuck_after: Duration) -> TakeWatch {
        TakeWatch {
            started: Instant::now(),
            stuck_after,
            waiting_since: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Worker `n` finished a take that found nothing, or finished a job (and now settles it, or
    /// has): it waits on the queue again from now.
    pub fn waiting(&self, n: usize) {
        if let Some(slot) = self.waiting_since.get(n) {
            slot.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Worker `n` took a job; time spent running it is not time stuck on the queue.
    pub fn running(&self, n: usize) {
        if let Some(slot) = self.waiting_since.get(n) {
            slot.store(RUNNING_A_JOB, Ordering::Relaxed);
        }
    }

    /// The workers waiting on the queue longer than the limit, with how long.
    pub fn stuck(&self) -> Vec<(usize, Duration)> {
        let now = self.now_ms();
        self.waiting_since
            .iter()
            .enumerate()
            .filter_map(|(n, slot)| {
                let since = slot.load(Ordering::Relaxed);
                let waited = Duration::from_millis(now.saturating_sub(since));
                (since != RUNNING_A_JOB && waited > self.stuck_after).then_some((n, waited))
            })
            .collect()
    }

    /// Readiness's line: "ok", or which workers are stuck and for how long.
    pub fn verdict(&self) -> Result<(), String> {
        let stuck = self.stuck();
        if stuck.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = stuck
            .iter()
            .map(|(n, waited)| format!("w{n} ({}s)", waited.as_secs()))
            .collect();
        Err(format!(
            "workers stuck on Redis: {} without a finished take for over {}s",
            names.join(", "),
            self.stuck_after.as_secs()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_waiting_past_the_limit_is_named_and_one_running_a_job_is_not() {
        let watch = TakeWatch::new(3, Duration::from_millis(30));
        watch.running(1);
        std::thread::sleep(Duration::from_millis(60));
        watch.waiting(2);
        let verdict = watch.verdict().unwrap_err();
        assert!(
            verdict.starts_with("workers stuck on Redis: w0 ("),
            "{verdict}"
        );
        assert!(
            !verdict.contains("w1") && !verdict.contains("w2"),
            "{verdict}"
        );
        watch.waiting(0);
        assert_eq!(watch.verdict(), Ok(()));
    }
}
