//! The `ServerMonitor` actor: one per backend server (each instance of a pair, each
//! Cassandra node).
//!
//! It owns its server's probe schedule and smoothed health. Each probe runs in the monitor's
//! own future behind `catch_unwind`, so a probe that panics counts as a failed probe instead
//! of taking the monitor down, and waits for a slot of the global probe limit first. What a
//! probe means is decided by a pure function, `decision::decide` (the rise/fall rules of
//! [`crate::domain::health`], the log's wording, whether to report, what happens to the
//! schedule and the watch); this actor performs the decision. When the smoothed health
//! changes (the first probe included), the monitor reports it with [`ServerChanged`]. What
//! the health of its servers means for a service (which instance serves, which state) is
//! decided where the service's state is owned, from every server's report, by
//! [`crate::domain::state::assess`].
//!
//! One actor per server means one server's life is one actor's: a monitor that dies is
//! restarted alone, resuming from its last reported health, and its pair partner never
//! notices.
//!
//! With `watch = true`, a healthy server also has a watch connection held open to it
//! ([`probe::watch`]). When the server closes it, the monitor probes at once, outside the
//! schedule: a failed probe then marks the server down without waiting for `fall` (the
//! process is gone: its kernel closed the connection and refuses new ones) and replaces the
//! probe planned at the healthy `interval` by one on the down schedule, so a server
//! restarted at once is seen back within `down_interval`; a passing one (a server that
//! closes idle connections) leaves the health alone. The watch is reopened once the server
//! is healthy again; attempts that fail, or connections the server closes within a check
//! interval, back off exponentially with jitter, so a restarting server is not stormed
//! (`watch.rs`).
//!
//! When the pair has a role check, the monitor asks its server its role after each passing
//! probe ([`probe::role`]) and reports a change of answer like a change of health. Every
//! probe, role answer and watch event is also written to the server's [`InstanceRecord`],
//! which the instance detail reads; that is a short lock, not a message to the registry.

mod decision;
mod watch;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use futures_util::FutureExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span, warn};

use crate::config::services::InstanceSpec;
use crate::domain::health::{Health, HealthTracker, ProbeOutcome};
use crate::domain::roles::SaidRole;
use crate::domain::service::Part;
use crate::instances::{InstanceRecord, LastCheck};
use crate::metrics::{CertificateGauge, InstanceLabels, Metrics, ProbeLabels, RoleLabels};
use crate::probe::https::days_left;
use crate::probe::sip::Transport;
use crate::probe::{self, CheckKind, ProbeReport};
use decision::{Decision, HealthNews, Known, RoleNews, Seen, Server};
use watch::Watch;

/// A server's smoothed health or the role it says it has changed, or was seen for the
/// first time.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ServerChanged {
    /// The id of the service the server belongs to.
    pub service: Arc<str>,
    pub part: Part,
    /// Which monitor of the server sent it; reports of a replaced monitor are ignored.
    pub generation: u64,
    pub health: Health,
    /// What it last said of its role; `Unknown` without a role check.
    pub said: SaidRole,
    /// What the probe saw, naming the server: the reason of a resulting change of service.
    pub reason: String,
}

/// Stops a monitor (its service was removed or changed by a reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMonitor;

/// Who the monitor watches and for whom.
pub struct ServerIdentity {
    pub service: Arc<str>,
    pub part: Part,
    /// Shared with each probe, so that starting one copies nothing.
    pub spec: Arc<InstanceSpec>,
    /// Numbers this monitor among those the server has had.
    pub generation: u64,
    /// Where it records what it sees, for the instance detail.
    pub record: Arc<InstanceRecord>,
}

/// The monitor actor.
pub struct ServerMonitor {
    id: ServerIdentity,
    known: Known,
    report_to: Recipient<ServerChanged>,
    probe_slots: Arc<Semaphore>,
    /// The server in logs: `primary sips1 (10.0.0.5:5060)`.
    label: String,
    counters: ProbeCounters,
    span: tracing::Span,
    watch: Watch,
    /// The next probe the schedule plans, while it waits (`None` while a probe runs: its
    /// end plans the next).
    planned: Option<SpawnHandle>,
}

/// The metrics of one server, looked up once instead of on each probe.
struct ProbeCounters {
    up: Counter,
    degraded: Counter,
    down: Counter,
    duration: Histogram,
    watch_open: Gauge,
    instance_up: Gauge,
    /// For an `https` check: days until the certificate shown expires.
    certificate_days: Option<CertificateGauge>,
    /// One gauge per answer, for a server with a role check.
    roles: Vec<(SaidRole, Gauge)>,
}

impl ProbeCounters {
    fn new(metrics: &Metrics, id: &ServerIdentity) -> Self {
        let counter = |outcome: ProbeOutcome| {
            metrics
                .probes
                .runs
                .get_or_create(&ProbeLabels {
                    service: id.service.to_string(),
                    instance: id.part.metric_label(),
                    check: id.spec.check.kind.name().to_string(),
                    outcome: outcome.as_str().to_string(),
                })
                .clone()
        };
        let instance = InstanceLabels {
            service: id.service.to_string(),
            instance: id.part.metric_label(),
        };
        ProbeCounters {
            up: counter(ProbeOutcome::Up),
            degraded: counter(ProbeOutcome::Degraded),
            down: counter(ProbeOutcome::Down),
            duration: metrics.probes.duration.get_or_create(&instance).clone(),
            // Only the servers watched have the gauge.
            watch_open: if id.spec.check.watch {
                metrics.probes.watch_open.get_or_create(&instance).clone()
            } else {
                Gauge::default()
            },
            instance_up: metrics.probes.instance_up.get_or_create(&instance).clone(),
            certificate_days: matches!(id.spec.check.kind, CheckKind::Https(_)).then(|| {
                metrics
                    .probes
                    .certificate(&id.service, &id.part.metric_label())
            }),
            roles: match id.spec.role {
                Some(_) => SaidRole::ALL
                    .into_iter()
                    .map(|role| {
                        let labels = RoleLabels {
                            service: id.service.to_string(),
                            instance: id.part.metric_label(),
                            role: role.as_str().to_string(),
                        };
                        (
                            role,
                            metrics.probes.instance_role.get_or_create(&labels).clone(),
                        )
                    })
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    /// Sets the role gauges: 1 for `said`, 0 for the others.
    fn set_role(&self, said: SaidRole) {
        for (role, gauge) in &self.roles {
            gauge.set(i64::from(*role == said));
        }
    }

    fn count(&self, report: &ProbeReport) {
        match report.outcome {
            ProbeOutcome::Up => &self.up,
            ProbeOutcome::Degraded => &self.degraded,
            ProbeOutcome::Down => &self.down,
        }
        .inc();
        self.duration.observe(report.elapsed.as_secs_f64());
    }
}

impl ServerMonitor {
    /// A monitor for one server whose last reported health is `health` (`Unknown` for a
    /// server never probed).
    pub fn new(
        id: ServerIdentity,
        health: Health,
        report_to: Recipient<ServerChanged>,
        probe_slots: Arc<Semaphore>,
        metrics: &Metrics,
    ) -> Self {
        let check = &id.spec.check;
        let label = match &id.spec.name {
            Some(name) => format!("{} {name} ({})", id.part, id.spec.target),
            None => format!("{} {}", id.part, id.spec.target),
        };
        let span = info_span!("monitor", service = %id.service, server = %id.part);
        let counters = ProbeCounters::new(metrics, &id);
        if health != Health::Unknown {
            counters.instance_up.set(i64::from(health.is_healthy()));
            id.record.health(health, None);
        }
        ServerMonitor {
            known: Known {
                tracker: HealthTracker::resume(health, check.rise, check.fall),
                said: SaidRole::Unknown,
                reported: false,
            },
            counters,
            id,
            report_to,
            probe_slots,
            label,
            span,
            watch: Watch::default(),
            planned: None,
        }
    }

    fn schedule_probe(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        self.planned = Some(ctx.run_later(delay, |act, ctx| {
            act.planned = None;
            act.probe(ctx)
        }));
    }

    /// The wait before the next probe of a server in its present condition: `interval`,
    /// `fast_interval` or `down_interval` ([`crate::domain::health::Schedule`]), jittered.
    fn next_delay(&self) -> Duration {
        let schedule = self.id.spec.check.schedule;
        schedule.jittered(schedule.base_delay(&self.known.tracker), fastrand::f64())
    }

    /// Replaces the planned probe by one on the schedule the server's condition now calls
    /// for: its watch has just shown it dead, and the probe planned while it was healthy
    /// may be up to `interval` away. A probe under way plans its successor itself, on the
    /// new schedule already.
    fn replan(&mut self, ctx: &mut Context<Self>) {
        if let Some(planned) = self.planned.take() {
            ctx.cancel_future(planned);
            self.schedule_probe(self.next_delay(), ctx);
        }
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        let probing = self.probing();
        let spec = self.id.spec.clone();
        let asking = async move {
            let report = probing.await;
            // A server that fails its probe is not asked: what it said last stands until
            // its health says whether it still matters.
            let said = match &spec.role {
                Some(check) if report.outcome != ProbeOutcome::Down => Some(
                    AssertUnwindSafe(Box::pin(probe::role::ask(check, &spec.target)))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| {
                            (SaidRole::Unknown, "the role check panicked".to_string())
                        }),
                ),
                _ => None,
            };
            (report, said)
        };
        ctx.spawn(asking.into_actor(self).map(|(report, said), act, ctx| {
            act.observe(report, said, None, ctx);
            act.schedule_probe(act.next_delay(), ctx);
        }));
    }

    /// One probe of the server, once a slot of the global limit is free.
    fn probing(&self) -> impl Future<Output = ProbeReport> + 'static {
        let spec = self.id.spec.clone();
        let slots = self.probe_slots.clone();
        async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = slots.acquire_owned().await;
            let check = &spec.check;
            // A probe that panics fails this probe alone, and the monitor goes on. Caught
            // in place rather than in a task of its own: a task per probe costs an
            // allocation and a copy of the future, thousands of times a second.
            AssertUnwindSafe(probe::run(&check.kind, &spec.target, check.timeout))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| ProbeReport {
                    outcome: ProbeOutcome::Down,
                    detail: "the probe panicked".to_string(),
                    elapsed: Duration::ZERO,
                    certificate_not_after: None,
                })
        }
    }

    /// Feeds one probe report into what the monitor knows ([`decision::decide`]) and
    /// performs the decision. `watch_closed`: what the server's watch connection saw, when
    /// this probe was made because it closed.
    fn observe(
        &mut self,
        report: ProbeReport,
        said: Option<(SaidRole, String)>,
        watch_closed: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        self.counters.count(&report);
        let now = SystemTime::now();
        let check = &self.id.spec.check;
        let server = Server {
            label: &self.label,
            check: check.kind.name(),
            watched: check.watch,
        };
        let seen = Seen {
            outcome: report.outcome,
            detail: report.detail,
            said,
            watch_closed,
        };
        let decision = decision::decide(&mut self.known, &server, seen);
        self.log(&decision, report.outcome, report.elapsed);
        if let Some(health) = decision.health.reached() {
            self.counters
                .instance_up
                .set(i64::from(health.is_healthy()));
            self.id.record.health(health, Some(now));
        }
        if let Some(not_after) = report.certificate_not_after {
            self.id.record.certificate(Some(not_after));
        }
        if let Some(gauge) = &self.counters.certificate_days {
            match report.certificate_not_after {
                Some(not_after) => gauge.set(days_left(not_after, now)),
                None => gauge.clear(),
            }
        }
        if decision.role.changed() {
            self.counters.set_role(self.known.said);
        }
        if let Some(reason) = decision.report {
            self.report_to.do_send(ServerChanged {
                service: self.id.service.clone(),
                part: self.id.part,
                generation: self.id.generation,
                health: self.known.tracker.health(),
                said: self.known.said,
                reason,
            });
        }
        self.id.record.probed(LastCheck {
            at: now,
            outcome: report.outcome,
            elapsed: report.elapsed,
            detail: decision.saw,
        });
        if let Some((role, why)) = decision.said {
            self.id.record.said(role, why, now);
        }
        if decision.replan {
            self.replan(ctx);
        }
        if decision.watch {
            self.keep_watch(ctx);
        }
    }

    /// Writes the log lines of a decision, in its words, in the monitor's span. The span is
    /// named as each line's parent rather than entered around the probe's handling: entering
    /// it costs a clone, an enter, an exit and a close of the span on every probe, and most
    /// probes write no line at the usual level.
    fn log(&self, decision: &Decision, outcome: ProbeOutcome, elapsed: Duration) {
        let span = &self.span;
        let instance = &self.label;
        let check = self.id.spec.check.kind.name();
        let saw = &decision.saw;
        match decision.health {
            HealthNews::Changed { from, to } => info!(
                parent: span, %instance, check, %from, %to, %saw, "instance health changed"
            ),
            HealthNews::First(health) => {
                debug!(parent: span, %instance, check, %health, %saw, "first probe")
            }
            HealthNews::Steady => {
                debug!(parent: span, %instance, check, ?outcome, ?elapsed, %saw, "probe")
            }
        }
        let Some((role, why)) = &decision.said else {
            return;
        };
        match decision.role {
            RoleNews::Unusable { was } => {
                warn!(parent: span, %instance, %was, %why, "role check: no usable answer")
            }
            RoleNews::Changed { was } => {
                info!(parent: span, %instance, %role, %was, "role check: the instance {why}")
            }
            RoleNews::Same | RoleNews::NotAsked => {
                debug!(parent: span, %instance, %role, "role check: the instance {why}")
            }
        }
    }
}

impl Actor for ServerMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let skips_verify = match &self.id.spec.check.kind {
            CheckKind::Https(check) => check.tls.skip_verify,
            CheckKind::Sip(check) => {
                matches!(&check.transport, Transport::Tls(tls) if tls.skip_verify)
            }
            _ => false,
        };
        if skips_verify {
            warn!(parent: &self.span, instance = %self.label, "tls_skip_verify = true: the certificate of this instance is not verified, so anyone on the path can pass for it");
        }
        // Spread the first probes over the jitter window so that thousands of servers
        // configured alike do not all connect in the same millisecond.
        let schedule = self.id.spec.check.schedule;
        let delay = schedule.interval.mul_f64(schedule.jitter * fastrand::f64());
        self.schedule_probe(delay, ctx);
    }
}

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

#[cfg(test)]
mod tests;
