//! A reload applied to the running services: unchanged ones keep their monitors and state,
//! changed ones get new monitors that resume from what was shown, removed ones end with a
//! last Inactive message to their subscribers, added ones start pending.

use std::collections::HashMap;
use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::reload::{Step, plan};
use super::tracked::{Tracked, metric_servers};
use super::{ApplyServices, Registry, ReloadSummary, stop_monitors};
use crate::config::services::ServiceSpec;
use crate::domain::state::Assessment;

impl Handler<ApplyServices> for Registry {
    type Result = ReloadSummary;

    fn handle(&mut self, msg: ApplyServices, ctx: &mut Self::Context) -> ReloadSummary {
        let plan = plan(self.services.iter().map(|t| &*t.spec), &msg.0);
        let mut summary = ReloadSummary::default();
        let mut old: HashMap<String, Tracked> = self
            .services
            .drain(..)
            .map(|t| (t.spec.id.clone(), t))
            .collect();
        let now = SystemTime::now();
        let mut announce = Vec::new();
        let mut start = Vec::new();
        for (spec, step) in msg.0.into_iter().zip(plan.steps) {
            let previous = old.remove(&spec.id);
            let index = self.services.len();
            let tracked = match (step, previous) {
                (Step::Unchanged, Some(tracked)) => {
                    summary.unchanged += 1;
                    tracked
                }
                (Step::Changed, Some(previous)) => {
                    summary.changed.push(spec.id.clone());
                    self.configure_metrics(&spec, Some(&previous.spec));
                    start.push(index);
                    let (tracked, shown_anew) = changed(spec, previous);
                    if shown_anew {
                        announce.push(index);
                    }
                    tracked
                }
                _ => {
                    summary.added.push(spec.id.clone());
                    self.metrics.services.set_pending(&spec.id);
                    self.configure_metrics(&spec, None);
                    start.push(index);
                    let windows = self.unconfigured_windows.of(&spec.id, now);
                    self.unconfigured_windows.set_service(&spec.id, Vec::new());
                    Tracked::pending(spec, now, None, windows)
                }
            };
            self.services.push(tracked);
        }
        self.index();
        let specs: Vec<ServiceSpec> = self.services.iter().map(|t| (*t.spec).clone()).collect();
        self.ledger.services_changed(&specs);
        if self.ledger.probes() {
            for index in start {
                self.start_monitors(index, ctx);
            }
        }
        for index in announce {
            self.changed(index);
        }
        (0..self.services.len()).for_each(|index| self.show_redundancy(index));
        for id in plan.removed {
            if let Some(tracked) = old.remove(&id) {
                self.remove(tracked, now);
                summary.removed.push(id);
            }
        }
        self.views_reloaded(&summary.removed);
        // A reload publishes at once, with what it changed, and takes any change waiting.
        self.publish_now(ctx);
        summary.added.sort();
        summary.changed.sort();
        summary.removed.sort();
        info!(added = ?summary.added, changed = ?summary.changed, removed = ?summary.removed, unchanged = summary.unchanged, "services reloaded");
        self.wake_ready_waiters(ctx);
        summary
    }
}

/// A service whose spec changed: new monitors (started by the caller), resuming from what
/// was shown, rendered with the new spec. Returns it, and whether what it shows changed.
fn changed(spec: ServiceSpec, previous: Tracked) -> (Tracked, bool) {
    stop_monitors(&previous);
    let mut tracked = Tracked::resuming(spec, &previous);
    let shown_before = previous.shown().map(|p| p.json.clone());
    if let Some(replica) = previous.replica {
        tracked.show(replica.record, replica.revision);
    }
    let shown_anew = tracked.is_known() && tracked.shown().map(|p| p.json.clone()) != shown_before;
    (tracked, shown_anew)
}

impl Registry {
    /// Makes the metrics of a service the reload added (no `previous` configuration) or
    /// changed follow what it is now: its counters exist at 0, and what it no longer has
    /// (a server, a check kind, its backup) is forgotten.
    fn configure_metrics(&self, spec: &ServiceSpec, previous: Option<&ServiceSpec>) {
        let servers = metric_servers(spec);
        let pair = spec.pair.backup.is_some();
        match previous {
            Some(before) => {
                let before = metric_servers(before);
                self.metrics
                    .reconfigure_service(&spec.id, &before, &servers, pair)
            }
            None => self.metrics.configure_service(&spec.id, &servers, pair),
        }
    }

    /// A service the reload removed: its monitors stop, its subscribers hear of it one last
    /// time, as Inactive (unless they never heard of it), and its metrics go.
    fn remove(&mut self, mut tracked: Tracked, now: SystemTime) {
        stop_monitors(&tracked);
        // Kept (alone, in the database too) for the service to find if it comes back.
        self.unconfigured_windows
            .set_service(&tracked.spec.id, tracked.windows.clone());
        if tracked.is_known() {
            tracked.set(Assessment::INITIAL, now);
            self.metrics.services.changes.inc();
            self.publisher.wait(
                tracked.published.notification.clone(),
                tracked.spec.feature.clone(),
            );
        }
        self.metrics
            .forget_service(&tracked.spec.id, &metric_servers(&tracked.spec));
    }
}
