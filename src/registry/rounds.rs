//! Sparse views: a node writes a view only of a service it does not see all up, and one
//! round of its own once every server has a first health; the leader reads the rest from
//! that round (see `views.rs` for why this is sound, and for a reload).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use actix::prelude::*;

use super::Registry;
use crate::cluster::{Round, ServerView, View};
use crate::domain::health::Health;

/// What an implied view says as its check.
const IMPLIED: &str = "no view written: every server up when last probed";

/// The nodes' first rounds as etcd holds them, and what this node wrote of its own.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    /// Each node's round (this node's echo included), by node.
    of: BTreeMap<String, Round>,
    /// The services this node's round covers, once written.
    mine: Option<BTreeSet<String>>,
    /// The services of which this node has written a view (it does not see them all up).
    explicit: BTreeSet<String>,
}

/// Whether a node writes its view of a service, from what it has seen of each server
/// (`None`: not probed yet): only when it sees one that is not up.
pub(super) fn worth_a_view(seen: &[Option<Health>]) -> bool {
    seen.iter().flatten().any(|h| *h != Health::Up)
}

/// The reading rule: node `node`'s view of service `id` (whose servers play `parts`) as
/// the leader counts it. A view etcd holds is the node's word. Without one, a node whose
/// round covers the service sees every server up (since `since`); a node without a round,
/// or whose round does not cover the service (added by a reload, not probed yet),
/// abstains: `None`.
pub(super) fn read(
    node: &str,
    id: &str,
    stored: Option<View>,
    round: Option<&Round>,
    parts: &[String],
    since: SystemTime,
) -> Option<View> {
    if stored.is_some() {
        return stored;
    }
    round.filter(|r| r.services.contains(id))?;
    let servers = parts
        .iter()
        .map(|part| ServerView {
            part: part.clone(),
            health: Health::Up,
            since,
            check: IMPLIED.into(),
        })
        .collect();
    Some(View {
        node: node.to_string(),
        servers,
        implied: true,
    })
}

impl Registry {
    /// Publishes this node's view of the service at `index` after a report (`first`: the
    /// server's first health): written when a server is not up, deleted when all are up
    /// again; and the node's round, when that was the last first health it waited for.
    pub(super) fn publish_view(&mut self, index: usize, first: bool) {
        let Some(cluster) = self.ledger.cluster().filter(|c| c.quorum().is_some()) else {
            return;
        };
        let tracked = &self.services[index];
        let id = tracked.spec.id.to_string();
        let seen: Vec<Option<Health>> = tracked
            .servers
            .iter()
            .map(|s| s.own.as_ref().map(|o| o.health))
            .collect();
        if worth_a_view(&seen) {
            let servers = tracked.servers.iter().filter_map(|s| s.own.clone());
            let view = View {
                node: cluster.node().to_string(),
                servers: servers.collect(),
                implied: false,
            };
            cluster.write_view(&id, Some(view));
            self.rounds.explicit.insert(id);
        } else if self.rounds.explicit.remove(&id) {
            cluster.write_view(&id, None);
        }
        if first {
            self.publish_round();
        }
    }

    /// Writes this node's round once every server it monitors has a first health, and
    /// again when the services it covers change (a reload).
    pub(super) fn publish_round(&mut self) {
        let Some(cluster) = self.ledger.cluster().filter(|c| c.quorum().is_some()) else {
            return;
        };
        let covered: BTreeSet<String> = self
            .services
            .iter()
            .filter(|t| t.servers.iter().all(|s| s.own.is_some()))
            .map(|t| t.spec.id.to_string())
            .collect();
        match &self.rounds.mine {
            None if covered.len() < self.services.len() => return,
            Some(mine) if *mine == covered => return,
            _ => {}
        }
        cluster.write_round(Round {
            since: SystemTime::now(),
            services: covered.clone(),
        });
        self.rounds.mine = Some(covered);
    }

    /// After a reload: the views of the services removed are deleted, the views the nodes'
    /// rounds imply are read for the services added, and this node's round follows.
    pub(super) fn views_reloaded(&mut self, removed: &[String]) {
        if let Some(cluster) = self.ledger.cluster().filter(|c| c.quorum().is_some()) {
            for id in removed {
                if self.rounds.explicit.remove(id) {
                    cluster.write_view(id, None);
                }
            }
        }
        let nodes: Vec<String> = self.rounds.of.keys().cloned().collect();
        for index in 0..self.services.len() {
            if nodes
                .iter()
                .fold(false, |changed, n| self.imply(index, n) | changed)
            {
                self.show_views(index);
            }
        }
        self.publish_round();
    }

    /// Node `node`'s round was written (or left etcd, `None`: the node is gone): the views
    /// it implies are read again, and the leader decides again where they changed.
    pub(super) fn take_round(
        &mut self,
        node: String,
        round: Option<Round>,
        ctx: &mut Context<Self>,
    ) {
        match round {
            Some(round) => self.rounds.of.insert(node.clone(), round),
            None => self.rounds.of.remove(&node),
        };
        let own = self.ledger.cluster().is_some_and(|c| c.node() == node);
        for index in 0..self.services.len() {
            if !self.imply(index, &node) {
                continue;
            }
            self.show_views(index);
            if !own && self.runs_monitors() {
                self.vote_again(index, ctx);
            }
        }
    }

    /// Node `node`'s round, if etcd holds one.
    pub(super) fn of_node(&self, node: &str) -> Option<&Round> {
        self.rounds.of.get(node)
    }

    /// The parts of the servers of the service at `index`, as views name them.
    pub(super) fn parts(&self, index: usize) -> Vec<String> {
        let servers = &self.services[index].servers;
        servers.iter().map(|s| s.part.metric_label()).collect()
    }

    /// What node `node`'s round implies of the service at `index` (an implied view added
    /// or removed; a view etcd holds stays). Whether it changed.
    fn imply(&mut self, index: usize, node: &str) -> bool {
        let parts = self.parts(index);
        let round = self.rounds.of.get(node);
        let tracked = &mut self.services[index];
        match tracked.views.get(node).map(|v| v.implied) {
            Some(false) => false,
            Some(true) if round.is_some_and(|r| r.services.contains(&*tracked.spec.id)) => false,
            Some(true) => tracked.views.remove(node).is_some(),
            None => {
                let since = round.map_or(SystemTime::now(), |r| r.since);
                let implied = read(node, &tracked.spec.id, None, round, &parts, since);
                implied.is_some_and(|view| tracked.views.insert(node.into(), view).is_none())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Degraded as G, Down as D, Unknown as U, Up as P};

    fn round(services: &[&str]) -> Round {
        Round {
            since: SystemTime::UNIX_EPOCH,
            services: services.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn health_of(view: &Option<View>) -> Option<Vec<Health>> {
        view.as_ref()
            .map(|v| v.servers.iter().map(|s| s.health).collect())
    }

    #[test]
    fn a_node_writes_a_view_only_of_what_it_does_not_see_all_up() {
        assert!(!worth_a_view(&[Some(P), Some(P)]), "all up: no view");
        assert!(!worth_a_view(&[Some(P), None]), "not probed yet: no view");
        assert!(!worth_a_view(&[]));
        assert!(worth_a_view(&[Some(P), Some(D)]));
        assert!(
            worth_a_view(&[None, Some(D)]),
            "a server down is said at once"
        );
        assert!(worth_a_view(&[Some(G)]), "degraded is shown, so written");
        assert!(worth_a_view(&[Some(U)]));
    }

    #[test]
    fn a_missing_view_reads_as_all_up_only_with_a_round_that_covers_the_service() {
        let parts = ["primary".to_string(), "backup".to_string()];
        let at = SystemTime::UNIX_EPOCH;
        let covered = round(&["voice"]);
        let implied = read("sw2", "voice", None, Some(&covered), &parts, at);
        assert_eq!(health_of(&implied), Some(vec![P, P]));
        assert!(implied.unwrap().implied);
        assert_eq!(
            read("sw2", "voice", None, None, &parts, at),
            None,
            "no round: abstains"
        );
        assert_eq!(
            read("sw2", "chat", None, Some(&covered), &parts, at),
            None,
            "a service the round does not cover (added by a reload): abstains"
        );
    }

    #[test]
    fn a_view_etcd_holds_is_the_nodes_word_round_or_not() {
        let parts = ["primary".to_string()];
        let at = SystemTime::UNIX_EPOCH;
        let down = View {
            node: "sw2".into(),
            servers: vec![ServerView {
                part: "primary".into(),
                health: D,
                since: at,
                check: "refused".into(),
            }],
            implied: false,
        };
        for r in [None, Some(round(&["voice"]))] {
            let seen = read("sw2", "voice", Some(down.clone()), r.as_ref(), &parts, at);
            assert_eq!(seen, Some(down.clone()));
        }
    }
}
