//! The `ServerMonitor` actor: one per configured service.
//!
//! It owns the probe schedule and the health of each instance of its service (the pair, and
//! for Provisioning the Cassandra nodes too). Each probe runs in a task of its own, so a
//! probe that panics counts as a failed probe instead of taking the monitor down, and waits
//! for a slot of the global probe limit first. Outcomes go through the pure rules of
//! [`crate::domain`]; when the resulting resource differs from the last one reported, the
//! monitor tells the registry.
//!
//! Reports wait until every instance has been probed once, so that a start-up does not
//! publish a passing state (say, ReadOnly because Cassandra answered before Configuration
//! Server) that only reflects which probe finished first.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span, warn};

use crate::config::settings::{InstanceSpec, ServiceSpec};
use crate::domain::health::{Health, HealthTracker, ProbeOutcome};
use crate::domain::pairing::choose_serving;
use crate::domain::service::Role;
use crate::domain::state::{provisioning_state, server_state};
use crate::metrics::{InstanceLabels, Metrics, ProbeLabels, ServiceLabels};
use crate::probe::{self, ProbeReport};
use crate::registry::{MonitorReady, Registry, ServiceStatusChanged};
use crate::resource::ServiceStatus;

/// Which part of the service an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Pair(Role),
    CassandraNode(usize),
}

/// One probed instance and its smoothed health.
struct Instance {
    part: Part,
    spec: InstanceSpec,
    tracker: HealthTracker,
    /// What the last probe saw, for the reason of a state change.
    last_detail: String,
}

impl Instance {
    /// The instance as a metric label: `primary`, `backup`, `cassandra-N`.
    fn metric_label(&self) -> String {
        match self.part {
            Part::Pair(role) => role.as_str().to_string(),
            Part::CassandraNode(i) => format!("cassandra-{i}"),
        }
    }

    fn label(&self) -> String {
        let part = match self.part {
            Part::Pair(role) => role.as_str().to_string(),
            Part::CassandraNode(i) => format!("cassandra node {i}"),
        };
        match &self.spec.name {
            Some(name) => format!("{part} {name} ({})", self.spec.target),
            None => format!("{part} {}", self.spec.target),
        }
    }
}

/// The monitor actor.
pub struct ServerMonitor {
    spec: Arc<ServiceSpec>,
    /// Tells the registry which monitor of the service a report comes from.
    generation: u64,
    instances: Vec<Instance>,
    /// The resource last reported to the registry; its `serving` is the serving instance.
    reported: ServiceStatus,
    since: SystemTime,
    /// Whether every instance has been probed once since this monitor started.
    first_round_done: bool,
    registry: Addr<Registry>,
    probe_slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    span: tracing::Span,
}

impl ServerMonitor {
    /// A monitor for `spec`, whose last published status is `reported` (since `since`).
    pub fn new(
        spec: Arc<ServiceSpec>,
        generation: u64,
        reported: ServiceStatus,
        since: SystemTime,
        registry: Addr<Registry>,
        probe_slots: Arc<Semaphore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut instances = Vec::new();
        let mut add = |part: Part, spec: &InstanceSpec| {
            instances.push(Instance {
                part,
                tracker: HealthTracker::new(spec.check.rise, spec.check.fall),
                spec: spec.clone(),
                last_detail: String::new(),
            })
        };
        add(Part::Pair(Role::Primary), &spec.pair.primary);
        if let Some(backup) = &spec.pair.backup {
            add(Part::Pair(Role::Backup), backup);
        }
        for (i, node) in spec
            .cassandra
            .iter()
            .flat_map(|c| c.nodes.iter())
            .enumerate()
        {
            add(Part::CassandraNode(i), node);
        }
        let span = info_span!("monitor", service = %spec.id);
        ServerMonitor {
            spec,
            generation,
            instances,
            reported,
            since,
            first_round_done: false,
            registry,
            probe_slots,
            metrics,
            span,
        }
    }

    fn schedule_probe(&self, index: usize, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, move |act, ctx| act.probe(index, ctx));
    }

    fn probe(&mut self, index: usize, ctx: &mut Context<Self>) {
        let check = self.instances[index].spec.check.clone();
        let target = self.instances[index].spec.target.clone();
        let slots = self.probe_slots.clone();
        let probing = async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = slots.acquire_owned().await;
            let task =
                actix_rt::spawn(
                    async move { probe::run(&check.kind, &target, check.timeout).await },
                );
            task.await.unwrap_or_else(|_| ProbeReport {
                outcome: ProbeOutcome::Down,
                detail: "the probe panicked".to_string(),
                elapsed: Duration::ZERO,
            })
        };
        ctx.spawn(probing.into_actor(self).map(move |report, act, ctx| {
            act.observe(index, report);
            let instance = &act.instances[index];
            let schedule = instance.spec.check.schedule;
            let delay = schedule.jittered(schedule.base_delay(&instance.tracker), fastrand::f64());
            act.schedule_probe(index, delay, ctx);
        }));
    }

    /// Feeds one probe report into the instance's health and re-evaluates the service.
    fn observe(&mut self, index: usize, report: ProbeReport) {
        let _entered = self.span.clone().entered();
        let instance = &mut self.instances[index];
        let outcome = match report.outcome {
            ProbeOutcome::Up => "up",
            ProbeOutcome::Degraded => "degraded",
            ProbeOutcome::Down => "down",
        };
        let service = self.spec.id.clone();
        let metric_instance = instance.metric_label();
        self.metrics
            .probes
            .get_or_create(&ProbeLabels {
                service: service.clone(),
                instance: metric_instance.clone(),
                check: instance.spec.check.kind.name().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.metrics
            .probe_duration
            .get_or_create(&InstanceLabels {
                service,
                instance: metric_instance,
            })
            .observe(report.elapsed.as_secs_f64());
        let before = instance.tracker.health();
        let changed = instance.tracker.observe(report.outcome);
        instance.last_detail = report.detail;
        let label = instance.label();
        let check = instance.spec.check.kind.name();
        match changed {
            Some(after) if before != Health::Unknown => info!(
                instance = %label, check, from = %before, to = %after,
                saw = %instance.last_detail, "instance health changed"
            ),
            Some(after) => {
                debug!(instance = %label, check, health = %after, saw = %instance.last_detail, "first probe")
            }
            None => debug!(
                instance = %label, check, outcome = ?report.outcome, elapsed = ?report.elapsed,
                saw = %instance.last_detail, "probe"
            ),
        }
        if changed.is_some() {
            let reason = format!("{label}: {check} check {}", instance.last_detail);
            self.reevaluate(&reason);
        }
    }

    fn health_of(&self, part: Part) -> Option<Health> {
        self.instances
            .iter()
            .find(|i| i.part == part)
            .map(|i| i.tracker.health())
    }

    /// Recomputes the serving instance and state; reports when the resource changed.
    fn reevaluate(&mut self, reason: &str) {
        if self
            .instances
            .iter()
            .any(|i| i.tracker.health() == Health::Unknown)
        {
            return;
        }
        let primary = self
            .health_of(Part::Pair(Role::Primary))
            .unwrap_or(Health::Down);
        let backup = self.health_of(Part::Pair(Role::Backup));
        let serving = choose_serving(
            self.reported.serving,
            primary,
            backup,
            self.spec.pair.failback,
        );
        let state = match &self.spec.cassandra {
            None => server_state(serving),
            Some(cassandra) => {
                let up = self
                    .instances
                    .iter()
                    .filter(|i| {
                        matches!(i.part, Part::CassandraNode(_)) && i.tracker.health().is_healthy()
                    })
                    .count();
                provisioning_state(serving, up, cassandra.quorum)
            }
        };
        let status = ServiceStatus { state, serving };
        let before = self.reported;
        let first_round = !self.first_round_done;
        self.first_round_done = true;
        if first_round {
            info!(state = %state, serving = serving_label(serving), "first probe round done");
        }
        if status != before {
            self.report(status, before, reason);
        }
        if first_round {
            // After the report, so the registry is ready only once it publishes what the
            // first round found.
            self.registry.do_send(MonitorReady {
                id: self.spec.id.clone(),
                generation: self.generation,
            });
        }
    }

    /// Logs a change of the resource and tells the registry.
    fn report(&mut self, status: ServiceStatus, before: ServiceStatus, reason: &str) {
        let (state, serving) = (status.state, status.serving);
        let (from_serving, to_serving) = (serving_label(before.serving), serving_label(serving));
        if state != before.state {
            self.since = SystemTime::now();
            info!(from = %before.state, to = %state, serving = to_serving, reason, "service state changed");
        } else if before.serving.is_some() && serving.is_some() {
            warn!(state = %state, from = from_serving, to = to_serving, reason, "switchover");
            self.metrics
                .switchovers
                .get_or_create(&ServiceLabels {
                    service: self.spec.id.clone(),
                })
                .inc();
        } else {
            info!(state = %state, from = from_serving, to = to_serving, reason, "serving instance changed");
        }
        self.reported = status;
        self.registry.do_send(ServiceStatusChanged {
            id: self.spec.id.clone(),
            generation: self.generation,
            status,
            since: self.since,
        });
    }
}

/// Stops a monitor (its service was removed or changed by a reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMonitor;

impl Handler<StopMonitor> for ServerMonitor {
    type Result = ();

    fn handle(&mut self, _msg: StopMonitor, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Makes a monitor panic, to test supervision.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Crash;

#[cfg(test)]
impl Handler<Crash> for ServerMonitor {
    type Result = ();

    fn handle(&mut self, _msg: Crash, _ctx: &mut Self::Context) {
        panic!("a monitor crashing on purpose");
    }
}

/// The serving instance as logs show it.
fn serving_label(serving: Option<Role>) -> &'static str {
    serving.map_or("none", Role::as_str)
}

impl Actor for ServerMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for index in 0..self.instances.len() {
            // Spread the first probes over the jitter window so that thousands of services
            // configured alike do not all connect in the same millisecond.
            let schedule = self.instances[index].spec.check.schedule;
            let delay = schedule.interval.mul_f64(schedule.jitter * fastrand::f64());
            self.schedule_probe(index, delay, ctx);
        }
    }
}
