//! Leadership and writes: the campaign for the leader key, the leader's fenced writes of
//! its records, anyone's writes of maintenance windows (compared with the revision the
//! node last saw), and the resignation of a stopping leader.

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use std::time::Instant;
use tracing::{error, info, warn};

use super::{LeaderValue, RoundError, Session};
use crate::cluster::record::windows_to_json;
use crate::cluster::{ClusterEvent, ServiceRecord, WindowsError, Write};

impl Session {
    /// Tries to become leader: creates the leader key if it is absent. A node whose
    /// services differ from the leader's says so and does not campaign.
    pub(super) async fn campaign(
        &mut self,
        client: &mut Client,
        lease: i64,
    ) -> Result<(), RoundError> {
        let key = self.key("leader");
        let digest = self.inbox.digest.lock().expect("digest lock").clone();
        let value = serde_json::to_vec(&LeaderValue {
            node: self.inbox.settings.node.clone(),
            token: self.token.clone(),
            digest: digest.clone(),
        })
        .expect("a leader value serializes");
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let response = self.deadline(client.txn(txn)).await?;
        if response.succeeded() {
            let term = response.header().map_or(0, |h| h.revision());
            self.lead(term, "elected");
            return Ok(());
        }
        let Some(current) = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
            _ => None,
        }) else {
            return Ok(());
        };
        let Ok(leader) = serde_json::from_slice::<LeaderValue>(current.value()) else {
            warn!(key = %key, "the leader key holds something servicewatch did not write; waiting for it to go");
            return Ok(());
        };
        if leader.token == self.token && current.lease() == lease {
            // This process's own key, from before a reconnection on the same lease.
            self.lead(
                current.create_revision(),
                "still leading after reconnecting",
            );
            return Ok(());
        }
        let mismatch = leader.digest != digest;
        if mismatch != self.mismatch {
            self.mismatch = mismatch;
            self.metrics
                .cluster
                .config_mismatch
                .set(i64::from(mismatch));
            if mismatch {
                error!(leader = %leader.node, "this node's services differ from the leader's; it will not campaign until they match (give every node the same [[service]] tables and reload)");
            } else {
                info!(leader = %leader.node, "this node's services match the leader's again");
            }
        }
        Ok(())
    }

    fn lead(&mut self, term: i64, how: &str) {
        if self.mismatch {
            // Nobody else leads: this node's services are the cluster's now.
            self.mismatch = false;
            self.metrics.cluster.config_mismatch.set(0);
        }
        self.term = Some(term);
        self.inbox.status.set_leading(true);
        self.metrics.cluster.leader.set(1);
        self.metrics.cluster.elections_won.inc();
        info!(node = %self.inbox.settings.node, term, "{how}: this node leads; it runs the monitors and writes the services' states");
        self.tell(ClusterEvent::Leading(true));
    }

    /// Writes what the registry asked for.
    pub(super) async fn write(
        &mut self,
        client: &mut Client,
        write: Write,
    ) -> Result<(), RoundError> {
        match write {
            Write::Record { id, record } => self.write_record(client, id, record).await,
            Write::Revision { done } => {
                let read = self
                    .deadline(client.get(
                        self.key("leader"),
                        Some(GetOptions::new().with_count_only()),
                    ))
                    .await;
                let _ = done.send(
                    read.as_ref()
                        .ok()
                        .map(|r| r.header().map_or(0, |h| h.revision())),
                );
                read.map(|_| ())
            }
            Write::Resign { done } => {
                self.resigned = true;
                if let Some(lease) = self.lease.take() {
                    // Best effort: if etcd does not hear it, the lease runs out instead.
                    let revoked = self.deadline(client.lease_revoke(lease)).await;
                    info!(node = %self.inbox.settings.node, revoked = revoked.is_ok(), "stopping: gave up the lease; another node takes over");
                }
                self.depose();
                let _ = done.send(());
                Ok(())
            }
            Write::Windows {
                id,
                windows,
                expected,
                deadline,
                done,
            } => {
                let answer = |outcome| {
                    if let Some(done) = done {
                        let _ = done.send(outcome);
                    }
                };
                if Instant::now() >= deadline {
                    answer(Err(WindowsError::Unreachable));
                    return Ok(());
                }
                let key = format!("{}{id}", self.maintenance_prefix());
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.clone(),
                        CompareOp::Equal,
                        expected,
                    )])
                    .and_then([TxnOp::put(key, windows_to_json(&windows), None)]);
                match self.deadline(client.txn(txn)).await {
                    Ok(response) if response.succeeded() => {
                        answer(Ok(response.header().map_or(0, |h| h.revision())))
                    }
                    Ok(refused) => answer(Err(WindowsError::Changed {
                        revision: refused.header().map_or(0, |h| h.revision()),
                    })),
                    Err(e) => {
                        answer(Err(WindowsError::Unreachable));
                        return Err(e);
                    }
                }
                Ok(())
            }
        }
    }

    /// Writes one record if this node still leads; a refusal deposes it.
    async fn write_record(
        &mut self,
        client: &mut Client,
        id: String,
        record: ServiceRecord,
    ) -> Result<(), RoundError> {
        let Some(term) = self.term else {
            return Ok(());
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key("leader"),
                CompareOp::Equal,
                term,
            )])
            .and_then([TxnOp::put(
                format!("{}{id}", self.services_prefix()),
                record.to_json(),
                None,
            )]);
        if self.deadline(client.txn(txn)).await?.succeeded() {
            self.metrics.cluster.writes.inc();
        } else {
            self.metrics.cluster.writes_refused.inc();
            warn!(service = %id, "write refused: another node leads now; this one stops its monitors");
            self.depose();
        }
        Ok(())
    }

    pub(super) fn depose(&mut self) {
        if self.term.take().is_some() {
            self.inbox.status.set_leading(false);
            self.metrics.cluster.leader.set(0);
            self.tell(ClusterEvent::Leading(false));
        }
    }
}
