//! The audit trail: admin actions (maintenance set and ended, tokens created and revoked)
//! and refused attempts are listed newest first with who, from where and what; only
//! admins read it; it survives a restart.

mod common;

use std::time::{Duration, SystemTime};

use common::{ADMIN, TestDaemon, USER, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(5);

/// A Voice service `sips1` on nothing, and the history database in `dir`.
fn config(dir: &std::path::Path) -> String {
    format!(
        "[history]\npath = \"{}\"\n\n[[service]]\nid = \"sips1\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = 1 }}\n",
        dir.join("history.sqlite").display()
    )
}

/// The trail as `user` reads it, `query` appended: its status and entries.
async fn trail(d: &TestDaemon, user: &str, query: &str) -> (u16, Value) {
    d.call_as(user, Method::GET, &format!("/api/v2/audit{query}"), None)
        .await
}

/// The `(who, action, target, outcome)` of each entry.
fn summary(body: &Value) -> Vec<(String, String, String, String)> {
    body["audit"]
        .as_array()
        .expect("a list of entries")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("who"), text("action"), text("target"), text("outcome"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_actions_and_refusals_are_listed_newest_first_and_kept() {
    let db = tempfile::tempdir().unwrap();
    let toml = config(db.path());
    let d = TestDaemon::start(&toml);
    let path = "/api/v2/services/sips1/maintenance";
    let (status, _) = d
        .call_as(
            ADMIN,
            Method::PUT,
            path,
            Some(json!({"reason": "upgrade to 8.5.1"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = d.call_as(ADMIN, Method::DELETE, path, None).await;
    assert_eq!(status, 200);
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let body = json!({"name": "ci", "scope": "maintenance", "expires": expires.to_string()});
    let (status, _) = d
        .call_as(ADMIN, Method::POST, "/api/v2/tokens", Some(body))
        .await;
    assert_eq!(status, 201);
    let (status, _) = d
        .call_as(ADMIN, Method::DELETE, "/api/v2/tokens/ci", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = d
        .call_as(USER, Method::PUT, path, Some(json!({"reason": "mine"})))
        .await;
    assert_eq!(status, 403);

    let expected = [
        (USER, "maintenance.set", "sips1", "refused"),
        (ADMIN, "token.revoke", "ci", "done"),
        (ADMIN, "token.create", "ci", "done"),
        (ADMIN, "maintenance.end", "sips1", "done"),
        (ADMIN, "maintenance.set", "sips1", "done"),
    ]
    .map(|(a, b, c, e)| (a.to_string(), b.to_string(), c.to_string(), e.to_string()));
    let body = eventually(WITHIN, "the five entries written", || async {
        let (status, body) = trail(&d, ADMIN, "").await;
        assert_eq!(status, 200, "{body}");
        (summary(&body).len() >= 5).then_some(body)
    })
    .await;
    assert_eq!(summary(&body), expected);
    let set = &body["audit"][4];
    assert_eq!(set["from"], "127.0.0.1");
    assert_eq!(set["detail"], "upgrade to 8.5.1");
    assert!(set["at"].as_str().unwrap().ends_with('Z'), "{set}");
    assert!(
        body["audit"][2]["detail"]
            .as_str()
            .unwrap()
            .starts_with("scope maintenance, until "),
        "{body}"
    );
    let (_, two) = trail(&d, ADMIN, "?limit=2").await;
    assert_eq!(summary(&two), expected[..2]);

    // Only admins read it, and a refused reading is itself recorded.
    let (status, refused) = trail(&d, USER, "").await;
    assert_eq!((status, &refused["statusCode"]), (403, &json!(5)));
    let (status, refused) = trail(&d, ADMIN, "?fields=who").await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["statusMessage"],
        "unknown parameter \"fields\"; the audit trail takes since, until and limit"
    );
    eventually(WITHIN, "the refused reading recorded", || async {
        let (_, body) = trail(&d, ADMIN, "?limit=1").await;
        (summary(&body).first().map(|e| e.1.as_str()) == Some("audit.read")).then_some(())
    })
    .await;
    drop(d);

    // The trail survives a restart.
    let again = TestDaemon::start(&toml);
    let (status, body) = trail(&again, ADMIN, "").await;
    assert_eq!(status, 200);
    assert_eq!(summary(&body)[1..], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_reload_is_recorded_as_by_signal() {
    let db = tempfile::tempdir().unwrap();
    let toml = format!("{}\n{}", config(db.path()), common::users_toml());
    let p = common::process::DaemonProcess::spawn(&toml);
    p.reload(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nenabled = false\n{toml}"
    ));
    let d = TestDaemon::attach(&p.addr);
    let body = eventually(WITHIN, "the reload recorded", || async {
        let (status, body) = trail(&d, ADMIN, "").await;
        assert_eq!(status, 200, "{body}");
        (!summary(&body).is_empty()).then_some(body)
    })
    .await;
    let entry = &body["audit"][0];
    assert_eq!(
        (&entry["who"], &entry["action"]),
        (&json!("signal"), &json!("reload"))
    );
    assert_eq!(entry["outcome"], "done");
    assert!(entry.get("from").is_none(), "{entry}");
}
