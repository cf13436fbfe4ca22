//! Binding, announcing and shutting down an emulator, shared by every emulated service.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How long in-flight requests (possibly delayed by injected latency) may finish after a signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds `listen`, refusing anything but loopback: the emulators are never reachable from
/// another machine.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    if !listen.ip().is_loopback() {
        bail!("refusing to listen on {listen}: the emulator only listens on loopback");
    }
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))
}

/// Serves `app` on a loopback address until SIGINT or SIGTERM.
///
/// Prints exactly one line, `listening on http://ADDR`, to stdout once the socket is bound so a
/// parent process can read the real port when it asked for port 0.
pub async fn serve(listen: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    announce(addr)?;
    tracing::info!(%addr, "emulator ready");

    let stop = Arc::new(Notify::new());
    let stop_server = Arc::clone(&stop);
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop_server.notified().await });
    tokio::select! {
        result = server => result.context("serving")?,
        () = async {
            shutdown_signal().await;
            tracing::info!("shutting down");
            stop.notify_one();
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("requests still open after the grace period; exiting anyway"),
    }
    Ok(())
}

/// Writes the one stdout line parents wait for, and flushes it at once.
fn announce(addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}").context("writing to stdout")?;
    out.flush().context("flushing stdout")
}

/// Resolves on the first SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
