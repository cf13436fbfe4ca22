//! An emulator served inside the caller's process, for sfrelay's integration tests: no binary to
//! locate, no child process to reap, the same services as the binary's.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};
use axum::Router;
use clap::Parser;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

use crate::{Cli, Command};

/// Worker threads of each emulator's runtime. A runtime of its own means a test that blocks its
/// thread never stalls the emulator it waits on, as with a separate process.
const WORKERS: usize = 2;

/// A running emulator. Dropping it stops it at once, as killing the process did: the port is
/// closed before `drop` returns and open requests are cut, not finished.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    pubsub: Option<crate::PubSubControl>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// The address it listens on (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`: what the binary prints after `listening on `.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Salesforce emulator's event bus (Pub/Sub API), driven in-process; the same as its
    /// `/_emulator/pubsub/…` endpoints. None for the Slack emulator.
    pub fn pubsub(&self) -> Option<&crate::PubSubControl> {
        self.pubsub.as_ref()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts what `sfrelay-emulator slack ARGS…` starts, in this process.
pub fn spawn_slack<I, T>(args: I) -> anyhow::Result<Running>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    spawn("slack", args)
}

/// Starts what `sfrelay-emulator salesforce ARGS…` starts, in this process.
pub fn spawn_salesforce<I, T>(args: I) -> anyhow::Result<Running>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    spawn("salesforce", args)
}

fn spawn<I, T>(service: &str, args: I) -> anyhow::Result<Running>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv = ["sfrelay-emulator", service]
        .into_iter()
        .map(OsString::from)
        .chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv).with_context(|| format!("sfrelay-emulator {service}"))?;
    let (listen, app, pubsub) = match cli.command {
        Command::Slack(args) => (args.listen, crate::slack::app(args)?, None),
        Command::Salesforce(args) => {
            let (app, bus) = crate::salesforce::app_with_pubsub(&args)?;
            (args.listen, app, Some(bus))
        }
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let name = format!("emulator-{service}");
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || serve(&name, listen, app, ready_tx, stop_rx))
        .context("starting the emulator's thread")?;
    let bound = ready_rx
        .recv()
        .map_err(|_| anyhow!("the emulator's thread ended before binding"))
        .and_then(|bound| bound);
    match bound {
        Ok(addr) => Ok(Running {
            addr,
            pubsub,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Err(err) => {
            let _ = thread.join();
            Err(err)
        }
    }
}

/// The emulator's thread: starts a runtime (here, since a runtime must not be dropped where the
/// caller may be async), binds, reports the address or the error, then serves until told to
/// stop, and drops every task without waiting for it.
fn serve(
    name: &str,
    listen: SocketAddr,
    app: Router,
    ready: mpsc::Sender<anyhow::Result<SocketAddr>>,
    stop: oneshot::Receiver<()>,
) {
    let runtime = match runtime(name) {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let bound = runtime.block_on(bind(listen));
    let listener = match bound {
        Ok((listener, addr)) if ready.send(Ok(addr)).is_ok() => listener,
        Ok(_) => return runtime.shutdown_background(),
        Err(err) => {
            let _ = ready.send(Err(err));
            return runtime.shutdown_background();
        }
    };
    runtime.block_on(async move {
        tokio::select! {
            result = axum::serve(listener, app) => {
                if let Err(err) = result {
                    tracing::error!(%err, "the emulator stopped serving");
                }
            }
            _ = stop => {}
        }
    });
    runtime.shutdown_background();
}

fn runtime(name: &str) -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name(name)
        .enable_all()
        .build()
        .context("starting the emulator's runtime")
}

async fn bind(listen: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = crate::serve::bind(listen).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, "emulator ready");
    Ok((listener, addr))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// One `GET` over a fresh connection; the whole answer.
    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn serves_until_dropped() {
        let slack = spawn_slack(["--channel", "C0DEALDESK:deal-desk"]).unwrap();
        assert_eq!(slack.url(), format!("http://{}", slack.addr()));
        assert_ne!(slack.addr().port(), 0);
        let channels = get(slack.addr(), "/_emulator/channels").unwrap();
        assert!(channels.starts_with("HTTP/1.1 200"), "{channels}");
        assert!(channels.contains("deal-desk"), "{channels}");

        let addr = slack.addr();
        drop(slack);
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening on {addr}"
        );
    }

    #[test]
    fn serves_salesforce() {
        let sf = spawn_salesforce(["--listen", "127.0.0.1:0"]).unwrap();
        let stats = get(sf.addr(), "/_emulator/stats").unwrap();
        assert!(stats.starts_with("HTTP/1.1 200"), "{stats}");
    }

    #[test]
    fn refuses_what_the_binary_refuses() {
        assert!(spawn_slack(["--burst", "0"]).is_err());
        assert!(spawn_slack(["--no-such-flag"]).is_err());
        assert!(spawn_salesforce(["--listen", "0.0.0.0:0"]).is_err());
        assert!(spawn_salesforce(["--public-key", "/nonexistent.pem"]).is_err());
    }
}
