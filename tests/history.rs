//! The history: every change recorded in the database file on disk, served newest first,
//! and read back by a daemon started again, so that `stateSince` and the serving instance
//! survive a restart.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Backend, Mode, TestDaemon, USER, eventually};
use serde_json::Value;

const CHECK: &str =
    r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn config(db: &Path, primary: &Backend, backup: &Backend) -> String {
    format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\n{CHECK}\n[[service]]\nid = \"hidden\"\ntype = \"Voice\"\nfeature = \"api-elsewhere\"\nprimary = {}\n{CHECK}\n",
        db.display(),
        primary.toml(),
        backup.toml(),
        primary.toml(),
    )
}

async fn states(d: &TestDaemon, query: &str) -> Vec<(String, Option<String>)> {
    let body = d.history("sips1", query).await;
    body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["state"].as_str().unwrap().to_string(),
                c["servingInstance"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_recorded_with_its_reason_and_served_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    primary.close().await;
    eventually(
        Duration::from_secs(5),
        "the switchover recorded",
        || async { (states(&d, "").await.len() == 2).then_some(()) },
    )
    .await;
    backup.close().await;
    eventually(Duration::from_secs(5), "the outage recorded", || async {
        (states(&d, "").await.len() == 3).then_some(())
    })
    .await;
    let p = |s: &str| Some(s.to_string());
    assert_eq!(
        states(&d, "").await,
        [
            ("Inactive".to_string(), None),
            ("Active".to_string(), p("backup")),
            ("Active".to_string(), p("primary")),
        ]
    );
    let body = d.history("sips1", "?limit=1").await;
    let newest = &body["history"][0];
    assert_eq!(body["statusCode"], 0);
    assert_eq!(body["history"].as_array().unwrap().len(), 1);
    let reason = newest["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("backup 127.0.0.1:{}: tcp check", backup.port())),
        "which instance, what its check saw: {reason}"
    );
    assert_eq!(newest["stateSince"], newest["at"], "a new state");
    // The switchover kept the state, and its since.
    let all = d.history("sips1", "").await;
    assert_eq!(all["history"][1]["stateSince"], all["history"][2]["at"]);
    // since/until select by time.
    let switch_at = all["history"][1]["at"].as_str().unwrap().to_string();
    assert_eq!(
        states(&d, &format!("?since={switch_at}&until={switch_at}")).await,
        [("Active".to_string(), p("backup"))]
    );
    // The file is real SQLite, and intact.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM changes WHERE service = 'sips1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 3);

    // Bad input gets the GWS envelope; a hidden service is not found.
    for (query, expected) in [
        (
            "?limit=5000",
            "limit: \"5000\" is not a number from 1 to 1000",
        ),
        (
            "?since=noon",
            "since: \"noon\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z",
        ),
        (
            "?state=Active",
            "unknown parameter \"state\"; the history takes since, until and limit",
        ),
    ] {
        let (status, body) = d
            .call_as(
                USER,
                reqwest::Method::GET,
                &format!("/api/v2/services/sips1/history{query}"),
                None,
            )
            .await;
        assert_eq!(
            (status, &body["statusCode"]),
            (400, &Value::from(2)),
            "{query}"
        );
        assert_eq!(body["statusMessage"], expected);
    }
    let (status, _) = d
        .call_as(
            USER,
            reqwest::Method::GET,
            "/api/v2/services/hidden/history",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_state_since_and_the_serving_instance() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let (since, at_switch) = {
        let d = TestDaemon::start(&config(&db, &primary, &backup));
        // A switchover, then the primary back: the backup keeps serving (no failback).
        primary.close().await;
        eventually(Duration::from_secs(5), "the backup serving", || async {
            (d.state_of("sips1").await.1.as_deref() == Some("backup")).then_some(())
        })
        .await;
        primary.reopen().await;
        let s = d.service("sips1").await;
        (s["stateSince"].clone(), states(&d, "").await.len())
    };
    // Stopped and started again on the same file.
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    let s = d.service("sips1").await;
    assert_eq!(s["state"], "Active");
    assert_eq!(s["stateSince"], since, "a restart is invisible to clients");
    assert_eq!(s["servingInstance"], "backup", "and does not fail back");
    assert_eq!(
        states(&d, "").await.len(),
        at_switch,
        "confirming the stored state is not a change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_opened_leaves_the_daemon_serving_without_history() {
    let primary = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[history]\npath = \"/nonexistent/servicewatch/history.sqlite\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
        primary.toml()
    ));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    assert_eq!(d.metric("servicewatch_history_writing").await, Some(0.0));
    let (status, body) = d
        .call_as(
            USER,
            reqwest::Method::GET,
            "/api/v2/services/sips1/history",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .starts_with("no history is kept"),
        "{body}"
    );
}
