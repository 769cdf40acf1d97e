//! The vocabulary of a service resource, as the Services API names it.

use std::fmt;
use std::str::FromStr;

/// What kind of Genesys server a service stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceType {
    /// Configuration Server (a primary/backup pair) plus its Cassandra cluster.
    Provisioning,
    /// A T-Server or SIP Server.
    Voice,
    /// A Stat Server.
    Reporting,
    /// An Interaction Server.
    Media,
}

impl ServiceType {
    /// Every type, in the order the seed lists them; used in error messages.
    pub const ALL: [ServiceType; 4] = [
        ServiceType::Provisioning,
        ServiceType::Voice,
        ServiceType::Reporting,
        ServiceType::Media,
    ];

    /// Every type's wire name, in the order of [`ServiceType::ALL`].
    pub const NAMES: [&'static str; 4] = ["Provisioning", "Voice", "Reporting", "Media"];

    /// The wire name, as it appears in the resource's `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Provisioning => "Provisioning",
            ServiceType::Voice => "Voice",
            ServiceType::Reporting => "Reporting",
            ServiceType::Media => "Media",
        }
    }

    /// The GWS feature a contact center needs to see this type of service, unless the
    /// service's configuration names another.
    pub fn default_feature(self) -> &'static str {
        match self {
            ServiceType::Provisioning => "api-provisioning-read",
            ServiceType::Voice => "api-voice",
            ServiceType::Reporting => "ui-supervisor-reporting",
            ServiceType::Media => "api-multimedia",
        }
    }
}

impl fmt::Display for ServiceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceType {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// The state a service is in, as the Services API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// The service works.
    Active,
    /// The service does not work.
    Inactive,
    /// Provisioning only: reads work (Cassandra answers), writes don't (no Configuration
    /// Server serves).
    ReadOnly,
}

impl ServiceState {
    /// Every state; used in error messages.
    pub const ALL: [ServiceState; 3] = [
        ServiceState::Active,
        ServiceState::Inactive,
        ServiceState::ReadOnly,
    ];

    /// The wire name, as it appears in the resource's `state` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Active => "Active",
            ServiceState::Inactive => "Inactive",
            ServiceState::ReadOnly => "ReadOnly",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceState {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// Which instance of a primary/backup pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The instance configured as primary; the service's `name` is always its name.
    Primary,
    /// The instance configured as backup.
    Backup,
}

impl Role {
    /// Both roles; used to read a role back by name.
    pub const ALL: [Role; 2] = [Role::Primary, Role::Backup];

    /// The wire name, as it appears in the resource's `servingInstance` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Backup => "backup",
        }
    }

    /// The other instance of the pair.
    pub fn other(self) -> Role {
        match self {
            Role::Primary => Role::Backup,
            Role::Backup => Role::Primary,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

/// Which part of a service one backend server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// An instance of the pair (for Provisioning, of the Configuration Server pair).
    Pair(Role),
    /// The Cassandra node at this position in the configuration.
    CassandraNode(usize),
}

impl Part {
    /// The part as metrics label it: `primary`, `backup`, `cassandra-N`.
    pub fn metric_label(self) -> String {
        match self {
            Part::Pair(role) => role.as_str().to_string(),
            Part::CassandraNode(i) => format!("cassandra-{i}"),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Pair(role) => f.write_str(role.as_str()),
            Part::CassandraNode(i) => write!(f, "cassandra node {i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in ServiceType::ALL {
            assert_eq!(t.as_str().parse::<ServiceType>(), Ok(t));
        }
        assert_eq!(
            ServiceType::ALL.map(ServiceType::as_str),
            ServiceType::NAMES
        );
        for s in ServiceState::ALL {
            assert_eq!(s.as_str().parse::<ServiceState>(), Ok(s));
        }
        assert!(
            "voice".parse::<ServiceType>().is_err(),
            "names are case-sensitive"
        );
        assert!("Readonly".parse::<ServiceState>().is_err());
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("Primary".parse::<Role>().is_err());
    }

    #[test]
    fn default_features_follow_the_spec() {
        assert_eq!(ServiceType::Voice.default_feature(), "api-voice");
        assert_eq!(
            ServiceType::Provisioning.default_feature(),
            "api-provisioning-read"
        );
        assert_eq!(ServiceType::Media.default_feature(), "api-multimedia");
        assert_eq!(
            ServiceType::Reporting.default_feature(),
            "ui-supervisor-reporting"
        );
    }
}
