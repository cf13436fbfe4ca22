//! Test harness: a real `redis-server` on a free port and the real `sfrelay` binary, each a
//! child process killed when its handle drops, and the Slack and Salesforce emulators, served
//! in this process and stopped when their handle drops. Loopback only.
#![allow(dead_code)]

pub mod actions;
pub mod blackhole;
pub mod browser;
pub mod interact;
pub mod listening;
pub mod redis_topologies;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sfrelay_emulator::Running;

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A private `redis-server`, persisted with AOF to its own directory so a restart keeps data.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut redis = Redis {
            port: free_port(),
            dir,
            child: None,
        };
        // The free port may be taken by someone else before redis-server binds it: then it
        // exits at once, and another port is tried.
        for _ in 0..5 {
            if redis.launch() {
                return redis;
            }
            redis.port = free_port();
        }
        panic!("redis-server did not start on any of five free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and directory.
    pub fn restart(&mut self) {
        assert!(
            self.launch(),
            "redis-server did not start on port {}",
            self.port
        );
    }

    /// Starts redis-server and waits until it answers; false when it exited (its port taken).
    fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "redis is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self.ping() && self.answers_as_own() {
                return true;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server on the port is this child (not another test's Redis that got there
    /// first), by the process id it reports.
    fn answers_as_own(&self) -> bool {
        use std::io::{Read, Write};
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return false;
        };
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        if s.write_all(b"INFO server\r\n").is_err() {
            return false;
        }
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(2).filter(|w| w == b"\r\n").count() > 3
                && String::from_utf8_lossy(&seen).contains("process_id:")
                && seen.ends_with(b"\r\n\r\n")
            {
                break;
            }
        }
        String::from_utf8_lossy(&seen).contains(&format!("process_id:{pid}\r\n"))
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Stops the server (SIGTERM: it flushes its AOF) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The Slack Web API emulator (`sfrelay-emulator slack`), in this process.
pub struct Slack {
    pub url: String,
    /// Stops the emulator when dropped.
    _emulator: Running,
    http: reqwest::Client,
}

pub const SLACK_TOKEN: &str = "xoxb-test-token";

impl Slack {
    pub fn start(extra: &[&str]) -> Slack {
        let args = ["--listen", "127.0.0.1:0", "--token", SLACK_TOKEN];
        let emulator = sfrelay_emulator::spawn_slack(args.iter().chain(extra))
            .expect("start the Slack emulator");
        Slack {
            url: emulator.url(),
            _emulator: emulator,
            http: reqwest::Client::new(),
        }
    }

    pub fn api_base(&self) -> String {
        format!("{}/api", self.url)
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("emulator JSON")
    }

    /// Any control endpoint, decoded.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        serde_json::from_value(self.get(path).await).expect("emulator JSON of the expected shape")
    }

    /// Every message posted, in order.
    pub async fn messages(&self) -> Vec<Value> {
        match self.get("/_emulator/messages").await {
            Value::Array(items) => items,
            other => panic!("messages: {other}"),
        }
    }

    pub async fn requests(&self) -> Vec<Value> {
        match self.get("/_emulator/requests").await {
            Value::Array(items) => items,
            other => panic!("requests: {other}"),
        }
    }

    pub async fn stats(&self) -> Value {
        self.get("/_emulator/stats").await
    }

    pub async fn set_faults(&self, faults: Value) {
        let status = self
            .http
            .post(format!("{}/_emulator/faults", self.url))
            .json(&faults)
            .send()
            .await
            .expect("emulator answers")
            .status();
        assert!(status.is_success(), "set faults: {status}");
    }

    /// Waits until exactly `n` messages are posted (and returns them).
    pub async fn wait_for_messages(&self, n: usize) -> Vec<Value> {
        eventually(
            &format!("{n} Slack message(s)"),
            Duration::from_secs(20),
            || async {
                let messages = self.messages().await;
                assert!(
                    messages.len() <= n,
                    "more messages than expected: {messages:#?}"
                );
                (messages.len() == n).then_some(messages)
            },
        )
        .await
    }
}

/// The Salesforce emulator (`sfrelay-emulator salesforce`) in this process, trusting the test
/// RSA key.
pub struct Salesforce {
    pub url: String,
    /// Stops the emulator when dropped.
    _emulator: Running,
    http: reqwest::Client,
}

pub const SF_CLIENT_ID: &str = "3MVG9test.client";

impl Salesforce {
    /// Starts the emulator as [`ORG`] (the first org of every test's configuration) with these
    /// records (`{"Opportunity": [...]}`).
    pub fn start(records: &serde_json::Value) -> Salesforce {
        Salesforce::start_with(records, &[])
    }

    /// Like `start`, with more emulator arguments (e.g. `--rotate-refresh-tokens`).
    pub fn start_with(records: &serde_json::Value, extra: &[&str]) -> Salesforce {
        Salesforce::start_as(ORG, records, extra)
    }

    /// Like `start_with`, playing `org` (its Id is in the identity URLs the emulator hands out,
    /// which sfrelay checks against the org a sign-in link was made for).
    pub fn start_as(org: &str, records: &serde_json::Value, extra: &[&str]) -> Salesforce {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data.json");
        std::fs::write(&data, records.to_string()).expect("write data");
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--client-id",
            SF_CLIENT_ID,
            "--org-id",
            org,
        ];
        args.extend_from_slice(extra);
        let files = [
            OsString::from("--public-key"),
            fixture_path("keys/rsa-public.pem").into(),
            "--data".into(),
            data.into(),
        ];
        let emulator =
            sfrelay_emulator::spawn_salesforce(args.into_iter().map(OsString::from).chain(files))
                .expect("start the Salesforce emulator");
        Salesforce {
            url: emulator.url(),
            _emulator: emulator,
            http: reqwest::Client::new(),
        }
    }

    /// The `[orgs.salesforce]` section that points an org at this emulator.
    pub fn org_section(&self) -> String {
        format!(
            "[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\nlogin_url = \"{}\"\nclient_id = \"{SF_CLIENT_ID}\"\nusername = \"integration@acme.example\"\nprivate_key_file = \"{}\"\n",
            self.url,
            fixture_path("keys/rsa-private.pem").display()
        )
    }

    pub async fn control(&self, path: &str, body: serde_json::Value) {
        let status = self
            .http
            .post(format!("{}/_emulator/{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("emulator answers")
            .status();
        assert!(status.is_success(), "{path}: {status}");
    }

    /// Every API call received.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        self.http
            .get(format!("{}/_emulator/requests", self.url))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("emulator JSON")
    }
}

/// The org every test uses, and its credentials.
pub const ORG: &str = "00D5g000004ABCdEAO";
pub const OTHER_ORG: &str = "00D5g000009XYZaEAO";
pub const API_KEY: &str = "test-api-key-0123456789abcdef";
pub const OTHER_API_KEY: &str = "other-org-api-key-0123456789";
pub const OM_TOKEN: &str = "om-token-0123456789abcdef0123456789";
pub const JWT_SECRET: &str = "test-hs256-secret-0123456789abcdef0123456789";

/// How to start sfrelay for one test.
pub struct Options {
    pub redis: Option<String>,
    pub slack_api: Option<String>,
    pub extra_toml: String,
    pub workers: usize,
    pub shutdown_grace_secs: u64,
    /// Route files (name, TOML) to use instead of the shipped `routes/`.
    pub routes: Option<Vec<(&'static str, String)>>,
    /// Templates (name, JSON) to add to the shipped ones.
    pub templates: Vec<(&'static str, String)>,
    /// The first org's `[orgs.salesforce]` section (API access), if any.
    pub salesforce_section: Option<String>,
    /// Queue key namespace; two processes given the same one share a queue.
    pub namespace: String,
    pub max_attempts: u32,
    pub visibility_timeout_secs: u64,
    pub high_water_mark: u64,
    /// More `[queue]` keys (one per line).
    pub queue_toml: String,
    /// More `[workers]` keys (one per line).
    pub workers_toml: String,
}

/// One route: every Closed Won posts the briefing to #deal-desk (per event, so each test
/// event is its own message).
pub fn deal_desk_only() -> Option<Vec<(&'static str, String)>> {
    Some(vec![(
        "deal-desk",
        r##"
object = "Opportunity"
when = 'became("StageName", "Closed Won")'
[[actions]]
type = "post"
channel = "#deal-desk"
template = "closed-won-briefing"
"##
        .to_string(),
    )])
}

/// A namespace no other test uses.
pub fn fresh_namespace() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis: None,
            slack_api: None,
            extra_toml: String::new(),
            workers: 2,
            shutdown_grace_secs: 10,
            routes: None,
            templates: Vec::new(),
            salesforce_section: None,
            namespace: fresh_namespace(),
            max_attempts: 50,
            visibility_timeout_secs: 30,
            high_water_mark: 100_000,
            queue_toml: String::new(),
            workers_toml: String::new(),
        }
    }
}

/// A running `sfrelay serve`.
pub struct App {
    pub url: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub log: PathBuf,
    routes_dir: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

impl App {
    pub async fn spawn(options: Options) -> App {
        App::spawn_with_env(options, Vec::new()).await
    }

    /// Like `spawn`, with more environment variables (keys of extra orgs).
    pub async fn spawn_with_env(options: Options, more_env: Vec<(String, String)>) -> App {
        let dir = tempfile::tempdir().expect("temp dir");
        let namespace = &options.namespace;
        let keys = fixture_path("keys");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let routes_dir = match &options.routes {
            None => root.join("routes"),
            Some(routes) => {
                let dir = dir.path().join("routes");
                std::fs::create_dir_all(&dir).expect("routes dir");
                for (name, text) in routes {
                    std::fs::write(dir.join(format!("{name}.toml")), text).expect("route file");
                }
                dir
            }
        };
        let templates_dir = if options.templates.is_empty() {
            root.join("templates")
        } else {
            let dir = dir.path().join("templates");
            std::fs::create_dir_all(&dir).expect("templates dir");
            for entry in std::fs::read_dir(root.join("templates")).expect("shipped templates") {
                let path = entry.expect("entry").path();
                std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
            }
            for (name, text) in &options.templates {
                std::fs::write(dir.join(format!("{name}.json")), text).expect("template file");
            }
            dir
        };
        let salesforce_section = options.salesforce_section.clone().unwrap_or_else(|| {
            "[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n".into()
        });
        let toml = format!(
            r#"
routes_dir = "{routes_dir}"
templates_dir = "{templates_dir}"
time_zone = "UTC"

[queue]
namespace = "{namespace}"
backoff_base_ms = 20
backoff_cap_secs = 1
max_attempts = {max_attempts}
visibility_timeout_secs = {visibility}
high_water_mark = {high_water_mark}
{queue_toml}

[workers]
count = {workers}
shutdown_grace_secs = {grace}
{workers_toml}

[[orgs]]
id = "{ORG}"
name = "production"
api_key_env = "TEST_API_KEY"
jwt_secret_env = "TEST_JWT_SECRET"
jwt_issuer = "salesforce-prod"
jwt_audience = "sfrelay"
outbound_message_token_env = "TEST_OM_TOKEN"

{salesforce_section}

[[orgs]]
id = "{OTHER_ORG}"
name = "sandbox"
api_key_env = "TEST_OTHER_API_KEY"
api_key_header = "X-Sandbox-Key"
jwt_public_key_file = "{rsa}"

[[orgs]]
id = "00D5g000001EcDsEAK"
name = "ec-org"
jwt_public_key_file = "{ec}"
{extra}
"#,
            routes_dir = routes_dir.display(),
            templates_dir = templates_dir.display(),
            workers = options.workers,
            max_attempts = options.max_attempts,
            visibility = options.visibility_timeout_secs,
            high_water_mark = options.high_water_mark,
            grace = options.shutdown_grace_secs,
            rsa = keys.join("rsa-public.pem").display(),
            ec = keys.join("ec-public.pem").display(),
            extra = options.extra_toml,
            queue_toml = options.queue_toml,
            workers_toml = options.workers_toml,
        );
        let config = dir.path().join("sfrelay.toml");
        std::fs::write(&config, toml).expect("write config");
        let log = dir.path().join("sfrelay.log");
        let log_file = std::fs::File::create(&log).expect("log file");

        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("SFRELAY_LISTEN".into(), "127.0.0.1:0".into()),
            ("SFRELAY_LOG".into(), "info".into()),
            ("SFRELAY_LOG_FORMAT".into(), "json".into()),
            ("TEST_API_KEY".into(), API_KEY.into()),
            ("TEST_OTHER_API_KEY".into(), OTHER_API_KEY.into()),
            ("TEST_JWT_SECRET".into(), JWT_SECRET.into()),
            ("TEST_OM_TOKEN".into(), OM_TOKEN.into()),
        ];
        if let Some(redis) = &options.redis {
            env.push(("REDIS_URL".into(), redis.clone()));
        }
        if let Some(api) = &options.slack_api {
            env.push(("SLACK_API_BASE".into(), api.clone()));
            env.push(("SLACK_BOT_TOKEN".into(), SLACK_TOKEN.into()));
        }
        env.extend(more_env);
        let child = Command::new(env!("CARGO_BIN_EXE_sfrelay"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn sfrelay");
        let mut app = App {
            url: String::new(),
            http: reqwest::Client::new(),
            child: Some(child),
            _dir: dir,
            log,
            routes_dir: routes_dir.clone(),
            config,
            env,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if app.url.is_empty()
                && let Some(addr) = listening::logged_addr(&app.log, "sfrelay listening")
            {
                app.url = format!("http://{addr}");
            }
            if !app.url.is_empty()
                && let Ok(response) = app.http.get(format!("{}/healthz", app.url)).send().await
                && response.status().is_success()
            {
                return app;
            }
            if let Some(Ok(Some(status))) = app.child.as_mut().map(Child::try_wait) {
                panic!("sfrelay exited with {status}:\n{}", app.logs());
            }
            assert!(
                Instant::now() < deadline,
                "sfrelay did not serve:\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POSTs JSON to `/v1/events` with the org's API key.
    pub async fn post_events(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post_events_with(body, &[("X-Api-Key", API_KEY)]).await
    }

    pub async fn post_events_with(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v1/events", self.url))
            .header("Content-Type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("sfrelay answers")
    }

    /// POSTs a body to any path with the org's API key and a content type.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", content_type)
            .header("X-Api-Key", API_KEY)
            .body(body)
            .send()
            .await
            .expect("sfrelay answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("sfrelay answers")
    }

    /// The value of one series in `/metrics`, e.g. `sfrelay_queue_depth{state="dead"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").await.text().await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Runs another `sfrelay` command (e.g. `dlq list`) with this process's config and
    /// environment; returns success and stdout.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_sfrelay"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run sfrelay");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    }

    /// The routes directory this process loads (a temp dir when `Options::routes` was set).
    pub fn routes_dir(&self) -> PathBuf {
        self.routes_dir.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// kill -9: no shutdown, no cleanup, jobs left where they are.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        eventually("sfrelay to exit", timeout, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- sfrelay log ---\n{}", self.logs());
        }
    }
}
