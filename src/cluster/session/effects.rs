//! What the session's decisions do outside etcd: the node's status (stale, leading, the
//! lease's deadline), its metrics, what the registry is told, and the log lines, worded here
//! from the machine's notes.

use std::sync::Arc;
use std::time::SystemTime;

use actix::Recipient;
use tracing::{debug, error, info, warn};

use super::machine::{Action, Note};
use crate::cluster::record::{delivered_from_json, windows_from_json};
use crate::cluster::{ClusterEvent, ClusterStatus, Round, ServiceRecord, Stored, View};
use crate::config::cluster::ClusterSettings;
use crate::metrics::Metrics;

/// The session's outside world, apart from etcd.
pub(super) struct Effects {
    pub settings: ClusterSettings,
    pub status: Arc<ClusterStatus>,
    pub registry: Recipient<ClusterEvent>,
    pub metrics: Arc<Metrics>,
    /// Whether the last campaign found a leader with other services (said once).
    pub mismatch: bool,
    /// What the last full read found, until the registry is told (once its watch exists).
    pub read: Vec<(String, Stored, i64)>,
    /// Where the cluster's API tokens are applied on this node (`None`: nowhere).
    pub tokens: Option<crate::cluster::tokens::SharedBook>,
    /// The API tokens the last full read found, until it is told.
    pub read_tokens: Vec<crate::auth::ApiTokenRecord>,
    /// Whether this node holds the leadership, and whether it is stale: the `leader`
    /// metric shows a leader in touch with etcd (see [`Effects::show_leader`]).
    pub leading: bool,
    pub stale: bool,
}

impl Effects {
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.settings.prefix)
    }

    pub fn services_prefix(&self) -> String {
        self.key("services/")
    }

    pub fn maintenance_prefix(&self) -> String {
        self.key("maintenance/")
    }

    pub fn alerts_prefix(&self) -> String {
        self.key("alerts/")
    }

    pub fn views_prefix(&self) -> String {
        self.key("views/")
    }

    pub fn rounds_prefix(&self) -> String {
        self.key("rounds/")
    }

    /// The node and service of a view's key, `{prefix}views/{node}/{id}`.
    pub fn view_key<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        key.strip_prefix(&self.views_prefix())?.split_once('/')
    }

    fn endpoint(&self, member: usize) -> &str {
        let endpoints = &self.settings.endpoints;
        &endpoints[member % endpoints.len()]
    }

    /// Does what `action` says, if it is not a call to etcd (those are the loop's).
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Synced {
                revision,
                history_from,
            } => {
                let stored = std::mem::take(&mut self.read);
                self.replace_tokens(revision);
                self.tell(ClusterEvent::Synced {
                    stored,
                    revision,
                    history_from,
                });
            }
            Action::Reached { revision } => {
                self.metrics.cluster.revision.set(revision);
            }
            Action::LeaseUntil(until) => self.status.lease_until(until),
            Action::Stale(stale) => {
                self.status.set_stale(stale);
                self.metrics.cluster.stale.set(i64::from(stale));
                self.stale = stale;
                self.show_leader();
            }
            Action::Lead { term, again } => self.lead(term, again),
            Action::Depose => {
                self.status.set_leading(false);
                self.leading = false;
                self.show_leader();
                self.tell(ClusterEvent::Leading(false));
            }
            Action::Log(note) => self.log(note),
            call => debug!(?call, "not an effect"),
        }
    }

    fn lead(&mut self, term: i64, again: bool) {
        if self.mismatch {
            // Nobody else leads: this node's services are the cluster's now.
            self.mismatch = false;
            self.metrics.cluster.config_mismatch.set(0);
        }
        self.status.set_leading(true);
        self.leading = true;
        self.show_leader();
        self.metrics.cluster.elections_won.inc();
        let how = if again {
            "still leading after reconnecting"
        } else {
            "elected"
        };
        info!(node = %self.settings.node, term, "{how}: this node leads; it runs the monitors and writes the services' states");
        self.tell(ClusterEvent::Leading(true));
    }

    /// The `leader` metric: 1 while this node leads and is in touch with etcd. A leader
    /// that lost its member keeps its term, its monitors and its lease while it reconnects
    /// (see `machine/`), but writes nothing until it is back: once it is stale, the metric
    /// says nobody writes through it, and says 1 again when it is back, without an election.
    fn show_leader(&self) {
        let writes = self.leading && !self.stale;
        self.metrics.cluster.leader.set(i64::from(writes));
    }

    fn log(&self, note: Note) {
        match note {
            Note::Connected {
                member,
                revision,
                outage,
            } => {
                info!(member = %self.endpoint(member), revision, ?outage, "connected to etcd; serving the cluster's states")
            }
            Note::RoundFailed {
                member,
                detail,
                retry_in,
                first: true,
            } => {
                warn!(member = %self.endpoint(member), error = %detail, ?retry_in, "an etcd member failed; this node moves to the next one and keeps serving (stale only if it is not back within an etcd election's time)")
            }
            Note::RoundFailed {
                member,
                detail,
                retry_in,
                first: false,
            } => {
                debug!(member = %self.endpoint(member), error = %detail, ?retry_in, "etcd still unreachable; retrying")
            }
            Note::Lost { member, detail } => {
                error!(member = %self.endpoint(member), error = %detail, "lost etcd: this node serves the states it last knew, marked stale, and retries (the next member, if there are several)")
            }
            Note::CannotReach { member, detail } => {
                error!(member = %self.endpoint(member), endpoints = ?self.settings.endpoints, error = %detail, "cannot reach etcd: this node serves nothing until it does, and retries every member in turn (check [cluster] endpoints and that etcd runs)")
            }
            Note::LeaseExpired { member } => {
                // etcd itself may well be reachable: it is this process that fell behind.
                warn!(member = %self.endpoint(member), "this node's lease expired before it could renew it (was the process paused, or starved of CPU?): it no longer leads, serves the states it last knew marked stale, and rejoins with a new lease")
            }
            Note::Compacted { last, compacted } => {
                info!(
                    ?last,
                    compacted, "etcd has compacted the changes missed; reading every service again"
                )
            }
            Note::Replaying { last, newest } => {
                debug!(
                    last,
                    newest, "replaying the changes missed before serving again"
                )
            }
        }
    }

    /// What is stored at `key`, if it is a record, maintenance windows or a receiver's
    /// delivered revision; otherwise says
    /// why, and skips it. The leader key is neither, and skipped silently.
    pub fn decode(&self, key: &[u8], value: &[u8]) -> Option<(String, Stored)> {
        let key = String::from_utf8_lossy(key);
        let decoded = if let Some(id) = key.strip_prefix(&self.services_prefix()) {
            ServiceRecord::from_json(value).map(|r| (id.to_string(), Stored::Record(r)))
        } else if let Some(id) = key.strip_prefix(&self.maintenance_prefix()) {
            windows_from_json(id, value).map(|w| (id.to_string(), Stored::Windows(w)))
        } else if let Some((node, id)) = self.view_key(&key) {
            View::from_json(node, value).map(|v| (id.to_string(), Stored::View(v)))
        } else if let Some(node) = key.strip_prefix(&self.rounds_prefix()) {
            Round::from_json(value).map(|r| {
                let round = Some(r);
                let node = node.to_string();
                (node.clone(), Stored::Round { node, round })
            })
        } else if let Some(receiver) = key.strip_prefix(&self.alerts_prefix()) {
            delivered_from_json(value).map(|r| (receiver.to_string(), Stored::Delivered(r)))
        } else {
            return None;
        };
        match decoded {
            Ok(stored) => Some(stored),
            Err(e) => {
                warn!(key = %key, error = %e, "skipping a stored value that is not a service record");
                None
            }
        }
    }

    /// How long the leader's write of `record` took to reach this node.
    pub fn lag(&self, record: &ServiceRecord) {
        let lag = SystemTime::now()
            .duration_since(record.written)
            .unwrap_or_default();
        self.metrics
            .cluster
            .watch_lag_seconds
            .set(lag.as_secs_f64());
    }

    pub fn tell(&self, event: ClusterEvent) {
        if let ClusterEvent::Changed { revision, .. } = &event {
            self.metrics.cluster.revision.set(*revision);
        }
        self.registry.do_send(event);
    }

    /// A renewal answered: the lease holds (the machine decides until when).
    pub fn renewed(&self) {
        self.metrics.cluster.lease_renewals.inc();
    }
}
