//! Watched instances (`watch = true`): a connection held open to the backend between probes,
//! and what the daemon makes of it closing, against real loopback backends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, Mode, TestDaemon, eventually, stays};

/// A check whose probes alone would take 30 s and three failures to notice a death.
const SLOW_WATCHED: &str =
    r#"interval = "30s", timeout = "1s", rise = 1, fall = 3, jitter = 0.0, watch = true"#;

const WATCH_OPEN: &str = r#"servicewatch_watch_open{service="sips1",instance="primary"}"#;

fn config(backend: &Backend, check: &str) -> String {
    format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\ncheck = {{ kind = \"tcp\", {check} }}\n",
        backend.toml()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_backend_that_dies_is_down_long_before_its_next_probe() {
    // A server that keeps the connections it accepts, until its process dies.
    let mut backend = Backend::start(Mode::Stall).await;
    let d = TestDaemon::start(&config(&backend, SLOW_WATCHED));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    eventually(
        Duration::from_secs(5),
        "the watch connection open",
        || async { (d.metric(WATCH_OPEN).await == Some(1.0)).then_some(()) },
    )
    .await;

    let killed = Instant::now();
    backend.close().await;
    eventually(Duration::from_secs(5), "sips1 Inactive", || async {
        (d.state_of("sips1").await.0 == "Inactive").then_some(())
    })
    .await;
    let took = killed.elapsed();
    // The next probe is 30 s away and the probes would need three failures.
    assert!(took < Duration::from_secs(5), "noticed after {took:?}");
    let reason = d.service("sips1").await;
    assert_eq!(reason["state"], "Inactive", "{reason}");
    assert_eq!(d.metric(WATCH_OPEN).await, Some(0.0), "the watch is closed");
    // The instance detail says what the watch saw and what the probe made at once found.
    let shown = d.instances("sips1").await["instances"][0].clone();
    assert_eq!(shown["watch"]["open"], false, "{shown}");
    assert!(
        shown["lastCheck"]["detail"]
            .as_str()
            .unwrap()
            .contains("(probed at once: "),
        "{shown}"
    );

    // Recovery is the probes' to decide: nothing reopens the watch before they find it up.
    backend.reopen().await;
    stays(
        Duration::from_millis(500),
        "sips1 stays Inactive until probed",
        || async { d.state_of("sips1").await.0 == "Inactive" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_closes_idle_connections_stays_up_and_is_not_stormed() {
    // Accepts and closes at once, like a server with an idle timeout of zero. The probes
    // (half-open) never reach its accept loop, so every connection it counts is a watch.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = accepted.clone();
    let server = tokio::spawn(async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                counting.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"tcp\", interval = \"200ms\", timeout = \"1s\", rise = 1, fall = 1, jitter = 0.0, watch = true }}\n"
    ));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    // Each close is probed at once; the probe passes, so the service never moves.
    stays(Duration::from_secs(3), "sips1 Active", || async {
        d.state_of("sips1").await.0 == "Active"
    })
    .await;
    // Reopened with backoff, since each lived less than an interval: after 0, 200 ms,
    // 400 ms, 800 ms, 1.6 s (each give or take a quarter): about five in 3 s. Not once
    // (never reopened), not hundreds (a loop).
    let watches = accepted.load(Ordering::SeqCst);
    assert!(
        (3..=8).contains(&watches),
        "{watches} watch connections in 3 s"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_backend_restarted_at_once_is_seen_back_within_the_down_interval() {
    // Probes of a healthy server 30 s apart, of a down one 200 ms apart.
    let mut backend = Backend::start(Mode::Stall).await;
    let d = TestDaemon::start(&config(
        &backend,
        &format!("{SLOW_WATCHED}, down_interval = \"200ms\""),
    ));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    eventually(
        Duration::from_secs(5),
        "the watch connection open",
        || async { (d.metric(WATCH_OPEN).await == Some(1.0)).then_some(()) },
    )
    .await;
    backend.close().await;
    eventually(Duration::from_secs(5), "sips1 Inactive", || async {
        (d.state_of("sips1").await.0 == "Inactive").then_some(())
    })
    .await;

    let restarted = Instant::now();
    backend.reopen().await;
    eventually(Duration::from_secs(10), "sips1 Active again", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    let took = restarted.elapsed();
    // The probe planned while it was healthy was 30 s away; the down schedule's is 200 ms.
    assert!(took < Duration::from_secs(2), "seen back after {took:?}");
}
