//! `https` checks against real TLS backends on loopback, with a CA and certificates the
//! test makes (rcgen): verification against a CA file, a server name, a client certificate,
//! the certificate's days left as a metric and a degraded threshold, and each way a
//! handshake can fail, shown as a down instance with a readable reason.

mod common;

use std::time::Duration;

use common::certs::{Ca, serve};
use common::process::DaemonProcess;
use common::{TestDaemon, eventually};
use serde_json::Value;

const FAST: &str = r#"interval = "50ms", timeout = "1s", rise = 1, fall = 1"#;

fn service(port: u16, check: &str) -> String {
    format!(
        "[[service]]\nid = \"gws\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"https\", path = \"/health\", {FAST}, {check} }}\n"
    )
}

/// The primary's instance detail.
async fn instance(d: &TestDaemon) -> Value {
    d.instances("gws").await["instances"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_certificate_is_up_and_its_days_left_are_told() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (certificate, key) = ca.issue(&["localhost", "127.0.0.1"], 90);
    let port = serve(certificate, key, None).await;
    let d = TestDaemon::start(&service(
        port,
        &format!("ca_file = \"{}\"", dir.path().join("ca.pem").display()),
    ));
    assert_eq!(d.state_of("gws").await.0, "Active");
    let shown = instance(&d).await;
    assert_eq!(shown["check"], "https");
    assert_eq!(shown["health"], "up", "{shown}");
    let days = shown["certificate"]["daysLeft"].as_f64().unwrap();
    assert!((88.0..=90.0).contains(&days), "{shown}");
    let detail = shown["lastCheck"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("HTTP status 200, certificate valid for ")
            && detail.contains(" more days ("),
        "{detail}"
    );
    let metric = d
        .metric(r#"servicewatch_certificate_days_left{service="gws",instance="primary"}"#)
        .await
        .unwrap();
    assert!((88.0..=90.0).contains(&metric), "{metric}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_close_to_its_end_makes_the_instance_degraded_not_down() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (certificate, key) = ca.issue(&["127.0.0.1"], 5);
    let port = serve(certificate, key, None).await;
    let d = TestDaemon::start(&service(
        port,
        &format!(
            "ca_file = \"{}\", certificate_min_days = 14",
            dir.path().join("ca.pem").display()
        ),
    ));
    let shown = instance(&d).await;
    assert_eq!(shown["health"], "degraded", "{shown}");
    assert!(
        shown["lastCheck"]["detail"]
            .as_str()
            .unwrap()
            .contains("below certificate_min_days = 14"),
        "{shown}"
    );
    assert_eq!(
        d.state_of("gws").await.0,
        "Active",
        "a degraded instance serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_verification_is_a_down_instance_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let ca_file = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
    let (certificate, key) = ca.issue(&["gws.example.com"], 90);
    let port = serve(certificate, key, None).await;
    let cases = [
        // The system's CAs do not know the test CA.
        (String::new(), "invalid peer certificate: UnknownIssuer"),
        // Issued for another name than the one asked for.
        (
            ca_file.clone(),
            "invalid peer certificate: certificate not valid for name",
        ),
    ];
    for (check, reason) in cases {
        let d = TestDaemon::start(&service(port, &check));
        assert_eq!(d.state_of("gws").await.0, "Inactive");
        let shown = instance(&d).await;
        assert_eq!(shown["health"], "down");
        let detail = shown["lastCheck"]["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(&format!("TLS handshake with 127.0.0.1:{port} failed: "))
                && detail.contains(reason),
            "{detail}"
        );
        assert!(shown.get("certificate").is_none(), "never shown: {shown}");
    }
    // The right name, given: up.
    let d = TestDaemon::start(&service(
        port,
        &format!("{ca_file}, server_name = \"gws.example.com\""),
    ));
    assert_eq!(d.state_of("gws").await.0, "Active");

    let (certificate, key) = ca.issue(&["127.0.0.1"], -2);
    let expired = serve(certificate, key, None).await;
    let d = TestDaemon::start(&service(expired, &ca_file));
    let detail = instance(&d).await["lastCheck"]["detail"].clone();
    assert!(
        detail
            .as_str()
            .unwrap()
            .contains("invalid peer certificate: certificate expired"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_demands_a_client_certificate_gets_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    ca.client_files(dir.path());
    let (certificate, key) = ca.issue(&["127.0.0.1"], 90);
    let port = serve(certificate, key, Some(&ca)).await;
    let ca_file = format!("ca_file = \"{}\"", dir.path().join("ca.pem").display());
    let without = TestDaemon::start(&service(port, &ca_file));
    assert_eq!(without.state_of("gws").await.0, "Inactive");
    let with = TestDaemon::start(&service(
        port,
        &format!(
            "{ca_file}, client_certificate = \"{}\", client_key = \"{}\"",
            dir.path().join("client.pem").display(),
            dir.path().join("client.key").display()
        ),
    ));
    eventually(Duration::from_secs(5), "gws Active", || async {
        (with.state_of("gws").await.0 == "Active").then_some(())
    })
    .await;
}

#[test]
fn skipping_verification_works_and_is_logged_as_a_warning() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (certificate, key) = ca.issue(&["gws.example.com"], 90);
    let port = runtime.block_on(serve(certificate, key, None));
    let _guard = runtime.enter();
    let d = DaemonProcess::spawn(&format!(
        "[[service]]\nid = \"gws\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"https\", {FAST}, tls_skip_verify = true }}\n"
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.log_lines("tls_skip_verify = true").is_empty()
        || d.log_lines("service assessed").is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "no warning logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let warning = &d.log_lines("tls_skip_verify = true")[0];
    assert!(warning.contains("WARN"), "{warning}");
    let assessed = &d.log_lines("service assessed")[0];
    assert!(assessed.contains("state=Active"), "{assessed}");
}

#[test]
fn unusable_tls_files_are_refused_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let check = |extra: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!(
                "[[service]]\nid = \"gws\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\ncheck = {{ kind = \"https\", {extra} }}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_servicewatch"))
            .args(["check-config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{extra}");
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = check(r#"ca_file = "nowhere.pem""#);
    assert!(
        missing.contains("service[0] (gws).primary.check.ca_file: cannot read ")
            && missing.contains("nowhere.pem: No such file"),
        "{missing}"
    );
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let empty = check(r#"ca_file = "empty.pem""#);
    assert!(
        empty.contains("check.ca_file: ") && empty.contains("no PEM CERTIFICATE block"),
        "{empty}"
    );
    let half = check(r#"client_certificate = "c.pem""#);
    assert!(
        half.contains("check.client_key: a client_certificate needs its client_key"),
        "{half}"
    );
    let days = check("certificate_min_days = -1");
    assert!(
        days.contains("certificate_min_days: must be a number of days"),
        "{days}"
    );
}
