//! The in-process queue: the embedded default when `REDIS_URL` is unset, so a newcomer can run
//! sfrelay with one command. Same semantics as Redis, but nothing survives a restart and it
//! serves one replica only.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    AfterDeath, ConsumerId, DeadLetter, EnqueueOutcome, Enqueued, Job, Lane, NewJob, Placement,
    Queue, QueueDepth, QueueError, Recovered, after_death, after_failure, buried_bytes,
    dead_letter_bytes, now_ms,
};

#[derive(Default)]
struct State {
    /// Front = oldest (next to take).
    ready: VecDeque<Vec<u8>>,
    low: VecDeque<Vec<u8>>,
    processing: HashMap<ConsumerId, Vec<Vec<u8>>>,
    /// Keyed by (due, sequence) so equal due times keep their order.
    delayed: BTreeMap<(Instant, u64), (Lane, Vec<u8>)>,
    dead: VecDeque<Vec<u8>>,
    dedupe: HashMap<String, (String, Instant)>,
    sequence: u64,
}

/// The in-process queue.
pub struct MemoryQueue {
    state: Mutex<State>,
    ready_signal: Notify,
    high_water_mark: u64,
}

impl MemoryQueue {
    pub fn new(high_water_mark: u64) -> Self {
        MemoryQueue {
            state: Mutex::new(State::default()),
            ready_signal: Notify::new(),
            high_water_mark,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, QueueError> {
        self.state
            .lock()
            .map_err(|_| QueueError::Unavailable("in-process queue lock poisoned".into()))
    }

    /// Pushes `jobs` unless the ready jobs already reach `mark` (ingest's high-water mark;
    /// `None` for work already accepted).
    fn push(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
        mark: Option<u64>,
    ) -> Result<EnqueueOutcome, QueueError> {
        let now = Instant::now();
        let mut state = self.lock()?;
        let depth = (state.ready.len() + state.low.len()) as u64;
        if mark.is_some_and(|mark| depth >= mark) {
            return Err(QueueError::Full { depth });
        }
        state.dedupe.retain(|_, (_, expires)| *expires > now);
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some((first, _)) = state.dedupe.get(&job.dedupe_key) {
                results.push(Enqueued::Duplicate(first.clone()));
                continue;
            }
            state
                .dedupe
                .insert(job.dedupe_key.clone(), (job.id.clone(), now + dedupe_for));
            match job.placement() {
                Placement::Head => state.ready.push_front(job.bytes.clone()),
                Placement::Tail => state.ready.push_back(job.bytes.clone()),
                Placement::Low => state.low.push_back(job.bytes.clone()),
            }
            results.push(Enqueued::New(job.id.clone()));
        }
        drop(state);
        self.ready_signal.notify_waiters();
        self.ready_signal.notify_one();
        Ok(EnqueueOutcome { results })
    }

    /// Removes `raw` from `consumer`'s in-flight list; false if it was not held.
    fn unhold(state: &mut State, consumer: &ConsumerId, raw: &[u8]) -> bool {
        let Some(held) = state.processing.get_mut(consumer) else {
            return false;
        };
        match held.iter().position(|j| j == raw) {
            Some(i) => {
                held.remove(i);
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn enqueue(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.push(jobs, dedupe_for, Some(self.high_water_mark))
    }

    async fn enqueue_internal(
        &self,
        jobs: &[NewJob],
        dedupe_for: Duration,
    ) -> Result<EnqueueOutcome, QueueError> {
        self.push(jobs, dedupe_for, None)
    }

    async fn take(&self, consumer: &ConsumerId, wait: Duration) -> Result<Option<Job>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.ready_signal.notified();
            {
                let mut state = self.lock()?;
                if let Some(raw) = state.ready.pop_front() {
                    state
                        .processing
                        .entry(consumer.clone())
                        .or_default()
                        .push(raw.clone());
                    drop(state);
                    return match Job::from_raw(raw.clone()) {
                        Ok(job) => Ok(Some(job)),
                        Err(e) => {
                            let mut state = self.lock()?;
                            Self::unhold(&mut state, consumer, &raw);
                            state.dead.push_front(raw);
                            Err(e)
                        }
                    };
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn ack(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError> {
        let mut state = self.lock()?;
        Self::unhold(&mut state, consumer, &job.raw);
        Ok(())
    }

    async fn retry_later(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<(), QueueError> {
        let bytes = after_failure(job, error)?;
        let mut state = self.lock()?;
        if Self::unhold(&mut state, consumer, &job.raw) {
            state.sequence += 1;
            let key = (Instant::now() + delay, state.sequence);
            state.delayed.insert(key, (job.envelope.lane, bytes));
        }
        Ok(())
    }

    async fn dead_letter(
        &self,
        consumer: &ConsumerId,
        job: &Job,
        reason: &str,
    ) -> Result<(), QueueError> {
        let bytes = dead_letter_bytes(job, reason, now_ms())?;
        let mut state = self.lock()?;
        if Self::unhold(&mut state, consumer, &job.raw) {
            state.dead.push_front(bytes);
        }
        Ok(())
    }

    async fn bury(&self, job: &NewJob, reason: &str) -> Result<(), QueueError> {
        let bytes = buried_bytes(job, reason, now_ms())?;
        self.lock()?.dead.push_front(bytes);
        Ok(())
    }

    async fn release(&self, consumer: &ConsumerId, job: &Job) -> Result<(), QueueError> {
        let mut state = self.lock()?;
        if Self::unhold(&mut state, consumer, &job.raw) {
            state.ready.push_front(job.raw.clone());
        }
        drop(state);
        self.ready_signal.notify_one();
        Ok(())
    }

    async fn promote_due(&self) -> Result<u64, QueueError> {
        let now = Instant::now();
        let mut state = self.lock()?;
        let mut promoted = 0;
        while let Some(entry) = state.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (lane, raw) = entry.remove();
            match lane {
                Lane::High => state.ready.push_front(raw),
                Lane::Normal => state.ready.push_back(raw),
                Lane::Low => state.low.push_back(raw),
            }
            promoted += 1;
        }
        let low = if (state.ready.len() as u64) < super::LOW_LANE_THRESHOLD {
            state.low.len()
        } else {
            1
        };
        for _ in 0..low {
            let Some(raw) = state.low.pop_front() else {
                break;
            };
            state.ready.push_back(raw);
            promoted += 1;
        }
        drop(state);
        if promoted > 0 {
            self.ready_signal.notify_waiters();
            self.ready_signal.notify_one();
        }
        Ok(promoted)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.lock().map(|_| ())
    }

    async fn heartbeat(&self, _consumers: &[ConsumerId]) -> Result<(), QueueError> {
        // One process: its workers cannot die without it.
        Ok(())
    }

    async fn recover_orphans(
        &self,
        _visibility: Duration,
        _max_recoveries: u32,
    ) -> Result<Recovered, QueueError> {
        Ok(Recovered::default())
    }

    async fn recover_consumer(
        &self,
        consumer: &ConsumerId,
        max_recoveries: u32,
    ) -> Result<Recovered, QueueError> {
        let mut state = self.lock()?;
        let held = state.processing.remove(consumer).unwrap_or_default();
        let mut recovered = Recovered::default();
        for raw in held.into_iter().rev() {
            match after_death(&raw, max_recoveries) {
                Some(AfterDeath::Dead(letter)) => {
                    state.dead.push_front(letter);
                    recovered.dead_lettered += 1;
                }
                Some(AfterDeath::Again(bytes)) => {
                    state.ready.push_front(bytes);
                    recovered.requeued += 1;
                }
                None => {
                    state.ready.push_front(raw);
                    recovered.requeued += 1;
                }
            }
        }
        drop(state);
        self.ready_signal.notify_one();
        Ok(recovered)
    }

    async fn reclaim(&self, consumer: &ConsumerId) -> Result<u64, QueueError> {
        let mut state = self.lock()?;
        let held = state.processing.remove(consumer).unwrap_or_default();
        let n = held.len() as u64;
        for raw in held.into_iter().rev() {
            state.ready.push_front(raw);
        }
        Ok(n)
    }

    async fn unregister(&self, consumer: &ConsumerId) -> Result<(), QueueError> {
        let mut state = self.lock()?;
        if state.processing.get(consumer).is_some_and(Vec::is_empty) {
            state.processing.remove(consumer);
        }
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let state = self.lock()?;
        Ok(QueueDepth {
            ready: (state.ready.len() + state.low.len()) as u64,
            in_flight: state.processing.values().map(|v| v.len() as u64).sum(),
            delayed: state.delayed.len() as u64,
            dead: state.dead.len() as u64,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let state = self.lock()?;
        Ok(state
            .dead
            .iter()
            .take(limit)
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect())
    }

    async fn replay_dead(&self, id: Option<&str>) -> Result<u64, QueueError> {
        let mut state = self.lock()?;
        let mut kept = VecDeque::new();
        let mut replayed = 0;
        while let Some(raw) = state.dead.pop_front() {
            match serde_json::from_slice::<DeadLetter>(&raw) {
                Ok(letter) if id.is_none_or(|id| letter.job.id == id) => {
                    state.ready.push_back(super::replayed(&letter)?);
                    replayed += 1;
                }
                _ => kept.push_back(raw),
            }
        }
        state.dead = kept;
        drop(state);
        self.ready_signal.notify_waiters();
        Ok(replayed)
    }

    async fn purge_dead(&self, id: Option<&str>) -> Result<u64, QueueError> {
        let mut state = self.lock()?;
        let before = state.dead.len();
        state.dead.retain(|raw| {
            serde_json::from_slice::<DeadLetter>(raw)
                .map(|letter| id.is_some_and(|id| letter.job.id != id))
                .unwrap_or(id.is_some())
        });
        Ok((before - state.dead.len()) as u64)
    }

    fn is_durable(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, key: &str) -> NewJob {
        NewJob::new(id.into(), key.into(), &serde_json::json!({"n": id}), 0).unwrap()
    }

    #[tokio::test]
    async fn dedupes_and_keeps_order() {
        let q = MemoryQueue::new(100);
        let c = ConsumerId("c".into());
        let out = q
            .enqueue(
                &[job("a", "k1"), job("b", "k2"), job("c", "k1")],
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(
            out.results,
            vec![
                Enqueued::New("a".into()),
                Enqueued::New("b".into()),
                Enqueued::Duplicate("a".into())
            ]
        );
        let first = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(first.envelope.id, "a");
        assert_eq!(q.depth().await.unwrap().in_flight, 1);
        q.ack(&c, &first).await.unwrap();
        let second = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(second.envelope.id, "b");
        assert!(
            q.take(&c, Duration::from_millis(5))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn retry_dead_letter_and_high_water_mark() {
        let q = MemoryQueue::new(1);
        let c = ConsumerId("c".into());
        q.enqueue(&[job("a", "k1")], Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            q.enqueue(&[job("b", "k2")], Duration::from_secs(60)).await,
            Err(QueueError::Full { depth: 1 })
        ));
        let a = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        q.retry_later(&c, &a, Duration::ZERO, Some("boom"))
            .await
            .unwrap();
        assert_eq!(q.promote_due().await.unwrap(), 1);
        let a = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(a.envelope.attempts, 1);
        assert_eq!(a.envelope.last_error.as_deref(), Some("boom"));
        q.dead_letter(&c, &a, "channel_not_found").await.unwrap();
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, "channel_not_found");
        assert_eq!(dead[0].job.attempts, 2);
        assert_eq!(
            q.depth().await.unwrap(),
            QueueDepth {
                dead: 1,
                ..Default::default()
            }
        );
    }

    #[tokio::test]
    async fn high_goes_first_and_low_joins_when_ready_runs_short() {
        let q = MemoryQueue::new(100);
        let c = ConsumerId("c".into());
        let jobs = [
            NewJob::with_lane(
                "low".into(),
                "k0".into(),
                &serde_json::json!({"n": "low"}),
                0,
                Lane::Low,
            )
            .unwrap(),
            job("n1", "k1"),
            job("n2", "k2"),
            job("ahead", "k4").ahead(),
            NewJob::with_lane(
                "high".into(),
                "k3".into(),
                &serde_json::json!({"n": "high"}),
                0,
                Lane::High,
            )
            .unwrap(),
        ];
        q.enqueue(&jobs, Duration::from_secs(60)).await.unwrap();
        assert_eq!(q.depth().await.unwrap().ready, 5);
        let mut order = Vec::new();
        while let Some(j) = q.take(&c, Duration::ZERO).await.unwrap() {
            order.push(j.envelope.id.clone());
            q.ack(&c, &j).await.unwrap();
        }
        assert_eq!(order, vec!["high", "ahead", "n1", "n2"]);
        // The low job moves in at the next promotion, since the ready list is short.
        assert_eq!(q.promote_due().await.unwrap(), 1);
        let low = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(low.envelope.id, "low");
    }

    #[tokio::test]
    async fn a_job_whose_worker_keeps_dying_is_dead_lettered_after_max_recoveries() {
        let q = MemoryQueue::new(100);
        q.enqueue(&[job("a", "k1")], Duration::from_secs(60))
            .await
            .unwrap();
        for deaths in 1..=2 {
            let c = ConsumerId(format!("w{deaths}"));
            q.take(&c, Duration::ZERO).await.unwrap().unwrap();
            let recovered = q.recover_consumer(&c, 3).await.unwrap();
            assert_eq!(
                recovered,
                Recovered {
                    requeued: 1,
                    dead_lettered: 0
                }
            );
        }
        let c = ConsumerId("w3".into());
        let held = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(held.envelope.recoveries, 2);
        let recovered = q.recover_consumer(&c, 3).await.unwrap();
        assert_eq!(
            recovered,
            Recovered {
                requeued: 0,
                dead_lettered: 1
            }
        );
        let dead = q.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].reason, "worker died 3 times while running it");
        assert_eq!(dead[0].job.id, "a");
        assert_eq!(dead[0].job.recoveries, 3);
        assert_eq!(q.depth().await.unwrap().ready, 0);
        // A replay starts the count afresh.
        assert_eq!(q.replay_dead(Some("a")).await.unwrap(), 1);
        let again = q.take(&c, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(again.envelope.recoveries, 0);
    }

    #[tokio::test]
    async fn internal_enqueues_pass_the_high_water_mark() {
        let q = MemoryQueue::new(1);
        q.enqueue(&[job("a", "k1")], Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            q.enqueue(&[job("b", "k2")], Duration::from_secs(60)).await,
            Err(QueueError::Full { .. })
        ));
        let out = q
            .enqueue_internal(&[job("b", "k2")], Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(out.results, vec![Enqueued::New("b".into())]);
        assert_eq!(q.depth().await.unwrap().ready, 2);
    }
}
