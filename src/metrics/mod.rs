//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! One [`Metrics`] per daemon, shared by `Arc` with whoever counts: monitors (probes,
//! switchovers), the registry (service states, messages fanned out, slow consumers),
//! sessions and connections (gauges), the HTTP layer (requests by route and status) and the
//! lifecycle (reloads). Counting is an atomic add; encoding happens only when scraped.

mod cluster;

pub use cluster::ClusterMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry as PrometheusRegistry;
use std::sync::atomic::AtomicU64;

use crate::domain::roles::{SaidRole, Source};
use crate::domain::service::{Role, ServiceState};

/// Labels of one probe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub service: String,
    /// `primary`, `backup` or `cassandra-N`.
    pub instance: String,
    pub check: String,
    /// `up`, `degraded` or `down`.
    pub outcome: String,
}

/// Labels of a probe duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub service: String,
    pub instance: String,
}

/// What one instance said of its role.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub service: String,
    pub instance: String,
    /// `primary`, `backup` or `unknown`.
    pub role: String,
}

/// One service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

/// One service in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub service: String,
    pub state: String,
}

/// One HTTP answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route pattern (`/api/v2/services/{id}`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

/// How a reload ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied` or `refused`.
    pub result: String,
}

/// Every metric of one daemon.
pub struct Metrics {
    registry: PrometheusRegistry,
    /// The node's place in a cluster.
    pub cluster: ClusterMetrics,
    pub probes: Family<ProbeLabels, Counter>,
    pub probe_duration: Family<InstanceLabels, Histogram>,
    /// 1 while a server's watch connection is open (checks with `watch = true`).
    pub watch_open: Family<InstanceLabels, Gauge>,
    /// 1 while an instance is healthy (up or degraded), 0 while down.
    pub instance_up: Family<InstanceLabels, Gauge>,
    /// 1 for the instance that serves its service.
    pub instance_serving: Family<InstanceLabels, Gauge>,
    /// 1 for the role an instance last said it has (services with a role check).
    pub instance_role: Family<RoleLabels, Gauge>,
    /// Days until the certificate an `https` check was shown expires.
    pub certificate_days_left: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    /// 1 while both instances of a pair say they are primary.
    pub role_conflict: Family<ServiceLabels, Gauge>,
    /// 1 while a service with a role check infers its serving instance, no healthy instance
    /// saying it is primary.
    pub role_fallback: Family<ServiceLabels, Gauge>,
    pub service_state: Family<StateLabels, Gauge>,
    /// 1 while a service has a maintenance window (of its own or of an instance).
    pub service_maintenance: Family<ServiceLabels, Gauge>,
    /// 1 while the history database is written, 0 while off or failing.
    pub history_writing: Gauge,
    /// Changes written to the history database.
    pub history_changes: Counter,
    /// Changes the history could not keep (its disk refused, or its queue was full).
    pub history_lost: Counter,
    pub switchovers: Family<ServiceLabels, Counter>,
    pub sessions: Gauge,
    pub websocket_connections: Gauge,
    pub long_polls_held: Gauge,
    pub messages_delivered: Counter,
    pub slow_consumers: Counter,
    /// Changes of a service's published resource (state, serving instance, or its
    /// configuration through a reload), each announced to subscribers.
    pub service_changes: Counter,
    /// Snapshots published: each carries every change since the one before.
    pub publishes: Counter,
    pub password_verifications: Counter,
    pub login_failures: Counter,
    pub login_lockouts: Counter,
    pub password_memory_bytes: Gauge,
    pub http_client_errors: Counter,
    /// Client connections open (every listener, REST and notifications alike).
    pub http_connections: Gauge,
    /// Connections answered 503 because `[limits] max_connections` were already open.
    pub connections_refused: Counter,
    pub http_requests: Family<HttpLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = PrometheusRegistry::with_prefix("servicewatch");
        let probes = Family::<ProbeLabels, Counter>::default();
        let probe_duration = Family::<InstanceLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 15))) as fn() -> Histogram,
        );
        let watch_open = Family::<InstanceLabels, Gauge>::default();
        let instance_up = Family::<InstanceLabels, Gauge>::default();
        let instance_serving = Family::<InstanceLabels, Gauge>::default();
        let instance_role = Family::<RoleLabels, Gauge>::default();
        let certificate_days_left = Family::<InstanceLabels, Gauge<f64, AtomicU64>>::default();
        let role_conflict = Family::<ServiceLabels, Gauge>::default();
        let role_fallback = Family::<ServiceLabels, Gauge>::default();
        let service_state = Family::<StateLabels, Gauge>::default();
        let service_maintenance = Family::<ServiceLabels, Gauge>::default();
        let history_writing = Gauge::default();
        let history_changes = Counter::default();
        let history_lost = Counter::default();
        let switchovers = Family::<ServiceLabels, Counter>::default();
        let sessions = Gauge::default();
        let websocket_connections = Gauge::default();
        let long_polls_held = Gauge::default();
        let messages_delivered = Counter::default();
        let slow_consumers = Counter::default();
        let service_changes = Counter::default();
        let publishes = Counter::default();
        let password_verifications = Counter::default();
        let login_failures = Counter::default();
        let login_lockouts = Counter::default();
        let password_memory_bytes = Gauge::default();
        let http_client_errors = Counter::default();
        let http_connections = Gauge::default();
        let connections_refused = Counter::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "build",
            "Version of the running servicewatch",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register("probes", "Probes run, by outcome", probes.clone());
        registry.register(
            "probe_duration_seconds",
            "Time one probe took, connection included",
            probe_duration.clone(),
        );
        registry.register(
            "watch_open",
            "1 while the watch connection to a server (watch = true) is open",
            watch_open.clone(),
        );
        registry.register(
            "instance_up",
            "1 while an instance is healthy (up or degraded), 0 while down",
            instance_up.clone(),
        );
        registry.register(
            "instance_serving",
            "1 for the instance of a pair that serves its service, 0 for the other",
            instance_serving.clone(),
        );
        registry.register(
            "instance_role",
            "1 for the role an instance last said it has (services with a role check), 0 for the others",
            instance_role.clone(),
        );
        registry.register(
            "certificate_days_left",
            "Days until the certificate shown to an https check expires (negative once expired)",
            certificate_days_left.clone(),
        );
        registry.register(
            "role_conflict",
            "1 while both instances of a pair say they are primary",
            role_conflict.clone(),
        );
        registry.register(
            "role_fallback",
            "1 while a service with a role check infers its serving instance from health, no healthy instance saying it is primary",
            role_fallback.clone(),
        );
        registry.register(
            "service_state",
            "1 for the state each service is in, 0 for the others",
            service_state.clone(),
        );
        registry.register(
            "service_maintenance",
            "1 while a service, or one of its instances, is in a maintenance window",
            service_maintenance.clone(),
        );
        registry.register(
            "history_writing",
            "1 while the history database is written; 0 while it is off, or its disk refuses writes",
            history_writing.clone(),
        );
        registry.register(
            "history_changes",
            "Changes written to the history database",
            history_changes.clone(),
        );
        registry.register(
            "history_lost",
            "Changes the history could not keep (its disk refused writes, or its queue was full)",
            history_lost.clone(),
        );
        registry.register(
            "switchovers",
            "Times the serving instance moved from one instance of a pair to the other",
            switchovers.clone(),
        );
        registry.register(
            "bayeux_sessions",
            "Bayeux client sessions alive",
            sessions.clone(),
        );
        registry.register(
            "websocket_connections",
            "WebSocket connections open on the notification endpoint",
            websocket_connections.clone(),
        );
        registry.register(
            "long_polls_held",
            "Long-polling connects held open, waiting for a message to deliver",
            long_polls_held.clone(),
        );
        registry.register(
            "messages_delivered",
            "Notifications handed to client sessions",
            messages_delivered.clone(),
        );
        registry.register(
            "slow_consumers",
            "Client sessions dropped because a queue toward them was full (the session's mailbox, its WebSocket's, or its long-polling backlog)",
            slow_consumers.clone(),
        );
        registry.register(
            "service_changes",
            "Changes of a service's published resource, each announced to subscribers",
            service_changes.clone(),
        );
        registry.register(
            "publishes",
            "Snapshots published; a burst of changes shares one (compare with service_changes)",
            publishes.clone(),
        );
        registry.register(
            "password_verifications",
            "Argon2 verifications run (logins not found in the login cache, decoys included)",
            password_verifications.clone(),
        );
        registry.register(
            "login_failures",
            "Basic logins refused for a wrong name or password",
            login_failures.clone(),
        );
        registry.register(
            "login_lockouts",
            "Times an address was locked out after repeated failed logins",
            login_lockouts.clone(),
        );
        registry.register(
            "password_check_memory_bytes",
            "Argon2 working memory held for password checks (bounded: one buffer per check slot)",
            password_memory_bytes.clone(),
        );
        registry.register(
            "http_client_errors",
            "Connections the HTTP layer refused for malformed input (bad request line or header, reset mid-request) before routing",
            http_client_errors.clone(),
        );
        registry.register(
            "http_connections",
            "Client connections open, on every listener",
            http_connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections answered 503 and closed because [limits] max_connections were open",
            connections_refused.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP answers, by route and status",
            http_requests.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            reloads.clone(),
        );
        let cluster = ClusterMetrics::default();
        cluster.register(&mut registry);
        Metrics {
            registry,
            cluster,
            probes,
            probe_duration,
            watch_open,
            instance_up,
            instance_serving,
            instance_role,
            certificate_days_left,
            role_conflict,
            role_fallback,
            service_state,
            service_maintenance,
            history_writing,
            history_changes,
            history_lost,
            switchovers,
            sessions,
            websocket_connections,
            long_polls_held,
            messages_delivered,
            slow_consumers,
            service_changes,
            publishes,
            password_verifications,
            login_failures,
            login_lockouts,
            password_memory_bytes,
            http_client_errors,
            http_connections,
            connections_refused,
            http_requests,
            reloads,
        }
    }

    /// Sets the state gauges of one service: 1 for `state`, 0 for the others.
    pub fn set_state(&self, service: &str, state: ServiceState) {
        self.set_state_gauges(service, Some(state));
    }

    /// Marks a service whose state is not known yet: every state gauge at 0, so that no
    /// alert on `state="Inactive"` fires merely because the service was not probed yet.
    pub fn set_pending(&self, service: &str) {
        self.set_state_gauges(service, None);
    }

    fn set_state_gauges(&self, service: &str, current: Option<ServiceState>) {
        for s in ServiceState::ALL {
            let labels = StateLabels {
                service: service.to_string(),
                state: s.as_str().to_string(),
            };
            self.service_state
                .get_or_create(&labels)
                .set(i64::from(current == Some(s)));
        }
    }

    /// Forgets a removed service: its state gauges, its switchovers, and the probe counts
    /// and durations of its servers, given as (instance label, check name). A dashboard
    /// then stops showing a service that no longer exists in its last state.
    pub fn forget_service(&self, service: &str, servers: &[(String, &str)]) {
        for s in ServiceState::ALL {
            self.service_state.remove(&StateLabels {
                service: service.to_string(),
                state: s.as_str().to_string(),
            });
        }
        let labels = ServiceLabels {
            service: service.to_string(),
        };
        self.switchovers.remove(&labels);
        self.role_conflict.remove(&labels);
        self.role_fallback.remove(&labels);
        self.service_maintenance.remove(&labels);
        for (instance, check) in servers {
            for outcome in ["up", "degraded", "down"] {
                self.probes.remove(&ProbeLabels {
                    service: service.to_string(),
                    instance: instance.clone(),
                    check: check.to_string(),
                    outcome: outcome.to_string(),
                });
            }
            let labels = InstanceLabels {
                service: service.to_string(),
                instance: instance.clone(),
            };
            self.probe_duration.remove(&labels);
            self.watch_open.remove(&labels);
            self.instance_up.remove(&labels);
            self.instance_serving.remove(&labels);
            self.certificate_days_left.remove(&labels);
            for role in SaidRole::ALL {
                self.instance_role.remove(&RoleLabels {
                    service: service.to_string(),
                    instance: instance.clone(),
                    role: role.as_str().to_string(),
                });
            }
        }
    }

    /// Sets the gauges of what a service's serving instance is and rests on: which
    /// instance of the pair serves (`backup`: whether it has one) and, for a service with a
    /// role check (`source` given), whether the instances disagree or nobody says primary.
    pub fn set_serving(
        &self,
        service: &str,
        serving: Option<Role>,
        backup: bool,
        source: Option<Source>,
    ) {
        let roles: &[Role] = if backup {
            &[Role::Primary, Role::Backup]
        } else {
            &[Role::Primary]
        };
        for role in roles {
            self.instance_serving
                .get_or_create(&InstanceLabels {
                    service: service.to_string(),
                    instance: role.as_str().to_string(),
                })
                .set(i64::from(serving == Some(*role)));
        }
        if let Some(source) = source {
            let labels = ServiceLabels {
                service: service.to_string(),
            };
            self.role_conflict
                .get_or_create(&labels)
                .set(i64::from(source == Source::Conflict));
            self.role_fallback
                .get_or_create(&labels)
                .set(i64::from(source == Source::Fallback));
        }
    }

    /// Sets whether a service has a maintenance window.
    pub fn set_maintenance(&self, service: &str, in_maintenance: bool) {
        self.service_maintenance
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .set(i64::from(in_maintenance));
    }

    /// Sets the role gauges of one instance: 1 for `said`, 0 for the others.
    pub fn set_role(&self, service: &str, instance: &str, said: SaidRole) {
        for role in SaidRole::ALL {
            self.instance_role
                .get_or_create(&RoleLabels {
                    service: service.to_string(),
                    instance: instance.to_string(),
                    role: role.as_str().to_string(),
                })
                .set(i64::from(role == said));
        }
    }

    /// Counts a reload.
    pub fn count_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.reloads
            .get_or_create(&ReloadLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_was_counted() {
        let m = Metrics::new();
        m.set_state("sips1", ServiceState::Active);
        m.probes
            .get_or_create(&ProbeLabels {
                service: "sips1".into(),
                instance: "primary".into(),
                check: "tcp".into(),
                outcome: "up".into(),
            })
            .inc();
        m.count_reload(false);
        let text = m.encode();
        assert!(
            text.contains("servicewatch_build_info{version=\""),
            "{text}"
        );
        assert!(
            text.contains(r#"servicewatch_service_state{service="sips1",state="Active"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"servicewatch_service_state{service="sips1",state="Inactive"} 0"#));
        assert!(text.contains(r#"servicewatch_probes_total{service="sips1",instance="primary",check="tcp",outcome="up"} 1"#));
        assert!(text.contains(r#"servicewatch_config_reloads_total{result="refused"} 1"#));
        m.forget_service("sips1", &[("primary".into(), "tcp")]);
        let text = m.encode();
        assert!(!text.contains(r#"service="sips1""#), "{text}");
    }
}
