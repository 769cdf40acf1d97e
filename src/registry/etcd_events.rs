//! A cluster node hears from its etcd session ([`ClusterEvent`]): everything stored, after a
//! first read or a compaction; each change the watch brings; the history before a read, for
//! the log of changes; and whether this node now leads.

use actix::prelude::*;
use tracing::warn;

use super::Registry;
use crate::alerts::dispatcher::Leading;
use crate::cluster::{ClusterEvent, Stored};

impl Registry {
    /// This node now leads: its monitors start, from the states etcd holds.
    fn lead(&mut self, ctx: &mut Context<Self>) {
        self.ledger.set_leading(true);
        self.tell_alerts_leading(true);
        for tracked in &mut self.services {
            if let Some(replica) = &tracked.replica {
                let record = replica.record.clone();
                tracked.adopt(&record);
            }
            tracked.unconfirm();
        }
        self.supervise(ctx);
        // Monitors that ran while this node followed have seen their servers already:
        // their votes count at once, and decide as a new leader's first probes would.
        for index in 0..self.services.len() {
            self.vote_again(index, ctx);
        }
    }

    /// This node no longer leads: its monitors go on probing (its view still counts), and
    /// what it decided but etcd does not hold is forgotten (its redundancy gauges show what
    /// etcd holds).
    fn follow(&mut self) {
        self.ledger.set_leading(false);
        self.tell_alerts_leading(false);
        let probes = self.ledger.probes();
        for tracked in &mut self.services {
            if !probes {
                super::stop_monitors(tracked);
                for server in &mut tracked.servers {
                    server.monitor = None;
                    server.own = None;
                }
            }
            if let Some(replica) = &tracked.replica {
                let record = replica.record.clone();
                tracked.adopt(&record);
            }
        }
        for index in 0..self.services.len() {
            self.show_redundancy(index);
        }
        warn!(
            "this node no longer leads: it serves what the leader writes, and its monitors report its view"
        );
    }
}

impl Registry {
    fn tell_alerts_leading(&self, leading: bool) {
        if let Some(alerts) = &self.alerts {
            alerts.do_send(Leading(leading));
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
                self.ledger.log.pause();
                // The views read replace every view held: a node missing from them is gone.
                for tracked in &mut self.services {
                    tracked.views.clear();
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
                    self.apply(&id, stored, written, None, ctx);
                }
                let cleared: Vec<String> = self
                    .services
                    .iter()
                    .filter(|t| !t.windows.is_empty() && !kept.contains(&t.spec.id))
                    .map(|t| t.spec.id.clone())
                    .collect();
                for id in cleared {
                    self.apply(&id, Stored::Windows(Vec::new()), revision, None, ctx);
                }
                for (id, stored, written) in records {
                    self.apply(&id, stored, written, None, ctx);
                }
                self.ledger.log.restart(revision, history_from, last_write);
                self.ledger.set_synced();
                for index in 0..self.services.len() {
                    self.show_views(index);
                }
                // Every node probes once it has read etcd: its view counts in the quorum.
                self.supervise(ctx);
                self.publish_soon(ctx);
                self.settle(revision, ctx);
                self.caught_up(ctx);
            }
            ClusterEvent::Changed {
                id,
                stored,
                revision,
            } => {
                self.apply(&id, stored, revision, None, ctx);
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
