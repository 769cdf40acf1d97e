//! Stand-in backends: real TCP listeners on loopback that answer like the servers
//! servicewatch probes (a T-Server that accepts, an HTTP health endpoint, a Cassandra node
//! answering CQL OPTIONS), and that can be closed (connections refused) and reopened on the
//! same port. `servicewatch demo` runs its scenario with them; the end-to-end tests open,
//! close and stall them.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::probe::cql;

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

/// A stand-in listening on loopback.
pub struct StandIn {
    addr: SocketAddr,
    mode: Mode,
    task: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Starts listening on a free loopback port.
    pub async fn start(mode: Mode) -> std::io::Result<StandIn> {
        StandIn::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), mode).await
    }

    /// Starts listening on `addr`.
    pub async fn start_on(addr: SocketAddr, mode: Mode) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(StandIn {
            addr,
            task: Some(tokio::spawn(serve(listener, mode.clone()))),
            mode,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `{ host = "127.0.0.1", port = N }`, for a configuration file.
    pub fn toml(&self) -> String {
        format!(
            "{{ host = \"{}\", port = {} }}",
            self.addr.ip(),
            self.port()
        )
    }

    /// Whether it listens now.
    pub(crate) fn is_open(&self) -> bool {
        self.task.is_some()
    }

    /// Stops listening and drops every open connection: new connections are refused.
    pub async fn close(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn reopen(&mut self) -> std::io::Result<()> {
        self.close().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.task = Some(tokio::spawn(serve(listener, self.mode.clone())));
        Ok(())
    }
}

impl Drop for StandIn {
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
                let on = u16::from_be_bytes([header[2], header[3]]);
                let frame = cql::supported_frame(on, &[("CQL_VERSION", &["3.4.5"])]);
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
        }
    }
}
