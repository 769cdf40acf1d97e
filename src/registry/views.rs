//! Many eyes: on a cluster every node probes every server and publishes its view of each
//! service's servers to etcd (`views/{node}/{service}`, bound to its lease); the leader
//! decides each server's health from the views of the live nodes, by the configured
//! quorum ([`crate::domain::quorum`]), through the same rules and the one commit path.
//!
//! A node alone has no views: its own monitor's report is the server's health, as always.
//!
//! Sparse views ([`super::rounds`]): a node writes a view only of a service of which it
//! sees a server that is not up, and deletes it when all are up again (a delete is
//! cheaper than a put, and the next rule reads it the same). Once every server it monitors
//! has a first health, it writes one key of its own, `rounds/{node}` (bound to its lease),
//! listing the services it has seen every server of. The leader reads a missing view of a
//! service that a node's round lists as "every server up"; a node with no round, or whose
//! round does not list the service, abstains. So a start writes one round and a view of
//! each service not all up, instead of one view of every service per node; and a leader
//! that alone cannot reach a server never decides it down alone, since the others' silence
//! is a vote only once their round says they looked.
//!
//! A reload: the round lists services, not just "done", so that a service added later
//! is no more read as up by a node that has not probed it (or is not configured with it:
//! the nodes' configurations may differ for a while). The node abstains for it until its
//! first health, then rewrites its round with it (or writes its view, if not all up); a
//! service removed leaves the round, and its view is deleted. The cost is a round key the
//! size of the list of services (some 30 kB at 2,000), written once at start and once per
//! new service's first health after a reload, where an explicit `unknown` view would have
//! cost a put and a delete per service and a window in which a missing view (the node not
//! reloaded yet) reads as up.
//!
//! Every node keeps the views etcd holds (its own echo included) and those the rounds
//! imply, shows them in the instance detail, and says when the nodes disagree about
//! whether a server is down and when they agree again (a log line,
//! `servicewatch_server_disagreement`).

use std::time::{Instant, SystemTime};

use actix::prelude::*;
use tracing::{info, warn};

use super::Registry;
use super::rounds::read;
use crate::cluster::{ServerView, View};
use crate::domain::health::Health;
use crate::domain::quorum::{combine, disagree};
use crate::domain::service::Part;
use crate::instances::NodeView;
use crate::metrics::InstanceLabels;
use crate::monitor::ServerChanged;

impl Registry {
    /// This node's monitor reported on a server: its vote changes, and on a cluster its
    /// view of the service is published. False when the report is from a replaced monitor.
    pub(super) fn saw(&mut self, index: usize, msg: &ServerChanged) -> bool {
        let tracked = &mut self.services[index];
        let Some(server) = tracked
            .servers
            .iter_mut()
            .find(|s| s.part == msg.part && s.generation == msg.generation)
        else {
            return false;
        };
        let first = server.own.is_none();
        let since = match &server.own {
            Some(own) if own.health == msg.health => own.since,
            _ => SystemTime::now(),
        };
        server.own = Some(ServerView {
            part: msg.part.metric_label(),
            health: msg.health,
            since,
            check: msg.reason.clone(),
        });
        self.publish_view(index, first);
        true
    }

    /// The health of the server playing `part` as the live nodes see it: this node's
    /// `own` vote and each other live node's, combined by the quorum. Alone: `own`.
    pub(super) fn voted(&self, index: usize, part: Part, own: Health) -> (Health, Vec<Health>) {
        let Some((cluster, quorum)) = self.ledger.cluster().and_then(|c| Some((c, c.quorum()?)))
        else {
            return (own, vec![own]);
        };
        let label = part.metric_label();
        let mut votes = vec![own];
        for (node, view) in &self.services[index].views {
            if node == cluster.node() {
                continue;
            }
            if let Some(seen) = view.servers.iter().find(|s| s.part == label) {
                votes.push(seen.health);
            }
        }
        (combine(quorum, &votes), votes)
    }

    /// A node's view of service `id` arrived from etcd, or left it (`None`: the node is
    /// gone). Every node shows it; the leader decides again.
    pub(super) fn take_view(
        &mut self,
        id: &str,
        node: String,
        view: Option<View>,
        ctx: &mut Context<Self>,
    ) {
        let Some(&index) = self.positions.get(id) else {
            return;
        };
        let own = self
            .ledger
            .cluster()
            .is_some_and(|c| c.node() == node.as_str());
        // A view deleted by a node that still has its round: it sees every server up again.
        let (parts, round) = (self.parts(index), self.of_node(&node));
        let view = read(&node, id, view, round, &parts, SystemTime::now());
        let views = &mut self.services[index].views;
        match view {
            Some(view) => views.insert(node, view),
            None => views.remove(&node),
        };
        self.show_views(index);
        if !own && self.runs_monitors() {
            self.vote_again(index, ctx);
        }
    }

    /// Decides every server of the service at `index` again from the votes, each that this
    /// node's own monitor has seen (the others wait for it, as a new leader's do).
    pub(super) fn vote_again(&mut self, index: usize, ctx: &mut Context<Self>) {
        for slot in 0..self.services[index].servers.len() {
            let server = &self.services[index].servers[slot];
            let Some(own) = &server.own else {
                continue;
            };
            let (part, generation, said) = (server.part, server.generation, server.said);
            let (health, votes) = self.voted(index, part, own.health);
            let server = &self.services[index].servers[slot];
            if server.confirmed && server.health == health {
                continue;
            }
            let seen_down = votes.iter().filter(|v| **v == Health::Down).count();
            let reason = format!(
                "{part}: {health} by the cluster's quorum ({seen_down} of {} nodes see it down)",
                votes.len()
            );
            self.observe_server(index, part, generation, health, said, &reason, ctx);
        }
    }

    /// Shows each server's views in the instance detail, and says when the nodes start or
    /// stop disagreeing about one.
    pub(super) fn show_views(&mut self, index: usize) {
        let tracked = &mut self.services[index];
        for (slot, server) in tracked.servers.iter_mut().enumerate() {
            let label = server.part.metric_label();
            let views: Vec<NodeView> = tracked
                .views
                .iter()
                .filter_map(|(node, view)| {
                    let seen = view.servers.iter().find(|s| s.part == label)?;
                    Some(NodeView {
                        node: node.clone(),
                        health: seen.health,
                        since: seen.since,
                        check: seen.check.clone(),
                    })
                })
                .collect();
            let votes: Vec<Health> = views.iter().map(|v| v.health).collect();
            let said: Vec<String> = views
                .iter()
                .map(|v| format!("{} {}", v.node, v.health))
                .collect();
            tracked.instances.records[slot].set_views(views);
            let gauge = || {
                self.metrics
                    .probes
                    .server_disagreement
                    .get_or_create(&InstanceLabels {
                        service: tracked.spec.id.clone(),
                        instance: label.clone(),
                    })
                    .clone()
            };
            match (disagree(&votes), server.disagreeing) {
                (true, None) => {
                    server.disagreeing = Some(Instant::now());
                    gauge().set(1);
                    warn!(service = %tracked.spec.id, instance = %label, views = %said.join(", "), "the nodes disagree about a server");
                }
                (false, Some(since)) => {
                    server.disagreeing = None;
                    gauge().set(0);
                    info!(service = %tracked.spec.id, instance = %label, views = %said.join(", "), lasted = ?since.elapsed(), "the nodes agree about a server again");
                }
                _ => {}
            }
        }
    }
}
