//! Maintenance windows, committed through the ledger like every decision: alone, stored in
//! the history database and applied at once; on a cluster node, stored in etcd
//! (`{prefix}maintenance/{id}`, a service's windows as one JSON value), written by whichever
//! node an admin asked, and applied by every node when the watch brings them. The node that
//! runs the monitors decides with them, every node renders them in the resource, and the
//! node that runs the monitors ends a window whose time is up.
//!
//! On a cluster node a write is compared with the revision of the service's key as this node
//! last saw it, so that two admins on two nodes cannot overwrite each other's windows
//! unawares. Before judging a request the node catches up with etcd, and a refusal is
//! tried once more after catching up with the write that caused it (a script that sets
//! maintenance on one node and clears it on another): `409` is left for writes that
//! really race.

use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::Registry;
use super::apply::WhenApplied;
use super::ledger::{Committed, Pending};
use super::maintenance::{Answer, MaintenanceError, answer};
use super::transition::log_transition;
use crate::cluster::{Stored, WINDOWS_DEADLINE, WindowsError};
use crate::domain::maintenance::Window;

/// A maintenance request, as a change to one service's list of windows.
#[derive(Clone)]
pub(super) enum Edit {
    /// Puts `0` in, replacing the window of the same instance (or of the whole service).
    Put(Window),
    /// Ends the window of `instance` (`None`: of the whole service); `what` names it, `by`
    /// who ends it.
    End {
        instance: Option<String>,
        what: String,
        by: String,
    },
}

impl Edit {
    /// The list `windows` after the edit, and the window the request is answered with.
    fn apply(&self, windows: &[Window]) -> Result<(Vec<Window>, Window), MaintenanceError> {
        let mut windows = windows.to_vec();
        match self {
            Edit::Put(window) => {
                windows.retain(|w| w.instance != window.instance);
                windows.push(window.clone());
                Ok((windows, window.clone()))
            }
            Edit::End { instance, what, .. } => {
                let at = windows
                    .iter()
                    .position(|w| w.instance == *instance)
                    .ok_or_else(|| MaintenanceError::NotInMaintenance(what.clone()))?;
                let ended = windows.remove(at);
                Ok((windows, ended))
            }
        }
    }

    /// The edit, in the words of the history.
    fn reason(&self) -> String {
        match self {
            Edit::Put(w) => format!(
                "{} put into maintenance by {}: {}",
                super::maintenance::what(&w.service, w.instance.as_deref()),
                w.by,
                w.reason
            ),
            Edit::End { what, by, .. } => format!("{what} taken out of maintenance by {by}"),
        }
    }
}

/// Stores an edit, judged against the windows this node holds now; `retry` as in
/// [`Registry::store_edit`].
#[derive(Message)]
#[rtype(result = "Result<Window, MaintenanceError>")]
struct Store {
    index: usize,
    edit: Edit,
    retry: bool,
}

impl Handler<Store> for Registry {
    type Result = Answer;

    fn handle(&mut self, msg: Store, ctx: &mut Self::Context) -> Answer {
        self.store_edit(msg.index, msg.edit, msg.retry, ctx)
    }
}

/// Waits, until `deadline` at most, for `registry` to have applied `revision`.
async fn applied(registry: &Addr<Registry>, revision: i64, deadline: tokio::time::Instant) {
    if let Ok(applied) = registry.send(WhenApplied(revision)).await {
        let _ = tokio::time::timeout_at(deadline, applied).await;
    }
}

impl Registry {
    /// Answers a maintenance request: first catches up with the ledger (on a cluster node,
    /// a write made a moment ago through another node must be seen before the request is
    /// judged: ending a window this node has not heard of yet is not a 404), then stores
    /// the edit.
    pub(super) fn edit_windows(
        &mut self,
        index: usize,
        edit: Edit,
        ctx: &mut Context<Self>,
    ) -> Answer {
        let Some(current) = self.ledger.current_revision() else {
            return self.store_edit(index, edit, false, ctx);
        };
        let registry = ctx.address();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + WINDOWS_DEADLINE;
            applied(&registry, current.await?, deadline).await;
            let retry = true;
            registry
                .send(Store { index, edit, retry })
                .await
                .map_err(|_| MaintenanceError::Cluster(WindowsError::Unreachable))?
        })
    }

    /// Stores the service at `index`'s windows as `edit` makes them of those this node
    /// holds, then answers the window, once this node shows the write (every later read on
    /// it sees it), or when the deadline passes, since the ledger has it either way.
    /// `retry`: whether a refusal is tried again once this node has caught up with the
    /// write that caused it.
    fn store_edit(
        &mut self,
        index: usize,
        edit: Edit,
        retry: bool,
        ctx: &mut Context<Self>,
    ) -> Answer {
        let (windows, window) = match edit.apply(&self.services[index].windows) {
            Ok(done) => done,
            Err(e) => return answer(Err(e)),
        };
        let deadline = tokio::time::Instant::now() + WINDOWS_DEADLINE;
        let Some(stored) = self.commit_windows(index, windows, Some(edit.reason()), true, ctx)
        else {
            // Applied already: published before the request is answered, so that a script
            // that reads the service right after its `200` sees what it asked for.
            if self.scheduled.is_some() {
                self.publish_now(ctx);
            }
            return answer(Ok(window));
        };
        let registry = ctx.address();
        Box::pin(async move {
            match stored.await {
                Ok(revision) => {
                    applied(&registry, revision, deadline).await;
                    Ok(window)
                }
                Err(WindowsError::Changed { revision }) if retry => {
                    applied(&registry, revision, deadline).await;
                    let retry = false;
                    registry
                        .send(Store { index, edit, retry })
                        .await
                        .map_err(|_| MaintenanceError::Cluster(WindowsError::Unreachable))?
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Takes `windows` as the maintenance of the service at `index` (committed at
    /// `revision`); the node that decides decides again with them. Returns what changed,
    /// in words (`said`, when the committing node knows better).
    pub(super) fn take_windows(
        &mut self,
        index: usize,
        windows: Vec<Window>,
        revision: i64,
        said: Option<String>,
        ctx: &mut Context<Self>,
    ) -> String {
        let id = self.services[index].spec.id.clone();
        let before = self.services[index].windows.clone();
        let reason = said.unwrap_or_else(|| describe(&before, &windows));
        self.ledger.saw_windows(&id, revision);
        self.metrics
            .services
            .set_maintenance(&id, !windows.is_empty());
        if !reason.is_empty() {
            info!(service = %id, revision, "{reason}");
        }
        let now = SystemTime::now();
        if self.runs_monitors() {
            let (transition, _) = self.services[index].maintain(windows, now);
            if let Some(transition) = transition {
                log_transition(&id, transition, &reason, &self.metrics);
                self.commit(index, &reason, now, ctx);
            }
        } else {
            self.services[index].windows = windows;
        }
        self.show_redundancy(index);
        reason
    }

    /// Commits `windows` as the maintenance of the service at `index`, applied at once
    /// when the ledger can (alone: with `said` as the reason), otherwise when it brings
    /// them back; with `wait`, returns what tells when the ledger has stored them.
    pub(super) fn commit_windows(
        &mut self,
        index: usize,
        windows: Vec<Window>,
        said: Option<String>,
        wait: bool,
        ctx: &mut Context<Self>,
    ) -> Option<Pending> {
        let id = self.services[index].spec.id.clone();
        let before = &self.services[index].windows;
        match self.ledger.commit_windows(&id, &windows, before, wait) {
            Committed::Later(stored) => stored,
            Committed::Now(revision) => {
                self.apply(&id, Stored::Windows(windows), revision, said, ctx);
                self.settle(revision, ctx);
                None
            }
        }
    }
}

/// What changed from `before` to `after` (one service's windows), in words; empty if
/// nothing did.
fn describe(before: &[Window], after: &[Window]) -> String {
    let subject = |w: &Window| super::maintenance::what(&w.service, w.instance.as_deref());
    let mut said: Vec<String> = after
        .iter()
        .filter(|w| !before.contains(w))
        .map(|w| {
            format!(
                "{} put into maintenance by {}: {}",
                subject(w),
                w.by,
                w.reason
            )
        })
        .collect();
    said.extend(
        before
            .iter()
            .filter(|w| !after.iter().any(|a| a.instance == w.instance))
            .map(|w| format!("{} taken out of maintenance", subject(w))),
    );
    said.join("; ")
}
