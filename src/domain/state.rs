//! From the serving instance (and, for Provisioning, the Cassandra quorum) to the state the
//! Services API reports, and from the health of every server of a service to both.

use super::health::Health;
use super::pairing::{Failback, choose_serving};
use super::roles::{SaidRole, Seen, Source, choose_by_roles};
use super::service::{Part, Role, ServiceState};

/// What the rules decide about one service: its state and the instance that serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    pub state: ServiceState,
    /// Which instance of the pair serves (for Provisioning: of the Configuration Server pair).
    pub serving: Option<Role>,
    /// What `serving` rests on.
    pub source: Source,
}

impl Assessment {
    /// What a service is taken to be before its servers have been probed: not known to
    /// work.
    pub const INITIAL: Assessment = Assessment {
        state: ServiceState::Inactive,
        serving: None,
        source: Source::Health,
    };
}

/// Assesses a service from the health of each of its servers, given the assessment it has
/// now (the pair does not fail back by itself, so the serving instance depends on it).
/// `quorum` is the Cassandra quorum of a Provisioning service, `None` for the others.
/// `said` is what the primary and the backup said of their roles, for a service with a role
/// check ([`choose_by_roles`]), `None` for the others.
///
/// `None` while any server's health is still unknown: a start-up must not publish a passing
/// state (say, ReadOnly because Cassandra answered before Configuration Server) that only
/// reflects which probe finished first.
pub fn assess(
    now: Assessment,
    servers: &[(Part, Health)],
    failback: Failback,
    quorum: Option<usize>,
    said: Option<[SaidRole; 2]>,
) -> Option<Assessment> {
    if servers.iter().any(|(_, health)| *health == Health::Unknown) {
        return None;
    }
    let health_of = |part: Part| {
        servers
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, health)| *health)
    };
    let primary = health_of(Part::Pair(Role::Primary)).unwrap_or(Health::Down);
    let backup = health_of(Part::Pair(Role::Backup));
    let (serving, source) = match said {
        None => (
            choose_serving(now.serving, primary, backup, failback),
            Source::Health,
        ),
        Some([said_primary, said_backup]) => choose_by_roles(
            now.serving,
            Seen {
                health: primary,
                said: said_primary,
            },
            backup.map(|health| Seen {
                health,
                said: said_backup,
            }),
            failback,
        ),
    };
    let state = match quorum {
        None => server_state(serving),
        Some(quorum) => {
            let up = servers
                .iter()
                .filter(|(part, health)| {
                    matches!(part, Part::CassandraNode(_)) && health.is_healthy()
                })
                .count();
            provisioning_state(serving, up, quorum)
        }
    };
    Some(Assessment {
        state,
        serving,
        source,
    })
}

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

    const PRIMARY: Part = Part::Pair(Role::Primary);
    const BACKUP: Part = Part::Pair(Role::Backup);

    #[test]
    fn nothing_is_assessed_until_every_server_is_known() {
        let servers = [(PRIMARY, Health::Up), (BACKUP, Health::Unknown)];
        assert_eq!(
            assess(Assessment::INITIAL, &servers, Failback::Stay, None, None),
            None
        );
        let cassandra = [
            (PRIMARY, Health::Down),
            (Part::CassandraNode(0), Health::Up),
            (Part::CassandraNode(1), Health::Unknown),
        ];
        assert_eq!(
            assess(
                Assessment::INITIAL,
                &cassandra,
                Failback::Stay,
                Some(1),
                None
            ),
            None,
            "not ReadOnly only because one node answered first"
        );
    }

    #[test]
    fn a_pair_is_assessed_from_both_instances_and_where_it_serves_now() {
        let active = |serving| Assessment {
            state: ServiceState::Active,
            serving: Some(serving),
            source: Source::Health,
        };
        let both = [(PRIMARY, Health::Up), (BACKUP, Health::Up)];
        assert_eq!(
            assess(Assessment::INITIAL, &both, Failback::Stay, None, None),
            Some(active(Role::Primary))
        );
        assert_eq!(
            assess(active(Role::Backup), &both, Failback::Stay, None, None),
            Some(active(Role::Backup)),
            "no failback by itself"
        );
        let down = [(PRIMARY, Health::Down), (BACKUP, Health::Down)];
        assert_eq!(
            assess(active(Role::Primary), &down, Failback::Stay, None, None),
            Some(Assessment::INITIAL)
        );
    }

    #[test]
    fn provisioning_counts_healthy_cassandra_nodes_against_the_quorum() {
        let servers = |config: Health, nodes: [Health; 3]| {
            let mut all = vec![(PRIMARY, config)];
            all.extend(
                nodes
                    .into_iter()
                    .enumerate()
                    .map(|(i, h)| (Part::CassandraNode(i), h)),
            );
            all
        };
        let state = |config, nodes| {
            assess(
                Assessment::INITIAL,
                &servers(config, nodes),
                Failback::Stay,
                Some(2),
                None,
            )
            .unwrap()
            .state
        };
        use Health::*;
        assert_eq!(state(Up, [Up, Degraded, Down]), ServiceState::Active);
        assert_eq!(state(Down, [Up, Up, Down]), ServiceState::ReadOnly);
        assert_eq!(state(Up, [Up, Down, Down]), ServiceState::Inactive);
    }
}
