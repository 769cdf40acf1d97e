//! The registry on a cluster node: what it publishes comes from etcd, not from its own
//! decisions. The leader's monitors still report here and the registry still decides (with
//! the same pure rules), but a decision becomes a fenced write to etcd; the change is
//! published when the watch brings it back, on every node alike, tagged with its revision.
//! A follower runs no monitor: it takes each stored decision as its own ([`Tracked::adopt`]),
//! so that when it becomes leader its monitors resume from the stored states.
//!
//! Maintenance windows are stored in etcd too (`{prefix}maintenance/{id}`), written by
//! whichever node an admin asked, and applied by every node when the watch brings them: the
//! leader decides with them, every node renders them in the resource.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use actix_web::web::Bytes;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::Registry;
use super::changelog::ChangeLog;
use super::tracked::{Replica, Tracked};
use super::transition::{Transition, log_transition};
use crate::cluster::record::millis;
use crate::cluster::{Cluster, ClusterEvent, ServiceRecord, Stored};
use crate::domain::state::Assessment;
use crate::snapshot::PublishedService;

/// The registry's side of a cluster node.
pub(super) struct Link {
    pub cluster: Cluster,
    /// Whether this node leads: runs the monitors and writes.
    pub leading: bool,
    /// Whether etcd has been read once: the node can serve.
    pub synced: bool,
    /// The changes published, for clients that resume from a revision.
    pub log: ChangeLog,
    /// The revision of each service's maintenance key as last seen: a maintenance request
    /// is written only if nobody changed the key since.
    pub windows_at: std::collections::HashMap<String, i64>,
    /// Subscribers resuming from a revision, held back until the node is caught up.
    pub held_joins: Vec<super::SubscribeServices>,
    /// The last revision the watch brought and this node applied.
    pub applied: i64,
    /// Those waiting for this node to apply and publish a revision (a maintenance request
    /// answered only once this node shows what it wrote).
    pub applied_waiters: Vec<(i64, oneshot::Sender<()>)>,
}

impl Link {
    pub fn new(cluster: Cluster) -> Self {
        Link {
            cluster,
            leading: false,
            synced: false,
            log: ChangeLog::new(),
            windows_at: Default::default(),
            held_joins: Vec::new(),
            applied: 0,
            applied_waiters: Vec::new(),
        }
    }
}

impl Tracked {
    /// Publishes the service as `record` says, with its current windows, at `revision`.
    /// Returns the transition from what was published before, if the resource changed.
    pub(super) fn show(&mut self, record: ServiceRecord, revision: i64) -> Option<Transition> {
        let published = PublishedService::of(
            &self.spec,
            &record.assessment,
            record.since,
            &self.windows,
            self.instances.clone(),
        )
        .at_revision(revision);
        let before = self.replica.as_ref();
        if before.is_some_and(|b| b.published.json == published.json) {
            return None;
        }
        let transition = Transition {
            before: before.map_or(Assessment::INITIAL, |b| b.record.assessment),
            after: record.assessment,
            first: before.is_none(),
            confirmed: false,
        };
        self.replica = Some(Replica {
            record,
            revision,
            published: Arc::new(published),
        });
        Some(transition)
    }
}

impl Registry {
    /// What a client resuming after `revision` receives first: the changes it missed, or
    /// (when this node does not hold them) the current state of every service that
    /// changed since, oldest change first, each marked `"gap":true` so that the client
    /// knows it missed the changes before it.
    pub(super) fn catch_up(
        &self,
        revision: i64,
        features: &BTreeSet<String>,
    ) -> Option<Vec<Bytes>> {
        let link = self.link.as_ref()?;
        if let Some(missed) = link.log.missed(revision, features) {
            return Some(missed);
        }
        let published = link.log.published_revision();
        let mut current: Vec<(i64, Bytes)> = self
            .services
            .iter()
            .filter_map(|t| t.replica.as_ref())
            .filter(|r| r.revision > revision && r.revision <= published)
            .filter(|r| features.contains(&r.published.feature))
            .map(|r| {
                let message =
                    crate::resource::state_change_message_after_gap(&r.published.json, r.revision);
                (r.revision, crate::bayeux::frame(&message))
            })
            .collect();
        current.sort_by_key(|(revision, _)| *revision);
        Some(current.into_iter().map(|(_, n)| n).collect())
    }

    /// Whether this node runs the monitors: alone, or leading a cluster.
    pub(super) fn runs_monitors(&self) -> bool {
        self.link.as_ref().is_none_or(|l| l.leading)
    }

    /// The leader's decision for the service at `index` goes to etcd, to be published when
    /// the watch brings it back.
    pub(super) fn write(&self, index: usize, reason: &str, now: SystemTime) {
        let Some(link) = &self.link else { return };
        let tracked = &self.services[index];
        link.cluster.write(
            &tracked.spec.id,
            tracked.record(link.cluster.node(), reason, now),
        );
    }

    /// On the leader: the service's decision stands, but one of its servers' health or said
    /// role changed. Stored all the same (the record with every server's health as of now),
    /// so that a successor resumes from each server's last health rather than its health at
    /// the last decision: a backup that died since would otherwise be resumed as healthy,
    /// and chosen. Nothing is stored before the service's first decision (it would publish
    /// a state).
    pub(super) fn write_health(&self, index: usize, now: SystemTime) {
        let Some(link) = &self.link else { return };
        let tracked = &self.services[index];
        if !tracked.known {
            return;
        }
        let reason = tracked
            .replica
            .as_ref()
            .map_or("", |r| r.record.reason.as_str());
        link.cluster.write(
            &tracked.spec.id,
            tracked.record(link.cluster.node(), reason, now),
        );
    }

    /// Publishes what etcd holds for service `id` at `revision`.
    fn replicate(&mut self, id: &str, stored: Stored, revision: i64, ctx: &mut Context<Self>) {
        let Some(&index) = self.positions.get(id) else {
            // A service this node is not configured with (another node's configuration
            // differs; the campaign says so).
            return;
        };
        let leading = self.link.as_ref().is_some_and(|l| l.leading);
        // What this node's history already holds as the service's latest change (read at
        // start): the first read confirming it is not a change to record again.
        let mut known_to_history = false;
        let (record, reason) = match stored {
            Stored::Record(record) => {
                known_to_history = self.services[index].resumed.is_some_and(|(state, since)| {
                    state == record.assessment.state && millis(since) == millis(record.since)
                });
                if !leading {
                    self.services[index].adopt(&record);
                }
                let reason = record.reason.clone();
                (record, reason)
            }
            Stored::Windows(windows) => {
                let reason = self.take_windows(index, windows, revision);
                let Some(replica) = &self.services[index].replica else {
                    // Shown with the service's first record.
                    return;
                };
                (replica.record.clone(), reason)
            }
        };
        let writer = record.node.clone();
        let tracked = &mut self.services[index];
        let Some(transition) = tracked.show(record, revision) else {
            return;
        };
        if !leading {
            log_transition(&tracked.spec.id, transition, &reason, &self.metrics);
            info!(service = %tracked.spec.id, revision, leader = %writer, "change from the leader");
        }
        if !known_to_history {
            self.record_replica(index, &reason);
        }
        if let (Some(link), Some(shown)) = (&mut self.link, self.services[index].shown(true)) {
            link.log.announce(revision, shown);
        }
        self.announce(index, ctx);
    }

    /// Records the published change of the service at `index` in this node's history.
    fn record_replica(&self, index: usize, reason: &str) {
        let tracked = &self.services[index];
        let Some(replica) = &tracked.replica else {
            return;
        };
        self.record_as(
            index,
            &replica.record.assessment,
            replica.record.since,
            reason,
            SystemTime::now(),
        );
    }

    /// A write from before this node's read, for its log of changes only.
    fn replay(&mut self, id: &str, stored: Stored, revision: i64) {
        let Some(link) = &mut self.link else { return };
        let Some(entry) = link.log.replaying(id) else {
            return;
        };
        match stored {
            Stored::Record(record) => entry.record = Some(record),
            Stored::Windows(windows) => entry.windows = windows,
        }
        let shown = match (&entry.record, self.positions.get(id)) {
            (Some(record), Some(&index)) => {
                let t = &self.services[index];
                Some(
                    PublishedService::of(
                        &t.spec,
                        &record.assessment,
                        record.since,
                        &entry.windows,
                        t.instances.clone(),
                    )
                    .at_revision(revision),
                )
            }
            _ => None,
        };
        link.log.replayed(id, revision, shown);
    }

    /// Once the node is caught up (etcd read, its history replayed): those waiting for
    /// readiness and the resumes held back are served.
    fn caught_up(&mut self, ctx: &mut Context<Self>) {
        if !self.all_ready() {
            return;
        }
        if self.link.as_ref().is_some_and(|l| !l.held_joins.is_empty()) {
            // The held joins' catch-ups come from the log, which holds only what was
            // published: publish first what is waiting.
            if self.scheduled.is_some() {
                self.publish_now(ctx);
            }
            self.release_joins();
        }
        self.wake_ready_waiters(ctx);
    }

    /// This node now leads: its monitors start, from the states etcd holds.
    fn lead(&mut self, ctx: &mut Context<Self>) {
        if let Some(link) = &mut self.link {
            link.leading = true;
        }
        for tracked in &mut self.services {
            if let Some(replica) = &tracked.replica {
                let record = replica.record.clone();
                tracked.adopt(&record);
            }
            tracked.unconfirm();
        }
        self.supervise(ctx);
    }

    /// This node no longer leads: its monitors stop, and what it decided but etcd does
    /// not hold is forgotten.
    fn follow(&mut self) {
        if let Some(link) = &mut self.link {
            link.leading = false;
        }
        for tracked in &mut self.services {
            super::stop_monitors(tracked);
            for server in &mut tracked.servers {
                server.monitor = None;
            }
            if let Some(replica) = &tracked.replica {
                let record = replica.record.clone();
                tracked.adopt(&record);
            }
        }
        warn!("this node no longer leads: its monitors stopped; it serves what the leader writes");
    }
}

/// Resolves once this node has applied what etcd wrote at the revision given, and published
/// what that changed.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub(super) struct WhenApplied(pub i64);

impl Handler<WhenApplied> for Registry {
    type Result = MessageResult<WhenApplied>;

    fn handle(&mut self, msg: WhenApplied, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if let Some(link) = &mut self.link {
            link.applied_waiters.push((msg.0, tx));
        }
        self.settle(0, ctx);
        MessageResult(rx)
    }
}

impl Registry {
    /// The watch's events up to `revision` are applied: those waiting for them are
    /// answered, after a publish of what they changed.
    fn settle(&mut self, revision: i64, ctx: &mut Context<Self>) {
        let Some(link) = &mut self.link else { return };
        link.applied = link.applied.max(revision);
        let applied = link.applied;
        let (due, waiting) = std::mem::take(&mut link.applied_waiters)
            .into_iter()
            .partition::<Vec<_>, _>(|(r, _)| *r <= applied);
        link.applied_waiters = waiting;
        if due.is_empty() {
            return;
        }
        if self.scheduled.is_some() {
            self.publish_now(ctx);
        }
        for (_, waiter) in due {
            let _ = waiter.send(());
        }
    }
}

impl Handler<ClusterEvent> for Registry {
    type Result = ();

    fn handle(&mut self, event: ClusterEvent, ctx: &mut Self::Context) {
        match event {
            ClusterEvent::Synced {
                stored,
                revision,
                history_from,
            } => {
                // What the read changes is published, but is not a change of the log: a
                // client resuming from before `revision` gets the history replayed after
                // it, or every service's state if etcd no longer has that history.
                if let Some(link) = &mut self.link {
                    link.log.pause();
                }
                let last_write = stored.iter().map(|(_, _, r)| *r).max().unwrap_or(0);
                // Windows first, so that each record is rendered with them; services
                // without a maintenance key have none.
                let (windows, records): (Vec<_>, Vec<_>) = stored
                    .into_iter()
                    .partition(|(_, s, _)| matches!(s, Stored::Windows(_)));
                let mut kept = std::collections::HashSet::new();
                for (id, stored, written) in windows {
                    kept.insert(id.clone());
                    self.replicate(&id, stored, written, ctx);
                }
                let cleared: Vec<String> = self
                    .services
                    .iter()
                    .filter(|t| !t.windows.is_empty() && !kept.contains(&t.spec.id))
                    .map(|t| t.spec.id.clone())
                    .collect();
                for id in cleared {
                    self.replicate(&id, Stored::Windows(Vec::new()), revision, ctx);
                }
                for (id, stored, written) in records {
                    self.replicate(&id, stored, written, ctx);
                }
                if let Some(link) = &mut self.link {
                    link.log.restart(revision, history_from, last_write);
                    link.synced = true;
                }
                self.publish_soon(ctx);
                self.settle(revision, ctx);
                self.caught_up(ctx);
            }
            ClusterEvent::Changed {
                id,
                stored,
                revision,
            } => {
                self.replicate(&id, stored, revision, ctx);
                self.settle(revision, ctx);
            }
            ClusterEvent::Past {
                id,
                stored,
                revision,
            } => {
                self.replay(&id, stored, revision);
                self.caught_up(ctx);
            }
            ClusterEvent::Leading(true) => self.lead(ctx),
            ClusterEvent::Leading(false) => self.follow(),
        }
    }
}
