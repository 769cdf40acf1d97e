//! Hostile input that costs nothing to send: wrong passwords in bursts, malformed requests.
//! Memory stays bounded, one address gets no more checks than its failure budget, the log
//! does not grow with the input, and everyone else is served.

mod common;

use common::process::DaemonProcess;
use common::{PASSWORD, TestDaemon, USER, users_toml};
use reqwest::StatusCode;

/// Wrong logins sent at once, from `client`'s address; returns their statuses.
async fn burst(
    client: &reqwest::Client,
    url: &str,
    logins: &[(String, String)],
) -> Vec<StatusCode> {
    let requests = logins
        .iter()
        .map(|(user, password)| client.get(url).basic_auth(user, Some(password)).send());
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("an answer").status())
        .collect()
}

fn wrong(user: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (user.to_string(), format!("wrong{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_wrong_passwords_leave_memory_bounded() {
    // The throttle off: nothing but the checks' own bound stands between a burst and Argon2.
    let daemon = DaemonProcess::spawn(&format!("[auth]\nmax_failures = 0\n{}", users_toml()));
    let client = reqwest::Client::new();
    let url = daemon.url("/api/v2/services");
    let before = daemon.rss_kib();
    let unknown: Vec<_> = (0..64)
        .map(|i| (format!("nobody{i}"), "pw".to_string()))
        .collect();
    for logins in [wrong(USER, 64), unknown, wrong(USER, 64)] {
        let statuses = burst(&client, &url, &logins).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
    }
    let after = daemon.rss_kib();
    // Each check needs 19 MiB; one buffer per check slot (at most 4) is kept and reused.
    // Unbounded, three such bursts took gigabytes.
    assert!(
        after < before + 100 * 1024,
        "resident memory grew from {before} KiB to {after} KiB"
    );
    let right = client
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_address_gets_no_more_checks_than_its_budget() {
    let d = TestDaemon::start("[auth]\nmax_failures = 5\nlockout = \"60s\"\n");
    let client = reqwest::Client::new();
    let statuses = burst(&client, &d.url("/api/v2/services"), &wrong(USER, 64)).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 64, "{statuses:?}");
    assert!(checked <= 5, "{checked} wrong passwords were checked");
    assert!(
        d.metric("servicewatch_password_verifications_total")
            .await
            .unwrap()
            <= 5.0
    );
    // Another address still logs in.
    let neighbour = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let right = neighbour
        .get(d.url("/api/v2/services"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_do_not_flood_the_log() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = DaemonProcess::spawn(&users_toml());
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: \x01\x02\r\n\r\n",
        b"\x16\x03\x01 not http at all\r\n\r\n",
    ];
    for i in 0..300 {
        let mut tcp = tokio::net::TcpStream::connect(&daemon.addr).await.unwrap();
        tcp.write_all(garbage[i % garbage.len()]).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 400 "),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    // One summary line tells of them, at INFO, soon.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let summary = loop {
        let lines = daemon.log_lines("malformed HTTP input");
        if let Some(line) = lines.first() {
            break line.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no summary line");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(summary.contains("INFO"), "{summary}");
    assert!(
        daemon.log_lines("ERROR").is_empty(),
        "{:?}",
        daemon.log_lines("ERROR")
    );
    assert!(
        daemon.log_lines("parse error").len() <= 1,
        "one line per bad request: {:?}",
        daemon.log_lines("parse error")
    );
    let client = reqwest::Client::new();
    let right = client
        .get(daemon.url("/api/v2/services"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK, "still serving");
}
