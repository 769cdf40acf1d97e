//! Applying what the ledger committed ([`super::ledger`]): every node, alone or not,
//! publishes only committed changes, each with its revision, and records them in its
//! history. On a cluster node the leader's monitors still report and the registry still
//! decides, but the change is published when etcd's watch brings it back, on every node
//! alike; a follower takes each stored decision as its own ([`Tracked::adopt`]), so that
//! when it becomes leader its monitors resume from the stored states.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use actix::prelude::*;
use actix_web::web::Bytes;
use tokio::sync::oneshot;
use tracing::info;

use super::Registry;
use super::tracked::{Replica, Tracked};
use super::transition::{Transition, log_transition};
use crate::alerts::dispatcher::{Delivered, Observe};
use crate::alerts::observe::observed;
use crate::cluster::record::millis;
use crate::cluster::{ServiceRecord, Stored};
use crate::domain::state::Assessment;
use crate::snapshot::PublishedService;

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
        if let Some(same) = self
            .replica
            .as_mut()
            .filter(|b| b.published.json == published.json)
        {
            // Nothing shown changes, but the record is newer: each server's last health.
            same.record = record;
            return None;
        }
        let before = self.replica.as_ref();
        if before.is_some_and(|b| b.record.assessment.serving != record.assessment.serving) {
            self.serving_since = Some(record.written);
        }
        let transition = Transition {
            before: before.map_or(Assessment::INITIAL, |b| b.record.assessment),
            after: record.assessment,
            first: before.is_none(),
            confirmed: false,
            cause: record.switchover,
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
    pub(super) fn catch_up(&self, revision: i64, features: &BTreeSet<String>) -> Vec<Bytes> {
        let log = &self.ledger.log;
        let published = log.published_revision();
        // A revision beyond what this node has published is not one of its own (another
        // process's, another cluster's): it cannot say what the client missed.
        if revision <= published
            && let Some(missed) = log.missed(revision, features)
        {
            return missed;
        }
        let revision = if revision > published { 0 } else { revision };
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
        current.into_iter().map(|(_, n)| n).collect()
    }

    /// Whether this node runs the monitors: alone, or leading a cluster.
    pub(super) fn runs_monitors(&self) -> bool {
        self.ledger.runs_monitors()
    }

    /// Commits the decision for the service at `index`: alone, it is applied (published,
    /// recorded) at once; on a cluster node, when the watch brings it back.
    pub(super) fn commit(
        &mut self,
        index: usize,
        reason: &str,
        now: SystemTime,
        ctx: &mut Context<Self>,
    ) {
        let tracked = &self.services[index];
        let record = tracked.record(self.ledger.node(), reason, now);
        let id = tracked.spec.id.clone();
        if let Some(revision) = self.ledger.commit_record(&id, &record) {
            self.apply(&id, Stored::Record(record), revision, None, ctx);
            self.settle(revision, ctx);
        }
    }

    /// The service's decision stands, but one of its servers' health or said role changed.
    /// Committed all the same (the record with every server's health as of now): the
    /// alerts tell a lost redundancy from it, and in a cluster a successor resumes from
    /// each server's last health rather than its health at the last decision (a backup
    /// that died since would otherwise be resumed as healthy, and chosen). Nothing is
    /// committed before the service's first decision (it would publish a state).
    pub(super) fn commit_health(&mut self, index: usize, now: SystemTime, ctx: &mut Context<Self>) {
        let tracked = &self.services[index];
        if !tracked.is_known() {
            return;
        }
        let reason = tracked
            .replica
            .as_ref()
            .map_or_else(String::new, |r| r.record.reason.clone());
        self.commit(index, &reason, now, ctx);
    }

    /// Applies what was committed for service `id` at `revision`: publishes it, records it.
    /// `said`: the reason, when this node knows it better than the stored change tells
    /// (who took a service out of maintenance, say).
    pub(super) fn apply(
        &mut self,
        id: &str,
        stored: Stored,
        revision: i64,
        said: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        if let Stored::Delivered(delivered) = stored {
            // Not a service's: what the leader's alerts delivered.
            if let Some(alerts) = &self.alerts {
                alerts.do_send(Delivered {
                    receiver: id.to_string(),
                    revision: delivered,
                });
            }
            return;
        }
        match stored {
            Stored::View(view) => return self.take_view(id, view.node.clone(), Some(view), ctx),
            Stored::ViewEnded { node } => return self.take_view(id, node, None, ctx),
            Stored::Round { node, round } => return self.take_round(node, round, ctx),
            _ => {}
        }
        let Some(&index) = self.positions.get(id) else {
            // A service this node is not configured with (another node's configuration
            // differs; the campaign says so).
            return;
        };
        let leading = self.runs_monitors();
        // What this node's history already holds as the service's latest change (read at
        // start): the first change confirming it is not one to record again.
        let mut known_to_history = false;
        // When the change happened: when the record was written (by the node that decided
        // it, so every node's history says the same), or now for maintenance windows.
        let (record, reason, at) = match stored {
            Stored::Record(record) => {
                let resumed = self.services[index].resumed.take();
                known_to_history = resumed.is_some_and(|(state, since, serving)| {
                    state == record.assessment.state
                        && millis(since) == millis(record.since)
                        && serving == record.assessment.serving
                });
                if !leading {
                    self.services[index].adopt(&record);
                    self.show_redundancy(index);
                }
                let reason = said.unwrap_or_else(|| record.reason.clone());
                let at = record.written;
                (record, reason, at)
            }
            Stored::Windows(windows) => {
                let reason = self.take_windows(index, windows, revision, said, ctx);
                let Some(replica) = &self.services[index].replica else {
                    // Shown with the service's first record.
                    return;
                };
                (replica.record.clone(), reason, SystemTime::now())
            }
            // Not a service's change: taken above.
            _ => return,
        };
        let writer = record.node.clone();
        self.tell_alerts(index, &record, revision, at, &reason, leading);
        let tracked = &mut self.services[index];
        let Some(transition) = tracked.show(record, revision) else {
            return;
        };
        if !leading {
            log_transition(&tracked.spec.id, transition, &reason, &self.metrics);
            info!(service = %tracked.spec.id, revision, leader = %writer, "change from the leader");
        }
        if !known_to_history {
            self.record_replica(index, &reason, at);
        }
        if let Some(shown) = self.services[index].shown() {
            self.ledger.log.announce(revision, shown);
        }
        self.announce(index, ctx);
    }

    /// Tells the alerts of the service's committed change (on every node: a follower keeps
    /// what each service was seen as, for when it leads).
    fn tell_alerts(
        &self,
        index: usize,
        record: &ServiceRecord,
        revision: i64,
        at: SystemTime,
        reason: &str,
        leading: bool,
    ) {
        let Some(alerts) = &self.alerts else {
            return;
        };
        let tracked = &self.services[index];
        alerts.do_send(Observe {
            observed: observed(
                &tracked.spec,
                record,
                &tracked.windows,
                revision,
                at,
                reason,
            ),
            interval: tracked.spec.pair.primary.check.schedule.interval,
            leading,
        });
    }

    /// Records the published change of the service at `index` in this node's history, as
    /// happened `at`.
    fn record_replica(&self, index: usize, reason: &str, at: SystemTime) {
        let tracked = &self.services[index];
        let Some(replica) = &tracked.replica else {
            return;
        };
        self.record_as(
            index,
            &replica.record.assessment,
            replica.record.since,
            reason,
            at,
        );
    }

    /// A write from before this node's read, for its log of changes only.
    pub(super) fn replay(&mut self, id: &str, stored: Stored, revision: i64) {
        let log = &mut self.ledger.log;
        if let Stored::Delivered(_)
        | Stored::View(_)
        | Stored::ViewEnded { .. }
        | Stored::Round { .. } = stored
        {
            // Not a service's change; it still counts toward the end of the replay.
            log.replayed(id, revision, None);
            return;
        }
        let Some(entry) = log.replaying(id) else {
            return;
        };
        match stored {
            Stored::Record(record) => entry.record = Some(record),
            Stored::Windows(windows) => entry.windows = windows,
            Stored::Delivered(_)
            | Stored::View(_)
            | Stored::ViewEnded { .. }
            | Stored::Round { .. } => {}
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
        log.replayed(id, revision, shown);
    }

    /// Once the node is caught up (etcd read, its history replayed): those waiting for
    /// readiness and the resumes held back are served.
    pub(super) fn caught_up(&mut self, ctx: &mut Context<Self>) {
        if !self.all_ready() {
            return;
        }
        if !self.ledger.held_joins.is_empty() {
            // The held joins' catch-ups come from the log, which holds only what was
            // published: publish first what is waiting.
            if self.scheduled.is_some() {
                self.publish_now(ctx);
            }
            self.release_joins();
        }
        self.wake_ready_waiters(ctx);
    }
}

/// Resolves once this node has applied what was committed at the revision given, and
/// published what that changed.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub(super) struct WhenApplied(pub i64);

impl Handler<WhenApplied> for Registry {
    type Result = MessageResult<WhenApplied>;

    fn handle(&mut self, msg: WhenApplied, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.ledger.applied_waiters.push((msg.0, tx));
        self.settle(0, ctx);
        MessageResult(rx)
    }
}

impl Registry {
    /// The committed changes up to `revision` are applied: those waiting for them are
    /// answered, after a publish of what they changed.
    pub(super) fn settle(&mut self, revision: i64, ctx: &mut Context<Self>) {
        let ledger = &mut self.ledger;
        ledger.applied = ledger.applied.max(revision);
        let applied = ledger.applied;
        let (due, waiting) = std::mem::take(&mut ledger.applied_waiters)
            .into_iter()
            .partition::<Vec<_>, _>(|(r, _)| *r <= applied);
        ledger.applied_waiters = waiting;
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
