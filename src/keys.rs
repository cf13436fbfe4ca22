//! Every Redis key sfrelay writes, in one place: what each holds, how long it lives and why.
//! Nothing else spells a key; collisions and lifetimes are reviewed here alone.
//!
//! All keys live under `sfrelay:{namespace}:` (one hash tag, so a Redis Cluster keeps them in
//! one slot and the multi-key Lua scripts stay legal). Below that prefix there are three
//! spaces, each prefix-free (no kind's fixed start is the start of another's):
//! - the queue's own structures ([`Namespace`]: `ready`, `low`, `processing:`, …);
//! - the state store's keys ([`Key`]: ledgers, claims, caches, rate limits), some of them
//!   scoped to one Slack workspace ([`Workspace`]);
//! - inside `dedupe:`, the dedupe keys of queued jobs ([`DedupeKey`]), kept for the
//!   configured dedupe window.
//!
//! The keys of people's own Salesforce connections, their Preferred org and the sign-in
//! links that make them are spelled in `keys/people.rs`.

use std::fmt::Display;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The full keys of one namespace: the queue's structures, and the store's keys with the
/// namespace in front.
#[derive(Debug, Clone)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    pub fn new(namespace: &str) -> Self {
        Namespace {
            prefix: format!("sfrelay:{{{namespace}}}:"),
        }
    }
    /// New jobs (list): pushed on the left, taken from the right. Lives while it holds jobs.
    pub fn ready(&self) -> String {
        format!("{}{}", self.prefix, prefix::READY)
    }
    /// The one job a consumer holds (list), moved there atomically by the take, so a crash
    /// leaves it where recovery finds it.
    pub fn processing(&self, consumer: &str) -> String {
        format!("{}{consumer}", self.processing_prefix())
    }
    /// What the recovery script scans for in-flight lists of dead consumers.
    pub fn processing_prefix(&self) -> String {
        format!("{}{}", self.prefix, prefix::PROCESSING)
    }
    /// Low-priority jobs (list), fed into `ready` when it runs short.
    pub fn low(&self) -> String {
        format!("{}{}", self.prefix, prefix::LOW)
    }
    /// Consumer → last heartbeat in ms (sorted set), for in-flight counts and recovery.
    pub fn consumers(&self) -> String {
        format!("{}{}", self.prefix, prefix::CONSUMERS)
    }
    /// Retries and put-off jobs of one lane (sorted set by due time in ms).
    pub fn delayed(&self, lane: &str) -> String {
        format!("{}{}{lane}", self.prefix, prefix::DELAYED)
    }
    /// Dead letters (list), newest first; kept until an operator replays or purges them.
    pub fn dead(&self) -> String {
        format!("{}{}", self.prefix, prefix::DEAD)
    }
    /// The id of the job that first used a dedupe key, for the dedupe window.
    pub fn dedupe(&self, key: &str) -> String {
        format!("{}{}{key}", self.prefix, prefix::DEDUPE_OF)
    }
    /// A state-store key ([`Key`]) of this namespace.
    pub fn store(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// The fixed start of every key kind, by space; the tests below prove each space prefix-free.
pub mod prefix {
    pub const READY: &str = "ready";
    pub const LOW: &str = "low";
    pub const PROCESSING: &str = "processing:";
    pub const CONSUMERS: &str = "consumers";
    pub const DELAYED: &str = "delayed:";
    pub const DEAD: &str = "dead";
    pub const DEDUPE_OF: &str = "dedupe:";
    /// Queue structures (under the namespace).
    pub const QUEUE: [&str; 7] = [READY, LOW, PROCESSING, CONSUMERS, DELAYED, DEAD, DEDUPE_OF];
    pub const DONE: &str = "done:";
    pub const PENDING: &str = "pending:";
    pub const ONCE: &str = "once:";
    pub const ANNOUNCED: &str = "ann:";
    pub const ROOM: &str = "room:";
    pub const TICK: &str = "tick:";
    pub const SEEN: &str = "seen:";
    pub const RECONCILE_SLOT: &str = "recon:";
    pub const RATE: &str = "rl:";
    pub const RATE_WAKE: &str = "rl-wake:";
    pub const RATE_FRONT: &str = "rl-front:";
    pub const CARD_VERSION: &str = "card:";
    pub const ANNOUNCING: &str = "expect-ann:";
    pub const ONCE_PENDING: &str = "once-pending:";
    /// A workspace other than the default one; its keys follow this start and the org Id.
    pub const WORKSPACE: &str = "ws-";
    pub const SF_REFRESH_TOKEN: &str = "sf-refresh:";
    pub const SF_REFRESH_TURN: &str = "sf-refreshing:";
    pub const CARD_OF: &str = "acts-card:";
    pub const DECIDED: &str = "decided:";
    pub const ACTED: &str = "acted:";
    pub const OWN_WRITE: &str = "own-write:";
    pub const GATE: &str = "gate:";
    pub const PUBSUB_CURSOR: &str = "pubsub-cursor:";
    pub const PUBSUB_LEASE: &str = "pubsub-lease:";
    pub const PUBSUB_SWEEP: &str = "pubsub-sweep:";
    pub const PERSON_CONNECTION: &str = "person-conn:";
    pub const PERSON_PREFERRED: &str = "person-pref:";
    pub const DEFAULT_ORG: &str = "default-org";
    pub const OAUTH_STATE: &str = "oauth-state:";
    pub const OAUTH_STARTED: &str = "oauth-started:";
    pub const OAUTH_USED: &str = "oauth-used:";
    pub const LAST_EVENT: &str = "last-event:";
    pub const FOLLOWERS: &str = "followers:";
    pub const FOLLOWING: &str = "following:";
    pub const NAMES_EPOCH: &str = "names-epoch";
    /// Store keys outside any workspace scope (under the namespace).
    pub const STORE: [&str; 35] = [
        DONE,
        PENDING,
        ONCE,
        ONCE_PENDING,
        ANNOUNCED,
        ANNOUNCING,
        CARD_VERSION,
        ROOM,
        TICK,
        SEEN,
        RECONCILE_SLOT,
        RATE,
        RATE_WAKE,
        RATE_FRONT,
        WORKSPACE,
        SF_REFRESH_TOKEN,
        SF_REFRESH_TURN,
        CARD_OF,
        DECIDED,
        ACTED,
        OWN_WRITE,
        GATE,
        PUBSUB_CURSOR,
        PUBSUB_LEASE,
        PUBSUB_SWEEP,
        PERSON_CONNECTION,
        PERSON_PREFERRED,
        DEFAULT_ORG,
        OAUTH_STATE,
        OAUTH_STARTED,
        OAUTH_USED,
        LAST_EVENT,
        FOLLOWERS,
        FOLLOWING,
        NAMES_EPOCH,
    ];
    pub const CHANNEL_NAME: &str = "chan:";
    pub const CHANNEL_SCAN: &str = "chan-scan-cursor";
    pub const USER: &str = "user:";
    pub const EMAIL_OF: &str = "email-of:";
    pub const DM: &str = "dm:";
    pub const ROOM_NAME: &str = "roomname:";
    pub const APP_PAUSED: &str = "app-paused";
    pub const HISTORY_PASS: &str = "hist:";
    pub const HISTORY_READER: &str = "hist-reader:";
    /// Store keys scoped to one Slack workspace (after the workspace's own start, which is
    /// empty for the default workspace, so these must also stay apart from [`STORE`]).
    pub const IN_WORKSPACE: [&str; 9] = [
        CHANNEL_NAME,
        CHANNEL_SCAN,
        USER,
        EMAIL_OF,
        DM,
        ROOM_NAME,
        APP_PAUSED,
        HISTORY_PASS,
        HISTORY_READER,
    ];
    /// What a rate limit is kept for, inside the three `rl` keys.
    pub const LIMIT_CHANNEL: &str = "chan:";
    pub const LIMIT_METHOD: &str = "method:";
    pub const EVENT: &str = "e:";
    pub const CONTENT: &str = "c:";
    pub const GAP: &str = "gap:";
    pub const ROUTE_JOB: &str = "r:";
    pub const SCHEDULED_JOB: &str = "s:";
    pub const INTERACTION: &str = "i:";
    pub const COMMAND: &str = "cmd:";
    pub const SLACK_EVENT: &str = "sev:";
    /// Dedupe keys (inside `dedupe:`).
    pub const DEDUPE: [&str; 8] = [
        EVENT,
        CONTENT,
        GAP,
        ROUTE_JOB,
        SCHEDULED_JOB,
        INTERACTION,
        COMMAND,
        SLACK_EVENT,
    ];
}

/// A state-store key (relative to the namespace) and how long it lives (`None`: until
/// deleted; such keys are few and small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    name: String,
    ttl: Option<Duration>,
}

impl Key {
    fn new(name: String, ttl: Option<Duration>) -> Self {
        Key { name, ttl }
    }
    pub fn as_str(&self) -> &str {
        &self.name
    }
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The ledger entry of one action of one route for one event: where it landed. Kept 14
    /// days, longer than any job can live, so a retried or recovered job never acts twice.
    pub fn done(event: &str, route: &str, action: usize) -> Key {
        Key::new(
            format!("{}{event}:{route}:{action}", prefix::DONE),
            Some(LEDGER_TTL),
        )
    }

    /// When "no such channel" answers were last declared out of date (`sfrelay dlq replay`:
    /// the operator has just made the channel): older ones are asked again. Until replaced.
    pub fn names_epoch() -> Key {
        Key::new(prefix::NAMES_EPOCH.to_string(), None)
    }

    /// The ledger entry of one person's message of an action that messages several people
    /// (a record's followers): each lands, and is skipped on a retry, on its own.
    pub fn done_for(&self, person: &str) -> Key {
        Key::new(format!("{}:{person}", self.name), self.ttl)
    }

    /// A post about to be made for the ledger entry `done` (where, since when): a later
    /// attempt that finds it searches the channel history before posting again. As long as
    /// the ledger entry it guards.
    pub fn pending(done: &Key) -> Key {
        Key::new(
            format!("{}{}", prefix::PENDING, done.name),
            Some(LEDGER_TTL),
        )
    }

    /// A once-per-record route has fired for this record (the first event's id). Kept
    /// `days` when the route says (`dedupe_days`), else 400 days: "once" means for good.
    pub fn once(route: &str, org: impl Display, record: impl Display, days: Option<u64>) -> Key {
        let ttl = days.map_or(ONCE_TTL, |days| {
            Duration::from_secs(days.max(1).saturating_mul(DAY.as_secs()))
        });
        Key::new(format!("{}{route}:{org}:{record}", prefix::ONCE), Some(ttl))
    }

    /// Where `route` announced a record, for later thread replies and in-place updates.
    /// 180 days: past that, Slack no longer lets a message be edited anyway.
    pub fn announced(route: &str, org: impl Display, record: impl Display) -> Key {
        Key::new(
            format!("{}{route}:{org}:{record}", prefix::ANNOUNCED),
            Some(ANNOUNCEMENT_TTL),
        )
    }

    /// A once-per-record route's first delivery for this record is under way (the event's
    /// id): other events for the record wait until it lands (then `once` holds) or is given
    /// up. Kept `ttl` (the jobs' age limit), so a holder that died lets go in the end.
    pub fn once_pending(
        route: &str,
        org: impl Display,
        record: impl Display,
        ttl: Duration,
    ) -> Key {
        Key::new(
            format!("{}{route}:{org}:{record}", prefix::ONCE_PENDING),
            Some(ttl),
        )
    }

    /// `route` has a job queued that will announce this record (the event's id), so threads
    /// and updates that find no announcement yet wait for it instead of giving up. Kept `ttl`
    /// (the jobs' age limit): no job waits longer.
    pub fn announcing(route: &str, org: impl Display, record: impl Display, ttl: Duration) -> Key {
        Key::new(
            format!("{}{route}:{org}:{record}", prefix::ANNOUNCING),
            Some(ttl),
        )
    }

    /// The record version (fixed width, so versions compare as strings) that rendered the
    /// card at `ts` in `channel`, so an older update never replaces a newer one. As long as
    /// the announcement it belongs to.
    pub fn card_version(channel: &str, ts: &str) -> Key {
        Key::new(
            format!("{}{channel}:{ts}", prefix::CARD_VERSION),
            Some(ANNOUNCEMENT_TTL),
        )
    }

    /// The deal room made for a record by `route` (its channel Id). Kept for good: a room
    /// is made once per record, and the key is a few bytes.
    pub fn room(route: &str, org: impl Display, record: impl Display) -> Key {
        Key::new(format!("{}{route}:{org}:{record}", prefix::ROOM), None)
    }

    /// A scheduled route's tick has fired (claimed by one replica). Three days: longer than
    /// any clock skew or restart that could make a replica see the same tick again.
    pub fn tick(route: &str, tick_ms: i64) -> Key {
        Key::new(format!("{}{route}:{tick_ms}", prefix::TICK), Some(TICK_TTL))
    }

    /// The watched fields of a record as sfrelay last saw them, for reconciliation. 35
    /// days: reconciliation looks back far less, and a record quiet that long is re-learnt.
    pub fn seen(org: impl Display, object: &str, record: impl Display) -> Key {
        Key::new(
            format!("{}{org}:{object}:{record}", prefix::SEEN),
            Some(SEEN_TTL),
        )
    }

    /// One reconciliation run of (org, object) in time slot `slot` (claimed by one
    /// replica). Two intervals: long enough that no replica runs the same slot again.
    pub fn reconcile_slot(org: impl Display, object: &str, slot: i64, every: Duration) -> Key {
        Key::new(
            format!("{}{org}:{object}:{slot}", prefix::RECONCILE_SLOT),
            Some(every * 2),
        )
    }

    /// An org's newest Salesforce refresh token (rotated on use), sealed with the encryption
    /// key. Until replaced: a refresh token may stay valid indefinitely.
    pub fn refresh_token(org: impl Display) -> Key {
        Key::new(format!("{}{org}", prefix::SF_REFRESH_TOKEN), None)
    }

    /// Where a Pub/Sub subscription of an org resumes: the replay id (hex) of the last event
    /// durably queued, or of the last keepalive, and when it was stored. Kept until replaced:
    /// losing it would mean starting over from the configured start.
    pub fn pubsub_cursor(org: impl Display, topic: &str) -> Key {
        Key::new(format!("{}{org}:{topic}", prefix::PUBSUB_CURSOR), None)
    }

    /// When an org's last event was routed (Unix ms), for its health on the Home tab. Kept a
    /// week: an org silent for longer shows "none for a week or more".
    pub fn last_event(org: impl Display) -> Key {
        Key::new(
            format!("{}{org}", prefix::LAST_EVENT),
            Some(Duration::from_secs(7 * 24 * 3600)),
        )
    }

    /// A sweep a subscription owes: it restarted from the earliest retained event because its
    /// cursor was past retention, and once it has caught up, the changes since the old
    /// cursor's time are swept. Kept until the sweep has run, whichever replica runs it.
    pub fn pubsub_sweep(org: impl Display, topic: &str) -> Key {
        Key::new(format!("{}{org}:{topic}", prefix::PUBSUB_SWEEP), None)
    }

    /// The one replica that holds the live stream of an org's topic; it renews the lease while
    /// it lives, another takes over once it stops.
    pub fn pubsub_lease(org: impl Display, topic: &str, ttl: Duration) -> Key {
        Key::new(format!("{}{org}:{topic}", prefix::PUBSUB_LEASE), Some(ttl))
    }

    /// One replica's turn at refreshing an org's token (so no two present the same refresh
    /// token at once). 45 s: longer than a token request may take, short enough that a
    /// replica that died holding it holds nobody up for long.
    pub fn refresh_turn(org: impl Display) -> Key {
        Key::new(
            format!("{}{org}", prefix::SF_REFRESH_TURN),
            Some(Duration::from_secs(45)),
        )
    }
}

impl Key {
    /// What the card at `ts` in `channel` is about (route, template, the event it showed),
    /// for the buttons on it. As long as the card can be edited.
    pub fn card_of(channel: &str, ts: &str) -> Key {
        Key::new(
            format!("{}{channel}:{ts}", prefix::CARD_OF),
            Some(ANNOUNCEMENT_TTL),
        )
    }

    /// A decision taken once whatever the clicks (a card taken, a gate decided): who took it.
    /// As long as the card it is shown on.
    pub fn decided(what: &str) -> Key {
        Key::new(format!("{}{what}", prefix::DECIDED), Some(ANNOUNCEMENT_TTL))
    }

    /// A Salesforce write an interaction made, or is making (`pending` then its outcome), so
    /// a retried job neither writes twice nor reports its own write as someone else's. As
    /// long as the ledger.
    pub fn acted(interaction: &str) -> Key {
        Key::new(format!("{}{interaction}", prefix::ACTED), Some(LEDGER_TTL))
    }

    /// The fields sfrelay just wrote to a record from a card, so that when the change comes
    /// back (a Flow callout, a change event) the card's own route skips it. `ttl`: how long
    /// such an echo may take to arrive.
    pub fn own_write(org: impl Display, record: impl Display, ttl: Duration) -> Key {
        Key::new(format!("{}{org}:{record}", prefix::OWN_WRITE), Some(ttl))
    }

    /// A route's approval gate for one record: pending, then decided (who, when, why). As
    /// long as an announcement.
    pub fn gate(route: &str, org: impl Display, record: impl Display) -> Key {
        Key::new(
            format!("{}{route}:{org}:{record}", prefix::GATE),
            Some(ANNOUNCEMENT_TTL),
        )
    }
}

/// How long the ledger remembers a done action (longer than any job can live).
pub const LEDGER_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// How long a record's announcement can be threaded on or updated.
pub const ANNOUNCEMENT_TTL: Duration = Duration::from_secs(180 * 24 * 3600);
/// How long a once-per-record route stays fired for a record, unless the route says.
pub const ONCE_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long a claimed tick is remembered.
pub const TICK_TTL: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long what sfrelay saw of a record is kept.
pub const SEEN_TTL: Duration = Duration::from_secs(35 * 24 * 3600);
/// How long a channel's Id is trusted (channels are renamed rarely; a miss lists again).
pub const CHANNEL_TTL: Duration = Duration::from_secs(3600);
/// How long "no such channel" is trusted after a whole scan missed it: a channel created
/// (or the bot invited) since is found after this.
pub const NO_CHANNEL_TTL: Duration = Duration::from_secs(300);
/// How long a person's user Id is trusted.
pub const USER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long "no such user" is trusted: shorter, so a new hire is found soon.
pub const NO_USER_TTL: Duration = Duration::from_secs(600);
/// How long the email on a person's Slack profile is trusted.
pub const EMAIL_OF_TTL: Duration = Duration::from_secs(3600);
/// How long a DM conversation's Id is trusted.
pub const DM_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a Slack app's pause is kept without a probe renewing it.
pub const PAUSE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a read of a channel's history answers later questions about it.
pub const HISTORY_PASS_TTL: Duration = Duration::from_secs(60);
/// How long one replica's claim to read a channel's history holds.
pub const HISTORY_READER_TTL: Duration = Duration::from_secs(15);
/// How long a half-done channel scan is resumed rather than started over.
pub const SCAN_TTL: Duration = Duration::from_secs(300);

/// The keys of one Slack workspace (one Slack app's bot token): its name caches, room names
/// and rate limits, kept apart from every other workspace's. The default workspace has no
/// start of its own, so keys written before per-org tokens existed stay valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    start: String,
}

impl Workspace {
    /// The workspace of `SLACK_BOT_TOKEN`.
    pub fn default_app() -> Self {
        Workspace::default()
    }

    /// The workspace of an org with its own bot token (`[orgs.slack]`).
    pub fn of_org(org: impl Display) -> Self {
        Workspace {
            start: format!("{}{org}:", prefix::WORKSPACE),
        }
    }

    /// A channel's Id by name, as `conversations.list` said. One hour (renames are rare; a
    /// miss lists again).
    pub fn channel_name(&self, name: &str) -> Key {
        Key::new(
            format!("{}{}{name}", self.start, prefix::CHANNEL_NAME),
            Some(CHANNEL_TTL),
        )
    }

    /// Where the shared channel scan stands (a `conversations.list` cursor), so a scan cut
    /// short by the rate limit resumes. Five minutes: an older cursor is not worth keeping.
    pub fn channel_scan(&self) -> Key {
        Key::new(
            format!("{}{}", self.start, prefix::CHANNEL_SCAN),
            Some(SCAN_TTL),
        )
    }

    /// A person's Slack user Id by email (or a mark that Slack has none). A day for a
    /// found user; "nobody" is kept only [`NO_USER_TTL`], so a new hire is found soon.
    pub fn user(&self, email: &str) -> Key {
        Key::new(
            format!("{}{}{email}", self.start, prefix::USER),
            Some(USER_TTL),
        )
    }

    /// The email on a Slack user's profile (or a mark that it shows none), for who clicked.
    /// An hour: who writes in Salesforce follows a changed email soon.
    pub fn email_of(&self, user: &str) -> Key {
        Key::new(
            format!("{}{}{user}", self.start, prefix::EMAIL_OF),
            Some(EMAIL_OF_TTL),
        )
    }

    /// The DM conversation with a user. A week: it never changes, but users leave.
    pub fn dm(&self, user: &str) -> Key {
        Key::new(format!("{}{}{user}", self.start, prefix::DM), Some(DM_TTL))
    }

    /// A channel name claimed for a room (holds the room's key, or "taken" when the name is
    /// someone else's), so a crash between Slack's answer and ours is recognised. For good:
    /// channel names are not freed.
    pub fn room_name(&self, name: &str) -> Key {
        Key::new(format!("{}{}{name}", self.start, prefix::ROOM_NAME), None)
    }

    /// Why this Slack app's delivery is paused (its token was refused), shared by every
    /// replica. A day, renewed by every refused probe, so a key of an app taken out of the
    /// configuration does not linger.
    pub fn paused(&self) -> Key {
        Key::new(
            format!("{}{}", self.start, prefix::APP_PAUSED),
            Some(PAUSE_TTL),
        )
    }

    /// The last read of a channel's recent history for posts that may have landed unseen:
    /// every sfrelay post in it by ledger key, so one read answers every such post of the
    /// channel. A minute: after that, a read would be too old to answer a newer question.
    pub fn history_pass(&self, channel: &str) -> Key {
        Key::new(
            format!("{}{}{channel}", self.start, prefix::HISTORY_PASS),
            Some(HISTORY_PASS_TTL),
        )
    }

    /// Who is reading a channel's history now (the others wait for that read). Fifteen
    /// seconds, in case the reader dies.
    pub fn history_reader(&self, channel: &str) -> Key {
        Key::new(
            format!("{}{}{channel}", self.start, prefix::HISTORY_READER),
            Some(HISTORY_READER_TTL),
        )
    }

    /// The rate limit of message calls in one channel.
    pub fn channel_limit(&self, channel: &str) -> Limit {
        Limit(format!("{}{}{channel}", self.start, prefix::LIMIT_CHANNEL))
    }

    /// The rate limit of one Web API method (its tier).
    pub fn method_limit(&self, method: &str) -> Limit {
        Limit(format!("{}{}{method}", self.start, prefix::LIMIT_METHOD))
    }
}

/// What one rate limit is kept for (a channel or a method, in one workspace). Its state lives
/// in three keys whose lifetimes the limiter script sets to just past the time they matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit(String);

impl Limit {
    /// The name the limit is known by (in logs, and the memory store's table).
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The theoretical arrival time of the next call (GCRA).
    pub fn arrival(&self) -> String {
        format!("{}{}", prefix::RATE, self.0)
    }
    /// The last wake-up time handed to a caller told to wait.
    pub fn wake(&self) -> String {
        format!("{}{}", prefix::RATE_WAKE, self.0)
    }
    /// A high-priority caller's claim on the next free time.
    pub fn front(&self) -> String {
        format!("{}{}", prefix::RATE_FRONT, self.0)
    }
}

impl Limit {
    /// The limit known by `name` (the store's `rate_limit` is given names).
    pub fn named(name: &str) -> Self {
        Limit(name.to_string())
    }
}

/// The dedupe key of a queued job, kept inside `dedupe:` for the configured dedupe window
/// (default 24 h: Salesforce's retries of one callout come well within it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupeKey(String);

impl DedupeKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An event the sender named (`event_id`): the org and a SHA-256 of the id.
    pub fn event(org: impl Display, event_id_sha256: &str) -> Self {
        DedupeKey(format!("{}{org}:{event_id_sha256}", prefix::EVENT))
    }

    /// An event without a sender's id: a SHA-256 of what makes the change that change.
    pub fn content(sha256: &str) -> Self {
        DedupeKey(format!("{}{sha256}", prefix::CONTENT))
    }

    /// A CDC gap event: org, transaction, commit time and the records it names.
    pub fn gap(
        org: impl Display,
        transaction_key: Option<&str>,
        commit_ms: i64,
        records: &[&str],
    ) -> Self {
        DedupeKey(format!(
            "{}{org}:{}:{commit_ms}:{}",
            prefix::GAP,
            transaction_key.unwrap_or(""),
            records.join(",")
        ))
    }

    /// One fired route for one event: repeating the fan-out after a crash queues nothing
    /// twice.
    pub fn route(event: &str, route: &str) -> Self {
        DedupeKey(format!("{}{event}:{route}", prefix::ROUTE_JOB))
    }

    /// One scheduled route for one org at one tick.
    pub fn scheduled(route: &str, org: impl Display, tick_ms: i64) -> Self {
        DedupeKey(format!("{}{route}:{org}:{tick_ms}", prefix::SCHEDULED_JOB))
    }

    /// A Slack interaction: a SHA-256 of its verified payload, so a redelivery queues nothing.
    pub fn interaction(payload_sha256: &str) -> Self {
        DedupeKey(format!("{}{payload_sha256}", prefix::INTERACTION))
    }

    /// A slash command, by its trigger id.
    pub fn command(trigger_id: &str) -> Self {
        DedupeKey(format!("{}{trigger_id}", prefix::COMMAND))
    }

    /// An Events API callback, by its `event_id`: Slack's retries of it queue nothing more.
    pub fn slack_event(team: &str, event_id: &str) -> Self {
        DedupeKey(format!("{}{team}:{event_id}", prefix::SLACK_EVENT))
    }
}

impl From<DedupeKey> for String {
    fn from(key: DedupeKey) -> String {
        key.0
    }
}

mod people;
#[cfg(test)]
mod tests;
