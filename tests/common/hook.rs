//! A webhook receiver for the alert tests: a real HTTP/1.1 server on loopback that keeps
//! each notification POSTed to it and answers 200, or 500 while told to fail, or nothing at
//! all while told to hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The server; stops when dropped.
pub struct Hook {
    pub url: String,
    received: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
    hanging: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    pub async fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let hanging = Arc::new(AtomicBool::new(false));
        let (kept, fail, hang) = (received.clone(), failing.clone(), hanging.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (kept, fail, hang) = (kept.clone(), fail.clone(), hang.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        // The request line, then the headers.
                        loop {
                            line.clear();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if hang.load(Ordering::Acquire) {
                            // Read, never answered: the connection stays open until the
                            // client gives up.
                            let _ = stream.read_to_end(&mut Vec::new()).await;
                            return;
                        }
                        let status = if fail.load(Ordering::Acquire) {
                            "500 Internal Server Error"
                        } else {
                            if let Ok(json) = serde_json::from_slice(&body) {
                                kept.lock().unwrap().push(json);
                            }
                            "200 OK"
                        };
                        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Hook {
            url,
            received,
            failing,
            hanging,
            task,
        }
    }

    /// Answers 500 (and keeps nothing) while `failing`.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }

    /// Never answers (and keeps nothing) while `hanging`.
    pub fn hang(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::Release);
    }

    /// Every notification accepted so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// The events of every notification accepted so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.received()
            .iter()
            .flat_map(|n| n["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// `[[alerts.receiver]]` for this hook, named `name`.
    pub fn toml(&self, name: &str) -> String {
        format!(
            "[[alerts.receiver]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"2s\"\n",
            self.url
        )
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
