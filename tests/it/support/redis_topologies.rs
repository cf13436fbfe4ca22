//! Redis set-ups beyond one plain server: a fake server that answers `INFO` with what a test
//! wants, a `redis-server` with extra flags, and `sfrelay serve` run until it either exits or
//! serves (to see start-up refusals). Loopback only.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{API_KEY, ORG, free_port};

/// A tiny RESP server: `INFO` answers `info`, `PING` answers `PONG`, anything else `+OK`.
pub struct FakeRedis {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRedis {
    pub async fn start(info: &str) -> FakeRedis {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake redis");
        let port = listener.local_addr().expect("addr").port();
        let info = info.replace('\n', "\r\n");
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let info = info.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    while let Some(command) = read_command(&mut read).await {
                        let reply = match command.first().map(|c| c.to_ascii_uppercase()) {
                            Some(c) if c == "INFO" => format!("${}\r\n{info}\r\n", info.len()),
                            Some(c) if c == "PING" => "+PONG\r\n".to_string(),
                            _ => "+OK\r\n".to_string(),
                        };
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeRedis { port, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeRedis {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one RESP array of bulk strings (what clients send).
async fn read_command<R: AsyncBufReadExt + Unpin>(read: &mut R) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0u8; len + 2];
        read.read_exact(&mut buf).await.ok()?;
        buf.truncate(len);
        parts.push(String::from_utf8_lossy(&buf).into_owned());
    }
    Some(parts)
}

/// A `redis-server` on `port` in `dir` with extra flags; killed when dropped.
pub struct Server {
    pub port: u16,
    child: Child,
}

impl Server {
    pub fn start(port: u16, dir: &Path, extra: &[&str]) -> Server {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        wait_for_port(port);
        Server { port, child }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// kill -9, as a crashed machine.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `redis-cli -p port args…`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// How a `sfrelay serve` started by [`serve_until_up_or_exit`] ended.
pub struct Start {
    pub exited: bool,
    pub success: bool,
    pub log: String,
}

/// Runs `sfrelay serve` against `redis_url`, listening on `host`, until it exits or answers
/// `/healthz` (then it is killed).
pub async fn serve_until_up_or_exit(redis_url: &str, host: &str) -> Start {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.path().join("sfrelay.toml");
    std::fs::write(
        &config,
        format!(
            "routes_dir = \"{}\"\ntemplates_dir = \"{}\"\n[[orgs]]\nid = \"{ORG}\"\napi_key_env = \"TEST_API_KEY\"\n[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n",
            root.join("routes").display(),
            root.join("templates").display()
        ),
    )
    .expect("config");
    let log = dir.path().join("log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfrelay"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SFRELAY_LISTEN", format!("{host}:{port}"))
        .env("REDIS_URL", redis_url)
        .env("TEST_API_KEY", API_KEY)
        .env("SLACK_BOT_TOKEN", "xoxb-unused")
        .env(
            "SLACK_API_BASE",
            format!("http://127.0.0.1:{}/api", free_port()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn sfrelay");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Start {
                exited: true,
                success: status.success(),
                log: read_log(),
            };
        }
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            let _ = child.kill();
            let _ = child.wait();
            return Start {
                exited: false,
                success: true,
                log: read_log(),
            };
        }
        assert!(
            Instant::now() < deadline,
            "sfrelay neither served nor exited:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A primary, two replicas and one sentinel watching them (quorum 1, half-second
/// `down-after-milliseconds`), so killing the primary promotes a replica within seconds and
/// the new primary still has a replica.
pub struct SentinelSet {
    pub primary: Server,
    pub replicas: Vec<Server>,
    pub sentinel: Server,
    _dir: tempfile::TempDir,
}

pub const SENTINEL_MASTER: &str = "sfrelay-primary";

impl SentinelSet {
    pub fn start() -> SentinelSet {
        let dir = tempfile::tempdir().expect("temp dir");
        let sub = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(&path).expect("dir");
            path
        };
        let primary = Server::start(free_port(), &sub("primary"), &[]);
        let primary_port = primary.port.to_string();
        let replicas: Vec<Server> = (0..2)
            .map(|n| {
                Server::start(
                    free_port(),
                    &sub(&format!("replica{n}")),
                    &["--replicaof", "127.0.0.1", &primary_port],
                )
            })
            .collect();
        for replica in &replicas {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up") {
                assert!(Instant::now() < deadline, "replica did not sync");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let sentinel_dir = sub("sentinel");
        let conf = sentinel_dir.join("sentinel.conf");
        let sentinel_port = free_port();
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 1\nsentinel down-after-milliseconds {SENTINEL_MASTER} 500\nsentinel failover-timeout {SENTINEL_MASTER} 3000\nsentinel parallel-syncs {SENTINEL_MASTER} 2\n",
                dir = sentinel_dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        wait_for_port(sentinel_port);
        SentinelSet {
            primary,
            replicas,
            sentinel: Server {
                port: sentinel_port,
                child,
            },
            _dir: dir,
        }
    }

    /// The port the sentinel names as primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = cli(
            self.sentinel.port,
            &["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }
}

/// Three cluster-enabled masters joined by `redis-cli --cluster create` (no replicas).
pub struct ClusterSet {
    pub nodes: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl ClusterSet {
    pub fn start() -> ClusterSet {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Server> = (0..3)
            .map(|n| {
                let path = dir.path().join(format!("node{n}"));
                std::fs::create_dir_all(&path).expect("dir");
                Server::start(
                    free_port(),
                    &path,
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        for node in &nodes {
            while !cli(node.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        ClusterSet { nodes, _dir: dir }
    }

    /// The port of the node owning `key`'s slot (the others answer MOVED).
    pub fn owner(&self, key: &str) -> u16 {
        self.nodes
            .iter()
            .map(|n| n.port)
            .find(|port| !cli(*port, &["GET", key]).contains("MOVED"))
            .expect("some node owns the slot")
    }
}
