//! The ledger: the one path from a decision to what the node publishes.
//!
//! Every decision (a service's state and serving instance, its servers' health, its
//! maintenance windows) is *committed* to the ledger, and the node publishes only what was
//! committed, each change tagged with the revision the ledger gave it. A node alone is a
//! cluster of one: its ledger is local and commits at once, with the next revision; a
//! cluster node's ledger is etcd, where the leader's decisions become fenced writes that the
//! watch brings back to every node, the leader included. Either way the same code applies a
//! committed change ([`super::apply`]), keeps the log that a resuming client is served from
//! ([`ChangeLog`]), and answers those waiting for a revision to be applied.
//!
//! What differs between the two lives here, in [`Store`]: who runs the monitors (alone:
//! always; in a cluster: the elected leader), whether the node has read what it serves
//! (alone: always; in a cluster: once etcd has been read), and where a commit goes.
//!
//! A local revision starts from the start's wall-clock time in milliseconds, times 1,000:
//! revisions keep growing across restarts (a restarted daemon would need to have committed
//! more than 1,000 changes a millisecond since its last start to reach them), so a client
//! that resumes with a revision from before a restart is never given a wrong "nothing
//! missed": the new process does not hold that revision, and says so (`ext.gap`).

use std::time::{SystemTime, UNIX_EPOCH};

use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;

use super::SubscribeServices;
use super::changelog::ChangeLog;
use crate::cluster::{Cluster, ServiceRecord, WINDOWS_DEADLINE, WindowsError};
use crate::config::services::ServiceSpec;
use crate::domain::maintenance::Window;
use crate::history::History;

/// A commit's revision, when the store will say it.
pub(super) type Pending = Pin<Box<dyn Future<Output = Result<i64, WindowsError>>>>;

/// Where a commit stands once made.
pub(super) enum Committed {
    /// Committed at `0`: apply it now.
    Now(i64),
    /// Sent to etcd: applied when the watch brings it; the revision comes when etcd has
    /// stored it (if asked for).
    Later(Option<Pending>),
}

/// Where the node's decisions are committed, and what it has applied of them.
pub(super) struct Ledger {
    /// The changes published, by revision, for clients that resume from one.
    pub log: ChangeLog,
    /// The last revision this node applied.
    pub applied: i64,
    /// Those waiting for this node to apply and publish a revision (a maintenance request
    /// answered only once this node shows what it wrote).
    pub applied_waiters: Vec<(i64, oneshot::Sender<()>)>,
    /// Subscribers resuming from a revision, held back until the log is whole.
    pub held_joins: Vec<SubscribeServices>,
    pub store: Store,
}

/// Where commits go.
pub(super) enum Store {
    /// A node alone: a commit is applied at once, with the next revision; maintenance
    /// windows are kept in the history database.
    Local { next: i64, history: History },
    /// A cluster node: commits are writes to etcd, applied when the watch brings them.
    Etcd(Link),
}

/// A cluster node's side of etcd.
pub(super) struct Link {
    pub cluster: Cluster,
    /// Whether this node leads: runs the monitors and writes.
    pub leading: bool,
    /// Whether etcd has been read once: the node can serve.
    pub synced: bool,
    /// The revision of each service's maintenance key as last seen: a maintenance request
    /// is written only if nobody changed the key since.
    pub windows_at: std::collections::HashMap<String, i64>,
}

impl Ledger {
    /// The ledger of a node alone, starting at a revision no earlier process used.
    pub fn local(now: SystemTime, history: History) -> Self {
        let millis = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let base = millis.saturating_mul(1000);
        let mut log = ChangeLog::new();
        log.restart(base, None, 0);
        Ledger::with(
            log,
            Store::Local {
                next: base + 1,
                history,
            },
        )
    }

    /// The ledger of a cluster node, on etcd.
    pub fn etcd(cluster: Cluster) -> Self {
        Ledger::with(
            ChangeLog::new(),
            Store::Etcd(Link {
                cluster,
                leading: false,
                synced: false,
                windows_at: Default::default(),
            }),
        )
    }

    fn with(log: ChangeLog, store: Store) -> Self {
        Ledger {
            log,
            applied: 0,
            applied_waiters: Vec::new(),
            held_joins: Vec::new(),
            store,
        }
    }

    /// The cluster link, on a cluster node.
    fn link(&self) -> Option<&Link> {
        match &self.store {
            Store::Etcd(link) => Some(link),
            Store::Local { .. } => None,
        }
    }

    /// The link to the cluster, on a cluster node.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.link().map(|l| &l.cluster)
    }

    /// Whether this node's monitors run: alone, always; on a cluster, while it leads, and
    /// with a quorum configured once etcd has been read (every node probes and publishes
    /// its view; the leader decides).
    pub fn probes(&self) -> bool {
        self.link()
            .is_none_or(|l| l.leading || (l.synced && l.cluster.quorum().is_some()))
    }

    /// A cluster node won or lost the election.
    pub fn set_leading(&mut self, leading: bool) {
        if let Some(link) = self.link_mut() {
            link.leading = leading;
        }
    }

    /// A cluster node has read etcd: it can serve.
    pub fn set_synced(&mut self) {
        if let Some(link) = self.link_mut() {
            link.synced = true;
        }
    }

    fn link_mut(&mut self) -> Option<&mut Link> {
        match &mut self.store {
            Store::Etcd(link) => Some(link),
            Store::Local { .. } => None,
        }
    }

    /// Whether this node runs the monitors and decides: alone, or leading a cluster.
    pub fn runs_monitors(&self) -> bool {
        self.link().is_none_or(|l| l.leading)
    }

    /// Whether the node has read what it serves: alone, always; on a cluster, once etcd
    /// has been read.
    pub fn synced(&self) -> bool {
        self.link().is_none_or(|l| l.synced)
    }

    /// The name decisions are signed with: the cluster node's, or `local`.
    pub fn node(&self) -> &str {
        self.link().map_or("local", |l| l.cluster.node())
    }

    /// A revision for a change committed now, alone; `None` on a cluster node, whose
    /// changes get theirs from etcd.
    pub fn next_local(&mut self) -> Option<i64> {
        match &mut self.store {
            Store::Local { next, .. } => Some(take(next)),
            Store::Etcd(_) => None,
        }
    }

    /// Whether the ready node is the one described: alone, every service decided from its
    /// own probes (`decided`); on a cluster node, etcd read and its history replayed (a
    /// client resuming from a revision gets exactly what it missed).
    pub fn ready(&self, decided: bool) -> bool {
        match &self.store {
            Store::Local { .. } => decided,
            Store::Etcd(link) => link.synced && self.log.is_whole(),
        }
    }

    /// The configured services changed (a reload): a cluster node compares them with the
    /// leader's from now on.
    pub fn services_changed(&self, specs: &[ServiceSpec]) {
        if let Some(link) = self.link() {
            link.cluster.set_digest(crate::cluster::digest(specs));
        }
    }

    /// Before judging a maintenance request against the windows this node holds: the
    /// revision it must have applied first (etcd's current one, on a cluster node, so
    /// that a write made a moment ago through another node is seen). `None` alone: this
    /// node holds every write there is.
    pub fn current_revision(&self) -> Option<Pending> {
        let cluster = self.link()?.cluster.clone();
        Some(Box::pin(async move { cluster.revision().await }))
    }

    /// The maintenance windows of service `id` were stored at `revision`: a request
    /// changing them is written only if nobody changed them since.
    pub fn saw_windows(&mut self, id: &str, revision: i64) {
        if let Some(link) = self.link_mut() {
            link.windows_at.insert(id.to_string(), revision);
        }
    }

    /// Commits `windows` (they were `before`) as service `id`'s maintenance: alone, kept
    /// in the history database, to apply now; on a cluster node, written to etcd if
    /// nobody changed them since this node last looked (`wait`: with the revision etcd
    /// stored them at, or why not).
    pub fn commit_windows(
        &mut self,
        id: &str,
        windows: &[Window],
        before: &[Window],
        wait: bool,
    ) -> Committed {
        match &mut self.store {
            Store::Etcd(link) => {
                let expected = link.windows_at.get(id).copied().unwrap_or(0);
                let (done, stored) = oneshot::channel();
                let done = wait.then_some(done);
                link.cluster
                    .write_windows(id, windows.to_vec(), expected, done);
                Committed::Later(wait.then(|| {
                    Box::pin(async move {
                        match tokio::time::timeout(WINDOWS_DEADLINE, stored).await {
                            Ok(Ok(outcome)) => outcome,
                            _ => Err(WindowsError::Unreachable),
                        }
                    }) as Pending
                }))
            }
            Store::Local { next, history } => {
                let ended = |w: &&Window| !windows.iter().any(|n| n.instance == w.instance);
                for gone in before.iter().filter(ended) {
                    history.delete_window(id, gone.instance.as_deref());
                }
                for new in windows.iter().filter(|w| !before.contains(w)) {
                    history.put_window(new.clone());
                }
                Committed::Now(take(next))
            }
        }
    }

    /// Commits a service's record: alone, returns the revision to apply it at now; on a
    /// cluster node, writes it to etcd (fenced by this node's leadership) and returns
    /// `None`: it is applied when the watch brings it back.
    pub fn commit_record(&mut self, id: &str, record: &ServiceRecord) -> Option<i64> {
        if let Store::Etcd(link) = &self.store {
            link.cluster.write(id, record.clone());
            return None;
        }
        self.next_local()
    }
}

/// The next local revision, moving `next` past it.
fn take(next: &mut i64) -> i64 {
    let revision = *next;
    *next += 1;
    revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn local_revisions_grow_across_restarts() {
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut first = Ledger::local(start, History::off());
        let mut last = 0;
        for _ in 0..10_000 {
            last = first.next_local().unwrap();
        }
        // Restarted a second later, after 10,000 changes: every new revision is higher.
        let mut second = Ledger::local(start + Duration::from_secs(1), History::off());
        assert!(second.next_local().unwrap() > last);
        assert!(second.runs_monitors() && second.synced());
        assert_eq!(second.node(), "local");
        // Its log is whole from its start: a resume from before it is not served exactly.
        assert!(second.log.is_whole());
        assert_eq!(
            second.log.missed(last, &Default::default()),
            None,
            "an earlier process's revision"
        );
    }
}
