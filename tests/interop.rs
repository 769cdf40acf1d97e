//! Real CometD clients against the real daemon: the CometD JavaScript client (websocket
//! first), Faye and Python's aiocometd-ng (long-polling handshake, then WebSocket). Each
//! subscribes to `/notifications/services`; a backend is closed; the client must receive the
//! ServiceStateChangeMessage within the bound its check settings promise.
//!
//! And a real browser: headless Chromium loads a page from an allowed origin that logs in
//! and subscribes with the CometD client over a cookie-authenticated WebSocket, then a page
//! of the same site but another origin, which must be refused (cross-site WebSocket
//! hijacking would otherwise work: the browser sends it the cookie).
//!
//! `tests/interop/setup.sh` installs the clients (npm and a Python virtual environment);
//! it runs here once per test process, and CI runs it first. Set
//! `SKIP_INTEROP_TESTS=1` to skip these tests on a machine without Node.js.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::interop::{chromium, ready, root};
use common::{Backend, Mode, TestDaemon, eventually};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SLACK: Duration = Duration::from_millis(1500);

/// Runs a client until it reports the service Inactive after its backend closed.
async fn client_sees_the_change(program: PathBuf, script: &str, expect_transport: &str) {
    if !ready() {
        return;
    }
    let mut backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"100ms\", timeout = \"300ms\", fall = 2, jitter = 0.0 }}\n",
        backend.toml()
    ));
    eventually(Duration::from_secs(5), "Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    let check = &d.settings.services[0].pair.primary.check;
    let bound = check
        .schedule
        .worst_case_detection(check.timeout, check.fall)
        + SLACK;

    let mut child = Command::new(program)
        .arg(root().join("tests/interop").join(script))
        .arg(d.url("/api/v2/notifications"))
        .arg("Inactive")
        .current_dir(root().join("tests/interop"))
        .env("SW_USER", common::USER)
        .env("SW_PASSWORD", common::PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the client");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the client says something within 30 s")
            .expect("read the client's output")
            .expect("the client's output ended early")
    };

    let subscribed = next_line().await;
    assert_eq!(
        subscribed,
        format!("SUBSCRIBED {expect_transport}"),
        "{script}"
    );

    backend.close().await;
    let closed_at = Instant::now();
    let line = next_line().await;
    let elapsed = closed_at.elapsed();
    let service: serde_json::Value = serde_json::from_str(
        line.strip_prefix("STATE ")
            .unwrap_or_else(|| panic!("{script}: {line}")),
    )
    .unwrap();
    assert_eq!(service["id"], "sips1");
    assert_eq!(service["state"], "Inactive");
    assert!(
        elapsed <= bound,
        "{script}: the change took {elapsed:?}, more than the promised {bound:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the client exits")
        .unwrap();
    assert!(status.success(), "{script} exited with {status}");
}

fn node() -> PathBuf {
    PathBuf::from("node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cometd_javascript_client_over_websocket() {
    client_sees_the_change(node(), "cometd-client.mjs", "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faye_handshakes_over_long_polling_then_uses_websocket() {
    client_sees_the_change(node(), "faye-client.mjs", "websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiocometd_handshakes_over_long_polling_then_uses_websocket() {
    client_sees_the_change(
        root().join("target/interop-venv/bin/python"),
        "aiocometd-client.py",
        "websocket",
    )
    .await;
}

/// Serves a test page at `/` and the CometD library at `/cometd/...`, one request per
/// connection, until dropped.
struct UiServer {
    origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl UiServer {
    async fn start(page: impl Fn(&str) -> String + Send + Sync + 'static) -> UiServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let page = std::sync::Arc::new(page);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let page = page.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, kind, body) = match path.strip_prefix("/cometd/") {
                        Some(file) if !file.contains("..") => {
                            match std::fs::read(
                                root().join("tests/interop/node_modules/cometd").join(file),
                            ) {
                                Ok(bytes) => ("200 OK", "text/javascript", bytes),
                                Err(_) => ("404 Not Found", "text/plain", b"no such file".to_vec()),
                            }
                        }
                        _ => (
                            "200 OK",
                            "text/html; charset=utf-8",
                            page(&path).into_bytes(),
                        ),
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        UiServer { origin, task }
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A page whose module script reports its outcome in `document.title` ("DONE ...").
fn page(script: String) -> String {
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>loading</title>\n<script type=\"module\">\nconst done = (r) => {{ if (!document.title.startsWith(\"DONE \")) document.title = \"DONE \" + r; }};\ntry {{\n{script}\n}} catch (e) {{ done(\"ERROR \" + e); }}\n</script>\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_logs_in_and_subscribes_and_a_foreign_page_is_refused() {
    if !ready() {
        return;
    }
    let chromium = chromium();
    let backend = Backend::start(Mode::Accept).await;
    let daemon_origin = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let basic = common::basic_header();
    let for_ui = daemon_origin.clone();
    // The UI the daemon allows: it logs in with Basic (the browser keeps the cookie), then
    // the CometD client subscribes over a WebSocket that carries only that cookie.
    let ui = UiServer::start(move |_| {
        let daemon = for_ui.get().cloned().unwrap_or_default();
        page(format!(
            r#"const {{ CometD }} = await import("/cometd/cometd.js");
const login = await fetch("{daemon}/api/v2/services?fields=id", {{ headers: {{ Authorization: "{basic}" }}, credentials: "include" }});
if (login.status !== 200) done("LOGIN " + login.status);
const cometd = new CometD();
cometd.configure({{ url: "{daemon}/api/v2/notifications" }});
cometd.handshake((reply) => {{
    if (!reply.successful) {{ done("HANDSHAKE " + JSON.stringify(reply)); return; }}
    cometd.subscribe("/notifications/services", (m) => {{
        done(`STATE ${{m.data.service.id}} ${{m.data.service.state}} ${{cometd.getTransport().type}}`);
        cometd.disconnect();
    }}, {{ ext: {{ snapshot: true }} }});
}});"#
        ))
    })
    .await;
    // A page of the same site (so the browser does send the cookie) that the daemon does
    // not allow: it tries to read the API and to open the notification WebSocket.
    let for_foreign = daemon_origin.clone();
    let foreign = UiServer::start(move |_| {
        let daemon = for_foreign.get().cloned().unwrap_or_default();
        page(format!(
            r#"let read;
try {{ await fetch("{daemon}/api/v2/services", {{ credentials: "include" }}); read = "FETCH READ"; }}
catch (e) {{ read = "FETCH BLOCKED"; }}
const ws = new WebSocket("{daemon}/api/v2/notifications".replace("http", "ws"));
ws.onopen = () => done(read + " WS OPEN");
ws.onerror = () => done(read + " WS REFUSED");"#
        ))
    })
    .await;
    let d = TestDaemon::start(&format!(
        "allowed_origins = [\"{}\"]\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ interval = \"100ms\", jitter = 0.0 }}\n",
        ui.origin,
        backend.toml()
    ));
    daemon_origin.set(format!("http://{}", d.addr)).unwrap();
    eventually(Duration::from_secs(5), "Active", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;

    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("node")
            .arg(root().join("tests/interop/browser.mjs"))
            .arg(format!("{}/", ui.origin))
            .arg(format!("{}/", foreign.origin))
            .current_dir(root().join("tests/interop"))
            .env("CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finishes within 60 s")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let results: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PAGE "))
        .map(|l| l.split_once(' ').map_or("", |(_, result)| result))
        .collect();
    assert_eq!(
        results,
        ["STATE sips1 Active websocket", "FETCH BLOCKED WS REFUSED"],
        "{stderr}"
    );
    // Refused by the origin check (403), not for want of credentials: the cookie was there.
    let refused = d
        .metric(r#"servicewatch_http_requests_total{route="/api/v2/notifications",status="403"}"#)
        .await;
    assert_eq!(refused, Some(1.0), "{stderr}");
}
