//! The `ServerMonitor` actor: one per backend server (each instance of a pair, each
//! Cassandra node).
//!
//! It owns its server's probe schedule and smoothed health. Each probe runs in a task of its
//! own, so a probe that panics counts as a failed probe instead of taking the monitor down,
//! and waits for a slot of the global probe limit first. Outcomes go through the rise/fall
//! rules of [`crate::domain::health`]; when the smoothed health changes (the first probe
//! included), the monitor reports it with [`HealthChanged`]. What the health of its servers
//! means for a service (which instance serves, which state) is decided where the service's
//! state is owned, from every server's report, by [`crate::domain::state::assess`].
//!
//! One actor per server means one server's life is one actor's: a monitor that dies is
//! restarted alone, resuming from its last reported health, and its pair partner never
//! notices.
//!
//! With `watch = true`, a healthy server also has a watch connection held open to it
//! ([`probe::watch`]). When the server closes it, the monitor probes at once, outside the
//! schedule: a failed probe then marks the server down without waiting for `fall` (the
//! process is gone: its kernel closed the connection and refuses new ones), a passing one
//! (a server that closes idle connections) leaves the health alone. The watch is reopened
//! once the server is healthy again; attempts that fail, or connections the server closes
//! within a check interval, back off exponentially with jitter, so a restarting server is
//! not stormed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span};

use crate::config::services::InstanceSpec;
use crate::domain::health::{Health, HealthTracker, ProbeOutcome};
use crate::domain::service::Part;
use crate::metrics::{InstanceLabels, Metrics, ProbeLabels};
use crate::probe::{self, ProbeReport};

/// A server's smoothed health changed, or was seen for the first time.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct HealthChanged {
    /// The id of the service the server belongs to.
    pub service: Arc<str>,
    pub part: Part,
    /// Which monitor of the server sent it; reports of a replaced monitor are ignored.
    pub generation: u64,
    pub health: Health,
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
}

/// The monitor actor.
pub struct ServerMonitor {
    id: ServerIdentity,
    tracker: HealthTracker,
    report_to: Recipient<HealthChanged>,
    probe_slots: Arc<Semaphore>,
    /// The server in logs: `primary sips1 (10.0.0.5:5060)`.
    label: String,
    counters: ProbeCounters,
    span: tracing::Span,
    watch: Watch,
}

/// A monitor's watch connection.
#[derive(Default)]
struct Watch {
    /// The task opening it, holding it open, or waiting to reopen it.
    task: Option<SpawnHandle>,
    /// Consecutive attempts that failed or ended within a check interval.
    failures: u32,
    /// The server closed the watch and the probe made at once passed: what the close said.
    /// A dying process's kernel closes its connections and its listener a moment apart, so
    /// that probe can still be answered; if reopening the watch is then refused, that is
    /// the death, probed again at once.
    recheck: Option<String>,
}

/// The longest wait before reopening a watch connection.
const MAX_WATCH_BACKOFF: Duration = Duration::from_secs(60);

/// Holds a gauge at 1 while alive.
struct OpenWhileHeld(Gauge);

impl OpenWhileHeld {
    fn new(gauge: Gauge) -> Self {
        gauge.set(1);
        OpenWhileHeld(gauge)
    }
}

impl Drop for OpenWhileHeld {
    fn drop(&mut self) {
        self.0.set(0);
    }
}

/// How a watch connection ended.
enum WatchEnd {
    /// It could not be opened.
    Refused(String),
    /// The server closed it after `lived`.
    Closed { said: String, lived: Duration },
}

/// The metrics of one server, looked up once instead of on each probe.
struct ProbeCounters {
    up: Counter,
    degraded: Counter,
    down: Counter,
    duration: Histogram,
    watch_open: Gauge,
}

impl ProbeCounters {
    fn new(metrics: &Metrics, id: &ServerIdentity) -> Self {
        let counter = |outcome: &str| {
            metrics
                .probes
                .get_or_create(&ProbeLabels {
                    service: id.service.to_string(),
                    instance: id.part.metric_label(),
                    check: id.spec.check.kind.name().to_string(),
                    outcome: outcome.to_string(),
                })
                .clone()
        };
        let instance = InstanceLabels {
            service: id.service.to_string(),
            instance: id.part.metric_label(),
        };
        ProbeCounters {
            up: counter("up"),
            degraded: counter("degraded"),
            down: counter("down"),
            duration: metrics.probe_duration.get_or_create(&instance).clone(),
            // Only the servers watched have the gauge.
            watch_open: if id.spec.check.watch {
                metrics.watch_open.get_or_create(&instance).clone()
            } else {
                Gauge::default()
            },
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
        report_to: Recipient<HealthChanged>,
        probe_slots: Arc<Semaphore>,
        metrics: &Metrics,
    ) -> Self {
        let check = &id.spec.check;
        let label = match &id.spec.name {
            Some(name) => format!("{} {name} ({})", id.part, id.spec.target),
            None => format!("{} {}", id.part, id.spec.target),
        };
        let span = info_span!("monitor", service = %id.service, server = %id.part);
        ServerMonitor {
            tracker: HealthTracker::resume(health, check.rise, check.fall),
            counters: ProbeCounters::new(metrics, &id),
            id,
            report_to,
            probe_slots,
            label,
            span,
            watch: Watch::default(),
        }
    }

    fn schedule_probe(&self, delay: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(delay, |act, ctx| act.probe(ctx));
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(self.probing().into_actor(self).map(|report, act, ctx| {
            act.observe(report, None, ctx);
            let schedule = act.id.spec.check.schedule;
            let delay = schedule.jittered(schedule.base_delay(&act.tracker), fastrand::f64());
            act.schedule_probe(delay, ctx);
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
                })
        }
    }

    /// Opens the watch connection if the check asks for one, the server is healthy and
    /// none is open or pending; after failures, later.
    fn keep_watch(&mut self, ctx: &mut Context<Self>) {
        let check = &self.id.spec.check;
        if !check.watch || self.watch.task.is_some() || !self.tracker.health().is_healthy() {
            return;
        }
        let interval = check.schedule.interval;
        let delay = match self.watch.failures {
            0 => Duration::ZERO,
            n => {
                let base = interval
                    .saturating_mul(1 << (n - 1).min(10))
                    .min(MAX_WATCH_BACKOFF);
                // At least a quarter of the jitter window either way: reopening servers
                // must not all come back in the same instant.
                base.mul_f64(1.0 + check.schedule.jitter.max(0.25) * (fastrand::f64() - 0.5) * 2.0)
            }
        };
        let spec = self.id.spec.clone();
        let gauge = self.counters.watch_open.clone();
        let watching = async move {
            tokio::time::sleep(delay).await;
            let check = &spec.check;
            match probe::watch::open(&spec.target, check.timeout, check.schedule.interval).await {
                Err(why) => WatchEnd::Refused(why),
                Ok(stream) => {
                    let opened = std::time::Instant::now();
                    // Back to 0 however this ends, the monitor stopping included.
                    let _open = OpenWhileHeld::new(gauge);
                    let said = probe::watch::closed(stream, &spec.target).await;
                    WatchEnd::Closed {
                        said,
                        lived: opened.elapsed(),
                    }
                }
            }
        };
        self.watch.task = Some(ctx.spawn(watching.into_actor(self).map(|end, act, ctx| {
            act.watch.task = None;
            let _entered = act.span.clone().entered();
            match end {
                WatchEnd::Refused(why) => match act.watch.recheck.take() {
                    Some(said) => {
                        debug!(instance = %act.label, "{said}, and reopening it failed: {why}; probing again at once");
                        // Once: if this probe passes too, reopening backs off as usual.
                        act.watch.failures += 1;
                        act.probe_at_once(format!("{said}, then {why}"), ctx);
                    }
                    None => {
                        act.watch.failures += 1;
                        debug!(instance = %act.label, failures = act.watch.failures, "watch connection not opened: {why}");
                        act.keep_watch(ctx);
                    }
                },
                WatchEnd::Closed { said, lived } => {
                    if lived < act.id.spec.check.schedule.interval {
                        act.watch.failures += 1;
                    } else {
                        act.watch.failures = 0;
                    }
                    debug!(instance = %act.label, ?lived, "{said}; probing at once");
                    act.watch.recheck = None;
                    act.probe_at_once(said, ctx);
                }
            }
        })));
    }

    /// Probes now, outside the schedule, because the watch connection closed (`said`).
    fn probe_at_once(&mut self, said: String, ctx: &mut Context<Self>) {
        ctx.spawn(
            self.probing()
                .into_actor(self)
                .map(move |report, act, ctx| {
                    if report.outcome != ProbeOutcome::Down && act.watch.failures == 0 {
                        act.watch.recheck = Some(said.clone());
                    }
                    act.observe(report, Some(&said), ctx);
                }),
        );
    }

    /// Feeds one probe report into the server's health; reports a change. `watch_closed`:
    /// what the server's watch connection saw, when this probe was made because it closed.
    fn observe(
        &mut self,
        report: ProbeReport,
        watch_closed: Option<&str>,
        ctx: &mut Context<Self>,
    ) {
        let _entered = self.span.clone().entered();
        self.counters.count(&report);
        let before = self.tracker.health();
        let changed = match (watch_closed, report.outcome) {
            (Some(_), ProbeOutcome::Down) => self.tracker.confirm_down(),
            _ => self.tracker.observe(report.outcome),
        };
        let label = &self.label;
        let check = self.id.spec.check.kind.name();
        let saw = match watch_closed {
            Some(watch) => format!("{} (probed at once: {watch})", report.detail),
            None => report.detail.clone(),
        };
        match changed {
            Some(after) if before != Health::Unknown => info!(
                instance = %label, check, from = %before, to = %after, saw = %saw,
                "instance health changed"
            ),
            Some(after) => {
                debug!(instance = %label, check, health = %after, saw = %saw, "first probe")
            }
            None => debug!(
                instance = %label, check, outcome = ?report.outcome, elapsed = ?report.elapsed,
                saw = %saw, "probe"
            ),
        }
        if let Some(health) = changed {
            self.report_to.do_send(HealthChanged {
                service: self.id.service.clone(),
                part: self.id.part,
                generation: self.id.generation,
                health,
                reason: format!("{label}: {check} check {saw}"),
            });
        }
        self.keep_watch(ctx);
    }
}

impl Actor for ServerMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
mod tests {
    use super::*;
    use crate::config::settings::validate;
    use std::time::Instant;

    /// Collects what a monitor reports.
    struct Collector(tokio::sync::mpsc::UnboundedSender<HealthChanged>);

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<HealthChanged> for Collector {
        type Result = ();

        fn handle(&mut self, msg: HealthChanged, _ctx: &mut Self::Context) {
            let _ = self.0.send(msg);
        }
    }

    fn instance(port: u16) -> InstanceSpec {
        let file = toml::from_str(&format!(
            "[[service]]\nid = \"v\"\ntype = \"Voice\"\nprimary = {{ host = \"127.0.0.1\", port = {port}, name = \"ts1\" }}\ncheck = {{ interval = \"50ms\", fast_interval = \"20ms\", down_interval = \"20ms\", timeout = \"500ms\", rise = 1, fall = 1 }}\n",
        ))
        .unwrap();
        let settings = validate(file, "test").unwrap();
        settings.services[0].pair.primary.clone()
    }

    type Reports = tokio::sync::mpsc::UnboundedReceiver<HealthChanged>;

    /// A monitor of the listener on `port` as `part` of service "v", resuming from `health`;
    /// its reports arrive on the receiver.
    fn watch(
        port: u16,
        part: Part,
        generation: u64,
        health: Health,
    ) -> (Addr<ServerMonitor>, Reports) {
        let (tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let id = ServerIdentity {
            service: "v".into(),
            part,
            spec: Arc::new(instance(port)),
            generation,
        };
        let monitor = ServerMonitor::new(
            id,
            health,
            Collector(tx).start().recipient(),
            Arc::new(Semaphore::new(4)),
            &Metrics::new(),
        )
        .start();
        (monitor, reports)
    }

    async fn next(reports: &mut Reports) -> HealthChanged {
        tokio::time::timeout(Duration::from_secs(5), reports.recv())
            .await
            .expect("a report within 5 s")
            .expect("the collector runs")
    }

    #[actix_rt::test]
    async fn reports_the_first_health_then_each_change_and_nothing_else() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let primary = Part::Pair(crate::domain::service::Role::Primary);
        let (monitor, mut reports) = watch(port, primary, 7, Health::Unknown);
        let first = next(&mut reports).await;
        assert_eq!((first.health, first.generation), (Health::Up, 7));
        assert_eq!(&*first.service, "v");
        assert!(
            first.reason.starts_with("primary ts1 (127.0.0.1:"),
            "{}",
            first.reason
        );
        drop(listener);
        let down = next(&mut reports).await;
        assert_eq!(down.health, Health::Down, "{}", down.reason);
        // Probes go on every 20 ms; a steady health is not reported again.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), reports.recv())
                .await
                .is_err()
        );
        monitor.do_send(StopMonitor);
        let deadline = Instant::now() + Duration::from_secs(5);
        while monitor.connected() {
            assert!(Instant::now() < deadline, "the monitor did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_rt::test]
    async fn a_resumed_monitor_reports_only_a_change_from_its_last_health() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_monitor, mut reports) = watch(port, Part::CassandraNode(2), 1, Health::Up);
        // Up already: the probes that find it up say nothing.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), reports.recv())
                .await
                .is_err()
        );
        drop(listener);
        let down = next(&mut reports).await;
        assert_eq!(
            (down.part, down.health),
            (Part::CassandraNode(2), Health::Down)
        );
    }
}
