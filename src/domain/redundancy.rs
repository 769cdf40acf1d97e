//! Whether a service could lose one more server and still serve: its redundancy.
//!
//! A pair is redundant while both its instances are healthy: the one that serves and a
//! spare to switch to. A Cassandra group (a Provisioning service's) is redundant while more
//! nodes are healthy than its quorum needs, so that losing any one leaves a quorum. A
//! service is redundant when every group it has is; a service configured with a single
//! instance has no redundancy to lose, and is left out (`None`), so that nobody is told
//! it lost what it never had.

use super::health::Health;
use super::service::{Part, Role};

/// Redundancy of a service from the health of each of its servers; `quorum` is the
/// Cassandra quorum of a Provisioning service, `None` for the others. `None` when the
/// service has no spare by configuration, or while any server's health is unknown.
pub fn redundancy(servers: &[(Part, Health)], quorum: Option<usize>) -> Option<bool> {
    if servers.iter().any(|(_, h)| *h == Health::Unknown) {
        return None;
    }
    let healthy = |part: Part| servers.iter().any(|(p, h)| *p == part && h.is_healthy());
    let has_backup = servers.iter().any(|(p, _)| *p == Part::Pair(Role::Backup));
    let pair =
        has_backup.then(|| healthy(Part::Pair(Role::Primary)) && healthy(Part::Pair(Role::Backup)));
    let cassandra = quorum.map(|quorum| {
        let up = servers
            .iter()
            .filter(|(p, h)| matches!(p, Part::CassandraNode(_)) && h.is_healthy())
            .count();
        up > quorum
    });
    match (pair, cassandra) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a),
        (Some(a), Some(b)) => Some(a && b),
    }
}

/// Whether a service of these `parts` has any redundancy to lose, whatever its servers'
/// health: [`redundancy`] judges it once every server's health is known.
pub fn has_spare(parts: impl IntoIterator<Item = Part>, quorum: Option<usize>) -> bool {
    let all_up: Vec<(Part, Health)> = parts.into_iter().map(|p| (p, Health::Up)).collect();
    redundancy(&all_up, quorum).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    const P: Part = Part::Pair(Role::Primary);
    const B: Part = Part::Pair(Role::Backup);

    #[test]
    fn a_pair_is_redundant_while_both_instances_are_healthy() {
        assert_eq!(redundancy(&[(P, Up), (B, Up)], None), Some(true));
        assert_eq!(redundancy(&[(P, Up), (B, Degraded)], None), Some(true));
        assert_eq!(redundancy(&[(P, Up), (B, Down)], None), Some(false));
        assert_eq!(redundancy(&[(P, Down), (B, Up)], None), Some(false));
        assert_eq!(redundancy(&[(P, Down), (B, Unknown)], None), None);
    }

    #[test]
    fn a_single_instance_has_no_redundancy_to_lose() {
        assert_eq!(redundancy(&[(P, Up)], None), None);
        assert_eq!(redundancy(&[(P, Down)], None), None);
        assert!(!has_spare([P], None));
        assert!(has_spare([P, B], None));
        assert!(has_spare([P, Part::CassandraNode(0)], Some(1)));
    }

    #[test]
    fn a_cassandra_group_needs_one_node_beyond_its_quorum() {
        let c = Part::CassandraNode;
        let three = |a, b, d| [(P, Up), (B, Up), (c(0), a), (c(1), b), (c(2), d)];
        assert_eq!(redundancy(&three(Up, Up, Up), Some(2)), Some(true));
        assert_eq!(redundancy(&three(Up, Up, Down), Some(2)), Some(false));
        assert_eq!(redundancy(&three(Up, Down, Down), Some(2)), Some(false));
        let mut lost_backup = three(Up, Up, Up);
        lost_backup[1].1 = Down;
        assert_eq!(redundancy(&lost_backup, Some(2)), Some(false));
        let single_cs = [(P, Up), (c(0), Up), (c(1), Up)];
        assert_eq!(redundancy(&single_cs, Some(1)), Some(true));
    }
}
