#![cfg(feature = "cluster")]
//! Many eyes: three nodes each probe the server and the leader decides by majority. A
//! server that one node cannot reach stays up (the instance detail shows the nodes
//! disagree); one that two of three cannot reach is down.
//!
//! Which node reaches the server is set per node with an `exec` check that fails for the
//! node whose process id is named by a file (`$PPID` is the daemon running the check), so
//! that every node has the same `[[service]]` tables and a distinct path to the server.

mod common;

use std::path::Path;
use std::time::Duration;

use common::cluster::*;
use common::etcd::Etcd;
use common::{PASSWORD, SUPERVISOR, eventually, stays};
use serde_json::Value;

/// A Reporting service "stat" whose one server each node reaches unless `dir` holds a
/// file named by that node's process id.
fn blockable_stat(dir: &Path) -> String {
    format!(
        r#"[[service]]
id = "stat"
type = "Reporting"
primary = {{ host = "127.0.0.1", port = 1 }}
check = {{ kind = "exec", command = ["sh", "-c", "test ! -e {}/$PPID || exit 2"], interval = "100ms", timeout = "1s", rise = 1, fall = 1 }}
"#,
        dir.display()
    )
}

/// Nodes named `names` that decide by majority, supervising [`blockable_stat`].
fn quorum_nodes(etcd: &str, names: &[&str], dir: &Path) -> Vec<Node> {
    names
        .iter()
        .map(|name| {
            let toml = node_toml(etcd, name, &blockable_stat(dir)).replace(
                "lease_ttl = \"2s\"\n",
                "lease_ttl = \"2s\"\nquorum = \"majority\"\n",
            );
            assert!(toml.contains("quorum"));
            Node::start(name, toml)
        })
        .collect()
}

/// Makes `node` unable (or able again) to reach the server.
fn cut(dir: &Path, node: &Node, cut: bool) {
    let file = dir.join(node.process.child.id().to_string());
    if cut {
        std::fs::write(file, b"").unwrap();
    } else {
        let _ = std::fs::remove_file(file);
    }
}

/// The primary's instance detail as `node` serves it.
async fn primary_detail(node: &Node) -> Option<Value> {
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/api/v2/services/stat/instances",
            node.process.addr
        ))
        .basic_auth(SUPERVISOR, Some(PASSWORD))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    Some(body["instances"][0].clone())
}

/// Each node's view of the primary as `node` shows it: (node, health).
async fn views(node: &Node) -> Vec<(String, String)> {
    let Some(detail) = primary_detail(node).await else {
        return Vec::new();
    };
    detail["views"]
        .as_array()
        .map(|views| {
            views
                .iter()
                .map(|v| {
                    (
                        v["node"].as_str().unwrap_or_default().to_string(),
                        v["health"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn state_everywhere(nodes: &[Node], want: &str) -> bool {
    state_everywhere_of(&nodes.iter().collect::<Vec<_>>(), want).await
}

async fn state_everywhere_of(nodes: &[&Node], want: &str) -> bool {
    for node in nodes {
        let Some((services, _)) = node.services().await else {
            return false;
        };
        if state_of(&services, "stat").0 != want {
            return false;
        }
    }
    true
}

#[test]
fn one_node_that_cannot_reach_a_server_does_not_flip_it_and_two_of_three_do() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let nodes = quorum_nodes(&etcd.endpoint(), &["q1", "q2", "q3"], dir.path());
    runtime.block_on(async {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        eventually(Duration::from_secs(10), "every node's view, up", || async {
            let seen = views(&nodes[(lead + 1) % 3]).await;
            (seen.len() == 3 && seen.iter().all(|(_, h)| h == "up")).then_some(())
        })
        .await;
        assert!(state_everywhere(&nodes, "Active").await);

        // The leader itself cannot reach the server: its own view is outvoted.
        cut(dir.path(), &nodes[lead], true);
        let name = nodes[lead].name.clone();
        eventually(
            Duration::from_secs(10),
            "the leader's view, down",
            || async {
                let seen = views(&nodes[(lead + 2) % 3]).await;
                seen.iter()
                    .any(|(n, h)| *n == name && h == "down")
                    .then_some(())
            },
        )
        .await;
        stays(Duration::from_secs(2), "Active on every node", || {
            state_everywhere(&nodes, "Active")
        })
        .await;
        let disagreement = r#"servicewatch_server_disagreement{service="stat",instance="primary"}"#;
        for node in &nodes {
            assert_eq!(node.metric(disagreement).await, Some(1.0), "{}", node.name);
        }
        let detail = primary_detail(&nodes[lead]).await.unwrap();
        assert_eq!(detail["views"].as_array().unwrap().len(), 3, "{detail}");
        assert!(
            detail["views"][0]["check"].is_string() && detail["views"][0]["since"].is_string(),
            "{detail}"
        );

        // A second node cannot reach it either: two of three see it down.
        cut(dir.path(), &nodes[(lead + 1) % 3], true);
        eventually(
            Duration::from_secs(10),
            "Inactive on every node",
            || async { state_everywhere(&nodes, "Inactive").await.then_some(()) },
        )
        .await;

        // Both reach it again: it is up, and the nodes agree again.
        cut(dir.path(), &nodes[lead], false);
        cut(dir.path(), &nodes[(lead + 1) % 3], false);
        eventually(Duration::from_secs(10), "Active on every node", || async {
            state_everywhere(&nodes, "Active").await.then_some(())
        })
        .await;
        eventually(Duration::from_secs(10), "the nodes to agree", || async {
            for node in &nodes {
                if node.metric(disagreement).await != Some(0.0) {
                    return None;
                }
            }
            Some(())
        })
        .await;
        assert!(
            !nodes[lead]
                .process
                .log_lines("the nodes agree about a server again")
                .is_empty()
        );
    });
}

#[test]
fn a_node_that_dies_stops_voting() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let nodes = quorum_nodes(&etcd.endpoint(), &["d1", "d2", "d3"], dir.path());
    runtime.block_on(async {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        // The leader and a follower cannot reach the server: down. Then the follower
        // dies: once its view leaves etcd with its lease, the two left are split, and a
        // tie keeps the server up.
        let (gone, other) = ((lead + 1) % 3, (lead + 2) % 3);
        cut(dir.path(), &nodes[lead], true);
        cut(dir.path(), &nodes[gone], true);
        eventually(Duration::from_secs(10), "Inactive", || async {
            state_everywhere(&nodes, "Inactive").await.then_some(())
        })
        .await;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(nodes[gone].process.child.id() as libc::pid_t, libc::SIGKILL) };
        let left = [&nodes[lead], &nodes[other]];
        eventually(
            Duration::from_secs(10),
            "Active once the dead node's view is gone",
            || async { state_everywhere_of(&left, "Active").await.then_some(()) },
        )
        .await;
        let seen = views(&nodes[lead]).await;
        assert_eq!(seen.len(), 2, "{seen:?}");
    });
}
