//! Which instance of a primary/backup pair serves.
//!
//! Genesys high availability, as the Management Layer runs it: the primary serves while it is
//! healthy; when it fails and the backup is healthy, the backup takes over (a switchover).
//! When the old primary comes back it does not take over again: it is now the standby, and
//! the service stays where it is (no failback) unless the operator asks for failback.

use super::health::Health;
use super::service::Role;

/// What to do when the primary recovers while the backup serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failback {
    /// Stay on the backup (Genesys style): a switchover is never undone by itself.
    #[default]
    Stay,
    /// Go back to the primary as soon as it is healthy again.
    ToPrimary,
}

/// Chooses the serving instance from the one serving now and the health of both.
///
/// `backup` is `None` for a service without a backup. The rules, in order:
/// - the serving instance keeps serving while healthy (unless failback applies);
/// - when none serves yet and the primary's health is still unknown, wait for it rather
///   than start on the backup only because its probe answered first;
/// - otherwise the primary if healthy, else the backup if healthy, else none.
pub fn choose_serving(
    current: Option<Role>,
    primary: Health,
    backup: Option<Health>,
    failback: Failback,
) -> Option<Role> {
    let health_of = |role: Role| match role {
        Role::Primary => primary,
        Role::Backup => backup.unwrap_or(Health::Down),
    };
    match current {
        Some(Role::Backup) if failback == Failback::ToPrimary && primary.is_healthy() => {
            Some(Role::Primary)
        }
        Some(role) if health_of(role).is_healthy() => Some(role),
        Some(role) if health_of(role.other()).is_healthy() => Some(role.other()),
        Some(_) => None,
        None if primary == Health::Unknown => None,
        None if primary.is_healthy() => Some(Role::Primary),
        None if health_of(Role::Backup).is_healthy() => Some(Role::Backup),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    const PAIR_UP: Option<Health> = Some(Up);

    #[test]
    fn primary_serves_while_healthy() {
        assert_eq!(
            choose_serving(None, Up, PAIR_UP, Failback::Stay),
            Some(Role::Primary)
        );
        assert_eq!(
            choose_serving(Some(Role::Primary), Degraded, PAIR_UP, Failback::Stay),
            Some(Role::Primary)
        );
    }

    #[test]
    fn backup_takes_over_when_the_primary_fails() {
        assert_eq!(
            choose_serving(Some(Role::Primary), Down, PAIR_UP, Failback::Stay),
            Some(Role::Backup)
        );
    }

    #[test]
    fn no_failback_by_default() {
        assert_eq!(
            choose_serving(Some(Role::Backup), Up, PAIR_UP, Failback::Stay),
            Some(Role::Backup)
        );
    }

    #[test]
    fn failback_when_asked() {
        assert_eq!(
            choose_serving(Some(Role::Backup), Up, PAIR_UP, Failback::ToPrimary),
            Some(Role::Primary)
        );
        assert_eq!(
            choose_serving(Some(Role::Backup), Down, PAIR_UP, Failback::ToPrimary),
            Some(Role::Backup)
        );
    }

    #[test]
    fn switches_back_when_the_backup_fails_and_the_primary_is_healthy() {
        assert_eq!(
            choose_serving(Some(Role::Backup), Up, Some(Down), Failback::Stay),
            Some(Role::Primary)
        );
    }

    #[test]
    fn none_serves_when_both_are_down() {
        assert_eq!(
            choose_serving(Some(Role::Primary), Down, Some(Down), Failback::Stay),
            None
        );
        assert_eq!(choose_serving(None, Down, Some(Down), Failback::Stay), None);
        assert_eq!(
            choose_serving(None, Down, Some(Unknown), Failback::Stay),
            None
        );
    }

    #[test]
    fn waits_for_the_primary_before_the_first_choice() {
        assert_eq!(choose_serving(None, Unknown, PAIR_UP, Failback::Stay), None);
        assert_eq!(
            choose_serving(None, Down, PAIR_UP, Failback::Stay),
            Some(Role::Backup)
        );
    }

    #[test]
    fn after_an_outage_the_first_to_recover_serves() {
        assert_eq!(
            choose_serving(None, Down, PAIR_UP, Failback::Stay),
            Some(Role::Backup)
        );
        assert_eq!(
            choose_serving(Some(Role::Backup), Up, PAIR_UP, Failback::Stay),
            Some(Role::Backup)
        );
    }

    #[test]
    fn a_single_server_serves_or_not() {
        assert_eq!(
            choose_serving(None, Up, None, Failback::Stay),
            Some(Role::Primary)
        );
        assert_eq!(
            choose_serving(Some(Role::Primary), Down, None, Failback::Stay),
            None
        );
    }
}
