//! The metrics of a node's place in a cluster (`[cluster]`): whether it leads, whether what
//! it serves may be stale, how its lease and its watch fare. A node alone leaves them at 0.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;
use std::sync::atomic::AtomicU64;

/// The cluster metrics, registered with the others.
#[derive(Default)]
pub struct ClusterMetrics {
    /// 1 while this node leads (runs the monitors and writes).
    pub leader: Gauge,
    /// 1 while this node cannot reach etcd and serves what it last knew.
    pub stale: Gauge,
    /// 1 while this node's services differ from the leader's (it does not campaign).
    pub config_mismatch: Gauge,
    /// Lease renewals etcd confirmed.
    pub lease_renewals: Counter,
    /// Records this node wrote as leader.
    pub writes: Counter,
    /// Writes the fence refused: this node believed it led after another had taken over.
    pub writes_refused: Counter,
    /// Times this node became leader.
    pub elections_won: Counter,
    /// The etcd revision of the last change this node served.
    pub revision: Gauge,
    /// How long the last change took from the leader's write to this node's watch.
    pub watch_lag_seconds: Gauge<f64, AtomicU64>,
}

impl ClusterMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        let r = registry.sub_registry_with_prefix("cluster");
        r.register(
            "leader",
            "1 while this node leads the cluster",
            self.leader.clone(),
        );
        r.register(
            "stale",
            "1 while this node cannot reach etcd and serves what it last knew",
            self.stale.clone(),
        );
        r.register(
            "config_mismatch",
            "1 while this node's services differ from the leader's; it does not campaign",
            self.config_mismatch.clone(),
        );
        r.register(
            "lease_renewals",
            "Lease renewals etcd confirmed",
            self.lease_renewals.clone(),
        );
        r.register(
            "writes",
            "Service records written as leader",
            self.writes.clone(),
        );
        r.register(
            "writes_refused",
            "Writes refused by the leadership fence (another node had taken over)",
            self.writes_refused.clone(),
        );
        r.register(
            "elections_won",
            "Times this node became the leader",
            self.elections_won.clone(),
        );
        r.register(
            "revision",
            "etcd revision of the last change this node served",
            self.revision.clone(),
        );
        r.register(
            "watch_lag_seconds",
            "Time from the leader's write of the last change to this node's receipt",
            self.watch_lag_seconds.clone(),
        );
    }
}
