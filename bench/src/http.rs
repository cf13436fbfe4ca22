//! A minimal HTTP/1.1 client on hyper's connection API: one TCP connection per `Conn`, no pool,
//! no redirects, no TLS — the cheapest client that still speaks real HTTP, so the load
//! generator leaves the two cores to the servers it measures. Loopback only.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The API key every request to sfrelay carries (`X-Api-Key`); sfrelay is configured with it.
pub const API_KEY: &str = "bench-api-key-0123456789abcdef";

/// No single request may take longer than this; a stuck server ends the measurement.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        anyhow::ensure!(addr.ip().is_loopback(), "refusing to send to {addr}");
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// `POST /v1/events` with the bench org's API key; the status, body read and dropped.
    pub async fn post_events(&mut self, body: Bytes) -> anyhow::Result<u16> {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/events")
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header("x-api-key", API_KEY)
            .body(Full::new(body))?;
        let (status, _) = self.send(request).await?;
        Ok(status)
    }

    /// `POST` of a JSON body to `path` (the emulators' control API): status and body.
    pub async fn post_json(&mut self, path: &str, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.send(request).await
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<(u16, Bytes)> {
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => bail!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
}

/// A one-off `GET` on a fresh connection: status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    anyhow::ensure!(addr.ip().is_loopback(), "refusing to send to {addr}");
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(HOST, addr.to_string())
        .body(Empty::new())?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .context("GET timed out")?
}

/// A `GET` whose 200 body is JSON.
pub async fn get_json(addr: SocketAddr, path: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = get(addr, path).await?;
    anyhow::ensure!(status == 200, "GET {path}: HTTP {status}");
    serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
}
