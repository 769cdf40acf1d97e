//! Alerts: what fires and resolves as real backends fail and come back, who may see it,
//! what a maintenance window mutes, and what a restart keeps (the alerts' view lives in
//! the history database, so a restart tells nothing new).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ADMIN, Backend, Mode, SUPERVISOR, TestDaemon, USER, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const CHECK: &str = r#"check = { kind = "tcp", interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn config(db: &Path, primary: &Backend, backup: &Backend) -> String {
    format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nattributes = {{ site = \"paris\" }}\nprimary = {}\nbackup = {}\n{CHECK}\n",
        db.display(),
        primary.toml(),
        backup.toml(),
    )
}

/// The names of the alerts firing, as a supervisor reads them.
async fn firing(d: &TestDaemon) -> Vec<String> {
    let (status, body) = d
        .call_as(SUPERVISOR, Method::GET, "/api/v2/alerts", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["alerts"]
        .as_array()
        .expect("an alerts list")
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

async fn until_firing(d: &TestDaemon, expected: &[&str]) -> Vec<String> {
    eventually(
        Duration::from_secs(5),
        &format!("alerts {expected:?}"),
        || async {
            let now = firing(d).await;
            (now == expected).then_some(now)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_as_backends_fail_and_resolve_as_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    assert!(firing(&d).await.is_empty(), "a healthy pair fires nothing");

    backup.close().await;
    until_firing(&d, &["RedundancyLost"]).await;
    let (_, body) = d.call_as(ADMIN, Method::GET, "/api/v2/alerts", None).await;
    let alert = &body["alerts"][0];
    assert_eq!(alert["service"], "sips1");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["labels"]["alertname"], "RedundancyLost");
    assert_eq!(
        alert["labels"]["site"], "paris",
        "string attributes are labels"
    );
    assert!(
        alert["startsAt"].as_str().unwrap().ends_with('Z'),
        "{alert}"
    );
    assert_eq!(d.metric("servicewatch_alerts_firing").await, Some(1.0));

    primary.close().await;
    until_firing(&d, &["RedundancyLost", "ServiceInactive"]).await;

    primary.reopen().await;
    until_firing(&d, &["RedundancyLost"]).await;
    backup.reopen().await;
    until_firing(&d, &[]).await;
    assert_eq!(d.metric("servicewatch_alerts_firing").await, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_may_not_read_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&dir.path().join("h.sqlite"), &primary, &backup));
    let (status, body) = d.call_as(USER, Method::GET, "/api/v2/alerts", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["statusCode"], 5, "the GWS envelope: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_maintenance_fires_nothing_until_the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&dir.path().join("h.sqlite"), &primary, &backup));
    let window = "/api/v2/services/sips1/maintenance";
    let (status, body) = d
        .call_as(
            ADMIN,
            Method::PUT,
            window,
            Some(json!({"reason": "patching"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    primary.close().await;
    backup.close().await;
    eventually(
        Duration::from_secs(5),
        "the service to go Inactive",
        || async {
            let s: Value = d.service("sips1").await;
            (s["state"] == "Inactive").then_some(())
        },
    )
    .await;
    assert!(firing(&d).await.is_empty(), "muted by the window");
    let (status, body) = d.call_as(ADMIN, Method::DELETE, window, None).await;
    assert_eq!(status, 200, "{body}");
    until_firing(&d, &["RedundancyLost", "ServiceInactive"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_when_an_alert_started() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let primary = Backend::start(Mode::Accept).await;
    let mut backup = Backend::start(Mode::Accept).await;
    let started_at = {
        let d = TestDaemon::start(&config(&db, &primary, &backup));
        backup.close().await;
        until_firing(&d, &["RedundancyLost"]).await;
        let (_, body) = d.call_as(ADMIN, Method::GET, "/api/v2/alerts", None).await;
        body["alerts"][0]["startsAt"].clone()
    };
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    until_firing(&d, &["RedundancyLost"]).await;
    let (_, body) = d.call_as(ADMIN, Method::GET, "/api/v2/alerts", None).await;
    assert_eq!(body["alerts"][0]["startsAt"], started_at, "{body}");
}
