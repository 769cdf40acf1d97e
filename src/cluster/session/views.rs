//! This node's views in etcd (`{prefix}views/{node}/{service}`, bound to its lease): the
//! writes of many eyes, kept out of the way of the leader's records.
//!
//! What they cost, measured with `tests/cluster_views_cost.rs` (two nodes starting on 2,001
//! services, one etcd, two shared cores): every node's monitors report every server within
//! their first round, so a start is a burst of one view per service per node: 4,002 puts,
//! 638 kB, over about 14 s (some 290 puts/s, most of them a transaction each as the reports
//! trickled in). When the views shared one queue with the records, the leader's 2,001
//! first records waited behind them: from its decision to a watcher, p50 4.9 s and p99 8.0 s
//! (the leader alone: p50 0.74 s, p99 1.0 s), the last record 14.4 s after the start
//! instead of 7.0 s.
//!
//! So views take a lane of their own ([`super::super::ViewLane`]), served only when no
//! other write waits: a record waits at most for the one view transaction in flight. While
//! records are written, views pile up in the lane, a newer view of a service replacing the
//! older, and then go together, [`VIEWS_PER_TXN`] to a transaction. Measured again: the
//! views still 4,002 puts but over 9.9 s, the last record 10.5 s after the start, records
//! p50 3.5 s and p99 4.1 s: half the wait, not none. What remains is the burst itself (etcd,
//! both nodes and the watchers share the cores, and every node's registry takes 4,002 view
//! events). So a node now writes no view of a service it sees all up, and one round of its
//! own instead (`{prefix}rounds/{node}`, written here after the views before it; see
//! `src/registry/views.rs`): a start with every server up writes no view at all.

use std::collections::BTreeSet;

use etcd_client::{PutOptions, Txn, TxnOp};

use super::machine::{Event, Machine};
use super::{Clock, RoundError, Session};

/// Views written in one transaction at most (etcd allows 128 operations in one). A record
/// that arrives meanwhile waits for this one transaction.
const VIEWS_PER_TXN: usize = 100;

/// This node's views and round, as written to etcd.
#[derive(Default)]
pub(super) struct Outgoing {
    /// This node's latest view of each service, as JSON: written again, all of them, when
    /// the lease they are bound to is not the one they were written with (a new lease, or
    /// a write that failed).
    pub(super) views: std::collections::BTreeMap<String, Option<Vec<u8>>>,
    /// The services whose view etcd does not hold yet as `views` has it; this node's round
    /// as last asked for, and whether etcd does not hold it yet.
    pub(super) due: std::collections::BTreeSet<String>,
    pub(super) round: (Option<Vec<u8>>, bool),
    /// The lease the views in etcd are bound to, if they all are.
    pub(super) lease: Option<i64>,
}

impl Session {
    /// When the round works on a lease that is not the one the views were written with (a
    /// new lease, or a write that failed): every view (and the node's round) is due again,
    /// bound to it.
    pub(super) fn rebind_views(&mut self, machine: &Machine) {
        let lease = machine.lease();
        if machine.working() && lease.is_some() && lease != self.out.lease {
            self.out.lease = lease;
            self.out.due = self.out.views.keys().cloned().collect();
            self.out.round.1 = self.out.round.0.is_some();
        }
    }

    /// Takes what the registry left in the lane and writes up to [`VIEWS_PER_TXN`] of the
    /// views due in one transaction, bound to the lease (a view to delete, deleted), and
    /// the node's round with the last of them. If the write fails, everything is due again
    /// once the next round works.
    pub(super) async fn write_views(&mut self, clock: &mut Clock<'_>) -> Option<Event> {
        let (waiting, round) = self.lane.take();
        for (id, view) in waiting {
            self.out.views.insert(id.clone(), view.map(|v| v.to_json()));
            self.out.due.insert(id);
        }
        if let Some(round) = round {
            self.out.round = (Some(round.to_json()), true);
        }
        let lease = self.out.lease?;
        let chunk: BTreeSet<String> = self.out.due.iter().take(VIEWS_PER_TXN).cloned().collect();
        // The round goes with the last views before it, never ahead of them.
        let with_round = self.out.round.1 && chunk.len() == self.out.due.len();
        if chunk.is_empty() && !with_round {
            return None;
        }
        let node = &self.effects.settings.node;
        let mut ops: Vec<TxnOp> = chunk
            .iter()
            .map(|id| {
                let key = format!("{}{node}/{id}", self.effects.views_prefix());
                match &self.out.views[id] {
                    Some(json) => {
                        TxnOp::put(key, json.clone(), Some(PutOptions::new().with_lease(lease)))
                    }
                    None => TxnOp::delete(key, None),
                }
            })
            .collect();
        if let (true, Some(json)) = (with_round, &self.out.round.0) {
            let key = format!("{}{node}", self.effects.rounds_prefix());
            let put = PutOptions::new().with_lease(lease);
            ops.push(TxnOp::put(key, json.clone(), Some(put)));
        }
        let Some(link) = self.link.as_mut() else {
            self.out.lease = None;
            return Some(RoundError::NotConnected.event());
        };
        let txn = Txn::new().and_then(ops);
        if let Err(e) = clock.run(&mut self.effects, link.client.txn(txn)).await {
            self.out.lease = None;
            return Some(e.event());
        }
        self.out.due.retain(|id| !chunk.contains(id));
        // A view deleted is not written again with a new lease.
        self.out
            .views
            .retain(|id, json| json.is_some() || !chunk.contains(id));
        self.out.round.1 &= !with_round;
        None
    }
}
