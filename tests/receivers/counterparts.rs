//! What the receivers talk to, started by the tests on loopback: an HTTP server that records
//! what it is sent, a real Alertmanager, and a real SMTP server.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::common::process::Reaped;

/// One request as the HTTP server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// With its query.
    pub path: String,
    /// Names in lowercase.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

/// What the HTTP server answers: these statuses in turn, then 200.
struct Script {
    seen: Mutex<Vec<Seen>>,
    statuses: Mutex<VecDeque<u16>>,
}

/// An HTTP (or HTTPS) server on a loopback port, recording every request.
pub struct HookServer {
    pub port: u16,
    script: web::Data<Script>,
    handle: ServerHandle,
}

impl HookServer {
    /// Starts the server; with `tls`, it speaks HTTPS.
    pub fn start(statuses: &[u16], tls: Option<rustls::ServerConfig>) -> HookServer {
        let script = web::Data::new(Script {
            seen: Mutex::new(Vec::new()),
            statuses: Mutex::new(statuses.iter().copied().collect()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = script.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals();
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        HookServer {
            port,
            script,
            handle,
        }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn record(request: HttpRequest, body: web::Bytes, script: web::Data<Script>) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    script.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path: request.uri().to_string(),
        headers,
        body: body.to_vec(),
    });
    let status = script.statuses.lock().unwrap().pop_front().unwrap_or(200);
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).body(match status {
        200..=299 => "ok",
        _ => "database on fire\nsee the logs",
    })
}

/// A loopback port that accepts connections and never answers on them.
pub async fn silent_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first line of the file at `path` that holds `marker`, once written; a process logs
/// to the file, and `what` names it in the panic if it never does.
fn wait_for_line(path: &Path, marker: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(marker)) {
            return line.to_string();
        }
        assert!(Instant::now() < deadline, "{what} did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's Alertmanager, where the tests expect it.
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A real Alertmanager, alone (no cluster), on a port of its choosing.
pub struct Alertmanager {
    pub url: String,
    _process: Reaped,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts it and waits until it listens.
    pub fn start() -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let log = dir.path().join("log");
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let process = Reaped(child);
        let line = wait_for_line(&log, "Listening on", "Alertmanager");
        let address = line.rsplit("address=").next().unwrap().trim().to_string();
        Alertmanager {
            url: format!("http://{address}"),
            _process: process,
            _dir: dir,
        }
    }
}

/// A real SMTP server (tests/interop/smtp-server.py), saving what it accepts.
pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    _process: Reaped,
}

impl SmtpServer {
    /// Starts it with `args` (see the script) and waits until it listens.
    pub fn start(python: &Path, args: &[&str]) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mail")).unwrap();
        let log = dir.path().join("log");
        let child = Command::new(python)
            .arg(crate::common::interop::root().join("tests/interop/smtp-server.py"))
            .arg(dir.path().join("mail"))
            .args(args)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let process = Reaped(child);
        let line = wait_for_line(&log, "listening on ", "the SMTP server");
        SmtpServer {
            port: line["listening on ".len()..].trim().parse().unwrap(),
            dir,
            _process: process,
        }
    }

    /// The `n`th message accepted (from 1): its bytes and its envelope, once saved.
    pub fn message(&self, n: usize) -> Option<(String, serde_json::Value)> {
        let file =
            |ext: &str| -> PathBuf { self.dir.path().join("mail").join(format!("{n}.{ext}")) };
        let envelope = std::fs::read(file("json")).ok()?;
        let message = std::fs::read(file("eml")).unwrap();
        Some((
            String::from_utf8(message).unwrap(),
            serde_json::from_slice(&envelope).unwrap(),
        ))
    }
}
