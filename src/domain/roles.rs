//! Which instance serves, when the instances are asked which role they have.
//!
//! Without a role check, the serving instance is inferred from probe history
//! ([`choose_serving`]): right as long as every switchover is one servicewatch saw. A
//! switchover done by hand in the Management Layer, or a split brain in which both
//! instances run as primary, is invisible to probes. A role check asks each instance; the
//! rules here turn what they said into the serving instance:
//!
//! - the healthy instance that says it is primary serves, whatever the probe history;
//! - when both healthy instances say primary (a conflict), the configured primary is shown,
//!   always: every servicewatch node then shows the same one, and the conflict is said;
//! - when no healthy instance says primary (none answered, or both say backup), the
//!   serving instance is inferred as without a role check, and that is said too.

use std::fmt;

use super::health::Health;
use super::pairing::{Failback, choose_serving};
use super::service::Role;

/// What an instance answered when asked its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SaidRole {
    /// Not asked yet, not answering, or answering something else.
    #[default]
    Unknown,
    Primary,
    Backup,
}

impl SaidRole {
    /// Every answer; for metrics.
    pub const ALL: [SaidRole; 3] = [SaidRole::Primary, SaidRole::Backup, SaidRole::Unknown];

    /// The wire name, used in logs and the instance detail.
    pub fn as_str(self) -> &'static str {
        match self {
            SaidRole::Unknown => "unknown",
            SaidRole::Primary => "primary",
            SaidRole::Backup => "backup",
        }
    }
}

impl fmt::Display for SaidRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the serving instance rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Source {
    /// The service has no role check: inferred from probe history, as always.
    #[default]
    Health,
    /// The one healthy instance that says it is primary.
    Role,
    /// Both healthy instances say they are primary; the configured primary is shown.
    Conflict,
    /// The service has a role check, but no healthy instance says it is primary:
    /// inferred from probe history.
    Fallback,
}

impl Source {
    /// How the resource names it in `servingInstanceSource`; `None` for a service without
    /// a role check, whose resource keeps the shape it always had.
    pub fn wire_name(self) -> Option<&'static str> {
        match self {
            Source::Health => None,
            Source::Role | Source::Conflict => Some("role"),
            Source::Fallback => Some("health"),
        }
    }
}

/// One instance of a pair as the rules see it: its health and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub health: Health,
    pub said: SaidRole,
}

/// Chooses the serving instance of a pair whose instances have a role check, from the one
/// serving now (used only when falling back), and where that choice comes from.
pub fn choose_by_roles(
    current: Option<Role>,
    primary: Seen,
    backup: Option<Seen>,
    failback: Failback,
) -> (Option<Role>, Source) {
    let claims = |seen: Option<Seen>| {
        seen.is_some_and(|s| s.health.is_healthy() && s.said == SaidRole::Primary)
    };
    match (claims(Some(primary)), claims(backup)) {
        (true, true) => (Some(Role::Primary), Source::Conflict),
        (true, false) => (Some(Role::Primary), Source::Role),
        (false, true) => (Some(Role::Backup), Source::Role),
        (false, false) => (
            choose_serving(current, primary.health, backup.map(|b| b.health), failback),
            Source::Fallback,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Down, Up};
    use SaidRole::{Backup, Primary, Unknown};

    fn seen(health: Health, said: SaidRole) -> Seen {
        Seen { health, said }
    }

    fn choose(current: Option<Role>, p: Seen, b: Seen) -> (Option<Role>, Source) {
        choose_by_roles(current, p, Some(b), Failback::Stay)
    }

    #[test]
    fn the_instance_that_says_primary_serves_whatever_the_history() {
        // A switchover done by hand: the backup now says primary, both are healthy.
        assert_eq!(
            choose(Some(Role::Primary), seen(Up, Backup), seen(Up, Primary)),
            (Some(Role::Backup), Source::Role)
        );
        // And back, although servicewatch never fails back by itself.
        assert_eq!(
            choose(Some(Role::Backup), seen(Up, Primary), seen(Up, Backup)),
            (Some(Role::Primary), Source::Role)
        );
    }

    #[test]
    fn an_unhealthy_instance_saying_primary_does_not_serve() {
        assert_eq!(
            choose(Some(Role::Primary), seen(Down, Primary), seen(Up, Backup)),
            (Some(Role::Backup), Source::Fallback),
            "nobody healthy says primary: inferred, and said so"
        );
        assert_eq!(
            choose(None, seen(Down, Primary), seen(Up, Primary)),
            (Some(Role::Backup), Source::Role)
        );
    }

    #[test]
    fn two_primaries_are_a_conflict_shown_as_the_configured_primary() {
        for current in [None, Some(Role::Primary), Some(Role::Backup)] {
            assert_eq!(
                choose(current, seen(Up, Primary), seen(Health::Degraded, Primary)),
                (Some(Role::Primary), Source::Conflict),
                "the same answer whatever the history, so every node agrees"
            );
        }
    }

    #[test]
    fn without_an_answer_the_serving_instance_is_inferred() {
        assert_eq!(
            choose(Some(Role::Backup), seen(Up, Unknown), seen(Up, Unknown)),
            (Some(Role::Backup), Source::Fallback),
            "no failback, as without a role check"
        );
        assert_eq!(
            choose(None, seen(Up, Backup), seen(Up, Backup)),
            (Some(Role::Primary), Source::Fallback)
        );
        assert_eq!(
            choose(
                Some(Role::Primary),
                seen(Down, Unknown),
                seen(Down, Unknown)
            ),
            (None, Source::Fallback)
        );
    }

    #[test]
    fn a_single_instance_serves_when_it_says_primary_or_by_health() {
        assert_eq!(
            choose_by_roles(None, seen(Up, Primary), None, Failback::Stay),
            (Some(Role::Primary), Source::Role)
        );
        assert_eq!(
            choose_by_roles(None, seen(Up, Backup), None, Failback::Stay),
            (Some(Role::Primary), Source::Fallback)
        );
    }

    #[test]
    fn only_services_with_a_role_check_name_a_source() {
        assert_eq!(Source::Health.wire_name(), None);
        assert_eq!(Source::Conflict.wire_name(), Some("role"));
        assert_eq!(Source::Fallback.wire_name(), Some("health"));
    }
}
