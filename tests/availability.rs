//! Availability: the daemon started on a history database of the previous schema, written
//! here with known spans, answers the figures worked out by hand from those spans; and a
//! backend that goes down for a measured while shows in the last 24 hours.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Backend, Mode, TestDaemon, USER, eventually};
use rusqlite::{Connection, params};
use serde_json::Value;

const CHECK: &str =
    r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1, jitter = 0.0 }"#;
const HOUR: i64 = 3_600_000;

/// The schema servicewatch wrote before the availability aggregates (version 1).
const SCHEMA_1: &str = "
CREATE TABLE changes (id INTEGER PRIMARY KEY, service TEXT NOT NULL, at_ms INTEGER NOT NULL,
    state TEXT NOT NULL, state_since_ms INTEGER NOT NULL, serving TEXT, maintenance TEXT,
    reason TEXT NOT NULL);
CREATE INDEX changes_by_service ON changes (service, at_ms);
CREATE TABLE maintenance (service TEXT NOT NULL, instance TEXT NOT NULL, reason TEXT NOT NULL,
    until_ms INTEGER, by_user TEXT NOT NULL, since_ms INTEGER NOT NULL,
    PRIMARY KEY (service, instance));
PRAGMA user_version = 1;
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

/// Writes, relative to `now`, the spans of sips1: Active from 10 days ago, Inactive 50 to 47
/// hours ago, ReadOnly 20 to 19 hours ago, in maintenance 19 to 16 hours ago (Active for 2
/// hours, then Inactive for one), Active since.
fn write_history(db: &Path, now: i64) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(SCHEMA_1).unwrap();
    let spans = [
        (240, "Active", None),
        (50, "Inactive", None),
        (47, "Active", None),
        (20, "ReadOnly", None),
        (19, "Active", Some("primary: upgrade")),
        (17, "Inactive", Some("primary: upgrade")),
        (16, "Active", None),
    ];
    for (hours_ago, state, maintenance) in spans {
        let at = now - hours_ago * HOUR;
        conn.execute(
            "INSERT INTO changes (service, at_ms, state, state_since_ms, serving, maintenance, reason) VALUES ('sips1', ?1, ?2, ?1, ?3, ?4, 'written by the test')",
            params![at, state, (state != "Inactive").then_some("primary"), maintenance],
        )
        .unwrap();
    }
}

fn config(db: Option<&Path>, backend: &Backend) -> String {
    let history = db.map_or(String::new(), |db| {
        format!("[history]\npath = \"{}\"\n", db.display())
    });
    format!(
        "{history}[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n[[service]]\nid = \"other\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n[[service]]\nid = \"hidden\"\ntype = \"Voice\"\nfeature = \"api-elsewhere\"\nprimary = {}\n{CHECK}\n",
        backend.toml(),
        backend.toml(),
        backend.toml(),
    )
}

async fn get(d: &TestDaemon, path: &str) -> (u16, Value) {
    d.call_as(USER, reqwest::Method::GET, &format!("/api/v2{path}"), None)
        .await
}

async fn availability(d: &TestDaemon, query: &str) -> Value {
    let (status, body) = get(d, &format!("/services/sips1/availability{query}")).await;
    assert_eq!(status, 200, "{body}");
    fits("OneAvailability", &body);
    body["availability"].clone()
}

/// `body` fits the schema `name` of docs/openapi.json (OpenAPI's `nullable` read as JSON
/// Schema's type `null`).
fn fits(name: &str, body: &Value) {
    fn nullable(v: &mut Value) {
        match v {
            Value::Object(map) => {
                // (An `enum` that lists null has no type to widen.)
                if map.remove("nullable") == Some(Value::Bool(true))
                    && let Some(t) = map.get("type").cloned()
                {
                    map.insert("type".into(), Value::Array(vec![t, "null".into()]));
                }
                map.values_mut().for_each(nullable);
            }
            Value::Array(items) => items.iter_mut().for_each(nullable),
            _ => {}
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut root = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    root["components"] = doc["components"].clone();
    nullable(&mut root);
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{body}");
}

/// `period`'s (active, observed, active seconds, maintenance seconds).
fn figures(period: &Value) -> (Option<f64>, f64, f64, f64) {
    (
        period["active"].as_f64(),
        period["observedSeconds"].as_f64().unwrap(),
        period["activeSeconds"].as_f64().unwrap(),
        period["maintenanceSeconds"].as_f64().unwrap(),
    )
}

/// Checks a default period against hours worked out by hand, allowing `slack` seconds for
/// "now" having moved on since the test wrote the spans (time that is Active and observed).
fn expect(period: &Value, name: &str, observed_h: f64, active_h: f64, maint_h: f64, slack: f64) {
    assert_eq!(period["period"], name);
    let (share, observed, active, maintenance) = figures(period);
    let near = |got: f64, want_h: f64| got >= want_h * 3600.0 && got <= want_h * 3600.0 + slack;
    assert!(near(observed, observed_h), "{name} observed {observed}");
    assert!(near(active, active_h), "{name} active {active}");
    assert_eq!(maintenance, maint_h * 3600.0, "{name} maintenance");
    assert_eq!(share, Some(active / observed), "{name} share");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_are_those_of_the_spans_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let now = now_ms();
    write_history(&db, now);
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(Some(&db), &backend));

    let body = availability(&d, "").await;
    let slack = (now_ms() - now) as f64 / 1000.0 + 1.0;
    assert_eq!(
        (&body["id"], &body["maintenance"]),
        (&"sips1".into(), &"exclude".into())
    );
    let periods = body["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 3);
    // 24 hours: Active 4 h, ReadOnly 1 h, maintenance 3 h (Active 2 h of it), Active 16 h.
    expect(&periods[0], "24h", 21.0, 20.0, 3.0, slack);
    // 7 days: and Inactive 3 h; 30 days: observed since the first change, 10 days ago.
    expect(&periods[1], "7d", 165.0, 161.0, 3.0, slack);
    expect(&periods[2], "30d", 237.0, 233.0, 3.0, slack);
    let body = availability(&d, "?maintenance=include&_=42").await;
    assert_eq!(body["maintenance"], "include");
    let periods = body["periods"].as_array().unwrap();
    expect(&periods[0], "24h", 24.0, 22.0, 3.0, slack);
    expect(&periods[1], "7d", 168.0, 163.0, 3.0, slack);
    expect(&periods[2], "30d", 240.0, 235.0, 3.0, slack);

    // A period of the caller's, exactly: the outage and the hour after it.
    let custom = |from_h: i64, to_h: i64, more: &str| {
        format!(
            "?since={}&until={}{more}",
            rfc3339(now - from_h * HOUR),
            rfc3339(now - to_h * HOUR)
        )
    };
    let body = availability(&d, &custom(50, 46, "")).await;
    let period = &body["periods"][0];
    assert_eq!(period["period"], "custom");
    assert_eq!(period["since"], rfc3339(now - 50 * HOUR));
    assert_eq!(figures(period), (Some(0.25), 14_400.0, 3600.0, 0.0));
    // The maintenance alone: nothing observed when excluded.
    let body = availability(&d, &custom(19, 17, "")).await;
    assert_eq!(figures(&body["periods"][0]), (None, 0.0, 0.0, 7200.0));
    let body = availability(&d, &custom(19, 17, "&maintenance=include")).await;
    assert_eq!(
        figures(&body["periods"][0]),
        (Some(1.0), 7200.0, 7200.0, 7200.0)
    );
    // Before the first change: not observed.
    let body = availability(&d, &custom(700, 300, "")).await;
    assert_eq!(figures(&body["periods"][0]), (None, 0.0, 0.0, 0.0));

    // The database of schema 1 was migrated (to the current schema), its aggregates built
    // from its rows.
    let version: i64 = Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);

    // The list: every service the caller sees, in configuration order, the same figures.
    let query = custom(50, 46, "");
    let (status, list) = get(&d, &format!("/availability{query}")).await;
    assert_eq!(status, 200, "{list}");
    fits("AvailabilityList", &list);
    let ids: Vec<&str> = list["availability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sips1", "other"]);
    assert_eq!(list["availability"][0], availability(&d, &query).await);
    // "other" is observed from its first probe, moments ago.
    let (_, list) = get(&d, "/availability").await;
    let (_, observed, _, _) = figures(&list["availability"][1]["periods"][0]);
    assert!(observed < slack + 10.0, "{observed}");

    refusals(&d, now).await;
}

/// Bad parameters (400, saying what is accepted) and services not seen (404).
async fn refusals(d: &TestDaemon, now: i64) {
    let since = rfc3339(now + HOUR);
    let long_ago = rfc3339(now - 401 * 24 * HOUR);
    for (query, expected) in [
        (
            "?maintenance=skip".to_string(),
            "maintenance: \"skip\" is neither exclude nor include".to_string(),
        ),
        (
            "?period=7d".to_string(),
            "unknown parameter \"period\"; the availability takes since, until and maintenance"
                .to_string(),
        ),
        (
            "?since=noon".to_string(),
            "since: \"noon\" is not a time; use RFC 3339, such as 2026-11-28T03:20:00Z".to_string(),
        ),
        (
            format!("?since={long_ago}"),
            "since to until is longer than 400 days, the most answered".to_string(),
        ),
        (
            format!("?since={since}&until={}", rfc3339(now)),
            format!(
                "since ({since}) is after until ({}, now if not given)",
                rfc3339(now)
            ),
        ),
    ] {
        for path in ["/services/sips1/availability", "/availability"] {
            let (status, body) = get(d, &format!("{path}{query}")).await;
            assert_eq!(
                (status, &body["statusCode"]),
                (400, &Value::from(2)),
                "{path}{query}"
            );
            assert_eq!(body["statusMessage"], expected.as_str(), "{path}{query}");
        }
    }
    for id in ["hidden", "nope"] {
        let (status, body) = get(d, &format!("/services/{id}/availability")).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            body["statusMessage"],
            format!("no service with id \"{id}\"")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_there_is_no_availability() {
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&config(None, &backend));
    for path in ["/services/sips1/availability", "/availability"] {
        let (status, body) = get(&d, path).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["statusMessage"]
                .as_str()
                .unwrap()
                .starts_with("no history is kept"),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_for_a_while_shows_in_the_last_24_hours() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    let mut backend = Backend::start(Mode::Accept).await;
    let started = Instant::now();
    let d = TestDaemon::start(&config(Some(&db), &backend));
    assert_eq!(d.state_of("sips1").await.0, "Active");
    let day = |body: &Value| figures(&body["periods"][0]);

    let closed = Instant::now();
    backend.close().await;
    // Down until the history holds at least a second of it.
    eventually(
        Duration::from_secs(10),
        "a second down recorded",
        || async {
            let (_, observed, active, _) = day(&availability(&d, "").await);
            (observed - active >= 1.0).then_some(())
        },
    )
    .await;
    backend.reopen().await;
    eventually(Duration::from_secs(5), "sips1 Active again", || async {
        (d.state_of("sips1").await.0 == "Active").then_some(())
    })
    .await;
    let down = closed.elapsed().as_secs_f64();

    let body = availability(&d, "").await;
    let (share, observed, active, maintenance) = day(&body);
    let run = started.elapsed().as_secs_f64();
    assert!(share.unwrap() < 1.0, "{body}");
    assert_eq!(maintenance, 0.0);
    assert!(
        observed <= run && observed >= down,
        "observed {observed}, run {run}, down {down}"
    );
    let inactive = observed - active;
    assert!(
        (1.0..=down).contains(&inactive),
        "inactive {inactive}, down {down}"
    );
}
