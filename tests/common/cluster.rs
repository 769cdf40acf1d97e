//! Several servicewatch nodes on etcd, for the cluster tests: the nodes' configuration,
//! each node as a real binary, WebSocket subscribers that move between nodes, and the
//! checks run on what they saw.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bayeux::{Received, WsClient};
use super::process::DaemonProcess;
use super::{Backend, PASSWORD, TestDaemon, USER, eventually, users_toml};
use serde_json::{Value, json};

pub const SERVICES: &str = "/notifications/services";
/// Fast checks, so that a failure shows within a few hundred milliseconds.
pub const FAST: &str = r#"kind = "tcp", interval = "100ms", timeout = "300ms", rise = 1, fall = 1"#;

/// The configuration of node `name` of a cluster on `etcd` (one endpoint, or several
/// joined by `", "`) supervising `services`.
pub fn node_toml(etcd: &str, name: &str, services: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n[notifications]\nconnect_timeout = \"1s\"\n[history]\nenabled = false\n[cluster]\nendpoints = [\"{etcd}\"]\nnode = \"{name}\"\nlease_ttl = \"2s\"\ntimeout = \"500ms\"\n{}\n{services}",
        users_toml()
    )
}

/// A Reporting service "stat" whose one instance is `backend`, probed fast.
pub fn stat_toml(backend: &Backend) -> String {
    format!(
        "[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ {FAST} }}\n",
        backend.toml()
    )
}

/// Nodes named `names` of a cluster on `etcd`, supervising `services`.
pub fn start_nodes(etcd: &str, names: &[&str], services: &str) -> Vec<Node> {
    names
        .iter()
        .map(|name| Node::start(name, node_toml(etcd, name, services)))
        .collect()
}

/// One servicewatch binary of the cluster.
pub struct Node {
    pub name: String,
    pub toml: String,
    pub process: DaemonProcess,
}

impl Node {
    pub fn start(name: &str, toml: String) -> Node {
        Node {
            name: name.to_string(),
            process: DaemonProcess::spawn_config(&toml),
            toml,
        }
    }

    pub async fn admin(&self, path: &str) -> Option<(u16, String)> {
        let admin = self.process.admin.as_ref().expect("the admin listener");
        let response = reqwest::Client::new()
            .get(format!("http://{admin}{path}"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, text) = self.admin("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    pub async fn leads(&self) -> bool {
        self.metric("servicewatch_cluster_leader").await == Some(1.0)
    }

    /// Every service as this node serves it, with the headers that matter.
    pub async fn services(&self) -> Option<(Value, Option<String>)> {
        let response = reqwest::Client::new()
            .get(format!(
                "http://{}/api/v2/services?fields=*",
                self.process.addr
            ))
            .basic_auth(USER, Some(PASSWORD))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let warning = response
            .headers()
            .get("warning")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = response.json().await.ok()?;
        Some((body["services"].clone(), warning))
    }

    pub fn pause(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.process.child.id() as libc::pid_t, libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.process.child.id() as libc::pid_t, libc::SIGCONT) };
    }
}

/// A change as a subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub revision: i64,
    pub id: String,
    pub state: String,
    pub serving: Value,
}

/// A UI: a WebSocket subscriber that follows the changes from one node and, when that node
/// dies, moves to another, presenting the last revision it saw.
pub struct Subscriber {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub moves: Arc<Mutex<usize>>,
}

impl Subscriber {
    /// Subscribes at `first`; `nodes` is the list of live API addresses, kept by the test;
    /// `backoff` is how long it waits before moving to another node.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        nodes: Arc<Mutex<Vec<String>>>,
        first: String,
        backoff: Duration,
        stop: Arc<AtomicBool>,
    ) -> Subscriber {
        let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
        let moves = Arc::new(Mutex::new(0));
        let (record, moved) = (seen.clone(), moves.clone());
        runtime.spawn(async move {
            let mut addr = first;
            let started = Instant::now();
            while !stop.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(600) {
                let last = record.lock().unwrap().last().map(|s: &Seen| s.revision);
                follow(&addr, last, &record, &stop).await;
                if stop.load(Ordering::Acquire) {
                    break;
                }
                // The node died: another one, as a UI's list of nodes would give it, after
                // a backoff that differs from one UI to the next, so that some miss
                // changes while away and must be given them when they come back.
                tokio::time::sleep(backoff).await;
                let others: Vec<String> = nodes
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|a| **a != addr)
                    .cloned()
                    .collect();
                if let Some(next) = others.get(fastrand::usize(..others.len().max(1))) {
                    addr = next.clone();
                    *moved.lock().unwrap() += 1;
                }
            }
        });
        Subscriber { seen, moves }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Follows the changes from the node at `addr` until its connection ends.
pub async fn follow(addr: &str, last: Option<i64>, record: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let d = TestDaemon::attach(addr);
    let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), async {
        let auth = super::daemon::basic_of(USER, PASSWORD);
        WsClient::try_open(&d, &[("authorization", auth.as_str())]).await
    })
    .await
    else {
        return;
    };
    if tokio::time::timeout(Duration::from_secs(2), c.handshake())
        .await
        .is_err()
    {
        return;
    }
    let mut subscribe =
        json!({"channel":"/meta/subscribe","clientId":c.client_id,"subscription":SERVICES});
    if let Some(revision) = last {
        subscribe["ext"] = json!({ "revision": revision });
    }
    let connect =
        json!({"channel":"/meta/connect","clientId":c.client_id,"connectionType":"websocket"});
    c.send(json!([subscribe])).await;
    c.send(json!([connect.clone()])).await;
    while !stop.load(Ordering::Acquire) {
        match c.recv_within(Duration::from_millis(200)).await {
            None => continue,
            Some(Received::Closed(_)) => return,
            Some(Received::Batch(batch)) => {
                for m in batch {
                    if m["channel"] == "/meta/subscribe" {
                        assert_eq!(m["successful"], true, "{m}");
                    } else if m["channel"] == "/meta/connect" {
                        if m["successful"] != true {
                            return;
                        }
                        c.send(json!([connect.clone()])).await;
                    } else if m["channel"] == SERVICES {
                        let service = &m["data"]["service"];
                        record.lock().unwrap().push(Seen {
                            revision: m["ext"]["revision"]
                                .as_i64()
                                .unwrap_or_else(|| panic!("a change without its revision: {m}")),
                            id: service["id"].as_str().unwrap().to_string(),
                            state: service["state"].as_str().unwrap().to_string(),
                            serving: service["servingInstance"].clone(),
                        });
                    }
                }
            }
        }
    }
}

/// Every subscriber saw each change once and in order, all agree on what each revision
/// was, and none has a gap between the first and the last revision it saw. Returns the
/// number of distinct changes.
pub fn check_sequences(subscribers: &[Subscriber]) -> usize {
    let mut all: BTreeMap<i64, Seen> = BTreeMap::new();
    for (n, s) in subscribers.iter().enumerate() {
        let seen = s.seen();
        for pair in seen.windows(2) {
            assert!(
                pair[0].revision < pair[1].revision,
                "subscriber {n} saw revision {} then {}: {seen:?}",
                pair[0].revision,
                pair[1].revision
            );
        }
        for change in &seen {
            let known = all.entry(change.revision).or_insert_with(|| change.clone());
            assert_eq!(
                known, change,
                "two nodes published revision {} differently",
                change.revision
            );
        }
    }
    for (n, s) in subscribers.iter().enumerate() {
        let seen = s.seen();
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            continue;
        };
        let mine: Vec<i64> = seen.iter().map(|c| c.revision).collect();
        for revision in all.range(first.revision..=last.revision).map(|(r, _)| *r) {
            assert!(
                mine.contains(&revision),
                "subscriber {n} missed revision {revision} (it saw {mine:?})"
            );
        }
    }
    all.len()
}

/// Waits until every node answers the same list of services, without a stale warning,
/// and returns it.
pub async fn agreed(nodes: &[Node], within: Duration) -> Value {
    agreed_except(nodes, None, within).await
}

/// Like [`agreed`], among every node but `skipped` (a paused one, say).
pub async fn agreed_except(nodes: &[Node], skipped: Option<usize>, within: Duration) -> Value {
    eventually(within, "the nodes to serve the same services", || async {
        let mut answers = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if Some(i) == skipped {
                continue;
            }
            match node.services().await {
                Some((services, None)) if services.as_array().is_some_and(|a| !a.is_empty()) => {
                    answers.push(services)
                }
                _ => return None,
            }
        }
        answers
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| answers[0].clone())
    })
    .await
}

/// Fails the "stat" backend if it serves, brings it back if not, and waits until every
/// node (but `skipped`) serves the new state.
pub async fn flip_stat(
    single: &mut Backend,
    nodes: &[Node],
    skipped: Option<usize>,
    within: Duration,
) {
    let before = state_of(&agreed_except(nodes, skipped, within).await, "stat").0;
    if before == "Active" {
        single.close().await
    } else {
        single.reopen().await
    }
    eventually(within, "the change on every node", || async {
        let now = agreed_except(nodes, skipped, within).await;
        (state_of(&now, "stat").0 != before).then_some(())
    })
    .await;
}

/// The leader among `nodes`, once exactly one leads.
pub async fn leader(nodes: &[Node], within: Duration) -> usize {
    eventually(within, "exactly one leader", || async {
        let mut leaders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if node.leads().await {
                leaders.push(i);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

pub fn state_of(services: &Value, id: &str) -> (String, Value) {
    let s = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {services}"));
    (
        s["state"].as_str().unwrap().to_string(),
        s["servingInstance"].clone(),
    )
}

/// Service `id` as `services` (a list) shows it.
pub fn state_of_service(services: &Value, id: &str) -> Value {
    services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {services}"))
        .clone()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// One write of a service's record, as etcd holds it in its history.
#[cfg(feature = "cluster")]
#[derive(Debug, Clone)]
pub struct Written {
    pub revision: i64,
    pub id: String,
    pub record: Value,
}

/// Every write under `{prefix}services/` that etcd still has, oldest first: the
/// authoritative sequence the nodes must have published.
#[cfg(feature = "cluster")]
pub async fn etcd_history(endpoint: &str) -> Vec<Written> {
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let prefix = "/servicewatch/services/";
    let now = client
        .get(
            prefix,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut watch = client
        .watch(
            prefix,
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(1),
            ),
        )
        .await
        .unwrap();
    let mut written = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // Caught up once the events reach the revision read above, or nothing more comes.
    while let Ok(Ok(Some(response))) = tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + Duration::from_millis(500)),
        watch.message(),
    )
    .await
    {
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            written.push(Written {
                revision: kv.mod_revision(),
                id: kv.key_str().unwrap().trim_start_matches(prefix).to_string(),
                record: serde_json::from_slice(kv.value()).unwrap_or(Value::Null),
            });
        }
        if written.last().is_some_and(|w| w.revision >= now) {
            break;
        }
    }
    written
}

/// The changes of service `id` a client can see, from etcd's history: each write that
/// changed its state, serving instance or since (a write of a server's health alone
/// leaves what clients see as it was), as (revision, state, serving, since).
#[cfg(feature = "cluster")]
pub fn visible_changes(history: &[Written], id: &str) -> Vec<(i64, String, Value, Value)> {
    let mut changes: Vec<(i64, String, Value, Value)> = Vec::new();
    for w in history.iter().filter(|w| w.id == id) {
        let seen = (
            w.record["state"].as_str().unwrap_or_default().to_string(),
            w.record["serving"].clone(),
            w.record["stateSince"].clone(),
        );
        if changes
            .last()
            .is_none_or(|(_, s, v, t)| (s, v, t) != (&seen.0, &seen.1, &seen.2))
        {
            changes.push((w.revision, seen.0, seen.1, seen.2));
        }
    }
    changes
}

/// Every subscriber saw exactly what etcd's own record holds between the first and the last
/// change it saw: each change of each service once, in order, across its moves between
/// nodes, and nothing etcd does not hold (no false state). Returns the number of changes
/// etcd holds.
#[cfg(feature = "cluster")]
pub fn check_against_etcd(subscribers: &[Subscriber], history: &[Written], ids: &[&str]) -> usize {
    let mut expected: Vec<Seen> = ids
        .iter()
        .flat_map(|id| {
            visible_changes(history, id)
                .into_iter()
                .map(move |(revision, state, serving, _)| Seen {
                    revision,
                    id: id.to_string(),
                    state,
                    serving,
                })
        })
        .collect();
    expected.sort_by_key(|s| s.revision);
    for (n, s) in subscribers.iter().enumerate() {
        let seen = s.seen();
        let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
            continue;
        };
        let due: Vec<&Seen> = expected
            .iter()
            .filter(|e| (first.revision..=last.revision).contains(&e.revision))
            .collect();
        let got: Vec<&Seen> = seen.iter().collect();
        assert_eq!(
            got, due,
            "subscriber {n} differs from etcd's record between revisions {} and {}",
            first.revision, last.revision
        );
    }
    expected.len()
}
