//! Hostile input that costs nothing to send: wrong passwords in bursts. Memory stays bounded,
//! one address gets no more checks than its failure budget, and everyone else is served.

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
