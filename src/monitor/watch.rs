//! A monitor's watch connection (`watch = true`): held open to a healthy server, probed
//! at once when the server closes it, reopened with backoff. See the module documentation
//! of [`super`].

use std::time::Duration;

use actix::prelude::*;
use prometheus_client::metrics::gauge::Gauge;
use tracing::debug;

use super::ServerMonitor;
use super::decision::wants_watch;
use crate::domain::health::ProbeOutcome;
use crate::probe;

/// A monitor's watch connection.
#[derive(Default)]
pub(crate) struct Watch {
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

impl ServerMonitor {
    /// Opens the watch connection if the check asks for one, the server is healthy and
    /// none is open or pending; after failures, later.
    pub(super) fn keep_watch(&mut self, ctx: &mut Context<Self>) {
        let check = &self.id.spec.check;
        if self.watch.task.is_some() || !wants_watch(check.watch, self.known.tracker.health()) {
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
        let record = self.id.record.clone();
        let watching = async move {
            tokio::time::sleep(delay).await;
            let check = &spec.check;
            match probe::watch::open(&spec.target, check.timeout, check.schedule.interval).await {
                Err(why) => WatchEnd::Refused(why),
                Ok(stream) => {
                    record.watch(true, "open".into());
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
            act.id.record.watch(
                false,
                match &end {
                    WatchEnd::Refused(why) => format!("not opened: {why}"),
                    WatchEnd::Closed { said, .. } => said.clone(),
                },
            );
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
                    act.observe(report, None, Some(&said), ctx);
                }),
        );
    }
}
