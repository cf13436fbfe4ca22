//! `[[orgs.subscribe]]` and `[pubsub]`: the Pub/Sub API topics sfrelay subscribes to itself,
//! where the API is, and the timers of the subscriber (each one settable so tests run in
//! seconds).

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Salesforce's global Pub/Sub API endpoint.
pub const DEFAULT_PUBSUB_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// One `[[orgs.subscribe]]` entry as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SubscribeFile {
    pub topic: String,
    pub start: Option<String>,
}

/// Where a subscription starts the very first time, before any cursor is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Start {
    /// Only changes made from now on.
    #[default]
    Latest,
    /// Every change Salesforce still keeps (up to 72 hours back).
    Earliest,
}

/// One topic of one org, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    pub topic: String,
    pub start: Start,
}

/// The `[pubsub]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PubsubFile {
    pub(super) credit: u32,
    pub(super) watchdog_secs: f64,
    pub(super) lease_secs: f64,
    pub(super) backoff_min_secs: f64,
    pub(super) backoff_max_secs: f64,
    pub(super) config_backoff_secs: f64,
    pub(super) max_message_bytes: usize,
}

impl Default for PubsubFile {
    fn default() -> Self {
        PubsubFile {
            credit: 100,
            watchdog_secs: 300.0,
            lease_secs: 30.0,
            backoff_min_secs: 1.0,
            backoff_max_secs: 60.0,
            config_backoff_secs: 600.0,
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The subscriber's tuning.
#[derive(Debug, Clone)]
pub struct PubsubConfig {
    /// Events asked for per stream (Salesforce allows at most 100 outstanding); topped up as
    /// each batch arrives, so credit never sits at 0 while the stream is healthy.
    pub credit: u32,
    /// Nothing at all received for this long (not even a keepalive, which Salesforce sends
    /// within 270 s): the stream is taken for dead and reopened.
    pub watchdog: Duration,
    /// The lease that makes one replica the only subscriber of a topic; renewed at a third
    /// of it, taken over by another replica when its holder stops renewing.
    pub lease: Duration,
    /// Backoff between reconnects after a transient error, doubled up to the maximum.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The wait after a configuration or allocation error (unknown topic, no permission,
    /// limits): long, so a misconfiguration never becomes a tight loop.
    pub config_backoff: Duration,
    /// The largest gRPC message accepted (tonic's default of 4 MiB is too small for a batch
    /// of changes with long text fields).
    pub max_message_bytes: usize,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        // The defaults are valid by construction.
        read(PubsubFile::default()).unwrap_or(PubsubConfig {
            credit: 100,
            watchdog: Duration::from_secs(300),
            lease: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            config_backoff: Duration::from_secs(600),
            max_message_bytes: 16 * 1024 * 1024,
        })
    }
}

fn seconds(
    key: &str,
    value: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Duration, ConfigError> {
    if value.is_finite() && range.contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(invalid(
            format!("pubsub.{key}"),
            format!(
                "must be a number of seconds from {} to {}",
                range.start(),
                range.end()
            ),
        ))
    }
}

pub(super) fn read(file: PubsubFile) -> Result<PubsubConfig, ConfigError> {
    if !(2..=100).contains(&file.credit) {
        return Err(invalid(
            "pubsub.credit",
            "must be from 2 to 100 (Salesforce allows at most 100 events outstanding)",
        ));
    }
    let backoff_min = seconds("backoff_min_secs", file.backoff_min_secs, 0.01..=600.0)?;
    let backoff_max = seconds("backoff_max_secs", file.backoff_max_secs, 0.01..=3600.0)?;
    if backoff_max < backoff_min {
        return Err(invalid(
            "pubsub.backoff_max_secs",
            "must not be smaller than backoff_min_secs",
        ));
    }
    if !(1024 * 1024..=256 * 1024 * 1024).contains(&file.max_message_bytes) {
        return Err(invalid(
            "pubsub.max_message_bytes",
            "must be from 1 MiB to 256 MiB",
        ));
    }
    Ok(PubsubConfig {
        credit: file.credit,
        watchdog: seconds("watchdog_secs", file.watchdog_secs, 0.2..=3600.0)?,
        lease: seconds("lease_secs", file.lease_secs, 0.3..=3600.0)?,
        backoff_min,
        backoff_max,
        config_backoff: seconds(
            "config_backoff_secs",
            file.config_backoff_secs,
            0.1..=86_400.0,
        )?,
        max_message_bytes: file.max_message_bytes,
    })
}

/// Whether `topic` is a Pub/Sub topic sfrelay can take change events from: `/data/ChangeEvents`,
/// `/data/<Object>ChangeEvent`, `/data/<Name>__ChangeEvent`, or a custom channel
/// `/data/<Name>__chn`.
fn valid_topic(topic: &str) -> bool {
    let Some(name) = topic.strip_prefix("/data/") else {
        return false;
    };
    let api_name = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    name == "ChangeEvents"
        || name
            .strip_suffix("ChangeEvent")
            .or_else(|| name.strip_suffix("__chn"))
            .is_some_and(|base| !base.is_empty() && api_name(base))
}

/// Reads `[[orgs.subscribe]]` of org `i`; `has_api` says whether the org has API credentials
/// (`[orgs.salesforce]`), which the subscriber authenticates with.
pub(super) fn subscriptions(
    i: usize,
    entries: &[SubscribeFile],
    has_api: bool,
) -> Result<Vec<SubscriptionConfig>, ConfigError> {
    let mut out: Vec<SubscriptionConfig> = Vec::with_capacity(entries.len());
    for (j, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("orgs[{i}].subscribe[{j}].{field}");
        if !has_api {
            return Err(invalid(
                format!("orgs[{i}].subscribe"),
                "subscribing needs the org's API credentials: add [orgs.salesforce] (the \
                 integration user needs the \"Subscribe to Change Data Capture\" permission)",
            ));
        }
        let topic = entry.topic.trim();
        if !valid_topic(topic) {
            return Err(invalid(
                key("topic"),
                format!(
                    "{topic:?} is not a change event topic; use /data/ChangeEvents, \
                     /data/OpportunityChangeEvent, /data/Employee__ChangeEvent or a channel \
                     /data/Sales__chn (names are case-sensitive)"
                ),
            ));
        }
        let start = match entry.start.as_deref().map(str::trim) {
            None | Some("latest") => Start::Latest,
            Some("earliest") => Start::Earliest,
            Some(other) => {
                return Err(invalid(
                    key("start"),
                    format!("unknown value {other:?}; allowed: \"latest\", \"earliest\""),
                ));
            }
        };
        if out.iter().any(|s| s.topic == topic) {
            return Err(invalid(
                key("topic"),
                format!("{topic} is subscribed twice"),
            ));
        }
        out.push(SubscriptionConfig {
            topic: topic.to_owned(),
            start,
        });
    }
    Ok(out)
}

/// Checks `pubsub_endpoint`: `https://` (TLS with public roots) anywhere, `http://`
/// (plaintext HTTP/2) only on loopback, for a local emulator.
pub(super) fn endpoint(i: usize, value: Option<&str>) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok(DEFAULT_PUBSUB_ENDPOINT.to_owned());
    };
    let value = value.trim().trim_end_matches('/');
    if !super::valid_base_url(value) || value.contains('?') {
        return Err(invalid(
            format!("orgs[{i}].salesforce.pubsub_endpoint"),
            format!(
                "{value:?} must be an https:// address such as {DEFAULT_PUBSUB_ENDPOINT} \
                 (http:// only on 127.0.0.1 or localhost)"
            ),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_sfrelay_can_read_changes_from() {
        for ok in [
            "/data/ChangeEvents",
            "/data/OpportunityChangeEvent",
            "/data/Employee__ChangeEvent",
            "/data/Sales__chn",
        ] {
            assert!(valid_topic(ok), "{ok}");
        }
        for bad in [
            "data/ChangeEvents",
            "/data/",
            "/data/ChangeEvent",
            "/event/Alert__e",
            "/data/Opp ChangeEvent",
            "/data/__chn",
        ] {
            assert!(!valid_topic(bad), "{bad}");
        }
    }

    #[test]
    fn a_subscription_needs_api_credentials_and_a_known_start() {
        let entry = |topic: &str, start: Option<&str>| SubscribeFile {
            topic: topic.into(),
            start: start.map(Into::into),
        };
        let e = subscriptions(0, &[entry("/data/ChangeEvents", None)], false).unwrap_err();
        assert!(e.to_string().contains("orgs[0].subscribe"), "{e}");
        let e = subscriptions(0, &[entry("/data/ChangeEvents", Some("oldest"))], true).unwrap_err();
        assert!(e.to_string().contains("orgs[0].subscribe[0].start"), "{e}");
        let e = subscriptions(0, &[entry("/topic/X", None)], true).unwrap_err();
        assert!(e.to_string().contains("subscribe[0].topic"), "{e}");
        let twice = [
            entry("/data/ChangeEvents", None),
            entry("/data/ChangeEvents", None),
        ];
        assert!(subscriptions(0, &twice, true).is_err());
        let ok =
            subscriptions(0, &[entry("/data/CaseChangeEvent", Some("earliest"))], true).unwrap();
        assert_eq!(ok[0].start, Start::Earliest);
    }

    #[test]
    fn plaintext_endpoints_only_on_loopback() {
        assert_eq!(endpoint(0, None).unwrap(), DEFAULT_PUBSUB_ENDPOINT);
        assert_eq!(
            endpoint(0, Some("http://127.0.0.1:7443/")).unwrap(),
            "http://127.0.0.1:7443"
        );
        assert!(endpoint(0, Some("https://api.deu.pubsub.salesforce.com:443")).is_ok());
        let e = endpoint(0, Some("http://pubsub.example.com:7443")).unwrap_err();
        assert!(e.to_string().contains("pubsub_endpoint"), "{e}");
    }

    #[test]
    fn timers_are_checked() {
        let file = PubsubFile {
            credit: 101,
            ..PubsubFile::default()
        };
        assert!(
            read(file)
                .unwrap_err()
                .to_string()
                .contains("pubsub.credit")
        );
        let file = PubsubFile {
            watchdog_secs: 0.0,
            ..PubsubFile::default()
        };
        assert!(
            read(file)
                .unwrap_err()
                .to_string()
                .contains("watchdog_secs")
        );
        assert_eq!(PubsubConfig::default().watchdog, Duration::from_secs(300));
    }
}
