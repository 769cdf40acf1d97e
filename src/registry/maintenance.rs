//! Maintenance windows and the history, as the registry keeps them: an admin puts an
//! instance or a whole service into maintenance or takes it out (through the API), a
//! window that reaches its end is over by itself, and every change of a service is
//! recorded with its reason.

use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::Registry;
use super::windows::Edit;
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
            state: assessment.state,
            state_since: since,
            serving: assessment.serving,
            maintenance: in_words(&t.windows),
            reason: reason.to_string(),
        });
    }

    /// Ends the windows whose time is up, on the node that runs the monitors (every node
    /// applies the end from the ledger).
    pub(super) fn end_passed_windows(&mut self, ctx: &mut Context<Self>) {
        if !self.runs_monitors() {
            return;
        }
        let now = SystemTime::now();
        self.forget_passed_windows_of_removed_services(now);
        for index in 0..self.services.len() {
            let windows = &self.services[index].windows;
            if windows.iter().all(|w| w.holds(now)) {
                continue;
            }
            let (left, ended): (Vec<Window>, Vec<Window>) =
                windows.iter().cloned().partition(|w| w.holds(now));
            let said: Vec<String> = ended
                .iter()
                .map(|w| {
                    let what = what(&w.service, w.instance.as_deref());
                    info!(service = %w.service, reason = %w.reason, "maintenance of {what} ended as planned");
                    format!("maintenance of {what} ended as planned")
                })
                .collect();
            self.commit_windows(index, left, Some(said.join("; ")), false, ctx);
        }
    }

    /// The windows kept for services no longer configured are forgotten when they end
    /// (alone, they are kept in the database).
    fn forget_passed_windows_of_removed_services(&mut self, now: SystemTime) {
        let passed: Vec<Window> = self
            .unconfigured_windows
            .all()
            .iter()
            .filter(|w| !w.holds(now))
            .cloned()
            .collect();
        for window in passed {
            self.unconfigured_windows
                .remove(&window.service, window.instance.as_deref());
            self.history
                .delete_window(&window.service, window.instance.as_deref());
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
            let known: Vec<String> = self.services[index]
                .spec
                .servers()
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
pub(super) fn what(service: &str, instance: Option<&str>) -> String {
    match instance {
        Some(instance) => format!("{service}'s {instance}"),
        None => format!("service {service}"),
    }
}

/// The answer of a maintenance request: once the node shows it (at once on a node alone;
/// on a cluster node once etcd has stored it and the watch brought it back).
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
        let what = what(&window.service, window.instance.as_deref());
        info!(service = %window.service, by = %window.by, reason = %window.reason, until = ?window.until, "{what} put into maintenance");
        self.edit_windows(index, Edit::Put(window), ctx)
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
        info!(service = %msg.service, by = %msg.by, "{what} taken out of maintenance");
        let edit = Edit::End {
            instance: msg.instance,
            what,
            by: msg.by,
        };
        self.edit_windows(index, edit, ctx)
    }
}
