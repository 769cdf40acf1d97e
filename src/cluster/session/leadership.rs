//! Leadership and writes: the campaign for the leader key, the leader's fenced writes of
//! its records, anyone's writes of maintenance windows (compared with the revision the
//! node last saw), and the resignation of a stopping leader. What they mean for the
//! session (leading, deposed) is the machine's to decide; these are the calls.

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use std::time::Instant;
use tracing::{error, info, warn};

use super::machine::{Campaign, Event};
use super::{Clock, LeaderValue, RoundError, Session};
use crate::cluster::record::{delivered_to_json, windows_to_json};
use crate::cluster::{ServiceRecord, WindowsError, Write};

impl Session {
    /// Tries to become leader: creates the leader key if it is absent. A node whose
    /// services differ from the leader's says so and does not campaign.
    pub(super) async fn campaign(
        &mut self,
        lease: i64,
        clock: &mut Clock<'_>,
    ) -> Result<Option<Event>, RoundError> {
        let key = self.effects.key("leader");
        let digest = self.digest.lock().expect("digest lock").clone();
        let value = serde_json::to_vec(&LeaderValue {
            node: self.effects.settings.node.clone(),
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
        let Some(link) = self.link.as_mut() else {
            return Err(RoundError::NotConnected);
        };
        let response = clock.run(&mut self.effects, link.client.txn(txn)).await?;
        if response.succeeded() {
            let term = response.header().map_or(0, |h| h.revision());
            return Ok(Some(Event::Campaigned(Campaign::Elected { term })));
        }
        let lost = Some(Event::Campaigned(Campaign::Lost));
        let Some(current) = response.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
            _ => None,
        }) else {
            return Ok(lost);
        };
        let Ok(leader) = serde_json::from_slice::<LeaderValue>(current.value()) else {
            warn!(key = %key, "the leader key holds something servicewatch did not write; waiting for it to go");
            return Ok(lost);
        };
        if leader.token == self.token && current.lease() == lease {
            // This process's own key, from before a reconnection on the same lease.
            let term = current.create_revision();
            return Ok(Some(Event::Campaigned(Campaign::StillOurs { term })));
        }
        self.compare_services(&leader, &digest);
        Ok(lost)
    }

    /// Says when this node's services start or stop differing from the leader's.
    fn compare_services(&mut self, leader: &LeaderValue, digest: &str) {
        let mismatch = leader.digest != digest;
        if mismatch == self.effects.mismatch {
            return;
        }
        self.effects.mismatch = mismatch;
        let metrics = &self.effects.metrics.cluster;
        metrics.config_mismatch.set(i64::from(mismatch));
        if mismatch {
            error!(leader = %leader.node, "this node's services differ from the leader's; it will not campaign until they match (give every node the same [[service]] tables and reload)");
        } else {
            info!(leader = %leader.node, "this node's services match the leader's again");
        }
    }

    /// Gives up the lease (the daemon stops). Best effort: if etcd does not hear it, the
    /// lease runs out instead.
    pub(super) async fn revoke(&mut self, lease: i64, clock: &mut Clock<'_>) {
        let revoked = match self.link.as_mut() {
            Some(link) => clock
                .run(&mut self.effects, link.client.lease_revoke(lease))
                .await
                .is_ok(),
            None => false,
        };
        info!(node = %self.effects.settings.node, revoked, "stopping: gave up the lease; another node takes over");
    }

    /// Does what the registry asked for; the event it led to for the machine, if any.
    pub(super) async fn write(&mut self, write: Write, clock: &mut Clock<'_>) -> Option<Event> {
        let outcome = match write {
            Write::Record { id, record } => {
                return self.write_record(id, record, false, clock).await;
            }
            Write::Delivered { receiver, revision } => {
                self.write_delivered(&receiver, revision, clock).await
            }
            Write::Token {
                change,
                deadline,
                done,
            } => return self.write_token(change, deadline, done, clock).await,
            Write::Revision { done } => {
                let read = self.revision(clock).await;
                let _ = done.send(read.as_ref().ok().copied());
                read.map(|_| None)
            }
            Write::Resign { done } => {
                for action in clock.machine.handle(Instant::now(), Event::Resigning) {
                    self.perform(action, clock).await;
                }
                let _ = done.send(());
                Ok(None)
            }
            Write::Windows {
                id,
                windows,
                expected,
                deadline,
                done,
            } => {
                let outcome = if Instant::now() >= deadline {
                    Ok(Err(WindowsError::Unreachable))
                } else {
                    self.write_windows(&id, &windows, expected, clock).await
                };
                let answer = match &outcome {
                    Ok(answer) => answer.clone(),
                    Err(_) => Err(WindowsError::Unreachable),
                };
                if let Some(done) = done {
                    let _ = done.send(answer);
                }
                outcome.map(|_| None)
            }
        };
        outcome.unwrap_or_else(|e| Some(e.event()))
    }

    /// etcd's current revision.
    async fn revision(&mut self, clock: &mut Clock<'_>) -> Result<i64, RoundError> {
        let key = self.effects.key("leader");
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        let read = link
            .client
            .get(key, Some(GetOptions::new().with_count_only()));
        let read = clock.run(&mut self.effects, read).await?;
        Ok(read.header().map_or(0, |h| h.revision()))
    }

    /// Stores `windows` if the key is still at `expected`: the revision that stored them,
    /// or the one at which etcd refused.
    async fn write_windows(
        &mut self,
        id: &str,
        windows: &[crate::domain::maintenance::Window],
        expected: i64,
        clock: &mut Clock<'_>,
    ) -> Result<Result<i64, WindowsError>, RoundError> {
        let key = format!("{}{id}", self.effects.maintenance_prefix());
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                expected,
            )])
            .and_then([TxnOp::put(key, windows_to_json(windows), None)]);
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        let response = clock.run(&mut self.effects, link.client.txn(txn)).await?;
        let revision = response.header().map_or(0, |h| h.revision());
        Ok(if response.succeeded() {
            Ok(revision)
        } else {
            Err(WindowsError::Changed { revision })
        })
    }

    /// Stores a receiver's delivered revision if this node still leads. Not kept for a
    /// retry when the call fails: the next delivery stores a newer one, and a successor that
    /// misses it only sends some events twice (each with its key).
    async fn write_delivered(
        &mut self,
        receiver: &str,
        revision: i64,
        clock: &mut Clock<'_>,
    ) -> Result<Option<Event>, RoundError> {
        let Some(term) = clock.machine.term() else {
            return Ok(None);
        };
        let key = format!("{}{receiver}", self.effects.alerts_prefix());
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.effects.key("leader"),
                CompareOp::Equal,
                term,
            )])
            .and_then([TxnOp::put(key, delivered_to_json(revision), None)]);
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        clock.run(&mut self.effects, link.client.txn(txn)).await?;
        Ok(None)
    }

    /// Writes one record if this node still leads; a refusal deposes it. A record whose
    /// call failed is kept for the next round; `again`: this is that second try, made only
    /// if the first did not land (only the leader writes records, so reading first is
    /// enough to tell).
    pub(super) async fn write_record(
        &mut self,
        id: String,
        record: ServiceRecord,
        again: bool,
        clock: &mut Clock<'_>,
    ) -> Option<Event> {
        let term = clock.machine.term()?;
        match self.put_record(&id, &record, term, again, clock).await {
            Ok(written) => written,
            Err(e) => {
                self.unsent = Some((id, record));
                Some(e.event())
            }
        }
    }

    async fn put_record(
        &mut self,
        id: &str,
        record: &ServiceRecord,
        term: i64,
        again: bool,
        clock: &mut Clock<'_>,
    ) -> Result<Option<Event>, RoundError> {
        let key = format!("{}{id}", self.effects.services_prefix());
        let json = record.to_json();
        let link = self.link.as_mut().ok_or(RoundError::NotConnected)?;
        if again {
            let stored = clock
                .run(&mut self.effects, link.client.get(key.clone(), None))
                .await?;
            if stored.kvs().first().is_some_and(|kv| kv.value() == json) {
                return Ok(None);
            }
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.effects.key("leader"),
                CompareOp::Equal,
                term,
            )])
            .and_then([TxnOp::put(key, json, None)]);
        if clock
            .run(&mut self.effects, link.client.txn(txn))
            .await?
            .succeeded()
        {
            self.effects.metrics.cluster.writes.inc();
            return Ok(None);
        }
        self.effects.metrics.cluster.writes_refused.inc();
        warn!(service = %id, "write refused: another node leads now; this one stops its monitors");
        Ok(Some(Event::WriteRefused))
    }
}
