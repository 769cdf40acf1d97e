//! The metrics the monitors keep: each probe's outcome and duration, and what each instance
//! was last seen as (up, watched, the role it said, its certificate's days left). A monitor
//! takes its own handles to them once, at start, so a probe counts without a lookup; the
//! probe counters exist at 0 from the moment their service is configured, so that
//! Prometheus's `increase()` sees their first probe.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry as PrometheusRegistry;
use std::sync::atomic::AtomicU64;

use crate::domain::health::ProbeOutcome;
use crate::domain::roles::SaidRole;

/// Labels of one probe.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// The service's id.
    pub service: String,
    /// `primary`, `backup` or `cassandra-N`.
    pub instance: String,
    /// The check kind's name (`tcp`, `http`...).
    pub check: String,
    /// `up`, `degraded` or `down` ([`ProbeOutcome::as_str`]).
    pub outcome: String,
}

/// Labels of one instance of a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    /// The service's id.
    pub service: String,
    /// `primary`, `backup` or `cassandra-N`.
    pub instance: String,
}

/// What one instance said of its role.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    /// The service's id.
    pub service: String,
    /// `primary` or `backup`.
    pub instance: String,
    /// `primary`, `backup` or `unknown`.
    pub role: String,
}

/// The probe metrics.
pub struct ProbeMetrics {
    /// Probes run, by outcome.
    pub runs: Family<ProbeLabels, Counter>,
    /// Time one probe took, connection included.
    pub duration: Family<InstanceLabels, Histogram>,
    /// 1 while a server's watch connection is open (checks with `watch = true`).
    pub watch_open: Family<InstanceLabels, Gauge>,
    /// 1 while an instance is healthy (up or degraded), 0 while down.
    pub instance_up: Family<InstanceLabels, Gauge>,
    /// 1 for the role an instance last said it has (services with a role check).
    pub instance_role: Family<RoleLabels, Gauge>,
    /// Days until the certificate an `https` check was shown expires: only while the
    /// instance's last probe completed its TLS handshake ([`CertificateGauge`]).
    pub certificate_days_left: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    /// On a cluster: 1 while the live nodes disagree about whether a server is down.
    pub server_disagreement: Family<InstanceLabels, Gauge>,
}

/// The `certificate_days_left` series of one instance, which exists only while its last
/// probe completed a TLS handshake (the certificate verified, or accepted unverified with
/// `tls_skip_verify`). Before that no certificate was seen, and a 0 would page an alert on
/// `< 14` for every instance not reached yet; after a failed handshake (an unknown issuer,
/// another name, an expired certificate, no answer) the last value may be that of a
/// certificate the server no longer shows. No value is better than a wrong one: the
/// instance's `instance_up` tells the failure.
#[derive(Clone)]
pub struct CertificateGauge {
    family: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    labels: InstanceLabels,
}

impl CertificateGauge {
    /// Shows the days left of the certificate the last handshake was shown.
    pub fn set(&self, days: f64) {
        self.family.get_or_create(&self.labels).set(days);
    }

    /// Removes the series: the last probe saw no certificate it could trust.
    pub fn clear(&self) {
        self.family.remove(&self.labels);
    }
}

impl Default for ProbeMetrics {
    fn default() -> Self {
        ProbeMetrics {
            runs: Family::default(),
            // From half a millisecond (a half-open TCP check on a LAN) to about 8 seconds.
            duration: Family::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.0005, 2.0, 15))) as fn() -> Histogram,
            ),
            watch_open: Family::default(),
            instance_up: Family::default(),
            instance_role: Family::default(),
            certificate_days_left: Family::default(),
            server_disagreement: Family::default(),
        }
    }
}

impl ProbeMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register("probes", "Probes run, by outcome", self.runs.clone());
        registry.register(
            "probe_duration_seconds",
            "Time one probe took, connection included",
            self.duration.clone(),
        );
        registry.register(
            "watch_open",
            "1 while the watch connection to a server (watch = true) is open",
            self.watch_open.clone(),
        );
        registry.register(
            "instance_up",
            "1 while an instance is healthy (up or degraded), 0 while down",
            self.instance_up.clone(),
        );
        registry.register(
            "server_disagreement",
            "On a cluster: 1 while the live nodes disagree about whether a server is down (some see it down, some healthy)",
            self.server_disagreement.clone(),
        );
        registry.register(
            "instance_role",
            "1 for the role an instance last said it has (services with a role check), 0 for the others",
            self.instance_role.clone(),
        );
        registry.register(
            "certificate_days_left",
            "Days until the certificate shown to an https check expires; only while the instance's last probe completed its TLS handshake (verified, or tls_skip_verify): no series before, nor after a failed verification (unknown issuer, wrong name, expired, no answer)",
            self.certificate_days_left.clone(),
        );
    }

    /// The certificate gauge of one instance, for its monitor to set and clear.
    pub fn certificate(&self, service: &str, instance: &str) -> CertificateGauge {
        CertificateGauge {
            family: self.certificate_days_left.clone(),
            labels: InstanceLabels {
                service: service.to_string(),
                instance: instance.to_string(),
            },
        }
    }

    /// Makes the probe counters of one configured server exist at 0, one per outcome.
    pub(super) fn configure(&self, service: &str, instance: &str, check: &str) {
        for outcome in ProbeOutcome::ALL {
            let _ = self
                .runs
                .get_or_create(&probe_labels(service, instance, check, outcome));
        }
    }

    /// Forgets what one server's former check kind `check` counted and showed: its probe
    /// counters and its certificate's days left (a reload changed the check).
    pub(super) fn forget_check(&self, service: &str, instance: &str, check: &str) {
        for outcome in ProbeOutcome::ALL {
            self.runs
                .remove(&probe_labels(service, instance, check, outcome));
        }
        self.certificate_days_left.remove(&InstanceLabels {
            service: service.to_string(),
            instance: instance.to_string(),
        });
    }

    /// Forgets one server of a removed service, by its instance label and check name.
    pub(super) fn forget(&self, service: &str, instance: &str, check: &str) {
        self.forget_check(service, instance, check);
        let labels = InstanceLabels {
            service: service.to_string(),
            instance: instance.to_string(),
        };
        self.duration.remove(&labels);
        self.watch_open.remove(&labels);
        self.instance_up.remove(&labels);
        for role in SaidRole::ALL {
            self.instance_role.remove(&RoleLabels {
                service: service.to_string(),
                instance: instance.to_string(),
                role: role.as_str().to_string(),
            });
        }
    }
}

fn probe_labels(service: &str, instance: &str, check: &str, outcome: ProbeOutcome) -> ProbeLabels {
    ProbeLabels {
        service: service.to_string(),
        instance: instance.to_string(),
        check: check.to_string(),
        outcome: outcome.as_str().to_string(),
    }
}
