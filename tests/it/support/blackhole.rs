//! A loopback TCP proxy that can be told to stop forwarding without closing anything, the way a
//! network path that lost its state (a NAT or load-balancer entry, a partition) behaves: every
//! connection open when the blackhole starts, and every one opened during it, still accepts
//! bytes (which reach the server) but never again gets a reply, and stays open. After `resume`,
//! new connections work; the ones the blackhole caught stay dead until their client closes them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct State {
    blackholed: AtomicBool,
    /// The "dead" flag of every connection ever accepted.
    connections: Mutex<Vec<Arc<AtomicBool>>>,
}

pub struct BlackholeProxy {
    pub port: u16,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl BlackholeProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> BlackholeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let state = Arc::new(State {
            blackholed: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accepting = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let dead = Arc::new(AtomicBool::new(accepting.blackholed.load(Ordering::SeqCst)));
                accepting
                    .connections
                    .lock()
                    .expect("proxy state")
                    .push(dead.clone());
                tokio::spawn(relay(client, upstream, dead));
            }
        });
        BlackholeProxy {
            port,
            state,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// From now on no reply reaches any client, on old and new connections alike.
    pub fn blackhole(&self) {
        self.state.blackholed.store(true, Ordering::SeqCst);
        for dead in self.state.connections.lock().expect("proxy state").iter() {
            dead.store(true, Ordering::SeqCst);
        }
    }

    /// New connections forward again; those the blackhole caught stay dead.
    pub fn resume(&self) {
        self.state.blackholed.store(false, Ordering::SeqCst);
    }
}

impl Drop for BlackholeProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: u16, dead: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = server_read.read(&mut buf).await {
        if n == 0 {
            break;
        }
        // A dead connection swallows replies but keeps the client's socket open.
        if !dead.load(Ordering::SeqCst) && client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // The server closed (or the client went away): end the request side too.
    let _ = requests.await;
}
