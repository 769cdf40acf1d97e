//! The metrics of alerting: notifications delivered, failed and dropped per receiver, what
//! waits for each, the alerts firing, and which services flap.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

use super::services::ServiceLabels;

/// One receiver.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
}

/// One receiver and what became of a notification.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub receiver: String,
    /// `delivered`, `failed` (given up after its attempts), `dropped` (its queue was full).
    pub outcome: String,
}

/// What became of a notification.
pub const OUTCOMES: [&str; 3] = ["delivered", "failed", "dropped"];

/// The alerting metrics.
#[derive(Default)]
pub struct AlertMetrics {
    pub notifications: Family<OutcomeLabels, Counter>,
    /// Notifications waiting for a receiver (being delivered or retried).
    pub queue: Family<ReceiverLabels, Gauge>,
    /// 1 while a service flaps.
    pub flapping: Family<ServiceLabels, Gauge>,
    /// Alerts firing now.
    pub firing: Gauge,
}

impl AlertMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "alert_notifications",
            "Notifications per receiver by outcome: delivered, failed (given up after its attempts), dropped (its queue was full)",
            self.notifications.clone(),
        );
        registry.register(
            "alert_queue",
            "Notifications waiting for a receiver (being delivered or retried)",
            self.queue.clone(),
        );
        registry.register(
            "service_flapping",
            "1 while a service's state changes too often to be told one change at a time (Nagios flap detection)",
            self.flapping.clone(),
        );
        registry.register("alerts_firing", "Alerts firing now", self.firing.clone());
    }

    /// A receiver's series, at 0 from its start, so that `increase()` sees the first one.
    pub fn receiver(&self, receiver: &str) {
        for outcome in OUTCOMES {
            let _ = self.notifications.get_or_create(&OutcomeLabels {
                receiver: receiver.to_string(),
                outcome: outcome.to_string(),
            });
        }
        let _ = self.queue.get_or_create(&ReceiverLabels {
            receiver: receiver.to_string(),
        });
    }

    /// Counts one notification's outcome.
    pub fn outcome(&self, receiver: &str, outcome: &str) {
        self.notifications
            .get_or_create(&OutcomeLabels {
                receiver: receiver.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// How many notifications wait for `receiver`.
    pub fn set_queue(&self, receiver: &str, waiting: usize) {
        self.queue
            .get_or_create(&ReceiverLabels {
                receiver: receiver.to_string(),
            })
            .set(waiting as i64);
    }

    /// Whether `service` flaps.
    pub fn set_flapping(&self, service: &str, flapping: bool) {
        self.flapping
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .set(i64::from(flapping));
    }

    /// Forgets a receiver a reload removed.
    pub fn forget_receiver(&self, receiver: &str) {
        for outcome in OUTCOMES {
            self.notifications.remove(&OutcomeLabels {
                receiver: receiver.to_string(),
                outcome: outcome.to_string(),
            });
        }
        self.queue.remove(&ReceiverLabels {
            receiver: receiver.to_string(),
        });
    }

    /// Forgets a removed service.
    pub(super) fn forget(&self, service: &str) {
        self.flapping.remove(&ServiceLabels {
            service: service.to_string(),
        });
    }
}
