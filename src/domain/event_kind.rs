//! The kinds of things receivers are told of, by their wire names: what routes match on,
//! what an event's `kind` says.

/// The kinds of events, by their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A service's state changed (Active, Inactive, ReadOnly).
    StateChanged,
    /// The serving instance moved from one instance of the pair to the other.
    Switchover,
    /// The service can no longer lose a server and still serve.
    RedundancyLost,
    /// It can again.
    RedundancyRestored,
    /// Its state changes too often to be told one change at a time.
    FlappingStarted,
    /// It settled; its state is told again as it changes.
    FlappingStopped,
    /// A maintenance window ended with the service still not Active.
    MaintenanceEndedDown,
    /// An instance's certificate expires within the configured number of days.
    CertificateExpiring,
    /// A cluster node has lost etcd for a while: it serves its last states, marked stale,
    /// and decides nothing (told by the node itself).
    NodeStale,
    /// It reached etcd again.
    NodeFresh,
    /// A test notification asked for by an administrator.
    Test,
}

impl EventKind {
    /// Every kind, as routes name them.
    pub const ALL: [EventKind; 11] = [
        EventKind::StateChanged,
        EventKind::Switchover,
        EventKind::RedundancyLost,
        EventKind::RedundancyRestored,
        EventKind::FlappingStarted,
        EventKind::FlappingStopped,
        EventKind::MaintenanceEndedDown,
        EventKind::CertificateExpiring,
        EventKind::NodeStale,
        EventKind::NodeFresh,
        EventKind::Test,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StateChanged => "stateChanged",
            EventKind::Switchover => "switchover",
            EventKind::RedundancyLost => "redundancyLost",
            EventKind::RedundancyRestored => "redundancyRestored",
            EventKind::FlappingStarted => "flappingStarted",
            EventKind::FlappingStopped => "flappingStopped",
            EventKind::MaintenanceEndedDown => "maintenanceEndedDown",
            EventKind::CertificateExpiring => "certificateExpiring",
            EventKind::NodeStale => "nodeStale",
            EventKind::NodeFresh => "nodeFresh",
            EventKind::Test => "test",
        }
    }

    /// The kind named `name` on the wire, if any.
    pub fn named(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}
