//! What the leader writes to etcd for each service, and what every node reads back: the
//! service's decided state, serving instance and since when, each server's health and said
//! role (so that a new leader resumes them instead of deciding again from its first probes),
//! why (and, when the decision moved the serving instance, the switchover's cause, which a
//! follower cannot tell by itself), and who wrote it. JSON, so that `etcdctl get` shows a person what is stored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Serialize};

use crate::config::services::ServiceSpec;
use crate::domain::health::Health;
use crate::domain::maintenance::Window;
use crate::domain::roles::{SaidRole, Source};
use crate::domain::service::{Role, ServiceState};
use crate::domain::state::Assessment;
use crate::domain::switchover::Cause;

/// One server of a service as the leader last knew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRecord {
    /// Its part, as metrics label it: `primary`, `backup`, `cassandra-N`.
    pub part: String,
    pub health: Health,
    pub said: SaidRole,
}

/// One service as the leader decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub assessment: Assessment,
    pub since: SystemTime,
    pub servers: Vec<ServerRecord>,
    /// What the leader saw that made the change.
    pub reason: String,
    /// The node that wrote it.
    pub node: String,
    /// When it was written (by the writer's clock): how far behind a watching node is.
    pub written: SystemTime,
    /// Why the decision moved the serving instance, if it did.
    pub switchover: Option<Cause>,
}

/// Why a stored value is not a record; the node skips it and says so.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("not a service record: {0}")]
    Json(String),
    #[error("unknown {what} \"{value}\"")]
    Unknown { what: &'static str, value: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    state: String,
    serving: Option<String>,
    source: String,
    /// Milliseconds since the Unix epoch.
    state_since: u64,
    servers: Vec<WireServer>,
    reason: String,
    node: String,
    written: u64,
    /// Absent when the decision moved nothing, and in records of versions before it. A
    /// cause this version does not know is read as none rather than refusing the record:
    /// the state matters more than the label of one counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    switchover_cause: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireServer {
    part: String,
    health: String,
    said: String,
}

impl ServiceRecord {
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            state: self.assessment.state.as_str().into(),
            serving: self.assessment.serving.map(|r| r.as_str().into()),
            source: source_name(self.assessment.source).into(),
            state_since: millis(self.since),
            servers: self
                .servers
                .iter()
                .map(|s| WireServer {
                    part: s.part.clone(),
                    health: s.health.as_str().into(),
                    said: s.said.as_str().into(),
                })
                .collect(),
            reason: self.reason.clone(),
            node: self.node.clone(),
            written: millis(self.written),
            switchover_cause: self.switchover.map(|c| c.as_str().into()),
        };
        serde_json::to_vec(&wire).expect("a record serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        let unknown = |what, value: &str| RecordError::Unknown {
            what,
            value: value.to_string(),
        };
        let state = wire
            .state
            .parse::<ServiceState>()
            .map_err(|()| unknown("state", &wire.state))?;
        let serving = match wire.serving.as_deref() {
            None => None,
            Some(s) => Some(role(s).ok_or_else(|| unknown("serving instance", s))?),
        };
        let source = [
            Source::Health,
            Source::Role,
            Source::Conflict,
            Source::Fallback,
        ]
        .into_iter()
        .find(|s| source_name(*s) == wire.source)
        .ok_or_else(|| unknown("source", &wire.source))?;
        let servers = wire
            .servers
            .into_iter()
            .map(|s| {
                Ok(ServerRecord {
                    health: health(&s.health).ok_or_else(|| unknown("health", &s.health))?,
                    said: SaidRole::ALL
                        .into_iter()
                        .find(|r| r.as_str() == s.said)
                        .ok_or_else(|| unknown("role", &s.said))?,
                    part: s.part,
                })
            })
            .collect::<Result<_, RecordError>>()?;
        Ok(ServiceRecord {
            assessment: Assessment {
                state,
                serving,
                source,
            },
            since: UNIX_EPOCH + Duration::from_millis(wire.state_since),
            servers,
            reason: wire.reason,
            node: wire.node,
            written: UNIX_EPOCH + Duration::from_millis(wire.written),
            switchover: wire
                .switchover_cause
                .and_then(|name| Cause::ALL.into_iter().find(|c| c.as_str() == name)),
        })
    }
}

/// One server as one node's monitor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerView {
    /// Its part, as metrics label it: `primary`, `backup`, `cassandra-N`.
    pub part: String,
    pub health: Health,
    /// When this node's monitor saw it reach `health`.
    pub since: SystemTime,
    /// What the probe that made it said.
    pub check: String,
}

/// One node's view of one service's servers: `{prefix}views/{node}/{service}`, bound to the
/// node's lease, so that a node that dies stops voting when its lease ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub node: String,
    pub servers: Vec<ServerView>,
    /// Not stored: read from the node's first round (it wrote no view because it sees
    /// every server up; see `src/registry/views.rs`).
    pub implied: bool,
}

#[derive(Serialize, Deserialize)]
struct WireServerView {
    part: String,
    health: String,
    since: u64,
    check: String,
}

impl View {
    pub fn to_json(&self) -> Vec<u8> {
        let wire: Vec<WireServerView> = self
            .servers
            .iter()
            .map(|s| WireServerView {
                part: s.part.clone(),
                health: s.health.as_str().into(),
                since: millis(s.since),
                check: s.check.clone(),
            })
            .collect();
        serde_json::to_vec(&wire).expect("a view serializes")
    }

    /// Node `node`'s view, read back.
    pub fn from_json(node: &str, bytes: &[u8]) -> Result<Self, RecordError> {
        let wire: Vec<WireServerView> =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        let servers = wire
            .into_iter()
            .map(|s| {
                Ok(ServerView {
                    health: health(&s.health).ok_or_else(|| RecordError::Unknown {
                        what: "health",
                        value: s.health.clone(),
                    })?,
                    part: s.part,
                    since: UNIX_EPOCH + Duration::from_millis(s.since),
                    check: s.check,
                })
            })
            .collect::<Result<_, RecordError>>()?;
        Ok(View {
            node: node.to_string(),
            servers,
            implied: false,
        })
    }
}

/// A node's first round, complete: `{prefix}rounds/{node}`, bound to its lease. The node
/// has a first health of every server of `services`, and writes a view only of those it
/// does not see all up: its missing view of one of them reads as "every server up".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// When the node wrote it (what an implied view says as its `since`).
    pub since: SystemTime,
    pub services: std::collections::BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct WireRound {
    since: u64,
    services: Vec<String>,
}

impl Round {
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireRound {
            since: millis(self.since),
            services: self.services.iter().cloned().collect(),
        };
        serde_json::to_vec(&wire).expect("a round serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let wire: WireRound =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        Ok(Round {
            since: UNIX_EPOCH + Duration::from_millis(wire.since),
            services: wire.services.into_iter().collect(),
        })
    }
}

fn health(s: &str) -> Option<Health> {
    [Health::Unknown, Health::Up, Health::Degraded, Health::Down]
        .into_iter()
        .find(|h| h.as_str() == s)
}

/// What a key under the prefix holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// `{prefix}services/{id}`: the service as the leader decided it.
    Record(ServiceRecord),
    /// `{prefix}maintenance/{id}`: the service's maintenance windows, set on any node.
    Windows(Vec<Window>),
    /// `{prefix}alerts/{receiver}`: the revision up to which the leader has delivered the
    /// events routed to the receiver (its id is the receiver's name). A successor sends
    /// what came after; the followers forget what came before.
    Delivered(i64),
    /// `{prefix}views/{node}/{id}`: what a node's monitors see of the service's servers.
    View(View),
    /// A node's view of the service left etcd (its lease ended: the node is gone).
    ViewEnded { node: String },
    /// `{prefix}rounds/{node}`: the node's first round is complete (`None`: the key left
    /// etcd, the node is gone).
    Round { node: String, round: Option<Round> },
}

#[derive(Serialize, Deserialize)]
struct WireDelivered {
    revision: i64,
}

/// The JSON stored for a receiver's delivered revision.
pub fn delivered_to_json(revision: i64) -> Vec<u8> {
    serde_json::to_vec(&WireDelivered { revision }).expect("a revision serializes")
}

/// A receiver's delivered revision, from its stored JSON.
pub fn delivered_from_json(bytes: &[u8]) -> Result<i64, RecordError> {
    let wire: WireDelivered =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
    Ok(wire.revision)
}

#[derive(Serialize, Deserialize)]
struct WireWindow {
    instance: Option<String>,
    reason: String,
    /// Milliseconds since the Unix epoch.
    until: Option<u64>,
    by: String,
    since: u64,
}

/// The maintenance windows of one service, as stored.
pub fn windows_to_json(windows: &[Window]) -> Vec<u8> {
    let wire: Vec<WireWindow> = windows
        .iter()
        .map(|w| WireWindow {
            instance: w.instance.clone(),
            reason: w.reason.clone(),
            until: w.until.map(millis),
            by: w.by.clone(),
            since: millis(w.since),
        })
        .collect();
    serde_json::to_vec(&wire).expect("windows serialize")
}

/// The maintenance windows of service `service`, read back.
pub fn windows_from_json(service: &str, bytes: &[u8]) -> Result<Vec<Window>, RecordError> {
    let wire: Vec<WireWindow> =
        serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
    let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
    Ok(wire
        .into_iter()
        .map(|w| Window {
            service: service.to_string(),
            instance: w.instance,
            reason: w.reason,
            until: w.until.map(at),
            by: w.by,
            since: at(w.since),
        })
        .collect())
}

/// A digest of the services as configured: nodes whose digests differ would decide
/// differently, so a node that differs from the leader does not campaign.
pub fn digest(services: &[ServiceSpec]) -> String {
    let mut hasher = Blake2b512::new();
    for spec in services {
        hasher.update(format!("{spec:?}").as_bytes());
        hasher.update([0]);
    }
    hasher.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn role(s: &str) -> Option<Role> {
    [Role::Primary, Role::Backup]
        .into_iter()
        .find(|r| r.as_str() == s)
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Health => "health",
        Source::Role => "role",
        Source::Conflict => "conflict",
        Source::Fallback => "fallback",
    }
}

/// `t` as stored: milliseconds since the Unix epoch.
pub fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ServiceRecord {
        ServiceRecord {
            assessment: Assessment {
                state: ServiceState::Active,
                serving: Some(Role::Backup),
                source: Source::Conflict,
            },
            since: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            servers: vec![
                ServerRecord {
                    part: "primary".into(),
                    health: Health::Down,
                    said: SaidRole::Unknown,
                },
                ServerRecord {
                    part: "backup".into(),
                    health: Health::Degraded,
                    said: SaidRole::Primary,
                },
            ],
            reason: "primary: connection refused".into(),
            node: "sw1".into(),
            written: UNIX_EPOCH + Duration::from_millis(1_700_000_001_000),
            switchover: Some(Cause::Maintenance),
        }
    }

    #[test]
    fn a_record_says_why_the_serving_instance_moved_when_it_did() {
        let moved = String::from_utf8(record().to_json()).unwrap();
        assert!(
            moved.contains(r#""switchoverCause":"maintenance""#),
            "{moved}"
        );
        let stayed = ServiceRecord {
            switchover: None,
            ..record()
        };
        let json = String::from_utf8(stayed.to_json()).unwrap();
        assert!(!json.contains("switchoverCause"), "{json}");
        assert_eq!(ServiceRecord::from_json(json.as_bytes()).unwrap(), stayed);
        let unknown = moved.replace(r#""maintenance""#, r#""meteor""#);
        assert_eq!(
            ServiceRecord::from_json(unknown.as_bytes())
                .unwrap()
                .switchover,
            None,
            "an unknown cause does not cost the record"
        );
    }

    #[test]
    fn a_record_survives_the_trip_through_etcd() {
        let r = record();
        let json = r.to_json();
        assert!(
            String::from_utf8_lossy(&json).contains(r#""state":"Active","serving":"backup""#),
            "readable with etcdctl"
        );
        assert_eq!(ServiceRecord::from_json(&json).unwrap(), r);
    }

    #[test]
    fn a_value_that_is_not_a_record_says_why() {
        assert!(matches!(
            ServiceRecord::from_json(b"hello"),
            Err(RecordError::Json(_))
        ));
        let bad = String::from_utf8(record().to_json())
            .unwrap()
            .replace("Active", "Sleeping");
        assert_eq!(
            ServiceRecord::from_json(bad.as_bytes())
                .unwrap_err()
                .to_string(),
            "unknown state \"Sleeping\""
        );
    }

    #[test]
    fn a_view_survives_the_trip_through_etcd() {
        let view = View {
            node: "sw2".into(),
            servers: vec![ServerView {
                part: "primary".into(),
                health: Health::Down,
                since: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
                check: "connection refused".into(),
            }],
            implied: false,
        };
        let json = view.to_json();
        assert!(String::from_utf8_lossy(&json).contains(r#""health":"down""#));
        assert_eq!(View::from_json("sw2", &json).unwrap(), view);
        assert!(View::from_json("sw2", b"{}").is_err());
        let round = Round {
            since: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
            services: ["voice".to_string(), "chat".to_string()].into(),
        };
        assert_eq!(Round::from_json(&round.to_json()).unwrap(), round);
    }

    #[test]
    fn maintenance_windows_survive_the_trip_through_etcd() {
        let windows = vec![Window {
            service: "v".into(),
            instance: Some("primary".into()),
            reason: "upgrade to 8.5.1".into(),
            until: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_100_000)),
            by: "chief".into(),
            since: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
        }];
        let json = windows_to_json(&windows);
        assert_eq!(windows_from_json("v", &json).unwrap(), windows);
        assert_eq!(windows_from_json("v", b"[]").unwrap(), vec![]);
        assert!(windows_from_json("v", b"{}").is_err());
    }
}
