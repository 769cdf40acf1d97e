//! Several servicewatch nodes, one truth: the nodes elect one leader through etcd, the
//! leader alone runs the monitors and writes each service's decided state under a key prefix
//! (each write fenced by its leadership), and every node, the leader included, serves what a
//! watch on that prefix delivers. Every node so publishes the same changes in the same order,
//! each tagged with the etcd revision that made it. See docs/cluster.md.
//!
//! This module is the registry's link to etcd: [`Cluster`] is the handle the registry writes
//! through, [`ClusterEvent`] what the etcd session tells the registry, [`ClusterStatus`] what
//! the API and the admin listener read (stale, leading). The session itself (the
//! etcd client, reconnections, the lease, the campaign, the watch) is `session/`.

pub mod credentials;
pub(crate) mod record;
#[cfg(feature = "cluster")]
mod session;
pub(crate) mod tokens;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::config::cluster::ClusterSettings;
use crate::metrics::Metrics;
pub(crate) use record::{Round, ServerRecord, ServerView, ServiceRecord, Stored, View, digest};

/// How long a maintenance request waits for etcd before it is answered as failed.
pub(crate) const WINDOWS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// What the etcd session tells the registry.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) enum ClusterEvent {
    /// Every stored service, as of `revision`: after the first connection, and after a
    /// reconnection that came too late to replay the changes missed (etcd had compacted
    /// them); the watch resumes from the revision after it.
    Synced {
        /// What is stored for each service (its record, its maintenance windows), with the
        /// revision that wrote it.
        stored: Vec<(String, Stored, i64)>,
        revision: i64,
        /// The changes from this revision up to `revision` follow as [`ClusterEvent::Past`];
        /// `None`: etcd no longer has them.
        history_from: Option<i64>,
    },
    /// A change made before the read (history): for the node's log of changes, not to
    /// publish again.
    Past {
        id: String,
        stored: Stored,
        revision: i64,
    },
    /// One service's record or maintenance windows were written at `revision`.
    Changed {
        id: String,
        stored: Stored,
        revision: i64,
    },
    /// This node now leads (it runs the monitors and writes) or no longer does.
    Leading(bool),
}

/// What the API, the admin listener and the registry read of the node's place in the
/// cluster. A node alone is never stale and always leads.
///
/// Staleness is also a matter of time: the node's view is fresh only while its lease is known
/// to hold. A process that was paused (SIGSTOP, a VM frozen, starved of CPU) past its lease
/// is stale from the first instant it runs again, before its etcd session has noticed
/// anything, so that no answer given in between claims to be current.
#[derive(Debug)]
pub(crate) struct ClusterStatus {
    clustered: bool,
    stale: AtomicBool,
    leading: AtomicBool,
    /// Milliseconds after `epoch` until which the node's lease is known to hold.
    fresh_until: AtomicU64,
    epoch: Instant,
    /// Tells those waiting (held Bayeux connects) that the node turned stale or fresh.
    changes: tokio::sync::watch::Sender<bool>,
}

impl ClusterStatus {
    /// The status of a node that runs alone.
    pub fn alone() -> Self {
        ClusterStatus {
            clustered: false,
            stale: AtomicBool::new(false),
            leading: AtomicBool::new(true),
            fresh_until: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            changes: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The status of a cluster node before it reaches etcd: stale until then.
    pub fn clustered() -> Self {
        ClusterStatus {
            clustered: true,
            stale: AtomicBool::new(true),
            leading: AtomicBool::new(false),
            fresh_until: AtomicU64::new(0),
            epoch: Instant::now(),
            changes: tokio::sync::watch::Sender::new(true),
        }
    }

    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Whether what this node serves may be behind: it has lost etcd (or not reached it
    /// yet), so it cannot hear of changes.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire) || !self.lease_holds()
    }

    /// Whether this node leads: it won the election and its lease still holds.
    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Acquire) && self.lease_holds()
    }

    fn lease_holds(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        now < self.fresh_until.load(Ordering::Acquire)
    }

    /// The node's lease is known to hold until `until`.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn lease_until(&self, until: Instant) {
        let ms = until.saturating_duration_since(self.epoch).as_millis() as u64;
        self.fresh_until.store(ms, Ordering::Release);
    }

    /// A receiver that hears each time the node turns stale or fresh (a held Bayeux
    /// connect is answered then, so that a UI shows it at once).
    pub fn staleness_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.changes.subscribe()
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn set_stale(&self, stale: bool) {
        self.stale.store(stale, Ordering::Release);
        self.changes
            .send_if_modified(|was| std::mem::replace(was, stale) != stale);
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::Release);
    }
}

/// A write the registry asks for.
#[derive(Debug)]
pub(crate) enum Write {
    /// The leader's decision for service `id`, fenced by its leadership.
    Record { id: String, record: ServiceRecord },
    /// The maintenance windows of service `id` (from any node): written if the key is still
    /// at `expected` (its mod revision as this node last saw it; 0: absent), so that two
    /// admins on two nodes cannot overwrite each other's windows unawares. Dropped unwritten
    /// after `deadline` (the caller has given up by then).
    Windows {
        id: String,
        windows: Vec<crate::domain::maintenance::Window>,
        expected: i64,
        deadline: std::time::Instant,
        /// Hears the outcome: the revision that stored the windows, or why not.
        done: Option<tokio::sync::oneshot::Sender<Result<i64, WindowsError>>>,
    },
    /// Asks etcd for its current revision (`None`: out of reach): what a node must have
    /// applied before it judges a request against what it holds.
    Revision {
        done: tokio::sync::oneshot::Sender<Option<i64>>,
    },
    /// The leader delivered the events routed to `receiver` up to `revision`: stored,
    /// fenced by its leadership, for a successor and the followers.
    Delivered { receiver: String, revision: i64 },
    /// An API token created or revoked on this node (unfenced: see `tokens.rs`). Dropped
    /// unwritten after `deadline` (the caller has given up by then).
    Token {
        change: tokens::TokenChange,
        deadline: std::time::Instant,
        done: tokens::TokenAnswer,
    },
    /// The daemon stops: give up the lease (and so the leadership, at once rather than
    /// when the lease runs out) and campaign no more.
    Resign {
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// Why maintenance windows were not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WindowsError {
    #[error("etcd is out of reach; try again")]
    Unreachable,
    /// Another node changed the windows since this one last saw them; etcd was at
    /// `revision` when it refused.
    #[error(
        "the maintenance of this service was changed meanwhile on another node; look again and retry"
    )]
    Changed { revision: i64 },
}

/// This node's views waiting to be written: a lane of their own beside the queue of
/// [`Write`]s, which the session serves first, so that a record never waits behind views.
/// A service's newer view replaces the one still waiting (only the latest matters), so
/// the lane holds at most one view per service however fast the monitors report. The
/// node's round waits here too (the newest only), written after the views before it.
#[derive(Debug, Default)]
pub(crate) struct ViewLane {
    /// `None`: the view is to be deleted (the node sees every server up again).
    waiting: Mutex<Waiting>,
    /// Wakes the session when a view arrives (a permit is kept if it is busy).
    arrived: tokio::sync::Notify,
}

/// The views waiting (`None`: to delete), and the round, if one waits.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
type Waiting = (
    std::collections::BTreeMap<String, Option<View>>,
    Option<Round>,
);

impl ViewLane {
    /// Everything waiting, taken.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    fn take(&self) -> Waiting {
        std::mem::take(&mut *self.waiting.lock().expect("views lock"))
    }
}

/// The registry's end of the link: where the leader's writes go.
#[derive(Clone)]
pub(crate) struct Cluster {
    writes: mpsc::UnboundedSender<Write>,
    views: Arc<ViewLane>,
    node: Arc<str>,
    quorum: Option<crate::domain::quorum::Quorum>,
    /// The digest of the services this node is configured with; a reload replaces it.
    digest: Arc<Mutex<String>>,
    pub status: Arc<ClusterStatus>,
    /// How long one etcd call may take (`[cluster] timeout`).
    call_timeout: std::time::Duration,
}

/// The session's end of the link, until [`Inbox::start`] gives it the registry.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct Inbox {
    settings: ClusterSettings,
    credentials: credentials::Credentials,
    writes: mpsc::UnboundedReceiver<Write>,
    views: Arc<ViewLane>,
    digest: Arc<Mutex<String>>,
    status: Arc<ClusterStatus>,
    /// Where the cluster's API tokens are applied on this node, once it is given.
    tokens: Option<tokens::SharedBook>,
}

impl Cluster {
    /// The link for a node configured with `settings` and `services_digest`: the handle
    /// for the registry, and the inbox the etcd session starts from.
    pub fn link(
        settings: &ClusterSettings,
        credentials: credentials::Credentials,
        services_digest: String,
    ) -> (Cluster, Inbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let status = Arc::new(ClusterStatus::clustered());
        let digest = Arc::new(Mutex::new(services_digest));
        let views = Arc::new(ViewLane::default());
        (
            Cluster {
                writes: tx,
                views: views.clone(),
                node: settings.node.as_str().into(),
                quorum: settings.quorum,
                digest: digest.clone(),
                status: status.clone(),
                call_timeout: settings.timeout,
            },
            Inbox {
                settings: settings.clone(),
                credentials,
                writes: rx,
                views,
                digest,
                status,
                tokens: None,
            },
        )
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Asks the session to write `record` for service `id`, fenced by this node's
    /// leadership: refused (and this node deposed) if another node leads now.
    pub fn write(&self, id: &str, record: ServiceRecord) {
        let _ = self.writes.send(Write::Record {
            id: id.to_string(),
            record,
        });
    }

    /// Asks the session to store `windows` as service `id`'s maintenance, if the key is
    /// still at revision `expected`; `done` hears the outcome (the revision of the write).
    pub fn write_windows(
        &self,
        id: &str,
        windows: Vec<crate::domain::maintenance::Window>,
        expected: i64,
        done: Option<tokio::sync::oneshot::Sender<Result<i64, WindowsError>>>,
    ) {
        let _ = self.writes.send(Write::Windows {
            id: id.to_string(),
            windows,
            expected,
            deadline: std::time::Instant::now() + WINDOWS_DEADLINE,
            done,
        });
    }

    /// Asks the session to store this node's view of service `id` (any node, leading or
    /// not), bound to its lease, once no other write waits; it replaces the service's
    /// view still waiting, if any. `None`: deletes the view.
    pub fn write_view(&self, id: &str, view: Option<View>) {
        self.views
            .waiting
            .lock()
            .expect("views lock")
            .0
            .insert(id.to_string(), view);
        self.views.arrived.notify_one();
    }

    /// Asks the session to store this node's round (after the views asked for before it),
    /// bound to its lease; it replaces the round still waiting, if any.
    pub fn write_round(&self, round: Round) {
        self.views.waiting.lock().expect("views lock").1 = Some(round);
        self.views.arrived.notify_one();
    }

    /// How the live nodes' views of a server make it down; `None`: the leader alone
    /// probes.
    pub fn quorum(&self) -> Option<crate::domain::quorum::Quorum> {
        self.quorum
    }

    /// Asks the session to store that the events routed to `receiver` are delivered up to
    /// `revision`, if this node still leads.
    pub fn write_delivered(&self, receiver: &str, revision: i64) {
        let _ = self.writes.send(Write::Delivered {
            receiver: receiver.to_string(),
            revision,
        });
    }

    /// etcd's current revision, or why not.
    pub async fn revision(&self) -> Result<i64, WindowsError> {
        let (done, read) = tokio::sync::oneshot::channel();
        if self.writes.send(Write::Revision { done }).is_err() {
            return Err(WindowsError::Unreachable);
        }
        match tokio::time::timeout(WINDOWS_DEADLINE, read).await {
            Ok(Ok(Some(revision))) => Ok(revision),
            _ => Err(WindowsError::Unreachable),
        }
    }

    /// Gives up leadership for good (the daemon stops), so that another node takes over at
    /// once; resolves when etcd has been told, or after the configured timeout.
    pub async fn resign(&self, within: std::time::Duration) {
        let (done, resigned) = tokio::sync::oneshot::channel();
        if self.writes.send(Write::Resign { done }).is_ok() {
            let _ = tokio::time::timeout(within, resigned).await;
        }
    }

    /// The services changed (a reload): the node compares the new digest with the
    /// leader's from now on.
    pub fn set_digest(&self, digest: String) {
        *self.digest.lock().expect("digest lock") = digest;
    }
}

impl Inbox {
    /// The session applies the cluster's API tokens to `book` (a node that serves the API).
    pub fn with_tokens(self, book: tokens::SharedBook) -> Self {
        Inbox {
            tokens: Some(book),
            ..self
        }
    }

    /// Starts the etcd session on the current actix arbiter; it tells `registry` what
    /// happens, and reconnects for as long as the daemon runs.
    #[cfg(feature = "cluster")]
    pub fn start(self, registry: Recipient<ClusterEvent>, metrics: Arc<Metrics>) {
        actix_rt::spawn(session::run(self, registry, metrics));
    }

    #[cfg(not(feature = "cluster"))]
    pub fn start(self, _registry: Recipient<ClusterEvent>, _metrics: Arc<Metrics>) {
        // `[cluster]` is refused by the configuration in such a build.
        unreachable!("a [cluster] table is refused without the cluster feature");
    }
}
