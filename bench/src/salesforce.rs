//! The Salesforce emulator (`sfrelay-emulator salesforce`) as the measurements that need an
//! org run it: trusting the test key pair for the JWT bearer flow, seeded with records, and
//! read back through its control API (counters, request and write journals, the Pub/Sub
//! event bus). Mirrors `tests/it/support/mod.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use serde_json::Value;
use tempfile::TempDir;

use crate::http::{self, Conn};
use crate::procs::{Paths, Proc};

/// The connected app's consumer key, on both sides of the JWT bearer flow.
pub const CLIENT_ID: &str = "3MVG9bench.client";
/// The Salesforce emulator's integration user (its default), whom sfrelay signs in as.
pub const INTEGRATION_USER: &str = "integration@acme.example";

/// A running Salesforce emulator.
pub struct Salesforce {
    pub addr: SocketAddr,
    _proc: Proc,
    _dir: TempDir,
}

impl Salesforce {
    /// Starts the emulator seeded with `records` (`{"Opportunity": [...]}`), with `extra`
    /// arguments after the bench's own (`--org-id`, `--pubsub-keepalive-ms`, …).
    pub fn start(paths: &Paths, records: &Value, extra: &[&str]) -> anyhow::Result<Salesforce> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data.json");
        std::fs::write(&data, records.to_string())?;
        let (proc, addr) = Proc::spawn_emulator(
            Command::new(&paths.emulator)
                .args([
                    "salesforce",
                    "--listen",
                    "127.0.0.1:0",
                    "--client-id",
                    CLIENT_ID,
                ])
                .arg("--public-key")
                .arg(keys(&paths.repo).join("rsa-public.pem"))
                .arg("--data")
                .arg(&data)
                .args(extra),
        )?;
        Ok(Salesforce {
            addr,
            _proc: proc,
            _dir: dir,
        })
    }

    /// Its base URL: the REST API, the token endpoint and (h2c on the same port) the Pub/Sub
    /// API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `[orgs.salesforce]` section pointing sfrelay at this emulator: the JWT bearer flow
    /// as the integration user. Later keys of the section may be appended.
    pub fn org_section(&self, repo: &Path) -> String {
        format!(
            "[orgs.salesforce]\ninstance_url = \"https://acme.my.salesforce.com\"\n\
             login_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             username = \"{INTEGRATION_USER}\"\nprivate_key_file = \"{}\"\n",
            self.url(),
            keys(repo).join("rsa-private.pem").display()
        )
    }

    /// The journal of writes (`GET /_emulator/writes` → `journal`), in the order made.
    pub async fn writes(&self) -> anyhow::Result<Vec<Value>> {
        let state = http::get_json(self.addr, "/_emulator/writes").await?;
        match state.get("journal") {
            Some(Value::Array(journal)) => Ok(journal.clone()),
            _ => bail!("writes: no journal in {state}"),
        }
    }

    /// `GET /_emulator/stats`: token and API requests, `api_usage` (what counts against the
    /// org's daily allowance), records.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        http::get_json(self.addr, "/_emulator/stats").await
    }

    /// `GET /_emulator/requests`: every request in arrival order, with the time it was
    /// answered (`at`, RFC 3339 to the millisecond).
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        match http::get_json(self.addr, "/_emulator/requests").await? {
            Value::Array(requests) => Ok(requests),
            other => bail!("requests: unexpected {other}"),
        }
    }

    /// `GET /_emulator/pubsub/streams`: every Pub/Sub stream opened, with its credit and
    /// starvation figures.
    pub async fn streams(&self) -> anyhow::Result<Vec<Value>> {
        match http::get_json(self.addr, "/_emulator/pubsub/streams").await? {
            Value::Array(streams) => Ok(streams),
            other => bail!("streams: unexpected {other}"),
        }
    }

    /// `POST /_emulator/pubsub/publish` of an array of changes, on `conn` (a connection to
    /// this emulator); the number published.
    pub async fn publish(conn: &mut Conn, changes: &[Value]) -> anyhow::Result<usize> {
        let body = serde_json::to_vec(changes)?;
        let (status, answer) = conn
            .post_json("/_emulator/pubsub/publish", body.into())
            .await?;
        anyhow::ensure!(
            status == 200,
            "publish: HTTP {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        let answer: Value = serde_json::from_slice(&answer)?;
        Ok(answer.as_array().map_or(0, Vec::len))
    }
}

fn keys(repo: &Path) -> PathBuf {
    repo.join("tests/fixtures/keys")
}
