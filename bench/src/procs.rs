//! The processes a measurement runs against — a private `redis-server`, the Slack emulator,
//! `sfrelay serve` and the baseline — each on a free loopback port and killed when dropped,
//! so an aborted run leaves nothing behind. Mirrors `tests/it/support/mod.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tempfile::TempDir;

use crate::envelope::Envelopes;
use crate::http;

/// Sequence numbers of warm-up events, far from any measured event's.
pub const WARM_UP_SEQ: u64 = 1 << 40;

/// The org every bench event belongs to (its API key is [`http::API_KEY`]).
pub const ORG_ID: &str = "00D5g000004ABCdEAO";
/// The bot token the emulator expects and sfrelay sends.
pub const SLACK_TOKEN: &str = "xoxb-bench-token";

/// Where the binaries and shared files live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub repo: PathBuf,
    pub sfrelay: PathBuf,
    pub emulator: PathBuf,
    /// This binary, which also serves the baseline (`sfrelay-bench baseline`).
    pub me: PathBuf,
}

impl Paths {
    /// `bin_dir` is relative to `repo`; without it the binaries are looked for beside this one,
    /// where the workspace's build of the same profile put them.
    pub fn new(repo: &Path, bin_dir: Option<&Path>) -> anyhow::Result<Paths> {
        let repo = repo
            .canonicalize()
            .with_context(|| format!("repository {}", repo.display()))?;
        let me = std::env::current_exe().context("locating sfrelay-bench")?;
        let dir = match bin_dir {
            Some(dir) => repo.join(dir),
            None => me
                .parent()
                .context("sfrelay-bench's own directory")?
                .to_path_buf(),
        };
        let paths = Paths {
            sfrelay: dir.join("sfrelay"),
            emulator: dir.join("sfrelay-emulator"),
            me,
            repo,
        };
        for bin in [&paths.sfrelay, &paths.emulator] {
            if !bin.is_file() {
                bail!(
                    "{} is missing: run `cargo build --release --bins -p sfrelay -p sfrelay-emulator` (without --release for target/debug) in the repository first",
                    bin.display()
                );
            }
        }
        Ok(paths)
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process, SIGKILLed and reaped on drop.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn spawn(command: &mut Command, what: &str) -> anyhow::Result<Proc> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        Ok(Proc { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts an `sfrelay-emulator` subcommand and reads the address from the one line it
    /// prints once it listens (`listening on http://ADDR`).
    pub fn spawn_emulator(command: &mut Command) -> anyhow::Result<(Proc, SocketAddr)> {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut proc = Proc::spawn(command, "sfrelay-emulator")?;
        let stdout = proc.child.stdout.take().context("emulator stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .with_context(|| format!("unexpected emulator output {line:?}"))?
            .parse()?;
        Ok((proc, addr))
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private, non-persistent `redis-server`: the bench measures sfrelay, not disk.
pub struct Redis {
    pub url: String,
    pub port: u16,
    pub proc: Proc,
    _dir: TempDir,
}

impl Redis {
    pub fn start() -> anyhow::Result<Redis> {
        Redis::spawn(&[])
    }

    /// A primary and one replica of it (`--replicaof`), returned once the primary's
    /// `INFO replication` lists the replica as online: only then does `WAIT 1` count it.
    pub fn start_with_replica() -> anyhow::Result<(Redis, Redis)> {
        // The primary would otherwise wait 5 s (Redis 7's default) for more replicas before
        // starting the first (diskless) sync.
        let primary = Redis::spawn(&["--repl-diskless-sync-delay", "0"])?;
        let replica = Redis::spawn(&["--replicaof", "127.0.0.1", &primary.port.to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = info_replication(primary.port).unwrap_or_default();
            if replica_online(&info, replica.port) {
                return Ok((primary, replica));
            }
            if Instant::now() > deadline {
                bail!(
                    "the replica on port {} was not online within 10 s; primary's INFO replication:\n{info}",
                    replica.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis-server` on a free port with the bench's flags plus `extra`.
    fn spawn(extra: &[&str]) -> anyhow::Result<Redis> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let proc = Proc::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(extra)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "redis-server (apt-get install -y redis-server)",
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            if Instant::now() > deadline {
                bail!("redis-server did not answer PING within 10 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Redis {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            proc,
            _dir: dir,
        })
    }
}

/// Whether a primary's `INFO replication` lists the replica listening on `port` as online
/// (`slave0:ip=127.0.0.1,port=6380,state=online,offset=…`).
fn replica_online(info: &str, port: u16) -> bool {
    info.lines().any(|line| {
        line.starts_with("slave")
            && line.split_once(':').is_some_and(|(_, fields)| {
                let mut fields = fields.split(',');
                let port = format!("port={port}");
                fields.clone().any(|f| f == port) && fields.any(|f| f == "state=online")
            })
    })
}

/// `INFO replication` (a RESP bulk string), or `None` when Redis does not answer it.
fn info_replication(port: u16) -> Option<String> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    (&s).write_all(b"INFO replication\r\n").ok()?;
    let mut reader = BufReader::new(&s);
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let len: usize = header.trim_end().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The bench channels: `C0BENCH0000` … named `bench-0000` …
pub fn channel_id(i: usize) -> String {
    format!("C0BENCH{i:04}")
}

/// Slack's per-channel ceiling as the emulator enforces it by default (1 msg/s, burst 3).
pub const SLACK_RATE: f64 = 1.0;
pub const SLACK_BURST: u32 = 3;
/// sfrelay's own per-channel limiter defaults (`[slack] channel_messages_per_sec`, `channel_burst`).
pub const SFRELAY_RATE: f64 = 1.0;
pub const SFRELAY_BURST: u32 = 3;

/// The Slack emulator, seeded with `channels` bench channels.
pub struct Emulator {
    pub addr: SocketAddr,
    _proc: Proc,
}

impl Emulator {
    /// `unlimited` lifts the per-channel ceiling far above anything the bench sends, for
    /// measuring sfrelay's own throughput rather than Slack's.
    pub fn start(paths: &Paths, channels: usize, unlimited: bool) -> anyhow::Result<Emulator> {
        let mut command = Command::new(&paths.emulator);
        command.args(["slack", "--listen", "127.0.0.1:0", "--token", SLACK_TOKEN]);
        for i in 0..channels {
            command
                .arg("--channel")
                .arg(format!("{}:bench-{i:04}", channel_id(i)));
        }
        if unlimited {
            command.args(["--rate-per-channel", "1000", "--burst", "1000"]);
        } else {
            command.args(["--rate-per-channel", &SLACK_RATE.to_string()]);
            command.args(["--burst", &SLACK_BURST.to_string()]);
        }
        let (proc, addr) = Proc::spawn_emulator(&mut command)?;
        Ok(Emulator { addr, _proc: proc })
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// `GET /_emulator/stats`.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        http::get_json(self.addr, "/_emulator/stats").await
    }

    /// `GET /_emulator/messages`: every stored message, in post order.
    pub async fn messages(&self) -> anyhow::Result<Vec<Value>> {
        match http::get_json(self.addr, "/_emulator/messages").await? {
            Value::Array(items) => Ok(items),
            other => bail!("messages: unexpected {other}"),
        }
    }

    /// Polls the `posts` counter until it reaches `n` or `deadline` passes; returns the count.
    pub async fn wait_posts(&self, n: u64, deadline: Instant) -> anyhow::Result<u64> {
        self.wait_count("posts", n, deadline).await
    }

    /// Polls the counter `name` of `/_emulator/stats` (`posts`, `updates`…) until it reaches
    /// `n` or `deadline` passes; returns the count.
    pub async fn wait_count(&self, name: &str, n: u64, deadline: Instant) -> anyhow::Result<u64> {
        loop {
            let count = self.stats().await?[name].as_u64().unwrap_or(0);
            if count >= n || Instant::now() >= deadline {
                return Ok(count);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /_emulator/requests`: every API call, in arrival order, with its `at_ms`.
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        match http::get_json(self.addr, "/_emulator/requests").await? {
            Value::Array(items) => Ok(items),
            other => bail!("requests: unexpected {other}"),
        }
    }
}

/// A route that posts each Closed Won carrying `Bench_Channel__c` to that channel (one action
/// per channel, each with its own condition). Events without the field fire no route, so the
/// ingest measurements cost the workers only the routing decision.
pub fn bench_route(channels: usize) -> String {
    let mut route = String::from(
        "description = \"bench: Closed Won to the channel named by record.Bench_Channel__c\"\n\
         object = \"Opportunity\"\n\
         when = 'became(\"StageName\", \"Closed Won\") and record.Bench_Channel__c'\n",
    );
    for i in 0..channels {
        let id = channel_id(i);
        route.push_str(&format!(
            "\n[[actions]]\ntype = \"post\"\nchannel = \"{id}\"\ntemplate = \"closed-won-briefing\"\n\
             when = 'record.Bench_Channel__c == \"{id}\"'\n"
        ));
    }
    route
}

/// How to start one `sfrelay serve`.
pub struct SfrelaySpec<'a> {
    pub paths: &'a Paths,
    pub routes_dir: &'a Path,
    pub redis_url: &'a str,
    pub slack_api: &'a str,
    /// Raise sfrelay's per-channel limiter to its maximum (scaling runs).
    pub unlimited: bool,
    /// `[queue] min_replicas_acked`, written only when set (sfrelay's default is 0).
    pub min_replicas_acked: Option<u32>,
    /// The org's `[orgs.salesforce]` section (API access); without it, an instance URL only.
    /// It ends the config file, so it may carry the org's `[[orgs.subscribe]]` entries and
    /// top-level tables after them.
    pub salesforce_section: Option<&'a str>,
    /// Templates of the bench's own instead of the repository's `templates/`.
    pub templates_dir: Option<&'a Path>,
    /// More environment variables (the Slack signing secret).
    pub env: &'a [(&'a str, &'a str)],
}

/// A running `sfrelay serve`, with how long it took from spawn to `/readyz` 200.
pub struct Sfrelay {
    pub addr: SocketAddr,
    pub proc: Proc,
    pub startup: Duration,
    _dir: TempDir,
}

impl Sfrelay {
    pub async fn start(spec: &SfrelaySpec<'_>) -> anyhow::Result<Sfrelay> {
        let dir = tempfile::tempdir()?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let replicas = spec
            .min_replicas_acked
            .map_or(String::new(), |n| format!("min_replicas_acked = {n}\n"));
        let limiter = if spec.unlimited {
            "[slack]\nchannel_messages_per_sec = 100.0\nchannel_burst = 1000\n"
        } else {
            ""
        };
        // Defaults everywhere except what the bench needs: its routes, one org with an API
        // key, and a high-water mark no run reaches (a 503 would measure the queue, not ingest).
        let toml = format!(
            r#"routes_dir = "{routes}"
templates_dir = "{templates}"
fixtures_dir = "{fixtures}"
time_zone = "UTC"

[queue]
namespace = "bench"
high_water_mark = 100000000
{replicas}
{limiter}
[[orgs]]
id = "{ORG_ID}"
name = "bench"
api_key_env = "BENCH_API_KEY"

{salesforce}
"#,
            salesforce = spec.salesforce_section.unwrap_or(
                "[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n"
            ),
            routes = spec.routes_dir.display(),
            templates = spec
                .templates_dir
                .map_or_else(|| spec.paths.repo.join("templates"), Path::to_path_buf)
                .display(),
            fixtures = spec.paths.repo.join("tests/fixtures").display(),
        );
        let config = dir.path().join("sfrelay.toml");
        std::fs::write(&config, toml)?;
        let log = std::fs::File::create(dir.path().join("sfrelay.log"))?;
        let started = Instant::now();
        let mut proc = Proc::spawn(
            Command::new(&spec.paths.sfrelay)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("SFRELAY_LISTEN", addr.to_string())
                .env("SFRELAY_LOG", "info")
                .env("SFRELAY_LOG_FORMAT", "json")
                .env("BENCH_API_KEY", http::API_KEY)
                .env("REDIS_URL", spec.redis_url)
                .env("SLACK_API_BASE", spec.slack_api)
                .env("SLACK_BOT_TOKEN", SLACK_TOKEN)
                .envs(spec.env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log),
            "sfrelay",
        )?;
        let deadline = started + Duration::from_secs(15);
        loop {
            if let Ok((200, _)) = http::get(addr, "/readyz").await {
                let startup = started.elapsed();
                return Ok(Sfrelay {
                    addr,
                    proc,
                    startup,
                    _dir: dir,
                });
            }
            if proc.exited() || Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(dir.path().join("sfrelay.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                bail!("sfrelay did not become ready; last log lines (newest first):\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// The baseline server (`sfrelay-bench baseline`), in its own process like sfrelay.
pub struct Baseline {
    pub addr: SocketAddr,
    pub proc: Proc,
}

impl Baseline {
    pub async fn start(paths: &Paths, redis_url: &str) -> anyhow::Result<Baseline> {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut proc = Proc::spawn(
            Command::new(&paths.me)
                .args([
                    "baseline",
                    "--listen",
                    &addr.to_string(),
                    "--redis",
                    redis_url,
                ])
                .stdout(Stdio::null()),
            "the baseline",
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, _)) = http::get(addr, "/healthz").await {
                return Ok(Baseline { addr, proc });
            }
            if proc.exited() || Instant::now() > deadline {
                bail!("the baseline did not start");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Redis, the emulator and `relays` sfrelay processes sharing one queue: what most
/// measurements start afresh for every run, so no run inherits another's queue or limits.
pub struct Stack {
    pub redis: Redis,
    pub slack: Emulator,
    pub relays: Vec<Sfrelay>,
    pub routes: TempDir,
    /// Passed to every sfrelay this stack starts ([`SfrelaySpec::min_replicas_acked`]).
    min_replicas_acked: Option<u32>,
}

impl Stack {
    pub async fn start(
        paths: &Paths,
        channels: usize,
        relays: usize,
        unlimited: bool,
    ) -> anyhow::Result<Stack> {
        Stack::start_on(Redis::start()?, paths, channels, relays, unlimited, None).await
    }

    /// The same on a Redis of the caller's (a primary with a replica), every sfrelay with
    /// `min_replicas_acked` set when given.
    pub async fn start_on(
        redis: Redis,
        paths: &Paths,
        channels: usize,
        relays: usize,
        unlimited: bool,
        min_replicas_acked: Option<u32>,
    ) -> anyhow::Result<Stack> {
        let slack = Emulator::start(paths, channels, unlimited)?;
        let routes = tempfile::tempdir()?;
        std::fs::write(routes.path().join("bench.toml"), bench_route(channels))?;
        let mut stack = Stack {
            redis,
            slack,
            relays: Vec::new(),
            routes,
            min_replicas_acked,
        };
        for _ in 0..relays {
            let relay = stack.start_relay(paths, unlimited).await?;
            stack.relays.push(relay);
        }
        Ok(stack)
    }

    /// Starts one more sfrelay on this stack's Redis and emulator (not added to `relays`).
    pub async fn start_relay(&self, paths: &Paths, unlimited: bool) -> anyhow::Result<Sfrelay> {
        let api = self.slack.api_base();
        Sfrelay::start(&SfrelaySpec {
            paths,
            routes_dir: self.routes.path(),
            redis_url: &self.redis.url,
            slack_api: &api,
            unlimited,
            min_replicas_acked: self.min_replicas_acked,
            salesforce_section: None,
            templates_dir: None,
            env: &[],
        })
        .await
    }

    /// Sends each sfrelay one event (to channel `i`) and waits until all are posted. The
    /// briefing template mentions three people, looked up by e-mail once per process under
    /// Slack's method tier and then cached; measuring from cold would charge that one-off
    /// cost to the first few hundred messages. Returns how many messages it posted.
    pub async fn warm_up(&self, envelopes: &Envelopes) -> anyhow::Result<u64> {
        for (i, relay) in self.relays.iter().enumerate() {
            let body = envelopes.single(WARM_UP_SEQ + i as u64, Some(&channel_id(i)));
            let status = http::Conn::open(relay.addr)
                .await?
                .post_events(body)
                .await?;
            anyhow::ensure!(status == 202, "warm-up event answered {status}");
        }
        let n = self.relays.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        anyhow::ensure!(
            self.slack.wait_posts(n, deadline).await? >= n,
            "the warm-up events never reached the emulator"
        );
        Ok(n)
    }

    pub fn relay_addrs(&self) -> Vec<SocketAddr> {
        self.relays.iter().map(|r| r.addr).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_counts_only_once_online_on_its_own_port() {
        let info = |state: &str| {
            format!(
                "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                 slave0:ip=127.0.0.1,port=6380,state={state},offset=14,lag=0\r\n"
            )
        };
        assert!(replica_online(&info("online"), 6380));
        assert!(!replica_online(&info("wait_bgsave"), 6380));
        assert!(!replica_online(&info("online"), 638));
        assert!(!replica_online(
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n",
            6380
        ));
    }
}
