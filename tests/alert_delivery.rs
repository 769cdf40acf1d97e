//! Alerts delivered to a real webhook: a mass outage grouped into one notification, a
//! receiver that fails and is retried, a flapping service told once, and the outbox: an
//! alert decided just before a `kill -9` is sent after the restart.

mod common;

use std::time::{Duration, Instant};

use common::hook::Hook;
use common::process::DaemonProcess;
use common::{Backend, Mode, TestDaemon, eventually, users_toml};
use serde_json::Value;

/// Fast checks: a failure shows within about a hundred milliseconds.
const CHECK: &str = r#"check = { kind = "tcp", interval = "50ms", timeout = "300ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn service(id: &str, backend: &Backend) -> String {
    format!(
        "[[service]]\nid = \"{id}\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n",
        backend.toml()
    )
}

fn state_changes(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "stateChanged")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_outage_reaches_the_receiver_as_one_notification() {
    const SERVICES: usize = 500;
    let hook = Hook::start().await;
    let mut backends = Vec::new();
    for _ in 0..SERVICES {
        backends.push(Backend::start(Mode::Accept).await);
    }
    let mut toml = format!(
        "[alerts]\ngroup_wait = \"2s\"\ngroup_interval = \"1m\"\n{}",
        hook.toml("noc")
    );
    // Checked every 500 ms: the outage is seen within about that, well inside group_wait.
    for (i, b) in backends.iter().enumerate() {
        toml.push_str(
            &service(&format!("svc{i:03}"), b)
                .replace("interval = \"50ms\"", "interval = \"500ms\""),
        );
    }
    let d = TestDaemon::start(&toml);
    assert!(hook.received().is_empty(), "a healthy start tells nothing");
    let closed = Instant::now();
    for b in &mut backends {
        b.close().await;
    }
    let first = eventually(Duration::from_secs(10), "a notification", || async {
        hook.received().first().cloned()
    })
    .await;
    let took = closed.elapsed();
    eprintln!("{SERVICES} services down: one notification after {took:?} (group_wait 2 s)");
    let events = first["events"].as_array().unwrap();
    assert_eq!(state_changes(events).len(), SERVICES, "{first}");
    assert_eq!(first["receiver"], "noc");
    assert_eq!(first["status"], "firing");
    assert_eq!(first["alerts"].as_array().unwrap().len(), SERVICES);
    let key = events[0]["key"].as_str().unwrap();
    assert!(
        key.starts_with("svc") && key.ends_with("/stateChanged"),
        "{key}"
    );
    assert_eq!(events[0]["state"], "Inactive");
    assert_eq!(events[0]["previousState"], "Active");
    // Nothing more comes: the burst was one group.
    common::stays(Duration::from_millis(500), "one notification", || async {
        hook.received().len() == 1
    })
    .await;
    assert_eq!(
        d.metric(r#"servicewatch_alert_notifications_total{receiver="noc",outcome="delivered"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_is_retried_until_it_takes_the_notification() {
    let hook = Hook::start().await;
    hook.fail(true);
    let mut backend = Backend::start(Mode::Accept).await;
    let toml = format!(
        "[alerts]\ngroup_wait = \"100ms\"\ngroup_interval = \"200ms\"\n{}{}",
        hook.toml("noc"),
        service("sips1", &backend)
    );
    let d = TestDaemon::start(&toml);
    backend.close().await;
    let waiting = r#"servicewatch_alert_queue{receiver="noc"}"#;
    eventually(
        Duration::from_secs(5),
        "the notification to wait",
        || async { (d.metric(waiting).await == Some(1.0)).then_some(()) },
    )
    .await;
    hook.fail(false);
    let got = eventually(Duration::from_secs(10), "the retry to land", || async {
        hook.received().first().cloned()
    })
    .await;
    assert_eq!(got["events"][0]["service"]["id"], "sips1", "{got}");
    assert_eq!(hook.received().len(), 1, "delivered once");
    eventually(Duration::from_secs(2), "the queue to empty", || async {
        (d.metric(waiting).await == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(got["status"], "firing");
    assert_eq!(got["alerts"][0]["name"], "ServiceInactive", "{got}");

    // Back: the alert is resolved, and the receiver is told so.
    backend.reopen().await;
    let resolved = eventually(Duration::from_secs(10), "the resolution", || async {
        hook.received().get(1).cloned()
    })
    .await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["events"][0]["state"], "Active");
    let alert = &resolved["alerts"][0];
    assert_eq!(alert["name"], "ServiceInactive", "{resolved}");
    assert_eq!(alert["status"], "resolved");
    assert!(alert["endsAt"].is_string(), "{alert}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_delays_no_other() {
    let hanging = Hook::start().await;
    hanging.hang(true);
    let healthy = Hook::start().await;
    let mut backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[alerts]\ngroup_wait = \"100ms\"\n{}{}{}",
        hanging
            .toml("stuck")
            .replace("timeout = \"2s\"", "timeout = \"30s\""),
        healthy.toml("noc"),
        service("sips1", &backend)
    ));
    backend.close().await;
    eventually(
        Duration::from_secs(5),
        "the healthy receiver's notification",
        || async { healthy.received().first().cloned() },
    )
    .await;
    // Meanwhile the other is still at its first attempt, within its 30 s.
    assert_eq!(
        d.metric(r#"servicewatch_alert_queue{receiver="stuck"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        d.metric(r#"servicewatch_alert_notifications_total{receiver="noc",outcome="delivered"}"#)
            .await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_service_is_told_once_not_at_every_change() {
    let hook = Hook::start().await;
    let mut backend = Backend::start(Mode::Accept).await;
    let toml = format!(
        "[alerts]\ngroup_wait = \"100ms\"\ngroup_interval = \"100ms\"\n{}{}",
        hook.toml("noc"),
        service("sips1", &backend)
    );
    let d = TestDaemon::start(&toml);
    // Down and up every 150 ms (three checks) for three seconds.
    let flips = Instant::now();
    let mut up = true;
    while flips.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if up {
            backend.close().await;
        } else {
            backend.reopen().await;
        }
        up = !up;
    }
    if !up {
        backend.reopen().await;
    }
    let events = eventually(
        Duration::from_secs(10),
        "flapping to start and stop",
        || async {
            let events = hook.events();
            events
                .iter()
                .any(|e| e["kind"] == "flappingStopped")
                .then_some(events)
        },
    )
    .await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let started = kinds
        .iter()
        .position(|k| *k == "flappingStarted")
        .expect("started");
    let stopped = kinds.iter().position(|k| *k == "flappingStopped").unwrap();
    assert!(started < stopped, "{kinds:?}");
    assert!(
        !kinds[started..stopped].contains(&"stateChanged"),
        "no state change told while flapping: {kinds:?}"
    );
    // About 20 changes happened; a handful at most were told before flapping was seen.
    assert!(state_changes(&events).len() <= 8, "{kinds:?}");
    assert_eq!(events[stopped]["state"], "Active", "settled Active");
    assert_eq!(
        d.metric(r#"servicewatch_service_flapping{service="sips1"}"#)
            .await,
        Some(0.0)
    );
}

/// A daemon binary with its history in `dir`, alerting `hook`, watching `backend`; group
/// events wait `group_wait`.
fn spawn(dir: &std::path::Path, hook: &Hook, backend: &Backend, group_wait: &str) -> DaemonProcess {
    DaemonProcess::spawn_config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[history]\npath = \"{}\"\n[alerts]\ngroup_wait = \"{group_wait}\"\n{}{}{}",
        dir.join("history.sqlite").display(),
        hook.toml("noc"),
        users_toml(),
        service("sips1", backend)
    ))
}

async fn until_logged(process: &DaemonProcess, text: &str) {
    eventually(Duration::from_secs(10), text, || async {
        (!process.log_lines(text).is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_not_delivered_before_a_kill_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start().await;
    hook.fail(true);
    let mut backend = Backend::start(Mode::Accept).await;
    let mut first = spawn(dir.path(), &hook, &backend, "100ms");
    until_logged(&first, "ready").await;
    backend.close().await;
    until_logged(&first, "notification not delivered; will retry").await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    hook.fail(false);
    let second = spawn(dir.path(), &hook, &backend, "100ms");
    let got = eventually(
        Duration::from_secs(10),
        "the notification after the restart",
        || async { hook.received().first().cloned() },
    )
    .await;
    assert_eq!(got["events"][0]["kind"], "stateChanged", "{got}");
    assert_eq!(got["events"][0]["state"], "Inactive", "{got}");
    // The restart itself tells nothing new: the service was Inactive before it too.
    until_logged(&second, "notification delivered").await;
    common::stays(Duration::from_millis(500), "one notification", || async {
        hook.received().len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_still_waiting_for_its_group_at_a_kill_is_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start().await;
    let mut backend = Backend::start(Mode::Accept).await;
    let mut first = spawn(dir.path(), &hook, &backend, "2s");
    until_logged(&first, "ready").await;
    backend.close().await;
    // Decided, and waiting for its group: killed before group_wait is over, once the
    // change is in the history (a change killed before its history write is decided anew
    // by the next process, as a new event: another seam, not this one).
    until_logged(&first, "alert event").await;
    let api = TestDaemon::attach(&first.addr);
    eventually(
        Duration::from_secs(5),
        "the change in the history",
        || async {
            let history = api.history("sips1", "?limit=1").await;
            (history["history"][0]["state"] == "Inactive").then_some(())
        },
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(hook.received().is_empty(), "killed before it was sent");
    let key = {
        let line = first.log_lines("alert event").remove(0);
        let at = line.find("key=").unwrap() + 4;
        line[at..].split_whitespace().next().unwrap().to_string()
    };
    let _second = spawn(dir.path(), &hook, &backend, "2s");
    let got = eventually(
        Duration::from_secs(10),
        "the event after the restart",
        || async { hook.received().first().cloned() },
    )
    .await;
    assert_eq!(got["events"][0]["key"], key.as_str(), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sends_a_test_notification_and_hears_how_it_went() {
    use common::{ADMIN, SUPERVISOR};
    use reqwest::Method;
    let hook = Hook::start().await;
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "{}{}",
        hook.toml("noc"),
        service("sips1", &backend)
    ));
    let path = "/api/v2/alerts/receivers/noc/test";
    let (status, body) = d.call_as(ADMIN, Method::POST, path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], true);
    let got = hook.received();
    assert_eq!(got.len(), 1, "delivered at once, not grouped");
    assert_eq!(got[0]["key"], body["key"]);
    assert_eq!(got[0]["events"][0]["kind"], "test");
    assert!(
        got[0]["events"][0]["summary"]
            .as_str()
            .unwrap()
            .contains(ADMIN),
        "says who asked: {}",
        got[0]
    );

    let (status, body) = d.call_as(SUPERVISOR, Method::POST, path, None).await;
    assert_eq!(status, 403, "admins only: {body}");
    let (status, body) = d
        .call_as(
            ADMIN,
            Method::POST,
            "/api/v2/alerts/receivers/pager/test",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["statusMessage"]
            .as_str()
            .unwrap()
            .contains("\"pager\""),
        "{body}"
    );

    hook.fail(true);
    let (status, body) = d.call_as(ADMIN, Method::POST, path, None).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["statusMessage"].as_str().unwrap().contains("500"),
        "says what the receiver said: {body}"
    );
    assert_eq!(hook.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_about_to_expire_is_told_once_and_fires() {
    use common::SUPERVISOR;
    use common::certs::{Ca, serve};
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let (certificate, key) = ca.issue(&["127.0.0.1"], 5);
    let port = serve(certificate, key, None).await;
    let hook = Hook::start().await;
    let d = TestDaemon::start(&format!(
        "[alerts]\ngroup_wait = \"100ms\"\n{}[[service]]\nid = \"gws\"\ntype = \"Media\"\nprimary = {{ host = \"127.0.0.1\", port = {port} }}\ncheck = {{ kind = \"https\", path = \"/health\", interval = \"50ms\", timeout = \"500ms\", rise = 1, fall = 1, jitter = 0.0, ca_file = \"{}\" }}\n",
        hook.toml("noc"),
        dir.path().join("ca.pem").display()
    ));
    let told = |hook: &Hook| -> Vec<Value> {
        hook.events()
            .into_iter()
            .filter(|e| e["kind"] == "certificateExpiring")
            .collect()
    };
    let event = eventually(
        Duration::from_secs(15),
        "the certificate's event",
        || async { told(&hook).first().cloned() },
    )
    .await;
    assert_eq!(event["service"]["id"], "gws", "{event}");
    assert_eq!(
        event["severity"], "warning",
        "5 days: a warning, not yet critical"
    );
    let key = event["key"].as_str().unwrap();
    assert!(key.starts_with("gws/primary/certificateExpiring/"), "{key}");
    let summary = event["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("gws primary: its certificate expires in 4."),
        "{summary}"
    );

    let (status, body) = d
        .call_as(SUPERVISOR, reqwest::Method::GET, "/api/v2/alerts", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let alert = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "CertificateExpiring")
        .cloned()
        .unwrap_or_else(|| panic!("no certificate alert: {body}"));
    assert_eq!(alert["labels"]["instance"], "primary");
    // Looked at again (every 5 s), it is not told again.
    common::stays(Duration::from_secs(6), "one certificate event", || async {
        told(&hook).len() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_who_is_told() {
    let old = Hook::start().await;
    let new = Hook::start().await;
    let mut backend = Backend::start(Mode::Accept).await;
    let config = |hooks: String| {
        format!(
            "[alerts]\ngroup_wait = \"100ms\"\n{hooks}{}",
            service("sips1", &backend)
        )
    };
    let d = TestDaemon::start(&config(old.toml("noc")));
    d.reload(&config(new.toml("pager")))
        .await
        .expect("the reload applies");
    assert_eq!(
        d.metric(r#"servicewatch_alert_queue{receiver="pager"}"#)
            .await,
        Some(0.0),
        "the new receiver's series exist at once"
    );
    assert_eq!(
        d.metric(r#"servicewatch_alert_queue{receiver="noc"}"#)
            .await,
        None,
        "the removed receiver's are gone"
    );
    backend.close().await;
    let got = eventually(Duration::from_secs(5), "the new receiver told", || async {
        new.received().first().cloned()
    })
    .await;
    assert_eq!(got["receiver"], "pager");
    assert!(
        old.received().is_empty(),
        "the removed receiver is told nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_its_oldest_notification_and_counts_it() {
    let hook = Hook::start().await;
    hook.hang(true);
    let mut backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[alerts]\ngroup_wait = \"50ms\"\ngroup_interval = \"100ms\"\n{}queue = 2\n{}",
        hook.toml("stuck")
            .replace("timeout = \"2s\"", "timeout = \"30s\""),
        service("sips1", &backend)
    ));
    let queue = r#"servicewatch_alert_queue{receiver="stuck"}"#;
    let dropped = r#"servicewatch_alert_notifications_total{receiver="stuck",outcome="dropped"}"#;
    // Down, up, down: three notifications; the first is being delivered (it hangs), the
    // second waits, the third pushes the second out.
    for (step, waiting) in [(0, 1.0), (1, 2.0), (2, 2.0)] {
        if step % 2 == 0 {
            backend.close().await;
        } else {
            backend.reopen().await;
        }
        eventually(
            Duration::from_secs(5),
            "the notification queued",
            || async {
                let told = d.metric(dropped).await == Some(if step == 2 { 1.0 } else { 0.0 });
                (d.metric(queue).await == Some(waiting) && told).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_max_events_goes_out_in_several_notifications() {
    let hook = Hook::start().await;
    let mut backends = Vec::new();
    for _ in 0..5 {
        backends.push(Backend::start(Mode::Accept).await);
    }
    let mut toml = format!(
        "[alerts]\ngroup_wait = \"1s\"\nmax_events = 2\n{}",
        hook.toml("noc")
    );
    for (i, b) in backends.iter().enumerate() {
        toml.push_str(&service(&format!("svc{i}"), b));
    }
    let _d = TestDaemon::start(&toml);
    for b in &mut backends {
        b.close().await;
    }
    let got = eventually(Duration::from_secs(10), "every event", || async {
        let got = hook.received();
        (got.iter()
            .map(|n| n["events"].as_array().unwrap().len())
            .sum::<usize>()
            == 5)
            .then_some(got)
    })
    .await;
    let sizes: Vec<usize> = got
        .iter()
        .map(|n| n["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 1], "{got:#?}");
    let keys: std::collections::BTreeSet<&str> =
        got.iter().map(|n| n["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 3, "each notification its own key");
}
