//! The live status page (`GET /`), driven in headless Chromium as a person would: it logs in
//! through its form, shows every service, follows a real backend's death and return within
//! a second, shows a service's history on click, and breaks no rule of its
//! Content-Security-Policy. The screenshots land in `target/status-page.png` (a service
//! down) and `target/status-page-history.png` (a service's history open).

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::interop::{chromium, ready, root};
use common::{ADMIN, Backend, Mode, PASSWORD, TestDaemon, USER};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_logs_in_shows_the_services_and_follows_a_change_within_a_second() {
    drive(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_that_drops_websockets_the_page_goes_on_with_long_polling() {
    drive(true).await;
}

/// Logs in, watches a backend die and come back, opens a history; `no_websocket`: behind
/// a proxy that accepts WebSocket upgrades and drops them.
async fn drive(no_websocket: bool) {
    if !ready() {
        return;
    }
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let mut sips = Backend::start(Mode::Accept).await;
    let (stat, ixn_a, ixn_b) = (
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
    );
    // A watched check: the page's second is the page's, not the probe schedule's.
    let check =
        r#"check = { interval = "200ms", timeout = "500ms", rise = 1, fall = 1, watch = true }"#;
    let d = TestDaemon::start(&format!(
        "[history]\npath = \"{}\"\n\
         [[service]]\nid = \"sips1\"\nname = \"SIPS1\"\ntype = \"Voice\"\nprimary = {}\n{check}\n\
         [[service]]\nid = \"stat\"\nname = \"StatServer\"\ntype = \"Reporting\"\nprimary = {}\n{check}\n\
         [[service]]\nid = \"ixn\"\nname = \"InteractionServer\"\ntype = \"Media\"\nprimary = {}\nbackup = {}\n{check}\n\
         [[service]]\nid = \"tserver\"\nname = \"TServer_East\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n{check}\n",
        dir.path().join("h.sqlite").display(),
        sips.toml(),
        stat.toml(),
        ixn_a.toml(),
        ixn_b.toml(),
    ));
    let (status, _) = d
        .call_as(
            ADMIN,
            reqwest::Method::PUT,
            "/api/v2/services/ixn/instances/primary/maintenance",
            Some(json!({"reason": "upgrade to 8.5.2"})),
        )
        .await;
    assert_eq!(status, 200);

    // The page's own answers carry the strict policy it is written for.
    let page = reqwest::get(d.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains(r#"content="/api/v2""#));
    // The page's script is refused without a Basic challenge, so that the browser leaves
    // the login to the page's form; a program still gets the challenge.
    let client = reqwest::Client::new();
    let by_script = client
        .get(d.url("/api/v2/services"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(by_script.status(), 401);
    assert!(by_script.headers().get("www-authenticate").is_none());
    let by_program = client.get(d.url("/api/v2/services")).send().await.unwrap();
    assert!(by_program.headers().get("www-authenticate").is_some());

    let suffix = if no_websocket { "-long-polling" } else { "" };
    let shot = root().join(format!("target/status-page{suffix}.png"));
    let _ = std::fs::remove_file(&shot);
    let mut browser = Command::new("node")
        .arg(root().join("tests/interop/status-page.mjs"))
        .arg(d.url("/"))
        .arg(USER)
        .arg(PASSWORD)
        .arg(&shot)
        .current_dir(root().join("tests/interop"))
        .env("CHROMIUM", &chromium)
        .env("NO_WEBSOCKET", if no_websocket { "1" } else { "" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut ask = browser.stdin.take().unwrap();
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(30), said.next_line())
            .await
            .expect("the page answers within 30 s")
            .unwrap()
            .expect("the driver is running")
    };
    let link = if no_websocket {
        "live (long-polling)"
    } else {
        "live"
    };
    assert_eq!(
        next().await,
        format!("READY 4 {link}"),
        "every service shown, and how the page listens"
    );

    // A backend dies: the page shows it within a second, from the notification.
    sips.close().await;
    let died = Instant::now();
    ask.write_all(b"EXPECT sips1 Inactive\n").await.unwrap();
    assert!(next().await.starts_with("SEEN sips1 Inactive"));
    let took = died.elapsed();
    assert!(took < Duration::from_secs(1), "shown after {took:?}");
    ask.write_all(b"SHOT\n").await.unwrap();
    assert!(next().await.starts_with("SHOT "));
    sips.reopen().await;
    ask.write_all(b"EXPECT sips1 Active\n").await.unwrap();
    assert!(next().await.starts_with("SEEN sips1 Active"));
    ask.write_all(b"HISTORY sips1\n").await.unwrap();
    let history = next().await;
    let entries: usize = history.trim_start_matches("HISTORY ").parse().unwrap();
    assert!(entries >= 3, "assessed, died, back: {history}");
    let with_history = root().join(format!("target/status-page{suffix}-history.png"));
    ask.write_all(format!("SHOT {}\n", with_history.display()).as_bytes())
        .await
        .unwrap();
    assert!(next().await.starts_with("SHOT "));
    ask.write_all(b"QUIT\n").await.unwrap();
    drop(ask);
    let mut rest = Vec::new();
    while let Ok(Some(line)) = said.next_line().await {
        rest.push(line);
    }
    assert!(rest.is_empty(), "the page logged errors: {rest:?}");
    let status = browser.wait().await.unwrap();
    assert!(status.success());
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    println!("status page screenshot: {}", shot.display());
}
