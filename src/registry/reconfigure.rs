//! A reload applied to the running services: unchanged ones keep their monitors and state,
//! changed ones get new monitors that resume from what was shown, removed ones end with a
//! last Inactive message to their subscribers, added ones start pending.

use std::collections::HashMap;
use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::reload::{Step, plan};
use super::tracked::{Tracked, servers_of};
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
        if self.runs_monitors() {
            for index in start {
                self.start_monitors(index, ctx);
            }
        }
        for index in announce {
            self.changed(index);
        }
        for id in plan.removed {
            if let Some(tracked) = old.remove(&id) {
                self.remove(tracked, now);
                summary.removed.push(id);
            }
        }
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
        let servers: Vec<(String, &str)> = servers_of(&tracked.spec)
            .map(|(part, instance)| (part.metric_label(), instance.check.kind.name()))
            .collect();
        self.metrics.forget_service(&tracked.spec.id, &servers);
    }
}
