//! The registry on a cluster node: what it publishes comes from etcd, not from its own
//! decisions. The leader's monitors still report here and the registry still decides (with
//! the same pure rules), but a decision becomes a fenced write to etcd; the change is
//! published when the watch brings it back, on every node alike, tagged with its revision.
//! A follower runs no monitor: it takes each stored decision as its own ([`Tracked::adopt`]),
//! so that when it becomes leader its monitors resume from the stored states.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use actix_web::web::Bytes;

use actix::prelude::*;
use tracing::{info, warn};

use super::Registry;
use super::tracked::{Replica, Tracked, Transition, log_transition};
use crate::cluster::{Cluster, ClusterEvent, ServiceRecord};
use crate::domain::state::Assessment;
use crate::snapshot::PublishedService;

/// How many changes a node keeps for clients that resume from a revision: a mass outage
/// of every service of a large site, with room to spare (a few MB).
const LOG_LIMIT: usize = 20_000;

/// The registry's side of a cluster node.
pub(super) struct Link {
    pub cluster: Cluster,
    /// Whether this node leads: runs the monitors and writes.
    pub leading: bool,
    /// Whether etcd has been read once: the node can serve.
    pub synced: bool,
    /// The changes published, in revision order, for clients that resume.
    log: VecDeque<Logged>,
    /// The log holds every change after this revision.
    log_from: i64,
    /// The revision of the last change announced, and of the last one published.
    announced: i64,
    published: i64,
    /// While the history before a full read is replayed into the log: where it starts,
    /// and the revision of its last change (the log is whole once that has arrived).
    filling: Option<(i64, i64)>,
    /// The last record of each service in the history replayed, so that a record that
    /// changed nothing is not logged as a change (no node published it).
    filled: HashMap<String, ServiceRecord>,
}

/// One change as published.
struct Logged {
    revision: i64,
    feature: String,
    notification: Bytes,
}

impl Link {
    pub fn new(cluster: Cluster) -> Self {
        Link {
            cluster,
            leading: false,
            synced: false,
            log: VecDeque::new(),
            log_from: i64::MAX,
            announced: 0,
            published: 0,
            filling: None,
            filled: HashMap::new(),
        }
    }

    /// Every change announced so far goes out with this publish.
    pub fn published(&mut self) {
        self.published = self.announced;
    }

    /// The changes after `revision` that a client seeing `features` missed, as published;
    /// `None` when this node no longer holds them all (or never did).
    pub fn missed(&self, revision: i64, features: &BTreeSet<String>) -> Option<Vec<Bytes>> {
        (revision >= self.log_from).then(|| {
            self.log
                .iter()
                .filter(|e| e.revision > revision && e.revision <= self.published)
                .filter(|e| features.contains(&e.feature))
                .map(|e| e.notification.clone())
                .collect()
        })
    }

    fn logged(&mut self, revision: i64, feature: &str, notification: &Bytes) {
        self.announced = self.announced.max(revision);
        if self.log_from == i64::MAX {
            return;
        }
        self.log.push_back(Logged {
            revision,
            feature: feature.to_string(),
            notification: notification.clone(),
        });
        if self.log.len() > LOG_LIMIT {
            if let Some(oldest) = self.log.pop_front() {
                self.log_from = oldest.revision;
            }
        }
    }

    /// Everything stored was read at `revision`: the log starts afresh after it, then
    /// reaches back to `history_from` once the history up to `last_change` (the newest
    /// record read) has been replayed.
    fn restart_log(&mut self, revision: i64, history_from: Option<i64>, last_change: i64) {
        self.log.clear();
        self.filled.clear();
        self.log_from = revision;
        self.announced = self.announced.max(revision);
        self.filling = None;
        match history_from {
            Some(from) if last_change >= from => self.filling = Some((from, last_change)),
            Some(from) => self.log_from = from - 1,
            None => {}
        }
    }

    /// A change from the history before the read.
    fn past(
        &mut self,
        id: &str,
        record: &ServiceRecord,
        revision: i64,
        shown: Option<PublishedService>,
    ) {
        let Some((from, last)) = self.filling else {
            return;
        };
        let repeated = self.filled.get(id).is_some_and(|r| r.same_state(record));
        self.filled.insert(id.to_string(), record.clone());
        if let (false, Some(shown)) = (repeated, shown) {
            self.log.push_back(Logged {
                revision,
                feature: shown.feature,
                notification: shown.notification,
            });
        }
        if revision >= last {
            self.filling = None;
            self.filled.clear();
            self.log_from = from - 1;
            while self.log.len() > LOG_LIMIT {
                if let Some(oldest) = self.log.pop_front() {
                    self.log_from = oldest.revision;
                }
            }
        }
    }
}

impl Tracked {
    /// Publishes the service as `record` says, at `revision`. Returns the transition from
    /// what was published before, if anything changed.
    pub(super) fn show(&mut self, record: ServiceRecord, revision: i64) -> Option<Transition> {
        let before = self.replica.as_ref().map(|r| &r.record);
        if before.is_some_and(|b| b.same_state(&record)) {
            return None;
        }
        let transition = Transition {
            before: before.map_or(Assessment::INITIAL, |b| b.assessment),
            after: record.assessment,
            first: before.is_none(),
            confirmed: false,
        };
        let published = PublishedService::of(
            &self.spec,
            &record.assessment,
            record.since,
            &self.windows,
            self.instances.clone(),
        )
        .at_revision(revision);
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
    /// (when this node no longer holds them) the current state of every service that
    /// changed since, oldest change first.
    pub(super) fn catch_up(
        &self,
        revision: i64,
        features: &BTreeSet<String>,
    ) -> Option<Vec<Bytes>> {
        let link = self.link.as_ref()?;
        if let Some(missed) = link.missed(revision, features) {
            return Some(missed);
        }
        let mut current: Vec<(i64, Bytes)> = self
            .services
            .iter()
            .filter_map(|t| t.replica.as_ref())
            .filter(|r| r.revision > revision && r.revision <= link.published)
            .filter(|r| features.contains(&r.published.feature))
            .map(|r| (r.revision, r.published.notification.clone()))
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

    /// Publishes what etcd holds for service `id` at `revision`.
    fn replicate(
        &mut self,
        id: &str,
        record: ServiceRecord,
        revision: i64,
        ctx: &mut Context<Self>,
    ) {
        let Some(&index) = self.positions.get(id) else {
            // A service this node is not configured with (another node's configuration
            // differs; the campaign says so).
            return;
        };
        let leading = self.link.as_ref().is_some_and(|l| l.leading);
        let reason = record.reason.clone();
        let writer = record.node.clone();
        let tracked = &mut self.services[index];
        if !leading {
            tracked.adopt(&record);
        }
        let Some(transition) = tracked.show(record, revision) else {
            return;
        };
        if !leading {
            log_transition(&tracked.spec.id, transition, &reason, &self.metrics);
            info!(service = %tracked.spec.id, revision, leader = %writer, "change from the leader");
        }
        self.record_replica(index, &reason);
        if let (Some(link), Some(shown)) = (&mut self.link, self.services[index].shown(true)) {
            link.logged(revision, &shown.feature, &shown.notification);
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
            replica.record.written,
        );
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
            tracked.ready = false;
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

impl Handler<ClusterEvent> for Registry {
    type Result = ();

    fn handle(&mut self, event: ClusterEvent, ctx: &mut Self::Context) {
        match event {
            ClusterEvent::Synced {
                records,
                revision,
                history_from,
            } => {
                // What the read changes is published, but is not a change of the log: a
                // client resuming from before `revision` gets the history replayed after
                // it, or every service's state if etcd no longer has that history.
                if let Some(link) = &mut self.link {
                    link.restart_log(i64::MAX, None, 0);
                }
                let last_change = records.iter().map(|(_, _, r)| *r).max().unwrap_or(0);
                for (id, record, written) in records {
                    self.replicate(&id, record, written, ctx);
                }
                if let Some(link) = &mut self.link {
                    link.restart_log(revision, history_from, last_change);
                    link.synced = true;
                }
                self.publish_soon(ctx);
                self.wake_ready_waiters(ctx);
            }
            ClusterEvent::Changed {
                id,
                record,
                revision,
            } => self.replicate(&id, record, revision, ctx),
            ClusterEvent::Past {
                id,
                record,
                revision,
            } => {
                let shown = self.positions.get(id.as_str()).map(|&i| {
                    let t = &self.services[i];
                    PublishedService::of(
                        &t.spec,
                        &record.assessment,
                        record.since,
                        &t.windows,
                        t.instances.clone(),
                    )
                    .at_revision(revision)
                });
                if let Some(link) = &mut self.link {
                    link.past(&id, &record, revision, shown);
                }
            }
            ClusterEvent::Leading(true) => self.lead(ctx),
            ClusterEvent::Leading(false) => self.follow(),
        }
    }
}
