//! A node alone is a cluster of one: every change carries a revision, and a UI whose
//! WebSocket blipped resumes from the last revision it saw and misses nothing; one that
//! resumes from before the daemon restarted is told that it missed changes (`ext.gap`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::bayeux::{Received, SERVICES, WsClient};
use common::{Backend, Mode, TestDaemon, eventually};
use serde_json::{Value, json};

const CHECK: &str =
    r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn config(db: &Path, backend: &Backend) -> String {
    format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = {}\n{CHECK}\n",
        db.display(),
        backend.toml(),
    )
}

/// Closes the backend if the service is Active, reopens it if not, and waits for REST to
/// show the new state; returns it.
async fn flip(d: &TestDaemon, backend: &mut Backend) -> String {
    let before = d.state_of("stat").await.0;
    if before == "Active" {
        backend.close().await;
    } else {
        backend.reopen().await;
    }
    eventually(Duration::from_secs(5), "the flip", || async {
        let now = d.state_of("stat").await.0;
        (now != before).then_some(now)
    })
    .await
}

fn revision(m: &Value) -> i64 {
    m["ext"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("a change without its revision: {m}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_whose_websocket_blipped_resumes_from_its_revision_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&dir.path().join("h.sqlite"), &backend));
    // The UI sees one change, with its revision, then its connection drops.
    let mut ui = WsClient::subscribed(&d).await;
    let first = flip(&d, &mut backend).await;
    let seen = loop {
        match ui.recv_within(Duration::from_secs(5)).await {
            Some(Received::Batch(batch)) => {
                if let Some(m) = batch.into_iter().find(|m| m["channel"] == SERVICES) {
                    break m;
                }
            }
            other => panic!("expected the change, got {other:?}"),
        }
    };
    assert_eq!(seen["data"]["service"]["state"], json!(first));
    let last = revision(&seen);
    drop(ui);
    // Three changes while it is away.
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(flip(&d, &mut backend).await);
    }
    let got = WsClient::resumed(&d, last, 3, Duration::from_secs(5)).await;
    let states: Vec<&Value> = got.iter().map(|m| &m["data"]["service"]["state"]).collect();
    assert_eq!(states, missed.iter().collect::<Vec<_>>(), "{got:?}");
    let revisions: Vec<i64> = got.iter().map(revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]) && revisions[0] > last,
        "{revisions:?} after {last}"
    );
    assert!(got.iter().all(|m| m["ext"].get("gap").is_none()), "{got:?}");
    // Nothing more than what it missed: no repeat.
    let again = WsClient::resumed(
        &d,
        *revisions.last().unwrap(),
        1,
        Duration::from_millis(500),
    )
    .await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_before_a_restart_says_it_missed_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut backend = Backend::start(Mode::Accept).await;
    let before_restart = {
        let d = TestDaemon::start(&config(&db, &backend));
        let mut ui = WsClient::subscribed(&d).await;
        flip(&d, &mut backend).await;
        let seen = ui.next_change(Duration::from_secs(5)).await;
        assert!(seen["state"].is_string());
        // The revision the UI kept, as the message carried it.
        d.state_of("stat").await;
        let got = WsClient::resumed(&d, 0, 1, Duration::from_secs(5)).await;
        revision(&got[0])
    };
    let d = TestDaemon::start(&config(&db, &backend));
    flip(&d, &mut backend).await;
    let state = d.state_of("stat").await.0;
    // The new process cannot say what happened between: it says so, and gives the state.
    let got = WsClient::resumed(&d, before_restart, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["ext"]["gap"], true, "{}", got[0]);
    assert_eq!(got[0]["data"]["service"]["state"], json!(state));
    assert!(
        revision(&got[0]) > before_restart,
        "revisions grow across restarts"
    );
    // A revision the node never published (from somewhere else) is no better.
    let got = WsClient::resumed(&d, i64::MAX / 2, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["ext"]["gap"], true, "{}", got[0]);
}
