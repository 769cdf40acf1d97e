//! What receivers are told: an [`Event`] is one thing that happened to a service (or to the
//! cluster), decided from what the ledger committed; an [`Alert`] is a condition that fires
//! and later resolves (a service Inactive, its redundancy lost, flapping), which is what
//! Alertmanager and the active-alerts API speak of.
//!
//! Both are plain data with a documented JSON form (docs/alerts.md): a webhook receives
//! them as they are. Every event has a `key` that names it the same way on every node and
//! after every restart (the service, the ledger's revision, the kind), so that a receiver
//! given an event twice (delivery is at least once) can tell.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::domain::event_kind::EventKind;

/// How urgent an event or alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do (a planned switchover, a redundancy restored).
    Info,
    /// Still serving, with less margin (redundancy lost, a failure switchover).
    Warning,
    /// Not serving as it should (Inactive, ReadOnly).
    Critical,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// The service an event is about, as the Services API names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRef {
    /// The service's id, as in `/api/v2/services/{id}`.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its GWS type (`Voice`, `Statistics`, ...).
    #[serde(rename = "type")]
    pub service_type: String,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Names this event alike on every node and across restarts: `service/revision/kind`.
    pub key: String,
    /// What happened.
    #[serde(serialize_with = "kind_name", deserialize_with = "kind_named")]
    pub kind: EventKind,
    /// When it happened (when the change was decided).
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub at: SystemTime,
    /// The ledger's revision of the change (0 for events that are not changes: a test).
    pub revision: i64,
    /// The service it happened to; none for an event of the cluster's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// The service's state after the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The service's state before the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_state: Option<String>,
    /// The serving instance after the event (`primary`, `backup`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_instance: Option<String>,
    /// The serving instance before the event, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_serving_instance: Option<String>,
    /// For a switchover: whether a maintenance window moved it (planned) or a failure did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<bool>,
    /// How urgent it is.
    pub severity: Severity,
    /// One line for a human: what happened.
    pub summary: String,
    /// What the check saw that made the change.
    pub reason: String,
}

impl Event {
    /// An event about no service (a test, a node's own news): the fields of a service's
    /// change left out.
    pub fn of_no_service(
        key: String,
        kind: EventKind,
        at: SystemTime,
        severity: Severity,
        summary: String,
        reason: &str,
    ) -> Event {
        Event {
            key,
            kind,
            at,
            revision: 0,
            service: None,
            state: None,
            previous_state: None,
            serving_instance: None,
            previous_serving_instance: None,
            planned: None,
            severity,
            summary,
            reason: reason.to_string(),
        }
    }
}

/// Whether an alert holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// It held, and no longer does.
    Resolved,
}

impl AlertStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// A condition that fires and resolves: what Alertmanager is given, and what
/// `GET /api/v2/alerts` lists while it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `ServiceInactive`, `ServiceReadOnly`, `RedundancyLost`, `Flapping`.
    pub name: String,
    /// The service it concerns.
    pub service: String,
    /// Whether it holds.
    pub status: AlertStatus,
    /// How urgent it is.
    pub severity: Severity,
    /// When the condition began.
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub starts_at: SystemTime,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_option",
        deserialize_with = "from_rfc3339_option"
    )]
    /// When it resolved; none while it fires.
    pub ends_at: Option<SystemTime>,
    /// One line for a human: what holds.
    pub summary: String,
    /// Labels as Alertmanager groups and routes by them: `alertname`, `service`, `type`,
    /// `severity`, and the service's attributes that are strings.
    pub labels: BTreeMap<String, String>,
}

/// `at` as the Services API writes times (RFC 3339, UTC, milliseconds).
pub(super) fn rfc3339<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::resource::timestamp(*at))
}

fn rfc3339_option<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

pub(super) fn from_rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(d)?;
    crate::resource::parse_timestamp(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("\"{text}\" is not an RFC 3339 time")))
}

fn from_rfc3339_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
    from_rfc3339(d).map(Some)
}

fn kind_name<S: Serializer>(kind: &EventKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn kind_named<'de, D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
    let name = String::deserialize(d)?;
    EventKind::named(&name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown event kind \"{name}\"")))
}
