//! A webhook receiver for the benches: an HTTP/1.1 server on loopback that answers every
//! POST with 200 and keeps, for each, when its body had fully arrived, its size and its
//! JSON. It takes `Content-Length` and chunked bodies (servicewatch sends the one, Go
//! clients such as Alertmanager's may send the other) over kept-alive connections.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Connections accepted before the server stops accepting.
const MAX_CONNECTIONS: usize = 10_000;
/// Requests served on one connection before it is closed.
const MAX_REQUESTS: usize = 100_000;
/// Lines of a request head (the request line and the headers), or of a chunk's trailer.
const MAX_HEAD_LINES: usize = 200;
/// The largest body kept; a larger one closes the connection.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// One POST as it arrived.
pub struct Arrival {
    /// When its body had fully arrived.
    pub at: Instant,
    /// The same moment by the wall clock, to compare with the times the body carries.
    pub wall: SystemTime,
    /// The body's size in bytes.
    pub size: usize,
    /// The body, parsed (`Null` when it was not JSON).
    pub body: Value,
}

/// The server; stops when dropped.
pub struct Webhook {
    pub url: String,
    arrivals: Arc<Mutex<Vec<Arc<Arrival>>>>,
    task: JoinHandle<()>,
}

impl Webhook {
    /// Listens on a loopback port of the kernel's choosing; `path` is the URL's path.
    pub async fn start(path: &str) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().unwrap());
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let kept = arrivals.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_CONNECTIONS {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    for _ in 0..MAX_REQUESTS {
                        let Some(body) = read_request(&mut read).await else {
                            return;
                        };
                        let (at, wall) = (Instant::now(), SystemTime::now());
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        let arrival = Arrival {
                            at,
                            wall,
                            size: body.len(),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        };
                        kept.lock().unwrap().push(Arc::new(arrival));
                    }
                });
            }
        });
        Webhook {
            url,
            arrivals,
            task,
        }
    }

    /// How many POSTs have arrived.
    pub fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// The POSTs that arrived after the first `skip`, in order.
    pub fn since(&self, skip: usize) -> Vec<Arc<Arrival>> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .cloned()
            .collect()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request; returns its body, or `None` when the connection ends or the request
/// is not one this server takes.
async fn read_request(read: &mut (impl AsyncBufRead + Unpin)) -> Option<Vec<u8>> {
    let (mut length, mut chunked) = (0usize, false);
    let mut line = String::new();
    let mut ended = false;
    for _ in 0..MAX_HEAD_LINES {
        line.clear();
        if read.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            ended = true;
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        } else if let Some(v) = lower.strip_prefix("transfer-encoding:") {
            chunked = v.contains("chunked");
        }
    }
    if !ended || length > MAX_BODY {
        return None;
    }
    if !chunked {
        let mut body = vec![0; length];
        read.read_exact(&mut body).await.ok()?;
        return Some(body);
    }
    let mut body = Vec::new();
    // Each chunk is at least its size line: the body bound bounds the chunks.
    for _ in 0..MAX_BODY {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        if size == 0 {
            // The trailer, up to its empty line.
            for _ in 0..MAX_HEAD_LINES {
                line.clear();
                if read.read_line(&mut line).await.ok()? == 0 || line == "\r\n" {
                    return Some(body);
                }
            }
            return None;
        }
        if body.len() + size > MAX_BODY {
            return None;
        }
        let start = body.len();
        body.resize(start + size, 0);
        read.read_exact(&mut body[start..]).await.ok()?;
        let mut crlf = [0; 2];
        read.read_exact(&mut crlf).await.ok()?;
    }
    None
}
