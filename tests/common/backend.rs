//! Backends a test controls: real TCP listeners on 127.0.0.1 that answer like the servers
//! servicewatch probes, and that the test can close (connections refused) and reopen on the
//! same port.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// How a backend answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Accepts connections and closes them (a T-Server for a `tcp` check).
    Accept,
    /// Answers any HTTP request with this status and body.
    Http(u16, &'static str),
    /// Accepts connections and never answers or closes them.
    Stall,
    /// Answers CQL OPTIONS with SUPPORTED, like a Cassandra node.
    Cql,
}

/// A backend listening on loopback.
pub struct Backend {
    addr: SocketAddr,
    mode: Mode,
    task: Option<JoinHandle<()>>,
}

impl Backend {
    /// Starts listening on a free port.
    pub async fn start(mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a backend");
        let addr = listener.local_addr().unwrap();
        Backend {
            addr,
            task: Some(tokio::spawn(serve(listener, mode.clone()))),
            mode,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host = "127.0.0.1", port = N` for a config file.
    pub fn toml(&self) -> String {
        format!("{{ host = \"127.0.0.1\", port = {} }}", self.port())
    }

    /// Stops listening and drops every open connection: new connections are refused.
    pub async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn reopen(&mut self) {
        self.close().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the backend port");
        self.task = Some(tokio::spawn(serve(listener, self.mode.clone())));
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, mode: Mode) {
    // Connections live in this set, so aborting the accept task drops them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(answer(stream, mode.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer(mut stream: TcpStream, mode: Mode) {
    match mode {
        Mode::Accept => {}
        Mode::Stall => std::future::pending::<()>().await,
        Mode::Http(status, body) => {
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Mode::Cql => {
            let mut header = [0u8; 9];
            while stream.read_exact(&mut header).await.is_ok() {
                let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
                let mut body = vec![0u8; len];
                if stream.read_exact(&mut body).await.is_err() {
                    return;
                }
                // SUPPORTED: one key, CQL_VERSION, with one value.
                let mut payload = Vec::new();
                payload.extend_from_slice(&1u16.to_be_bytes());
                let key = b"CQL_VERSION";
                payload.extend_from_slice(&(key.len() as u16).to_be_bytes());
                payload.extend_from_slice(key);
                payload.extend_from_slice(&1u16.to_be_bytes());
                payload.extend_from_slice(&5u16.to_be_bytes());
                payload.extend_from_slice(b"3.4.5");
                let mut frame = vec![0x84, 0, header[2], header[3], 0x06];
                frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                frame.extend_from_slice(&payload);
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    }
}
