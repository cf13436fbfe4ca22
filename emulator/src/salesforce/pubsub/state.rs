//! The event bus's state: entities and their schema versions, the topics' append-only logs
//! with their opaque replay ids, per-stream records and pending faults, and the timing knobs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sfrelay_pubsub_wire::ProducerEvent;

use super::schemas::{Entity, builtin_entities};

/// The topic every entity's change events also go to.
pub const ALL_CHANGES: &str = "/data/ChangeEvents";
/// The most events a stream may be owed at once.
pub const MAX_CREDIT: u32 = 100;
/// Delivered events a stream remembers, for the `duplicate` fault.
const REMEMBERED: usize = 100;

/// What feeds a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Entity(String),
    All,
    Channel(Vec<String>),
}

/// One retained event and its place in the log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub position: u64,
    pub replay_id: Vec<u8>,
    pub event: ProducerEvent,
}

/// A topic's log. Replay ids are a random per-topic prefix followed by the position, so an
/// id from another topic or another run is never mistaken for one of this log.
#[derive(Debug)]
pub struct Topic {
    pub source: Source,
    prefix: [u8; 4],
    next: u64,
    pub log: VecDeque<Entry>,
    /// The newest id ever issued, kept when a purge empties the log.
    last_issued: Option<Vec<u8>>,
}

/// Why a replay id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Not an id of this topic, or past retention.
    Unknown,
}

impl Topic {
    pub fn new(source: Source) -> Topic {
        Topic {
            source,
            prefix: rand::random(),
            next: 1,
            log: VecDeque::new(),
            last_issued: None,
        }
    }

    fn replay_id(&self, position: u64) -> Vec<u8> {
        let mut id = self.prefix.to_vec();
        id.extend_from_slice(&position.to_be_bytes()[2..]);
        id
    }

    /// Appends an event and answers its replay id.
    pub fn append(&mut self, event: ProducerEvent) -> Vec<u8> {
        let position = self.next;
        self.next += 1;
        let replay_id = self.replay_id(position);
        self.last_issued = Some(replay_id.clone());
        self.log.push_back(Entry {
            position,
            replay_id: replay_id.clone(),
            event,
        });
        replay_id
    }

    /// The position after which nothing has been published yet (LATEST starts here).
    pub fn end(&self) -> u64 {
        self.next
    }

    /// The oldest retained position (EARLIEST starts here).
    pub fn start(&self) -> u64 {
        self.log.front().map_or(self.next, |e| e.position)
    }

    /// The position of a retained event's replay id.
    pub fn position_of(&self, replay_id: &[u8]) -> Result<u64, ReplayError> {
        if replay_id.len() != 10 || replay_id[..4] != self.prefix {
            return Err(ReplayError::Unknown);
        }
        let mut bytes = [0u8; 8];
        bytes[2..].copy_from_slice(&replay_id[4..]);
        let position = u64::from_be_bytes(bytes);
        if position >= self.start() && position < self.next {
            Ok(position)
        } else {
            Err(ReplayError::Unknown)
        }
    }

    /// Up to `max` events from position `from` on.
    pub fn read(&self, from: u64, max: usize) -> Vec<Entry> {
        let skip = usize::try_from(from.saturating_sub(self.start())).unwrap_or(usize::MAX);
        self.log.iter().skip(skip).take(max).cloned().collect()
    }

    /// The id a keepalive reports: the newest event's, or the newest issued after a purge.
    pub fn newest_replay_id(&self) -> Vec<u8> {
        self.log
            .back()
            .map(|e| e.replay_id.clone())
            .or_else(|| self.last_issued.clone())
            .unwrap_or_default()
    }

    /// Drops all but the newest `keep_last` events; answers how many went.
    pub fn purge_keep_last(&mut self, keep_last: usize) -> usize {
        let n = self.log.len().saturating_sub(keep_last);
        self.log.drain(..n);
        n
    }

    /// Drops every event up to and including `position`.
    pub fn purge_up_to(&mut self, position: u64) -> usize {
        let before = self.log.len();
        self.log.retain(|e| e.position > position);
        before - self.log.len()
    }

    pub fn describe(&self, current_schema: Option<&str>) -> Value {
        let mut schema_ids: Vec<&str> = Vec::new();
        for e in &self.log {
            if !schema_ids.contains(&e.event.schema_id.as_str()) {
                schema_ids.push(&e.event.schema_id);
            }
        }
        let source = match &self.source {
            Source::Entity(e) => json!({"entity": e}),
            Source::All => json!("all"),
            Source::Channel(entities) => json!({"channel": entities}),
        };
        json!({
            "retained": self.log.len(),
            "first_replay_id": self.log.front().map(|e| hex(&e.replay_id)),
            "last_replay_id": self.log.back().map(|e| hex(&e.replay_id)),
            "newest_replay_id": hex(&self.newest_replay_id()),
            "schema_ids": schema_ids,
            "schema_id": current_schema,
            "source": source,
        })
    }
}

/// How the streams are paced; the control API and the command line set them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub keepalive: Duration,
    pub zero_credit_timeout: Duration,
    pub batch_max: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keepalive: Duration::from_secs(270),
            zero_credit_timeout: Duration::from_secs(60),
            batch_max: 25,
        }
    }
}

impl Timing {
    pub fn describe(&self) -> Value {
        json!({
            "keepalive_ms": u64::try_from(self.keepalive.as_millis()).unwrap_or(u64::MAX),
            "zero_credit_timeout_ms":
                u64::try_from(self.zero_credit_timeout.as_millis()).unwrap_or(u64::MAX),
            "batch_max": self.batch_max,
        })
    }
}

/// What one Subscribe call did, and the faults waiting for it.
#[derive(Debug)]
pub struct StreamRecord {
    pub id: u64,
    pub topic: String,
    pub preset: &'static str,
    pub replay_id: Option<String>,
    pub open: bool,
    pub opened_at: String,
    pub closed_at: Option<String>,
    pub closed_because: Option<String>,
    pub events_sent: u64,
    pub keepalives_sent: u64,
    pub credit_requested_total: u64,
    pub starved: u64,
    pub longest_starved: Duration,
    pub starving_since: Option<Instant>,
    pub delivered: VecDeque<Entry>,
    pub stall: bool,
    pub drop: bool,
    pub auth_error: bool,
    pub duplicate: usize,
}

impl StreamRecord {
    pub fn remember(&mut self, entry: &Entry) {
        if self.delivered.len() >= REMEMBERED {
            self.delivered.pop_front();
        }
        self.delivered.push_back(entry.clone());
    }

    /// Ends a starved spell (credit came back, or the stream closed).
    pub fn end_starving(&mut self, now: Instant) {
        if let Some(since) = self.starving_since.take() {
            self.longest_starved = self.longest_starved.max(now - since);
        }
    }

    pub fn describe(&self) -> Value {
        let ongoing = self
            .starving_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        let longest = self.longest_starved.max(ongoing);
        json!({
            "id": self.id,
            "topic": self.topic,
            "preset": self.preset,
            "replay_id": self.replay_id,
            "open": self.open,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "closed_because": self.closed_because,
            "events_sent": self.events_sent,
            "keepalives_sent": self.keepalives_sent,
            "starved": self.starved,
            "longest_starved_ms": u64::try_from(longest.as_millis()).unwrap_or(u64::MAX),
            "credit_requested_total": self.credit_requested_total,
        })
    }
}

/// A pending `unavailable` fault: the next `times` Subscribe calls to `topic` (any if `None`).
#[derive(Debug, Clone)]
pub struct Refusals {
    pub topic: Option<String>,
    pub times: u32,
}

/// Everything behind the hub's lock.
#[derive(Debug)]
pub struct State {
    pub entities: BTreeMap<String, Entity>,
    /// Every schema version ever made: id → JSON.
    pub schemas: HashMap<String, String>,
    pub topics: BTreeMap<String, Topic>,
    pub streams: Vec<StreamRecord>,
    pub timing: Timing,
    pub refusals: Vec<Refusals>,
    pub next_stream: u64,
    pub commit_number: i64,
}

impl State {
    pub fn new(timing: Timing) -> State {
        let mut state = State {
            entities: BTreeMap::new(),
            schemas: HashMap::new(),
            topics: BTreeMap::new(),
            streams: Vec::new(),
            timing,
            refusals: Vec::new(),
            next_stream: 1,
            commit_number: 1_000_000_000_000,
        };
        state
            .topics
            .insert(ALL_CHANGES.to_owned(), Topic::new(Source::All));
        for entity in builtin_entities() {
            state.add_entity(entity);
        }
        state
    }

    pub fn add_entity(&mut self, entity: Entity) {
        self.schemas
            .insert(entity.schema.id.clone(), entity.schema.json.clone());
        self.topics.insert(
            entity_topic(&entity.name),
            Topic::new(Source::Entity(entity.name.clone())),
        );
        self.entities.insert(entity.name.clone(), entity);
    }

    /// The current schema id of an entity's own topic; none for the others.
    pub fn topic_schema(&self, topic: &str) -> Option<&str> {
        match &self.topics.get(topic)?.source {
            Source::Entity(e) => self.entities.get(e).map(|e| e.schema.id.as_str()),
            _ => None,
        }
    }

    /// The topics an event of `entity` goes to, its own first.
    pub fn topics_of(&self, entity: &str) -> Vec<String> {
        let mut out = vec![entity_topic(entity), ALL_CHANGES.to_owned()];
        for (name, topic) in &self.topics {
            if let Source::Channel(entities) = &topic.source
                && entities.iter().any(|e| e == entity)
            {
                out.push(name.clone());
            }
        }
        out
    }

    pub fn stream_mut(&mut self, id: u64) -> Option<&mut StreamRecord> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// Takes one pending refusal for a Subscribe to `topic`, if any.
    pub fn take_refusal(&mut self, topic: &str) -> bool {
        let hit = self
            .refusals
            .iter_mut()
            .find(|r| r.times > 0 && r.topic.as_deref().is_none_or(|t| t == topic));
        match hit {
            Some(r) => {
                r.times -= 1;
                self.refusals.retain(|r| r.times > 0);
                true
            }
            None => false,
        }
    }
}

pub fn entity_topic(entity: &str) -> String {
    format!("/data/{entity}ChangeEvent")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> ProducerEvent {
        ProducerEvent {
            id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn replay_ids_map_back_while_retained() {
        let mut topic = Topic::new(Source::All);
        let a = topic.append(event("a"));
        let b = topic.append(event("b"));
        let c = topic.append(event("c"));
        assert_eq!(a.len(), 10);
        assert_eq!(topic.position_of(&b), Ok(2));
        assert_eq!(topic.read(topic.position_of(&a).unwrap() + 1, 10).len(), 2);
        assert_eq!(topic.purge_keep_last(1), 2);
        assert_eq!(topic.position_of(&a), Err(ReplayError::Unknown));
        assert_eq!(topic.position_of(&c), Ok(3));
        assert_eq!(topic.position_of(b"0000000001"), Err(ReplayError::Unknown));
        assert_eq!(topic.purge_up_to(3), 1);
        assert_eq!(topic.newest_replay_id(), c);
        assert_eq!(topic.start(), 4);
        let other = Topic::new(Source::All);
        assert!(other.position_of(&c).is_err());
        assert_eq!(unhex(&hex(&c)), Some(c));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
