//! What one delivery to one receiver carries: the events grouped since the receiver was
//! last told, and the alerts they touched (or, on a repeat, every alert still firing).
//! A webhook receives it as its JSON body, an exec receiver on its standard input.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::event::{Alert, AlertStatus, Event, from_rfc3339, rfc3339};

/// The version of the JSON form; raised when a field changes meaning or goes away.
pub const VERSION: u32 = 1;

/// One notification for one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// [`VERSION`].
    pub version: u32,
    /// The same for every attempt to deliver this notification, on every node: a receiver
    /// that is given it twice can tell (delivery is at least once).
    pub key: String,
    /// The receiver's name, as configured.
    pub receiver: String,
    /// `firing` while any alert it carries fires, `resolved` otherwise.
    pub status: AlertStatus,
    /// The node that sent it.
    pub node: String,
    /// When it was made (the same on every attempt).
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub created_at: SystemTime,
    /// What happened, oldest first; empty on a repeat.
    pub events: Vec<Event>,
    /// The alerts these events fired or resolved; on a repeat, those still firing.
    pub alerts: Vec<Alert>,
    /// Whether this repeats alerts that still fire (`repeat_interval`), telling nothing new.
    pub repeat: bool,
}

impl Notification {
    /// One line for a human: a subject, a journal line.
    pub fn summary(&self) -> String {
        match (self.events.as_slice(), self.alerts.as_slice()) {
            ([one], _) => one.summary.clone(),
            ([], [one]) => format!("still {}: {}", one.status.as_str(), one.summary),
            ([], alerts) => format!("{} alerts still firing", alerts.len()),
            (events, _) => {
                let services: std::collections::BTreeSet<&str> = events
                    .iter()
                    .filter_map(|e| e.service.as_ref().map(|s| s.id.as_str()))
                    .collect();
                format!("{} events on {} services", events.len(), services.len())
            }
        }
    }
}
