//! From the serving instance (and, for Provisioning, the Cassandra quorum) to the state the
//! Services API reports.

use super::service::{Role, ServiceState};

/// A Voice, Reporting or Media service is Active while one of its instances serves.
pub fn server_state(serving: Option<Role>) -> ServiceState {
    match serving {
        Some(_) => ServiceState::Active,
        None => ServiceState::Inactive,
    }
}

/// Provisioning reads from Cassandra and writes through Configuration Server: Active with
/// both, ReadOnly when Cassandra has a quorum but no Configuration Server serves, Inactive
/// without a Cassandra quorum (nothing can be read).
pub fn provisioning_state(
    config_server: Option<Role>,
    cassandra_up: usize,
    quorum: usize,
) -> ServiceState {
    match (cassandra_up >= quorum, config_server) {
        (false, _) => ServiceState::Inactive,
        (true, Some(_)) => ServiceState::Active,
        (true, None) => ServiceState::ReadOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_active_while_one_instance_serves() {
        assert_eq!(server_state(Some(Role::Backup)), ServiceState::Active);
        assert_eq!(server_state(None), ServiceState::Inactive);
    }

    #[test]
    fn provisioning_follows_config_server_and_quorum() {
        assert_eq!(
            provisioning_state(Some(Role::Primary), 2, 2),
            ServiceState::Active
        );
        assert_eq!(provisioning_state(None, 3, 2), ServiceState::ReadOnly);
        assert_eq!(
            provisioning_state(Some(Role::Primary), 1, 2),
            ServiceState::Inactive
        );
        assert_eq!(provisioning_state(None, 0, 2), ServiceState::Inactive);
    }
}
