//! The instance detail: what each server's monitor last saw of it, kept where the API reads
//! it (`GET /services/{id}/instances`).
//!
//! The service resource says what a client acts on (state, serving instance); an admin
//! asking why needs the servers behind it: each one's health and since when, what its last
//! check said, what it says of its role, its certificate. That changes on every probe,
//! thousands of times a second on a large site, so it does not travel as messages to the
//! registry and is not published in snapshots: each monitor writes its own
//! [`InstanceRecord`] (one short lock per probe, never contended but by a reader), and a
//! request renders the records of one service when asked.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use crate::config::services::{InstanceSpec, ServiceSpec};
use crate::domain::health::{Health, ProbeOutcome};
use crate::domain::roles::SaidRole;
use crate::domain::service::{Part, Role};
use crate::probe::https::days_left;
use crate::resource::timestamp;

/// One server of a service: what never changes, and what its monitor last saw.
#[derive(Debug)]
pub struct InstanceRecord {
    pub part: Part,
    /// The application name, when configured.
    pub name: Option<String>,
    /// `host:port`.
    pub address: String,
    /// The check kind, as configured.
    pub check: &'static str,
    pub watched: bool,
    seen: Mutex<Seen>,
    /// On a cluster: what each live node sees of the server, as etcd holds it.
    views: Mutex<Vec<NodeView>>,
}

/// What one node of a cluster sees of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub node: String,
    pub health: Health,
    /// When that node saw the server reach `health`.
    pub since: SystemTime,
    /// What that node's probe said.
    pub check: String,
}

/// What a monitor saw of its server.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub health: Health,
    /// When `health` was reached, if this process saw it happen.
    pub health_since: Option<SystemTime>,
    pub last_check: Option<LastCheck>,
    /// For a pair with a role check: what the server said last, and when.
    pub role: Option<(SaidRole, String, SystemTime)>,
    /// For an `https` check: the certificate's end of validity, as last shown.
    pub certificate_not_after: Option<SystemTime>,
    /// For a watched server: whether the watch connection is open, what happened to it
    /// last, and when.
    pub watch: Option<(bool, String, SystemTime)>,
}

/// One probe.
#[derive(Debug, Clone, PartialEq)]
pub struct LastCheck {
    pub at: SystemTime,
    pub outcome: ProbeOutcome,
    pub elapsed: Duration,
    /// What the probe saw, as the log says it.
    pub detail: String,
}

impl InstanceRecord {
    /// The record of `spec`, as `part`, not probed yet.
    pub fn new(part: Part, spec: &InstanceSpec) -> Self {
        InstanceRecord {
            part,
            name: spec.name.clone(),
            address: spec.target.to_string(),
            check: spec.check.kind.name(),
            watched: spec.check.watch,
            seen: Mutex::new(Seen {
                health: Health::Unknown,
                health_since: None,
                last_check: None,
                role: None,
                certificate_not_after: None,
                watch: None,
            }),
            views: Mutex::new(Vec::new()),
        }
    }

    /// What was seen. A writer that panicked mid-update left plain values behind, still
    /// worth showing, so a poisoned lock is read through.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a probe.
    pub fn probed(&self, check: LastCheck) {
        self.seen().last_check = Some(check);
    }

    /// Records the server's smoothed health, reached at `at` (`None`: resumed from before).
    pub fn health(&self, health: Health, at: Option<SystemTime>) {
        let mut seen = self.seen();
        seen.health = health;
        seen.health_since = at;
    }

    /// Records what the server said of its role.
    pub fn said(&self, role: SaidRole, detail: String, at: SystemTime) {
        self.seen().role = Some((role, detail, at));
    }

    /// Replaces what the cluster's nodes see of the server.
    pub fn set_views(&self, views: Vec<NodeView>) {
        *self
            .views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = views;
    }

    /// Records what happened to the watch connection: `open` or not, and why.
    pub fn watch(&self, open: bool, detail: String) {
        self.seen().watch = Some((open, detail, SystemTime::now()));
    }

    /// Records the end of validity of the certificate the server showed.
    pub fn certificate(&self, not_after: Option<SystemTime>) {
        self.seen().certificate_not_after = not_after;
    }

    /// The record as the instance detail shows it; `serving`: whether this server serves
    /// its service; `now`: to count the certificate's days left.
    pub fn render(&self, serving: bool, now: SystemTime) -> Map<String, Value> {
        let seen = self.seen().clone();
        let mut map = Map::new();
        map.insert("instance".into(), Value::from(self.part.metric_label()));
        if let Some(name) = &self.name {
            map.insert("name".into(), Value::from(name.as_str()));
        }
        map.insert("address".into(), Value::from(self.address.as_str()));
        if matches!(self.part, Part::Pair(_)) {
            map.insert("serving".into(), Value::from(serving));
        }
        map.insert("health".into(), Value::from(seen.health.as_str()));
        if let Some(since) = seen.health_since {
            map.insert("healthSince".into(), Value::from(timestamp(since)));
        }
        map.insert("check".into(), Value::from(self.check));
        map.insert("watched".into(), Value::from(self.watched));
        if let Some(last) = &seen.last_check {
            map.insert(
                "lastCheck".into(),
                json!({
                    "at": timestamp(last.at),
                    "outcome": last.outcome.as_str(),
                    "durationMs": (last.elapsed.as_secs_f64() * 1e6).round() / 1e3,
                    "detail": last.detail,
                }),
            );
        }
        if let Some((role, detail, at)) = &seen.role {
            map.insert(
                "role".into(),
                json!({ "says": role.as_str(), "at": timestamp(*at), "detail": detail }),
            );
        }
        if let Some((open, detail, at)) = &seen.watch {
            map.insert(
                "watch".into(),
                json!({ "open": open, "at": timestamp(*at), "detail": detail }),
            );
        }
        let views = self
            .views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if !views.is_empty() {
            let views: Vec<Value> = views
                .into_iter()
                .map(|v| {
                    json!({
                        "node": v.node,
                        "health": v.health.as_str(),
                        "since": timestamp(v.since),
                        "check": v.check,
                    })
                })
                .collect();
            map.insert("views".into(), Value::from(views));
        }
        if let Some(not_after) = seen.certificate_not_after {
            map.insert(
                "certificate".into(),
                json!({
                    "notAfter": timestamp(not_after),
                    "daysLeft": (days_left(not_after, now) * 10.0).floor() / 10.0,
                }),
            );
        }
        map
    }
}

/// Every server of one service, in the order of the configuration: the pair, then the
/// Cassandra nodes.
#[derive(Debug, Default)]
pub struct Instances {
    pub records: Vec<Arc<InstanceRecord>>,
    /// The Cassandra quorum of a Provisioning service.
    pub quorum: Option<usize>,
}

impl Instances {
    /// Fresh records for every server of `spec`, given with the part it plays.
    pub fn of<'a>(
        spec: &ServiceSpec,
        servers: impl Iterator<Item = (Part, &'a InstanceSpec)>,
    ) -> Self {
        Instances {
            records: servers
                .map(|(part, instance)| Arc::new(InstanceRecord::new(part, instance)))
                .collect(),
            quorum: spec.cassandra.as_ref().map(|c| c.quorum),
        }
    }

    /// The body of `GET /services/{id}/instances`, the pair's `serving` instance marked.
    pub fn render(&self, serving: Option<Role>, now: SystemTime) -> Value {
        let instances: Vec<Value> = self
            .records
            .iter()
            .map(|r| Value::Object(r.render(serving.is_some_and(|s| r.part == Part::Pair(s)), now)))
            .collect();
        let mut body = Map::new();
        body.insert("statusCode".into(), Value::from(0));
        body.insert("instances".into(), Value::from(instances));
        if let Some(quorum) = self.quorum {
            let nodes: Vec<&Arc<InstanceRecord>> = self
                .records
                .iter()
                .filter(|r| matches!(r.part, Part::CassandraNode(_)))
                .collect();
            let up = nodes
                .iter()
                .filter(|r| r.seen().health.is_healthy())
                .count();
            body.insert(
                "cassandra".into(),
                json!({
                    "nodes": nodes.len(),
                    "up": up,
                    "quorum": quorum,
                    "hasQuorum": up >= quorum,
                }),
            );
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::tests::load;

    fn provisioning() -> (Arc<ServiceSpec>, Instances) {
        let s = load(
            "[[service]]\nid = \"p\"\ntype = \"Provisioning\"\nconfig_server = { primary = { host = \"10.0.0.5\", port = 2020, name = \"confserv\" }, backup = { host = \"10.0.0.6\", port = 2020 } }\ncassandra = { nodes = [\"10.0.0.7\", \"10.0.0.8\", \"10.0.0.9\"] }\n",
        )
        .unwrap();
        let spec = Arc::new(s.services[0].clone());
        let parts = [
            Part::Pair(Role::Primary),
            Part::Pair(Role::Backup),
            Part::CassandraNode(0),
            Part::CassandraNode(1),
            Part::CassandraNode(2),
        ];
        let cassandra = &spec.cassandra.as_ref().unwrap().nodes;
        let specs = [&spec.pair.primary, spec.pair.backup.as_ref().unwrap()]
            .into_iter()
            .chain(cassandra.iter());
        let instances = Instances::of(&spec, parts.into_iter().zip(specs));
        (spec, instances)
    }

    #[test]
    fn renders_each_server_and_the_quorum() {
        let (_, instances) = provisioning();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let records = &instances.records;
        records[0].health(Health::Up, Some(at));
        records[0].probed(LastCheck {
            at,
            outcome: ProbeOutcome::Up,
            elapsed: Duration::from_micros(1234),
            detail: "connected".into(),
        });
        records[0].said(SaidRole::Primary, "says \"primary\"".into(), at);
        records[2].health(Health::Up, None);
        records[3].health(Health::Down, Some(at));
        let body = instances.render(Some(Role::Primary), at);
        let first = &body["instances"][0];
        assert_eq!(
            first.to_string(),
            r#"{"instance":"primary","name":"confserv","address":"10.0.0.5:2020","serving":true,"health":"up","healthSince":"2023-11-14T22:13:20.000Z","check":"tcp","watched":false,"lastCheck":{"at":"2023-11-14T22:13:20.000Z","outcome":"up","durationMs":1.234,"detail":"connected"},"role":{"says":"primary","at":"2023-11-14T22:13:20.000Z","detail":"says \"primary\""}}"#
        );
        assert_eq!(body["instances"][1]["serving"], false);
        assert_eq!(body["instances"][1]["health"], "unknown");
        let node = &body["instances"][2];
        assert_eq!(node["instance"], "cassandra-0");
        assert_eq!(node["address"], "10.0.0.7:9042");
        assert_eq!(node["check"], "cql");
        assert!(node.get("serving").is_none(), "a node does not serve");
        assert!(
            node.get("healthSince").is_none(),
            "resumed: not seen happen"
        );
        assert_eq!(
            body["cassandra"],
            json!({"nodes": 3, "up": 1, "quorum": 2, "hasQuorum": false})
        );
    }

    #[test]
    fn a_certificate_counts_its_days_left() {
        let (_, instances) = provisioning();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let record = &instances.records[1];
        record.certificate(Some(now + Duration::from_secs(86_400 * 30 + 3600)));
        let shown = record.render(false, now);
        assert_eq!(shown["certificate"]["daysLeft"], 30.0);
        assert_eq!(
            days_left(now - Duration::from_secs(86_400), now),
            -1.0,
            "negative once expired"
        );
    }
}
