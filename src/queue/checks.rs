//! What sfrelay needs of the Redis it is given, checked at start: version 7.0 or later (the
//! scripts use `SET … NX GET`, new in 7.0) and `maxmemory-policy noeviction` (an evicting Redis
//! may silently drop queued jobs, dedupe keys or ledger entries). Both are read from `INFO`,
//! which managed Redis services keep even where `CONFIG` is disabled.

use std::time::Duration;

use redis::Value;

use super::connect::{Conn, Endpoint};
use crate::config::RedisMode;

/// The oldest Redis sfrelay runs on.
const MIN_VERSION: (u32, u32) = (7, 0);

/// Why sfrelay refuses the Redis it was given.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "Redis {found} found; sfrelay needs Redis 7.0 or later (its scripts use SET … NX GET). \
         Upgrade Redis or point REDIS_URL at a newer one"
    )]
    TooOld { found: String },
    #[error(
        "Redis has maxmemory-policy {policy}: under memory pressure it would evict queued jobs, \
         dedupe keys and ledger entries without a trace. Set maxmemory-policy noeviction (it is \
         refused because sfrelay listens on a non-loopback address)"
    )]
    Evicting { policy: String },
    #[error("cannot read Redis's INFO: {0}")]
    Unreadable(String),
}

/// What one server said about itself.
#[derive(Debug, PartialEq)]
struct ServerFacts {
    version: Option<String>,
    policy: Option<String>,
}

/// Checks every server `INFO` reaches (each node of a cluster). `public`: sfrelay listens on a
/// non-loopback address, where an evicting Redis is refused rather than warned about. A Redis
/// that does not answer yet is not a refusal: the service starts not ready, as without checks.
pub async fn verify(url: &str, mode: &RedisMode, public: bool) -> Result<(), CheckError> {
    let endpoint = Endpoint::parse(url, mode).map_err(|e| CheckError::Unreadable(e.to_string()))?;
    let mut conn = Conn::new(endpoint, Duration::from_secs(3));
    let info: Value = match redis::cmd("INFO")
        .arg("server")
        .arg("memory")
        .query_async(&mut conn)
        .await
    {
        Ok(info) => info,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the Redis version and eviction policy yet");
            return Ok(());
        }
    };
    let mut texts = Vec::new();
    collect_texts(&info, &mut texts);
    if texts.is_empty() {
        return Err(CheckError::Unreadable(format!("unexpected reply {info:?}")));
    }
    for text in texts {
        let facts = parse_info(&text);
        let version = facts.version.unwrap_or_default();
        if !at_least(&version, MIN_VERSION) {
            return Err(CheckError::TooOld {
                found: if version.is_empty() {
                    "of unknown version".into()
                } else {
                    version
                },
            });
        }
        match facts.policy.as_deref() {
            Some("noeviction") => {}
            Some(policy) if public => {
                return Err(CheckError::Evicting {
                    policy: policy.to_string(),
                });
            }
            policy => tracing::warn!(
                policy = policy.unwrap_or("unknown"),
                "Redis's maxmemory-policy is not noeviction: under memory pressure it may evict \
                 queued jobs, dedupe keys and ledger entries. Allowed only because sfrelay \
                 listens on loopback; set maxmemory-policy noeviction"
            ),
        }
    }
    Ok(())
}

/// The INFO texts in a reply: one for a server, one per node for a cluster.
fn collect_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::VerbatimString { text, .. } => out.push(text.clone()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(items) | Value::Set(items) => {
            items.iter().for_each(|item| collect_texts(item, out))
        }
        Value::Map(pairs) => pairs.iter().for_each(|(_, item)| collect_texts(item, out)),
        _ => {}
    }
}

fn parse_info(text: &str) -> ServerFacts {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    };
    ServerFacts {
        version: field("redis_version"),
        policy: field("maxmemory_policy"),
    }
}

/// Whether "major.minor.patch" is at least `min`.
fn at_least(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_and_versions_compared() {
        let text = "# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\n";
        assert_eq!(
            parse_info(text),
            ServerFacts {
                version: Some("6.2.14".into()),
                policy: Some("allkeys-lru".into())
            }
        );
        assert!(!at_least("6.2.14", MIN_VERSION));
        assert!(at_least("7.0.0", MIN_VERSION));
        assert!(at_least("7.2.4", MIN_VERSION));
        assert!(at_least("10.0.1", MIN_VERSION));
        assert!(!at_least("garbage", MIN_VERSION));
    }
}
