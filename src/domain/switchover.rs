//! Switchovers: when the serving instance moved from one instance of a pair to the other,
//! and why.
//!
//! An operator alerts on switchovers, so only a move is one: a service that starts or stops
//! serving did not switch over, nor did one whose serving instance stays while what the
//! choice rests on changes (a role conflict or a fallback starting or ending). And a move an
//! admin asked for, by putting the serving instance into maintenance, is told apart from one
//! nobody planned, so that the alert on the second does not fire for the first.

use super::service::Role;

/// Why the serving instance moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// Not planned through servicewatch: the serving instance failed, the instances' role
    /// checks said the other one is primary now (a switchover done in the Management Layer,
    /// or one its own probes missed), or the primary came back under `failback`.
    Failure,
    /// A maintenance window: one started on the instance that served, or one ended on the
    /// instance that took over (which `failback` or a role check then chose).
    Maintenance,
}

impl Cause {
    /// Every cause; each service's counters exist at zero for each.
    pub const ALL: [Cause; 2] = [Cause::Failure, Cause::Maintenance];

    /// The name in metrics (`cause` label), logs and the cluster's records.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Failure => "failure",
            Cause::Maintenance => "maintenance",
        }
    }
}

/// Which instances of a pair are in maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InMaintenance {
    pub primary: bool,
    pub backup: bool,
}

impl InMaintenance {
    fn has(self, role: Role) -> bool {
        match role {
            Role::Primary => self.primary,
            Role::Backup => self.backup,
        }
    }
}

/// The switchover from the serving instance `before` to `after`, if it is one: the
/// instance that stopped serving and the one that took over.
pub fn switchover(before: Option<Role>, after: Option<Role>) -> Option<(Role, Role)> {
    match (before, after) {
        (Some(from), Some(to)) if from != to => Some((from, to)),
        _ => None,
    }
}

/// Why the serving instance moved from `from` to `to`, from the instances in maintenance
/// before and after the decision that moved it. An instance in maintenance never serves:
/// if the one that stopped serving is in maintenance, that is why it stopped; if the one
/// that took over has just left maintenance, its window's end is why it could.
pub fn cause(from: Role, to: Role, before: InMaintenance, after: InMaintenance) -> Cause {
    let left = before.has(to) && !after.has(to);
    if after.has(from) || left {
        Cause::Maintenance
    } else {
        Cause::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::{Backup, Primary};

    const NONE: InMaintenance = InMaintenance {
        primary: false,
        backup: false,
    };
    const PRIMARY: InMaintenance = InMaintenance {
        primary: true,
        backup: false,
    };
    const BACKUP: InMaintenance = InMaintenance {
        primary: false,
        backup: true,
    };

    #[test]
    fn only_a_move_from_one_instance_to_the_other_is_a_switchover() {
        assert_eq!(
            switchover(Some(Primary), Some(Backup)),
            Some((Primary, Backup))
        );
        assert_eq!(
            switchover(Some(Backup), Some(Primary)),
            Some((Backup, Primary))
        );
        assert_eq!(
            switchover(Some(Primary), Some(Primary)),
            None,
            "the same instance, whatever its choice now rests on"
        );
        assert_eq!(switchover(Some(Primary), None), None, "stopped serving");
        assert_eq!(switchover(None, Some(Backup)), None, "started serving");
        assert_eq!(switchover(None, None), None);
    }

    #[test]
    fn the_serving_instance_put_into_maintenance_is_a_planned_move() {
        assert_eq!(cause(Primary, Backup, NONE, PRIMARY), Cause::Maintenance);
        assert_eq!(cause(Backup, Primary, NONE, BACKUP), Cause::Maintenance);
    }

    #[test]
    fn an_instance_taking_over_as_its_window_ends_is_a_planned_move() {
        // failback = "primary", or the primary saying it is primary, as its window ends.
        assert_eq!(cause(Backup, Primary, PRIMARY, NONE), Cause::Maintenance);
    }

    #[test]
    fn an_instance_in_maintenance_stopped_serving_because_of_it() {
        // Whenever its window started: an instance in maintenance never serves.
        assert_eq!(cause(Primary, Backup, PRIMARY, PRIMARY), Cause::Maintenance);
    }

    #[test]
    fn any_other_move_is_a_failure() {
        assert_eq!(cause(Primary, Backup, NONE, NONE), Cause::Failure);
        // The backup failed, or the primary came back under failback.
        assert_eq!(cause(Backup, Primary, NONE, NONE), Cause::Failure);
        // A window ending on the instance that stopped serving is no reason for it to.
        assert_eq!(cause(Primary, Backup, PRIMARY, NONE), Cause::Failure);
    }

    #[test]
    fn causes_have_stable_names() {
        let names: Vec<&str> = Cause::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["failure", "maintenance"]);
    }
}
