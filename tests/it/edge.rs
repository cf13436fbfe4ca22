//! The HTTP edge under hostile or careless clients: half-sent headers, bodies that never come,
//! more requests than the server takes at once, and `/metrics` on its own listener. Real binary,
//! raw TCP where the client must misbehave.

use crate::support;

use std::time::{Duration, Instant};

use support::{API_KEY, App, Options, eventually, listening};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &App) -> String {
    app.url.trim_start_matches("http://").to_string()
}

async fn spawn(http_section: &str) -> App {
    App::spawn(Options {
        extra_toml: format!("\n[http]\n{http_section}\n"),
        ..Options::default()
    })
    .await
}

/// Reads what the server sends until it closes the connection or `within` passes; `None` when
/// the connection is still open then.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until a whole response head has arrived (or the connection closed / `within` passed).
async fn read_head(stream: &mut TcpStream, within: Duration) -> String {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn slow_loris_connections_are_closed_after_the_header_timeout() {
    let header_timeout = Duration::from_secs(1);
    let app = spawn("header_read_timeout_secs = 1").await;
    let connections = 200;
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
        stream
            .write_all(b"POST /v1/events HTTP/1.1\r\nHost: sfrelay\r\nX-Api-Key: te")
            .await
            .expect("half a header");
        streams.push(stream);
    }
    let started = Instant::now();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    for mut stream in streams {
        let closed_tx = closed_tx.clone();
        tokio::spawn(async move {
            if read_until_closed(&mut stream, Duration::from_secs(30))
                .await
                .is_some()
            {
                let _ = closed_tx.send(());
            }
        });
    }
    // Every connection must be gone shortly after the header timeout: poll until then.
    let deadline = started + header_timeout + Duration::from_secs(3);
    let mut closed = 0;
    while closed < connections && Instant::now() < deadline {
        if let Ok(Some(())) =
            tokio::time::timeout(Duration::from_millis(100), closed_rx.recv()).await
        {
            closed += 1;
        }
    }
    let held = connections - closed;
    println!(
        "slow-loris: {held} of {connections} connections still held {:.1} s after a {} s header timeout",
        started.elapsed().as_secs_f64(),
        header_timeout.as_secs()
    );
    assert_eq!(held, 0, "connections still held after the header timeout");
    // The server still serves everyone else.
    assert!(app.get("/healthz").await.status().is_success());
}

#[tokio::test]
async fn unauthenticated_request_is_refused_before_its_body_arrives() {
    let app = App::spawn(Options::default()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: sfrelay\r\nContent-Type: application/json\r\n\
              Content-Length: 1048576\r\n\r\n",
        )
        .await
        .expect("head");
    stream.write_all(&[b' '; 1024]).await.expect("1 kB of body");
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    println!("401 without the body after {} ms", elapsed.as_millis());
    assert!(head.starts_with("HTTP/1.1 401"), "got {head:?}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    // The rest of the body is never read: the client must not reuse the connection.
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
}

#[tokio::test]
async fn wrong_api_key_is_refused_before_its_body_arrives() {
    let app = App::spawn(Options::default()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    stream
        .write_all(
            b"POST /v1/cdc HTTP/1.1\r\nHost: sfrelay\r\nContent-Type: application/json\r\n\
              X-Api-Key: not-a-key-of-any-org-000000\r\nContent-Length: 500000\r\n\r\n{",
        )
        .await
        .expect("head");
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 401"), "got {head:?}");
}

#[tokio::test]
async fn declared_body_over_the_limit_is_refused_before_it_is_read() {
    let app = App::spawn(Options::default()).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: sfrelay\r\nContent-Type: application/json\r\n\
         X-Api-Key: {API_KEY}\r\nContent-Length: {}\r\n\r\n{{",
        64 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let answer = read_head(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "got {answer:?}");
}

#[tokio::test]
async fn authenticated_request_that_stalls_its_body_is_cut_at_the_body_timeout() {
    let app = spawn("body_timeout_secs = 1\nrequest_timeout_secs = 20").await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: sfrelay\r\nContent-Type: application/json\r\n\
         X-Api-Key: {API_KEY}\r\nContent-Length: 1000\r\n\r\n{{\"org_id\": "
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.expect("head");
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the server must give up on the body");
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    println!("stalled body cut after {} ms", elapsed.as_millis());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "got {answer:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "cut too early: {elapsed:?}"
    );
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_are_shed_with_503_and_retry_after() {
    let app = spawn("max_concurrent_requests = 2\nbody_timeout_secs = 20").await;
    // Two authenticated requests that hold their slot: their bodies never finish.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: sfrelay\r\nContent-Type: application/json\r\n\
             X-Api-Key: {API_KEY}\r\nContent-Length: 1000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        holders.push(stream);
    }
    eventually(
        "both held requests in flight",
        Duration::from_secs(10),
        || async {
            let in_flight = app.metric("sfrelay_http_requests_in_flight").await;
            (in_flight == Some(2.0)).then_some(())
        },
    )
    .await;
    let shed = eventually(
        "a request shed with 503",
        Duration::from_secs(10),
        || async {
            let response = app.post_events(b"{}".to_vec()).await;
            (response.status().as_u16() == 503).then_some(response)
        },
    )
    .await;
    let retry_after = shed.headers().get("retry-after").cloned();
    assert_eq!(
        shed.headers()["content-type"],
        "application/problem+json",
        "{:?}",
        shed.headers()
    );
    assert!(
        retry_after
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|secs| secs >= 1),
        "Retry-After: {retry_after:?}"
    );
    let body: serde_json::Value = shed.json().await.expect("problem JSON");
    assert_eq!(body["status"], 503, "{body}");

    // Slots come back when the holders go away.
    drop(holders);
    eventually(
        "a request served again",
        Duration::from_secs(10),
        || async { (app.post_events(b"{}".to_vec()).await.status().as_u16() == 400).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_from_the_main_listener() {
    let app = App::spawn_with_env(
        Options::default(),
        vec![("SFRELAY_METRICS_LISTEN".into(), "127.0.0.1:0".into())],
    )
    .await;
    let metrics_addr = eventually(
        "the metrics listener's address in the log",
        Duration::from_secs(10),
        || async { listening::logged_addr(&app.log, "metrics listening") },
    )
    .await;
    let response = app
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .expect("metrics listener answers");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("metrics text");
    assert!(text.contains("sfrelay_"), "{text}");
    assert_eq!(app.get("/metrics").await.status().as_u16(), 404);
    assert!(app.get("/healthz").await.status().is_success());
}
