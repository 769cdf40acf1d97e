#![cfg(feature = "cluster")]
//! What the nodes' views cost etcd and the leader's records when a cluster starts on a site
//! of 2,001 services: a measurement, printed, not asserted. Run it with
//!
//! ```text
//! cargo test --test cluster_views_cost -- --ignored --nocapture
//! ```
//!
//! and `SW_QUORUM=leader` (or any `[cluster] quorum` value) to compare. A watch of its own
//! on the prefix counts the views' and the records' writes and bytes, and times each record
//! from the leader's decision (`written`) to its arrival here: the queue wait of the
//! leader's writes, the write and the watch.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cluster::*;
use common::etcd::Etcd;
use common::{Backend, Mode};

const SERVICES: usize = 2001;

/// Two nodes on `etcd` supervising [`SERVICES`] services, with `quorum` (`None`: the
/// default).
fn nodes(etcd: &str, backend: &Backend, quorum: Option<&str>) -> Vec<Node> {
    let mut services = String::new();
    for n in 0..SERVICES {
        services.push_str(&format!(
            "[[service]]\nid = \"stat{n}\"\ntype = \"Reporting\"\nprimary = {}\ncheck = {{ interval = \"60s\" }}\n",
            backend.toml()
        ));
    }
    ["a", "b"]
        .iter()
        .map(|name| {
            let mut toml = node_toml(etcd, name, &services);
            if let Some(quorum) = quorum {
                toml = toml.replace(
                    "lease_ttl = \"2s\"\n",
                    &format!("lease_ttl = \"2s\"\nquorum = \"{quorum}\"\n"),
                );
            }
            Node::start(name, toml)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    views: usize,
    view_bytes: usize,
    view_deletes: usize,
    records: usize,
    record_bytes: usize,
    lags: Vec<Duration>,
    first: Option<Duration>,
    last_record: Duration,
    last_view: Duration,
}

#[test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
fn views_cost_at_start_of_two_thousand_services() {
    if !common::etcd::available() {
        return;
    }
    let quorum = std::env::var("SW_QUORUM").ok().filter(|q| !q.is_empty());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let etcd = Etcd::start();
    let backend = runtime.block_on(Backend::start(Mode::Accept));
    let tally = runtime.block_on(async {
        let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .unwrap();
        let mut watch = client
            .watch(
                "/servicewatch/",
                Some(etcd_client::WatchOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        let start = Instant::now();
        let nodes = nodes(&etcd.endpoint(), &backend, quorum.as_deref());
        let mut tally = Tally::default();
        let deadline = start + Duration::from_secs(60);
        while Instant::now() < deadline {
            let wait = if tally.records >= SERVICES {
                Duration::from_secs(3)
            } else {
                Duration::from_secs(10)
            };
            let Ok(Ok(Some(response))) = tokio::time::timeout(wait, watch.message()).await else {
                break;
            };
            let now = start.elapsed();
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let key = kv.key_str().unwrap_or_default();
                tally.first.get_or_insert(now);
                if key.starts_with("/servicewatch/views/") {
                    if event.event_type() == etcd_client::EventType::Delete {
                        tally.view_deletes += 1;
                    } else {
                        tally.views += 1;
                        tally.view_bytes += key.len() + kv.value().len();
                    }
                    tally.last_view = now;
                } else if key.starts_with("/servicewatch/services/") {
                    tally.records += 1;
                    tally.record_bytes += key.len() + kv.value().len();
                    tally.last_record = now;
                    let record: serde_json::Value =
                        serde_json::from_slice(kv.value()).unwrap_or_default();
                    let written =
                        UNIX_EPOCH + Duration::from_millis(record["written"].as_u64().unwrap_or(0));
                    tally.lags.push(
                        SystemTime::now()
                            .duration_since(written)
                            .unwrap_or_default(),
                    );
                }
            }
        }
        drop(nodes);
        tally
    });
    let mut lags = tally.lags.clone();
    lags.sort();
    let span = tally
        .last_view
        .saturating_sub(tally.first.unwrap_or_default());
    println!(
        "quorum {:?}: {} services, 2 nodes\n  views: {} puts, {} deletes, {} bytes, over {:?} ({:.0} puts/s)\n  records: {} puts, {} bytes, last {:?} after the nodes started\n  record lag (decision to watch): p50 {:?} p99 {:?} max {:?}",
        quorum.as_deref().unwrap_or("default"),
        SERVICES,
        tally.views,
        tally.view_deletes,
        tally.view_bytes,
        span,
        tally.views as f64 / span.as_secs_f64().max(0.001),
        tally.records,
        tally.record_bytes,
        tally.last_record,
        lags.get(lags.len() / 2),
        (!lags.is_empty()).then(|| percentile(&lags, 0.99)),
        lags.last(),
    );
}
