//! Connections to Redis that never hang: every request has a deadline, sockets keep TCP
//! keepalive on, and a link that timed out or broke is dropped and rebuilt on the next request
//! (a connection that silently stopped forwarding answers nothing, ever, so waiting on it is not
//! an option). One connection type, [`Conn`], serves the three deployments (a single server, a
//! Redis Cluster, a primary found through Sentinel), so the queue and store code never asks
//! which one it talks to.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::Mutex;

use crate::config::RedisMode;

/// How long opening a link may take (TCP connect plus the handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Keepalive probes start after this much silence, so a peer that vanished without a FIN or
/// RST is noticed by the kernel even while nothing is sent.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 3;

/// Why a connection could not be described or opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("REDIS_URL: {0}")]
    Url(String),
    #[error("{0}")]
    Redis(#[from] RedisError),
    #[error("connecting to Redis timed out after {0:?}")]
    Timeout(Duration),
    #[error("no sentinel knows a primary named {master:?} ({detail})")]
    NoPrimary { master: String, detail: String },
}

fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    // Unacknowledged writes fail after this long instead of the kernel's ~15 minutes.
    #[cfg(target_os = "linux")]
    let settings =
        settings.set_user_timeout(KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES);
    settings
}

fn with_tcp_settings(info: ConnectionInfo) -> ConnectionInfo {
    info.set_tcp_settings(tcp_settings())
}

/// Where Redis is, as `REDIS_URL` and `[queue] redis` describe it.
#[derive(Clone)]
pub enum Endpoint {
    Standalone(Client),
    Cluster(ClusterClient),
    /// The sentinels to ask, the primary's name, and the URL settings (password, db, TLS) the
    /// primary is reached with.
    Sentinel {
        sentinels: Vec<Client>,
        master: String,
        template: ConnectionInfo,
    },
}

impl Endpoint {
    /// Parses `REDIS_URL`: one URL, or (cluster, sentinel) a comma-separated list whose later
    /// entries may omit the scheme and credentials (`redis://:pw@a:6379,b:6379`).
    pub fn parse(url: &str, mode: &RedisMode) -> Result<Endpoint, ConnectError> {
        let urls = split_urls(url)?;
        let infos = urls
            .iter()
            .map(|u| {
                u.as_str()
                    .into_connection_info()
                    .map(with_tcp_settings)
                    .map_err(|e| ConnectError::Url(format!("{}: {e}", redact(u))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match mode {
            RedisMode::Standalone => {
                let [info] = <[ConnectionInfo; 1]>::try_from(infos).map_err(|infos| {
                    ConnectError::Url(format!(
                        "standalone Redis takes one URL, found {}; set [queue] redis = \"cluster\" \
                         or \"sentinel\" for a list",
                        infos.len()
                    ))
                })?;
                Ok(Endpoint::Standalone(Client::open(info)?))
            }
            RedisMode::Cluster => {
                let client = ClusterClient::builder(infos)
                    .tcp_settings(tcp_settings())
                    .connection_timeout(CONNECT_TIMEOUT)
                    // Deadlines are ours (per request); the client must not add its own.
                    .response_timeout(Duration::from_secs(3600))
                    .retries(3)
                    .build()?;
                Ok(Endpoint::Cluster(client))
            }
            RedisMode::Sentinel { master } => {
                let template = infos[0].clone();
                let sentinels = infos
                    .into_iter()
                    .map(|info| {
                        // Sentinels rarely share the data nodes' password or database.
                        let addr = info.addr().clone();
                        Client::open(with_tcp_settings(addr.into_connection_info()?))
                    })
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok(Endpoint::Sentinel {
                    sentinels,
                    master: master.clone(),
                    template,
                })
            }
        }
    }

    /// Opens a fresh link (for the sentinel mode: to the primary the sentinels name now).
    pub async fn open(&self) -> Result<Link, ConnectError> {
        let opening = async {
            match self {
                Endpoint::Standalone(client) => Ok(Link::Single(single(client).await?)),
                Endpoint::Cluster(client) => Ok(Link::Cluster(Box::new(
                    client.get_async_connection().await?,
                ))),
                Endpoint::Sentinel {
                    sentinels,
                    master,
                    template,
                } => Ok(Link::Single(primary(sentinels, master, template).await?)),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT * 3, opening)
            .await
            .map_err(|_| ConnectError::Timeout(CONNECT_TIMEOUT * 3))?
    }
}

/// Splits a comma-separated list; entries after the first inherit its scheme and credentials.
fn split_urls(url: &str) -> Result<Vec<String>, ConnectError> {
    let parts: Vec<&str> = url.split(',').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConnectError::Url("an empty entry in the list".into()));
    }
    let first = parts[0];
    let (scheme, rest) = first
        .split_once("://")
        .ok_or_else(|| ConnectError::Url(format!("{} has no scheme (redis://…)", redact(first))))?;
    let credentials = rest.rsplit_once('@').map(|(c, _)| c);
    Ok(parts
        .iter()
        .map(|part| {
            if part.contains("://") {
                part.to_string()
            } else {
                match credentials {
                    Some(c) => format!("{scheme}://{c}@{part}"),
                    None => format!("{scheme}://{part}"),
                }
            }
        })
        .collect())
}

/// A URL with any password hidden, for error messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://[redacted]@{host}"),
        _ => url.to_string(),
    }
}

async fn single(client: &Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Asks each sentinel in turn for the primary's address, then connects there and checks it
/// really is a primary (a demoted one still answers, read-only).
async fn primary(
    sentinels: &[Client],
    master: &str,
    template: &ConnectionInfo,
) -> Result<MultiplexedConnection, ConnectError> {
    let mut detail = String::from("no sentinel answered");
    for sentinel in sentinels {
        let asked = async {
            let mut conn = single(sentinel).await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        let addr = match tokio::time::timeout(CONNECT_TIMEOUT, asked).await {
            Ok(Ok(Some(addr))) => addr,
            Ok(Ok(None)) => {
                detail = format!("{} does not know it", sentinel.get_connection_info().addr());
                continue;
            }
            Ok(Err(e)) => {
                detail = format!("{}: {e}", sentinel.get_connection_info().addr());
                continue;
            }
            Err(_) => {
                detail = format!("{}: timed out", sentinel.get_connection_info().addr());
                continue;
            }
        };
        let addr = match template.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: addr.0,
                port: addr.1,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(addr.0, addr.1),
        };
        let info = template.clone().set_addr(addr.clone());
        let mut conn = single(&Client::open(info)?).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
        if matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
            return Ok(conn);
        }
        detail = format!("{addr} is not (yet) a primary");
    }
    Err(ConnectError::NoPrimary {
        master: master.to_string(),
        detail,
    })
}

/// One open link: a multiplexed connection to one server, or a cluster connection that
/// follows `MOVED` and `ASK` itself.
#[derive(Clone)]
pub enum Link {
    Single(MultiplexedConnection),
    Cluster(Box<ClusterConnection>),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether an error means this link is no good any more: it broke, it timed out (it may have
/// silently stopped forwarding), or it reaches a server that is no longer the primary.
fn link_is_spent(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
        || e.code() == Some("MASTERDOWN")
}

/// The current link, opened on first use and replaced after it is spent.
struct Slot {
    endpoint: Endpoint,
    current: Mutex<Option<(u64, Link)>>,
    generation: std::sync::atomic::AtomicU64,
}

/// A self-healing connection. Clones share one link; every request runs under `deadline`, and a
/// request that fails with a spent link (or runs out of time) drops that link so the next one
/// opens another. The caller sees an error, never a hang.
#[derive(Clone)]
pub struct Conn {
    slot: Arc<Slot>,
    deadline: Duration,
}

impl Conn {
    pub fn new(endpoint: Endpoint, deadline: Duration) -> Conn {
        Conn {
            slot: Arc::new(Slot {
                endpoint,
                current: Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
            deadline,
        }
    }

    /// The same link with another deadline (a blocking command waits longer than others).
    pub fn with_deadline(&self, deadline: Duration) -> Conn {
        Conn {
            slot: self.slot.clone(),
            deadline,
        }
    }

    /// The link now in use (opened if there is none) and its generation.
    pub async fn link(&self) -> RedisResult<(u64, Link)> {
        let mut current = self.slot.current.lock().await;
        if let Some((generation, link)) = current.as_ref() {
            return Ok((*generation, link.clone()));
        }
        let link = self.slot.endpoint.open().await.map_err(into_redis)?;
        let generation = self
            .slot
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *current = Some((generation, link.clone()));
        Ok((generation, link))
    }

    /// Drops the link of `generation` (if it is still the current one).
    pub async fn discard(&self, generation: u64) {
        let mut current = self.slot.current.lock().await;
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            *current = None;
        }
    }

    /// Runs `request` on `link` under the deadline; a spent link is discarded.
    pub async fn guarded<T>(
        &self,
        generation: u64,
        request: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let result = match tokio::time::timeout(self.deadline, request).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from Redis within {:?}", self.deadline),
            ))),
        };
        if let Err(e) = &result
            && link_is_spent(e)
        {
            self.discard(generation).await;
        }
        result
    }
}

fn into_redis(e: ConnectError) -> RedisError {
    match e {
        ConnectError::Redis(e) => e,
        other => RedisError::from(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            other.to_string(),
        )),
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut link) = self.link().await?;
            self.guarded(generation, link.req_packed_command(cmd)).await
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut link) = self.link().await?;
            self.guarded(
                generation,
                link.req_packed_commands(pipeline, offset, count),
            )
            .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_inherit_scheme_and_credentials() {
        assert_eq!(
            split_urls("redis://:pw@a:7000, b:7001,rediss://c:7002").unwrap(),
            vec![
                "redis://:pw@a:7000",
                "redis://:pw@b:7001",
                "rediss://c:7002"
            ]
        );
        assert!(split_urls("a:7000").is_err());
        assert!(split_urls("redis://a:7000,,b:1").is_err());
    }

    #[test]
    fn standalone_refuses_a_list_and_hides_passwords() {
        let Err(e) = Endpoint::parse("redis://:secret@a:1,b:2", &RedisMode::Standalone) else {
            panic!("a list is not one server");
        };
        assert!(e.to_string().contains("one URL, found 2"), "{e}");
        assert_eq!(redact("redis://:secret@a:1"), "redis://[redacted]@a:1");
    }
}
