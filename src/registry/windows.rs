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
use super::ledger::Store as Ledgered;
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
    /// Answers a maintenance request on a cluster node: first catches up with etcd (a
    /// write made a moment ago through another node must be seen before the request is
    /// judged: ending a window this node has not heard of yet is not a 404), then stores
    /// the edit.
    pub(super) fn edit_windows(
        &mut self,
        index: usize,
        edit: Edit,
        ctx: &mut Context<Self>,
    ) -> Answer {
        let Some(link) = self.ledger.link() else {
            // Alone, this node holds every write there is.
            return self.store_edit(index, edit, false, ctx);
        };
        let cluster = link.cluster.clone();
        let registry = ctx.address();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + WINDOWS_DEADLINE;
            let now = cluster.revision().await?;
            applied(&registry, now, deadline).await;
            let retry = true;
            registry
                .send(Store { index, edit, retry })
                .await
                .map_err(|_| MaintenanceError::Cluster(WindowsError::Unreachable))?
        })
    }

    /// Stores the service at `index`'s windows as `edit` makes them of those this node
    /// holds, then answers the window. Answered once this node shows the write (every later read on it sees it),
    /// or when the deadline passes, since etcd has it either way. `retry`: whether a
    /// refusal is tried again once this node has caught up with the write that caused it.
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
        if self.ledger.link().is_none() {
            self.commit_windows(index, windows, Some(edit.reason()), ctx);
            // Published before the request is answered: a script that reads the service
            // right after its `200` sees what it asked for.
            if self.scheduled.is_some() {
                self.publish_now(ctx);
            }
            return answer(Ok(window));
        }
        let deadline = tokio::time::Instant::now() + WINDOWS_DEADLINE;
        let stored = self.store_windows(&self.services[index].spec.id, windows);
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

    /// Takes `windows` as the maintenance of the service at `index` (stored at
    /// `revision`); the leader decides again with them. Returns what changed, in words.
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
        if let Some(link) = self.ledger.link_mut() {
            link.windows_at.insert(id.clone(), revision);
        }
        self.windows.set_service(&id, windows.clone());
        self.metrics.set_maintenance(&id, !windows.is_empty());
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
        reason
    }

    /// Commits `windows` as the maintenance of the service at `index`: alone, stored in the
    /// history database and applied at once (with `said` as the reason); on a cluster node,
    /// written to etcd if nobody changed them since this node last looked, and applied when
    /// the watch brings them.
    pub(super) fn commit_windows(
        &mut self,
        index: usize,
        windows: Vec<Window>,
        said: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let id = self.services[index].spec.id.clone();
        if let Ledgered::Etcd(link) = &self.ledger.store {
            let expected = link.windows_at.get(&id).copied().unwrap_or(0);
            link.cluster.write_windows(&id, windows, expected, None);
            return;
        }
        let before = &self.services[index].windows;
        for gone in before
            .iter()
            .filter(|w| !windows.iter().any(|n| n.instance == w.instance))
        {
            self.history.delete_window(&id, gone.instance.as_deref());
        }
        for new in windows.iter().filter(|w| !before.contains(w)) {
            self.history.put_window(new.clone());
        }
        let Some(revision) = self.ledger.next_local() else {
            return;
        };
        self.apply(&id, Stored::Windows(windows), revision, said, ctx);
        self.settle(revision, ctx);
    }

    /// Asks etcd to store `windows` as the maintenance of service `id`, unless another node
    /// changed it since this one last looked; resolves with the outcome.
    fn store_windows(
        &self,
        id: &str,
        windows: Vec<Window>,
    ) -> impl Future<Output = Result<i64, crate::cluster::WindowsError>> + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(link) = self.ledger.link() {
            let expected = link.windows_at.get(id).copied().unwrap_or(0);
            link.cluster.write_windows(id, windows, expected, Some(tx));
        }
        async move {
            match tokio::time::timeout(crate::cluster::WINDOWS_DEADLINE, rx).await {
                Ok(Ok(outcome)) => outcome,
                _ => Err(crate::cluster::WindowsError::Unreachable),
            }
        }
    }
}

/// What changed from `before` to `after` (one service's windows), in words; empty if
/// nothing did.
fn describe(before: &[Window], after: &[Window]) -> String {
    let subject = |w: &Window| match &w.instance {
        Some(instance) => format!("{}'s {instance}", w.service),
        None => format!("service {}", w.service),
    };
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
