use super::*;

/// Two kinds collide only if one's fixed start can begin the other's keys.
fn assert_prefix_free(space: &str, starts: &[&str]) {
    for (i, a) in starts.iter().enumerate() {
        for (j, b) in starts.iter().enumerate() {
            if i != j {
                assert!(
                    !b.starts_with(a),
                    "{space}: a {b:?} key could be read as a {a:?} key"
                );
            }
        }
    }
}

fn org() -> &'static str {
    "00D5g000004ABCdEAO"
}

fn record() -> &'static str {
    "006Hs00000BkXyzIAF"
}

#[test]
fn every_space_is_prefix_free() {
    assert_prefix_free("queue", &prefix::QUEUE);
    // The default workspace's keys have no start of their own, so they share the store's
    // space with the unscoped kinds.
    let store: Vec<&str> = prefix::STORE
        .iter()
        .chain(prefix::IN_WORKSPACE.iter())
        .copied()
        .collect();
    assert_prefix_free("store", &store);
    assert_prefix_free("dedupe", &prefix::DEDUPE);
    assert_prefix_free("rate limit", &[prefix::LIMIT_CHANNEL, prefix::LIMIT_METHOD]);
    // Queue structures and store keys share the namespace.
    let all: Vec<&str> = prefix::QUEUE.iter().chain(store.iter()).copied().collect();
    assert_prefix_free("namespace", &all);
}

/// Every key kind, built from awkward values, with the start it must carry.
fn every_kind() -> Vec<(&'static str, String)> {
    let (org, record) = (org(), record());
    let awkward = "a:b/c d*é";
    let done = Key::done(awkward, awkward, 3);
    let other = Workspace::of_org(org);
    let mut kinds = vec![
        (prefix::DONE, done.as_str().to_string()),
        (
            prefix::CARD_OF,
            Key::card_of(awkward, "1759248000.000100")
                .as_str()
                .to_string(),
        ),
        (prefix::DECIDED, Key::decided(awkward).as_str().to_string()),
        (prefix::ACTED, Key::acted(awkward).as_str().to_string()),
        (
            prefix::OWN_WRITE,
            Key::own_write(org, record, Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::GATE,
            Key::gate(awkward, org, record).as_str().to_string(),
        ),
        (prefix::PENDING, Key::pending(&done).as_str().to_string()),
        (
            prefix::ONCE,
            Key::once(awkward, org, record, None).as_str().to_string(),
        ),
        (
            prefix::ONCE_PENDING,
            Key::once_pending(awkward, org, record, Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::ANNOUNCED,
            Key::announced(awkward, org, record).as_str().to_string(),
        ),
        (
            prefix::ANNOUNCING,
            Key::announcing(awkward, org, record, Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::CARD_VERSION,
            Key::card_version(awkward, "1759248000.000100")
                .as_str()
                .to_string(),
        ),
        (
            prefix::ROOM,
            Key::room(awkward, org, record).as_str().to_string(),
        ),
        (prefix::TICK, Key::tick(awkward, -1).as_str().to_string()),
        (
            prefix::SEEN,
            Key::seen(org, awkward, record).as_str().to_string(),
        ),
        (
            prefix::RECONCILE_SLOT,
            Key::reconcile_slot(org, awkward, 7, Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::SF_REFRESH_TOKEN,
            Key::refresh_token(org).as_str().to_string(),
        ),
        (
            prefix::SF_REFRESH_TURN,
            Key::refresh_turn(org).as_str().to_string(),
        ),
        (
            prefix::PERSON_CONNECTION,
            Key::person_connection("T0123", "U0123", org)
                .as_str()
                .to_string(),
        ),
        (
            prefix::PERSON_PREFERRED,
            Key::preferred_org("T0123", "U0123").as_str().to_string(),
        ),
        (prefix::DEFAULT_ORG, Key::default_org().as_str().to_string()),
        (
            prefix::OAUTH_STATE,
            Key::oauth_state("n0nce", Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::OAUTH_STARTED,
            Key::oauth_started("n0nce", Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
        (
            prefix::OAUTH_USED,
            Key::oauth_used("n0nce", Duration::from_secs(60))
                .as_str()
                .to_string(),
        ),
    ];
    for workspace in [Workspace::default_app(), other] {
        let limit = workspace.channel_limit(awkward);
        kinds.extend([
            (prefix::RATE, limit.arrival()),
            (prefix::RATE_WAKE, limit.wake()),
            (prefix::RATE_FRONT, limit.front()),
            (prefix::RATE, workspace.method_limit(awkward).arrival()),
        ]);
        if workspace == Workspace::default_app() {
            kinds.extend([
                (
                    prefix::CHANNEL_NAME,
                    workspace.channel_name(awkward).as_str().to_string(),
                ),
                (
                    prefix::CHANNEL_SCAN,
                    workspace.channel_scan().as_str().to_string(),
                ),
                (prefix::USER, workspace.user(awkward).as_str().to_string()),
                (
                    prefix::EMAIL_OF,
                    workspace.email_of(awkward).as_str().to_string(),
                ),
                (prefix::DM, workspace.dm(awkward).as_str().to_string()),
                (
                    prefix::ROOM_NAME,
                    workspace.room_name(awkward).as_str().to_string(),
                ),
                (prefix::APP_PAUSED, workspace.paused().as_str().to_string()),
            ]);
        } else {
            for key in [
                workspace.channel_name(awkward),
                workspace.channel_scan(),
                workspace.user(awkward),
                workspace.email_of(awkward),
                workspace.dm(awkward),
                workspace.room_name(awkward),
                workspace.paused(),
            ] {
                kinds.push((prefix::WORKSPACE, key.as_str().to_string()));
            }
        }
    }
    kinds
}

#[test]
fn every_key_starts_with_its_own_kind_and_no_other() {
    let starts: Vec<&str> = prefix::STORE
        .iter()
        .chain(prefix::IN_WORKSPACE.iter())
        .copied()
        .collect();
    for (kind, key) in every_kind() {
        let owners: Vec<&&str> = starts.iter().filter(|s| key.starts_with(**s)).collect();
        assert_eq!(owners, vec![&kind], "{key:?}");
    }
    let dedupe = [
        (prefix::EVENT, DedupeKey::event(org(), "ab12")),
        (prefix::CONTENT, DedupeKey::content("ab12")),
        (
            prefix::GAP,
            DedupeKey::gap(org(), Some("t:1"), 5, &["a", "b"]),
        ),
        (prefix::ROUTE_JOB, DedupeKey::route("e:1", "r")),
        (prefix::SCHEDULED_JOB, DedupeKey::scheduled("r", org(), 9)),
    ];
    for (kind, key) in dedupe {
        let owners: Vec<&&str> = prefix::DEDUPE
            .iter()
            .filter(|s| key.as_str().starts_with(**s))
            .collect();
        assert_eq!(owners, vec![&kind], "{key:?}");
    }
}

#[test]
fn every_full_key_carries_the_one_hash_tag() {
    let ns = Namespace::new("prod");
    let tag = "sfrelay:{prod}:";
    let mut full = vec![
        ns.ready(),
        ns.low(),
        ns.processing("host-1-w0"),
        ns.consumers(),
        ns.delayed("high"),
        ns.dead(),
        ns.dedupe(DedupeKey::content("x").as_str()),
    ];
    full.extend(every_kind().iter().map(|(_, key)| ns.store(key)));
    for key in full {
        assert!(key.starts_with(tag), "{key}");
        assert_eq!(key.matches('{').count(), 1, "one hash tag only: {key}");
    }
}

#[test]
fn lifetimes_follow_the_kind() {
    let (org, record) = (org(), record());
    let done = Key::done("e", "r", 0);
    assert_eq!(done.ttl(), Some(LEDGER_TTL));
    assert_eq!(Key::pending(&done).ttl(), done.ttl());
    assert_eq!(Key::once("r", org, record, None).ttl(), Some(ONCE_TTL));
    assert_eq!(
        Key::once("r", org, record, Some(0)).ttl(),
        Some(Duration::from_secs(24 * 3600))
    );
    assert_eq!(
        Key::once("r", org, record, Some(7)).ttl(),
        Some(Duration::from_secs(7 * 24 * 3600))
    );
    let age_limit = Duration::from_secs(3600);
    assert_eq!(
        Key::once_pending("r", org, record, age_limit).ttl(),
        Some(age_limit)
    );
    assert_eq!(
        Key::announcing("r", org, record, age_limit).ttl(),
        Some(age_limit)
    );
    assert_eq!(
        Key::card_version("C1", "1.2").ttl(),
        Key::announced("r", org, record).ttl()
    );
    assert_eq!(Key::room("r", org, record).ttl(), None);
    assert_eq!(Key::card_of("C1", "1.2").ttl(), Some(ANNOUNCEMENT_TTL));
    assert_eq!(Key::gate("r", org, record).ttl(), Some(ANNOUNCEMENT_TTL));
    assert_eq!(Key::acted("i").ttl(), Some(LEDGER_TTL));
    assert_eq!(
        Key::own_write(org, record, age_limit).ttl(),
        Some(age_limit)
    );
    assert_eq!(Workspace::default_app().room_name("x").ttl(), None);
    assert_eq!(
        Key::reconcile_slot(org, "Opportunity", 1, Duration::from_secs(300)).ttl(),
        Some(Duration::from_secs(600))
    );
    // A connection and a choice last until changed; a sign-in link as long as it works, its
    // "used" mark longer, so no replica whose clock is behind accepts it twice.
    assert_eq!(Key::person_connection("T1", "U1", org).ttl(), None);
    assert_eq!(Key::preferred_org("T1", "U1").ttl(), None);
    assert_eq!(Key::default_org().ttl(), None);
    let link = Duration::from_secs(600);
    assert_eq!(Key::oauth_state("n", link).ttl(), Some(link));
    assert_eq!(Key::oauth_started("n", link).ttl(), Some(link));
    assert!(Key::oauth_used("n", link).ttl() > Some(link));
}
