//! The history file under `kill -9`: the daemon binary is killed at random moments while a
//! backend flips and changes flow, and started again on the same file, in a loop. After
//! each start the file must be intact, and every change the daemon logged more than a
//! second before its death must be in it.
//!
//! `HISTORY_KILLS` sets the number of kills (CI runs a few; the figures in the closing
//! notes come from a longer run).

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::process::DaemonProcess;
use common::{Backend, Mode, PASSWORD, USER, users_toml};

/// The log lines of the transitions that the history records (a first assessment that
/// only confirms the stored state is logged as such, and not recorded).
const RECORDED: [&str; 4] = [
    "service assessed",
    "service state changed",
    "switchover",
    "serving instance changed",
];

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn a_daemon_killed_at_any_moment_keeps_an_intact_history_of_all_but_its_last_second() {
    let kills: usize = std::env::var("HISTORY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let primary = runtime.block_on(Backend::start(Mode::Accept));
    // The server flips every 30 ms: the service fails and comes back, again and again.
    let flipping = {
        let port = primary.port();
        drop(primary);
        runtime.spawn(async move {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let mut up = None;
            loop {
                up = match up {
                    None => servicewatch::standin::StandIn::start_on(addr, Mode::Accept)
                        .await
                        .ok(),
                    Some(mut standin) => {
                        standin.close().await;
                        None
                    }
                };
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        });
        port
    };
    let config = format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {flipping} }}\ncheck = {{ interval = \"20ms\", timeout = \"200ms\", rise = 1, fall = 1, jitter = 0.0 }}\n[log]\nlevel = \"info\"\n{}",
        db.display(),
        users_toml(),
    );
    let (mut logged, mut kept, mut lost) = (0usize, 0usize, 0usize);
    for kill in 0..kills {
        let started = SystemTime::now();
        let daemon = DaemonProcess::spawn(&config);
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.log_lines("history opened").is_empty() {
            assert!(Instant::now() < deadline, "kill {kill}: no history opened");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Changes flow for a while, then the process dies without a word.
        std::thread::sleep(Duration::from_millis(300 + fastrand::u64(0..700)));
        let mut daemon = daemon;
        let killed = Instant::now();
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        let died = SystemTime::now();
        // Changes logged a second before the death must be kept; later ones may be lost.
        let count = |before| -> usize {
            RECORDED
                .iter()
                .map(|t| daemon_lines(&daemon, t, before))
                .sum()
        };
        let must_keep = count(killed - Duration::from_secs(1));
        let all_logged = count(killed + Duration::from_secs(1));
        let conn = rusqlite::Connection::open(&db).unwrap();
        let verdict: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(verdict, "ok", "kill {kill}: the file is damaged");
        let rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM changes WHERE at_ms >= ?1 AND at_ms <= ?2",
                [millis(started), millis(died)],
                |r| r.get(0),
            )
            .unwrap();
        let rows = rows as usize;
        assert!(
            rows >= must_keep,
            "kill {kill}: {must_keep} changes logged a second before the kill, {rows} kept"
        );
        assert!(
            rows <= all_logged,
            "kill {kill}: {rows} rows for {all_logged} changes"
        );
        logged += all_logged;
        kept += rows;
        lost += all_logged - rows;
    }
    eprintln!(
        "history kill loop: {kills} kills, {logged} changes logged, {kept} kept, {lost} lost (all within the last second before a kill), 0 damaged files"
    );
    assert!(logged > kills, "changes flowed: {logged}");

    // A last start: the API serves what the file holds, newest first.
    let daemon = DaemonProcess::spawn(&config);
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    let body: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(daemon.url("/api/v2/services/sips1/history?limit=1000"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let served = body["history"].as_array().unwrap();
    assert!(
        served.len() >= (rows as usize).min(1000) && served.len() <= 1000,
        "{} served of {rows}",
        served.len()
    );
    let times: Vec<&str> = served.iter().map(|c| c["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    runtime.shutdown_background();
}

fn daemon_lines(daemon: &DaemonProcess, text: &str, before: Instant) -> usize {
    daemon.log_lines_before(text, before).len()
}
