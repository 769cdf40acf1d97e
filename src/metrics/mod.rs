//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! One [`Metrics`] per daemon, shared by `Arc` with whoever counts. It holds one struct per
//! subsystem, each in a file of its own that declares its metrics once and registers them:
//! [`probes`](ProbeMetrics) (the monitors), [`services`](ServiceMetrics) (the registry),
//! [`notifications`](NotificationMetrics) (sessions and their transports),
//! [`http`](HttpMetrics), [`auth`](AuthMetrics), [`history`](HistoryMetrics),
//! [`reloads`](ReloadMetrics), [`cluster`](ClusterMetrics) and [`alerts`](AlertMetrics). Counting is an atomic add;
//! encoding happens only when scraped.

mod alerts;
mod auth;
mod cluster;
mod history;
mod http;
mod notifications;
mod probes;
mod reloads;
mod services;
#[cfg(test)]
mod tests;

pub use alerts::AlertMetrics;
pub use auth::AuthMetrics;
pub use cluster::ClusterMetrics;
pub use history::HistoryMetrics;
pub use http::{HttpLabels, HttpMetrics};
pub use notifications::NotificationMetrics;
pub use probes::{CertificateGauge, InstanceLabels, ProbeLabels, ProbeMetrics, RoleLabels};
pub use reloads::ReloadMetrics;
pub use services::ServiceMetrics;

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry as PrometheusRegistry;

/// Every metric of one daemon, by subsystem.
pub struct Metrics {
    registry: PrometheusRegistry,
    /// What the monitors saw of each probe and instance.
    pub probes: ProbeMetrics,
    /// What the registry decided of each service, and what it published.
    pub services: ServiceMetrics,
    /// The Bayeux sessions and their transports.
    pub notifications: NotificationMetrics,
    /// Answers and connections of the HTTP listeners.
    pub http: HttpMetrics,
    /// Logins and their password checks.
    pub auth: AuthMetrics,
    /// The history database.
    pub history: HistoryMetrics,
    /// Configuration reloads.
    pub reloads: ReloadMetrics,
    /// The node's place in a cluster.
    pub cluster: ClusterMetrics,
    /// Alerts and their deliveries.
    pub alerts: AlertMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `servicewatch_` prefix.
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: PrometheusRegistry::with_prefix("servicewatch"),
            probes: ProbeMetrics::default(),
            services: ServiceMetrics::default(),
            notifications: NotificationMetrics::default(),
            http: HttpMetrics::default(),
            auth: AuthMetrics::default(),
            history: HistoryMetrics::default(),
            reloads: ReloadMetrics::default(),
            cluster: ClusterMetrics::default(),
            alerts: AlertMetrics::default(),
        };
        m.registry.register(
            "build",
            "Version of the running servicewatch",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        m.probes.register(&mut m.registry);
        m.services.register(&mut m.registry);
        m.history.register(&mut m.registry);
        m.notifications.register(&mut m.registry);
        m.auth.register(&mut m.registry);
        m.http.register(&mut m.registry);
        m.reloads.register(&mut m.registry);
        m.cluster.register(&mut m.registry);
        m.alerts.register(&mut m.registry);
        m
    }

    /// Makes the counters of a configured service exist at 0: its probes, for each of its
    /// `servers` given as (instance label, check name), and its switchovers if it is a
    /// `pair`. Prometheus's `increase()` and `rate()` take a series' first sample as its
    /// start: a counter that appeared at 1 would hide the first switchover after a start.
    pub fn configure_service(&self, service: &str, servers: &[(String, &str)], pair: bool) {
        for (instance, check) in servers {
            self.probes.configure(service, instance, check);
        }
        self.services.configure_switchovers(service, pair);
    }

    /// A reload changed a service from `before` to `after` (servers as for
    /// [`Metrics::configure_service`]): what its servers no longer are is forgotten (a
    /// server gone, a check kind replaced), and the counters of what it is now exist.
    pub fn reconfigure_service(
        &self,
        service: &str,
        before: &[(String, &str)],
        after: &[(String, &str)],
        pair: bool,
    ) {
        for (instance, check) in before {
            match after.iter().find(|(now, _)| now == instance) {
                None => {
                    self.probes.forget(service, instance, check);
                    self.services.forget_instance(service, instance);
                }
                Some((_, now)) if now != check => {
                    self.probes.forget_check(service, instance, check)
                }
                Some(_) => {}
            }
        }
        self.configure_service(service, after, pair);
    }

    /// Forgets a removed service: its state gauges, its switchovers, and the probe counts
    /// and durations of its servers, given as (instance label, check name). A dashboard
    /// then stops showing a service that no longer exists in its last state.
    pub fn forget_service(&self, service: &str, servers: &[(String, &str)]) {
        let instances = servers.iter().map(|(instance, _)| instance.as_str());
        self.services.forget(service, instances);
        self.alerts.forget(service);
        for (instance, check) in servers {
            self.probes.forget(service, instance, check);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
