//! Maintenance windows and the history, as the registry keeps them: an admin puts an
//! instance or a whole service into maintenance or takes it out (through the API), a
//! window that reaches its end is over by itself, and every change of a service is
//! recorded with its reason.

use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::Registry;
use super::shared_windows::Edit;
use super::tracked::servers_of;
use super::transition::log_transition;
use crate::cluster::WindowsError;
use crate::domain::maintenance::Window;
use crate::domain::state::Assessment;
use crate::history::{Change, Opened};

/// Puts an instance (or, without one, a whole service) into maintenance, replacing the
/// window it had; answers the window as set.
#[derive(Message)]
#[rtype(result = "Result<Window, MaintenanceError>")]
pub struct PutMaintenance(pub Window);

/// Takes an instance (or the whole service) out of maintenance; answers the window that
/// ended.
#[derive(Message)]
#[rtype(result = "Result<Window, MaintenanceError>")]
pub struct EndMaintenance {
    pub service: String,
    pub instance: Option<String>,
    /// Who ends it, for the history.
    pub by: String,
}

/// Why a maintenance request cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaintenanceError {
    #[error("no service with id \"{0}\"")]
    NoService(String),
    #[error("service \"{service}\" has no instance \"{instance}\" (it has: {})", known.join(", "))]
    NoInstance {
        service: String,
        instance: String,
        known: Vec<String>,
    },
    #[error("{0} is not in maintenance")]
    NotInMaintenance(String),
    /// On a cluster node: etcd did not store the windows.
    #[error("{0}")]
    Cluster(#[from] WindowsError),
}

impl Registry {
    /// Records the current resource of the service at `index` in the history: it changed
    /// `at`, for `reason`.
    pub(super) fn record(&self, index: usize, reason: &str, at: SystemTime) {
        let t = &self.services[index];
        self.record_as(index, &t.assessment, t.since, reason, at);
    }

    /// Records the service at `index` as `assessment` since `since`, changed at `at`.
    pub(super) fn record_as(
        &self,
        index: usize,
        assessment: &Assessment,
        since: SystemTime,
        reason: &str,
        at: SystemTime,
    ) {
        let t = &self.services[index];
        self.history.record(Change {
            service: t.spec.id.clone(),
            at,
            state: assessment.state.as_str().to_string(),
            state_since: since,
            serving: assessment.serving.map(|r| r.as_str().to_string()),
            maintenance: in_words(&t.windows),
            reason: reason.to_string(),
        });
    }

    /// Gives the service at `index` the windows holding now; announces and records what
    /// that changes.
    fn apply_windows(&mut self, index: usize, reason: &str, ctx: &mut Context<Self>) {
        let now = SystemTime::now();
        let id = self.services[index].spec.id.clone();
        let windows = self.windows.of(&id, now);
        self.metrics
            .services
            .set_maintenance(&id, !windows.is_empty());
        let tracked = &mut self.services[index];
        let (transition, changed) = tracked.maintain(windows, now);
        if let Some(transition) = transition {
            log_transition(&id, transition, reason, &self.metrics);
        }
        // A service not assessed yet shows its windows with its first state.
        if (transition.is_some() || changed) && self.services[index].known {
            self.record(index, reason, now);
            self.changed(index);
            // Published before the request is answered: a script that reads the service
            // right after its `200` sees what it asked for.
            self.publish_now(ctx);
        }
    }

    /// Ends the windows whose time is up.
    pub(super) fn end_passed_windows(&mut self, ctx: &mut Context<Self>) {
        if self.link.is_some() {
            self.end_passed_windows_clustered();
            return;
        }
        let now = SystemTime::now();
        if self
            .windows
            .next_end(SystemTime::UNIX_EPOCH)
            .is_none_or(|end| end > now)
        {
            return;
        }
        let passed: Vec<Window> = self
            .windows
            .all()
            .iter()
            .filter(|w| !w.holds(now))
            .cloned()
            .collect();
        for window in passed {
            self.windows
                .remove(&window.service, window.instance.as_deref());
            self.history
                .delete_window(&window.service, window.instance.as_deref());
            let what = what(&window.service, window.instance.as_deref());
            info!(service = %window.service, reason = %window.reason, "maintenance of {what} ended as planned");
            if let Some(&index) = self.positions.get(window.service.as_str()) {
                self.apply_windows(
                    index,
                    &format!("maintenance of {what} ended as planned"),
                    ctx,
                );
            }
        }
    }

    /// The position of service `id` and, if `instance` is given, a check that the service
    /// has it.
    fn find(&self, id: &str, instance: Option<&str>) -> Result<usize, MaintenanceError> {
        let &index = self
            .positions
            .get(id)
            .ok_or_else(|| MaintenanceError::NoService(id.to_string()))?;
        if let Some(instance) = instance {
            let known: Vec<String> = servers_of(&self.services[index].spec)
                .map(|(part, _)| part.metric_label())
                .collect();
            if !known.iter().any(|k| k == instance) {
                return Err(MaintenanceError::NoInstance {
                    service: id.to_string(),
                    instance: instance.to_string(),
                    known,
                });
            }
        }
        Ok(index)
    }
}

/// The maintenance in force, as the history says it; `None` when there is none.
fn in_words(windows: &[Window]) -> Option<String> {
    (!windows.is_empty()).then(|| {
        windows
            .iter()
            .map(|w| match &w.instance {
                Some(instance) => format!("{instance}: {} ({})", w.reason, w.by),
                None => format!("service: {} ({})", w.reason, w.by),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Ends the windows of `past` whose end came while the daemon was stopped, as the daemon
/// would have had it run: each is removed from the database, and its service's history
/// gets a change at the window's end (the state last recorded, the maintenance that was
/// left), oldest end first. Otherwise the history's newest entry would say the service is
/// still in maintenance, which the resource no longer does.
pub(super) fn end_windows_passed_while_stopped(past: &mut Opened, now: SystemTime) {
    let mut passed: Vec<Window> = past
        .windows
        .all()
        .iter()
        .filter(|w| !w.holds(now))
        .cloned()
        .collect();
    passed.sort_by_key(|w| w.until);
    for window in passed {
        past.windows
            .remove(&window.service, window.instance.as_deref());
        past.history
            .delete_window(&window.service, window.instance.as_deref());
        let (Some(until), Some(latest)) = (
            window.until,
            past.latest.iter_mut().find(|c| c.service == window.service),
        ) else {
            continue;
        };
        let what = what(&window.service, window.instance.as_deref());
        info!(service = %window.service, reason = %window.reason, until = %humantime::format_rfc3339_millis(until), "maintenance of {what} ended as planned while servicewatch was stopped");
        let left = past.windows.of(&window.service, until);
        let change = Change {
            at: until.max(latest.at),
            maintenance: in_words(&left),
            reason: format!(
                "maintenance of {what} ended as planned (while servicewatch was stopped)"
            ),
            ..latest.clone()
        };
        past.history.record(change.clone());
        *latest = change;
    }
}

/// The subject of a window, in words.
fn what(service: &str, instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{service}'s {instance}"),
        None => format!("service {service}"),
    }
}

/// The answer of a maintenance request: at once on a node alone, once etcd has stored it on
/// a cluster node (every node, this one included, then applies it from the watch).
pub(super) type Answer = ResponseFuture<Result<Window, MaintenanceError>>;

pub(super) fn answer(result: Result<Window, MaintenanceError>) -> Answer {
    Box::pin(std::future::ready(result))
}

impl Handler<PutMaintenance> for Registry {
    type Result = Answer;

    fn handle(&mut self, msg: PutMaintenance, ctx: &mut Self::Context) -> Self::Result {
        let window = msg.0;
        let index = match self.find(&window.service, window.instance.as_deref()) {
            Ok(index) => index,
            Err(e) => return answer(Err(e)),
        };
        if self.link.is_some() {
            return self.edit_windows(index, Edit::Put(window), ctx);
        }
        let what = what(&window.service, window.instance.as_deref());
        info!(service = %window.service, by = %window.by, reason = %window.reason, until = ?window.until, "{what} put into maintenance");
        self.windows.put(window.clone());
        self.history.put_window(window.clone());
        let reason = format!(
            "{what} put into maintenance by {}: {}",
            window.by, window.reason
        );
        self.apply_windows(index, &reason, ctx);
        answer(Ok(window))
    }
}

impl Handler<EndMaintenance> for Registry {
    type Result = Answer;

    fn handle(&mut self, msg: EndMaintenance, ctx: &mut Self::Context) -> Self::Result {
        let index = match self.find(&msg.service, msg.instance.as_deref()) {
            Ok(index) => index,
            Err(e) => return answer(Err(e)),
        };
        let what = what(&msg.service, msg.instance.as_deref());
        if self.link.is_some() {
            let edit = Edit::End {
                instance: msg.instance,
                what,
            };
            return self.edit_windows(index, edit, ctx);
        }
        let Some(ended) = self.windows.remove(&msg.service, msg.instance.as_deref()) else {
            return answer(Err(MaintenanceError::NotInMaintenance(what)));
        };
        info!(service = %msg.service, by = %msg.by, "{what} taken out of maintenance");
        self.history
            .delete_window(&msg.service, msg.instance.as_deref());
        self.apply_windows(
            index,
            &format!("{what} taken out of maintenance by {}", msg.by),
            ctx,
        );
        answer(Ok(ended))
    }
}
