//! The load generator: a fixed set of keep-alive connections, each sending `POST /v1/events`.
//!
//! - **Closed loop** ([`closed`]): each connection sends its next request as soon as the last
//!   one is answered, until a deadline or a request count. This finds the maximum rate.
//! - **Open loop** ([`open`]): a timer thread schedules requests at a fixed rate and any free
//!   connection takes the next one; latency runs from the *scheduled* time, so a slow answer
//!   that delays later requests is charged to them too (no coordinated omission).
//!
//! It runs on the bench's single-threaded runtime, so it can never take more than one of the
//! two cores; what it did take is reported with every result (`loadgen_cores`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::{Mutex, mpsc};

use crate::http::Conn;
use crate::resources::Usage;
use crate::stats::{histogram, record};

/// Builds the body of request number `seq`.
pub type MakeBody = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;

/// A connection that cannot be (re)opened this many times gives up.
const MAX_RECONNECTS: u32 = 20;

/// What one load phase measured. (A warm-up is a phase of its own, not counted.)
pub struct Outcome {
    /// Answered 202.
    pub accepted: u64,
    /// Any other status, or no answer.
    pub failed: u64,
    /// Count per status (`"202"`, `"503"`, `"error"` for no answer).
    pub statuses: BTreeMap<String, u64>,
    /// The measurement window: the fixed duration, or for a counted phase, first send to last
    /// answer.
    pub window: Duration,
    /// Per request: send → answer (closed loop) or scheduled → answer (open loop).
    pub latency: Histogram<u64>,
    /// Open loop only: scheduled → actually sent (no free connection, or the load generator
    /// itself lagging).
    pub lateness: Histogram<u64>,
    /// CPU the load generator used, in cores (1.0 = one core busy throughout).
    pub loadgen_cores: f64,
    /// Wall-clock time of the first request, Unix milliseconds.
    pub started_unix_ms: f64,
    /// The sequence numbers answered 202 (counted phases only).
    pub accepted_seqs: Vec<u64>,
}

impl Outcome {
    /// Accepted requests per second of the window.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.window.as_secs_f64()
    }
}

/// One connection's tally.
struct Tally {
    accepted: u64,
    failed: u64,
    statuses: BTreeMap<String, u64>,
    latency: Histogram<u64>,
    lateness: Histogram<u64>,
    last_answer: Option<Instant>,
    accepted_seqs: Vec<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            accepted: 0,
            failed: 0,
            statuses: BTreeMap::new(),
            latency: histogram(),
            lateness: histogram(),
            last_answer: None,
            accepted_seqs: Vec::new(),
        }
    }

    fn add(&mut self, seq: u64, result: &anyhow::Result<u16>, latency: Duration, keep_seq: bool) {
        let key = match result {
            Ok(202) => {
                self.accepted += 1;
                if keep_seq {
                    self.accepted_seqs.push(seq);
                }
                "202".to_string()
            }
            Ok(status) => {
                self.failed += 1;
                status.to_string()
            }
            Err(_) => {
                self.failed += 1;
                "error".to_string()
            }
        };
        *self.statuses.entry(key).or_default() += 1;
        record(&mut self.latency, latency);
        self.last_answer = Some(Instant::now());
    }

    fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.failed += other.failed;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        let _ = self.latency.add(&other.latency);
        let _ = self.lateness.add(&other.lateness);
        self.last_answer = self.last_answer.max(other.last_answer);
        self.accepted_seqs.extend(other.accepted_seqs);
    }
}

/// A connection that reopens itself after an error, a bounded number of times.
struct Client {
    addr: SocketAddr,
    conn: Option<Conn>,
    reopened: u32,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            reopened: 0,
        }
    }

    /// Sends one body; `None` when the connection has failed too often to go on.
    async fn post(&mut self, body: Bytes) -> Option<anyhow::Result<u16>> {
        if self.conn.is_none() {
            if self.reopened >= MAX_RECONNECTS {
                return None;
            }
            self.reopened += 1;
            match Conn::open(self.addr).await {
                Ok(conn) => self.conn = Some(conn),
                Err(err) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Some(Err(err));
                }
            }
        }
        let result = self.conn.as_mut()?.post_events(body).await;
        if result.is_err() {
            self.conn = None;
        }
        Some(result)
    }
}

/// A closed-loop phase.
#[derive(Debug, Clone)]
pub struct Closed {
    /// Connections are spread round-robin over these servers.
    pub targets: Vec<SocketAddr>,
    pub connections: usize,
    /// The phase ends after this long, or after `max_requests`.
    pub duration: Duration,
    pub max_requests: u64,
    /// Keep the sequence numbers answered 202 (for matching Slack messages later).
    pub keep_seqs: bool,
}

pub async fn closed(plan: Closed, make_body: MakeBody) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        !plan.targets.is_empty() && plan.connections > 0,
        "nothing to load"
    );
    let cpu_before = Usage::of_self()?;
    let started_unix_ms = unix_ms();
    let start = Instant::now();
    let deadline = start + plan.duration;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..plan.connections {
        let mut client = Client::new(plan.targets[i % plan.targets.len()]);
        let (next, make_body) = (Arc::clone(&next), Arc::clone(&make_body));
        let (max, keep) = (plan.max_requests, plan.keep_seqs);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            while Instant::now() < deadline {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= max {
                    break;
                }
                let sent = Instant::now();
                let Some(result) = client.post(make_body(seq)).await else {
                    break;
                };
                tally.add(seq, &result, sent.elapsed(), keep);
            }
            tally
        }));
    }
    let tally = join(tasks).await?;
    let counted_out = next.load(Ordering::Relaxed) >= plan.max_requests;
    let window = match tally.last_answer {
        Some(last) if counted_out => last.saturating_duration_since(start),
        _ => plan.duration,
    };
    finish(tally, window, cpu_before, start, started_unix_ms)
}

/// An open-loop phase against one server.
#[derive(Debug, Clone)]
pub struct Open {
    pub target: SocketAddr,
    pub connections: usize,
    /// Requests per second, scheduled evenly.
    pub rate: f64,
    pub duration: Duration,
}

pub async fn open(plan: Open, make_body: MakeBody) -> anyhow::Result<Outcome> {
    anyhow::ensure!(plan.rate > 0.0 && plan.connections > 0, "nothing to load");
    let cpu_before = Usage::of_self()?;
    let started_unix_ms = unix_ms();
    let start = Instant::now();
    let total = (plan.duration.as_secs_f64() * plan.rate).ceil() as u64;

    // The schedule: a plain thread sleeping until each slot (nanosleep is accurate to tens
    // of microseconds; tokio's timer only to the millisecond), handing out (seq, slot).
    let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let rate = plan.rate;
    let scheduler = std::thread::spawn(move || {
        for seq in 0..total {
            let slot = start + Duration::from_secs_f64(seq as f64 / rate);
            let now = Instant::now();
            if slot > now {
                std::thread::sleep(slot - now);
            }
            if tx.send((seq, slot)).is_err() {
                break;
            }
        }
    });

    let rx = Arc::new(Mutex::new(rx));
    let mut tasks = Vec::new();
    for _ in 0..plan.connections {
        let mut client = Client::new(plan.target);
        let (rx, make_body) = (Arc::clone(&rx), Arc::clone(&make_body));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let next = rx.lock().await.recv().await;
                let Some((seq, slot)) = next else { break };
                let sent = Instant::now();
                let Some(result) = client.post(make_body(seq)).await else {
                    break;
                };
                tally.add(seq, &result, slot.elapsed(), false);
                record(&mut tally.lateness, sent.saturating_duration_since(slot));
            }
            tally
        }));
    }
    let tally = join(tasks).await?;
    let _ = scheduler.join();
    finish(tally, plan.duration, cpu_before, start, started_unix_ms)
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> anyhow::Result<Tally> {
    let mut total = Tally::new();
    for task in tasks {
        total.merge(task.await?);
    }
    Ok(total)
}

fn finish(
    tally: Tally,
    window: Duration,
    cpu_before: Usage,
    start: Instant,
    started_unix_ms: f64,
) -> anyhow::Result<Outcome> {
    let cpu = Usage::of_self()?.cpu_since(&cpu_before);
    Ok(Outcome {
        accepted: tally.accepted,
        failed: tally.failed,
        statuses: tally.statuses,
        window,
        latency: tally.latency,
        lateness: tally.lateness,
        loadgen_cores: cpu / start.elapsed().as_secs_f64(),
        started_unix_ms,
        accepted_seqs: tally.accepted_seqs,
    })
}

/// Now, as Unix milliseconds (with sub-millisecond precision).
pub fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}
