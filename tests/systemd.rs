//! The binary under a service manager: a notify socket created by the test receives READY,
//! STATUS, WATCHDOG, RELOADING/READY on SIGHUP and STOPPING on SIGTERM; a reload adds,
//! changes, removes and keeps services while a WebSocket subscriber stays connected; a broken
//! file on reload is refused and the old configuration keeps serving; SIGTERM closes
//! clients and exits 0.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::bayeux::{Received, WsClient};
use common::{Backend, Mode, TestDaemon};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BIN: &str = env!("CARGO_BIN_EXE_servicewatch");

/// Reads the daemon's notifications.
struct NotifySocket {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            socket,
            seen: Vec::new(),
        }
    }

    /// Waits until a datagram has a line satisfying `want`; returns that datagram's lines.
    fn expect(&mut self, what: &str, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let lines: Vec<String> = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_string)
                    .collect();
                self.seen.extend(lines.iter().cloned());
                if lines.iter().any(|l| want(l)) {
                    return lines;
                }
            }
        }
        panic!("no {what} notification; seen: {:?}", self.seen);
    }
}

fn service(id: &str, backend: &Backend, extra: &str) -> String {
    format!(
        "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"100ms\", timeout = \"300ms\", rise = 1, fall = 1, jitter = 0.0 }}\n{extra}\n",
        backend.toml()
    )
}

/// Starts the binary; returns it, the API address and the admin address.
async fn spawn(config: &Path, notify: &Path) -> (Child, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .env("NOTIFY_SOCKET", notify)
        .env("SERVICEWATCH_ADMIN__LISTEN", "127.0.0.1:0")
        .env("WATCHDOG_USEC", "200000")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("a log line")
            .unwrap()
            .expect("the daemon logs its listeners");
        let value = |key: &str| {
            let at = line.find(key)?;
            Some(
                line[at + key.len()..]
                    .split_whitespace()
                    .next()?
                    .to_string(),
            )
        };
        addr = addr.or(value("listen="));
        admin = admin.or(value("admin="));
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr.unwrap(), admin.unwrap())
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, signal) };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_reload_and_stop_under_a_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let mut notify = NotifySocket::bind(&notify_path);
    let (a, b, c, d_backend) = (
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
    );
    let config = dir.path().join("servicewatch.toml");
    let header = format!(
        "{}\n[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n",
        common::users_toml()
    );
    std::fs::write(
        &config,
        format!(
            "{header}{}{}{}",
            service("a", &a, ""),
            service("b", &b, ""),
            service("c", &c, "")
        ),
    )
    .unwrap();

    let (child, addr, admin) = spawn(&config, &notify_path).await;
    let ready = notify.expect("READY", |l| l == "READY=1");
    assert!(
        ready.contains(&"STATUS=3 services: 3 Active".to_string()),
        "{ready:?}: ready only after the first probe round"
    );
    notify.expect("WATCHDOG", |l| l == "WATCHDOG=1");
    notify.expect("a second WATCHDOG", |l| l == "WATCHDOG=1");

    // A client of the API, through the helpers that talk to a daemon at an address.
    let api = TestDaemon::attach(&addr);
    let mut subscriber = WsClient::subscribed(&api).await;

    // Reload: a unchanged, b changed (an attribute), c removed, d added.
    std::fs::write(
        &config,
        format!(
            "{header}{}{}{}",
            service("a", &a, ""),
            service("b", &b, "attributes = { sipPort = 5061 }"),
            service("d", &d_backend, "")
        ),
    )
    .unwrap();
    signal(&child, libc::SIGHUP);
    let reloading = notify.expect("RELOADING", |l| l == "RELOADING=1");
    assert!(
        reloading.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    notify.expect("READY after the reload", |l| l == "READY=1");
    let mut changed = Vec::new();
    while changed.len() < 2 {
        let service = subscriber.next_change(Duration::from_secs(5)).await;
        changed.push((
            service["id"].as_str().unwrap().to_string(),
            service["state"].as_str().unwrap().to_string(),
            service["sipPort"].clone(),
        ));
    }
    changed.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        changed[0],
        ("b".to_string(), "Active".to_string(), json!(5061)),
        "the changed service, still Active"
    );
    assert_eq!(changed[1].0, "c");
    assert_eq!(
        changed[1].1, "Inactive",
        "a removed service says goodbye as Inactive"
    );
    common::eventually(Duration::from_secs(5), "d to be probed", || async {
        (api.state_of("d").await.0 == "Active").then_some(())
    })
    .await;
    assert_eq!(api.ids().await, ["a", "b", "d"]);

    // A broken file is refused; the running configuration keeps serving.
    std::fs::write(&config, "[[service]]\nid = \"broken\"\n").unwrap();
    signal(&child, libc::SIGHUP);
    let refused = notify.expect("the refusal in STATUS", |l| {
        l.starts_with("STATUS=") && l.contains("last reload refused")
    });
    assert!(
        refused.iter().any(|l| l.contains("missing field `type`")),
        "{refused:?}"
    );
    assert_eq!(api.ids().await, ["a", "b", "d"]);
    let mut batch = subscriber
        .call(json!({"channel":"/meta/subscribe","subscription":"/other"}))
        .await;
    // State changes may come first; the reply follows.
    while !batch.iter().any(|m| m["channel"] == "/meta/subscribe") {
        batch = subscriber.recv().await;
    }
    let reply = batch
        .iter()
        .find(|m| m["channel"] == "/meta/subscribe")
        .unwrap();
    assert_eq!(
        reply["successful"], true,
        "the subscriber stayed connected through both reloads"
    );
    let mut api = api;
    api.admin = Some(admin.parse().unwrap());
    let reloads =
        |result: &str| format!(r#"servicewatch_config_reloads_total{{result="{result}"}}"#);
    assert_eq!(api.metric(&reloads("applied")).await, Some(1.0));
    assert_eq!(api.metric(&reloads("refused")).await, Some(1.0));

    // Stop: STOPPING, the WebSocket closed with 1001, exit 0.
    signal(&child, libc::SIGTERM);
    notify.expect("STOPPING", |l| l == "STOPPING=1");
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match subscriber.recv_within(Duration::from_secs(10)).await {
                Some(Received::Batch(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    match closed {
        Some(Received::Closed(Some((code, reason)))) => {
            assert_eq!(code, CloseCode::Away);
            assert_eq!(reason, "server shutting down");
        }
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_on_the_passed_listener() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("servicewatch.toml");
    // The configured address cannot be bound by the daemon: serving proves it used the socket.
    std::fs::write(
        &config,
        format!(
            "{}\n[server]\nlisten = \"192.0.2.1:1\"\n[admin]\nenabled = false\n",
            common::users_toml()
        ),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // As systemd does: the socket as descriptor 3, LISTEN_FDS=1, and LISTEN_PID naming the
    // daemon's own pid (the shell's, which `exec` keeps).
    let mut command = std::process::Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" --config \"$1\"", BIN])
        .arg(&config)
        .env("LISTEN_FDS", "1")
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only dup2, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(listener);
    let url = format!("http://{addr}/api/v2/services");
    let body = common::eventually(
        Duration::from_secs(10),
        "an answer on the passed socket",
        || {
            let url = url.clone();
            async move {
                let request = reqwest::Client::new()
                    .get(url)
                    .basic_auth(common::USER, Some(common::PASSWORD));
                request.send().await.ok()?.text().await.ok()
            }
        },
    )
    .await;
    assert_eq!(body, r#"{"statusCode":0,"uris":[]}"#);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A stop answers a held long-polling connect with advice to come back later and closes its
/// connection with it, so that the client's next connect cannot hold the stop up until the
/// keep-alive or shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_answers_a_held_long_poll_and_closes_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut daemon = common::process::DaemonProcess::spawn(&common::users_toml());
    let mut lp = common::bayeux::LpClient::new(&TestDaemon::attach(&daemon.addr));
    lp.handshake().await;
    lp.subscribe(false).await;
    lp.connect().await;
    let client_id = lp.client_id.clone();

    // The next connect is held: sent by hand, on a kept-alive HTTP/1.1 connection.
    let body =
        json!([{"channel":"/meta/connect","clientId":client_id,"connectionType":"long-polling"}])
            .to_string();
    let mut stream = tokio::net::TcpStream::connect(&daemon.addr).await.unwrap();
    let request = format!(
        "POST /api/v2/notifications/connect HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        daemon.addr,
        common::basic_header(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Held: nothing comes back while the daemon runs.
    let mut first = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut first))
            .await
            .is_err(),
        "the connect is held"
    );

    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(daemon.child.id() as libc::pid_t, libc::SIGTERM) };
    // The whole answer, then the end of the connection: read_to_end returns only when the
    // daemon closes it.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer))
        .await
        .expect("the connection ends with the answer, not at the keep-alive timeout")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let batch: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(batch[0]["channel"], "/meta/connect");
    assert_eq!(batch[0]["advice"]["reconnect"], "retry");
    assert_eq!(batch[0]["advice"]["interval"], 2000);

    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not exit within 10 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
