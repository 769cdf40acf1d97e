//! Maintenance windows on a cluster node: stored in etcd (`{prefix}maintenance/{id}`, a
//! service's windows as one JSON value), written by whichever node an admin asked, and
//! applied by every node when the watch brings them: the leader decides with them, every
//! node renders them in the resource. The leader ends a window whose time is up.
//!
//! A write is compared with the revision of the service's key as this node last saw it, so
//! that two admins on two nodes cannot overwrite each other's windows unawares. A refusal
//! often only means that this node had not yet applied a write made a moment earlier
//! through another node (a script that sets maintenance on one node and clears it on
//! another): the node then applies what etcd has, and tries once more on the windows as
//! they are now; `409` is left for writes that really race.

use std::time::SystemTime;

use actix::prelude::*;
use tracing::info;

use super::Registry;
use super::maintenance::{Answer, MaintenanceError, answer};
use super::replica::WhenApplied;
use super::transition::log_transition;
use crate::cluster::{WINDOWS_DEADLINE, WindowsError};
use crate::domain::maintenance::Window;

/// A maintenance request, as a change to one service's list of windows.
#[derive(Clone)]
pub(super) enum Edit {
    /// Puts `0` in, replacing the window of the same instance (or of the whole service).
    Put(Window),
    /// Ends the window of `instance` (`None`: of the whole service); `what` names it.
    End {
        instance: Option<String>,
        what: String,
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
            Edit::End { instance, what } => {
                let at = windows
                    .iter()
                    .position(|w| w.instance == *instance)
                    .ok_or_else(|| MaintenanceError::NotInMaintenance(what.clone()))?;
                let ended = windows.remove(at);
                Ok((windows, ended))
            }
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
    pub(super) fn edit_windows(&self, index: usize, edit: Edit, ctx: &Context<Self>) -> Answer {
        let Some(link) = &self.link else {
            return answer(Err(WindowsError::Unreachable.into()));
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
    fn store_edit(&self, index: usize, edit: Edit, retry: bool, ctx: &Context<Self>) -> Answer {
        let (windows, window) = match edit.apply(&self.services[index].windows) {
            Ok(done) => done,
            Err(e) => return answer(Err(e)),
        };
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
    ) -> String {
        let id = self.services[index].spec.id.clone();
        let before = self.services[index].windows.clone();
        let reason = describe(&before, &windows);
        if let Some(link) = &mut self.link {
            link.windows_at.insert(id.clone(), revision);
        }
        self.windows.set_service(&id, windows.clone());
        self.metrics
            .services
            .set_maintenance(&id, !windows.is_empty());
        if !reason.is_empty() {
            info!(service = %id, revision, "{reason}");
        }
        let now = SystemTime::now();
        if self.link.as_ref().is_some_and(|l| l.leading) {
            let (transition, _) = self.services[index].maintain(windows, now);
            if let Some(transition) = transition {
                log_transition(&id, transition, &reason, &self.metrics);
                self.write(index, &reason, now);
            }
        } else {
            self.services[index].windows = windows;
        }
        reason
    }

    /// Asks etcd to store `windows` as the maintenance of service `id`, unless another node
    /// changed it since this one last looked; resolves with the outcome.
    fn store_windows(
        &self,
        id: &str,
        windows: Vec<Window>,
    ) -> impl Future<Output = Result<i64, crate::cluster::WindowsError>> + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(link) = &self.link {
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

    /// On the leader: ends the windows whose time is up, by storing each service's windows
    /// without them (every node applies that from the watch).
    pub(super) fn end_passed_windows_clustered(&self) {
        let Some(link) = self.link.as_ref().filter(|l| l.leading) else {
            return;
        };
        let now = SystemTime::now();
        for tracked in &self.services {
            if tracked.windows.iter().all(|w| w.holds(now)) {
                continue;
            }
            let left: Vec<Window> = tracked
                .windows
                .iter()
                .filter(|w| w.holds(now))
                .cloned()
                .collect();
            let id = &tracked.spec.id;
            let expected = link.windows_at.get(id).copied().unwrap_or(0);
            link.cluster.write_windows(id, left, expected, None);
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
