//! One supervised service, as the registry holds it: its spec, the last reported health of
//! each of its servers, the assessment those give, and the resource published from it.

use std::sync::Arc;
use std::time::SystemTime;

use actix::Addr;
use tracing::debug;

use crate::cluster::{ServerRecord, ServerView, ServiceRecord, View};
use crate::config::services::ServiceSpec;
use crate::domain::health::Health;
use crate::domain::maintenance::{Window, effective};
use crate::domain::roles::SaidRole;
use crate::domain::service::{Part, Role, ServiceState};
use crate::domain::state::{Assessment, assess};
use crate::domain::switchover::{Cause, InMaintenance, cause, switchover};
use crate::history::Change;
use crate::instances::Instances;
use crate::monitor::ServerMonitor;
use crate::snapshot::PublishedService;

pub(super) use super::transition::{Transition, serving_label};

/// One backend server of a service.
pub(super) struct Server {
    pub part: Part,
    /// Its last reported health; what a restarted monitor resumes from.
    pub health: Health,
    /// What it last said of its role (for a service with a role check).
    pub said: SaidRole,
    /// The generation of its current monitor.
    pub generation: u64,
    pub monitor: Option<Addr<ServerMonitor>>,
    /// Whether this node's own monitor has reported on it since this node began running
    /// monitors: `health` is then evidence, not what was stored (a new leader resumes
    /// every server's stored health, but decides only once it has seen each one itself).
    pub confirmed: bool,
    /// On a cluster: what this node's own monitor last saw of it, its vote.
    pub own: Option<ServerView>,
    /// On a cluster: since when the live nodes disagree about it, while they do.
    pub disagreeing: Option<std::time::Instant>,
}

/// One supervised service.
pub(super) struct Tracked {
    pub spec: Arc<ServiceSpec>,
    pub assessment: Assessment,
    /// Since when the state (not the serving instance) holds.
    pub since: SystemTime,
    pub published: Arc<PublishedService>,
    pub servers: Vec<Server>,
    /// What each server's monitor last saw, in the order of `servers`.
    pub instances: Arc<Instances>,
    /// Whether anything is decided yet, and on whose evidence.
    pub phase: Phase,
    /// The state stored in the history before servicewatch started, and since when: when
    /// the first probe round confirms it, `since` keeps the stored time, so that a restart
    /// is invisible to clients.
    pub resumed: Option<(ServiceState, SystemTime, Option<Role>)>,
    /// The maintenance windows of this service holding now (on a cluster node: as stored in
    /// etcd, where the leader removes those that have ended).
    pub windows: Vec<Window>,
    /// On a cluster node: what etcd last held for the service, which is what the node
    /// publishes (the leader's own decisions go out only once etcd has them).
    pub replica: Option<Replica>,
    /// Why the decision now held moved the serving instance, if it did: written in the
    /// record, so that a follower counts the switchover with the cause its leader saw (a
    /// follower learns of a window before the decision it causes, and cannot tell).
    pub switchover: Option<Cause>,
    /// When the serving instance last moved, as written in the record that moved it: what
    /// the status page shows ("on backup since 14:02"), which `since` (the state's) is not.
    /// Unknown until this node sees a move itself (a restart does not know when the last
    /// one was).
    pub serving_since: Option<SystemTime>,
    /// On a cluster: each live node's view of the servers, by node, as etcd holds them.
    pub views: std::collections::BTreeMap<String, View>,
}

/// Where a service stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Nothing decided since the start (or since a reload added it): held back from lists,
    /// snapshots and notifications, since "Inactive" would only mean "not looked at yet".
    Pending,
    /// Decided, but not from what this node's own monitors saw of every server since they
    /// started: by the monitors before a reload that changed the service, by the leader (a
    /// follower), or by a predecessor (a new leader's first round). The decision stands
    /// until every server has been seen.
    Decided,
    /// Decided from this node's own probes of every server.
    Confirmed,
}

impl Phase {
    /// A decision was taken over from elsewhere.
    fn decided(self) -> Phase {
        match self {
            Phase::Pending | Phase::Decided => Phase::Decided,
            Phase::Confirmed => Phase::Confirmed,
        }
    }
}

/// A service as etcd holds it, published from there.
pub(super) struct Replica {
    pub record: ServiceRecord,
    pub revision: i64,
    pub published: Arc<PublishedService>,
}

impl Tracked {
    /// A service whose servers are not probed yet and whose state is not known; `stored`:
    /// its last change in the history, if any. Its serving instance starts as the stored
    /// one, so that the first probe round does not move it (a pair does not fail back).
    pub fn pending(
        spec: ServiceSpec,
        now: SystemTime,
        stored: Option<&Change>,
        windows: Vec<Window>,
    ) -> Self {
        let serving = stored
            .and_then(|c| c.serving)
            .filter(|role| *role == Role::Primary || spec.pair.backup.is_some());
        let assessment = Assessment {
            serving,
            ..Assessment::INITIAL
        };
        let mut tracked = Tracked::new(spec, assessment, now, Phase::Pending, windows);
        tracked.resumed = stored.map(|c| (c.state, c.state_since, serving));
        tracked
    }

    /// A service whose servers are not probed yet by their new monitors, still published
    /// as `assessment` since `since` (what its previous monitors found), if that was known.
    pub fn resuming(spec: ServiceSpec, previous: &Tracked) -> Self {
        let phase = match previous.phase {
            Phase::Pending => Phase::Pending,
            Phase::Decided | Phase::Confirmed => Phase::Decided,
        };
        let mut tracked = Tracked::new(
            spec,
            previous.assessment,
            previous.since,
            phase,
            previous.windows.clone(),
        );
        tracked.resumed = previous.resumed;
        tracked.serving_since = previous.serving_since;
        tracked
    }

    fn new(
        spec: ServiceSpec,
        assessment: Assessment,
        since: SystemTime,
        phase: Phase,
        windows: Vec<Window>,
    ) -> Self {
        let spec = Arc::new(spec);
        let servers = spec
            .servers()
            .map(|(part, _)| Server {
                part,
                health: Health::Unknown,
                said: SaidRole::Unknown,
                generation: 0,
                monitor: None,
                confirmed: false,
                own: None,
                disagreeing: None,
            })
            .collect();
        let instances = Arc::new(Instances::of(&spec, spec.servers()));
        let published = Arc::new(PublishedService::of(
            &spec,
            &assessment,
            since,
            &windows,
            instances.clone(),
        ));
        Tracked {
            spec,
            assessment,
            since,
            published,
            replica: None,
            servers,
            instances,
            resumed: None,
            windows,
            phase,
            switchover: None,
            serving_since: None,
            views: Default::default(),
        }
    }

    /// Whether anything is decided for the service yet.
    pub fn is_known(&self) -> bool {
        self.phase != Phase::Pending
    }

    /// Whether this node's own monitors have seen every server since they started.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Confirmed
    }

    /// What the node publishes for the service, if anything yet: what was last committed
    /// for it (decided by this node alone, or by the leader and stored in etcd).
    pub fn shown(&self) -> Option<&Arc<PublishedService>> {
        self.replica.as_ref().map(|r| &r.published)
    }

    /// When asking for a pending service again is worth it: its slowest check's timeout
    /// (every server's first probe ends by then), rounded up to a second.
    pub fn retry_after_secs(&self) -> u64 {
        let slowest = self
            .spec
            .servers()
            .map(|(_, instance)| instance.check.timeout)
            .max()
            .unwrap_or_default();
        (slowest.as_millis().div_ceil(1000) as u64).max(1)
    }

    /// Publishes the service as `assessment`, since `since`.
    ///
    /// Rendering is for a service not shown yet (pending) or leaving; a decision of a
    /// known service is rendered where it is published, once ([`Tracked::decide`]).
    pub fn set(&mut self, assessment: Assessment, since: SystemTime) {
        self.assessment = assessment;
        self.since = since;
        self.published = Arc::new(PublishedService::of(
            &self.spec,
            &assessment,
            since,
            &self.windows,
            self.instances.clone(),
        ));
    }

    /// Takes `assessment`, since `since`, as the service's decision, without rendering it:
    /// what is published is rendered when the decision is applied from the ledger.
    fn decide(&mut self, assessment: Assessment, since: SystemTime) {
        self.assessment = assessment;
        self.since = since;
    }

    /// The record a leader writes for the service as it decided it.
    pub fn record(&self, node: &str, reason: &str, now: SystemTime) -> ServiceRecord {
        ServiceRecord {
            assessment: self.assessment,
            since: self.since,
            servers: self
                .servers
                .iter()
                .map(|s| ServerRecord {
                    part: s.part.metric_label(),
                    health: s.health,
                    said: s.said,
                })
                .collect(),
            reason: reason.to_string(),
            node: node.to_string(),
            written: now,
            switchover: self.switchover,
        }
    }

    /// Takes the decision stored in etcd as this node's own: its assessment, since when,
    /// and each server's health and said role, so that monitors started on this node (when
    /// it becomes leader) resume from them instead of deciding again from their first
    /// probes (which would fail back a pair, or flash Inactive).
    pub fn adopt(&mut self, record: &ServiceRecord) {
        for server in &mut self.servers {
            let label = server.part.metric_label();
            if let Some(stored) = record.servers.iter().find(|s| s.part == label) {
                server.health = stored.health;
                server.said = stored.said;
            }
        }
        self.resumed = None;
        self.phase = self.phase.decided();
        self.switchover = record.switchover;
        self.decide(record.assessment, record.since);
    }

    /// Takes one server's new health and role, if the report comes from its current
    /// monitor, and assesses the service again. Returns the transition, if the assessment changed or is
    /// the service's first; `now` becomes the `since` of a new state. The first assessment
    /// after every server has been seen makes the service ready (and known).
    pub fn observe(
        &mut self,
        part: Part,
        generation: u64,
        health: Health,
        said: SaidRole,
        now: SystemTime,
    ) -> Option<Transition> {
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.part == part && s.generation == generation)?;
        server.health = health;
        server.said = said;
        server.confirmed = true;
        self.assess_again(now, self.pair_maintenance())
    }

    /// What the current monitor of the server playing `part` last reported (its health and
    /// said role), if `generation` is that monitor's.
    pub fn server(&self, part: Part, generation: u64) -> Option<(Health, SaidRole)> {
        self.servers
            .iter()
            .find(|s| s.part == part && s.generation == generation)
            .map(|s| (s.health, s.said))
    }

    /// This node starts running the service's monitors (it became leader): what it holds of
    /// each server was stored by another node, and is no evidence until its own monitor
    /// reports. The stored decision stands until then.
    pub fn unconfirm(&mut self) {
        if self.phase == Phase::Confirmed {
            self.phase = Phase::Decided;
        }
        for server in &mut self.servers {
            server.confirmed = false;
        }
    }

    /// Replaces the service's maintenance windows (those holding now), assesses it again
    /// and renders it anew. Returns the transition, if the assessment changed, and whether
    /// the resource changed at all (the maintenance it shows, say).
    pub fn maintain(
        &mut self,
        windows: Vec<Window>,
        now: SystemTime,
    ) -> (Option<Transition>, bool) {
        if windows == self.windows {
            return (None, false);
        }
        let maintenance = self.pair_maintenance();
        self.windows = windows;
        let before = self.published.json.clone();
        let transition = self.assess_again(now, maintenance);
        if transition.is_none() {
            self.set(self.assessment, self.since);
        }
        (transition, self.published.json != before)
    }

    /// Whether the server playing `part` is in maintenance.
    pub(super) fn in_maintenance(&self, part: Part) -> bool {
        let label = part.metric_label();
        self.windows
            .iter()
            .any(|w| w.instance.as_deref() == Some(label.as_str()))
    }

    /// Which instances of the pair are in maintenance.
    fn pair_maintenance(&self) -> InMaintenance {
        InMaintenance {
            primary: self.in_maintenance(Part::Pair(Role::Primary)),
            backup: self.in_maintenance(Part::Pair(Role::Backup)),
        }
    }

    /// Each server's health as the rules see it: one in maintenance counts as down.
    pub fn healths(&self) -> Vec<(Part, Health)> {
        self.servers
            .iter()
            .map(|s| (s.part, effective(s.health, self.in_maintenance(s.part))))
            .collect()
    }

    /// The Cassandra quorum of a Provisioning service, `None` for the others.
    pub fn quorum(&self) -> Option<usize> {
        self.spec.cassandra.as_ref().map(|c| c.quorum)
    }

    /// Assesses the service from its servers' last reports, once this node has seen every
    /// server itself: a decision mixing fresh evidence with a stored health (a new
    /// leader's first round) could show a state nobody observed. `maintenance`: the pair's
    /// instances in maintenance before this decision, to tell why the serving instance
    /// moved, if it did.
    fn assess_again(&mut self, now: SystemTime, maintenance: InMaintenance) -> Option<Transition> {
        if !self.servers.iter().all(|s| s.confirmed) {
            return None;
        }
        let healths = self.healths();
        let quorum = self.quorum();
        let said_by = |role| {
            self.servers
                .iter()
                .find(|s| s.part == Part::Pair(role))
                .map_or(SaidRole::Unknown, |s| s.said)
        };
        let said = self
            .spec
            .pair
            .asks_roles()
            .then(|| [said_by(Role::Primary), said_by(Role::Backup)]);
        let after = assess(
            self.assessment,
            &healths,
            self.spec.pair.failback,
            quorum,
            said,
        )?;
        if self.phase != Phase::Confirmed {
            debug!(service = %self.spec.id, state = %after.state, serving = serving_label(after.serving), "first probe round done");
        }
        let before = self.assessment;
        let first = self.phase == Phase::Pending;
        self.phase = Phase::Confirmed;
        if after == before && !first {
            return None;
        }
        // Left in place: applying the decision tells from it whether the history already
        // holds it.
        let resumed = self
            .resumed
            .filter(|(state, _, _)| first && *state == after.state);
        let since = match resumed {
            // The first round confirms the state stored before a restart: it holds since
            // then, as far as anyone can tell.
            Some((_, stored_since, _)) => stored_since,
            None if after.state != before.state || first => now,
            None => self.since,
        };
        self.decide(after, since);
        self.switchover = switchover(before.serving, after.serving)
            .map(|(from, to)| cause(from, to, maintenance, self.pair_maintenance()));
        Some(Transition {
            before,
            after,
            first,
            confirmed: resumed.is_some() && after.serving == before.serving,
            cause: self.switchover,
        })
    }
}

/// Each server of a service as metrics label it: its instance label and its check's name.
pub(super) fn metric_servers(spec: &ServiceSpec) -> Vec<(String, &'static str)> {
    spec.servers()
        .map(|(part, instance)| (part.metric_label(), instance.check.kind.name()))
        .collect()
}

#[cfg(test)]
#[path = "tracked_tests.rs"]
mod tests;
