//! Real CometD clients against the real daemon: the CometD JavaScript client (websocket
//! first), Faye and Python's aiocometd-ng (long-polling handshake, then WebSocket). Each
//! subscribes to `/notifications/services`; a backend is closed; the client must receive the
//! ServiceStateChangeMessage within the bound its check settings promise.
//!
//! `tests/interop/setup.sh` installs the clients (npm and a Python virtual environment);
//! it runs here once per test process, and CI runs it first. Set
//! `SERVICEWATCH_SKIP_INTEROP=1` to skip these tests on a machine without Node.js.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{Backend, Mode, TestDaemon, eventually};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SLACK: Duration = Duration::from_millis(1500);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the clients once; false when skipped.
fn ready() -> bool {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    if std::env::var_os("SERVICEWATCH_SKIP_INTEROP").is_some() {
        eprintln!("interop tests skipped: SERVICEWATCH_SKIP_INTEROP is set");
        return false;
    }
    let result = SETUP.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(root().join("tests/interop/setup.sh"))
            .output()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    });
    if let Err(e) = result {
        panic!("tests/interop/setup.sh failed (set SERVICEWATCH_SKIP_INTEROP=1 to skip):\n{e}");
    }
    true
}

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
