//! Maintenance through the API: an admin puts an instance or a whole service into
//! maintenance and takes it out; the serving instance moves at once, the resource and the
//! notifications say so, the history records it, and a restart keeps it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::bayeux::WsClient;
use common::{ADMIN, Backend, Mode, SUPERVISOR, TestDaemon, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const CHECK: &str =
    r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0 }"#;

fn config(db: &Path, primary: &Backend, backup: &Backend) -> String {
    format!(
        "[history]\npath = \"{}\"\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\nbackup = {}\n{CHECK}\n",
        db.display(),
        primary.toml(),
        backup.toml(),
    )
}

const PRIMARY: &str = "/api/v2/services/sips1/instances/primary/maintenance";
const SERVICE: &str = "/api/v2/services/sips1/maintenance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_in_maintenance_stops_serving_at_once_and_stays_so_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    {
        let d = TestDaemon::start(&config(&db, &primary, &backup));
        let mut ws = WsClient::subscribed(&d).await;
        assert_eq!(d.state_of("sips1").await.1.as_deref(), Some("primary"));

        let (status, body) = d
            .call_as(
                ADMIN,
                Method::PUT,
                PRIMARY,
                Some(json!({"reason": "upgrade to 8.5.2"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["maintenance"]["by"], ADMIN);
        // Both instances are healthy: only the maintenance moves the service.
        let s = d.service("sips1").await;
        assert_eq!(s["servingInstance"], "backup", "{s}");
        assert_eq!(s["state"], "Active");
        assert_eq!(s["maintenance"][0]["instance"], "primary");
        assert_eq!(s["maintenance"][0]["reason"], "upgrade to 8.5.2");
        let pushed = ws.next_change(Duration::from_secs(5)).await;
        assert_eq!(pushed["servingInstance"], "backup", "{pushed}");
        assert_eq!(pushed["maintenance"][0]["by"], ADMIN, "{pushed}");
        let newest = &d.history("sips1", "?limit=1").await["history"][0];
        assert_eq!(
            newest["reason"],
            "sips1's primary put into maintenance by chief: upgrade to 8.5.2"
        );
        assert!(
            newest["maintenance"]
                .as_str()
                .unwrap()
                .contains("primary: upgrade")
        );
        assert_eq!(
            d.metric(r#"servicewatch_service_maintenance{service="sips1"}"#)
                .await,
            Some(1.0)
        );
    }
    // A restart: the window is read back, and the backup still serves.
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    let s = d.service("sips1").await;
    assert_eq!(s["maintenance"][0]["instance"], "primary", "{s}");
    assert_eq!(s["servingInstance"], "backup");

    let (status, _) = d.call_as(ADMIN, Method::DELETE, PRIMARY, None).await;
    assert_eq!(status, 200);
    let s = d.service("sips1").await;
    assert!(s.get("maintenance").is_none(), "{s}");
    assert_eq!(
        s["servingInstance"], "backup",
        "out of maintenance, no failback"
    );
    let (status, body) = d.call_as(ADMIN, Method::DELETE, PRIMARY, None).await;
    assert_eq!(
        (status, &body["statusMessage"]),
        (404, &json!("sips1's primary is not in maintenance"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_maintenance_says_so_and_its_window_ends_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&dir.path().join("h.sqlite"), &primary, &backup));
    let until = humantime::format_rfc3339_millis(
        std::time::SystemTime::now() + Duration::from_millis(1500),
    )
    .to_string();
    let (status, body) = d
        .call_as(
            ADMIN,
            Method::PUT,
            SERVICE,
            Some(json!({"reason": "site move", "until": until})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let s = d.service("sips1").await;
    assert_eq!(s["maintenance"][0]["reason"], "site move");
    assert!(
        s["maintenance"][0].get("instance").is_none(),
        "the whole service"
    );
    assert_eq!(s["maintenance"][0]["until"], json!(until));
    eventually(Duration::from_secs(5), "the window over", || async {
        d.service("sips1")
            .await
            .get("maintenance")
            .is_none()
            .then_some(())
    })
    .await;
    let newest = &d.history("sips1", "?limit=1").await["history"][0];
    assert_eq!(
        newest["reason"],
        "maintenance of service sips1 ended as planned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_set_maintenance_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(&dir.path().join("h.sqlite"), &primary, &backup));
    let reason = Some(json!({"reason": "x"}));
    for user in [common::USER, SUPERVISOR] {
        let (status, body) = d.call_as(user, Method::PUT, SERVICE, reason.clone()).await;
        assert_eq!(
            (status, &body["statusCode"]),
            (403, &json!(5)),
            "{user}: {body}"
        );
    }
    let cases: [(&str, Option<Value>, u16, &str); 5] = [
        (
            "/api/v2/services/sips1/instances/tertiary/maintenance",
            reason.clone(),
            404,
            "service \"sips1\" has no instance \"tertiary\" (it has: primary, backup)",
        ),
        (
            "/api/v2/services/nope/maintenance",
            reason.clone(),
            404,
            "no service with id \"nope\"",
        ),
        (
            SERVICE,
            Some(json!({"reason": "  "})),
            400,
            "reason: say why in 1 to 500 characters",
        ),
        (
            SERVICE,
            Some(json!({"reason": "x", "until": "2001-01-01T00:00:00Z"})),
            400,
            "until: 2001-01-01T00:00:00Z has passed already",
        ),
        (SERVICE, Some(json!({"why": "x"})), 400, ""),
    ];
    for (path, body, expected, message) in cases {
        let (status, answer) = d.call_as(ADMIN, Method::PUT, path, body.clone()).await;
        assert_eq!(status, expected, "{path} {body:?}: {answer}");
        if !message.is_empty() {
            assert_eq!(answer["statusMessage"], message);
        }
    }
    let (status, _) = d.call_as(ADMIN, Method::POST, SERVICE, reason).await;
    assert_eq!(status, 405);
    assert!(d.service("sips1").await.get("maintenance").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_right_after_a_maintenance_answer_shows_it_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    // A site large enough that publishing takes a few milliseconds, so that changes close
    // together share a publish a little later (the registry's coalescing).
    let mut toml = config(&dir.path().join("h.sqlite"), &primary, &backup);
    for n in 0..2000 {
        toml.push_str(&format!(
            "[[service]]\nid = \"stat{n}\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ interval = \"60s\" }}\n",
            primary.toml()
        ));
    }
    let d = TestDaemon::start(&toml);
    // A change-control script: set, check, clear, check; a hundred times, back to back.
    for round in 0..100 {
        let reason = format!("check {round}");
        let (status, body) = d
            .call_as(
                ADMIN,
                Method::PUT,
                SERVICE,
                Some(json!({ "reason": reason })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let s = d.service("sips1").await;
        assert_eq!(
            s["maintenance"][0]["reason"], reason,
            "round {round}: read after the PUT's 200: {s}"
        );
        let (status, body) = d.call_as(ADMIN, Method::DELETE, SERVICE, None).await;
        assert_eq!(status, 200, "{body}");
        let s = d.service("sips1").await;
        assert!(
            s.get("maintenance").is_none(),
            "round {round}: read after the DELETE's 200: {s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_ends_while_the_daemon_is_stopped_is_recorded_as_ended_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let until = std::time::SystemTime::now() + Duration::from_millis(1500);
    let until_text = humantime::format_rfc3339_millis(until).to_string();
    {
        let d = TestDaemon::start(&config(&db, &primary, &backup));
        let (status, body) = d
            .call_as(
                ADMIN,
                Method::PUT,
                PRIMARY,
                Some(json!({"reason": "patch", "until": until_text})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let newest = &d.history("sips1", "?limit=1").await["history"][0];
        assert!(newest["maintenance"].is_string(), "{newest}");
    }
    // Stopped across the window's end (a clock to wait for, not a state).
    if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(50)).await;
    }
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    let s = d.service("sips1").await;
    assert!(s.get("maintenance").is_none(), "{s}");
    let history = d.history("sips1", "?limit=2").await;
    let newest = &history["history"][0];
    assert_eq!(
        newest["reason"],
        "maintenance of sips1's primary ended as planned (while servicewatch was stopped)",
        "{history}"
    );
    assert!(newest["maintenance"].is_null(), "{newest}");
    assert_eq!(
        newest["at"],
        json!(until_text),
        "recorded at the window's end"
    );
    assert_eq!(newest["state"], "Active");
    assert_eq!(
        newest["servingInstance"], history["history"][1]["servingInstance"],
        "the serving instance last recorded"
    );
    // Nothing is recorded twice: a second restart adds no entry.
    drop(d);
    let d = TestDaemon::start(&config(&db, &primary, &backup));
    d.service("sips1").await;
    let again = d.history("sips1", "?limit=1").await;
    assert_eq!(again["history"][0], *newest, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_and_added_back_by_reloads_keeps_its_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let with = config(&dir.path().join("h.sqlite"), &primary, &backup);
    let stat = format!(
        "[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = {}\n{CHECK}\n",
        primary.toml()
    );
    let d = TestDaemon::start(&format!("{with}{stat}"));
    let (status, body) = d
        .call_as(ADMIN, Method::PUT, SERVICE, Some(json!({"reason": "move"})))
        .await;
    assert_eq!(status, 200, "{body}");
    // Taken out of the configuration, then put back.
    let without: String = with
        .lines()
        .take_while(|l| !l.starts_with("[[service]]"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &stat;
    d.reload(&without).await.unwrap();
    assert_eq!(d.get("/api/v2/services/sips1").await.0, 404);
    d.reload(&format!("{with}{stat}")).await.unwrap();
    let s = eventually(Duration::from_secs(5), "sips1 back", || async {
        let (status, body) = d.get("/api/v2/services/sips1").await;
        (status == 200).then(|| serde_json::from_str::<Value>(&body).unwrap())
    })
    .await;
    assert_eq!(s["service"][0]["maintenance"][0]["reason"], "move", "{s}");
}
