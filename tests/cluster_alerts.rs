#![cfg(feature = "cluster")]
//! Alerts on a cluster: only the leader sends; a leader killed between deciding a change
//! and delivering its alert loses nothing (its successor sends it, with the same key),
//! and the followers do not send what the leader delivered.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::*;
use common::etcd::Etcd;
use common::hook::Hook;
use common::{Backend, Mode, eventually};

#[test]
fn a_leader_killed_before_delivering_an_alert_loses_none() {
    if !common::etcd::available() {
        return;
    }
    let kills: usize = std::env::var("CLUSTER_ALERT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let hook = runtime.block_on(Hook::start());
    let mut single = runtime.block_on(Backend::start(Mode::Accept));
    // Events wait 3 s for their group: a kill right after a change lands before the leader
    // sends it (on a machine slow enough that it does not, the change is still told once).
    let services = format!(
        "[alerts]\ngroup_wait = \"3s\"\ngroup_interval = \"100ms\"\n{}{}",
        hook.toml("noc"),
        stat_toml(&single)
    );
    let mut nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["sw1", "sw2", "sw3"], &services);
    let mut expected = Vec::new();
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        // One change delivered while all run: sent once, by the leader alone.
        flip_stat(&mut single, &nodes, None, Duration::from_secs(10)).await;
        expected.push("Inactive");
        eventually(Duration::from_secs(10), "the first alert", || async {
            (!hook.events().is_empty()).then_some(())
        })
        .await;
        common::stays(Duration::from_secs(2), "one delivery", || async {
            hook.received().len() == 1
        })
        .await;
        for kill in 0..kills {
            let lead = leader(&nodes, Duration::from_secs(15)).await;
            let told_before = hook.events().len();
            flip_stat(&mut single, &nodes, None, Duration::from_secs(10)).await;
            expected.push(if expected.last() == Some(&"Inactive") {
                "Active"
            } else {
                "Inactive"
            });
            // Decided and applied everywhere; its group waits: the leader dies now.
            let dead = nodes.remove(lead);
            drop(dead.process);
            let sent_before_the_kill = hook.events().len() > told_before;
            let want = *expected.last().unwrap();
            eventually(
                Duration::from_secs(15),
                "the successor to send the alert",
                || async {
                    hook.events()[told_before..]
                        .iter()
                        .any(|e| e["service"]["id"] == "stat" && e["state"] == want)
                        .then_some(())
                },
            )
            .await;
            if sent_before_the_kill {
                eprintln!(
                    "kill {kill}: {} sent the {want} alert before it was killed",
                    dead.name
                );
            } else {
                eprintln!(
                    "kill {kill}: {} killed before sending; its successor sent the {want} alert",
                    dead.name
                );
            }
            nodes.push(Node::start(&dead.name, dead.toml));
            agreed(&nodes, Duration::from_secs(15)).await;
        }
    });
    // Every change was told, in order; one told twice (a successor that had not yet heard
    // of the delivery) carries the same key both times.
    let events: Vec<serde_json::Value> = hook
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "stateChanged")
        .collect();
    let mut keys = Vec::new();
    let mut states = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &events {
        let key = e["key"].as_str().unwrap().to_string();
        if seen.insert(key.clone()) {
            keys.push(key);
            states.push(e["state"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        states, expected,
        "every change told once, in order: {events:#?}"
    );
    eprintln!(
        "{} changes, {} deliveries of their events ({} repeated)",
        keys.len(),
        events.len(),
        events.len() - keys.len()
    );
}

#[test]
fn each_node_that_loses_etcd_says_so_itself_and_says_when_it_is_back() {
    if !common::etcd::available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut etcd = Etcd::start();
    let hook = runtime.block_on(Hook::start());
    let single = runtime.block_on(Backend::start(Mode::Accept));
    let services = format!(
        "[alerts]\ngroup_wait = \"100ms\"\n{}{}",
        hook.toml("noc"),
        stat_toml(&single)
    );
    let nodes: Vec<Node> = start_nodes(&etcd.endpoint(), &["sw1", "sw2", "sw3"], &services);
    let told = |kind: &str| -> BTreeSet<String> {
        hook.events()
            .iter()
            .filter(|e| e["kind"] == kind)
            .map(|e| {
                e["key"]
                    .as_str()
                    .unwrap()
                    .split('/')
                    .nth(1)
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    runtime.block_on(async {
        leader(&nodes, Duration::from_secs(15)).await;
        agreed(&nodes, Duration::from_secs(15)).await;
        assert!(told("nodeStale").is_empty(), "a start is no news");
        etcd.kill();
        let every: BTreeSet<String> = ["sw1", "sw2", "sw3"].map(String::from).into();
        eventually(
            Duration::from_secs(30),
            "every node to say it lost etcd",
            || async { (told("nodeStale") == every).then_some(()) },
        )
        .await;
        etcd.resume();
        eventually(
            Duration::from_secs(30),
            "every node to say it is back",
            || async { (told("nodeFresh") == every).then_some(()) },
        )
        .await;
    });
    let stale = hook
        .events()
        .into_iter()
        .find(|e| e["kind"] == "nodeStale")
        .unwrap();
    assert_eq!(stale["severity"], "warning", "{stale}");
    assert!(
        stale["summary"].as_str().unwrap().contains("lost etcd"),
        "{stale}"
    );
    let stale_events = hook
        .events()
        .iter()
        .filter(|e| e["kind"] == "nodeStale")
        .count();
    assert_eq!(stale_events, 3, "each node told once: {:#?}", hook.events());
}
