//! `GET /redundancy`: how each service stands beyond its state, as the status page shows it:
//! a pair that moved to its backup says so and since when (the move, not the state), a
//! Cassandra group counts its nodes, every role may read it, and hidden services stay
//! hidden. Against real loopback listeners that the test closes.

mod common;

use std::time::{Duration, SystemTime};

use common::{Backend, Mode, TestDaemon, USER, eventually};
use serde_json::{Value, json};

const CHECK: &str = r#"check = { interval = "50ms", timeout = "500ms", rise = 1, fall = 1 }"#;

/// The standing of service `id`, as the agent reads it.
async fn standing(d: &TestDaemon, id: &str) -> Value {
    let (status, body) = d
        .call_as(USER, reqwest::Method::GET, "/api/v2/redundancy", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statusCode"], 0);
    body["redundancy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_on_its_backup_says_since_when_and_a_cassandra_group_counts_its_nodes() {
    let mut primary = Backend::start(Mode::Accept).await;
    let backup = Backend::start(Mode::Accept).await;
    let (conf_a, conf_b) = (
        Backend::start(Mode::Accept).await,
        Backend::start(Mode::Accept).await,
    );
    let mut nodes = [
        Backend::start(Mode::Cql).await,
        Backend::start(Mode::Cql).await,
        Backend::start(Mode::Cql).await,
    ];
    let node_list: Vec<String> = nodes
        .iter()
        .map(|n| format!("\"127.0.0.1:{}\"", n.port()))
        .collect();
    let d = TestDaemon::start(&format!(
        "[[service]]\nid = \"ixn\"\ntype = \"Media\"\nprimary = {}\nbackup = {}\n{CHECK}\n\
         [[service]]\nid = \"provisioning\"\ntype = \"Provisioning\"\nconfig_server = {{ primary = {}, backup = {}, {CHECK} }}\ncassandra = {{ nodes = [{}], quorum = 2, {CHECK} }}\n",
        primary.toml(),
        backup.toml(),
        conf_a.toml(),
        conf_b.toml(),
        node_list.join(", "),
    ));

    // All up: redundant, on the primary, and no move seen yet (a start does not know when
    // the last one was).
    let ixn = standing(&d, "ixn").await;
    assert_eq!(ixn["redundant"], true, "{ixn}");
    assert_eq!(ixn["servingInstance"], "primary");
    assert!(ixn.get("servingSince").is_none(), "{ixn}");
    assert_eq!(
        ixn["servers"],
        json!([{"instance": "primary", "health": "up"}, {"instance": "backup", "health": "up"}])
    );
    let provisioning = standing(&d, "provisioning").await;
    assert_eq!(
        provisioning["cassandra"],
        json!({"nodes": 3, "up": 3, "quorum": 2})
    );
    assert_eq!(provisioning["redundant"], true);

    // The primary dies: the backup serves, since the move.
    let before = SystemTime::now();
    primary.close().await;
    let ixn = eventually(Duration::from_secs(5), "the backup serves", async || {
        let s = standing(&d, "ixn").await;
        (s["servingInstance"] == "backup").then_some(s)
    })
    .await;
    assert_eq!(ixn["redundant"], false, "{ixn}");
    assert_eq!(
        ixn["servers"][0],
        json!({"instance": "primary", "health": "down"})
    );
    let since = humantime::parse_rfc3339(ixn["servingSince"].as_str().unwrap()).unwrap();
    let after = SystemTime::now();
    assert!(
        since + Duration::from_millis(1) >= before && since <= after,
        "the move's time, {ixn}"
    );

    // A Cassandra node down: at its quorum, no redundancy left.
    nodes[0].close().await;
    let provisioning = eventually(Duration::from_secs(5), "a node down", async || {
        let s = standing(&d, "provisioning").await;
        (s["cassandra"]["up"] == 2).then_some(s)
    })
    .await;
    assert_eq!(provisioning["redundant"], false, "{provisioning}");
    assert_eq!(provisioning["cassandra"]["nodes"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_hidden_from_the_caller_is_not_listed() {
    let backend = Backend::start(Mode::Accept).await;
    let d = TestDaemon::start(&format!(
        "[[contact_center]]\nid = \"voice-only\"\nfeatures = [\"api-voice\"]\n\
         [[user]]\nname = \"voice\"\npassword = \"{}\"\nroles = [\"agent\"]\ncontact_center = \"voice-only\"\n\
         [[service]]\nid = \"sip\"\ntype = \"Voice\"\nprimary = {}\n{CHECK}\n\
         [[service]]\nid = \"chat\"\ntype = \"Media\"\nprimary = {}\n{CHECK}\n",
        servicewatch::password::hash(common::PASSWORD).unwrap(),
        backend.toml(),
        backend.toml(),
    ));
    let (status, body) = d
        .call_as("voice", reqwest::Method::GET, "/api/v2/redundancy", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["redundancy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sip"], "{body}");
    // Without a login, nothing.
    let anonymous = reqwest::get(d.url("/api/v2/redundancy")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
