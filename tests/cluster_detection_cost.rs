#![cfg(feature = "cluster")]
//! Detection in a cluster: how long after a watched backend dies a WebSocket subscriber on
//! a node that does not lead hears that its service is `Inactive`, with three nodes
//! deciding by majority (the default), three nodes with `quorum = "leader"`, and one node
//! alone, in the same run: a measurement, printed, not asserted. Run it with
//!
//! ```text
//! cargo test --test cluster_detection_cost -- --ignored --nocapture
//! ```
//!
//! (`SW_KILLS=N` for another number of kills than 20 per configuration).
//!
//! As in `benches/detection.rs`, the backend is a loopback listener of this test that keeps
//! every connection it accepts; "killing" it closes the listener and every connection at
//! once, as the kernel does when a process dies. The check: [`CHECK`]. Each kill is timed
//! from just before the close to the subscriber's receipt of `Inactive`; then the backend
//! listens again on the same port, and the next kill waits for `Active` at the subscriber,
//! for every probing node's watch connection to be open again
//! (`servicewatch_watch_open` and the backend's own count of connections) and for the
//! youngest of them to have lived one interval, so that it is reopened at once after the
//! next recovery instead of backing off.
//!
//! A watch of its own on etcd times, for each kill, each node's first view of the service
//! (`{prefix}views/{node}/stat`) and the leader's `Inactive` record: where the time goes.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bayeux::{Received, WsClient};
use common::cluster::*;
use common::etcd::Etcd;
use common::held::HeldBackend;
use common::{TestDaemon, eventually};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The check of the one server: probed every 2 s (timeout 1 s), down or up at the first
/// failing or passing probe, probed every 100 ms while down, watched.
const CHECK: &str = r#"kind = "tcp", interval = "2s", timeout = "1s", rise = 1, fall = 1, down_interval = "100ms", watch = true"#;
const INTERVAL: Duration = Duration::from_secs(2);
/// The instance as the metrics name it.
const WATCH_OPEN: &str = r#"servicewatch_watch_open{service="stat",instance="primary"}"#;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Setup {
    Majority,
    Leader,
    Single,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Majority => "3 nodes, quorum = \"majority\"",
            Setup::Leader => "3 nodes, quorum = \"leader\"",
            Setup::Single => "1 node, no cluster",
        }
    }
}

/// The nodes of `setup` on `etcd`, supervising one Reporting service "stat" on `backend`.
fn nodes(setup: Setup, etcd: &str, backend: SocketAddr) -> Vec<Node> {
    let service = format!(
        "[[service]]\nid = \"stat\"\ntype = \"Reporting\"\nprimary = {{ host = \"127.0.0.1\", port = {} }}\ncheck = {{ {CHECK} }}\n",
        backend.port()
    );
    let names: &[&str] = match setup {
        Setup::Single => &["solo"],
        _ => &["n1", "n2", "n3"],
    };
    names
        .iter()
        .map(|name| {
            let mut toml = node_toml(etcd, name, &service);
            match setup {
                Setup::Majority => {
                    toml = toml.replace(
                        "lease_ttl = \"2s\"\n",
                        "lease_ttl = \"2s\"\nquorum = \"majority\"\n",
                    )
                }
                Setup::Leader => {
                    toml = toml.replace(
                        "lease_ttl = \"2s\"\n",
                        "lease_ttl = \"2s\"\nquorum = \"leader\"\n",
                    )
                }
                Setup::Single => {
                    toml = toml.replace(
                        &format!(
                            "[cluster]\nendpoints = [\"{etcd}\"]\nnode = \"{name}\"\nlease_ttl = \"2s\"\ntimeout = \"500ms\"\n"
                        ),
                        "",
                    );
                    assert!(!toml.contains("[cluster]"), "{toml}");
                }
            }
            assert!(setup == Setup::Single || toml.contains("quorum = "));
            Node::start(name, toml)
        })
        .collect()
}

/// A subscriber to the services topic at `addr`, answering its connects.
struct Listener {
    client: WsClient,
    connect: Value,
}

impl Listener {
    async fn open(addr: &str) -> Listener {
        let client = WsClient::subscribed(&TestDaemon::attach(addr)).await;
        let connect = json!([{"channel":"/meta/connect","clientId":client.client_id,"connectionType":"websocket"}]);
        let mut listener = Listener { client, connect };
        listener.client.send(listener.connect.clone()).await;
        listener
    }

    /// Reads until a message says "stat" is `state`; when the frame arrived.
    async fn until(&mut self, state: &str, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let batch = match self.client.recv_within(left).await {
                Some(Received::Batch(batch)) => batch,
                other => panic!("no {state} within {within:?}: {other:?}"),
            };
            let at = Instant::now();
            let mut heard = false;
            for m in &batch {
                if m["channel"] == "/meta/connect" {
                    self.client.send(self.connect.clone()).await;
                } else if m["channel"] == SERVICES
                    && m["data"]["service"]["id"] == "stat"
                    && m["data"]["service"]["state"] == state
                {
                    heard = true;
                }
            }
            if heard {
                return at;
            }
        }
    }
}

/// What the etcd watch saw: (when, key, state or view health, put or delete).
type Events = Arc<Mutex<Vec<(Instant, String, String)>>>;

/// Watches `{prefix}views/` and `{prefix}services/stat` on `endpoint`, into the list returned.
async fn watch_etcd(endpoint: String) -> (Events, JoinHandle<()>) {
    let events: Events = Arc::default();
    let keep = events.clone();
    let mut client = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let mut stream = client
        .watch(
            "/servicewatch/",
            Some(etcd_client::WatchOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        // The client lives as long as its watch.
        let _client = client;
        while let Ok(Some(response)) = stream.message().await {
            let at = Instant::now();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let key = kv.key_str().unwrap_or_default().to_string();
                if !key.starts_with("/servicewatch/views/") && key != "/servicewatch/services/stat"
                {
                    continue;
                }
                let what = if event.event_type() == etcd_client::EventType::Delete {
                    "deleted".to_string()
                } else {
                    // A record's state, or a view's health of the one server.
                    let value: Value = serde_json::from_slice(kv.value()).unwrap_or_default();
                    value["state"]
                        .as_str()
                        .or(value[0]["health"].as_str())
                        .unwrap_or("?")
                        .to_string()
                };
                keep.lock().unwrap().push((at, key, what));
            }
        }
    });
    (events, task)
}

/// The times of one configuration, sorted, and the breakdown of where they went.
struct Measured {
    setup: Setup,
    heard: Vec<Duration>,
    /// Per key (a view of a node, the record): the time from the kill to its first write.
    writes: BTreeMap<String, Vec<Duration>>,
    leader: Option<String>,
    subscriber: String,
}

async fn measure(setup: Setup, kills: usize) -> Measured {
    let etcd = Etcd::start();
    let (events, watch) = watch_etcd(etcd.endpoint()).await;
    let mut backend = HeldBackend::start(SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let nodes = nodes(setup, &etcd.endpoint(), backend.addr);
    let (probing, at, leader_name) = if setup == Setup::Single {
        (vec![0], 0, None)
    } else {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        let probing = if setup == Setup::Leader {
            vec![lead]
        } else {
            vec![0, 1, 2]
        };
        (probing, (lead + 1) % 3, Some(nodes[lead].name.clone()))
    };
    eventually(Duration::from_secs(20), "Active", || async {
        let (services, _) = nodes[at].services().await?;
        let active = services.as_array()?.iter().any(|s| s["state"] == "Active");
        active.then_some(())
    })
    .await;
    let mut subscriber = Listener::open(&nodes[at].process.addr).await;
    let mut measured = Measured {
        setup,
        heard: Vec::with_capacity(kills),
        writes: BTreeMap::new(),
        leader: leader_name.clone(),
        subscriber: nodes[at].name.clone(),
    };
    for _ in 0..kills {
        // Every probing node's watch connection open, and old enough to be reopened at
        // once after the next recovery.
        eventually(Duration::from_secs(30), "the watch connections", || async {
            for &i in &probing {
                if nodes[i].metric(WATCH_OPEN).await != Some(1.0) {
                    return None;
                }
            }
            (backend.accepted() >= probing.len()).then_some(())
        })
        .await;
        tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
        let from = events.lock().unwrap().len();
        let killed = Instant::now();
        backend.kill().await;
        let heard = subscriber.until("Inactive", Duration::from_secs(30)).await;
        measured.heard.push(heard - killed);
        backend = HeldBackend::start(backend.addr).await;
        subscriber.until("Active", Duration::from_secs(30)).await;
        // The first write of each key after the kill, up to the subscriber's receipt.
        let mut firsts: BTreeMap<String, Duration> = BTreeMap::new();
        for (when, key, what) in events.lock().unwrap()[from..].iter() {
            if *when > heard {
                break;
            }
            let key = key
                .trim_start_matches("/servicewatch/")
                .trim_end_matches("/stat")
                .to_string();
            firsts
                .entry(format!("{key} {what}"))
                .or_insert(*when - killed);
        }
        // The view that makes a majority of three: the second node's "down".
        let mut downs: Vec<Duration> = firsts
            .iter()
            .filter(|(key, _)| key.starts_with("views/") && key.ends_with(" down"))
            .map(|(_, took)| *took)
            .collect();
        downs.sort();
        if let Some(second) = downs.get(1) {
            firsts.insert("views: the second down".to_string(), *second);
        }
        for (key, took) in firsts {
            measured.writes.entry(key).or_default().push(took);
        }
    }
    if setup != Setup::Single {
        let lead = leader(&nodes, Duration::from_secs(15)).await;
        assert_eq!(
            Some(&nodes[lead].name),
            leader_name.as_ref(),
            "the leader changed during the run"
        );
    }
    measured.heard.sort();
    for took in measured.writes.values_mut() {
        took.sort();
    }
    drop(nodes);
    watch.abort();
    measured
}

fn figures(sorted: &[Duration]) -> String {
    format!(
        "p50 {:>9.1?} p99 {:>9.1?} max {:>9.1?}",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted[sorted.len() - 1],
    )
}

#[test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
fn detection_of_a_watched_death_on_a_follower() {
    if !common::etcd::available() {
        return;
    }
    let kills: usize = std::env::var("SW_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let all: Vec<Measured> = [Setup::Majority, Setup::Leader, Setup::Single]
        .into_iter()
        .map(|setup| runtime.block_on(measure(setup, kills)))
        .collect();
    println!("check: {{ {CHECK} }}; {kills} kills each");
    for m in &all {
        println!(
            "{:<30} {} kills, subscriber on {} (leader {}): Inactive heard after {}",
            m.setup.name(),
            m.heard.len(),
            m.subscriber,
            m.leader.as_deref().unwrap_or("none"),
            figures(&m.heard),
        );
        for (key, took) in &m.writes {
            println!(
                "    etcd: first {key:<24} after the kill {} ({} of {} kills)",
                figures(took),
                took.len(),
                m.heard.len()
            );
        }
    }
}
