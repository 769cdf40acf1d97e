//! Every way a probe can fail ends as a down instance with a reason a person can read, and
//! leaves nothing behind: the same file descriptors open after many failed probes as before.
//!
//! A test binary of its own, with one test: descriptors are counted for the whole process,
//! which other tests running beside it would disturb.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use servicewatch::domain::health::ProbeOutcome;
use servicewatch::probe::{CheckKind, Target, http, run};

/// File descriptors open in this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A listener that answers every connection with `bytes`, then closes it; `None`: accepts
/// and says nothing, until the prober gives up and closes.
async fn backend(bytes: Option<&'static [u8]>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Bounded: the test makes far fewer connections.
        for _ in 0..10_000 {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            match bytes {
                Some(bytes) => {
                    let _ = stream.write_all(bytes).await;
                }
                None => {
                    tokio::spawn(async move {
                        let mut sink = Vec::new();
                        let _ = stream.read_to_end(&mut sink).await;
                    });
                }
            }
        }
    });
    Target {
        host: "127.0.0.1".into(),
        port,
    }
}

fn http() -> CheckKind {
    CheckKind::Http(http::HttpCheck {
        method: "GET".into(),
        path: "/health".into(),
        expect_status: Vec::new(),
        expect_body: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_probes_are_down_with_a_reason_and_leak_nothing() {
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        Target {
            host: "127.0.0.1".into(),
            port,
        }
    };
    let garbage = backend(Some(b"\x00\x01garbage that is no protocol at all\r\n\r\n")).await;
    let silent = backend(None).await;
    let cases = [
        ("tcp, refused", CheckKind::Tcp, refused.clone(), "failed"),
        ("http, refused", http(), refused.clone(), "failed"),
        ("http, garbage", http(), garbage.clone(), ""),
        ("http, silent", http(), silent.clone(), "within 100ms"),
        ("cql, garbage", CheckKind::Cql, garbage.clone(), ""),
        ("cql, silent", CheckKind::Cql, silent.clone(), "100ms"),
    ];
    // Warm up what is allocated once (the runtime's I/O driver, thread pools).
    for (_, kind, target, _) in &cases {
        run(kind, target, Duration::from_millis(100)).await;
    }
    let before = open_fds();
    for round in 0..10 {
        for (name, kind, target, says) in &cases {
            let report = run(kind, target, Duration::from_millis(100)).await;
            assert_eq!(report.outcome, ProbeOutcome::Down, "{name}: {report:?}");
            assert!(
                report.detail.contains(says) && report.detail.len() > 10,
                "{name}, round {round}: a reason a person can read: {:?}",
                report.detail
            );
            assert!(
                report.detail.is_ascii() || report.detail.chars().all(|c| !c.is_control()),
                "{name}: no raw bytes in the log: {:?}",
                report.detail
            );
        }
    }
    // The silent backend closes its side once it reads the prober's close: give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while open_fds() > before {
        assert!(
            std::time::Instant::now() < deadline,
            "descriptors not back where they were: {} open, {before} before",
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
