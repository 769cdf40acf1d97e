//! A service's redundancy gauge (`servicewatch_service_redundant`), set wherever this node
//! learns a server's health or a window: from its own monitors' reports (alone, or leading),
//! from the leader's records (a follower, which adopts every server's health from them), and
//! from maintenance windows (every node). Each node so shows what its own resource shows.
//! And the same view for the status page, asked ([`Standings`]).

use std::time::SystemTime;

use actix::{Handler, Message, MessageResult};

use super::Registry;
use crate::domain::health::Health;
use crate::domain::redundancy::{has_spare, redundancy};
use crate::domain::service::{Part, Role};

impl Registry {
    /// Sets the redundancy gauge of the service at `index` from each of its servers' health,
    /// an instance in maintenance counting as down (it is no spare). A service with no spare
    /// by configuration has no series: nothing to lose, no alert to hold back. While a
    /// server's health is unknown (at start, no series yet; after a reload restarted its
    /// monitors, or a follower not told yet) the last value stands: a monitor restarting
    /// is no news of the service, and an alert on 0 neither resolves nor fires on it.
    pub(super) fn show_redundancy(&self, index: usize) {
        let tracked = &self.services[index];
        let id = &tracked.spec.id;
        let quorum = tracked.quorum();
        let healths = tracked.healths();
        if !has_spare(healths.iter().map(|(part, _)| *part), quorum) {
            self.metrics.services.forget_redundant(id);
            return;
        }
        // With a spare, `None` only while a server's health is unknown.
        if let Some(redundant) = redundancy(&healths, quorum) {
            self.metrics.services.set_redundant(id, redundant);
        }
    }
}

/// Asks how every service stands beyond its state: its servers' health, whether it could
/// lose one more, and since when its serving instance serves. For the status page
/// (`GET /redundancy`), which polls it: a spare's health is not in the service resource
/// (GWS clients would be told of changes that change nothing for them), so it travels
/// neither in snapshots nor in notifications, and a read walks the services once.
#[derive(Message)]
#[rtype(result = "Vec<Standing>")]
pub(crate) struct Standings;

/// How one service stands, as this node last learnt it (every node adopts its leader's
/// view of each server's health with the records).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Standing {
    pub id: String,
    /// The contact-center feature that makes it visible.
    pub feature: String,
    /// `None`: nothing to lose by configuration, or a server's health not known yet.
    pub redundant: Option<bool>,
    pub serving: Option<Role>,
    pub serving_since: Option<SystemTime>,
    /// Each server, its health, and whether a maintenance window holds for it.
    pub servers: Vec<(Part, Health, bool)>,
    /// The Cassandra quorum of a Provisioning service.
    pub quorum: Option<usize>,
}

impl Handler<Standings> for Registry {
    type Result = MessageResult<Standings>;

    fn handle(&mut self, _msg: Standings, _ctx: &mut Self::Context) -> Self::Result {
        let standings = self
            .services
            .iter()
            .filter_map(|t| {
                let shown = t.replica.as_ref()?;
                let quorum = t.quorum();
                let healths = t.healths();
                let spare = has_spare(healths.iter().map(|(part, _)| *part), quorum);
                Some(Standing {
                    id: t.spec.id.clone(),
                    feature: t.spec.feature.clone(),
                    redundant: if spare {
                        redundancy(&healths, quorum)
                    } else {
                        None
                    },
                    serving: shown.record.assessment.serving,
                    serving_since: t.serving_since,
                    servers: t
                        .servers
                        .iter()
                        .map(|s| (s.part, s.health, t.in_maintenance(s.part)))
                        .collect(),
                    quorum,
                })
            })
            .collect();
        MessageResult(standings)
    }
}
