//! Each receiver against a real counterpart on loopback, started by the test: an HTTP
//! server (actix-web's) that records what a webhook sends, a real Alertmanager (Debian's
//! `prometheus-alertmanager`; skipped with a note where it is not installed, never under
//! CI), programs written by the test, and a real SMTP server (Python's aiosmtpd,
//! tests/interop/smtp-server.py, in the interop virtual environment).
//!
//! One delivery is one attempt: a failure must come back as an error that says what the
//! counterpart said, and within the receiver's timeout (plus a margin for a busy machine).

mod common;
#[path = "receivers/counterparts.rs"]
mod counterparts;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::certs::Ca;
use common::eventually;
use counterparts::{Alertmanager, HookServer, SmtpServer, closed_port, silent_port};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use servicewatch::alerts::event::{Alert, AlertStatus, Event, EventKind, ServiceRef, Severity};
use servicewatch::alerts::notification::{self, Notification};
use servicewatch::alerts::receivers::{
    AlertmanagerSpec, CaCertificates, DeliveryError, EmailSpec, ExecSpec, Login, Receiver,
    ReceiverKind, ReceiverSpec, Secret, SmtpSecurity, WebhookSpec,
};

/// How late past its timeout a failed attempt may come back on a busy machine.
const MARGIN: Duration = Duration::from_secs(1);

fn receiver(name: &str, kind: ReceiverKind, timeout: Duration) -> Receiver {
    Receiver::new(ReceiverSpec {
        name: name.into(),
        kind,
        timeout,
        attempts: 3,
        queue: 10,
    })
    .unwrap()
}

/// A service gone Inactive (or back), with its alert; `key` names the notification.
fn notification(key: &str, status: AlertStatus) -> Notification {
    let now = SystemTime::now();
    let started = now - Duration::from_secs(60);
    let (state, previous) = match status {
        AlertStatus::Firing => ("Inactive", "Active"),
        AlertStatus::Resolved => ("Active", "Inactive"),
    };
    Notification {
        version: notification::VERSION,
        key: key.into(),
        receiver: "test".into(),
        status,
        node: "node-a".into(),
        created_at: now,
        events: vec![Event {
            key: format!("sips1/42/stateChanged/{key}"),
            kind: EventKind::StateChanged,
            at: now,
            revision: 42,
            service: Some(ServiceRef {
                id: "sips1".into(),
                name: "SIPS1".into(),
                service_type: "Voice".into(),
            }),
            state: Some(state.into()),
            previous_state: Some(previous.into()),
            serving_instance: None,
            previous_serving_instance: Some("primary".into()),
            planned: None,
            severity: Severity::Critical,
            summary: format!("SIPS1 is {state}"),
            reason: "primary: connection refused".into(),
        }],
        alerts: vec![Alert {
            name: "ServiceInactive".into(),
            service: "sips1".into(),
            status,
            severity: Severity::Critical,
            starts_at: started,
            ends_at: (status == AlertStatus::Resolved).then_some(now),
            summary: "SIPS1 is Inactive".into(),
            labels: BTreeMap::from([
                ("alertname".into(), "ServiceInactive".into()),
                ("service".into(), "sips1".into()),
                ("severity".into(), "critical".into()),
                ("test".into(), key.into()),
            ]),
        }],
        repeat: false,
    }
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A shell script at `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    write_file(dir, name, &format!("{body}\n"))
}

fn ca_certificates(dir: &Path) -> CaCertificates {
    let path = dir.join("ca.pem");
    let text = std::fs::read(&path).unwrap();
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    CaCertificates { path, certificates }
}

/// `sha256=<hex>` of `body` under `secret`, computed here as a receiving service would.
fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Delivers and says how long it took.
async fn timed(r: &Receiver, n: &Notification) -> (Result<(), DeliveryError>, Duration) {
    let started = Instant::now();
    let result = r.deliver(n).await;
    (result, started.elapsed())
}

#[actix_rt::test]
async fn a_webhook_posts_the_signed_notification_and_fails_on_an_error_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = HookServer::start(&[500], None);
    let webhook = WebhookSpec {
        url: format!("http://127.0.0.1:{}/hooks/t0ken?x=1", server.port)
            .parse()
            .unwrap(),
        secret: Some(Secret::read(&write_file(dir.path(), "secret", "hook-secret\n")).unwrap()),
        login: Some(Login {
            username: "sw".into(),
            password: Secret::read(&write_file(dir.path(), "password", "pa55")).unwrap(),
        }),
        ca: None,
    };
    let r = receiver(
        "hook",
        ReceiverKind::Webhook(webhook),
        Duration::from_secs(5),
    );
    let n = notification("n-webhook", AlertStatus::Firing);

    let error = r.deliver(&n).await.unwrap_err();
    assert!(
        matches!(error, DeliveryError::Status { status: 500, .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            r"http://127.0.0.1:{} answered 500 Internal Server Error: database on fire\nsee the logs",
            server.port
        ),
        "the origin alone is named: the path may hold a token"
    );
    r.deliver(&n).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let expected = serde_json::to_value(&n).unwrap();
    for request in &seen {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/hooks/t0ken?x=1");
        let header = |name: &str| request.headers.get(name).map(String::as_str);
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("idempotency-key"), Some("n-webhook"));
        assert_eq!(
            header("x-servicewatch-signature"),
            Some(signature(b"hook-secret", &request.body).as_str()),
            "over the exact body, with the file's line ending trimmed"
        );
        assert_eq!(header("authorization"), Some("Basic c3c6cGE1NQ=="));
        assert!(header("user-agent").unwrap().starts_with("servicewatch/"));
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body, expected, "the notification's JSON, as it is");
    }
    assert_eq!(
        seen[0].body, seen[1].body,
        "every attempt sends the same bytes"
    );
}

#[actix_rt::test]
async fn a_webhook_that_never_answers_times_out_and_a_closed_port_refuses() {
    let timeout = Duration::from_millis(500);
    let hook = |port: u16| {
        let url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let spec = WebhookSpec {
            url,
            secret: None,
            login: None,
            ca: None,
        };
        receiver("hook", ReceiverKind::Webhook(spec), timeout)
    };
    let n = notification("n-timeout", AlertStatus::Firing);

    let port = silent_port().await;
    let (result, took) = timed(&hook(port), &n).await;
    let error = result.unwrap_err();
    assert!(matches!(error, DeliveryError::TimedOut { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("http://127.0.0.1:{port} did not answer within 500ms")
    );
    assert!(took >= timeout && took < timeout + MARGIN, "{took:?}");

    let port = closed_port();
    let error = hook(port).deliver(&n).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("http://127.0.0.1:{port} refused the connection")
    );
}

#[actix_rt::test]
async fn an_https_webhook_is_verified_against_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    ca.issue_files(&["127.0.0.1"], dir.path(), "server");
    let tls = servicewatch::tls::server_config(&servicewatch::config::server::TlsSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        certificate: dir.path().join("server.pem"),
        key: dir.path().join("server.key"),
    })
    .unwrap();
    let server = HookServer::start(&[], Some(tls));
    let hook = |ca: Option<CaCertificates>| {
        let url = format!("https://127.0.0.1:{}/hook", server.port);
        let spec = WebhookSpec {
            url: url.parse().unwrap(),
            secret: None,
            login: None,
            ca,
        };
        receiver("hook", ReceiverKind::Webhook(spec), Duration::from_secs(5))
    };
    let n = notification("n-https", AlertStatus::Firing);

    hook(Some(ca_certificates(dir.path())))
        .deliver(&n)
        .await
        .unwrap();
    assert_eq!(server.seen().len(), 1);

    // The system's CA certificates do not know the test's CA.
    let error = hook(None).deliver(&n).await.unwrap_err();
    assert!(
        matches!(error, DeliveryError::Unreachable { .. })
            && error
                .to_string()
                .ends_with("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
    assert_eq!(
        server.seen().len(),
        1,
        "nothing is sent to a server not verified"
    );
}

/// The alerts Alertmanager lists whose `test` label is `key`.
async fn listed(am: &Alertmanager, key: &str) -> Vec<serde_json::Value> {
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{}/api/v2/alerts", am.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .into_iter()
        .filter(|a| a["labels"]["test"] == key)
        .collect()
}

#[actix_rt::test]
async fn alertmanager_is_told_of_an_alert_firing_then_resolved() {
    if !Path::new(counterparts::ALERTMANAGER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing under CI: apt-get install prometheus-alertmanager, as .ci/run does",
            counterparts::ALERTMANAGER
        );
        eprintln!(
            "skipped: {} is missing (apt-get install prometheus-alertmanager)",
            counterparts::ALERTMANAGER
        );
        return;
    }
    let am = Alertmanager::start();
    let down = format!("http://127.0.0.1:{}", closed_port());
    let spec = AlertmanagerSpec {
        // An instance down is logged; the other took the alerts.
        urls: [&am.url, &down]
            .iter()
            .map(|u| format!("{u}/api/v2/alerts").parse().unwrap())
            .collect(),
        login: None,
        ca: None,
    };
    let r = receiver(
        "am",
        ReceiverKind::Alertmanager(spec),
        Duration::from_secs(5),
    );

    let firing = notification("n-am", AlertStatus::Firing);
    r.deliver(&firing).await.unwrap();
    let alert = eventually(Duration::from_secs(10), "the alert, active", || async {
        listed(&am, "n-am")
            .await
            .pop()
            .filter(|a| a["status"]["state"] == "active")
    })
    .await;
    assert_eq!(alert["labels"]["alertname"], "ServiceInactive");
    assert_eq!(alert["labels"]["service"], "sips1");
    assert_eq!(alert["annotations"]["summary"], "SIPS1 is Inactive");
    assert_eq!(
        alert["annotations"]["description"],
        "primary: connection refused"
    );
    let written = serde_json::to_value(&firing.alerts[0]).unwrap();
    assert_eq!(alert["startsAt"], written["startsAt"]);

    r.deliver(&notification("n-am", AlertStatus::Resolved))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the alert, resolved", || async {
        listed(&am, "n-am").await.is_empty().then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn no_alertmanager_taking_the_alerts_fails_naming_each() {
    let ports = [closed_port(), closed_port()];
    let spec = AlertmanagerSpec {
        urls: ports
            .iter()
            .map(|p| {
                format!("http://127.0.0.1:{p}/api/v2/alerts")
                    .parse()
                    .unwrap()
            })
            .collect(),
        login: None,
        ca: None,
    };
    let r = receiver(
        "am",
        ReceiverKind::Alertmanager(spec),
        Duration::from_secs(2),
    );
    let error = r
        .deliver(&notification("n-none", AlertStatus::Firing))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no Alertmanager took the alerts: http://127.0.0.1:{} refused the connection; http://127.0.0.1:{} refused the connection",
            ports[0], ports[1]
        )
    );
}

/// A receiver running `script` with `args`. The shell runs it rather than exec(2): a file
/// just written may still be open in a process that another test forks at that moment,
/// and executing it would then fail with ETXTBSY.
fn exec(script: PathBuf, args: &[&Path], timeout: Duration) -> Receiver {
    let spec = ExecSpec {
        program: SH.into(),
        args: std::iter::once(script.as_path())
            .chain(args.iter().copied())
            .map(|a| a.display().to_string())
            .collect(),
    };
    receiver("pager", ReceiverKind::Exec(spec), timeout)
}

const SH: &str = "/bin/sh";

#[actix_rt::test]
async fn a_program_is_told_in_its_environment_and_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "notify",
        "env | grep '^SERVICEWATCH_' | sort > \"$1/env\"\ncat > \"$1/stdin\"",
    );
    let n = notification("n-exec", AlertStatus::Firing);
    exec(program, &[dir.path()], Duration::from_secs(5))
        .deliver(&n)
        .await
        .unwrap();

    let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
    let env: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let at = serde_json::to_value(&n.events[0]).unwrap()["at"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = HashMap::from([
        ("SERVICEWATCH_RECEIVER", "test"),
        ("SERVICEWATCH_KEY", "n-exec"),
        ("SERVICEWATCH_STATUS", "firing"),
        ("SERVICEWATCH_SUMMARY", "SIPS1 is Inactive"),
        ("SERVICEWATCH_NODE", "node-a"),
        ("SERVICEWATCH_REPEAT", "false"),
        ("SERVICEWATCH_EVENTS", "1"),
        ("SERVICEWATCH_ALERTS", "1"),
        ("SERVICEWATCH_EVENT_KEY", "sips1/42/stateChanged/n-exec"),
        ("SERVICEWATCH_EVENT_KIND", "stateChanged"),
        ("SERVICEWATCH_EVENT_AT", at.as_str()),
        ("SERVICEWATCH_REVISION", "42"),
        ("SERVICEWATCH_SEVERITY", "critical"),
        ("SERVICEWATCH_REASON", "primary: connection refused"),
        ("SERVICEWATCH_SERVICE", "sips1"),
        ("SERVICEWATCH_SERVICE_NAME", "SIPS1"),
        ("SERVICEWATCH_SERVICE_TYPE", "Voice"),
        ("SERVICEWATCH_STATE", "Inactive"),
        ("SERVICEWATCH_PREVIOUS_STATE", "Active"),
        ("SERVICEWATCH_PREVIOUS_SERVING_INSTANCE", "primary"),
    ]);
    assert_eq!(env, expected);
    let stdin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stdin")).unwrap()).unwrap();
    assert_eq!(stdin, serde_json::to_value(&n).unwrap());

    // A program that reads nothing and succeeds has succeeded.
    let quiet = script(dir.path(), "quiet", "exit 0");
    exec(quiet, &[], Duration::from_secs(5))
        .deliver(&n)
        .await
        .unwrap();
}

#[actix_rt::test]
async fn a_failing_program_says_its_exit_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "fail",
        "echo 'paging gateway unreachable' >&2\nexit 3",
    );
    let error = exec(program, &[], Duration::from_secs(5))
        .deliver(&notification("n-fail", AlertStatus::Firing))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{SH} exited 3: paging gateway unreachable")
    );
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(marker))
        .count()
}

#[actix_rt::test]
async fn a_program_past_its_timeout_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(dir.path(), "slow", "sleep 611.25 &\nsleep 612.25");
    let timeout = Duration::from_millis(500);
    let (result, took) = timed(
        &exec(program, &[], timeout),
        &notification("n-slow", AlertStatus::Firing),
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        format!("{SH} did not finish within 500ms and was killed")
    );
    assert!(took >= timeout && took < timeout + MARGIN, "{took:?}");
    eventually(Duration::from_secs(5), "its processes gone", || async {
        (processes_with("611.25") + processes_with("612.25") == 0).then_some(())
    })
    .await;
}

/// The interop virtual environment's Python, with aiosmtpd.
fn python() -> Option<PathBuf> {
    common::interop::python()
}

fn email(
    port: u16,
    security: SmtpSecurity,
    login: Option<Login>,
    ca: Option<CaCertificates>,
) -> Receiver {
    let spec = EmailSpec {
        host: "127.0.0.1".into(),
        port,
        security,
        login,
        ca,
        from: "servicewatch <sw@example.com>".parse().unwrap(),
        to: vec![
            "oncall@example.com".parse().unwrap(),
            "noc@example.org".parse().unwrap(),
        ],
    };
    receiver("mail", ReceiverKind::Email(spec), Duration::from_secs(10))
}

fn login(dir: &Path, password: &str) -> Login {
    Login {
        username: "sw".into(),
        password: Secret::read(&write_file(dir, "password", password)).unwrap(),
    }
}

/// Asserts that `message` is the mail for `n`, sent under the login `sw`.
fn assert_mail_for(n: &Notification, (message, envelope): (String, serde_json::Value)) {
    assert_eq!(envelope["mail_from"], "sw@example.com");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "noc@example.org"])
    );
    assert_eq!(envelope["login"], "sw");
    let at = serde_json::to_value(&n.events[0]).unwrap()["at"].clone();
    let at = at.as_str().unwrap();
    for line in [
        "From: servicewatch <sw@example.com>\r\n".to_string(),
        "To: oncall@example.com, noc@example.org\r\n".into(),
        "Subject: [servicewatch] SIPS1 is Inactive\r\n".into(),
        format!("X-Servicewatch-Key: {}\r\n", n.key),
        "X-Servicewatch-Status: firing\r\n".into(),
        format!("- {at}  sips1: SIPS1 is Inactive\r\n"),
        "    reason: primary: connection refused\r\n".into(),
        "- FIRING critical ServiceInactive on sips1: SIPS1 is Inactive".into(),
    ] {
        assert!(message.contains(&line), "{line:?} in:\n{message}");
    }
}

#[actix_rt::test]
async fn email_goes_through_a_real_smtp_server_with_a_login() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&python, &["--user", "sw", "--password", "pa55"]);
    let n = notification("n-mail", AlertStatus::Firing);

    let wrong = email(
        smtp.port,
        SmtpSecurity::None,
        Some(login(dir.path(), "guess")),
        None,
    );
    let error = wrong.deliver(&n).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Smtp { .. }), "{error:?}");
    assert!(
        error.to_string().contains("535"),
        "the relay's reply: {error}"
    );

    email(
        smtp.port,
        SmtpSecurity::None,
        Some(login(dir.path(), "pa55")),
        None,
    )
    .deliver(&n)
    .await
    .unwrap();
    let mail = eventually(Duration::from_secs(5), "the message saved", || async {
        smtp.message(1)
    })
    .await;
    assert_mail_for(&n, mail);
}

#[actix_rt::test]
async fn email_over_starttls_and_over_tls_verifies_the_relay() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    ca.issue_files(&["127.0.0.1"], dir.path(), "server");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    for (tls, security) in [
        ("starttls", SmtpSecurity::StartTls),
        ("implicit", SmtpSecurity::Tls),
    ] {
        let smtp = SmtpServer::start(
            &python,
            &[
                "--tls",
                tls,
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
                "--user",
                "sw",
                "--password",
                "pa55",
            ],
        );
        let n = notification(&format!("n-{tls}"), AlertStatus::Firing);
        let error = email(smtp.port, security, Some(login(dir.path(), "pa55")), None)
            .deliver(&n)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "127.0.0.1:{}: invalid peer certificate: UnknownIssuer",
                smtp.port
            ),
            "{tls}: the system's CA certificates do not know the test's CA"
        );
        let trusted = Some(ca_certificates(dir.path()));
        email(
            smtp.port,
            security,
            Some(login(dir.path(), "pa55")),
            trusted,
        )
        .deliver(&n)
        .await
        .unwrap();
        let mail = eventually(Duration::from_secs(5), "the message saved", || async {
            smtp.message(1)
        })
        .await;
        assert_mail_for(&n, mail);
    }
}

#[actix_rt::test]
async fn email_to_a_closed_port_is_refused() {
    let port = closed_port();
    let error = email(port, SmtpSecurity::None, None, None)
        .deliver(&notification("n-closed", AlertStatus::Firing))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("127.0.0.1:{port} refused the connection")
    );
}
