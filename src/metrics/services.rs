//! The metrics the registry keeps: each service's state, which instance serves and why, its
//! maintenance, its redundancy, the switchovers, and how often what it publishes changes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as PrometheusRegistry;

use super::probes::InstanceLabels;
use crate::domain::roles::Source;
use crate::domain::service::{Role, ServiceState};
use crate::domain::switchover::Cause;

/// One service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The service's id.
    pub service: String,
}

/// One service in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The service's id.
    pub service: String,
    /// The GWS state's name (`Active`...).
    pub state: String,
}

/// One service's switchovers of one cause.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwitchoverLabels {
    /// The service's id.
    pub service: String,
    /// `failure` or `maintenance` ([`Cause::as_str`]).
    pub cause: String,
}

/// The service metrics.
#[derive(Default)]
pub struct ServiceMetrics {
    /// 1 for the state each service is in, 0 for the others.
    pub state: Family<StateLabels, Gauge>,
    /// 1 while a service has a maintenance window (of its own or of an instance).
    pub maintenance: Family<ServiceLabels, Gauge>,
    /// 1 for the instance that serves its service.
    pub instance_serving: Family<InstanceLabels, Gauge>,
    /// 1 while both instances of a pair say they are primary.
    pub role_conflict: Family<ServiceLabels, Gauge>,
    /// 1 while a service with a role check infers its serving instance, no healthy instance
    /// saying it is primary.
    pub role_fallback: Family<ServiceLabels, Gauge>,
    /// Times the serving instance moved from one instance of a pair to the other, by cause.
    pub switchovers: Family<SwitchoverLabels, Counter>,
    /// 1 while a service could lose one more server and still serve.
    pub redundant: Family<ServiceLabels, Gauge>,
    /// Changes of a service's published resource (state, serving instance, or its
    /// configuration through a reload), each announced to subscribers.
    pub changes: Counter,
    /// Snapshots published: each carries every change since the one before.
    pub publishes: Counter,
}

impl ServiceMetrics {
    pub(super) fn register(&self, registry: &mut PrometheusRegistry) {
        registry.register(
            "instance_serving",
            "1 for the instance of a pair that serves its service, 0 for the other",
            self.instance_serving.clone(),
        );
        registry.register(
            "role_conflict",
            "1 while both instances of a pair say they are primary",
            self.role_conflict.clone(),
        );
        registry.register(
            "role_fallback",
            "1 while a service with a role check infers its serving instance from health, no healthy instance saying it is primary",
            self.role_fallback.clone(),
        );
        registry.register(
            "service_state",
            "1 for the state each service is in, 0 for the others",
            self.state.clone(),
        );
        registry.register(
            "service_maintenance",
            "1 while a service, or one of its instances, is in a maintenance window",
            self.maintenance.clone(),
        );
        registry.register(
            "switchovers",
            "Times the serving instance moved from one instance of a pair to the other, by cause: maintenance (a window started on the instance that served, or ended on the one that took over) or failure (any other move); 0 from the moment a pair is configured",
            self.switchovers.clone(),
        );
        registry.register(
            "service_redundant",
            "1 while a service could lose one more server and still serve (both instances of its pair healthy and out of maintenance, its Cassandra nodes beyond the quorum), 0 once it could not; no series for a service with a single instance, nor before every server's health is known",
            self.redundant.clone(),
        );
        registry.register(
            "service_changes",
            "Changes of a service's published resource, each announced to subscribers",
            self.changes.clone(),
        );
        registry.register(
            "publishes",
            "Snapshots published; a burst of changes shares one (compare with service_changes)",
            self.publishes.clone(),
        );
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
            self.state
                .get_or_create(&labels)
                .set(i64::from(current == Some(s)));
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

    /// Counts a switchover of `service`, for `cause`.
    pub fn count_switchover(&self, service: &str, cause: Cause) {
        self.switchovers
            .get_or_create(&switchover_labels(service, cause))
            .inc();
    }

    /// Makes the switchover counters of a service exist at 0 for every cause if it is a
    /// pair (Prometheus's `increase()` sees a counter's first increment only from a 0
    /// before it), or removes them if it is not (a reload took its backup away).
    pub(super) fn configure_switchovers(&self, service: &str, pair: bool) {
        for cause in Cause::ALL {
            let labels = switchover_labels(service, cause);
            if pair {
                let _ = self.switchovers.get_or_create(&labels);
            } else {
                self.switchovers.remove(&labels);
            }
        }
    }

    /// Sets whether a service could lose one more server and still serve.
    pub fn set_redundant(&self, service: &str, redundant: bool) {
        self.redundant
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .set(i64::from(redundant));
    }

    /// Removes the redundancy gauge of a service that has no spare to lose.
    pub fn forget_redundant(&self, service: &str) {
        self.redundant.remove(&ServiceLabels {
            service: service.to_string(),
        });
    }

    /// Sets whether a service has a maintenance window.
    pub fn set_maintenance(&self, service: &str, in_maintenance: bool) {
        self.maintenance
            .get_or_create(&ServiceLabels {
                service: service.to_string(),
            })
            .set(i64::from(in_maintenance));
    }

    /// Forgets a removed service's own gauges and counters, and whether each of its
    /// `instances` served.
    pub(super) fn forget<'a>(&self, service: &str, instances: impl Iterator<Item = &'a str>) {
        for s in ServiceState::ALL {
            self.state.remove(&StateLabels {
                service: service.to_string(),
                state: s.as_str().to_string(),
            });
        }
        self.configure_switchovers(service, false);
        let labels = ServiceLabels {
            service: service.to_string(),
        };
        self.redundant.remove(&labels);
        self.role_conflict.remove(&labels);
        self.role_fallback.remove(&labels);
        self.maintenance.remove(&labels);
        for instance in instances {
            self.forget_instance(service, instance);
        }
    }

    /// Forgets whether an instance a service no longer has served.
    pub(super) fn forget_instance(&self, service: &str, instance: &str) {
        self.instance_serving.remove(&InstanceLabels {
            service: service.to_string(),
            instance: instance.to_string(),
        });
    }
}

fn switchover_labels(service: &str, cause: Cause) -> SwitchoverLabels {
    SwitchoverLabels {
        service: service.to_string(),
        cause: cause.as_str().to_string(),
    }
}
